//! Money that must never be lost or taken twice, black-box through the gateway on both
//! backends: a capture that arrives after the order's hold ended is given back even when the
//! first refund call fails; a payment retried with its Idempotency-Key after a 503 gets the
//! real outcome; a caller that gives up does not stop a payment half-way.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use eventhive_test_support::{Backend, TestApp, api::cards, assert_problem, on_both_backends};
use serde_json::{Value, json};
use sqlx::Executor;

on_both_backends!(
    a_capture_for_an_order_whose_hold_ended_is_refunded_until_payments_confirms,
    a_retry_after_an_unknown_outcome_gets_the_real_answer_never_a_kept_conflict,
    a_payment_outlives_the_gateway_timeout_and_its_retry_gets_the_paid_order,
    quantities_that_would_overflow_their_sum_are_refused_never_a_server_error,
    an_order_with_a_checked_in_ticket_cannot_be_cancelled_and_its_seats_stay_sold,
    free_tickets_are_paid_without_a_card_and_cancelled_without_a_charge,
    an_order_of_more_items_than_any_cap_allows_is_refused_at_once,
    a_payments_idempotency_fingerprint_is_keyed_and_leaves_out_the_cvc,
);

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

/// The status of the order's payment, as payments keeps it.
async fn payment_status(app: &TestApp, order_id: &str) -> String {
    let db = app.database("payments").await;
    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    status
}

/// The order expires while its charge is in flight (as a sweep of an earlier attempt used to
/// make it do), the charge captures, and payments cannot record refunds for a while.
async fn a_capture_for_an_order_whose_hold_ended_is_refunded_until_payments_confirms(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| settings.set("payment_latency_ms", 1500)).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order_id = id(&app.hold(&buyer, &sale, 2).await);
    let payments = app.database("payments").await;
    payments.pool().execute("ALTER TABLE refunds RENAME TO refunds_away").await.unwrap();

    let ticketing = app.database("ticketing").await;
    let expire_meanwhile = async {
        for _ in 0..100 {
            let expired = sqlx::query("UPDATE orders SET status = 'expired' WHERE id = $1 AND status = 'authorizing'")
                .bind(&order_id)
                .execute(ticketing.pool())
                .await
                .unwrap();
            if expired.rows_affected() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the order never started its payment");
    };
    let (answer, ()) = tokio::join!(app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay"), expire_meanwhile);
    assert_problem(answer, 409, "hold-expired").await;
    assert_eq!(payment_status(&app, &order_id).await, "captured", "the first refund call failed");

    payments.pool().execute("ALTER TABLE refunds_away RENAME TO refunds").await.unwrap();
    payments.close().await;
    app.sweep(Duration::ZERO).await;
    assert_eq!(payment_status(&app, &order_id).await, "refunded", "the sweeper gave the money back");
    let owed: Option<i64> = sqlx::query_scalar("SELECT refunded_at FROM owed_refunds WHERE order_id = $1")
        .bind(&order_id)
        .fetch_one(ticketing.pool())
        .await
        .unwrap();
    assert!(owed.is_some(), "the owed refund is settled");
    ticketing.close().await;
    assert_eq!(app.sweep(Duration::ZERO).await.owed_refunds_settled, 0, "and refunded once");
}

/// Payments fails (its table is away), so whether money moved is unknown: 503, and the order
/// stays authorizing. A retry with the same key must not get, and keep for 24 h, a 409 "in
/// progress": once the outcome is known it gets the real answer.
async fn a_retry_after_an_unknown_outcome_gets_the_real_answer_never_a_kept_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order_id = id(&app.hold(&buyer, &sale, 1).await);
    let payments = app.database("payments").await;
    payments.pool().execute("ALTER TABLE payments RENAME TO payments_away").await.unwrap();
    assert_problem(app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay").await, 503, "unavailable").await;
    payments.pool().execute("ALTER TABLE payments_away RENAME TO payments").await.unwrap();
    payments.close().await;

    // Still in flight as far as ticketing knows: a conflict for now, but not the key's answer.
    assert_problem(app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay").await, 409, "conflict").await;
    // The sweeper learns that nothing was charged; the order is payable again.
    app.sweep(Duration::from_secs(60)).await;
    let paid = app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay").await;
    assert_eq!(paid.status(), 200, "{}", paid.text().await.unwrap());
    let again = app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "paid");
    assert_eq!(app.charges(&order_id).await, (1, 1));
}

/// The gateway gives up on the request before the (slow) processor answers. Ticketing finishes
/// the payment anyway and keeps its answer, so the retry with the same key gets the paid order
/// (rather than a key locked by a payment cancelled half-way).
async fn a_payment_outlives_the_gateway_timeout_and_its_retry_gets_the_paid_order(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.set("request_timeout_ms", 1500);
        settings.set("payment_latency_ms", 2500);
    })
    .await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order_id = id(&app.hold(&buyer, &sale, 1).await);
    assert_problem(app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay").await, 503, "unavailable").await;
    let mut answer = None;
    for _ in 0..20 {
        let retry = app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay").await;
        if retry.status() != 503 {
            answer = Some(retry);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let answer = answer.expect("the retry got an answer other than 503 within 10 s");
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    assert_eq!(answer.json::<Value>().await.unwrap()["status"], "paid");
    assert_eq!(app.charges(&order_id).await, (1, 1));
}

/// Two lines of i64::MAX tickets: summed unchecked they panic (debug) or wrap (release) and
/// fail a CHECK as a 500. They are a 422 naming the lines.
async fn quantities_that_would_overflow_their_sum_are_refused_never_a_server_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let second = app.add_ticket_type(&sale.organizer, &sale.event_id, "Balcony", 2500, 10).await;
    let buyer = app.sign_up().await;
    let items = [(sale.ticket_type_id.as_str(), i64::MAX), (second["id"].as_str().unwrap(), i64::MAX)];
    let problem =
        assert_problem(app.place_order(&buyer, &sale.event_id, &items, "huge").await, 422, "validation").await;
    let mut fields = eventhive_test_support::problem::error_fields(&problem);
    fields.sort();
    assert_eq!(fields, ["items[0].quantity", "items[1].quantity"], "{problem}");
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 0, 10));
}

