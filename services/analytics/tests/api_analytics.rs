//! Sales figures, end to end through the public API: they follow a sale, only the
//! organization sees them, the live stream pushes changes, and after a crowd's sale they equal
//! ticketing's own truth. On both backends.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use eventhive_test_support::{Backend, TestApp, api::cards, assert_problem, on_both_backends};
use futures::StreamExt;
use serde_json::{Value, json};

on_both_backends!(
    the_figures_follow_a_sale,
    only_the_organization_sees_the_figures,
    the_live_stream_pushes_a_change_within_a_second,
    after_a_crowd_sale_analytics_equals_ticketing,
);

/// Polls the figures until `check` holds (they are eventually consistent), or fails after 5 s.
async fn figures_when(
    app: &TestApp,
    session: &eventhive_test_support::Session,
    event_id: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = app.get(&format!("/v1/events/{event_id}/analytics"), Some(session)).await;
        // 404 until analytics has heard of the event: the bus may still be delivering it.
        let now = match response.status().as_u16() {
            200 => response.json().await.unwrap(),
            404 => Value::Null,
            other => panic!("analytics answered {other}"),
        };
        if check(&now) {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "figures never matched; last: {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn the_figures_follow_a_sale(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let (a, b, c) = (app.sign_up().await, app.sign_up().await, app.sign_up().await);
    let paid = app.buy(&a, &sale, 3).await;
    app.hold(&b, &sale, 2).await;
    let refunded = app.buy(&c, &sale, 1).await;
    let id = refunded["id"].as_str().unwrap();
    app.post(&format!("/v1/orders/{id}/cancel"), Some(&c), &json!({})).await;
    let code = paid["tickets"][0]["code"].as_str().unwrap();
    app.post(&format!("/v1/events/{}/checkins", sale.event_id), Some(&sale.organizer), &json!({"code": code})).await;

    let now =
        figures_when(&app, &sale.organizer, &sale.event_id, |f| f["checkins"] == 1 && f["tickets_held"] == 2).await;
    assert_eq!(now["tickets_sold"], 3);
    assert_eq!(now["tickets_held"], 2);
    assert_eq!(now["tickets_available"], 5);
    assert_eq!(now["revenue"], json!({"amount_minor": 13500, "currency": "EUR"}));
    assert_eq!(now["orders_paid"], 1);
    assert_eq!(now["checkins"], 1);
    assert!(now["waiting_room"].is_null(), "no waiting room: null, present: {now}");
    assert!(now.as_object().unwrap().contains_key("waiting_room"));
    let by_type = &now["by_ticket_type"][0];
    assert_eq!(by_type["ticket_type_id"], sale.ticket_type_id.as_str());
    assert_eq!(by_type["capacity"], 10);
    assert_eq!(by_type["sold"], 3);
    let minutes = now["sales_per_minute"].as_array().unwrap();
    assert_eq!(minutes.iter().map(|m| m["tickets"].as_i64().unwrap()).sum::<i64>(), 3);
    // The hold expires: its tickets are available again.
    app.sweep(Duration::from_secs(601)).await;
    figures_when(&app, &sale.organizer, &sale.event_id, |f| f["tickets_held"] == 0 && f["tickets_available"] == 7)
        .await;
}

async fn only_the_organization_sees_the_figures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let staff = app.sign_up().await;
    app.add_member(&sale.organizer, &sale.organization, &staff.email, "staff").await;
    let buyer = app.sign_up().await;
    let path = format!("/v1/events/{}/analytics", sale.event_id);
    figures_when(&app, &staff, &sale.event_id, |f| f["tickets_available"] == 10).await;
    assert_problem(app.get(&path, Some(&buyer)).await, 403, "forbidden").await;
    assert_problem(app.get(&path, None).await, 401, "unauthorized").await;
    assert_problem(
        app.get("/v1/events/01900000-0000-7000-8000-000000000000/analytics", Some(&buyer)).await,
        404,
        "not-found",
    )
    .await;
}

async fn the_live_stream_pushes_a_change_within_a_second(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    figures_when(&app, &sale.organizer, &sale.event_id, |f| f["tickets_available"] == 10).await;
    let response = app
        .request(reqwest::Method::GET, &format!("/v1/events/{}/analytics/stream", sale.event_id), Some(&sale.organizer))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    // Reads `data:` lines until one satisfies `check`, within `limit`.
    async fn next_matching(
        body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
        buffer: &mut String,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                for line in frame.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        let value: Value = serde_json::from_str(data.trim()).unwrap();
                        if check(&value) {
                            return value;
                        }
                    }
                }
            }
            let chunk = tokio::time::timeout_at(deadline, body.next()).await.expect("no matching update in time");
            buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
        }
    }
    let first = next_matching(&mut body, &mut buffer, Duration::from_secs(5), |_| true).await;
    assert_eq!(first["tickets_sold"], 0);
    let buyer = app.sign_up().await;
    app.buy(&buyer, &sale, 2).await;
    let started = tokio::time::Instant::now();
    let update = next_matching(&mut body, &mut buffer, Duration::from_secs(3), |f| f["tickets_sold"] == 2).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "pushed within a second of the sale: {:?}",
        started.elapsed()
    );
    assert_eq!(update["tickets_available"], 8);
}

async fn after_a_crowd_sale_analytics_equals_ticketing(backend: Backend) {
    let app = Arc::new(TestApp::spawn_with(backend, |s| s.set("sweep_interval_ms", 3_600_000)).await);
    let sale = app
        .sale(50, |body| {
            body["max_tickets_per_order"] = json!(2);
            body["max_tickets_per_buyer"] = json!(2);
        })
        .await;
    let buyers = futures::future::join_all((0..200).map(|_| app.sign_up())).await;
    let crowd = buyers.into_iter().enumerate().map(|(i, buyer)| {
        let (app, sale) = (app.clone(), sale.clone());
        tokio::spawn(async move {
            let key = format!("k{i}");
            let response =
                app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, 1 + (i % 2) as i64)], &key).await;
            if response.status() != 201 {
                return;
            }
            let order: Value = response.json().await.unwrap();
            let id = order["id"].as_str().unwrap().to_owned();
            match i % 3 {
                0 => {
                    app.pay(&buyer, &id, cards::SUCCEEDS, &key).await;
                }
                1 => {
                    app.post(&format!("/v1/orders/{id}/cancel"), Some(&buyer), &json!({})).await;
                }
                _ => {}
            }
        })
    });
    for task in futures::future::join_all(crowd).await {
        task.unwrap();
    }
    let (sold, held, available) = app.stock(&sale.ticket_type_id).await;
    assert_eq!(sold + held + available, 50);
    let started = tokio::time::Instant::now();
    let agreed = figures_when(&app, &sale.organizer, &sale.event_id, |f| {
        f["tickets_sold"] == sold && f["tickets_held"] == held && f["tickets_available"] == available
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(agreed["revenue"]["amount_minor"], sold * 4500);
}
