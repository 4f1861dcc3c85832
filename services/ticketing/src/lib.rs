//! ticketing: what is for sale and who holds it. It keeps the inventory of every ticket type,
//! holds tickets for new orders (never below zero, under any concurrency), runs the purchase
//! saga through payments, issues signed tickets, checks them in at the door, and expires,
//! cancels and refunds — also after a crash between any two steps.
//!
//! # Layout
//! - [`service`]: the gRPC glue: parses requests into domain types, answers in the contract's;
//!   [`error`] maps every failure to a `Status`.
//! - [`engine`]: what every operation shares; the operations are in:
//!   - [`orders`]: place (hold), read, list, cancel by the buyer, expire, cancel unpaid;
//!   - [`purchase`]: the saga: pay, complete, refund, resolve abandoned payments;
//!   - [`tickets`]: signed codes, issuance, check-in, the buyer's tickets;
//!   - [`sweeper`]: the background pass that keeps orders moving;
//!   - [`sales`]: closing an event's sales at once, when catalog cancels it;
//!   - [`purchase_latency`]: the rolling window of purchase latencies the waiting room paces on;
//!   - [`admissions`]: the waiting room's admission an order needs for an event with a room;
//!   - [`event_lists`]: an event's orders and tickets, for its organization's exports.
//! - [`saga`]: the order state machine.
//! - [`repository`]: the SQL, one owner per table: [`repository::orders`],
//!   [`repository::tickets`], [`repository::catalog`]; and
//!   - [`inventory`]: sharded counters and where each order's tickets came from;
//!   - [`idempotency`]: idempotency keys, scoped to a named operation.
//! - [`views`]: the public forms of orders and tickets; [`paging`]: keyset pages.
//! - [`catalog_sync`]: ticketing's copy of catalog's events.
//! - [`faults`]: fault points between saga steps.
//!
//! Every module is private; what other crates use is re-exported below.

mod admissions;
mod catalog_sync;
mod engine;
mod error;
mod event_lists;
mod faults;
mod idempotency;
mod inventory;
mod orders;
mod paging;
mod purchase;
mod purchase_latency;
mod repository;
mod saga;
mod sales;
mod service;
mod sweeper;
mod tickets;
mod views;

use std::{sync::Arc, time::Duration};

use eventhive_domain::events::{DomainEvent, EventCancelled, EventChanged, EventPublished};
use eventhive_platform::{
    Context, Database, Section, Service, async_trait::async_trait, bus::Subscription, config::ConfigError, grpc,
    outbox::OutboxRelay, service::Handles as ServiceHandles, shutdown::CancellationToken,
};
use eventhive_proto::{
    catalog::catalog_client::CatalogClient, payments::payments_client::PaymentsClient,
    ticketing::ticketing_server::TicketingServer,
};
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use tokio::{net::TcpListener, sync::Notify};

pub use error::TicketingError;
pub use faults::{FaultPoint, Faults};
pub use sweeper::{Sweep, Sweeper};

pub const SERVICE: &str = "ticketing";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// `eventhive keys rotate`, ticketing's part: every event's private signing key sealed with the
/// current secret key (a key sealed with the previous one, or stored before sealing existed).
/// The keys themselves stay: the codes on issued tickets must verify at the door until the
/// event, offline too, so an event's key lives as long as its tickets.
pub async fn reseal_keys(settings: &eventhive_platform::Settings) -> anyhow::Result<String> {
    let secrets = eventhive_platform::Secrets::load(settings)?;
    let db = eventhive_platform::service::open_database(settings, SERVICE, Some(&MIGRATIONS))
        .await?
        .ok_or_else(|| anyhow::anyhow!("ticketing has a database"))?;
    let mut conn = db.pool().acquire().await?;
    let mut resealed = 0;
    for (event_id, stored) in repository::catalog::signing_keys(&mut conn).await? {
        let opened = secrets.open(tickets::EVENT_KEY_PURPOSE, &stored)?;
        if !opened.current {
            let sealed = secrets.seal(tickets::EVENT_KEY_PURPOSE, &opened.plaintext)?;
            repository::catalog::reseal_signing_key(&mut conn, &event_id, &sealed).await?;
            resealed += 1;
        }
    }
    drop(conn);
    db.close().await;
    Ok(format!("ticketing: {resealed} event signing keys sealed with the current secret key"))
}

/// Ticketing's settings section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TicketingSettings {
    /// How long a new order holds its tickets.
    pub hold_ttl_secs: u64,
    /// Counter rows per ticket type: more rows let more buyers of one ticket type hold
    /// tickets at the same moment without waiting on one hot row.
    pub inventory_shards: u32,
    /// How often ticketing expires holds and resumes interrupted sagas.
    pub sweep_interval_ms: u64,
}

impl Default for TicketingSettings {
    fn default() -> Self {
        Self { hold_ttl_secs: 600, inventory_shards: 4, sweep_interval_ms: 1000 }
    }
}

