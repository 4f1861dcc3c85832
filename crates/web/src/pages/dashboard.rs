//! The organizer's live dashboard of an event: tickets sold, held and left, revenue, paid
//! orders, check-ins, per ticket type, and sales per minute as a chart; and, when the event has
//! a waiting room, its queue, how many it admits a minute and how many admissions ran out unused. The figures are
//! rendered here; the page's script listens to the API's live stream (Server-Sent Events,
//! passed through from `/v1/events/{id}/analytics/stream`) and, at each update, swaps in the
//! freshly rendered figures: server push, no page reload, one place that draws them.

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Event, Money, PathId};
use crate::{
    Web,
    layout::{Failure, money, page, respond, when},
    session::Visit,
};

/// How many minutes the chart shows, the latest last.
const CHART_MINUTES: usize = 30;

#[derive(Debug, Deserialize)]
struct Figures {
    tickets_sold: i64,
    tickets_held: i64,
    tickets_available: i64,
    revenue: Money,
    orders_paid: i64,
    checkins: i64,
    by_ticket_type: Vec<TypeFigures>,
    sales_per_minute: Vec<Minute>,
    as_of: String,
    /// `null` (absent) when the event has no waiting room.
    waiting_room: Option<Room>,
}

/// The event's waiting room, as analytics serves it.
#[derive(Debug, Deserialize)]
struct Room {
    status: String,
    queued: i64,
    admitted: i64,
    admitted_per_minute: i64,
    expired: i64,
}

#[derive(Debug, Deserialize)]
struct TypeFigures {
    name: String,
    sold: i64,
    held: i64,
    available: i64,
    revenue: Money,
    checkins: i64,
}

#[derive(Debug, Deserialize)]
struct Minute {
    minute: String,
    tickets: i64,
}

/// `/manage/events/{id}`.
pub async fn show(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    let event: Event =
        web.api.get(&visit.caller, format!("/v1/events/{event_id}")).json().await.map_err(|e| visit.fail(e))?;
    let figures = figures_of(&web, &visit, &event_id).await?;
    let title = format!("Live: {}", event.title);
    let main = html! {
        h1 { (title) }
        p { (when(&event.starts_at)) " · " (event.venue.name) ", " (event.venue.city) }
        section #figures data-live={ "/manage/events/" (event_id) "/live" } data-figures={ "/manage/events/" (event_id) "/figures" } {
            (figures_fragment(&figures))
        }
        p { a href={ "/door/" (event_id) } { "Check tickets in at the door" } }
    };
    Ok(respond(StatusCode::OK, page(Some(&visit), &title, main)))
}

/// `/manage/events/{id}/figures`: the figures alone, for the page's script.
pub async fn figures(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    let figures = figures_of(&web, &visit, &event_id).await?;
    Ok(respond(StatusCode::OK, figures_fragment(&figures)))
}

/// `/manage/events/{id}/live`: the API's live stream, passed through as it comes.
pub async fn live(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    let mut stream = web
        .api
        .get(&visit.caller, format!("/v1/events/{event_id}/analytics/stream"))
        .stream()
        .await
        .map_err(|e| visit.fail(e))?;
    // Proxies between the browser and the gateway must not hold events back.
    stream.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    stream.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(stream)
}

async fn figures_of(web: &Web, visit: &Visit, event_id: &str) -> Result<Figures, Failure> {
    web.api.get(&visit.caller, format!("/v1/events/{event_id}/analytics")).json().await.map_err(|e| visit.fail(e))
}

