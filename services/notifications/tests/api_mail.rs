//! Email, end to end: a purchase through the public API ends in a real SMTP conversation (with
//! the test SMTP server of test-support) or in the dev inbox at `GET /dev/mail`. On both
//! backends.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use eventhive_test_support::{Backend, TestApp, api::Sale, on_both_backends, smtp::SmtpServer};
use serde_json::{Value, json};

on_both_backends!(
    a_purchase_is_confirmed_by_email_with_its_codes_and_qr_codes,
    without_smtp_mail_waits_in_the_dev_inbox,
    holders_hear_of_a_new_time_or_venue_once_each,
    holders_hear_of_a_cancellation_once_each,
    a_failing_smtp_server_still_delivers_exactly_one_email,
    a_redelivered_domain_event_sends_no_second_email,
);

/// Waits until `check` holds for the mail received, or fails after 15 s.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn codes(order: &Value) -> Vec<String> {
    order["tickets"].as_array().unwrap().iter().map(|t| t["code"].as_str().unwrap().to_owned()).collect()
}

/// The raw message's text with quoted-printable soft line breaks undone, so that long codes
/// can be searched for.
fn unfolded(raw: &str) -> String {
    raw.replace("=\r\n", "").replace("=3D", "=")
}

async fn a_purchase_is_confirmed_by_email_with_its_codes_and_qr_codes(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, |s| s.set("smtp_url", smtp.url())).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = app.buy(&buyer, &sale, 2).await;
    let mail = eventually("the confirmation", async || {
        smtp.messages().await.into_iter().find(|m| m.to.iter().any(|to| to == &buyer.email))
    })
    .await;
    let text = unfolded(&mail.data);
    for code in codes(&order) {
        assert!(text.contains(&code), "the code {code} is in the email");
    }
    assert!(text.contains("Night of the Test Suite"), "the event is named");
    assert_eq!(mail.data.matches("image/png").count(), 2, "one QR code per ticket");
    assert!(mail.data.contains("text/plain") && mail.data.contains("text/html"), "text and HTML");
    // The dev inbox is off when SMTP is configured.
    assert_eq!(app.get("/dev/mail", None).await.status(), 404);
}

async fn without_smtp_mail_waits_in_the_dev_inbox(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = app.buy(&buyer, &sale, 1).await;
    let inbox: Vec<Value> = eventually("the dev inbox", async || {
        let mail: Vec<Value> = app.get(&format!("/dev/mail?to={}", buyer.email), None).await.json().await.ok()?;
        (!mail.is_empty()).then_some(mail)
    })
    .await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["to"], buyer.email.as_str());
    assert_eq!(inbox[0]["kind"], "order_confirmation");
    assert!(inbox[0]["body"].as_str().unwrap().contains(&codes(&order)[0]));
    assert!(!inbox[0]["subject"].as_str().unwrap().is_empty());
    // The message as a page, QR code included, for a person with a browser.
    let page = app.get(&format!("/dev/mail/{}", inbox[0]["id"].as_str().unwrap()), None).await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert_eq!(html.matches("data:image/png;base64,").count(), 1, "the ticket's QR code is embedded");
    assert!(!html.contains("cid:"));
    let missing = app.get("/dev/mail/01900000-0000-7000-8000-000000000000", None).await;
    assert_eq!(missing.status(), 404);
    // No address has a NUL (which PostgreSQL refuses in text): a 422 on `to`, not a 500.
    let nul = app.get("/dev/mail?to=a%00b%40example.com", None).await;
    assert_eq!(nul.status(), 422);
    assert_eq!(nul.json::<Value>().await.unwrap()["errors"][0]["field"], "to");
}

/// Two holders (one with two orders) and a buyer whose order was refunded.
async fn holders(app: &TestApp, sale: &Sale) -> (String, String, String) {
    let (a, b, gone) = (app.sign_up().await, app.sign_up().await, app.sign_up().await);
    app.buy(&a, sale, 1).await;
    app.buy(&a, sale, 1).await;
    app.buy(&b, sale, 2).await;
    let refunded = app.buy(&gone, sale, 1).await;
    let id = refunded["id"].as_str().unwrap();
    assert_eq!(app.post(&format!("/v1/orders/{id}/cancel"), Some(&gone), &json!({})).await.status(), 200);
    // Notifications learns of orders from ticketing and of the event from catalog, with no
    // order between the two: wait until it knows who holds what before the event changes.
    eventually("the holders' confirmations and the refund", async || {
        (mail_of_kind(app, &a.email, "order_confirmation").await >= 2
            && mail_of_kind(app, &b.email, "order_confirmation").await >= 1
            && mail_of_kind(app, &gone.email, "order_refunded").await >= 1)
            .then_some(())
    })
    .await;
    (a.email, b.email, gone.email)
}

