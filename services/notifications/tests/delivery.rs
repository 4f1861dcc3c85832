//! Notifications' pieces, driven directly: domain events are handed to the consumer as the bus
//! would hand them, the sender is stepped at chosen times, and mail goes to a real (test) SMTP
//! server or into the dev inbox. Identity is an in-memory directory. On SQLite and on PostgreSQL.
//! Here: what each domain event sends, and to whom.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

on_both_backends!(
    a_confirmation_carries_every_code_and_one_qr_image_per_ticket,
    a_redelivered_domain_event_sends_no_second_email,
    a_change_of_time_or_venue_reaches_each_holder_once,
    a_refund_heard_before_its_tickets_leaves_no_holder,
    a_cancellation_reaches_each_holder_once_and_refunds_add_nothing,
    buyers_hear_of_their_own_refunds_and_of_expired_holds,
);

async fn a_confirmation_carries_every_code_and_one_qr_image_per_ticket(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let harness = Harness::new(backend, |s| s.set("smtp_url", smtp.url())).await;
    let event = published(&harness).await;
    let buyer = harness.user("ada@example.com");
    let order = issued(event.event_id, buyer, 2);
    harness.feed(&order).await;

    let report = harness.step(now_ms()).await;
    assert_eq!(report, SendReport { sent: 1, retried: 0, dead: 0 });
    let received = smtp.messages().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, vec!["ada@example.com".to_owned()]);
    assert_eq!(received[0].from, "tickets@eventhive.dev");

    let message = MessageParser::default().parse(received[0].data.as_bytes()).unwrap();
    assert_eq!(message.subject(), Some("Your tickets for Night of the Test Suite"));
    let text = message.body_text(0).unwrap();
    let html = message.body_html(0).unwrap();
    assert!(text.contains("Night of the Test Suite") && text.contains("Paradiso, Amsterdam, NL"));
    assert!(text.contains("Saturday 12 June 2027, 19:30 to 22:30 UTC"), "{text}");
    assert!(text.contains("Standing") && text.contains("Balcony"), "every ticket's type");
    let images: Vec<_> = message.attachments().filter(|part| part.is_content_type("image", "png")).collect();
    assert_eq!(images.len(), 2, "one QR image per ticket");
    for ticket in &order.tickets {
        assert!(text.contains(&ticket.code), "the text has the code {}", ticket.code);
        assert!(html.contains(&ticket.code), "the HTML has the code {}", ticket.code);
        let content_id = format!("qr-{}@eventhive", ticket.ticket_id);
        assert!(html.contains(&format!("cid:{content_id}")), "the HTML shows the QR image");
        let image = images
            .iter()
            .find(|part| part.content_id() == Some(content_id.as_str()))
            .unwrap_or_else(|| panic!("an inline image with Content-ID {content_id}"));
        assert_eq!(read_qr(image.contents()), ticket.code, "the QR image encodes the code");
    }
    // Nothing more is due.
    assert_eq!(harness.step(now_ms()).await, SendReport::default());
    assert_eq!(
        harness.deliveries().await,
        vec![("ada@example.com".into(), "order_confirmation".into(), "sent".into())]
    );
}

async fn a_redelivered_domain_event_sends_no_second_email(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let harness = Harness::new(backend, |s| s.set("smtp_url", smtp.url())).await;
    let event = published(&harness).await;
    let buyer = harness.user("ada@example.com");
    let envelope = harness.feed(&issued(event.event_id, buyer, 1)).await;
    assert_eq!(harness.step(now_ms()).await.sent, 1);
    // The bus delivers at least once: the same envelope again, before and after sending.
    harness.consumer.handle(&envelope).await.unwrap();
    harness.consumer.handle(&envelope).await.unwrap();
    assert_eq!(harness.step(now_ms()).await, SendReport::default());
    assert_eq!(smtp.messages().await.len(), 1);
    assert_eq!(harness.deliveries().await.len(), 1);
    assert_eq!(harness.recipients.lookups(), 1, "a redelivery is recognised before any lookup");
}

