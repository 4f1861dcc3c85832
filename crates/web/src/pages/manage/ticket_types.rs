//! A ticket type in the console: what the add form and the change form both read from what was
//! typed, and the page that changes a draft's ticket type
//! (`/manage/events/{id}/ticket-types/{ticket_type_id}`). The API lets a ticket type change only
//! until its event is published; after that the page says so instead of offering the form.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use serde_json::{Value, json};

use super::{
    ManagedEvent, ManagedTicketType,
    event::{refusable, refusal, status_of},
    form::{Errors, Input, price_minor, whole_number},
};
use crate::{
    Web,
    api::ApiError,
    layout::{Failure, csrf, login_then, page, respond},
    pages::{is_id, no_such_page},
    session::{Fields, Visit},
};

/// The API's body for a ticket type from the form's fields (`ticket_name`, `price` as typed in
/// the event's currency, `capacity`), or what is wrong with them, in words.
pub fn body_from(fields: &Fields, currency: &str) -> Result<Value, Errors> {
    let mut errors = Errors::default();
    let digits = eventhive_domain::money::minor_digits(currency);
    let price = price_minor(fields.get("price"), digits);
    if price.is_none() {
        let example = if digits == 0 { "1500" } else { "45.00" };
        errors.field("price", format!("Enter the price as an amount in {currency}, like {example} (0 for free)."));
    }
    let capacity = whole_number(fields.get("capacity"));
    if capacity.is_none() {
        errors.field("capacity", "Enter how many tickets of this type there are, like 500.");
    }
    match (price, capacity) {
        (Some(price_minor), Some(capacity)) => {
            Ok(json!({ "name": fields.get("ticket_name"), "price_minor": price_minor, "capacity": capacity }))
        }
        _ => Err(errors),
    }
}

/// Where an API field's refusal is shown in the ticket type forms, and what it is called.
pub fn field_of(api_field: &str) -> Option<(&'static str, &'static str)> {
    match api_field {
        "name" => Some(("ticket_name", "The name")),
        "price_minor" => Some(("price", "The price")),
        "capacity" => Some(("capacity", "The number of tickets")),
        _ => None,
    }
}

/// What the change form shows: the ticket type as it is, or as typed.
struct Typed {
    name: String,
    price: String,
    capacity: String,
}

impl Typed {
    fn of(ticket_type: &ManagedTicketType) -> Self {
        let digits = eventhive_domain::money::minor_digits(&ticket_type.price.currency);
        let amount = ticket_type.price.amount_minor;
        let price = if digits == 0 {
            amount.to_string()
        } else {
            let scale = 10_i64.pow(digits);
            format!("{}.{:0width$}", amount / scale, amount % scale, width = digits as usize)
        };
        Self { name: ticket_type.name.clone(), price, capacity: ticket_type.capacity.to_string() }
    }

    fn sent(fields: &Fields) -> Self {
        Self {
            name: fields.get("ticket_name").to_owned(),
            price: fields.get("price").to_owned(),
            capacity: fields.get("capacity").to_owned(),
        }
    }
}

/// `GET /manage/events/{id}/ticket-types/{ticket_type_id}`.
pub async fn edit_form(
    State(web): State<Web>,
    visit: Visit,
    Path((event_id, ticket_type_id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    if !is_id(&event_id) || !is_id(&ticket_type_id) {
        return Ok(no_such_page());
    }
    if !visit.signed_in() {
        return Ok(Redirect::to(&login_then(&path(&event_id, &ticket_type_id))).into_response());
    }
    let event: ManagedEvent =
        web.api.get(&visit.caller, format!("/v1/events/{event_id}")).json().await.map_err(|e| visit.fail(e))?;
    let Some(current) = event.ticket_types.iter().find(|t| t.id == ticket_type_id) else { return Ok(no_such_page()) };
    Ok(edit_page(&visit, &event, current, &Typed::of(current), StatusCode::OK, &Errors::default()))
}

/// `POST /manage/events/{id}/ticket-types/{ticket_type_id}`: the whole ticket type, changed.
pub async fn change(
    State(web): State<Web>,
    visit: Visit,
    Path((event_id, ticket_type_id)): Path<(String, String)>,
    fields: Fields,
) -> Result<Response, Failure> {
    if !is_id(&event_id) || !is_id(&ticket_type_id) {
        return Ok(no_such_page());
    }
    let event: ManagedEvent =
        web.api.get(&visit.caller, format!("/v1/events/{event_id}")).json().await.map_err(|e| visit.fail(e))?;
    let Some(current) = event.ticket_types.iter().find(|t| t.id == ticket_type_id) else { return Ok(no_such_page()) };
    let body = match body_from(&fields, &event.currency) {
        Ok(body) => body,
        Err(errors) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(edit_page(&visit, &event, current, &Typed::sent(&fields), status, &errors));
        }
    };
    match web.api.put(&visit.caller, format!("/v1/events/{event_id}/ticket-types/{ticket_type_id}"), body).done().await
    {
        Ok(()) => Ok(Redirect::to(&format!("/manage/events/{event_id}/edit#tickets")).into_response()),
        Err(ApiError::Problem(problem)) if refusable(&problem) => {
            let errors = refusal(&problem, field_of);
            Ok(edit_page(&visit, &event, current, &Typed::sent(&fields), status_of(&problem), &errors))
        }
        Err(error) => Err(visit.fail(error)),
    }
}

fn path(event_id: &str, ticket_type_id: &str) -> String {
    format!("/manage/events/{event_id}/ticket-types/{ticket_type_id}")
}

fn edit_page(
    visit: &Visit,
    event: &ManagedEvent,
    current: &ManagedTicketType,
    typed: &Typed,
    status: StatusCode,
    errors: &Errors,
) -> Response {
    let title = format!("Ticket type: {}", current.name);
    let price_label = format!("Price ({})", event.currency);
    let main = html! {
        h1 { (title) }
        p { "Of " a href={ "/manage/events/" (event.id) "/edit#tickets" } { (event.title) } "." }
        @if event.status == "draft" {
            p { "Until the event is published, its ticket types change freely." }
            form.ticket-type method="post" action=(path(&event.id, &current.id)) {
                (csrf(visit))
                (errors.summary())
                (Input::text("ticket_name", "Name", &typed.name).hint("Each name once per event.").render(errors))
                div.row {
                    (Input::text("price", &price_label, &typed.price).kind("text").hint("0 for free.").render(errors))
                    (Input::text("capacity", "Number of tickets", &typed.capacity).kind("number").render(errors))
                }
                button type="submit" { "Save the ticket type" }
            }
        } @else {
            (errors.summary())
            p { "The event has been published: buyers hold and have bought these tickets, so the ticket type stays as it is. A new ticket type can still be added on the event's page." }
        }
    };
    respond(status, page(Some(visit), &title, main))
}
