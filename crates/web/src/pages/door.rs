//! The door: staff pick their event, then type, scan with the camera, or scan into the field
//! each ticket's code and get one loud answer: valid, already checked in, or not a ticket for
//! this event. The answer is announced at once (`role=alert`) and the field is ready for the
//! next code.
//!
//! The page works as a form, and `assets/door.js` makes it more: answers without reloading,
//! the camera (`BarcodeDetector`) where the browser has it, and an offline mode. For that the
//! page carries the event's check-in key (fetched here with the staff's token, which no script
//! can read): without a network, the script verifies each code's Ed25519 signature in the
//! browser, keeps the check-ins in `localStorage`, and posts them to this same form when the
//! network is back, showing any the server refused.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{Event, Page, PathId, catalog};
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
    if !visit.signed_in() {
        return Ok(Redirect::to(&login_then(&format!("/door/{event_id}"))).into_response());
    }
    let key = checkin_key(&web, &visit, &event_id).await?;
    door_page(&web, &visit, &event_id, None, key.as_ref()).await
}

/// `POST /door/{event}`: checks the code in and says what it was. The door's script posts here
/// too (and reads only the status), also to sync what was checked in offline.
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
    // No key here: a page that answers a post is for browsers without the script.
    door_page(&web, &visit, &event_id, Some(answer), None).await
}

/// The event's public key for its ticket codes, as the API gives it to door staff.
#[derive(Debug, Deserialize)]
struct CheckinKey {
    algorithm: String,
    public_key: String,
}

/// The key, or none for someone who is not the event's staff (the page says what they can do).
async fn checkin_key(web: &Web, visit: &Visit, event_id: &str) -> Result<Option<CheckinKey>, Failure> {
    match web.api.get(&visit.caller, format!("/v1/events/{event_id}/checkin-key")).json().await {
        Ok(key) => Ok(Some(key)),
        Err(ApiError::Problem(problem)) if problem.status == 403 => Ok(None),
        Err(error) => Err(visit.fail(error)),
    }
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
    /// Every answer, for the templates the script shows answers from.
    const ALL: [Answer; 5] = [Answer::Valid, Answer::Already, Answer::NotForThisEvent, Answer::NotStaff, Answer::Empty];

    /// The class that colours it (and names it for the script), the word that is read from
    /// across the room, and the detail.
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
                ("not-staff", "Not allowed", "Only the organization's owner, admins and door staff check tickets in.")
            }
            Answer::Empty => ("empty", "No code", "Type or scan the ticket's code."),
        }
    }
}

async fn door_page(
    web: &Web,
    visit: &Visit,
    event_id: &str,
    answer: Option<Answer>,
    key: Option<&CheckinKey>,
) -> Result<Response, Failure> {
    let (event, _) = catalog::event_data(web, visit, event_id).await?;
    let title = format!("Door: {}", event.title);
    let offline_key = key.filter(|k| k.algorithm == "Ed25519");
    let main = html! {
        h1 { (title) }
        div #answer role="alert" { @if let Some(answer) = answer { (answer_box(answer)) } }
        form.door method="post" action={ "/door/" (event.id) } data-event=(event.id)
            data-key=[offline_key.map(|k| &k.public_key)] {
            (csrf(visit))
            p {
                label for="code" { "Ticket code" }
                // The field is focused on every answer, so a scanner that types can go on.
                input #code name="code" type="text" autocomplete="off" autocapitalize="off" spellcheck="false" autofocus required;
            }
            button type="submit" { "Check in" }
        }
        section.camera aria-labelledby="camera-title" {
            h2 #camera-title { "Camera" }
            p #camera-note { "Type the code, or use a handheld scanner that types it into the field." }
            p hidden data-camera-controls { button.secondary type="button" #camera-toggle { "Scan with the camera" } }
            video #camera-view hidden muted playsinline aria-label="What the camera sees" {}
        }
        section.offline aria-labelledby="offline-title" {
            h2 #offline-title { "Offline" }
            @if offline_key.is_some() {
                p #network data-network { "Without a network, codes are checked on this device with the event's key, and sync when it is back." }
                p #pending aria-live="polite" data-pending { "No check-in is waiting to sync." }
                div #refused data-refused {}
            } @else {
                p { "Checking codes offline is for the organization's door staff." }
            }
        }
        // What the script shows, in the same words as the server; and, for a code it could
        // neither send nor check by itself, that it could not.
        @for answer in Answer::ALL {
            template data-answer=(answer.words().0) { (answer_box(answer)) }
        }
        template data-answer="unchecked" {
            div.answer.already { p.word { "Not checked" } p.detail { "Do not let them in yet." } }
        }
        p { a href="/door" { "Another event" } }
        script src="/static/door.js" defer {}
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
        div.answer.(class) {
            p.word { (word) }
            p.detail { (detail) }
        }
    }
}