/// Someone went in on one of the order's tickets: the buyer cannot cancel it for a refund, and
/// its seats do not go back on sale.
async fn an_order_with_a_checked_in_ticket_cannot_be_cancelled_and_its_seats_stay_sold(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let paid = app.buy(&buyer, &sale, 2).await;
    let code = paid["tickets"][0]["code"].as_str().unwrap();
    let checkins = format!("/v1/events/{}/checkins", sale.event_id);
    assert_eq!(app.post(&checkins, Some(&sale.organizer), &json!({"code": code})).await.status(), 200);

    let cancel = app.post(&format!("/v1/orders/{}/cancel", id(&paid)), Some(&buyer), &json!({})).await;
    assert_problem(cancel, 409, "conflict").await;
    let order: Value = app.get(&format!("/v1/orders/{}", id(&paid)), Some(&buyer)).await.json().await.unwrap();
    assert_eq!(order["status"], "paid");
    assert_eq!(app.stock(&sale.ticket_type_id).await, (2, 0, 8), "the seats stay sold");
    assert_eq!(payment_status(&app, &id(&paid)).await, "captured", "nothing refunded");
    // The other ticket still gets in.
    let other = paid["tickets"][1]["code"].as_str().unwrap();
    assert_eq!(app.post(&checkins, Some(&sale.organizer), &json!({"code": other})).await.status(), 200);
}

