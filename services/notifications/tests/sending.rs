//! Sending, driven directly on both backends: a failing SMTP server retried with backoff, dead
//! letters and their replay, the dev inbox without SMTP, and slow or unknown lookups that delay
//! an email without losing it.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

on_both_backends!(
    a_server_failing_the_first_two_attempts_still_delivers_one_email,
    after_the_last_attempt_a_delivery_is_dead_until_replayed,
    without_smtp_the_dev_inbox_lists_the_mail,
    an_unreachable_identity_delays_the_email_but_loses_nothing,
    an_event_not_heard_of_is_looked_up,
);

async fn a_server_failing_the_first_two_attempts_still_delivers_one_email(backend: Backend) {
    let smtp = SmtpServer::failing_first(2).await;
    let harness = Harness::new(backend, |s| {
        s.set("smtp_url", smtp.url());
        s.set("smtp_retry_base_ms", 1000);
    })
    .await;
    let event = published(&harness).await;
    harness.feed(&issued(event.event_id, harness.user("ada@example.com"), 1)).await;

    let t0 = now_ms();
    assert_eq!(harness.step(t0).await, SendReport { sent: 0, retried: 1, dead: 0 });
    assert_eq!(harness.step(t0 + 999).await, SendReport::default(), "not due before the backoff");
    assert_eq!(harness.step(t0 + 1000).await, SendReport { sent: 0, retried: 1, dead: 0 });
    assert_eq!(harness.step(t0 + 2999).await, SendReport::default(), "the backoff doubled");
    assert_eq!(harness.step(t0 + 3000).await, SendReport { sent: 1, retried: 0, dead: 0 });
    assert_eq!(harness.step(t0 + 600_000).await, SendReport::default());
    assert_eq!(smtp.attempts(), 3);
    assert_eq!(smtp.messages().await.len(), 1, "exactly one email");
    let attempts: i64 =
        sqlx::query_scalar("SELECT attempts FROM deliveries").fetch_one(harness.db.pool()).await.unwrap();
    assert_eq!(attempts, 3);
}

async fn after_the_last_attempt_a_delivery_is_dead_until_replayed(backend: Backend) {
    let smtp = SmtpServer::failing_first(3).await;
    let harness = Harness::new(backend, |s| {
        s.set("smtp_url", smtp.url());
        s.set("smtp_max_attempts", 3);
        s.set("smtp_retry_base_ms", 10);
    })
    .await;
    let event = published(&harness).await;
    harness.feed(&issued(event.event_id, harness.user("ada@example.com"), 1)).await;

    let t0 = now_ms();
    let mut total = SendReport::default();
    for at in [t0, t0 + 10, t0 + 30, t0 + 10_000] {
        let report = harness.step(at).await;
        total = SendReport {
            sent: total.sent + report.sent,
            retried: total.retried + report.retried,
            dead: total.dead + report.dead,
        };
    }
    assert_eq!(total, SendReport { sent: 0, retried: 2, dead: 1 });
    assert!(smtp.messages().await.is_empty());

    let dead = harness.service.list_dead_letters(tonic::Request::new(ListDeadLettersRequest {})).await.unwrap();
    let dead = dead.into_inner().dead_letters;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].to, "ada@example.com");
    assert_eq!(dead[0].kind, "order_confirmation");
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.contains("451"), "{}", dead[0].last_error);

    // Ids that are not ids are refused; an unknown one replays nothing.
    let bad = ReplayDeadLettersRequest { delivery_ids: vec!["nope".into()] };
    let status = harness.service.replay_dead_letters(tonic::Request::new(bad)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let unknown = ReplayDeadLettersRequest { delivery_ids: vec![uuid::Uuid::now_v7().to_string()] };
    let replayed = harness.service.replay_dead_letters(tonic::Request::new(unknown)).await.unwrap();
    assert_eq!(replayed.into_inner().replayed, 0);

    let named = ReplayDeadLettersRequest { delivery_ids: vec![dead[0].delivery_id.clone()] };
    let replayed = harness.service.replay_dead_letters(tonic::Request::new(named)).await.unwrap();
    assert_eq!(replayed.into_inner().replayed, 1);
    assert_eq!(harness.step(now_ms() + 1).await, SendReport { sent: 1, retried: 0, dead: 0 });
    assert_eq!(smtp.messages().await.len(), 1);
    let dead = harness.service.list_dead_letters(tonic::Request::new(ListDeadLettersRequest {})).await.unwrap();
    assert!(dead.into_inner().dead_letters.is_empty());
}

