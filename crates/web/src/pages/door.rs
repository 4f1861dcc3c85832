//! The door: staff pick their event, then type (or scan into the field) each ticket's code and
//! get one loud answer: valid, already checked in, or not a ticket for this event. The answer
//! is announced at once (`role=alert`) and the field is ready for the next code.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{Event, Page, PathId};
use crate::{
    Web,
    api::ApiError,
    layout::{Failure, csrf, login_then, page, respond, when},
    session::{Fields, Visit},
};

/// The caller's profile: which organizations they work the door for.
#[derive(Debug, Deserialize)]
struct Me {
    organizations: Vec<Organization>,
}

#[derive(Debug, Deserialize)]
struct Organization {
    id: String,
}

/// `/door`: the events on sale of the caller's organizations.
pub async fn events(State(web): State<Web>, visit: Visit) -> Result<Response, Failure> {
    if !visit.signed_in() {
        return Ok(Redirect::to(&login_then("/door")).into_response());
    }
    let me: Me = web.api.get(&visit.caller, "/v1/me").json().await.map_err(|e| visit.fail(e))?;
    let on_sale: Page<Event> =
        web.api.get(&visit.caller, "/v1/events?page_size=100").json().await.map_err(|e| visit.fail(e))?;
    let ours: Vec<&Event> =
        on_sale.items.iter().filter(|e| me.organizations.iter().any(|o| o.id == e.organization_id)).collect();
    let main = html! {
        h1 { "Door" }
        @if ours.is_empty() {
            p { "None of your organizations has an event on sale. Door staff are added by an organization's owner or admins." }
        } @else {
            p { "Choose the event you are checking tickets in for." }
            ul.events {
                @for event in ours {
                    li {
                        a href={ "/door/" (event.id) } { (event.title) } " · " (when(&event.starts_at))
                        " · " a href={ "/manage/events/" (event.id) } { "live figures" }
                    }
                }
            }
        }
    };
    Ok(respond(StatusCode::OK, page(Some(&visit), "Door", main)))
}

/// `/door/{event}`: the field for the next code.
pub async fn event(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    door_page(&web, &visit, &event_id, None).await
}

/// `POST /door/{event}`: checks the code in and says what it was.
pub async fn check_in(
    State(web): State<Web>,
    visit: Visit,
    PathId(event_id): PathId,
    fields: Fields,
) -> Result<Response, Failure> {
    let code = fields.get("code");
    let answer = if code.is_empty() {
        Answer::Empty
    } else {
        let body = json!({ "code": code });
        match web.api.post(&visit.caller, format!("/v1/events/{event_id}/checkins"), body).done().await {
            Ok(()) => Answer::Valid,
            Err(ApiError::Problem(problem)) if problem.kind() == "conflict" => Answer::Already,
            Err(ApiError::Problem(problem)) if problem.status == 404 => Answer::NotForThisEvent,
            Err(ApiError::Problem(problem)) if problem.status == 403 => Answer::NotStaff,
            Err(error) => return Err(visit.fail(error)),
        }
    };
    door_page(&web, &visit, &event_id, Some(answer)).await
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Valid,
    Already,
    NotForThisEvent,
    NotStaff,
    Empty,
}

impl Answer {
    /// The class that colours it, the word that is read from across the room, and the detail.
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Answer::Valid => ("valid", "Valid", "Checked in: let them in."),
            Answer::Already => {
                ("already", "Already checked in", "This ticket was used before. Do not let it in again.")
            }
            Answer::NotForThisEvent => {
                ("invalid", "Not a ticket for this event", "Wrong event, void, or not a ticket at all.")
            }
            Answer::NotStaff => {
                ("invalid", "Not allowed", "Only the organization's owner, admins and door staff check tickets in.")
            }
            Answer::Empty => ("invalid", "No code", "Type or scan the ticket's code."),
        }
    }
}

async fn door_page(web: &Web, visit: &Visit, event_id: &str, answer: Option<Answer>) -> Result<Response, Failure> {
    let event: Event =
        web.api.get(&visit.caller, format!("/v1/events/{event_id}")).json().await.map_err(|e| visit.fail(e))?;
    let title = format!("Door: {}", event.title);
    let main = html! {
        h1 { (title) }
        @if let Some(answer) = answer { (answer_box(answer)) }
        form.door method="post" action={ "/door/" (event.id) } {
            (csrf(visit))
            p {
                label for="code" { "Ticket code" }
                // The field is focused on every answer, so a scanner that types can go on.
                input #code name="code" type="text" autocomplete="off" autocapitalize="off" spellcheck="false" autofocus required;
            }
            button type="submit" { "Check in" }
        }
        p { a href="/door" { "Another event" } }
    };
    let status = match answer {
        None | Some(Answer::Valid) => StatusCode::OK,
        Some(Answer::Already) => StatusCode::CONFLICT,
        Some(Answer::NotStaff) => StatusCode::FORBIDDEN,
        Some(Answer::NotForThisEvent) => StatusCode::NOT_FOUND,
        Some(Answer::Empty) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok(respond(status, page(Some(visit), &title, main)))
}

fn answer_box(answer: Answer) -> Markup {
    let (class, word, detail) = answer.words();
    html! {
        div.answer.(class) role="alert" {
            p.word { (word) }
            p { (detail) }
        }
    }
}
