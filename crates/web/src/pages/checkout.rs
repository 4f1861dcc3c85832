//! Checkout: the quantities chosen on an event's page are held as an order, the order's page
//! counts the hold down and takes the card, and says in words what a decline, a sold-out type
//! or an expired hold means. Each form carries a fresh idempotency key, so a double click holds
//! or charges once, and a new try after a decline is a new payment.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde_json::json;

use super::{Order, PathId, catalog, mine};
use crate::{
    Web,
    api::{ApiError, Problem},
    layout::{Failure, alert, countdown, csrf, login_then, money, page, respond, when},
    session::{Fields, Visit, random_token},
};

/// `POST /events/{id}/hold`: holds the chosen quantities as an order awaiting payment.
pub async fn hold(
    State(web): State<Web>,
    visit: Visit,
    PathId(event_id): PathId,
    fields: Fields,
) -> Result<Response, Failure> {
    if !visit.signed_in() {
        return Ok(Redirect::to(&login_then(&format!("/events/{event_id}"))).into_response());
    }
    let mut items = Vec::new();
    for (name, value) in &fields.0 {
        let Some(ticket_type_id) = name.strip_prefix("qty-") else { continue };
        match value.trim().parse::<i64>() {
            Ok(0) => {}
            Ok(quantity) if quantity > 0 => {
                items.push(json!({ "ticket_type_id": ticket_type_id, "quantity": quantity }))
            }
            _ => return again(&web, &visit, &event_id, "Quantities are whole numbers, like 2.").await,
        }
    }
    if items.is_empty() {
        return again(&web, &visit, &event_id, "Choose how many tickets you want first.").await;
    }
    let key = match fields.get("key") {
        "" => random_token(),
        key => key.to_owned(),
    };
    let mut call = web
        .api
        .post(&visit.caller, "/v1/orders", json!({ "event_id": event_id, "items": items }))
        .header("idempotency-key", key);
    if catalog::room(&web, &visit, &event_id).await?.is_some() {
        match catalog::place(&web, &visit, &event_id).await?.and_then(|place| place.admission) {
            Some(admission) => call = call.header("admission-token", admission.token),
            None => return Ok(Redirect::to(&format!("/events/{event_id}/queue")).into_response()),
        }
    }
    match call.json::<Order>().await {
        Ok(order) => Ok(Redirect::to(&format!("/orders/{}", order.id)).into_response()),
        Err(ApiError::Problem(problem)) => {
            let words = match problem.kind() {
                "sold-out" => "Sorry: there are not that many of those tickets left any more. The availability below is up to date; choose again.".to_owned(),
                "admission-required" => return Ok(Redirect::to(&format!("/events/{event_id}/queue")).into_response()),
                "idempotency-key-reused" => "That form was already sent with other quantities. Choose again here.".to_owned(),
                "validation" | "conflict" => format!("Those tickets can't be ordered: {}", reasons(&problem)),
                _ => return Err(visit.fail(ApiError::Problem(problem))),
            };
            catalog::event_page(&web, &visit, &event_id, Some((StatusCode::CONFLICT, words))).await
        }
        Err(error) => Err(visit.fail(error)),
    }
}

async fn again(web: &Web, visit: &Visit, event_id: &str, words: &str) -> Result<Response, Failure> {
    catalog::event_page(web, visit, event_id, Some((StatusCode::UNPROCESSABLE_ENTITY, words.to_owned()))).await
}

/// The API's own reasons, for a refusal the page has no better words for.
fn reasons(problem: &Problem) -> String {
    let fields = problem.field_messages();
    if fields.is_empty() { problem.detail.clone() } else { fields.join("; ") }
}

/// `/orders/{id}`: pay while held, then the tickets.
pub async fn order(State(web): State<Web>, visit: Visit, PathId(order_id): PathId) -> Result<Response, Failure> {
    order_page(&web, &visit, &order_id, None).await
}

async fn order_page(
    web: &Web,
    visit: &Visit,
    order_id: &str,
    notice: Option<(StatusCode, &str)>,
) -> Result<Response, Failure> {
    let order: Order =
        web.api.get(&visit.caller, format!("/v1/orders/{order_id}")).json().await.map_err(|e| visit.fail(e))?;
    let (status, notice) = notice.map_or((StatusCode::OK, None), |(status, words)| (status, Some(words)));
    let title = match order.status.as_str() {
        "pending_payment" => "Checkout",
        "paid" => "Your tickets",
        _ => "Your order",
    };
    let main = html! {
        h1 { (title) }
        @if let Some(words) = notice { (alert(words)) }
        (summary(&order))
        @match order.status.as_str() {
            "pending_payment" => (payment(visit, &order)),
            "paid" => (paid(visit, &order)),
            "expired" => p { "The hold ran out before the payment, so these tickets went back on sale. Nothing was charged. " a href={ "/events/" (order.event_id) } { "Choose tickets again" } },
            "cancelled" => p { "You released these tickets; nothing was charged. " a href={ "/events/" (order.event_id) } { "Back to the event" } },
            "refunded" => p { "This order was refunded and its tickets are void." },
            other => p { "This order is " (other) "." },
        }
    };
    Ok(respond(status, page(Some(visit), title, main)))
}

