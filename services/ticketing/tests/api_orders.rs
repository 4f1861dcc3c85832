//! API.md "Orders, payment, tickets", black-box through the gateway, on both backends: holds,
//! the four test cards, expiry, caps, cancellation and refunds, check-in. Idempotent replays
//! are in `api_idempotency.rs`.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use eventhive_test_support::{
    Backend, TestApp,
    api::{Sale, cards},
    assert_problem, on_both_backends,
    problem::error_fields,
};
use serde_json::{Value, json};

on_both_backends!(
    a_buyer_holds_pays_and_gets_tickets_that_never_change,
    a_declined_card_leaves_the_order_payable,
    insufficient_funds_is_declined_too,
    a_transient_processor_failure_is_retried_and_charges_once,
    order_input_is_validated,
    an_order_beyond_the_stock_is_sold_out,
    an_expired_hold_returns_its_tickets_and_cannot_be_paid,
    a_payment_after_expires_at_is_hold_expired_even_before_the_sweep,
    one_buyer_cannot_hold_more_than_the_cap_across_orders,
    max_tickets_per_order_is_enforced,
    a_buyer_cancels_a_pending_order_or_refunds_a_paid_one,
    a_paid_order_cannot_be_refunded_once_the_event_started,
    another_buyers_order_is_not_found,
    door_staff_check_tickets_in_once,
    codes_verify_offline_with_the_checkin_key,
    cancelling_an_event_refunds_every_paid_order,
    my_orders_and_tickets_are_listed_newest_first,
);

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

async fn a_buyer_holds_pays_and_gets_tickets_that_never_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let response = app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, 3)], "order-1").await;
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["total"], json!({"amount_minor": 13500, "currency": "EUR"}));
    assert_eq!(order["items"][0]["quantity"], 3);
    assert_eq!(order["items"][0]["ticket_type_id"], sale.ticket_type_id.as_str());
    assert_eq!(order["tickets"], json!([]));
    let expires_at = time::OffsetDateTime::parse(
        order["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let hold = expires_at - time::OffsetDateTime::now_utc();
    assert!(hold > time::Duration::seconds(590) && hold <= time::Duration::seconds(600), "held for 10 minutes: {hold}");
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 3, 7));
    let event: Value = app.get(&format!("/v1/events/{}", sale.event_id), None).await.json().await.unwrap();
    assert_eq!(event["ticket_types"][0]["available"], 7);
    let found: Value = app.get("/v1/events?q=test%20suite", None).await.json().await.unwrap();
    let listed = found["items"].as_array().unwrap().iter().find(|e| e["id"] == sale.event_id.as_str()).unwrap();
    assert_eq!(listed["ticket_types"][0]["available"], 7, "search shows what is left too");

    let response = app.pay(&buyer, &id(&order), cards::SUCCEEDS, "pay-1").await;
    assert_eq!(response.status(), 200);
    let paid: Value = response.json().await.unwrap();
    assert_eq!(paid["status"], "paid");
    let tickets = paid["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 3);
    assert!(tickets.iter().all(|t| t["status"] == "valid" && t["code"].as_str().unwrap().len() > 40));
    assert_eq!(app.stock(&sale.ticket_type_id).await, (3, 0, 7));
    assert_eq!(app.charges(&id(&order)).await, (1, 1));

    // Fetching never creates tickets: the same three, with the same codes, every time.
    for _ in 0..3 {
        let fetched: Value = app.get(&format!("/v1/orders/{}", id(&order)), Some(&buyer)).await.json().await.unwrap();
        assert_eq!(fetched["tickets"], paid["tickets"]);
        assert_eq!(fetched["status"], "paid");
    }
    let mine: Value = app.get("/v1/me/tickets", Some(&buyer)).await.json().await.unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 3);
}

async fn a_declined_card_leaves_the_order_payable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = app.hold(&buyer, &sale, 2).await;
    let declined =
        assert_problem(app.pay(&buyer, &id(&order), cards::DECLINED, "pay-1").await, 402, "payment-declined").await;
    assert!(declined["detail"].as_str().unwrap().contains("card_declined"));
    let still: Value = app.get(&format!("/v1/orders/{}", id(&order)), Some(&buyer)).await.json().await.unwrap();
    assert_eq!(still["status"], "pending_payment");
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 2, 8), "still held");
    assert_eq!(app.pay(&buyer, &id(&order), cards::SUCCEEDS, "pay-2").await.status(), 200);
    assert_eq!(app.charges(&id(&order)).await, (1, 1));
}

