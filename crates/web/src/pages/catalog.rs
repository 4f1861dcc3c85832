//! The events, searchable, and an event's page: its ticket types with price and availability,
//! the form that holds tickets, and its waiting room when it has one.

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use maud::{Markup, html};
use serde::Deserialize;
use time::{Date, Time, format_description::well_known::Rfc3339, macros::format_description};

use super::{Event, Page, PathId, Place, Room};
use crate::{
    Web,
    api::ApiError,
    cache::{self, SHARED_EVENT_PAGE, Served},
    layout::{Failure, alert, countdown, csrf, login_then, money, page, percent, respond, when},
    session::{Visit, random_token},
};

#[derive(Debug, Default, Deserialize)]
pub struct Search {
    q: Option<String>,
    city: Option<String>,
    /// First and last day of the events' start, as a date field sends them (`2026-12-31`).
    from: Option<String>,
    to: Option<String>,
    page_token: Option<String>,
}

/// `/`: the events on sale, searched by words, city and dates.
pub async fn events(State(web): State<Web>, visit: Visit, Query(search): Query<Search>) -> Result<Response, Failure> {
    let field = |value: &Option<String>| value.as_deref().unwrap_or_default().trim().to_owned();
    let (q, city, from, to) = (field(&search.q), field(&search.city), field(&search.from), field(&search.to));
    let mut unreadable = Vec::new();
    let mut bound = |day: &str, label: &str, end_of_day: bool| match day_bound(day, end_of_day) {
        Some(bound) => bound,
        None if day.is_empty() => String::new(),
        None => {
            unreadable.push(label.to_owned());
            String::new()
        }
    };
    let (starts_from, starts_to) = (bound(&from, "From", false), bound(&to, "To", true));
    let page_token = field(&search.page_token);
    let mut query = vec![("page_size", "20")];
    for (name, value) in
        [("q", &q), ("city", &city), ("from", &starts_from), ("to", &starts_to), ("page_token", &page_token)]
    {
        if !value.is_empty() {
            query.push((name, value.as_str()));
        }
    }
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    let found: Page<Event> =
        web.api.get(&visit.caller, format!("/v1/events?{query}")).json().await.map_err(|e| visit.fail(e))?;
    let searched = [&q, &city, &starts_from, &starts_to].iter().any(|v| !v.is_empty());
    let main = html! {
        h1 { "Events" }
        form.search role="search" method="get" action="/" {
            p {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(q) placeholder="Artist, event, words";
            }
            p {
                label for="city" { "City" }
                input #city type="text" name="city" value=(city) autocomplete="address-level2";
            }
            p {
                label for="from" { "From" }
                input #from type="date" name="from" value=(from) aria-describedby="dates-hint";
            }
            p {
                label for="to" { "To" }
                input #to type="date" name="to" value=(to) aria-describedby="dates-hint";
            }
            button type="submit" { "Search" }
            p.hint #dates-hint { "Dates are the day the event starts, both included, in UTC like every time here." }
        }
        @if !unreadable.is_empty() {
            (alert(&format!("{} is not a date like 2026-12-31, so it was left out of the search.", unreadable.join(" and "))))
        }
        section aria-labelledby="results" {
            h2 #results { @if searched { "Results" } @else { "On sale now" } }
            @if found.items.is_empty() {
                p { "No event on sale matches that. Try fewer words, another city or other dates." }
            } @else {
                ul.events {
                    @for event in &found.items { li { (card(event)) } }
                }
            }
            @if let Some(token) = &found.next_page_token {
                @let more = [("q", &q), ("city", &city), ("from", &from), ("to", &to), ("page_token", token)];
                p { a href={ "/?" (serde_urlencoded::to_string(more).unwrap_or_default()) } { "More events" } }
            }
        }
    };
    Ok(respond(StatusCode::OK, page(Some(&visit), "Events", main)))
}