fn figures_fragment(figures: &Figures) -> Markup {
    html! {
        dl.figures {
            div { dt { "Sold" } dd data-figure="tickets_sold" { (figures.tickets_sold) } }
            div { dt { "Held" } dd data-figure="tickets_held" { (figures.tickets_held) } }
            div { dt { "Left" } dd data-figure="tickets_available" { (figures.tickets_available) } }
            div { dt { "Revenue" } dd data-figure="revenue" { (money(&figures.revenue)) } }
            div { dt { "Paid orders" } dd data-figure="orders_paid" { (figures.orders_paid) } }
            div { dt { "Checked in" } dd data-figure="checkins" { (figures.checkins) } }
        }
        @if let Some(room) = &figures.waiting_room {
            (waiting_room(room))
        }
        (chart(&figures.sales_per_minute))
        table {
            caption { "By ticket type" }
            thead { tr { th scope="col" { "Ticket" } th scope="col" { "Sold" } th scope="col" { "Held" } th scope="col" { "Left" } th scope="col" { "Revenue" } th scope="col" { "Checked in" } } }
            tbody {
                @for t in &figures.by_ticket_type {
                    tr { th scope="row" { (t.name) } td { (t.sold) } td { (t.held) } td { (t.available) } td { (money(&t.revenue)) } td { (t.checkins) } }
                }
            }
        }
        p.hint { "As of " (when(&figures.as_of)) "; updates by itself." }
    }
}

/// The waiting room's figures, beside the sale's.
fn waiting_room(room: &Room) -> Markup {
    let status = match room.status.as_str() {
        "scheduled" => "not open yet",
        "sold_out" => "sold out: the queue is told",
        _ => "open",
    };
    html! {
        section.waiting-room aria-labelledby="waiting-room" {
            h2 #waiting-room { "Waiting room: " span data-figure="waiting_room_status" { (status) } }
            dl.figures {
                div { dt { "In the queue" } dd data-figure="waiting_room_queued" { (room.queued) } }
                div { dt { "Admitted in the last minute" } dd data-figure="waiting_room_admitted_per_minute" { (room.admitted_per_minute) } }
                div { dt { "Admitted in all" } dd data-figure="waiting_room_admitted" { (room.admitted) } }
                div { dt { "Admissions expired unused" } dd data-figure="waiting_room_expired" { (room.expired) } }
            }
        }
    }
}

/// Tickets sold per minute, the last minutes with sales, as bars; the label says it in words.
fn chart(minutes: &[Minute]) -> Markup {
    let shown = &minutes[minutes.len().saturating_sub(CHART_MINUTES)..];
    let highest = shown.iter().map(|m| m.tickets).max().unwrap_or(0).max(1);
    let total: i64 = shown.iter().map(|m| m.tickets).sum();
    let label = match shown.first() {
        Some(first) => format!("Tickets sold per minute since {}: {total} in all", when(&first.minute)),
        None => "No sales yet".to_owned(),
    };
    html! {
        figure.chart {
            svg role="img" aria-label=(label) viewBox={ "0 0 " (CHART_MINUTES * 10) " 100" } preserveAspectRatio="none" {
                @for (n, minute) in shown.iter().enumerate() {
                    @let height = minute.tickets * 100 / highest;
                    rect x=(n * 10 + 1) y=(100 - height) width="8" height=(height) {}
                }
            }
            figcaption { (label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(waiting_room: &str) -> Figures {
        let json = format!(
            r#"{{"tickets_sold": 1, "tickets_held": 0, "tickets_available": 9,
                "revenue": {{"amount_minor": 2000, "currency": "EUR"}}, "orders_paid": 1, "checkins": 0,
                "by_ticket_type": [], "sales_per_minute": [], "as_of": "2027-05-01T12:00:00Z",
                "waiting_room": {waiting_room}}}"#
        );
        serde_json::from_str(&json).expect("the API's figures")
    }

    #[test]
    fn the_waiting_room_is_shown_only_for_an_event_that_has_one() {
        let room = r#"{"status": "open", "queued": 420, "admitted": 180, "admitted_per_minute": 60,
                       "expired": 7, "opened_at": "2027-05-01T12:00:00Z", "early_arrivals": 300}"#;
        let shown = figures_fragment(&figures(room)).into_string();
        for expected in [
            r#"data-figure="waiting_room_queued">420<"#,
            r#"data-figure="waiting_room_admitted_per_minute">60<"#,
            r#"data-figure="waiting_room_expired">7<"#,
            r#"data-figure="waiting_room_status">open<"#,
        ] {
            assert!(shown.contains(expected), "{expected} in {shown}");
        }
        let without = figures_fragment(&figures("null")).into_string();
        assert!(!without.contains("Waiting room"), "{without}");
    }
}
