//! An event's waiting room: join, then watch the place move. The page's script fetches the
//! place again as often as the API's `poll_after_secs` says and swaps it into a live region, so
//! a screen reader hears the position change; once admitted, the event's page sells with the
//! admission (the server reads the token from the place itself, so it never sits in the page).

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{PathId, Place, Room, catalog, no_such_page};
use crate::{
    Web,
    layout::{Failure, countdown, csrf, login_then, page, respond, when},
    session::Visit,
};

/// How soon to look again when the API gives no hint.
const DEFAULT_POLL_SECS: i64 = 5;

/// `/events/{id}/queue`.
async fn queue_page(web: &Web, visit: &Visit, event_id: &str) -> Result<Response, Failure> {
    if !visit.signed_in() {
        return Ok(Redirect::to(&login_then(&format!("/events/{event_id}/queue"))).into_response());
    }
    let (event, _) = catalog::event_data(web, visit, event_id).await?;
    let Some(room) = catalog::room(web, visit, event_id).await? else {
        return Ok(Redirect::to(&format!("/events/{event_id}")).into_response());
    };
    let place = catalog::place(web, visit, event_id).await?;
    let title = format!("Waiting room: {}", event.title);
    let main = html! {
        h1 { (title) }
        p {
            @if room.status == "scheduled" { "The sale opens " } @else { "The sale opened " }
            (when(&room.opens_at)) ". Keep this page open: it follows your place by itself."
        }
        section #place aria-live="polite" aria-atomic="true" data-poll={ "/events/" (event_id) "/queue/place" } {
            (place_fragment(visit, event_id, &room, place.as_ref()))
        }
        p { a href={ "/events/" (event_id) } { "Back to the event" } }
    };
    Ok(respond(StatusCode::OK, page(Some(visit), &title, main)))
}

pub async fn show(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    queue_page(&web, &visit, &event_id).await
}

/// `GET /events/{id}/queue/place`: the place alone, for the page's script.
pub async fn place(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    if !visit.signed_in() {
        // The script reloads the whole page, which goes to the login.
        return Ok(StatusCode::UNAUTHORIZED.into_response());
    }
    let Some(room) = catalog::room(&web, &visit, &event_id).await? else { return Ok(no_such_page()) };
    let place = catalog::place(&web, &visit, &event_id).await?;
    Ok(respond(StatusCode::OK, place_fragment(&visit, &event_id, &room, place.as_ref())))
}

/// `POST /events/{id}/queue`: joins (joining again keeps the place).
pub async fn join(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    if !visit.signed_in() {
        return Ok(Redirect::to(&login_then(&format!("/events/{event_id}"))).into_response());
    }
    web.api
        .post(&visit.caller, format!("/v1/events/{event_id}/queue"), serde_json::json!({}))
        .done()
        .await
        .map_err(|e| visit.fail(e))?;
    Ok(Redirect::to(&format!("/events/{event_id}/queue")).into_response())
}

/// The place in words. `data-poll-after` tells the script when to look again; a place that
/// will not change by itself (admitted, expired, not joined) has none.
fn place_fragment(visit: &Visit, event_id: &str, room: &Room, place: Option<&Place>) -> Markup {
    let Some(place) = place else {
        return html! {
            @if room.status == "scheduled" {
                // Looked at again when the sale opens, so the page says so by itself.
                div.place data-status="not_joined" data-poll-after=(secs_until(&room.opens_at).clamp(1, 60)) {
                    p {
                        "You are not in the queue yet. The sale opens in " (countdown(&room.opens_at, "The sale opens in")) ". "
                        "Everyone who joins before then gets a place drawn at random, so there is no need to rush."
                    }
                    (join_form(visit, event_id, "Join the waiting room"))
                }
            } @else {
                div.place data-status="not_joined" {
                    p { "The sale is open: join the queue to get your place. Buyers are let in turn by turn." }
                    (join_form(visit, event_id, "Join the waiting room"))
                }
            }
        };
    };
    let poll = place.poll_after_secs.unwrap_or(DEFAULT_POLL_SECS).max(1);
    match (place.status.as_str(), &place.admission) {
        ("admitted", Some(admission)) => html! {
            div.place.turn data-status="admitted" {
                h2 { "It's your turn!" }
                p { "Choose your tickets within " (countdown(&admission.expires_at, "Your turn ends in")) "." }
                p { a.button href={ "/events/" (event_id) } { "Choose your tickets" } }
            }
        },
        ("expired", _) => html! {
            div.place data-status="expired" {
                p { "Your turn passed without an order. Join again to queue at the back." }
                (join_form(visit, event_id, "Join again"))
            }
        },
        ("sold_out", _) => html! {
            div.place data-status="sold_out" data-poll-after=(poll) {
                p { strong { "Sold out for now." } " Everything is sold or held. If held tickets come back, the queue moves again: keep this page open." }
            }
        },
        _ => html! {
            div.place data-status="waiting" data-poll-after=(poll) {
                @match (place.position, place.ahead) {
                    (Some(position), Some(ahead)) => {
                        p.position { "Your place in the queue: " strong { (position) } }
                        p { (people_ahead(ahead)) }
                        @if let Some(wait) = place.estimated_wait_secs { p { "Estimated wait: " (wait_in_words(wait)) "." } }
                    },
                    _ => p {
                        "You're in. When the sale opens " (countdown(&room.opens_at, "The sale opens in"))
                        ", everyone who joined before then gets a place drawn at random."
                    },
                }
            }
        },
    }
}

fn join_form(visit: &Visit, event_id: &str, label: &str) -> Markup {
    html! {
        form method="post" action={ "/events/" (event_id) "/queue" } {
            (csrf(visit))
            button type="submit" { (label) }
        }
    }
}

/// Seconds from now until an RFC 3339 time (0 once it has passed, or if it does not parse).
fn secs_until(rfc3339: &str) -> i64 {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .map(|t| (t - OffsetDateTime::now_utc()).whole_seconds().max(0))
        .unwrap_or(0)
}

fn people_ahead(ahead: i64) -> String {
    match ahead {
        0 => "Nobody is ahead of you: you're next.".into(),
        1 => "1 person is ahead of you.".into(),
        n => format!("{n} people are ahead of you."),
    }
}

fn wait_in_words(secs: i64) -> String {
    match secs {
        ..=59 => "less than a minute".into(),
        60..=119 => "about a minute".into(),
        _ => format!("about {} minutes", (secs + 30) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_in_words() {
        assert_eq!(wait_in_words(10), "less than a minute");
        assert_eq!(wait_in_words(90), "about a minute");
        assert_eq!(wait_in_words(600), "about 10 minutes");
        assert_eq!(people_ahead(0), "Nobody is ahead of you: you're next.");
        assert_eq!(people_ahead(3), "3 people are ahead of you.");
    }
}
