//! The waiting room through the public API, as API.md's "Waiting room" section promises it, on
//! both backends: a room is put by the organizers only; early arrivals wait without a position
//! until the opening's draw, later ones queue in order; admission hands out a signed token
//! that `POST /v1/orders` needs, bound to the buyer, the event and its expiry; automatic
//! admission never admits more buyers than tickets left, and waiting places say `sold_out`
//! while nothing is left and wait again once tickets come back. The admission loop is stepped
//! by the test (`TestApp::admit`), never left to its clock.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeSet, time::Duration};

use eventhive_platform::storage::{ms_to_rfc3339, now_ms};
use eventhive_test_support::{
    Backend, Session, TestApp,
    api::{Sale, cards},
    assert_problem, on_both_backends,
};
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    early_arrivals_are_drawn_later_ones_queue_and_admission_is_a_signed_token,
    a_token_is_refused_once_expired_and_for_another_event,
    automatic_admission_follows_what_is_left_and_sold_out_reverses,
    the_automatic_rate_backs_off_when_purchases_are_slow,
    a_restart_keeps_everyones_place,
);

/// The admission loop never runs by itself here: the tests step it.
async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |settings| settings.set("waiting_room_tick_ms", 3_600_000)).await
}

/// An on-sale event with one ticket type of `capacity`, once ticketing (whose copy of catalog
/// follows catalog's events) counts its tickets: before that, the admission loop has no signal
/// to admit on.
async fn on_sale(app: &TestApp, capacity: i64) -> Sale {
    let sale = app.sale(capacity, |_| {}).await;
    for _ in 0..100 {
        if app.stock(&sale.ticket_type_id).await.2 == capacity {
            return sale;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("ticketing never heard of the sale's tickets");
}

fn room_path(sale: &Sale) -> String {
    format!("/v1/events/{}/waiting-room", sale.event_id)
}

fn queue_path(sale: &Sale) -> String {
    format!("/v1/events/{}/queue", sale.event_id)
}

async fn put_room(app: &TestApp, who: &Session, sale: &Sale, body: &Value) -> reqwest::Response {
    app.request(Method::PUT, &room_path(sale), Some(who)).json(body).send().await.unwrap()
}

async fn room(app: &TestApp, sale: &Sale, opens_at_ms: i64, admit_per_minute: Option<i64>, ttl: i64) -> Value {
    let body = json!({"opens_at": ms_to_rfc3339(opens_at_ms), "admit_per_minute": admit_per_minute,
                      "admission_ttl_secs": ttl});
    let response = put_room(app, &sale.organizer, sale, &body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Joins; returns the status code and the place.
async fn join(app: &TestApp, buyer: &Session, sale: &Sale) -> (u16, Value) {
    let response = app.post(&queue_path(sale), Some(buyer), &json!({})).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn place(app: &TestApp, buyer: &Session, sale: &Sale) -> Value {
    let response = app.get(&queue_path(sale), Some(buyer)).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn token(app: &TestApp, buyer: &Session, sale: &Sale) -> String {
    let place = place(app, buyer, sale).await;
    assert_eq!(place["status"], "admitted", "{place}");
    place["admission"]["token"].as_str().unwrap().to_owned()
}

/// `POST /v1/orders` for one ticket of the sale, with `token` as its `Admission-Token`.
async fn order(app: &TestApp, buyer: &Session, sale: &Sale, token: Option<&str>) -> reqwest::Response {
    let mut request = app
        .request(Method::POST, "/v1/orders", Some(buyer))
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"event_id": sale.event_id, "items": [{"ticket_type_id": sale.ticket_type_id, "quantity": 1}]}));
    if let Some(token) = token {
        request = request.header("admission-token", token);
    }
    request.send().await.unwrap()
}

async fn buyers(app: &TestApp, n: usize) -> Vec<Session> {
    let mut buyers = Vec::new();
    for _ in 0..n {
        buyers.push(app.sign_up().await);
    }
    buyers
}

const HOUR_MS: i64 = 3_600_000;

async fn early_arrivals_are_drawn_later_ones_queue_and_admission_is_a_signed_token(backend: Backend) {
    let app = spawn(backend).await;
    let sale = on_sale(&app, 10).await;
    let people = buyers(&app, 7).await;
    assert_problem(app.get(&room_path(&sale), None).await, 404, "not-found").await;
    assert_problem(app.post(&queue_path(&sale), Some(&people[0]), &json!({})).await, 404, "not-found").await;

    // Organizers only; fields checked.
    let opens_at = now_ms() + HOUR_MS;
    let body = json!({"opens_at": ms_to_rfc3339(opens_at), "admit_per_minute": 60});
    assert_problem(put_room(&app, &people[0], &sale, &body).await, 403, "forbidden").await;
    let bad = json!({"opens_at": "tomorrow", "admit_per_minute": 0, "admission_ttl_secs": 10});
    let problem = assert_problem(put_room(&app, &sale.organizer, &sale, &bad).await, 422, "validation").await;
    let fields: BTreeSet<String> = eventhive_test_support::problem::error_fields(&problem).into_iter().collect();
    assert_eq!(fields, ["admission_ttl_secs", "admit_per_minute", "opens_at"].map(String::from).into());
    let created = room(&app, &sale, opens_at, Some(60), 600).await;
    assert_eq!(created["status"], "scheduled");
    assert_eq!((created["admit_per_minute"].as_i64(), created["admission_ttl_secs"].as_i64()), (Some(60), Some(600)));

    // From now on an order needs an admission.
    assert_problem(order(&app, &people[0], &sale, None).await, 403, "admission-required").await;

    let (early, late) = people.split_at(5);
    for buyer in early {
        let (status, place) = join(&app, buyer, &sale).await;
        assert_eq!(status, 201);
        assert_eq!((place["status"].as_str(), place["position"].as_i64()), (Some("waiting"), None));
        assert!(place["poll_after_secs"].as_i64().unwrap() >= 1);
    }
    assert_eq!(join(&app, &early[0], &sale).await.0, 200, "joining again moves nobody");
    let shown: Value = app.get(&room_path(&sale), None).await.json().await.unwrap();
    assert_eq!((shown["queued"].as_i64(), shown["status"].as_str()), (Some(5), Some("scheduled")));

    // The opening: the draw, then a second's worth of 60 a minute (with its burst of two).
    let step = app.admit(Duration::from_secs(3601)).await;
    assert_eq!((step.opened, step.admitted), (1, 2));
    let mut positions = BTreeSet::new();
    let mut admitted = Vec::new();
    for buyer in early {
        let place = place(&app, buyer, &sale).await;
        positions.insert(place["position"].as_i64().unwrap());
        if place["status"] == "admitted" {
            admitted.push(buyer.clone());
        }
    }
    assert_eq!(positions, (1..=5).collect(), "the early arrivals hold positions 1 to 5");
    assert_eq!(admitted.len(), 2);
    let (status, after) = join(&app, &late[0], &sale).await;
    assert_eq!((status, after["position"].as_i64(), after["ahead"].as_i64()), (201, Some(6), Some(3)));
    let (_, last) = join(&app, &late[1], &sale).await;
    assert_eq!((last["position"].as_i64(), last["ahead"].as_i64()), (Some(7), Some(4)));
    assert!(last["estimated_wait_secs"].as_i64().unwrap() >= 4);

    // The token admits its buyer to this event, and nobody else.
    let buyer = &admitted[0];
    let token = token(&app, buyer, &sale).await;
    assert_problem(order(&app, &late[0], &sale, Some(&token)).await, 403, "admission-required").await;
    let mut forged = token.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_problem(order(&app, buyer, &sale, Some(&forged)).await, 403, "admission-required").await;
    let placed = order(&app, buyer, &sale, Some(&token)).await;
    assert_eq!(placed.status(), 201);
    let placed: Value = placed.json().await.unwrap();
    let paid = app.pay(buyer, placed["id"].as_str().unwrap(), cards::SUCCEEDS, "pay-1").await;
    assert_eq!(paid.status(), 200, "paying needs no token");

    let shown: Value = app.get(&room_path(&sale), None).await.json().await.unwrap();
    assert_eq!(
        (shown["status"].as_str(), shown["admitted"].as_i64(), shown["queued"].as_i64()),
        (Some("open"), Some(2), Some(5))
    );
    // Opened: the time and the lifetime are fixed, the rate may change.
    let moved = json!({"opens_at": ms_to_rfc3339(opens_at + 60_000), "admit_per_minute": 60});
    assert_problem(put_room(&app, &sale.organizer, &sale, &moved).await, 409, "conflict").await;
    let faster = room(&app, &sale, opens_at, Some(120), 600).await;
    assert_eq!(faster["admit_per_minute"], 120);
    app.shutdown().await;
}

async fn a_token_is_refused_once_expired_and_for_another_event(backend: Backend) {
    let app = spawn(backend).await;
    let sale = on_sale(&app, 10).await;
    let other = on_sale(&app, 10).await;
    room(&app, &sale, now_ms() - HOUR_MS, None, 60).await;
    room(&app, &other, now_ms() - HOUR_MS, None, 60).await;
    let buyer = app.sign_up().await;
    let (status, joined) = join(&app, &buyer, &sale).await;
    assert_eq!((status, joined["position"].as_i64()), (201, Some(1)), "after the opening: the next in line");
    // Admitted 58 s ago with a lifetime of 60 s: valid for two more seconds.
    let step = app.waiting_room.admission.step(now_ms() - 58_000).await.unwrap();
    assert_eq!(step.admitted, 1);
    let token = token(&app, &buyer, &sale).await;
    assert_problem(order(&app, &buyer, &other, Some(&token)).await, 403, "admission-required").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_problem(order(&app, &buyer, &sale, Some(&token)).await, 403, "admission-required").await;
    let expired = place(&app, &buyer, &sale).await;
    assert_eq!((expired["status"].as_str(), expired["admission"].is_null()), (Some("expired"), true));
    // Joining again puts the buyer at the back.
    let latecomer = app.sign_up().await;
    join(&app, &latecomer, &sale).await;
    let (status, again) = join(&app, &buyer, &sale).await;
    assert_eq!((status, again["status"].as_str(), again["position"].as_i64()), (201, Some("waiting"), Some(3)));
    // The admission ran out unused: counted once, as the room shows.
    let shown: Value = app.get(&room_path(&sale), None).await.json().await.unwrap();
    assert_eq!(shown["expired"], 1);
    assert_eq!(app.admit(Duration::from_secs(60)).await.expired, 0, "counted already");
    app.shutdown().await;
}

async fn automatic_admission_follows_what_is_left_and_sold_out_reverses(backend: Backend) {
    let app = spawn(backend).await;
    let sale = on_sale(&app, 2).await;
    room(&app, &sale, now_ms() - HOUR_MS, None, 600).await;
    let people = buyers(&app, 4).await;
    for buyer in &people {
        join(&app, buyer, &sale).await;
    }
    // Two tickets left: two buyers admitted, however many wait, and no more while they may buy.
    assert_eq!(app.admit(Duration::ZERO).await.admitted, 2);
    assert_eq!(app.admit(Duration::ZERO).await.admitted, 0);
    let mut orders = Vec::new();
    for buyer in &people[..2] {
        let token = token(&app, buyer, &sale).await;
        let placed: Value = order(&app, buyer, &sale, Some(&token)).await.json().await.unwrap();
        let id = placed["id"].as_str().unwrap().to_owned();
        assert_eq!(app.pay(buyer, &id, cards::SUCCEEDS, &format!("pay-{id}")).await.status(), 200);
        orders.push(id);
    }
    // Nothing available, nothing held: sold out, within a step.
    let step = app.admit(Duration::ZERO).await;
    assert_eq!((step.sold_out, step.admitted), (1, 0));
    let waiting = place(&app, &people[2], &sale).await;
    assert_eq!((waiting["status"].as_str(), waiting["position"].as_i64()), (Some("sold_out"), Some(3)));
    let shown: Value = app.get(&room_path(&sale), None).await.json().await.unwrap();
    assert_eq!(shown["status"], "sold_out");

    // A refund gives a ticket back: waiting resumes, and the next buyer is admitted for it once
    // the waiting room has heard that the first two used their admissions (ticketing's
    // order_placed, through the bus).
    let cancelled = app.post(&format!("/v1/orders/{}/cancel", orders[0]), Some(&people[0]), &json!({})).await;
    assert_eq!(cancelled.status(), 200);
    let step = app.admit(Duration::ZERO).await;
    assert_eq!(step.resumed, 1);
    let mut admitted = step.admitted;
    for _ in 0..50 {
        if admitted > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        admitted = app.admit(Duration::ZERO).await.admitted;
    }
    assert_eq!(admitted, 1, "one ticket back, one buyer admitted");
    assert_eq!(place(&app, &people[2], &sale).await["status"], "admitted");
    assert_eq!(place(&app, &people[3], &sale).await["status"], "waiting");
    assert_eq!(app.admit(Duration::ZERO).await.admitted, 0, "the admitted buyer may take the one ticket");

    // Each change was announced once, through the outbox.
    let db = app.database("waiting_room").await;
    let announced: Vec<String> =
        sqlx::query_scalar("SELECT routing_key FROM outbox_messages ORDER BY created_at, routing_key")
            .fetch_all(db.pool())
            .await
            .unwrap();
    db.close().await;
    let count = |key: &str| announced.iter().filter(|k| k.as_str() == key).count();
    assert_eq!(count("waiting_room.room_opened.v1"), 1);
    assert_eq!(count("waiting_room.buyers_admitted.v1"), 2);
    assert_eq!(count("waiting_room.sold_out.v1"), 2, "sold out, then resumed");

    // Analytics serves the room's figures with the sales figures, from those events.
    let analytics = format!("/v1/events/{}/analytics", sale.event_id);
    let mut room = Value::Null;
    for _ in 0..100 {
        let figures: Value = app.get(&analytics, Some(&sale.organizer)).await.json().await.unwrap();
        room = figures["waiting_room"].clone();
        if room["admitted"] == 3 && room["status"] == "open" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((room["status"].as_str(), room["admitted"].as_i64()), (Some("open"), Some(3)), "{room}");
    assert_eq!((room["queued"].as_i64(), room["expired"].as_i64()), (Some(1), Some(0)), "{room}");
    assert_eq!(room["early_arrivals"], 0);
    app.shutdown().await;
}

/// The automatic rate follows the purchase p99 that ticketing reports: it grows while there is
/// no purchase to judge by, and halves once purchases (here payments that take 300 ms) are
/// slower than the target (100 ms).
async fn the_automatic_rate_backs_off_when_purchases_are_slow(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.set("waiting_room_tick_ms", 3_600_000);
        settings.set("waiting_room_purchase_p99_target_ms", 100);
        settings.set("payment_latency_ms", 300);
    })
    .await;
    let sale = on_sale(&app, 50).await;
    room(&app, &sale, now_ms() - HOUR_MS, None, 600).await;
    let people = buyers(&app, 12).await;
    for buyer in &people {
        join(&app, buyer, &sale).await;
    }
    let pace = |step: &eventhive_waiting_room::Step| step.paces.values().copied().next();
    assert_eq!(pace(&app.admit(Duration::ZERO).await), Some(2), "no purchase yet: the step probes upwards");
    assert_eq!(pace(&app.admit(Duration::from_secs(1)).await), Some(3));

    let mut bought = 0;
    for buyer in &people {
        if place(&app, buyer, &sale).await["status"] != "admitted" || bought == 2 {
            continue;
        }
        let token = token(&app, buyer, &sale).await;
        let placed: Value = order(&app, buyer, &sale, Some(&token)).await.json().await.unwrap();
        let id = placed["id"].as_str().unwrap().to_owned();
        assert_eq!(app.pay(buyer, &id, cards::SUCCEEDS, &format!("pay-{id}")).await.status(), 200);
        bought += 1;
    }
    assert_eq!(bought, 2);
    assert_eq!(pace(&app.admit(Duration::from_secs(2)).await), Some(1), "purchases over the target: halved");
    assert_eq!(pace(&app.admit(Duration::from_secs(3)).await), Some(1), "and kept down while they stay slow");
    app.shutdown().await;
}

/// Redis keeps the queue across a restart of the service; the memory store of dev mode keeps
/// rooms (in the database) but not places, which is what it promises.
async fn a_restart_keeps_everyones_place(backend: Backend) {
    let mut app = spawn(backend).await;
    let sale = on_sale(&app, 10).await;
    room(&app, &sale, now_ms() + HOUR_MS, Some(600), 600).await;
    let people = buyers(&app, 3).await;
    for buyer in &people {
        join(&app, buyer, &sale).await;
    }
    app.admit(Duration::from_secs(3601)).await;
    let mut before = Vec::new();
    for buyer in &people {
        before.push(place(&app, buyer, &sale).await["position"].clone());
    }
    app.restart().await;
    let shown: Value = app.get(&room_path(&sale), None).await.json().await.unwrap();
    assert_eq!(shown["status"], "open", "the room is in the database");
    if backend == Backend::Infra {
        for (buyer, position) in people.iter().zip(&before) {
            assert_eq!(&place(&app, buyer, &sale).await["position"], position);
        }
    }
    app.shutdown().await;
}
