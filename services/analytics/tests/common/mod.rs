//! What the analytics tests share: a read model on a fresh database of either backend (removed
//! afterwards, also when the test fails), a service over it, and a sale to feed it — every
//! domain event built with `Envelope::new`, as the publishers build them.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use eventhive_analytics::{
    AnalyticsService, LiveConfig, MIGRATIONS, Memberships, Projection, SERVICE, StreamCaps, WatchTiming,
};
use eventhive_domain::{
    EventId, OrderId, OrganizationId, TicketId, TicketTypeId, UserId,
    events::{
        AdmissionsExpired, BuyersAdmitted, DomainEvent, Envelope, EventChanged, EventPublished, EventSnapshot,
        OrderCancelled, OrderExpired, OrderLine, OrderPaid, OrderPlaced, OrderRefunded, OrderSummary, TicketCheckedIn,
        TicketTypeSnapshot, VenueSnapshot, WaitingRoomOpened, WaitingRoomSoldOut,
    },
};
use eventhive_platform::{Database, Settings, bus::MessageHandler, shutdown::CancellationToken, storage};
use eventhive_proto::{
    analytics::{EventAnalytics, GetEventAnalyticsRequest, analytics_server::Analytics},
    common::{Actor, Membership},
};
use time::{OffsetDateTime, macros::datetime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` as two tests, `sqlite::<name>` and `postgres::<name>`.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if !eventhive_test_support::infra::run_infra_test() {
                        return;
                    }
                    super::$test(super::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Settings for a fresh analytics database: a SQLite file in `dir`, or a uniquely named
/// PostgreSQL database.
pub fn settings(backend: Backend, dir: &tempfile::TempDir) -> Settings {
    let mut settings = Settings {
        data_dir: dir.path().to_owned(),
        secret_key: Some(eventhive_platform::Secrets::new_key_text().unwrap().into()),
        ..Settings::default()
    };
    settings.set("analytics_port", 0);
    // Nothing answers there: these tests re-check no reader through identity.
    settings.set("identity_url", "http://127.0.0.1:1");
    if backend == Backend::Postgres {
        let url = std::env::var("EVENTHIVE_TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".to_owned());
        settings.database_url = Some(url);
        settings.database_prefix = format!("eh_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    }
    settings
}

/// Drops the PostgreSQL database of `settings` when dropped, also when the test panicked.
pub struct Cleanup {
    pub settings: Settings,
    /// Keeps the SQLite file alive as long as the test.
    pub dir: tempfile::TempDir,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(url) = self.settings.database_url.clone() else { return };
        let name = format!("{}_{}", self.settings.database_prefix, SERVICE);
        // Drop is not async and the test's runtime may be going away: a thread of our own.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            if let Err(error) = runtime.block_on(storage::drop_postgres_database(&url, &name)) {
                eprintln!("cannot drop test database {name}: {error:#}");
            }
        });
        let _ = cleanup.join();
    }
}

/// Memberships as identity would answer, changed by the test: everyone is a member of whatever
/// their request's actor said, until the test removes them.
#[derive(Default)]
pub struct FakeMemberships {
    /// User ids whose memberships are all gone.
    removed: Mutex<HashSet<String>>,
    /// User ids and the organization they are a member of (staff).
    known: Mutex<HashMap<String, String>>,
    /// When set, identity is unreachable.
    pub failing: std::sync::atomic::AtomicBool,
}

impl FakeMemberships {
    pub fn remember(&self, actor: &Actor) {
        if let Some(m) = actor.memberships.first() {
            self.known.lock().unwrap().insert(actor.user_id.clone(), m.organization_id.clone());
        }
    }

    pub fn remove(&self, user_id: &str) {
        self.removed.lock().unwrap().insert(user_id.to_owned());
    }
}

#[eventhive_platform::async_trait::async_trait]
impl Memberships for FakeMemberships {
    async fn of(&self, user_id: &str) -> anyhow::Result<Vec<Membership>> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            anyhow::bail!("identity is down");
        }
        if self.removed.lock().unwrap().contains(user_id) {
            return Ok(vec![]);
        }
        let known = self.known.lock().unwrap().get(user_id).cloned();
        Ok(known.into_iter().map(|organization_id| Membership { organization_id, role: "staff".into() }).collect())
    }
}

/// A read model on a fresh database and the gRPC service over it, driven directly.
pub struct Harness {
    pub projection: Projection,
    /// What the service's membership re-checks find.
    pub memberships: Arc<FakeMemberships>,
    pub service: AnalyticsService,
    pub db: Database,
    pub shutdown: CancellationToken,
    pub cleanup: Cleanup,
}

impl Harness {
    pub async fn new(backend: Backend) -> Self {
        Self::with_timing(backend, WatchTiming::default()).await
    }

    pub async fn with_timing(backend: Backend, timing: WatchTiming) -> Self {
        Self::with_live(backend, timing, StreamCaps::default()).await
    }

    pub async fn with_live(backend: Backend, timing: WatchTiming, caps: StreamCaps) -> Self {
        eventhive_platform::telemetry::init_for_tests();
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(backend, &dir);
        let cleanup = Cleanup { settings, dir };
        let db = Database::connect(&cleanup.settings, SERVICE).await.unwrap();
        db.migrate(&MIGRATIONS).await.unwrap();
        let projection = Projection::new(db.clone());
        let shutdown = CancellationToken::new();
        let memberships = Arc::new(FakeMemberships::default());
        let live = LiveConfig { timing, caps, listen_url: eventhive_analytics::listen_url(&cleanup.settings).unwrap() };
        let service = AnalyticsService::new(projection.clone(), memberships.clone(), live, shutdown.clone());
        Self { projection, memberships, service, db, shutdown, cleanup }
    }

    /// Hands one envelope to the consumer, as the bus would.
    pub async fn deliver(&self, envelope: &Envelope) {
        self.projection.handle(envelope).await.unwrap();
    }

    pub async fn deliver_all<'a>(&self, envelopes: impl IntoIterator<Item = &'a Envelope>) {
        for envelope in envelopes {
            self.deliver(envelope).await;
        }
    }

    /// The figures as `actor` asks for them.
    pub async fn get_as(&self, actor: Option<Actor>, event_id: &str) -> Result<EventAnalytics, tonic::Status> {
        let request = GetEventAnalyticsRequest { actor, event_id: event_id.to_owned() };
        self.service.get_event_analytics(tonic::Request::new(request)).await.map(tonic::Response::into_inner)
    }

    /// The live figures as `actor` watches them; the fake identity knows `actor`'s membership
    /// until the test removes it.
    pub async fn watch_as(
        &self,
        actor: &Actor,
        event_id: &str,
    ) -> Result<eventhive_analytics::FiguresStream, tonic::Status> {
        self.memberships.remember(actor);
        let request = GetEventAnalyticsRequest { actor: Some(actor.clone()), event_id: event_id.to_owned() };
        self.service.watch_event_analytics(tonic::Request::new(request)).await.map(tonic::Response::into_inner)
    }

    /// The figures as the organization's owner sees them, checked for sold + held + available
    /// = capacity.
    pub async fn figures(&self, sale: &Sale) -> EventAnalytics {
        let figures = self.get_as(Some(sale.member("owner")), &sale.event_id.to_string()).await.unwrap();
        assert_balanced(&figures);
        figures
    }

    pub async fn close(self) {
        self.shutdown.cancel();
        self.db.close().await;
    }
}

/// sold + held + available = capacity, per ticket type and in total.
pub fn assert_balanced(figures: &EventAnalytics) {
    let mut capacity = 0;
    for t in &figures.by_ticket_type {
        assert_eq!(t.sold + t.held + t.available, t.capacity, "ticket type {}: {t:?}", t.name);
        capacity += t.capacity;
    }
    assert_eq!(
        figures.tickets_sold + figures.tickets_held + figures.tickets_available,
        capacity,
        "sold {} + held {} + available {} = capacity {capacity}",
        figures.tickets_sold,
        figures.tickets_held,
        figures.tickets_available,
    );
}

/// An event on sale with two ticket types, and builders for the events of its orders.
#[derive(Debug, Clone)]
pub struct Sale {
    pub event_id: EventId,
    pub organization_id: OrganizationId,
    /// VIP: 10 at 50.00.
    pub vip: TicketTypeSnapshot,
    /// General admission: 100 at 20.00.
    pub general: TicketTypeSnapshot,
}

impl Default for Sale {
    fn default() -> Self {
        Self::new()
    }
}

impl Sale {
    pub fn new() -> Self {
        Self {
            event_id: EventId::new(),
            organization_id: OrganizationId::new(),
            vip: TicketTypeSnapshot { id: TicketTypeId::new(), name: "VIP".into(), price_minor: 5000, capacity: 10 },
            general: TicketTypeSnapshot {
                id: TicketTypeId::new(),
                name: "General admission".into(),
                price_minor: 2000,
                capacity: 100,
            },
        }
    }

    pub fn total_capacity(&self) -> i64 {
        self.vip.capacity + self.general.capacity
    }

    /// An actor with `role` in the event's organization.
    pub fn member(&self, role: &str) -> Actor {
        Actor {
            user_id: UserId::new().to_string(),
            memberships: vec![Membership { organization_id: self.organization_id.to_string(), role: role.into() }],
        }
    }

    pub fn snapshot(&self, revision: i64, ticket_types: Vec<TicketTypeSnapshot>) -> EventSnapshot {
        EventSnapshot {
            event_id: self.event_id,
            organization_id: self.organization_id,
            title: "Summer festival".into(),
            venue: VenueSnapshot { name: "Park".into(), city: "Utrecht".into(), country: "NL".into() },
            starts_at: datetime!(2027-06-01 19:30 UTC),
            ends_at: datetime!(2027-06-01 23:00 UTC),
            currency: "EUR".into(),
            max_tickets_per_order: 10,
            max_tickets_per_buyer: 10,
            status: "on_sale".into(),
            ticket_types,
            revision,
        }
    }

    pub fn published(&self) -> Envelope {
        let event = self.snapshot(1, vec![self.vip.clone(), self.general.clone()]);
        envelope("catalog", &EventPublished { event })
    }

    /// A later snapshot with `extra` more general admission tickets.
    pub fn changed(&self, revision: i64, extra: i64) -> Envelope {
        let mut general = self.general.clone();
        general.capacity += extra;
        envelope(
            "catalog",
            &EventChanged {
                event: self.snapshot(revision, vec![self.vip.clone(), general]),
                changed_fields: vec!["ticket_types".into()],
                time_changed: false,
                venue_changed: false,
            },
        )
    }

    /// An order of `vip` VIP and `general` general admission tickets.
    pub fn order(&self, vip: i64, general: i64) -> OrderSummary {
        let mut lines = Vec::new();
        for (ticket_type, quantity) in [(&self.vip, vip), (&self.general, general)] {
            if quantity > 0 {
                lines.push(OrderLine {
                    ticket_type_id: ticket_type.id,
                    quantity,
                    unit_price_minor: ticket_type.price_minor,
                });
            }
        }
        let total_minor = lines.iter().map(|l| l.quantity * l.unit_price_minor).sum();
        OrderSummary {
            order_id: OrderId::new(),
            event_id: self.event_id,
            buyer_id: UserId::new(),
            lines,
            total_minor,
            currency: "EUR".into(),
        }
    }

    /// The event's waiting room opened at `at` with `early_arrivals` drawn.
    pub fn room_opened(&self, at: OffsetDateTime, early_arrivals: i64) -> Envelope {
        let opened =
            WaitingRoomOpened { event_id: self.event_id, opened_at: at, early_arrivals, draw_seed: "seed".into() };
        envelope("waiting_room", &opened)
    }

    /// An admission step at `at`: `admitted` let in, `admitted_total` in all, `queued` left.
    pub fn room_admitted(&self, at: OffsetDateTime, admitted: i64, admitted_total: i64, queued: i64) -> Envelope {
        envelope("waiting_room", &BuyersAdmitted { event_id: self.event_id, admitted, admitted_total, queued, at })
    }

    pub fn room_sold_out(&self, at: OffsetDateTime, sold_out: bool) -> Envelope {
        envelope("waiting_room", &WaitingRoomSoldOut { event_id: self.event_id, sold_out, at })
    }

    pub fn room_expired(&self, at: OffsetDateTime, expired: i64, expired_total: i64) -> Envelope {
        envelope("waiting_room", &AdmissionsExpired { event_id: self.event_id, expired, expired_total, at })
    }

    pub fn checked_in(&self, ticket_type: &TicketTypeSnapshot, ticket_id: TicketId) -> Envelope {
        envelope(
            "ticketing",
            &TicketCheckedIn {
                ticket_id,
                event_id: self.event_id,
                ticket_type_id: ticket_type.id,
                checked_in_at: datetime!(2027-06-01 19:45 UTC),
            },
        )
    }
}

pub fn envelope<E: DomainEvent>(source: &str, event: &E) -> Envelope {
    Envelope::new(source, event, None).unwrap()
}

pub fn placed(order: &OrderSummary) -> Envelope {
    envelope("ticketing", &OrderPlaced { order: order.clone(), expires_at: datetime!(2027-05-01 12:10 UTC) })
}

pub fn paid(order: &OrderSummary, paid_at: OffsetDateTime) -> Envelope {
    envelope("ticketing", &OrderPaid { order: order.clone(), payment_id: "pay_1".into(), paid_at })
}

pub fn expired(order: &OrderSummary) -> Envelope {
    envelope("ticketing", &OrderExpired { order: order.clone() })
}

pub fn cancelled(order: &OrderSummary) -> Envelope {
    envelope("ticketing", &OrderCancelled { order: order.clone(), reason: "changed my mind".into() })
}

pub fn refunded(order: &OrderSummary) -> Envelope {
    envelope("ticketing", &OrderRefunded { order: order.clone(), reason: "event moved".into() })
}

/// Waits up to `within` for the next item of a stream.
pub async fn next_within<S>(stream: &mut S, within: Duration) -> Option<Result<EventAnalytics, tonic::Status>>
where
    S: futures::Stream<Item = Result<EventAnalytics, tonic::Status>> + Unpin,
{
    use futures::StreamExt;
    tokio::time::timeout(within, stream.next()).await.unwrap_or_else(|_| panic!("nothing within {within:?}"))
}
