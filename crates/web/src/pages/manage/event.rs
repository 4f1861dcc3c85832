//! An event in the console: the form that creates it, and its own page (`/manage/events/{id}/edit`)
//! where its details are edited, ticket types added, and it is published; the page also holds
//! the waiting room's section and the ways to the exports and to calling the event off.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde_json::{Map, Value, json};

use super::{
    ManagedEvent,
    form::{Errors, Input, api_time, form_time, textarea, whole_number},
    sale, status_words, ticket_types,
};
use crate::{
    Web,
    api::{ApiError, Problem},
    layout::{Failure, csrf, login_then, money, page, respond, when},
    pages::PathId,
    session::{Fields, Visit},
};

/// Which form of the event's page was sent back, with its errors and what was typed.
pub enum Sent<'a> {
    Details(Errors, &'a Fields),
    TicketType(Errors, &'a Fields),
    Publish(Errors),
    WaitingRoom(Errors, &'a Fields),
}

/// `GET /manage/organizations/{id}/events/new`.
pub async fn new_form(visit: Visit, PathId(organization_id): PathId) -> Response {
    if !visit.signed_in() {
        return Redirect::to(&login_then(&format!("/manage/organizations/{organization_id}/events/new")))
            .into_response();
    }
    new_page(&visit, &organization_id, StatusCode::OK, &Details::blank(), &Errors::default())
}

fn new_page(visit: &Visit, organization_id: &str, status: StatusCode, details: &Details, errors: &Errors) -> Response {
    let action = format!("/manage/organizations/{organization_id}/events");
    let main = html! {
        h1 { "New event" }
        p { "The event starts as a draft: nobody but your organization sees it until you publish it." }
        (details_form(visit, &action, details, errors, true, "Create the draft"))
        p { a href="/manage" { "Back to the console" } }
    };
    respond(status, page(Some(visit), "New event", main))
}

/// `POST /manage/organizations/{id}/events`: creates the draft and goes to its page.
pub async fn create(
    State(web): State<Web>,
    visit: Visit,
    PathId(organization_id): PathId,
    fields: Fields,
) -> Result<Response, Failure> {
    let details = Details::sent(&fields);
    let mut errors = Errors::default();
    let Some(mut body) = details.body(&mut errors, true) else {
        return Ok(new_page(&visit, &organization_id, StatusCode::UNPROCESSABLE_ENTITY, &details, &errors));
    };
    body.insert("organization_id".into(), Value::String(organization_id.clone()));
    match web.api.post(&visit.caller, "/v1/events", Value::Object(body)).json::<ManagedEvent>().await {
        Ok(event) => Ok(Redirect::to(&format!("/manage/events/{}/edit", event.id)).into_response()),
        Err(ApiError::Problem(problem)) if problem.kind() == "validation" || problem.status == 403 => {
            let errors = refusal(&problem, detail_field);
            Ok(new_page(&visit, &organization_id, status_of(&problem), &details, &errors))
        }
        Err(error) => Err(visit.fail(error)),
    }
}

/// `GET /manage/events/{id}/edit`: the event's page in the console.
pub async fn show(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    if !visit.signed_in() {
        return Ok(Redirect::to(&login_then(&format!("/manage/events/{event_id}/edit"))).into_response());
    }
    event_page(&web, &visit, &event_id, StatusCode::OK, None).await
}

/// `POST /manage/events/{id}/edit`: changes the event's details.
pub async fn update(
    State(web): State<Web>,
    visit: Visit,
    PathId(event_id): PathId,
    fields: Fields,
) -> Result<Response, Failure> {
    let details = Details::sent(&fields);
    let mut errors = Errors::default();
    // The currency is in the form only while it may change (a draft).
    let with_currency = !details.currency.is_empty();
    let Some(body) = details.body(&mut errors, with_currency) else {
        let sent = Sent::Details(errors, &fields);
        return event_page(&web, &visit, &event_id, StatusCode::UNPROCESSABLE_ENTITY, Some(sent)).await;
    };
    let path = format!("/v1/events/{event_id}");
    match web.api.patch(&visit.caller, path, Value::Object(body)).done().await {
        Ok(()) => Ok(Redirect::to(&format!("/manage/events/{event_id}/edit")).into_response()),
        Err(ApiError::Problem(problem)) if refusable(&problem) => {
            let sent = Sent::Details(refusal(&problem, detail_field), &fields);
            event_page(&web, &visit, &event_id, status_of(&problem), Some(sent)).await
        }
        Err(error) => Err(visit.fail(error)),
    }
}

/// `POST /manage/events/{id}/ticket-types`.
pub async fn add_ticket_type(
    State(web): State<Web>,
    visit: Visit,
    PathId(event_id): PathId,
    fields: Fields,
) -> Result<Response, Failure> {
    let event: ManagedEvent =
        web.api.get(&visit.caller, format!("/v1/events/{event_id}")).json().await.map_err(|e| visit.fail(e))?;
    let body = match ticket_types::body_from(&fields, &event.currency) {
        Ok(body) => body,
        Err(errors) => {
            let sent = Sent::TicketType(errors, &fields);
            return event_page(&web, &visit, &event_id, StatusCode::UNPROCESSABLE_ENTITY, Some(sent)).await;
        }
    };
    match web.api.post(&visit.caller, format!("/v1/events/{event_id}/ticket-types"), body).done().await {
        Ok(()) => Ok(Redirect::to(&format!("/manage/events/{event_id}/edit#tickets")).into_response()),
        Err(ApiError::Problem(problem)) if refusable(&problem) => {
            let sent = Sent::TicketType(refusal(&problem, ticket_types::field_of), &fields);
            event_page(&web, &visit, &event_id, status_of(&problem), Some(sent)).await
        }
        Err(error) => Err(visit.fail(error)),
    }
}

/// `POST /manage/events/{id}/publish`: puts the draft on sale.
pub async fn publish(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    match web.api.post(&visit.caller, format!("/v1/events/{event_id}/publish"), json!({})).done().await {
        Ok(()) => Ok(Redirect::to(&format!("/manage/events/{event_id}/edit")).into_response()),
        Err(ApiError::Problem(problem)) if refusable(&problem) => {
            let sent = Sent::Publish(refusal(&problem, |_| None));
            event_page(&web, &visit, &event_id, status_of(&problem), Some(sent)).await
        }
        Err(error) => Err(visit.fail(error)),
    }
}

/// A refusal the page explains beside the form: invalid fields, a conflict with the event's
/// state (the API says which in words), or a role that may not do it.
pub fn refusable(problem: &Problem) -> bool {
    matches!(problem.kind(), "validation" | "conflict") || problem.status == 403
}

/// The errors of a refusal; a 403 in the console's own words.
pub fn refusal(problem: &Problem, place: impl Fn(&str) -> Option<(&'static str, &'static str)>) -> Errors {
    if problem.status == 403 {
        let mut errors = Errors::default();
        errors.general("Only the organization's owner and admins manage its events.");
        return errors;
    }
    Errors::from_problem(problem, place)
}

pub fn status_of(problem: &Problem) -> StatusCode {
    StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
}

/// The event's page, with the form that was sent back (if any) showing its errors.
pub async fn event_page(
    web: &Web,
    visit: &Visit,
    event_id: &str,
    status: StatusCode,
    sent: Option<Sent<'_>>,
) -> Result<Response, Failure> {
    let event: ManagedEvent =
        web.api.get(&visit.caller, format!("/v1/events/{event_id}")).json().await.map_err(|e| visit.fail(e))?;
    let room = sale::room_of(web, visit, event_id).await?;
    let title = format!("Manage: {}", event.title);
    let none = Errors::default();
    let (details, details_errors) = match &sent {
        Some(Sent::Details(errors, fields)) => {
            let mut typed = Details::sent(fields);
            // Not in the form once the event is on sale, but still shown.
            if typed.currency.is_empty() {
                typed.currency.clone_from(&event.currency);
            }
            (typed, errors)
        }
        _ => (Details::of(&event), &none),
    };
    let action = format!("/manage/events/{}/edit", event.id);
    let open = event.status != "cancelled";
    let main = html! {
        h1 { (title) }
        p.status { "Status: " strong { (status_words(&event.status)) } " · " (when(&event.starts_at)) }
        @if let Some(reason) = &event.cancel_reason { p { "Cancelled because: " (reason) } }
        nav aria-label="This event" {
            ul.links {
                li { a href={ "/manage/events/" (event.id) } { "Live figures" } }
                li { a href={ "/door/" (event.id) } { "Door" } }
                li { a href="/manage" { "Back to the console" } }
            }
        }
        section aria-labelledby="sale" {
            h2 #sale { "Sale" }
            (publish_section(visit, &event, match &sent { Some(Sent::Publish(errors)) => errors, _ => &none }))
        }
        section aria-labelledby="tickets" {
            h2 #tickets { "Ticket types" }
            (ticket_types(visit, &event, match &sent { Some(Sent::TicketType(errors, fields)) => Some((errors, *fields)), _ => None }))
        }
        section aria-labelledby="details" {
            h2 #details { "Details" }
            @if open {
                (details_form(visit, &action, &details, details_errors, event.status == "draft", "Save the details"))
            } @else {
                p { "A cancelled event does not change any more." }
            }
        }
        (sale::room_section(visit, &event, room.as_ref(), match &sent { Some(Sent::WaitingRoom(errors, fields)) => Some((errors, *fields)), _ => None }))
        section aria-labelledby="exports" {
            h2 #exports { "Exports" }
            p { "For the organization's owner and admins, as CSV files a spreadsheet opens." }
            ul {
                li { a href={ "/manage/events/" (event.id) "/orders.csv" } download { "Orders (CSV)" } }
                li { a href={ "/manage/events/" (event.id) "/attendees.csv" } download { "Attendees (CSV)" } }
            }
        }
        @if open {
            section aria-labelledby="cancel" {
                h2 #cancel { "Cancel the event" }
                p { "Paid orders are refunded and ticket holders told by email. It cannot be undone." }
                p { a href={ "/manage/events/" (event.id) "/cancel" } { "Cancel this event…" } }
            }
        }
    };
    Ok(respond(status, page(Some(visit), &title, main)))
}

fn publish_section(visit: &Visit, event: &ManagedEvent, errors: &Errors) -> Markup {
    html! {
        (errors.summary())
        @match event.status.as_str() {
            "draft" => {
                p { "A draft: only your organization sees it. Publishing puts it on sale: buyers find it and buy at once." }
                @if event.ticket_types.is_empty() { p.hint { "Add a ticket type first, or nobody can buy anything." } }
                form.publish method="post" action={ "/manage/events/" (event.id) "/publish" } {
                    (csrf(visit))
                    button type="submit" { "Publish: put on sale" }
                }
            }
            "on_sale" => p { "On sale: buyers find it on " a href={ "/events/" (event.id) } { "its public page" } "." },
            _ => p { "Cancelled: it is no longer on sale." },
        }
    }
}

fn ticket_types(visit: &Visit, event: &ManagedEvent, sent: Option<(&Errors, &Fields)>) -> Markup {
    let none = Errors::default();
    let errors = sent.map_or(&none, |(errors, _)| errors);
    let typed = |name: &str| sent.map(|(_, fields)| fields.get(name).to_owned()).unwrap_or_default();
    let (name, price, capacity) = (typed("ticket_name"), typed("price"), typed("capacity"));
    let price_label = format!("Price ({})", event.currency);
    html! {
        @if event.ticket_types.is_empty() {
            p { "No ticket types yet." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Ticket" } th scope="col" { "Price" } th scope="col" { "Tickets" } th scope="col" { "Left" }
                    @if event.status == "draft" { th scope="col" { "Change" } }
                } }
                tbody {
                    @for t in &event.ticket_types {
                        tr {
                            th scope="row" { (t.name) } td { (money(&t.price)) } td { (t.capacity) } td { (t.available) }
                            @if event.status == "draft" {
                                td { a href={ "/manage/events/" (event.id) "/ticket-types/" (t.id) } { "Change " span.visually-hidden { (t.name) } } }
                            }
                        }
                    }
                }
            }
        }
        @if event.status != "cancelled" {
            form.ticket-type method="post" action={ "/manage/events/" (event.id) "/ticket-types" } aria-labelledby="add-ticket-type" {
                (csrf(visit))
                h3 #add-ticket-type { "Add a ticket type" }
                (errors.summary())
                (Input::text("ticket_name", "Name", &name).hint("Like Early bird or Standing; each name once per event.").render(errors))
                div.row {
                    (Input::text("price", &price_label, &price).kind("text").hint("0 for free.").render(errors))
                    (Input::text("capacity", "Number of tickets", &capacity).kind("number").render(errors))
                }
                button type="submit" { "Add ticket type" }
            }
        }
    }
}