async fn insufficient_funds_is_declined_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = app.hold(&buyer, &sale, 1).await;
    let problem =
        assert_problem(app.pay(&buyer, &id(&order), cards::INSUFFICIENT_FUNDS, "pay-1").await, 402, "payment-declined")
            .await;
    assert!(problem["detail"].as_str().unwrap().contains("insufficient_funds"));
    assert_eq!(app.charges(&id(&order)).await, (0, 0));
}

async fn a_transient_processor_failure_is_retried_and_charges_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = app.hold(&buyer, &sale, 1).await;
    let response = app.pay(&buyer, &id(&order), cards::FAILS_FIRST_CALL, "pay-1").await;
    assert_eq!(response.status(), 200);
    let paid: Value = response.json().await.unwrap();
    assert_eq!(paid["status"], "paid");
    assert_eq!(app.charges(&id(&order)).await, (1, 1));
    let db = app.database("payments").await;
    let attempts: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payment_attempts a JOIN payments p ON p.id = a.payment_id WHERE p.order_id = $1 AND a.kind = 'charge'",
    )
    .bind(id(&order))
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(attempts, 2, "one transient failure, one capture");
}

async fn order_input_is_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let ghost = "01900000-0000-7000-8000-000000000000";
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"event_id": "nope", "items": [{"ticket_type_id": sale.ticket_type_id, "quantity": 1}]}),
            vec!["event_id"],
        ),
        (
            json!({"event_id": ghost, "items": [{"ticket_type_id": sale.ticket_type_id, "quantity": 1}]}),
            vec!["event_id"],
        ),
        (json!({"event_id": sale.event_id, "items": []}), vec!["items"]),
        (
            json!({"event_id": sale.event_id, "items": [{"ticket_type_id": ghost, "quantity": 1}]}),
            vec!["items[0].ticket_type_id"],
        ),
        (
            json!({"event_id": sale.event_id, "items": [{"ticket_type_id": sale.ticket_type_id, "quantity": 0}]}),
            vec!["items[0].quantity"],
        ),
        (
            json!({"event_id": sale.event_id, "items": [{"ticket_type_id": sale.ticket_type_id, "quantity": "two"}]}),
            vec!["items[0].quantity"],
        ),
        (json!({"event_id": sale.event_id}), vec!["items"]),
    ];
    for (i, (body, fields)) in cases.into_iter().enumerate() {
        let response = app
            .request(reqwest::Method::POST, "/v1/orders", Some(&buyer))
            .header("idempotency-key", format!("case-{i}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422, "validation").await;
        assert_eq!(error_fields(&problem), fields, "{body}");
    }
    // A draft event is not on sale.
    let draft = app.create_event(&sale.organizer, &app.event_body(&sale.organization)).await;
    let response = app.place_order(&buyer, &id(&draft), &[(&sale.ticket_type_id, 1)], "draft").await;
    assert_problem(response, 422, "validation").await;
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 0, 10), "nothing held by refused orders");
    assert_problem(app.post("/v1/orders", None, &json!({})).await, 401, "unauthorized").await;
}

async fn an_order_beyond_the_stock_is_sold_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(3, |_| {}).await;
    let (first, second) = (app.sign_up().await, app.sign_up().await);
    app.hold(&first, &sale, 2).await;
    let response = app.place_order(&second, &sale.event_id, &[(&sale.ticket_type_id, 2)], "k").await;
    assert_problem(response, 409, "sold-out").await;
    app.hold(&second, &sale, 1).await;
    let response = app.place_order(&second, &sale.event_id, &[(&sale.ticket_type_id, 1)], "k2").await;
    assert_problem(response, 409, "sold-out").await;
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 3, 0));
}