async fn mail_of_kind(app: &TestApp, to: &str, kind: &str) -> usize {
    let mail: Vec<Value> = app.get(&format!("/dev/mail?to={to}"), None).await.json().await.unwrap_or_default();
    mail.iter().filter(|m| m["kind"] == kind).count()
}

async fn holders_hear_of_a_new_time_or_venue_once_each(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(20, |_| {}).await;
    let (a, b, gone) = holders(&app, &sale).await;
    let path = format!("/v1/events/{}", sale.event_id);
    // Not worth an email: the description.
    assert_eq!(
        app.patch(&path, Some(&sale.organizer), &json!({"description": "Now with confetti"})).await.status(),
        200
    );
    assert_eq!(
        app.patch(&path, Some(&sale.organizer), &json!({"starts_at": "2027-06-01T20:30:00Z"})).await.status(),
        200
    );
    eventually("both change emails", async || {
        (mail_of_kind(&app, &a, "event_changed").await >= 1 && mail_of_kind(&app, &b, "event_changed").await >= 1)
            .then_some(())
    })
    .await;
    // Settle, then count: exactly one each, none for the refunded buyer.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(mail_of_kind(&app, &a, "event_changed").await, 1, "one email although two orders");
    assert_eq!(mail_of_kind(&app, &b, "event_changed").await, 1);
    assert_eq!(mail_of_kind(&app, &gone, "event_changed").await, 0, "no longer a holder");
    let change: Vec<Value> = app.get(&format!("/dev/mail?to={a}"), None).await.json().await.unwrap();
    let change = change.iter().find(|m| m["kind"] == "event_changed").unwrap();
    assert!(change["body"].as_str().unwrap().contains("2027"), "{}", change["body"]);
}

async fn holders_hear_of_a_cancellation_once_each(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(20, |_| {}).await;
    let (a, b, gone) = holders(&app, &sale).await;
    let cancel = format!("/v1/events/{}/cancel", sale.event_id);
    assert_eq!(app.post(&cancel, Some(&sale.organizer), &json!({"reason": "Storm warning"})).await.status(), 200);
    eventually("both cancellation emails", async || {
        (mail_of_kind(&app, &a, "event_cancelled").await >= 1 && mail_of_kind(&app, &b, "event_cancelled").await >= 1)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(mail_of_kind(&app, &a, "event_cancelled").await, 1);
    assert_eq!(mail_of_kind(&app, &b, "event_cancelled").await, 1);
    assert_eq!(mail_of_kind(&app, &gone, "event_cancelled").await, 0);
    let mail: Vec<Value> = app.get(&format!("/dev/mail?to={b}"), None).await.json().await.unwrap();
    let cancelled = mail.iter().find(|m| m["kind"] == "event_cancelled").unwrap();
    assert!(cancelled["body"].as_str().unwrap().contains("Storm warning"));
}

async fn a_failing_smtp_server_still_delivers_exactly_one_email(backend: Backend) {
    let smtp = SmtpServer::failing_first(2).await;
    let app = TestApp::spawn_with(backend, |s| {
        s.set("smtp_url", smtp.url());
        s.set("smtp_retry_base_ms", 50);
    })
    .await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    app.buy(&buyer, &sale, 1).await;
    eventually("the email, after two failures", async || (!smtp.messages().await.is_empty()).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let received = smtp.messages().await;
    assert_eq!(received.len(), 1, "delivered once");
    assert!(smtp.attempts() >= 3, "two refusals, then the delivery: {}", smtp.attempts());
}

async fn a_redelivered_domain_event_sends_no_second_email(backend: Backend) {
    use eventhive_domain::events::{DomainEvent, Envelope, TicketsIssued};
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    app.buy(&buyer, &sale, 1).await;
    eventually("the confirmation", async || {
        (mail_of_kind(&app, &buyer.email, "order_confirmation").await == 1).then_some(())
    })
    .await;
    // The bus delivers at least once: publish the same TicketsIssued again, twice.
    let ticketing = app.database("ticketing").await;
    let stored: String = sqlx::query_scalar("SELECT envelope FROM outbox_messages WHERE routing_key = $1")
        .bind(TicketsIssued::routing_key())
        .fetch_one(ticketing.pool())
        .await
        .unwrap();
    let envelope: Envelope = serde_json::from_str(&stored).unwrap();
    app.bus.publish(&envelope).await.unwrap();
    app.bus.publish(&envelope).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(mail_of_kind(&app, &buyer.email, "order_confirmation").await, 1);
}
