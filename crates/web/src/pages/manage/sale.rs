//! How an event's sale runs, in the console: its waiting room (when the sale opens to a queue,
//! how fast buyers are let in, how long an admission lasts, and how the room stands now), and
//! calling the event off, which asks for a reason and a confirmation first.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    ManagedEvent,
    event::{Sent, event_page, refusable, refusal, status_of},
    form::{Errors, Input, api_time, form_time, textarea, whole_number},
};
use crate::{
    Web,
    api::ApiError,
    layout::{Failure, csrf, page, respond, when},
    pages::PathId,
    session::{Fields, Visit},
};

/// An event's waiting room as the API shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Room {
    opens_at: String,
    status: String,
    admit_per_minute: Option<i64>,
    admission_ttl_secs: i64,
    queued: i64,
    admitted: i64,
}

/// The event's waiting room; `None` when it has none.
pub async fn room_of(web: &Web, visit: &Visit, event_id: &str) -> Result<Option<Room>, Failure> {
    match web.api.get(&visit.caller, format!("/v1/events/{event_id}/waiting-room")).json().await {
        Ok(room) => Ok(Some(room)),
        Err(ApiError::Problem(problem)) if problem.status == 404 => Ok(None),
        Err(error) => Err(visit.fail(error)),
    }
}

/// The waiting room's section of the event's page: how it stands, and the form that sets it up.
pub fn room_section(
    visit: &Visit,
    event: &ManagedEvent,
    room: Option<&Room>,
    sent: Option<(&Errors, &Fields)>,
) -> Markup {
    let none = Errors::default();
    let errors = sent.map_or(&none, |(errors, _)| errors);
    let typed = |name: &str, current: String| sent.map(|(_, fields)| fields.get(name).to_owned()).unwrap_or(current);
    let opens_at = typed("opens_at", room.map(|r| form_time(&r.opens_at)).unwrap_or_default());
    let rate =
        typed("admit_per_minute", room.and_then(|r| r.admit_per_minute).map(|n| n.to_string()).unwrap_or_default());
    let ttl = typed("admission_ttl_secs", room.map_or(600, |r| r.admission_ttl_secs).to_string());
    html! {
        section aria-labelledby="waiting-room" {
            h2 #waiting-room { "Waiting room" }
            @match room {
                Some(room) => {
                    dl.room {
                        div { dt { "Now" } dd { (room_status(&room.status)) } }
                        div { dt { "Opens" } dd { (when(&room.opens_at)) } }
                        div { dt { "Admits" } dd { @match room.admit_per_minute { Some(n) => { (n) " a minute" } None => "automatically, as fast as the sale serves" } } }
                        div { dt { "An admission lasts" } dd { (room.admission_ttl_secs / 60) " minutes" } }
                        div { dt { "Waiting" } dd { (room.queued) } }
                        div { dt { "Admitted" } dd { (room.admitted) } }
                    }
                }
                None => p { "None: buyers buy as soon as the event is on sale. A waiting room opens the sale at a set time to a fair queue." },
            }
            @if event.status != "cancelled" {
                form.room method="post" action={ "/manage/events/" (event.id) "/waiting-room" } {
                    (csrf(visit))
                    (errors.summary())
                    (Input::text("opens_at", "The sale opens at (UTC)", &opens_at).kind("datetime-local").hint("Who joins before is given a place at random then; after, in order of arrival.").render(errors))
                    (Input::text("admit_per_minute", "Buyers let in per minute", &rate).kind("number").hint("Leave empty to let the platform decide: as many as the sale can serve.").optional().render(errors))
                    (Input::text("admission_ttl_secs", "Seconds an admitted buyer has to order", &ttl).kind("number").hint("60 to 3600.").render(errors))
                    button type="submit" { @if room.is_some() { "Save the waiting room" } @else { "Set up the waiting room" } }
                }
            }
        }
    }
}

fn room_status(status: &str) -> &str {
    match status {
        "scheduled" => "Scheduled: buyers may join the queue",
        "open" => "Open: admitting buyers",
        "sold_out" => "Sold out",
        other => other,
    }
}