/// The fields of the details form, as typed (or as the event has them).
struct Details {
    title: String,
    description: String,
    venue_name: String,
    venue_city: String,
    venue_country: String,
    starts_at: String,
    ends_at: String,
    currency: String,
    max_tickets_per_order: String,
}

impl Details {
    fn blank() -> Self {
        Self {
            title: String::new(),
            description: String::new(),
            venue_name: String::new(),
            venue_city: String::new(),
            venue_country: String::new(),
            starts_at: String::new(),
            ends_at: String::new(),
            currency: "EUR".into(),
            max_tickets_per_order: "10".into(),
        }
    }

    fn of(event: &ManagedEvent) -> Self {
        Self {
            title: event.title.clone(),
            description: event.description.clone(),
            venue_name: event.venue.name.clone(),
            venue_city: event.venue.city.clone(),
            venue_country: event.venue.country.clone(),
            starts_at: form_time(&event.starts_at),
            ends_at: form_time(&event.ends_at),
            currency: event.currency.clone(),
            max_tickets_per_order: event.max_tickets_per_order.to_string(),
        }
    }

    fn sent(fields: &Fields) -> Self {
        let get = |name: &str| fields.get(name).to_owned();
        Self {
            title: get("title"),
            description: get("description"),
            venue_name: get("venue_name"),
            venue_city: get("venue_city"),
            venue_country: get("venue_country"),
            starts_at: get("starts_at"),
            ends_at: get("ends_at"),
            currency: get("currency"),
            max_tickets_per_order: get("max_tickets_per_order"),
        }
    }

