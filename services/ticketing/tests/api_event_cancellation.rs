//! A cancelled event sells nothing once the organizer is told it is cancelled (issue 16):
//! catalog closes the event's sales in ticketing before it commits the cancellation, so an
//! order or a payment right after the answer is refused — not only once the domain event has
//! travelled. If ticketing cannot be reached, the cancel changes nothing and says to retry; a
//! crash between closing the sales and committing leaves the sales closed and the cancel
//! repeatable. On both backends.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use eventhive_proto::ticketing::{CloseSalesRequest, ticketing_client::TicketingClient};
use eventhive_test_support::{
    Backend, Session, TestApp,
    api::{Sale, cards},
    assert_problem, on_both_backends,
};
use serde_json::{Value, json};

on_both_backends!(
    an_order_right_after_the_cancel_is_refused_every_time,
    a_pending_order_is_never_charged_once_its_event_is_cancelled,
    with_ticketing_unreachable_the_cancel_is_503_and_changes_nothing,
    a_crash_between_closing_sales_and_committing_leaves_sales_closed_and_the_cancel_repeatable,
    refunds_through_a_slow_payments_service_do_not_keep_other_holds_past_their_time,
);

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

async fn cancel(app: &TestApp, organizer: &Session, event_id: &str) -> reqwest::Response {
    app.post(&format!("/v1/events/{event_id}/cancel"), Some(organizer), &json!({"reason": "the band split up"})).await
}

/// A new on-sale event of `organizer`'s organization with one ticket type of 100.
async fn sale_of(app: &TestApp, organizer: &Session, organization: &str) -> Sale {
    let event = app.create_event(organizer, &app.event_body(organization)).await;
    let event_id = id(&event);
    let ticket_type = app.add_ticket_type(organizer, &event_id, "General Admission", 4500, 100).await;
    app.publish(organizer, &event_id).await;
    Sale {
        organizer: organizer.clone(),
        organization: organization.to_owned(),
        event_id,
        ticket_type_id: id(&ticket_type),
    }
}

/// The event's status in catalog's own database, and how many cancellations it announced.
async fn catalog_state(app: &TestApp, event_id: &str) -> (String, i64) {
    let db = app.database("catalog").await;
    let status: String = sqlx::query_scalar("SELECT status FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    let announced: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox_messages WHERE routing_key LIKE '%event_cancelled%' AND envelope LIKE $1",
    )
    .bind(format!("%{event_id}%"))
    .fetch_one(db.pool())
    .await
    .unwrap();
    db.close().await;
    (status, announced)
}

async fn an_order_right_after_the_cancel_is_refused_every_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let buyer = app.sign_up().await;
    for round in 0..20 {
        let sale = sale_of(&app, &organizer, &organization).await;
        if round % 2 == 0 {
            // Half the rounds, ticketing has sold the event before; the others, it may not
            // have heard of it yet when the cancel comes.
            app.hold(&buyer, &sale, 1).await;
        }
        let cancelled = cancel(&app, &organizer, &sale.event_id).await;
        assert_eq!(cancelled.status(), 200, "round {round}: {}", cancelled.text().await.unwrap_or_default());
        let key = format!("after-cancel-{round}");
        let order = app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, 1)], &key).await;
        assert_problem(order, 409, "conflict").await;
    }
}

async fn a_pending_order_is_never_charged_once_its_event_is_cancelled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let buyer = app.sign_up().await;
    for round in 0..5 {
        let sale = sale_of(&app, &organizer, &organization).await;
        let order = app.hold(&buyer, &sale, 2).await;
        let cancelled = cancel(&app, &organizer, &sale.event_id).await;
        assert_eq!(cancelled.status(), 200);
        let paid = app.pay(&buyer, &id(&order), cards::SUCCEEDS, &format!("pay-{round}")).await;
        assert_problem(paid, 409, "conflict").await;
        assert_eq!(app.charges(&id(&order)).await, (0, 0), "round {round}: nothing captured");
        let order: Value = app.get(&format!("/v1/orders/{}", id(&order)), Some(&buyer)).await.json().await.unwrap();
        assert_ne!(order["status"], "paid");
    }
}