/// A day of a date field as the API's bound on `starts_at`: its first second for `from`, its
/// last for `to` (the API's bounds are inclusive), in UTC like every time on the pages.
fn day_bound(day: &str, end_of_day: bool) -> Option<String> {
    let date = Date::parse(day, format_description!("[year]-[month]-[day]")).ok()?;
    let time = if end_of_day { Time::from_hms(23, 59, 59).ok()? } else { Time::MIDNIGHT };
    date.with_time(time).assume_utc().format(&Rfc3339).ok()
}

fn card(event: &Event) -> Markup {
    let cheapest = event.ticket_types.iter().map(|t| &t.price).min_by_key(|p| p.amount_minor);
    let left: i64 = event.ticket_types.iter().map(|t| t.available).sum();
    html! {
        article.card {
            h3 { a href={ "/events/" (event.id) } { (event.title) } }
            p { (when(&event.starts_at)) " · " (event.venue.name) ", " (event.venue.city) }
            p {
                @if left == 0 { strong { "Sold out" } }
                @else if let Some(price) = cheapest { "From " (money(price)) }
            }
        }
    }
}

/// `/events/{id}`.
pub async fn event(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    event_page(&web, &visit, &event_id, None).await
}

/// The event's page data: an on-sale event's from the cache while it is fresh (`cache`).
pub async fn event_data(web: &Web, visit: &Visit, event_id: &str) -> Result<(Arc<Event>, Served), Failure> {
    let path = format!("/v1/events/{event_id}");
    // Read live: what is kept here is not to be kept by the API as well, which would make it
    // up to twice the TTL old.
    let load = async || web.api.get(&visit.caller, &path).live().json().await;
    web.events.get(event_id, load).await.map_err(|e| visit.fail(e))
}

/// The event's page, with `notice` (why the last try to hold failed) above the form.
pub async fn event_page(
    web: &Web,
    visit: &Visit,
    event_id: &str,
    notice: Option<(StatusCode, String)>,
) -> Result<Response, Failure> {
    let (event, served) = event_data(web, visit, event_id).await?;
    // A visitor who is not signed in sees what every other one sees: the page may be kept for
    // as long as its data is, by the browser and by a shared cache in front (for cookie-less
    // visitors; `Vary` keeps one visitor's page from another). Everything else is `no-store`.
    let shared = notice.is_none() && !visit.signed_in() && event.status == "on_sale";
    let room = room(web, visit, event_id).await?;
    let place = match &room {
        Some(_) if visit.signed_in() => place(web, visit, event_id).await?,
        _ => None,
    };
    let admitted = place.as_ref().and_then(|p| p.admission.as_ref()).filter(|_| place_is(&place, "admitted"));
    let (status, notice) = match notice {
        Some((status, words)) => (status, Some(words)),
        None => (StatusCode::OK, None),
    };
    let main = html! {
        article.event {
            h1 { (event.title) }
            p.when { (when(&event.starts_at)) }
            p { (event.venue.name) ", " (event.venue.city) }
            p { (event.description) }
        }
        @if let Some(words) = notice { (alert(&words)) }
        @if let Some(room) = &room {
            @if let Some(admission) = admitted {
                p.notice {
                    "It's your turn: choose your tickets within "
                    (countdown(&admission.expires_at, "Your turn ends in"))
                }
                (tickets(visit, &event, true))
            } @else {
                (room_section(visit, &event, room, place.as_ref()))
                (tickets(visit, &event, false))
            }
        } @else {
            (tickets(visit, &event, visit.signed_in()))
        }
    };
    let mut response = respond(status, page(Some(visit), &event.title, main));
    let headers = response.headers_mut();
    headers.insert("server-timing", HeaderValue::from_static(cache::server_timing(served)));
    if shared {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(SHARED_EVENT_PAGE));
        headers.insert(header::VARY, HeaderValue::from_static("cookie"));
    }
    Ok(response)
}

fn place_is(place: &Option<Place>, status: &str) -> bool {
    place.as_ref().is_some_and(|p| p.status == status)
}