/// A ticket type priced 0 (catalog accepts it): its orders are paid without a card and without
/// asking payments (which refuses a charge of 0), and cancelled without a refund call.
async fn free_tickets_are_paid_without_a_card_and_cancelled_without_a_charge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let event = app.create_event(&organizer, &app.event_body(&organization)).await;
    let event_id = id(&event);
    let free = id(&app.add_ticket_type(&organizer, &event_id, "Free entry", 0, 10).await);
    let paying = id(&app.add_ticket_type(&organizer, &event_id, "Supporter", 1500, 10).await);
    app.publish(&organizer, &event_id).await;
    let buyer = app.sign_up().await;

    let order = app.place_order(&buyer, &event_id, &[(free.as_str(), 2)], "free-1").await;
    assert_eq!(order.status(), 201);
    let order: Value = order.json().await.unwrap();
    assert_eq!(order["total"]["amount_minor"], 0);
    let payment = format!("/v1/orders/{}/payment", id(&order));
    let paid = app
        .request(reqwest::Method::POST, &payment, Some(&buyer))
        .header("idempotency-key", "p1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200, "{}", paid.text().await.unwrap());
    let paid: Value = paid.json().await.unwrap();
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(app.charges(&id(&order)).await, (0, 0), "nothing was charged");

    let cancel = app.post(&format!("/v1/orders/{}/cancel", id(&order)), Some(&buyer), &json!({})).await;
    assert_eq!(cancel.status(), 200, "{}", cancel.text().await.unwrap());
    let order: Value = app.get(&format!("/v1/orders/{}", id(&order)), Some(&buyer)).await.json().await.unwrap();
    assert_eq!(order["status"], "refunded");
    assert_eq!(app.stock(&free).await, (0, 0, 10));

    // A priced order still needs its card, and says so by name.
    let priced: Value =
        app.place_order(&buyer, &event_id, &[(paying.as_str(), 1)], "paid-1").await.json().await.unwrap();
    let payment = format!("/v1/orders/{}/payment", id(&priced));
    let no_card = app
        .request(reqwest::Method::POST, &payment, Some(&buyer))
        .header("idempotency-key", "p2")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(no_card, 422, "validation").await;
    assert_eq!(eventhive_test_support::problem::error_fields(&problem), ["card"], "{problem}");
}

/// No event allows more than 100 tickets per order, so no order of more than 100 items can
/// succeed: it is refused by its length, before any item costs a lookup.
async fn an_order_of_more_items_than_any_cap_allows_is_refused_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let ids: Vec<String> = (0..5_000).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let items: Vec<(&str, i64)> = ids.iter().map(|id| (id.as_str(), 1)).collect();
    let problem =
        assert_problem(app.place_order(&buyer, &sale.event_id, &items, "many").await, 422, "validation").await;
    assert_eq!(eventhive_test_support::problem::error_fields(&problem), ["items"], "{problem}");
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 0, 10));
}

/// The fingerprint that binds a payment's Idempotency-Key to its body is kept 24 h. A plain
/// SHA-256 of number, expiry and CVC is brute-forced in minutes when the first six and last four
/// digits are known; it is keyed with the deployment's secret instead, and the CVC is not in it.
async fn a_payments_idempotency_fingerprint_is_keyed_and_leaves_out_the_cvc(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = id(&app.hold(&buyer, &sale, 1).await);
    assert_eq!(app.pay(&buyer, &order, cards::SUCCEEDS, "pay-fp").await.status(), 200);

    let ticketing = app.database("ticketing").await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT fingerprint FROM idempotency_keys WHERE idempotency_key = $1")
        .bind("pay-fp")
        .fetch_all(ticketing.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let sha256 = |text: String| {
        ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    for guessable in [format!("{}|12|2035|123", cards::SUCCEEDS), format!("{}|12|2035", cards::SUCCEEDS)] {
        assert_ne!(stored[0], sha256(guessable.clone()), "the fingerprint is a plain hash of {guessable}");
    }
    // The same card with another CVC is the same request: the first answer, nothing new charged.
    let retry = app
        .request(reqwest::Method::POST, &format!("/v1/orders/{order}/payment"), Some(&buyer))
        .header("idempotency-key", "pay-fp")
        .json(&json!({"card": {"number": cards::SUCCEEDS, "exp_month": 12, "exp_year": 2035, "cvc": "999"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(app.charges(&order).await, (1, 1));
}
