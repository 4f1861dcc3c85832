//! Notifications' pieces, driven directly: domain events are handed to the consumer as the bus
//! would hand them, the sender is stepped at chosen times, and mail goes to a real (test) SMTP
//! server or into the dev inbox. Identity is an in-memory directory. On SQLite and on PostgreSQL.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{io::Cursor, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use eventhive_domain::{
    EventId, OrderId, OrganizationId, TicketId, TicketTypeId, UserId,
    events::{
        DomainEvent, Envelope, EventCancelled, EventChanged, EventPublished, EventSnapshot, IssuedTicket, OrderExpired,
        OrderLine, OrderRefunded, OrderSummary, TicketTypeSnapshot, TicketsIssued, VenueSnapshot,
    },
};
use eventhive_notifications::{
    EVENT_CANCELLED_REASON, EmailConsumer, EventInfo, InMemoryEvents, InMemoryRecipients, MIGRATIONS,
    NotificationsService, SERVICE, SendReport, Sender, Templates,
};
use eventhive_platform::{Database, Settings, bus::MessageHandler, storage::now_ms};
use eventhive_proto::notifications::{
    ListDeadLettersRequest, ListDevMailRequest, ReplayDeadLettersRequest, notifications_server::Notifications,
};
use eventhive_test_support::{Backend, on_both_backends, smtp::SmtpServer};
use mail_parser::{MessageParser, MimeHeaders};
use time::{OffsetDateTime, macros::datetime};

on_both_backends!(
    a_confirmation_carries_every_code_and_one_qr_image_per_ticket,
    a_redelivered_domain_event_sends_no_second_email,
    a_change_of_time_or_venue_reaches_each_holder_once,
    a_cancellation_reaches_each_holder_once_and_refunds_add_nothing,
    buyers_hear_of_their_own_refunds_and_of_expired_holds,
    a_server_failing_the_first_two_attempts_still_delivers_one_email,
    after_the_last_attempt_a_delivery_is_dead_until_replayed,
    without_smtp_the_dev_inbox_lists_the_mail,
    an_unreachable_identity_delays_the_email_but_loses_nothing,
    an_event_not_heard_of_is_looked_up,
);

/// Notifications' pieces on a fresh database, with identity and catalog in memory.
struct Harness {
    backend: Backend,
    settings: Settings,
    db: Database,
    consumer: EmailConsumer,
    sender: Sender,
    service: NotificationsService,
    recipients: InMemoryRecipients,
    events: InMemoryEvents,
    _data_dir: tempfile::TempDir,
}

impl Harness {
    async fn new(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        eventhive_platform::telemetry::init_for_tests();
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings = Settings { data_dir: data_dir.path().to_owned(), ..Settings::default() };
        if backend == Backend::Infra {
            let url = eventhive_test_support::infra::database_url();
            settings.database_url = Some(url);
            settings.database_prefix = format!("eh_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        }
        configure(&mut settings);
        let settings = settings.validated().unwrap();
        let db = Database::connect(&settings, SERVICE).await.unwrap();
        db.migrate(&MIGRATIONS).await.unwrap();
        let section: eventhive_notifications::NotificationsSettings = settings.section().unwrap();
        let sender = Sender::new(db.clone(), &section).unwrap();
        let recipients = InMemoryRecipients::new();
        let events = InMemoryEvents::new();
        let consumer = EmailConsumer::new(
            db.clone(),
            Arc::new(Templates::new().unwrap()),
            Arc::new(recipients.clone()),
            Arc::new(events.clone()),
            sender.clone(),
        );
        let service = NotificationsService::new(db.clone(), sender.clone());
        Self { backend, settings, db, consumer, sender, service, recipients, events, _data_dir: data_dir }
    }

    /// Hands `event` to the consumer in a new envelope, as the bus would; returns the envelope.
    async fn feed<E: DomainEvent>(&self, event: &E) -> Envelope {
        let envelope = Envelope::new("test", event, None).unwrap();
        self.consumer.handle(&envelope).await.unwrap();
        envelope
    }

    /// A user known to identity.
    fn user(&self, email: &str) -> UserId {
        let id = UserId::new();
        self.recipients.insert(id, email);
        id
    }

    async fn step(&self, now: i64) -> SendReport {
        self.sender.step(now).await.unwrap()
    }

    /// (recipient, kind, status) of every delivery, sorted.
    async fn deliveries(&self) -> Vec<(String, String, String)> {
        let mut rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT recipient, kind, status FROM deliveries").fetch_all(self.db.pool()).await.unwrap();
        rows.sort();
        rows
    }

    async fn count(&self, recipient: &str, kind: &str) -> usize {
        self.deliveries().await.iter().filter(|(to, k, _)| to == recipient && k == kind).count()
    }

    async fn dev_mail(&self, to: &str, limit: i64) -> Vec<eventhive_proto::notifications::DevMail> {
        let request = tonic::Request::new(ListDevMailRequest { to: to.into(), limit });
        self.service.list_dev_mail(request).await.unwrap().into_inner().messages
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let (Backend::Infra, Some(url)) = (self.backend, self.settings.database_url.clone()) else { return };
        let name = format!("{}_{SERVICE}", self.settings.database_prefix);
        let db = self.db.clone();
        // Drop is not async and the test's runtime is going away: clean up on a thread of our own.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                db.close().await;
                let _ = eventhive_platform::storage::drop_postgres_database(&url, &name).await;
            });
        });
        let _ = cleanup.join();
    }
}