impl Section for TicketingSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.hold_ttl_secs == 0 {
            return Err(ConfigError::new("hold_ttl_secs", "must be positive"));
        }
        if !(1..=64).contains(&self.inventory_shards) {
            return Err(ConfigError::new("inventory_shards", "must be between 1 and 64"));
        }
        if self.sweep_interval_ms == 0 {
            return Err(ConfigError::new("sweep_interval_ms", "must be positive"));
        }
        Ok(())
    }
}

/// What tests (and operators' tools) reach into a running ticketing with.
#[derive(Clone)]
pub struct Handles {
    pub sweeper: Sweeper,
    pub faults: Faults,
    pub relay: OutboxRelay,
}

/// Catalog's events, which keep ticketing's copy of catalog.
fn subscription() -> Subscription {
    Subscription::new(
        "ticketing.catalog",
        [EventPublished::routing_key(), EventChanged::routing_key(), EventCancelled::routing_key()],
    )
}

pub struct Application {
    listener: TcpListener,
    /// The deployment's secret key: the service token its gRPC server asks of callers.
    secrets: eventhive_platform::Secrets,
    engine: engine::Engine,
    sweeper: Sweeper,
    relay: OutboxRelay,
    db: Database,
    outbox_poll: Duration,
    sweep_interval: Duration,
    /// Stops the catalog subscription, which starts at build time.
    consuming: CancellationToken,
}

#[async_trait]
impl Service for Application {
    const NAME: &'static str = SERVICE;
    const DEFAULT_PORT: u16 = 50053;
    const USES_BUS: bool = true;
    type Settings = TicketingSettings;

    fn migrations() -> Option<&'static Migrator> {
        Some(&MIGRATIONS)
    }

    fn subscriptions() -> Vec<Subscription> {
        vec![subscription()]
    }

    /// Subscribes to catalog's events (at once, so that nothing catalog publishes from now on
    /// is missed).
    async fn build(context: Context) -> anyhow::Result<Self> {
        let secrets = context.secrets()?;
        let settings: TicketingSettings = context.section()?;
        let db = context.database()?;
        let deadline = Duration::from_millis(context.settings.grpc_deadline_ms);
        let catalog = CatalogClient::new(grpc::channel(&context.settings.endpoint("catalog")?, deadline, &secrets)?);
        // The gateway's call to ticketing has `grpc_deadline_ms`; a payment made for it must end
        // well inside it, so that ticketing learns its outcome (or that it is unknown) and answers
        // while its caller still waits. (A caller that leaves anyway does not stop the payment:
        // see `purchase`.)
        let payments =
            PaymentsClient::new(grpc::channel(&context.settings.endpoint("payments")?, deadline / 2, &secrets)?);
        let relay = OutboxRelay::new(db.clone(), context.bus.clone());
        let wake = Arc::new(Notify::new());
        let sync = catalog_sync::CatalogSync::new(
            db.clone(),
            catalog,
            i64::from(settings.inventory_shards),
            wake.clone(),
            secrets.clone(),
        );
        let engine = engine::Engine::new(
            db.clone(),
            sync.clone(),
            payments,
            relay.clone(),
            secrets.clone(),
            Duration::from_secs(settings.hold_ttl_secs),
            deadline,
        );
        let consuming = CancellationToken::new();
        context.bus.subscribe(subscription(), Arc::new(sync), consuming.clone()).await?;
        Ok(Self {
            listener: context.listener,
            secrets,
            sweeper: Sweeper::new(engine.clone(), wake),
            engine,
            relay,
            db,
            outbox_poll: Duration::from_millis(context.settings.outbox_poll_ms),
            sweep_interval: Duration::from_millis(settings.sweep_interval_ms),
            consuming,
        })
    }

    fn handles(&self) -> ServiceHandles {
        ServiceHandles::of(Handles {
            sweeper: self.sweeper.clone(),
            faults: self.engine.faults().clone(),
            relay: self.relay.clone(),
        })
    }

    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let relay = tokio::spawn(self.relay.clone().run(self.outbox_poll, shutdown.clone()));
        let sweeper = tokio::spawn(self.sweeper.clone().run(self.sweep_interval, shutdown.clone()));
        let consuming = self.consuming.clone();
        let stop_consuming = shutdown.clone();
        tokio::spawn(async move {
            stop_consuming.cancelled().await;
            consuming.cancel();
        });
        let health = tonic_health::server::health_reporter();
        let service = TicketingServer::new(service::TicketingService::new(self.engine));
        let result = grpc::serve(SERVICE, self.listener, service, health, shutdown, &self.secrets).await;
        for task in [relay, sweeper] {
            if let Err(error) = task.await {
                tracing::error!(%error, "ticketing background task failed");
            }
        }
        self.db.close().await;
        result
    }
}
