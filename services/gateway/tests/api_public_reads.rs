//! The event list and an event's page as visitors not signed in read them, kept in the gateway
//! for a second (`public_reads`), black-box on both backends: a crowd shares one read, whoever
//! changes an event through the gateway reads the change back at once, and what nobody here
//! changed shows within the second.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use eventhive_test_support::{Backend, TestApp, on_both_backends};
use reqwest::Response;
use serde_json::{Value, json};

on_both_backends!(
    a_crowd_shares_one_read_and_a_buyer_sees_their_hold_at_once,
    edits_show_at_once_and_signed_in_reads_are_live,
);

/// The `Server-Timing` of a public read: `hit` when it was served from what the gateway kept.
fn served(response: &Response) -> &str {
    let timing = response.headers().get("server-timing").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if timing.contains("hit") {
        "hit"
    } else if timing.contains("miss") {
        "miss"
    } else {
        "live"
    }
}

async fn read(app: &TestApp, path: &str) -> (&'static str, Value) {
    let response = app.get(path, None).await;
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(response.headers()["cache-control"], "public, max-age=1");
    let served = match served(&response) {
        "hit" => "hit",
        "miss" => "miss",
        other => panic!("{path} was read {other}, not through the public reads"),
    };
    (served, response.json().await.unwrap())
}

async fn a_crowd_shares_one_read_and_a_buyer_sees_their_hold_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let page = format!("/v1/events/{}", sale.event_id);
    let list = "/v1/events?q=test%20suite";

    let (first, event) = read(&app, &page).await;
    assert_eq!((first, event["ticket_types"][0]["available"].clone()), ("miss", json!(10)));
    let (again, _) = read(&app, &page).await;
    assert_eq!(again, "hit", "the second reader within the second is served what the first read");
    let crowd = futures::future::join_all((0..20).map(|_| read(&app, list))).await;
    let misses = crowd.iter().filter(|(served, _)| *served == "miss").count();
    assert!(misses <= 1, "twenty readers of the list at once share one read: {misses} misses");

    // An order through this gateway forgets the event's page and every list.
    let buyer = app.sign_up().await;
    app.hold(&buyer, &sale, 3).await;
    let (after, event) = read(&app, &page).await;
    assert_eq!((after, event["ticket_types"][0]["available"].clone()), ("miss", json!(7)));
    let (_, found) = read(&app, list).await;
    let listed = found["items"].as_array().unwrap().iter().find(|e| e["id"] == sale.event_id.as_str()).unwrap();
    assert_eq!(listed["ticket_types"][0]["available"], 7);

    // What is kept is read again once it is a second old.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(read(&app, &page).await.0, "miss");
}

async fn edits_show_at_once_and_signed_in_reads_are_live(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let page = format!("/v1/events/{}", sale.event_id);
    read(&app, &page).await;
    assert_eq!(read(&app, &page).await.0, "hit");

    let response = app.patch(&page, Some(&sale.organizer), &json!({"title": "Moved upstairs"})).await;
    assert_eq!(response.status(), 200);
    let (after, event) = read(&app, &page).await;
    assert_eq!((after, event["title"].as_str().unwrap()), ("miss", "Moved upstairs"));

    // A draft is never answered to a visitor, so nothing of it is kept; once published, it is.
    let draft = app.create_event(&sale.organizer, &app.event_body(&sale.organization)).await;
    let draft_page = format!("/v1/events/{}", draft["id"].as_str().unwrap());
    assert_eq!(app.get(&draft_page, None).await.status(), 404);
    let signed_in = app.get(&draft_page, Some(&sale.organizer)).await;
    assert_eq!(signed_in.status(), 200, "its organizer reads the draft");
    assert_eq!(served(&signed_in), "live", "a signed-in read is never served from what is kept");
    app.add_ticket_type(&sale.organizer, draft["id"].as_str().unwrap(), "Seated", 3000, 5).await;
    app.publish(&sale.organizer, draft["id"].as_str().unwrap()).await;
    let (_, published) = read(&app, &draft_page).await;
    assert_eq!(published["status"], "on_sale");
}