async fn an_expired_hold_returns_its_tickets_and_cannot_be_paid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = app.hold(&buyer, &sale, 4).await;
    assert_eq!(app.sweep(Duration::from_secs(60)).await.expired, 0, "not yet");
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 4, 6));
    assert_eq!(app.sweep(Duration::from_secs(601)).await.expired, 1);
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 0, 10));
    let expired: Value = app.get(&format!("/v1/orders/{}", id(&order)), Some(&buyer)).await.json().await.unwrap();
    assert_eq!(expired["status"], "expired");
    assert_problem(app.pay(&buyer, &id(&order), cards::SUCCEEDS, "late").await, 409, "hold-expired").await;
    assert_eq!(app.charges(&id(&order)).await, (0, 0));
    assert_eq!(app.sweep(Duration::from_secs(601)).await.expired, 0, "expired once");
}

async fn a_payment_after_expires_at_is_hold_expired_even_before_the_sweep(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.set("hold_ttl_secs", 1);
        s.set("sweep_interval_ms", 3_600_000);
    })
    .await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = app.hold(&buyer, &sale, 2).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_problem(app.pay(&buyer, &id(&order), cards::SUCCEEDS, "late").await, 409, "hold-expired").await;
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 0, 10), "released on the spot");
    assert_eq!(app.charges(&id(&order)).await, (0, 0));
}

async fn one_buyer_cannot_hold_more_than_the_cap_across_orders(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app
        .sale(100, |body| {
            body["max_tickets_per_order"] = json!(4);
            body["max_tickets_per_buyer"] = json!(5);
        })
        .await;
    let scalper = app.sign_up().await;
    let first = app.hold(&scalper, &sale, 4).await;
    let response = app.place_order(&scalper, &sale.event_id, &[(&sale.ticket_type_id, 2)], "second").await;
    assert_problem(response, 409, "conflict").await;
    app.hold(&scalper, &sale, 1).await;
    // Cancelling gives the quota back.
    let cancelled = app.post(&format!("/v1/orders/{}/cancel", id(&first)), Some(&scalper), &json!({})).await;
    assert_eq!(cancelled.status(), 200);
    app.hold(&scalper, &sale, 4).await;
    // Others are not affected.
    let fan = app.sign_up().await;
    app.hold(&fan, &sale, 4).await;
}

async fn max_tickets_per_order_is_enforced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(100, |body| body["max_tickets_per_order"] = json!(3)).await;
    let buyer = app.sign_up().await;
    let problem = assert_problem(
        app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, 4)], "k").await,
        422,
        "validation",
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["items"]);
    app.hold(&buyer, &sale, 3).await;
}

async fn a_buyer_cancels_a_pending_order_or_refunds_a_paid_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let pending = app.hold(&buyer, &sale, 2).await;
    let response = app.post(&format!("/v1/orders/{}/cancel", id(&pending)), Some(&buyer), &json!({})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "cancelled");
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 0, 10));
    assert_problem(app.pay(&buyer, &id(&pending), cards::SUCCEEDS, "p").await, 409, "conflict").await;

    let paid = app.buy(&buyer, &sale, 3).await;
    assert_eq!(app.stock(&sale.ticket_type_id).await, (3, 0, 7));
    let response = app.post(&format!("/v1/orders/{}/cancel", id(&paid)), Some(&buyer), &json!({})).await;
    assert_eq!(response.status(), 200);
    let refunded: Value = response.json().await.unwrap();
    assert_eq!(refunded["status"], "refunded");
    assert!(refunded["tickets"].as_array().unwrap().iter().all(|t| t["status"] == "void"));
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 0, 10), "refunded tickets are for sale again");
    let db = app.database("payments").await;
    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1 AND status <> 'declined'")
        .bind(id(&paid))
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(status, "refunded");
    // Twice is a conflict, and refunds nothing more.
    assert_problem(
        app.post(&format!("/v1/orders/{}/cancel", id(&paid)), Some(&buyer), &json!({})).await,
        409,
        "conflict",
    )
    .await;
    // A refunded ticket does not get in.
    let code = refunded["tickets"][0]["code"].as_str().unwrap();
    let checkins = format!("/v1/events/{}/checkins", sale.event_id);
    assert_problem(app.post(&checkins, Some(&sale.organizer), &json!({"code": code})).await, 404, "not-found").await;
}