    /// The API's body for these details; `None`, with the reasons in `errors`, when a time or
    /// a number is not one (the rest the API checks).
    fn body(&self, errors: &mut Errors, with_currency: bool) -> Option<Map<String, Value>> {
        let starts_at = api_time(&self.starts_at);
        if starts_at.is_none() {
            errors.field("starts_at", "Enter when the event starts, as a date and time like 2027-06-01 19:30.");
        }
        let ends_at = api_time(&self.ends_at);
        if ends_at.is_none() {
            errors.field("ends_at", "Enter when the event ends, as a date and time like 2027-06-01 23:00.");
        }
        let per_order = whole_number(&self.max_tickets_per_order);
        if per_order.is_none() {
            errors.field("max_tickets_per_order", "Enter the most tickets one order may hold, like 10.");
        }
        let (Some(starts_at), Some(ends_at), Some(per_order)) = (starts_at, ends_at, per_order) else {
            return None;
        };
        let mut body = Map::new();
        body.insert("title".into(), json!(self.title));
        body.insert("description".into(), json!(self.description));
        body.insert(
            "venue".into(),
            json!({ "name": self.venue_name, "city": self.venue_city, "country": self.venue_country }),
        );
        body.insert("starts_at".into(), json!(starts_at));
        body.insert("ends_at".into(), json!(ends_at));
        if with_currency {
            body.insert("currency".into(), json!(self.currency));
        }
        body.insert("max_tickets_per_order".into(), json!(per_order));
        Some(body)
    }
}