async fn a_change_of_time_or_venue_reaches_each_holder_once(backend: Backend) {
    let harness = Harness::new(backend, |_| {}).await;
    let event = published(&harness).await;
    let (ada, bob, cy) =
        (harness.user("ada@example.com"), harness.user("bob@example.com"), harness.user("cy@example.com"));
    // Ada has two orders; Cy's order is refunded at Cy's request.
    harness.feed(&issued(event.event_id, ada, 1)).await;
    harness.feed(&issued(event.event_id, ada, 2)).await;
    harness.feed(&issued(event.event_id, bob, 1)).await;
    let refunded = issued(event.event_id, cy, 1);
    harness.feed(&refunded).await;
    harness.feed(&OrderRefunded { order: summary(&refunded), reason: "cancelled by the buyer".into() }).await;
    // A change of something else is not worth an email.
    harness
        .feed(&EventChanged {
            event: EventSnapshot {
                title: "Night of the Test Suite".into(),
                ..snapshot(event.event_id, STARTS, "Paradiso", 2)
            },
            changed_fields: vec!["description".into()],
            time_changed: false,
            venue_changed: false,
        })
        .await;
    assert_eq!(harness.deliveries().await.iter().filter(|(_, kind, _)| kind == "event_changed").count(), 0);

    let later = STARTS + time::Duration::hours(1);
    let change = EventChanged {
        event: snapshot(event.event_id, later, "Melkweg", 3),
        changed_fields: vec!["starts_at".into(), "venue".into()],
        time_changed: true,
        venue_changed: true,
    };
    let envelope = harness.feed(&change).await;
    harness.consumer.handle(&envelope).await.unwrap();
    assert_eq!(harness.count("ada@example.com", "event_changed").await, 1, "once although two orders");
    assert_eq!(harness.count("bob@example.com", "event_changed").await, 1);
    assert_eq!(harness.count("cy@example.com", "event_changed").await, 0, "no longer a holder");

    assert_eq!(harness.step(now_ms()).await.sent, 7, "4 confirmations, 1 refund, 2 changes");
    let mail = harness.dev_mail("bob@example.com", 0).await;
    let changed = mail.iter().find(|m| m.kind == "event_changed").unwrap();
    assert_eq!(changed.subject, "Night of the Test Suite: new time and venue");
    assert!(changed.body.contains("Saturday 12 June 2027, 20:30"), "{}", changed.body);
    assert!(changed.body.contains("Melkweg") && changed.body.contains("It was at: Paradiso"), "{}", changed.body);

    // A change delivered late (an older revision) tells of the newest details, not its own.
    let stale = EventChanged {
        event: snapshot(event.event_id, STARTS, "Paradiso", 2),
        changed_fields: vec!["starts_at".into()],
        time_changed: true,
        venue_changed: false,
    };
    harness.feed(&stale).await;
    harness.step(now_ms()).await;
    let latest = &harness.dev_mail("bob@example.com", 1).await[0];
    assert_eq!(latest.kind, "event_changed");
    assert!(latest.body.contains("20:30") && latest.body.contains("Melkweg"), "{}", latest.body);
}

/// Ticketing's events reach notifications in no set order: a refund can be applied before the
/// `tickets_issued` of its order. The buyer must not become a holder then.
async fn a_refund_heard_before_its_tickets_leaves_no_holder(backend: Backend) {
    let harness = Harness::new(backend, |_| {}).await;
    let event = published(&harness).await;
    let (ada, cy) = (harness.user("ada@example.com"), harness.user("cy@example.com"));
    harness.feed(&issued(event.event_id, ada, 1)).await;
    let refunded = issued(event.event_id, cy, 1);
    harness.feed(&OrderRefunded { order: summary(&refunded), reason: "cancelled by the buyer".into() }).await;
    harness.feed(&refunded).await;
    let change = EventChanged {
        event: snapshot(event.event_id, STARTS + time::Duration::hours(1), "Paradiso", 3),
        changed_fields: vec!["starts_at".into()],
        time_changed: true,
        venue_changed: false,
    };
    harness.feed(&change).await;
    assert_eq!(harness.count("ada@example.com", "event_changed").await, 1);
    assert_eq!(harness.count("cy@example.com", "event_changed").await, 0, "refunded before the tickets were heard of");
}