async fn a_paid_order_cannot_be_refunded_once_the_event_started(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(6);
    let sale = app
        .sale(10, |body| {
            body["starts_at"] = json!(soon.format(&time::format_description::well_known::Rfc3339).unwrap());
            body["ends_at"] = json!("2099-01-01T00:00:00Z");
        })
        .await;
    let buyer = app.sign_up().await;
    let paid = app.buy(&buyer, &sale, 1).await;
    let wait = soon - time::OffsetDateTime::now_utc() + time::Duration::milliseconds(200);
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait.whole_milliseconds()).unwrap_or(0))).await;
    assert_problem(
        app.post(&format!("/v1/orders/{}/cancel", id(&paid)), Some(&buyer), &json!({})).await,
        409,
        "conflict",
    )
    .await;
    // Sales are closed too.
    let late = app.sign_up().await;
    assert_problem(app.place_order(&late, &sale.event_id, &[(&sale.ticket_type_id, 1)], "k").await, 409, "conflict")
        .await;
}

async fn another_buyers_order_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let (owner, thief) = (app.sign_up().await, app.sign_up().await);
    let order = app.hold(&owner, &sale, 1).await;
    let path = format!("/v1/orders/{}", id(&order));
    assert_problem(app.get(&path, Some(&thief)).await, 404, "not-found").await;
    assert_problem(app.pay(&thief, &id(&order), cards::SUCCEEDS, "k").await, 404, "not-found").await;
    assert_problem(app.post(&format!("{path}/cancel"), Some(&thief), &json!({})).await, 404, "not-found").await;
    assert_problem(app.get(&path, None).await, 401, "unauthorized").await;
    assert_problem(app.get("/v1/orders/not-an-id", Some(&owner)).await, 404, "not-found").await;
    let still: Value = app.get(&path, Some(&owner)).await.json().await.unwrap();
    assert_eq!(still["status"], "pending_payment");
}

async fn door_staff_check_tickets_in_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let other_sale = app.sale(10, |_| {}).await;
    let staff = app.sign_up().await;
    app.add_member(&sale.organizer, &sale.organization, &staff.email, "staff").await;
    let buyer = app.sign_up().await;
    let paid = app.buy(&buyer, &sale, 2).await;
    let code = paid["tickets"][0]["code"].as_str().unwrap().to_owned();
    let checkins = format!("/v1/events/{}/checkins", sale.event_id);

    // Only the organization's people work the door; the event is public, so 403.
    assert_problem(app.post(&checkins, Some(&buyer), &json!({"code": code})).await, 403, "forbidden").await;
    let first = app.post(&checkins, Some(&staff), &json!({"code": code})).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["ticket_id"], paid["tickets"][0]["id"]);
    assert_eq!(first["status"], "checked_in");
    let second =
        assert_problem(app.post(&checkins, Some(&sale.organizer), &json!({"code": code})).await, 409, "conflict").await;
    assert_eq!(second["checked_in_at"], first["checked_in_at"], "the time of the first scan");

    // A code of another event, a tampered code, garbage: 404.
    let other_buyer = app.sign_up().await;
    let other = app.buy(&other_buyer, &other_sale, 1).await;
    let other_code = other["tickets"][0]["code"].as_str().unwrap();
    assert_problem(app.post(&checkins, Some(&staff), &json!({"code": other_code})).await, 404, "not-found").await;
    let mut tampered = paid["tickets"][1]["code"].as_str().unwrap().to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_problem(app.post(&checkins, Some(&staff), &json!({"code": tampered})).await, 404, "not-found").await;
    assert_problem(app.post(&checkins, Some(&staff), &json!({"code": "garbage"})).await, 404, "not-found").await;
    assert_problem(app.post(&checkins, Some(&staff), &json!({"code": ""})).await, 422, "validation").await;

    let order: Value = app.get(&format!("/v1/orders/{}", id(&paid)), Some(&buyer)).await.json().await.unwrap();
    assert_eq!(order["tickets"][0]["status"], "checked_in");
    assert_eq!(order["tickets"][1]["status"], "valid");
}