/// `POST /manage/events/{id}/waiting-room`: sets the room up, or changes it.
pub async fn put_room(
    State(web): State<Web>,
    visit: Visit,
    PathId(event_id): PathId,
    fields: Fields,
) -> Result<Response, Failure> {
    let mut errors = Errors::default();
    let mut body = Map::new();
    match api_time(fields.get("opens_at")) {
        Some(opens_at) => {
            body.insert("opens_at".into(), json!(opens_at));
        }
        None => errors.field("opens_at", "Enter when the sale opens, as a date and time like 2027-06-01 10:00."),
    }
    match fields.get("admit_per_minute") {
        "" => {}
        typed => match whole_number(typed) {
            Some(rate) => {
                body.insert("admit_per_minute".into(), json!(rate));
            }
            None => errors.field("admit_per_minute", "Enter a whole number of buyers, like 100, or leave it empty."),
        },
    }
    match whole_number(fields.get("admission_ttl_secs")) {
        Some(ttl) => {
            body.insert("admission_ttl_secs".into(), json!(ttl));
        }
        None => errors.field("admission_ttl_secs", "Enter a number of seconds, like 600."),
    }
    if !errors.is_empty() {
        let sent = Sent::WaitingRoom(errors, &fields);
        return event_page(&web, &visit, &event_id, StatusCode::UNPROCESSABLE_ENTITY, Some(sent)).await;
    }
    let path = format!("/v1/events/{event_id}/waiting-room");
    match web.api.put(&visit.caller, path, Value::Object(body)).done().await {
        Ok(()) => Ok(Redirect::to(&format!("/manage/events/{event_id}/edit#waiting-room")).into_response()),
        Err(ApiError::Problem(problem)) if refusable(&problem) => {
            let errors = if problem.kind() == "conflict" {
                let mut errors = Errors::default();
                errors.general("The room has opened: only the number of buyers let in per minute can change now.");
                errors
            } else {
                refusal(&problem, |field| match field {
                    "opens_at" => Some(("opens_at", "The opening time")),
                    "admit_per_minute" => Some(("admit_per_minute", "The buyers let in per minute")),
                    "admission_ttl_secs" => Some(("admission_ttl_secs", "The time to order")),
                    _ => None,
                })
            };
            let sent = Sent::WaitingRoom(errors, &fields);
            event_page(&web, &visit, &event_id, status_of(&problem), Some(sent)).await
        }
        Err(error) => Err(visit.fail(error)),
    }
}

/// `GET /manage/events/{id}/cancel`: the confirmation, with the reason holders will read.
pub async fn cancel_form(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    cancel_page(&web, &visit, &event_id, StatusCode::OK, &Errors::default(), "").await
}

/// `POST /manage/events/{id}/cancel`: calls the event off, once confirmed.
pub async fn cancel(
    State(web): State<Web>,
    visit: Visit,
    PathId(event_id): PathId,
    fields: Fields,
) -> Result<Response, Failure> {
    let reason = fields.get("reason");
    let mut errors = Errors::default();
    if fields.get("confirm") != "yes" {
        errors.field("confirm", "Tick the box to confirm: cancelling cannot be undone.");
        return cancel_page(&web, &visit, &event_id, StatusCode::UNPROCESSABLE_ENTITY, &errors, reason).await;
    }
    let path = format!("/v1/events/{event_id}/cancel");
    match web.api.post(&visit.caller, path, json!({ "reason": reason })).done().await {
        Ok(()) => Ok(Redirect::to(&format!("/manage/events/{event_id}/edit")).into_response()),
        Err(ApiError::Problem(problem)) if refusable(&problem) => {
            let errors = refusal(&problem, |field| (field == "reason").then_some(("reason", "The reason")));
            cancel_page(&web, &visit, &event_id, status_of(&problem), &errors, reason).await
        }
        Err(error) => Err(visit.fail(error)),
    }
}

async fn cancel_page(
    web: &Web,
    visit: &Visit,
    event_id: &str,
    status: StatusCode,
    errors: &Errors,
    reason: &str,
) -> Result<Response, Failure> {
    let event: ManagedEvent =
        web.api.get(&visit.caller, format!("/v1/events/{event_id}")).json().await.map_err(|e| visit.fail(e))?;
    let title = format!("Cancel {}?", event.title);
    let confirm_error = errors.of("confirm");
    let main = html! {
        h1 { (title) }
        @if event.status == "cancelled" {
            p { "This event is cancelled already." }
        } @else {
            p { "Every paid order is refunded, unpaid ones are released, and every ticket holder is emailed the reason below. The event cannot go on sale again." }
            form.cancel-event method="post" action={ "/manage/events/" (event.id) "/cancel" } {
                (csrf(visit))
                (errors.summary())
                (textarea(errors, &Input::text("reason", "Why it is cancelled", reason).hint("Ticket holders read this in their email; up to 500 characters."), 3))
                p.field {
                    @if let Some(error) = confirm_error { span.field-error #confirm-error { (error) } }
                    input #confirm type="checkbox" name="confirm" value="yes" required aria-invalid=[confirm_error.map(|_| "true")] aria-describedby=[confirm_error.map(|_| "confirm-error")];
                    label.inline for="confirm" { "Yes, cancel " (event.title) " and refund its buyers" }
                }
                button.danger type="submit" { "Cancel the event" }
            }
        }
        p { a href={ "/manage/events/" (event.id) "/edit" } { "Keep the event and go back" } }
    };
    Ok(respond(status, page(Some(visit), &title, main)))
}
