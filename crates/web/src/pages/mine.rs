//! The buyer's own: their orders, and their tickets with the QR codes door staff scan.

use std::collections::HashMap;

use axum::{extract::State, http::StatusCode, response::Response};
use maud::{Markup, html};

use super::{Event, Order, Page, Ticket};
use crate::{
    Web,
    api::ApiError,
    layout::{Failure, money, page, respond, trusted_svg, when},
    qr,
    session::Visit,
};

/// `/my/orders`, newest first.
pub async fn orders(State(web): State<Web>, visit: Visit) -> Result<Response, Failure> {
    let orders: Page<Order> =
        web.api.get(&visit.caller, "/v1/me/orders?page_size=50").json().await.map_err(|e| visit.fail(e))?;
    let titles = titles(&web, &visit, orders.items.iter().map(|o| o.event_id.as_str())).await?;
    let main = html! {
        h1 { "My orders" }
        @if orders.items.is_empty() {
            p { "No orders yet. " a href="/" { "Find an event" } }
        } @else {
            ul.orders {
                @for order in &orders.items {
                    li {
                        article.card {
                            h2 { a href={ "/orders/" (order.id) } { (title(&titles, &order.event_id)) } }
                            p { (when(&order.created_at)) " · " (money(&order.total)) " · " strong { (order_status(&order.status)) } }
                        }
                    }
                }
            }
        }
    };
    Ok(respond(StatusCode::OK, page(Some(&visit), "My orders", main)))
}

/// `/my/tickets`: every ticket with its QR code, grouped by event.
pub async fn tickets(State(web): State<Web>, visit: Visit) -> Result<Response, Failure> {
    let tickets: Page<Ticket> =
        web.api.get(&visit.caller, "/v1/me/tickets?page_size=100").json().await.map_err(|e| visit.fail(e))?;
    let titles = titles(&web, &visit, tickets.items.iter().map(|t| t.event_id.as_str())).await?;
    let main = html! {
        h1 { "My tickets" }
        @if tickets.items.is_empty() {
            p { "No tickets yet. " a href="/" { "Find an event" } }
        } @else {
            (ticket_list(&tickets.items, Some(&titles)))
        }
    };
    Ok(respond(StatusCode::OK, page(Some(&visit), "My tickets", main)))
}

/// Tickets as cards with their QR codes; with `titles`, each names its event.
pub fn ticket_list(tickets: &[Ticket], titles: Option<&HashMap<String, String>>) -> Markup {
    html! {
        ul.tickets {
            @for (n, ticket) in tickets.iter().enumerate() {
                li {
                    article.ticket aria-labelledby={ "ticket-" (n) } {
                        h2 #{ "ticket-" (n) } {
                            @if let Some(titles) = titles { (title(titles, &ticket.event_id)) ": " }
                            (ticket.ticket_type_name)
                        }
                        p.status { (ticket_status(&ticket.status)) }
                        @if ticket.status != "void" {
                            @if let Some(svg) = qr::svg(&ticket.code, &format!("QR code of ticket {}", ticket.id)) {
                                (trusted_svg(svg))
                            }
                        }
                        details { summary { "Ticket code" } p.code { (ticket.code) } }
                    }
                }
            }
        }
    }
}

/// The titles of the events named, each asked for once; an event no longer shown keeps no title.
async fn titles<'a>(
    web: &Web,
    visit: &Visit,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, String>, Failure> {
    let mut titles = HashMap::new();
    for id in ids {
        if titles.contains_key(id) {
            continue;
        }
        match web.api.get(&visit.caller, format!("/v1/events/{id}")).json::<Event>().await {
            Ok(event) => titles.insert(id.to_owned(), event.title),
            Err(ApiError::Problem(problem)) if problem.status == 404 => titles.insert(id.to_owned(), String::new()),
            Err(error) => return Err(visit.fail(error)),
        };
    }
    Ok(titles)
}

fn title<'a>(titles: &'a HashMap<String, String>, event_id: &str) -> &'a str {
    titles.get(event_id).map(String::as_str).filter(|t| !t.is_empty()).unwrap_or("An event")
}

fn order_status(status: &str) -> &str {
    match status {
        "pending_payment" => "awaiting payment",
        "paid" => "paid",
        "expired" => "hold expired",
        "cancelled" => "cancelled",
        "refunded" => "refunded",
        other => other,
    }
}

fn ticket_status(status: &str) -> &str {
    match status {
        "valid" => "Valid",
        "checked_in" => "Checked in",
        "void" => "Void: refunded or cancelled",
        other => other,
    }
}