async fn codes_verify_offline_with_the_checkin_key(backend: Backend) {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let paid = app.buy(&buyer, &sale, 1).await;
    let path = format!("/v1/events/{}/checkin-key", sale.event_id);
    assert_problem(app.get(&path, Some(&buyer)).await, 403, "forbidden").await;
    let key: Value = app.get(&path, Some(&sale.organizer)).await.json().await.unwrap();
    assert_eq!(key["algorithm"], "Ed25519");
    // What a door scanner does without a network: check the signature, read the ids.
    let public_key = URL_SAFE_NO_PAD.decode(key["public_key"].as_str().unwrap()).unwrap();
    let code = URL_SAFE_NO_PAD.decode(paid["tickets"][0]["code"].as_str().unwrap()).unwrap();
    let (payload, signature) = code.split_at(33);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public_key).verify(payload, signature).unwrap();
    assert_eq!(uuid::Uuid::from_slice(&payload[1..17]).unwrap().to_string(), sale.event_id);
    assert_eq!(uuid::Uuid::from_slice(&payload[17..33]).unwrap().to_string(), id(&paid["tickets"][0]));
}

async fn cancelling_an_event_refunds_every_paid_order(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.set("sweep_interval_ms", 3_600_000)).await;
    let sale = app.sale(20, |_| {}).await;
    let (a, b, c) = (app.sign_up().await, app.sign_up().await, app.sign_up().await);
    let paid_a = app.buy(&a, &sale, 2).await;
    let paid_b = app.buy(&b, &sale, 1).await;
    let pending_c = app.hold(&c, &sale, 3).await;
    let response = app
        .post(&format!("/v1/events/{}/cancel", sale.event_id), Some(&sale.organizer), &json!({"reason": "Storm"}))
        .await;
    assert_eq!(response.status(), 200);
    // Ticketing hears of it through the bus, then the sweeper refunds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let sweep = app.sweep(Duration::ZERO).await;
        let refunded: Value = app.get(&format!("/v1/orders/{}", id(&paid_b)), Some(&b)).await.json().await.unwrap();
        if refunded["status"] == "refunded" || tokio::time::Instant::now() > deadline {
            let _ = sweep;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (buyer, order, status) in [(&a, &paid_a, "refunded"), (&b, &paid_b, "refunded"), (&c, &pending_c, "cancelled")]
    {
        let now: Value = app.get(&format!("/v1/orders/{}", id(order)), Some(buyer)).await.json().await.unwrap();
        assert_eq!(now["status"], status, "{}", id(order));
        assert!(now["tickets"].as_array().unwrap().iter().all(|t| t["status"] == "void"));
    }
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 0, 20));
    // No new orders for a cancelled event.
    let late = app.sign_up().await;
    assert_problem(app.place_order(&late, &sale.event_id, &[(&sale.ticket_type_id, 1)], "k").await, 409, "conflict")
        .await;
}

async fn my_orders_and_tickets_are_listed_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(50, |_| {}).await;
    let buyer = app.sign_up().await;
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(id(&app.buy(&buyer, &sale, 1).await));
    }
    placed.reverse();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/me/orders?page_size=2&page_token={t}"),
            None => "/v1/me/orders?page_size=2".into(),
        };
        let page: Value = app.get(&path, Some(&buyer)).await.json().await.unwrap();
        seen.extend(page["items"].as_array().unwrap().iter().map(id));
        match page["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, placed);
    let tickets: Value = app.get("/v1/me/tickets?page_size=100", Some(&buyer)).await.json().await.unwrap();
    assert_eq!(tickets["items"].as_array().unwrap().len(), 5);
    assert!(tickets["next_page_token"].is_null());
    assert_problem(app.get("/v1/me/orders?page_size=0", Some(&buyer)).await, 422, "validation").await;
    assert_problem(app.get("/v1/me/orders?page_token=forged", Some(&buyer)).await, 422, "validation").await;
    let other = app.sign_up().await;
    let none: Value = app.get("/v1/me/orders", Some(&other)).await.json().await.unwrap();
    assert_eq!(none["items"], json!([]));
    let _: &Sale = &sale;
}