fn snapshot(event_id: EventId, starts_at: OffsetDateTime, venue: &str, revision: i64) -> EventSnapshot {
    EventSnapshot {
        event_id,
        organization_id: OrganizationId::new(),
        title: "Night of the Test Suite".into(),
        venue: VenueSnapshot { name: venue.into(), city: "Amsterdam".into(), country: "NL".into() },
        starts_at,
        ends_at: starts_at + time::Duration::hours(3),
        currency: "EUR".into(),
        max_tickets_per_order: 10,
        max_tickets_per_buyer: 10,
        status: "on_sale".into(),
        ticket_types: vec![TicketTypeSnapshot {
            id: TicketTypeId::new(),
            name: "Standing".into(),
            price_minor: 4500,
            capacity: 100,
        }],
        revision,
    }
}

const STARTS: OffsetDateTime = datetime!(2027-06-12 19:30 UTC);

/// A published event.
async fn published(harness: &Harness) -> EventSnapshot {
    let event = snapshot(EventId::new(), STARTS, "Paradiso", 1);
    harness.feed(&EventPublished { event: event.clone() }).await;
    event
}

/// A code shaped like ticketing's: 97 random-looking bytes, base64url.
fn code(seed: u8) -> String {
    let bytes: Vec<u8> = (0..97u8).map(|i| i.wrapping_mul(31).wrapping_add(seed)).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn issued(event_id: EventId, buyer_id: UserId, tickets: usize) -> TicketsIssued {
    TicketsIssued {
        order_id: OrderId::new(),
        event_id,
        buyer_id,
        tickets: (0..tickets)
            .map(|n| IssuedTicket {
                ticket_id: TicketId::new(),
                ticket_type_id: TicketTypeId::new(),
                ticket_type_name: if n == 0 { "Standing".into() } else { "Balcony".into() },
                code: code(u8::try_from(n).unwrap() + 1),
            })
            .collect(),
    }
}

fn summary(order: &TicketsIssued) -> OrderSummary {
    OrderSummary {
        order_id: order.order_id,
        event_id: order.event_id,
        buyer_id: order.buyer_id,
        lines: vec![OrderLine {
            ticket_type_id: TicketTypeId::new(),
            quantity: i64::try_from(order.tickets.len()).unwrap(),
            unit_price_minor: 4500,
        }],
        total_minor: 4500 * i64::try_from(order.tickets.len()).unwrap(),
        currency: "EUR".into(),
    }
}

/// The text a QR image encodes.
fn read_qr(png_bytes: &[u8]) -> String {
    let mut decoder = png::Decoder::new(Cursor::new(png_bytes.to_vec()));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Grayscale);
    let (width, height) = (frame.width as usize, frame.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

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