/// Where the API's errors on an event's details go, and how they are named.
fn detail_field(field: &str) -> Option<(&'static str, &'static str)> {
    Some(match field {
        "title" => ("title", "The title"),
        "description" => ("description", "The description"),
        "venue.name" => ("venue_name", "The venue"),
        "venue.city" => ("venue_city", "The city"),
        "venue.country" => ("venue_country", "The country"),
        "starts_at" => ("starts_at", "The start"),
        "ends_at" => ("ends_at", "The end"),
        "currency" => ("currency", "The currency"),
        "max_tickets_per_order" => ("max_tickets_per_order", "The most tickets per order"),
        _ => return None,
    })
}

fn details_form(
    visit: &Visit,
    action: &str,
    details: &Details,
    errors: &Errors,
    currency_editable: bool,
    submit: &str,
) -> Markup {
    html! {
        form.event method="post" action=(action) {
            (csrf(visit))
            (errors.summary())
            (Input::text("title", "Title", &details.title).render(errors))
            (textarea(errors, &Input::text("description", "Description", &details.description).optional(), 5))
            fieldset {
                legend { "Venue" }
                (Input::text("venue_name", "Venue name", &details.venue_name).render(errors))
                div.row {
                    (Input::text("venue_city", "City", &details.venue_city).render(errors))
                    (Input::text("venue_country", "Country", &details.venue_country).hint("Two letters, like NL.").render(errors))
                }
            }
            fieldset {
                legend { "When (UTC)" }
                div.row {
                    (Input::text("starts_at", "Starts", &details.starts_at).kind("datetime-local").hint("Date and time in UTC.").render(errors))
                    (Input::text("ends_at", "Ends", &details.ends_at).kind("datetime-local").hint("After the start.").render(errors))
                }
            }
            div.row {
                @if currency_editable {
                    (Input::text("currency", "Currency", &details.currency).hint("Three letters, like EUR; fixed once on sale.").render(errors))
                } @else {
                    p { "Currency: " strong { (details.currency) } }
                }
                (Input::text("max_tickets_per_order", "Most tickets per order", &details.max_tickets_per_order).kind("number").render(errors))
            }
            button type="submit" { (submit) }
        }
    }
}