/// The ticket types; with `buy`, as a form that holds the quantities chosen.
fn tickets(visit: &Visit, event: &Event, buy: bool) -> Markup {
    let table = html! {
        table.tickets {
            caption { "Tickets" }
            thead { tr { th scope="col" { "Ticket" } th scope="col" { "Price" } th scope="col" { "Availability" } @if buy { th scope="col" { "Quantity" } } } }
            tbody {
                @for ticket_type in &event.ticket_types {
                    tr {
                        th scope="row" { (ticket_type.name) }
                        td { (money(&ticket_type.price)) }
                        td { @if ticket_type.available > 0 { (ticket_type.available) " left" } @else { strong { "Sold out" } } }
                        @if buy {
                            td {
                                @let field = format!("qty-{}", ticket_type.id);
                                label.visually-hidden for=(field) { "Quantity of " (ticket_type.name) }
                                input id=(field) name=(field) type="number" inputmode="numeric" min="0" value="0"
                                    max=(ticket_type.available.min(event.max_tickets_per_order))
                                    disabled[ticket_type.available == 0];
                            }
                        }
                    }
                }
            }
        }
    };
    html! {
        @if buy {
            form.buy method="post" action={ "/events/" (event.id) "/hold" } {
                (csrf(visit))
                // A fresh key per page: sending the form twice holds once.
                input type="hidden" name="key" value=(random_token());
                (table)
                p.hint { "At most " (event.max_tickets_per_order) " tickets per order. They are held for you while you pay." }
                button type="submit" { "Hold tickets" }
            }
        } @else {
            (table)
            @if !visit.signed_in() {
                p {
                    a href=(login_then(&format!("/events/{}", event.id))) { "Log in" } " or "
                    a href={ "/register?next=" (percent(&format!("/events/{}", event.id))) } { "register" }
                    " to buy tickets."
                }
            }
        }
    }
}

fn room_section(visit: &Visit, event: &Event, room: &Room, place: Option<&Place>) -> Markup {
    html! {
        section.room aria-labelledby="room" {
            h2 #room { "Waiting room" }
            @match room.status.as_str() {
                "scheduled" => p {
                    "The sale opens " (when(&room.opens_at)) ", in " (countdown(&room.opens_at, "The sale opens in")) ". "
                    "Join the queue before then: everyone who joined early gets a place drawn at random, so there is no need to rush."
                },
                "sold_out" => p { "Everything is sold or held right now. If held tickets come back, the queue moves again." },
                _ => p { "The sale is open and buyers are let in turn by turn. Join the queue to get your place." },
            }
            @if !visit.signed_in() {
                p { a href=(login_then(&format!("/events/{}", event.id))) { "Log in" } " to join the queue." }
            } @else if place.is_some_and(|p| p.status == "waiting" || p.status == "sold_out") {
                p { a href={ "/events/" (event.id) "/queue" } { "See your place in the queue" } }
            } @else {
                // The waiting room's own page joins, and follows the opening by itself.
                p { a.button href={ "/events/" (event.id) "/queue" } { "Go to the waiting room" } }
            }
        }
    }
}

/// The event's waiting room, if it has one.
pub async fn room(web: &Web, visit: &Visit, event_id: &str) -> Result<Option<Room>, Failure> {
    absent_if_404(web.api.get(&visit.caller, format!("/v1/events/{event_id}/waiting-room")).json().await, visit)
}

/// The visitor's place in the event's waiting room, if they joined.
pub async fn place(web: &Web, visit: &Visit, event_id: &str) -> Result<Option<Place>, Failure> {
    absent_if_404(web.api.get(&visit.caller, format!("/v1/events/{event_id}/queue")).json().await, visit)
}

fn absent_if_404<T>(answer: Result<T, ApiError>, visit: &Visit) -> Result<Option<T>, Failure> {
    match answer {
        Ok(found) => Ok(Some(found)),
        Err(ApiError::Problem(problem)) if problem.status == 404 => Ok(None),
        Err(error) => Err(visit.fail(error)),
    }
}