async fn with_ticketing_unreachable_the_cancel_is_503_and_changes_nothing(backend: Backend) {
    // Nothing listens on port 1: every call to ticketing fails at once. Orders fail too, so
    // this test only cancels; catalog's own database tells what changed.
    let app = TestApp::spawn_with(backend, |s| s.set("ticketing_url", "http://127.0.0.1:1")).await;
    let (organizer, organization) = app.organizer().await;
    let sale = sale_of(&app, &organizer, &organization).await;
    let response = cancel(&app, &organizer, &sale.event_id).await;
    assert!(response.headers().get("retry-after").is_some(), "503 with Retry-After");
    assert_problem(response, 503, "unavailable").await;
    // The outbox relay would have written by now what a commit had put in the outbox.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(catalog_state(&app, &sale.event_id).await, ("on_sale".to_owned(), 0), "nothing changed");
}

async fn a_crash_between_closing_sales_and_committing_leaves_sales_closed_and_the_cancel_repeatable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let buyer = app.sign_up().await;
    let sale = sale_of(&app, &organizer, &organization).await;
    let pending = app.hold(&buyer, &sale, 2).await;
    // Catalog's first step, then a crash: the sales are closed, the cancellation not committed.
    let endpoint = app.settings.endpoint("ticketing").unwrap();
    let secrets = eventhive_platform::Secrets::load(&app.settings).unwrap();
    let channel = eventhive_platform::grpc::channel(&endpoint, Duration::from_secs(10), &secrets).unwrap();
    let mut ticketing = TicketingClient::new(channel);
    let close =
        || CloseSalesRequest { event_id: sale.event_id.clone(), reason: "the band split up".into(), revision: 1 };
    let first = ticketing.close_sales(close()).await.unwrap().into_inner();
    let again = ticketing.close_sales(close()).await.unwrap().into_inner();
    assert_eq!(first.closed_at, again.closed_at, "closing again keeps the first close");
    assert_eq!(catalog_state(&app, &sale.event_id).await, ("on_sale".to_owned(), 0));

    // Sales are closed all the same: no order, no payment.
    assert_problem(app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, 1)], "k").await, 409, "conflict")
        .await;
    assert_problem(app.pay(&buyer, &id(&pending), cards::SUCCEEDS, "p").await, 409, "conflict").await;
    assert_eq!(app.charges(&id(&pending)).await, (0, 0));

    // The organizer repeats the cancel: it completes, and the domain event follows.
    let cancelled = cancel(&app, &organizer, &sale.event_id).await;
    assert_eq!(cancelled.status(), 200, "{}", cancelled.text().await.unwrap_or_default());
    assert_eq!(catalog_state(&app, &sale.event_id).await, ("cancelled".to_owned(), 1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        app.sweep(Duration::ZERO).await;
        let order: Value = app.get(&format!("/v1/orders/{}", id(&pending)), Some(&buyer)).await.json().await.unwrap();
        if order["status"] == "cancelled" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the pending order is cancelled: {order}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 0, 100));
}

/// Payments answers slowly (a second per processor call) while a cancelled event's paid orders
/// are refunded. The sweeper used to refund them one at a time and expire holds only between
/// passes, so a hold of another event stayed held for the whole batch of refunds.
async fn refunds_through_a_slow_payments_service_do_not_keep_other_holds_past_their_time(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.set("payment_latency_ms", 1000);
        settings.set("hold_ttl_secs", 2);
    })
    .await;
    let (organizer, organization) = app.organizer().await;
    let cancelled = sale_of(&app, &organizer, &organization).await;
    let mut buyers = Vec::new();
    for _ in 0..8 {
        buyers.push(app.sign_up().await);
    }
    futures::future::join_all(buyers.iter().map(|buyer| app.buy(buyer, &cancelled, 1))).await;
    assert_eq!(cancel(&app, &organizer, &cancelled.event_id).await.status(), 200);

    let other = sale_of(&app, &organizer, &organization).await;
    let held = app.hold(&buyers[0], &other, 1).await;
    let path = format!("/v1/orders/{}", id(&held));
    let mut status = String::new();
    // The hold ends 2 s after it was placed; a sweep a second later expires it.
    for _ in 0..50 {
        let order: Value = app.get(&path, Some(&buyers[0])).await.json().await.unwrap();
        status = order["status"].as_str().unwrap().to_owned();
        if status == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "expired", "the hold outlived its time by over 3 s while refunds ran");
}