async fn without_smtp_the_dev_inbox_lists_the_mail(backend: Backend) {
    let harness = Harness::new(backend, |_| {}).await;
    let event = published(&harness).await;
    let (ada, bob) = (harness.user("ada@example.com"), harness.user("bob@example.com"));
    let order = issued(event.event_id, ada, 2);
    harness.feed(&order).await;
    harness.feed(&issued(event.event_id, bob, 1)).await;
    assert!(harness.dev_mail("", 0).await.is_empty(), "queued mail is not in the inbox yet");
    assert_eq!(harness.step(now_ms()).await, SendReport { sent: 2, retried: 0, dead: 0 });

    let all = harness.dev_mail("", 0).await;
    assert_eq!(all.iter().map(|m| m.to.as_str()).collect::<Vec<_>>(), ["bob@example.com", "ada@example.com"]);
    assert_eq!(harness.dev_mail("", 1).await.len(), 1, "the limit holds");
    let ada_mail = harness.dev_mail("ada@example.com", 0).await;
    assert_eq!(ada_mail.len(), 1);
    let mail = &ada_mail[0];
    assert_eq!(mail.kind, "order_confirmation");
    assert_eq!(mail.subject, "Your tickets for Night of the Test Suite");
    assert!(order.tickets.iter().all(|t| mail.body.contains(&t.code) && mail.html.contains(&t.code)));
    assert_eq!(mail.attachments.len(), 2);
    assert!(mail.attachments.iter().all(|a| a.content_type == "image/png" && a.size > 100));
    assert!(OffsetDateTime::parse(&mail.created_at, &time::format_description::well_known::Rfc3339).is_ok());

    // With an SMTP server there is no dev inbox to list.
    let smtp = SmtpServer::start().await;
    let with_smtp = Harness::new(backend, |s| s.set("smtp_url", smtp.url())).await;
    let request = tonic::Request::new(ListDevMailRequest::default());
    let status = with_smtp.service.list_dev_mail(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
}

async fn an_unreachable_identity_delays_the_email_but_loses_nothing(backend: Backend) {
    let harness = Harness::new(backend, |_| {}).await;
    let event = published(&harness).await;
    let order = issued(event.event_id, harness.user("ada@example.com"), 1);
    let envelope = Envelope::new("test", &order, None).unwrap();
    harness.recipients.set_unavailable(true);
    assert!(harness.consumer.handle(&envelope).await.is_err(), "the bus is asked to deliver it again");
    assert!(harness.deliveries().await.is_empty());
    harness.recipients.set_unavailable(false);
    harness.consumer.handle(&envelope).await.unwrap();
    assert_eq!(harness.deliveries().await.len(), 1);
    // The email is cached with the holder: a later order asks identity no more.
    let lookups = harness.recipients.lookups();
    harness.feed(&issued(event.event_id, order.buyer_id, 1)).await;
    assert_eq!(harness.recipients.lookups(), lookups);
    assert_eq!(harness.count("ada@example.com", "order_confirmation").await, 2);
}

async fn an_event_not_heard_of_is_looked_up(backend: Backend) {
    let harness = Harness::new(backend, |_| {}).await;
    let known_elsewhere = snapshot(EventId::new(), STARTS, "Paradiso", 5);
    harness.events.insert(EventInfo::from_snapshot(&known_elsewhere));
    harness.feed(&issued(known_elsewhere.event_id, harness.user("ada@example.com"), 1)).await;
    // Not even catalog knows this one: the email goes out without the event's details.
    harness.feed(&issued(EventId::new(), harness.user("bob@example.com"), 1)).await;
    harness.step(now_ms()).await;
    let ada = &harness.dev_mail("ada@example.com", 0).await[0];
    assert_eq!(ada.subject, "Your tickets for Night of the Test Suite");
    assert!(ada.body.contains("Paradiso"));
    let bob = &harness.dev_mail("bob@example.com", 0).await[0];
    assert_eq!(bob.subject, "Your tickets");
    assert_eq!(bob.attachments.len(), 1);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(harness.db.pool()).await.unwrap();
    assert_eq!(stored, 1, "what catalog said is kept");
}
