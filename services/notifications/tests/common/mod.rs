//! What the notifications tests that drive its pieces directly share: a harness over a fresh
//! database with identity and catalog in memory, and domain events built as publishers build
//! them.

// Each test binary uses a different part of this module; an unwrap or panic is a failed assertion.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub use std::{io::Cursor, sync::Arc};

pub use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
pub use eventhive_domain::{
    EventId, OrderId, OrganizationId, TicketId, TicketTypeId, UserId,
    events::{
        DomainEvent, Envelope, EventCancelled, EventChanged, EventPublished, EventSnapshot, IssuedTicket, OrderExpired,
        OrderLine, OrderRefunded, OrderSummary, TicketTypeSnapshot, TicketsIssued, VenueSnapshot,
    },
};
pub use eventhive_notifications::{
    EVENT_CANCELLED_REASON, EmailConsumer, EventInfo, InMemoryEvents, InMemoryRecipients, MIGRATIONS,
    NotificationsService, SERVICE, SendReport, Sender, Templates,
};
pub use eventhive_platform::{Database, Settings, bus::MessageHandler, storage::now_ms};
pub use eventhive_proto::notifications::{
    ListDeadLettersRequest, ListDevMailRequest, ReplayDeadLettersRequest, notifications_server::Notifications,
};
pub use eventhive_test_support::{Backend, on_both_backends, smtp::SmtpServer};
pub use mail_parser::{MessageParser, MimeHeaders};
pub use time::{OffsetDateTime, macros::datetime};

/// Notifications' pieces on a fresh database, with identity and catalog in memory.
pub struct Harness {
    pub backend: Backend,
    pub settings: Settings,
    pub db: Database,
    pub consumer: EmailConsumer,
    pub sender: Sender,
    pub service: NotificationsService,
    pub recipients: InMemoryRecipients,
    pub events: InMemoryEvents,
    pub _data_dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
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
    pub async fn feed<E: DomainEvent>(&self, event: &E) -> Envelope {
        let envelope = Envelope::new("test", event, None).unwrap();
        self.consumer.handle(&envelope).await.unwrap();
        envelope
    }

    /// A user known to identity.
    pub fn user(&self, email: &str) -> UserId {
        let id = UserId::new();
        self.recipients.insert(id, email);
        id
    }

    pub async fn step(&self, now: i64) -> SendReport {
        self.sender.step(now).await.unwrap()
    }

    /// (recipient, kind, status) of every delivery, sorted.
    pub async fn deliveries(&self) -> Vec<(String, String, String)> {
        let mut rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT recipient, kind, status FROM deliveries").fetch_all(self.db.pool()).await.unwrap();
        rows.sort();
        rows
    }

    pub async fn count(&self, recipient: &str, kind: &str) -> usize {
        self.deliveries().await.iter().filter(|(to, k, _)| to == recipient && k == kind).count()
    }

    pub async fn dev_mail(&self, to: &str, limit: i64) -> Vec<eventhive_proto::notifications::DevMail> {
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

pub fn snapshot(event_id: EventId, starts_at: OffsetDateTime, venue: &str, revision: i64) -> EventSnapshot {
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

pub const STARTS: OffsetDateTime = datetime!(2027-06-12 19:30 UTC);

/// A published event.
pub async fn published(harness: &Harness) -> EventSnapshot {
    let event = snapshot(EventId::new(), STARTS, "Paradiso", 1);
    harness.feed(&EventPublished { event: event.clone() }).await;
    event
}

/// A code shaped like ticketing's: 97 random-looking bytes, base64url.
pub fn code(seed: u8) -> String {
    let bytes: Vec<u8> = (0..97u8).map(|i| i.wrapping_mul(31).wrapping_add(seed)).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn issued(event_id: EventId, buyer_id: UserId, tickets: usize) -> TicketsIssued {
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

pub fn summary(order: &TicketsIssued) -> OrderSummary {
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
pub fn read_qr(png_bytes: &[u8]) -> String {
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