fn summary(order: &Order) -> Markup {
    html! {
        table.summary {
            caption { "Order of " (when(&order.created_at)) }
            thead { tr { th scope="col" { "Ticket" } th scope="col" { "Quantity" } th scope="col" { "Subtotal" } } }
            tbody {
                @for item in &order.items {
                    tr { th scope="row" { (item.name) } td { (item.quantity) } td { (money(&item.subtotal)) } }
                }
            }
            tfoot { tr { th scope="row" colspan="2" { "Total" } td { (money(&order.total)) } } }
        }
    }
}

fn payment(visit: &Visit, order: &Order) -> Markup {
    html! {
        p.notice { "Your tickets are held for you for " (countdown(&order.expires_at, "Your hold ends in")) "." }
        form.card method="post" action={ "/orders/" (order.id) "/pay" } {
            (csrf(visit))
            // A fresh key per page: a double click charges once, a new card after a decline is a new try.
            input type="hidden" name="key" value=(random_token());
            fieldset {
                legend { "Card" }
                p {
                    label for="number" { "Card number" }
                    input #number name="number" type="text" inputmode="numeric" autocomplete="cc-number" required;
                }
                div.row {
                    p {
                        label for="exp_month" { "Expiry month" }
                        input #exp_month name="exp_month" type="text" inputmode="numeric" autocomplete="cc-exp-month" placeholder="MM" required;
                    }
                    p {
                        label for="exp_year" { "Expiry year" }
                        input #exp_year name="exp_year" type="text" inputmode="numeric" autocomplete="cc-exp-year" placeholder="YYYY" required;
                    }
                    p {
                        label for="cvc" { "Security code" }
                        input #cvc name="cvc" type="text" inputmode="numeric" autocomplete="cc-csc" required;
                    }
                }
            }
            button type="submit" { "Pay " (money(&order.total)) }
        }
        (cancel_form(visit, order, "Release these tickets"))
    }
}

fn cancel_form(visit: &Visit, order: &Order, label: &str) -> Markup {
    html! {
        form.cancel method="post" action={ "/orders/" (order.id) "/cancel" } {
            (csrf(visit))
            button.secondary type="submit" { (label) }
        }
    }
}

fn paid(visit: &Visit, order: &Order) -> Markup {
    html! {
        p.notice { "Paid. The confirmation, with your tickets, is on its way to your email." }
        @if order.tickets.is_empty() {
            // Tickets are issued just after the payment (API.md: within seconds): the script
            // reloads until they are here.
            p aria-live="polite" data-reload-after="2" { "Your tickets are being issued…" }
        } @else {
            (mine::ticket_list(&order.tickets, None))
            p { a href="/my/tickets" { "All my tickets" } }
        }
        (cancel_form(visit, order, "Cancel and refund"))
    }
}

/// `POST /orders/{id}/pay`.
pub async fn pay(
    State(web): State<Web>,
    visit: Visit,
    PathId(order_id): PathId,
    fields: Fields,
) -> Result<Response, Failure> {
    let number: String = fields.get("number").chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let (Ok(exp_month), Ok(exp_year)) = (fields.get("exp_month").parse::<i64>(), fields.get("exp_year").parse::<i64>())
    else {
        let words = "The expiry month and year are numbers, like 12 and 2030.";
        return order_page(&web, &visit, &order_id, Some((StatusCode::UNPROCESSABLE_ENTITY, words))).await;
    };
    let card = json!({ "number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": fields.get("cvc") });
    let key = match fields.get("key") {
        "" => random_token(),
        key => key.to_owned(),
    };
    let answer = web
        .api
        .post(&visit.caller, format!("/v1/orders/{order_id}/payment"), json!({ "card": card }))
        .header("idempotency-key", key)
        .done()
        .await;
    let problem = match answer {
        Ok(()) => return Ok(Redirect::to(&format!("/orders/{order_id}")).into_response()),
        Err(ApiError::Problem(problem)) => problem,
        Err(error) => return Err(visit.fail(error)),
    };
    let words = match problem.kind() {
        "payment-declined" if problem.detail.contains("insufficient") => {
            "Your card was declined: not enough funds. Nothing was charged, and your tickets are still held: try another card."
        }
        "payment-declined" => {
            "Your card was declined. Nothing was charged, and your tickets are still held: try another card."
        }
        "hold-expired" => {
            "Your hold ran out before the payment, so the tickets went back on sale. Nothing was charged."
        }
        "conflict" => "This order is already paid or cancelled, so nothing was charged.",
        "validation" | "idempotency-key-reused" => {
            "Check the card details: the number, the expiry month and year, and the 3 or 4 digit security code."
        }
        _ => return Err(visit.fail(ApiError::Problem(problem))),
    };
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::CONFLICT);
    order_page(&web, &visit, &order_id, Some((status, words))).await
}

/// `POST /orders/{id}/cancel`: releases a hold, or refunds a paid order before the event.
pub async fn cancel(State(web): State<Web>, visit: Visit, PathId(order_id): PathId) -> Result<Response, Failure> {
    match web.api.post(&visit.caller, format!("/v1/orders/{order_id}/cancel"), json!({})).done().await {
        Ok(()) => Ok(Redirect::to(&format!("/orders/{order_id}")).into_response()),
        Err(ApiError::Problem(problem)) if problem.kind() == "conflict" => {
            let words = "This order can't be cancelled any more: the event has started, or it was already settled.";
            order_page(&web, &visit, &order_id, Some((StatusCode::CONFLICT, words))).await
        }
        Err(error) => Err(visit.fail(error)),
    }
}
