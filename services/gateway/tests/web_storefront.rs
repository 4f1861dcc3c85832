//! The storefront for an on-sale crowd: the events searched by the days they start, and the
//! event page, whose data comes from a cache in the gateway's process (eventhive-web's
//! `cache`) that stays correct: the availability shown is never older than [`EVENT_TTL`], a
//! draft is never shared, and the page a visitor who is not signed in sees is public for as
//! long as its data is kept, without anyone's cookie.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use eventhive_test_support::{Backend, Session, TestApp};
use eventhive_web::EVENT_TTL;
use reqwest::{Response, redirect::Policy};
use serde_json::json;

/// The page as a browser without cookies of its own asks for it, or with `session`'s.
async fn event_page(app: &TestApp, event_id: &str, session: Option<&Session>) -> Response {
    let client = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let mut request = client.get(app.url(&format!("/events/{event_id}")));
    if let Some(session) = session {
        request = request.header("cookie", format!("eh_access={}", session.access_token));
    }
    request.send().await.unwrap()
}

fn header(response: &Response, name: &str) -> String {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// Waits until ticketing counts the sale's tickets, which it learns from catalog's events.
async fn counted(app: &TestApp, ticket_type_id: &str, capacity: i64) {
    for _ in 0..200 {
        if app.stock(ticket_type_id).await.2 == capacity {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("ticketing never counted the sale's tickets");
}

#[tokio::test]
async fn the_event_page_comes_from_a_cache_that_keeps_its_availability_live() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let sale = app.sale(10, |_| {}).await;
    counted(&app, &sale.ticket_type_id, 10).await;

    // Pages asked back to back share one read of the event: the second says it was a hit.
    // (Tried a few times: a page may take longer than the TTL on a busy machine.)
    let mut timings = Vec::new();
    for _ in 0..10 {
        event_page(&app, &sale.event_id, None).await;
        timings.push(header(&event_page(&app, &sale.event_id, None).await, "server-timing"));
        if timings.last().is_some_and(|t| t.contains("hit")) {
            break;
        }
    }
    assert!(timings.last().unwrap().contains(r#"event-cache;desc="hit""#), "{timings:?}");

    // A visitor who is not signed in gets the page everyone gets: public for the TTL, varying
    // with the cookies, and without a cookie of its own that a shared cache could hand on.
    let anonymous = event_page(&app, &sale.event_id, None).await;
    assert_eq!(header(&anonymous, "cache-control"), format!("public, max-age={}", EVENT_TTL.as_secs()));
    let vary: Vec<&str> = anonymous.headers().get_all("vary").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(vary.contains(&"cookie"), "{vary:?}");
    assert!(anonymous.headers().get_all("set-cookie").iter().next().is_none());
    assert!(anonymous.text().await.unwrap().contains("10 left"));
    // A signed-in buyer's page is theirs: never stored.
    let buyer = app.sign_up().await;
    let own = event_page(&app, &sale.event_id, Some(&buyer)).await;
    assert_eq!(header(&own, "cache-control"), "no-store");
    assert!(own.text().await.unwrap().contains("Hold tickets"));

    // Two tickets sold: a page asked for a TTL later shows it, whatever was kept before.
    app.buy(&buyer, &sale, 2).await;
    tokio::time::sleep(EVENT_TTL).await;
    let after = event_page(&app, &sale.event_id, None).await.text().await.unwrap();
    assert!(after.contains("8 left"), "{after}");
}

#[tokio::test]
async fn a_draft_seen_by_its_organizer_is_never_shown_to_anyone_else() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (organizer, organization) = app.organizer().await;
    let draft = app.create_event(&organizer, &app.event_body(&organization)).await;
    let draft_id = draft["id"].as_str().unwrap();
    app.add_ticket_type(&organizer, draft_id, "Early Bird", 3000, 10).await;

    let theirs = event_page(&app, draft_id, Some(&organizer)).await;
    assert_eq!(theirs.status(), 200);
    assert_eq!(header(&theirs, "cache-control"), "no-store");
    // At once, well within the TTL: the draft was not kept for others.
    let stranger = event_page(&app, draft_id, None).await;
    assert_eq!(stranger.status(), 404);
    assert_eq!(header(&stranger, "cache-control"), "no-store");
}

#[tokio::test]
async fn events_are_found_by_the_days_they_start() {
    let app = TestApp::spawn(Backend::Embedded).await;
    app.sale(10, |body| body["title"] = json!("June Night")).await;
    app.sale(10, |body| {
        body["title"] = json!("August Night");
        body["starts_at"] = json!("2027-08-01T19:30:00Z");
        body["ends_at"] = json!("2027-08-01T23:00:00Z");
    })
    .await;
    let search = async |query: &str| app.get(&format!("/?{query}"), None).await.text().await.unwrap();

    let page = search("").await;
    assert!(page.contains(r#"<label for="from">From</label>"#) && page.contains(r#"<label for="to">To</label>"#));
    assert!(page.contains("June Night") && page.contains("August Night"));
    // Both days are included: an event starting in the evening of `to` is found.
    let june = search("from=2027-06-01&to=2027-06-01").await;
    assert!(june.contains("June Night") && !june.contains("August Night"), "{june}");
    assert!(june.contains(r#"value="2027-06-01""#), "the form keeps the dates: {june}");
    let later = search("from=2027-06-02").await;
    assert!(!later.contains("June Night") && later.contains("August Night"), "{later}");
    let none = search("to=2027-05-31").await;
    assert!(none.contains("No event on sale matches that"), "{none}");
    // A date that is not one is said in words and left out, never an error.
    let unreadable = search("from=next+week&to=2027-06-01").await;
    assert!(unreadable.contains("From is not a date like 2026-12-31"), "{unreadable}");
    assert!(unreadable.contains("June Night") && !unreadable.contains("August Night"), "{unreadable}");
}