async fn a_cancellation_reaches_each_holder_once_and_refunds_add_nothing(backend: Backend) {
    let harness = Harness::new(backend, |_| {}).await;
    let event = published(&harness).await;
    let (ada, bob, cy) =
        (harness.user("ada@example.com"), harness.user("bob@example.com"), harness.user("cy@example.com"));
    let ada_orders = [issued(event.event_id, ada, 1), issued(event.event_id, ada, 1)];
    for order in &ada_orders {
        harness.feed(order).await;
    }
    let bob_order = issued(event.event_id, bob, 2);
    harness.feed(&bob_order).await;
    let cy_order = issued(event.event_id, cy, 1);
    harness.feed(&cy_order).await;
    // Bob's refund for the cancellation is heard of before the cancellation itself.
    harness.feed(&OrderRefunded { order: summary(&bob_order), reason: EVENT_CANCELLED_REASON.into() }).await;
    harness.feed(&OrderRefunded { order: summary(&cy_order), reason: "cancelled by the buyer".into() }).await;

    let cancelled = EventCancelled {
        event: EventSnapshot { status: "cancelled".into(), ..snapshot(event.event_id, STARTS, "Paradiso", 2) },
        reason: "Storm warning".into(),
    };
    let envelope = harness.feed(&cancelled).await;
    harness.consumer.handle(&envelope).await.unwrap();
    for order in &ada_orders {
        harness.feed(&OrderRefunded { order: summary(order), reason: EVENT_CANCELLED_REASON.into() }).await;
    }
    // Tickets issued after the cancellation was handled: that holder is told with the refund.
    let dan = harness.user("dan@example.com");
    let late = issued(event.event_id, dan, 1);
    harness.feed(&late).await;
    harness.feed(&OrderRefunded { order: summary(&late), reason: EVENT_CANCELLED_REASON.into() }).await;

    for holder in ["ada@example.com", "bob@example.com", "dan@example.com"] {
        assert_eq!(harness.count(holder, "event_cancelled").await, 1, "{holder} is told once");
        assert_eq!(harness.count(holder, "order_refunded").await, 0, "{holder}: the cancellation covers the refund");
    }
    assert_eq!(harness.count("cy@example.com", "event_cancelled").await, 0, "refunded before, not a holder");
    assert_eq!(harness.count("cy@example.com", "order_refunded").await, 1);
    harness.step(now_ms()).await;
    let mail = harness.dev_mail("dan@example.com", 0).await;
    let told = mail.iter().find(|m| m.kind == "event_cancelled").unwrap();
    assert!(told.body.contains("Storm warning") && told.body.contains("refunded"), "{}", told.body);
}

async fn buyers_hear_of_their_own_refunds_and_of_expired_holds(backend: Backend) {
    let harness = Harness::new(backend, |_| {}).await;
    let event = published(&harness).await;
    let ada = harness.user("ada@example.com");
    let order = issued(event.event_id, ada, 2);
    harness.feed(&order).await;
    harness.feed(&OrderRefunded { order: summary(&order), reason: "cancelled by the buyer".into() }).await;
    let unpaid = issued(event.event_id, ada, 1);
    let expiry = harness.feed(&OrderExpired { order: summary(&unpaid) }).await;
    harness.consumer.handle(&expiry).await.unwrap();
    // A buyer identity does not know gets no email, and that is no error.
    harness.feed(&OrderExpired { order: summary(&issued(event.event_id, UserId::new(), 1)) }).await;

    assert_eq!(harness.step(now_ms()).await.sent, 3);
    let mail = harness.dev_mail("ADA@example.com", 0).await;
    let kinds: Vec<&str> = mail.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, ["hold_expired", "order_refunded", "order_confirmation"], "newest first");
    assert!(mail[1].body.contains("90.00 EUR"), "{}", mail[1].body);
    assert!(mail[0].subject.contains("Night of the Test Suite"));
}
