//! API.md's `Idempotency-Key` for placing and paying orders, black-box through the gateway, on
//! both backends: the key's format, replays of the first answer, concurrent duplicates, and a
//! retry across the deploy that renamed the keys' scopes.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eventhive_test_support::{Backend, TestApp, api::cards, assert_problem, on_both_backends};
use serde_json::{Value, json};
use sqlx::Executor;

on_both_backends!(
    the_idempotency_key_is_required_and_checked,
    replaying_a_placed_order_returns_the_first_answer,
    concurrent_duplicates_of_one_order_hold_once,
    replaying_a_payment_charges_once_and_another_key_is_a_conflict,
    a_retry_across_the_deploy_that_renamed_scopes_gets_the_first_answer,
);

/// Rewrites the keys stored by request path to the operations that replaced them.
const SCOPES_MIGRATION: &str = include_str!("../migrations/20261202000001_idempotency_operations.sql");

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

async fn the_idempotency_key_is_required_and_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let body = json!({"event_id": sale.event_id, "items": [{"ticket_type_id": sale.ticket_type_id, "quantity": 1}]});
    let response = app.request(reqwest::Method::POST, "/v1/orders", Some(&buyer)).json(&body).send().await.unwrap();
    assert_problem(response, 400, "bad-request").await;
    for key in ["", &"k".repeat(256), "tab\there", "ünïcode"] {
        let response = app
            .request(reqwest::Method::POST, "/v1/orders", Some(&buyer))
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await;
        // Some keys cannot even be sent as a header value; those that can must be refused.
        if let Ok(response) = response {
            assert_problem(response, 400, "bad-request").await;
        }
    }
    assert_eq!(
        app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, 1)], &"k".repeat(255)).await.status(),
        201
    );
    let order = app.hold(&buyer, &sale, 1).await;
    let response = app
        .request(reqwest::Method::POST, &format!("/v1/orders/{}/payment", id(&order)), Some(&buyer))
        .json(&json!({"card": {"number": cards::SUCCEEDS, "exp_month": 12, "exp_year": 2035, "cvc": "123"}}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "bad-request").await;
}

async fn replaying_a_placed_order_returns_the_first_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let first = app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, 2)], "same-key").await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, 2)], "same-key").await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap(), first, "the first answer, byte for byte");
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 2, 8), "held once");
    // Even after the order moved on, the replay is the first answer.
    app.pay(&buyer, &id(&first), cards::SUCCEEDS, "pay").await;
    let later: Value =
        app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, 2)], "same-key").await.json().await.unwrap();
    assert_eq!(later["status"], "pending_payment");
    assert_eq!(later["id"], first["id"]);
    // Same key, other body: refused.
    let reused = app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, 3)], "same-key").await;
    assert_problem(reused, 422, "idempotency-key-reused").await;
    // Keys are the buyer's own: another buyer may use the same string.
    let other = app.sign_up().await;
    assert_eq!(app.place_order(&other, &sale.event_id, &[(&sale.ticket_type_id, 2)], "same-key").await.status(), 201);
    // A refused request's answer is kept too.
    let sold_out = app.sale(1, |_| {}).await;
    let a = app.place_order(&buyer, &sold_out.event_id, &[(&sold_out.ticket_type_id, 5)], "too-many").await;
    let a = assert_problem(a, 409, "sold-out").await;
    let b = assert_problem(
        app.place_order(&buyer, &sold_out.event_id, &[(&sold_out.ticket_type_id, 5)], "too-many").await,
        409,
        "sold-out",
    )
    .await;
    assert_eq!(a, b);
}

async fn concurrent_duplicates_of_one_order_hold_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(100, |_| {}).await;
    let buyer = app.sign_up().await;
    let items = [(sale.ticket_type_id.as_str(), 2)];
    let attempts = (0..12).map(|_| app.place_order(&buyer, &sale.event_id, &items, "one-click"));
    let responses = futures::future::join_all(attempts).await;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        assert_eq!(response.status(), 201);
        ids.insert(id(&response.json::<Value>().await.unwrap()));
    }
    assert_eq!(ids.len(), 1, "one order");
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 2, 98));
}

async fn replaying_a_payment_charges_once_and_another_key_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = app.hold(&buyer, &sale, 1).await;
    let order_id = id(&order);
    let payments = (0..8).map(|_| app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay-once"));
    let mut bodies = Vec::new();
    for response in futures::future::join_all(payments).await {
        assert_eq!(response.status(), 200);
        bodies.push(response.json::<Value>().await.unwrap());
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]), "every duplicate gets the same answer");
    assert_eq!(app.charges(&id(&order)).await, (1, 1));
    // A new key for a paid order: nothing is charged.
    assert_problem(app.pay(&buyer, &id(&order), cards::SUCCEEDS, "pay-again").await, 409, "conflict").await;
    // The first key with another card: refused.
    assert_problem(app.pay(&buyer, &id(&order), cards::DECLINED, "pay-once").await, 422, "idempotency-key-reused")
        .await;
    assert_eq!(app.charges(&id(&order)).await, (1, 1));
    let tickets: Value = app.get("/v1/me/tickets", Some(&buyer)).await.json().await.unwrap();
    assert_eq!(tickets["items"].as_array().unwrap().len(), 1);
}

/// Keys are kept 24 hours, so some were stored, scoped by request path, by the release before
/// the one that scopes them by operation; its migration rewrites them.
async fn a_retry_across_the_deploy_that_renamed_scopes_gets_the_first_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let items = [(sale.ticket_type_id.as_str(), 2)];
    let placed: Value = app.place_order(&buyer, &sale.event_id, &items, "before-deploy").await.json().await.unwrap();
    let order_id = id(&placed);
    let paid = app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay-before-deploy").await;
    assert_eq!(paid.status(), 200);
    let paid: Value = paid.json().await.unwrap();

    // The keys as the release before stored them, then the migration.
    let db = app.database("ticketing").await;
    let scopes = [
        ("place_order".to_owned(), "POST /v1/orders".to_owned()),
        (format!("pay_order:{order_id}"), format!("POST /v1/orders/{order_id}/payment")),
    ];
    for (new, old) in &scopes {
        let rewound = sqlx::query("UPDATE idempotency_keys SET scope = $1 WHERE scope = $2")
            .bind(old)
            .bind(new)
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(rewound.rows_affected(), 1, "{new}");
    }
    db.pool().execute(SCOPES_MIGRATION).await.unwrap();
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT scope FROM idempotency_keys ORDER BY scope").fetch_all(db.pool()).await.unwrap();
    assert_eq!(stored, [scopes[1].0.clone(), scopes[0].0.clone()]);
    db.close().await;

    let again: Value = app.place_order(&buyer, &sale.event_id, &items, "before-deploy").await.json().await.unwrap();
    assert_eq!(again, placed, "the first answer, not a second order");
    let again = app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay-before-deploy").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), paid);
    assert_eq!(app.charges(&order_id).await, (1, 1));
    assert_eq!(app.stock(&sale.ticket_type_id).await, (2, 0, 8), "held and sold once");
}
