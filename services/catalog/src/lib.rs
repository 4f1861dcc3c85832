//! catalog: the organizers' events, their venues and ticket types, and the public search
//! buyers find them with. An event goes draft → on_sale → cancelled; only the owner and admins
//! of its organization change it; every public change is announced as a domain event
//! (`EventPublished`, `EventChanged`, `EventCancelled`) through the outbox.
//!
//! # Layout
//! - `service`: the gRPC glue: decodes a request, runs an operation, encodes the answer.
//! - `events`: the operations: create, update, publish, cancel, add a ticket type, get, search.
//! - `domain`: lifecycle, access rules, field parsing, page tokens.
//! - `repository`: every SQL statement on `events` and `ticket_types`.
//! - `error`: catalog's errors and their gRPC statuses.
//!
//! Only [`Application`], [`SERVICE`] and [`MIGRATIONS`] are public: the platform starts the
//! service through them, and nothing else reaches inside.

mod domain;
mod error;
mod events;
mod repository;
mod service;

use std::{sync::Arc, time::Duration};

use eventhive_platform::{Database, Settings, bus::MessageBus, grpc, outbox::OutboxRelay, shutdown::CancellationToken};
use eventhive_proto::catalog::catalog_server::CatalogServer;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

/// The name of this service: its database, its logs, its gRPC health entry, its events' source.
pub const SERVICE: &str = "catalog";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

pub struct Application {
    listener: TcpListener,
    service: service::CatalogService,
    relay: OutboxRelay,
    db: Database,
    outbox_poll: Duration,
}

impl Application {
    /// Connects and migrates the database. `listener` may be on port 0.
    pub async fn build(settings: &Settings, listener: TcpListener, bus: Arc<dyn MessageBus>) -> anyhow::Result<Self> {
        let db = Database::connect(settings, SERVICE).await?;
        db.migrate(&MIGRATIONS).await?;
        let relay = OutboxRelay::new(db.clone(), bus);
        let service = service::CatalogService::new(db.clone(), relay.clone());
        Ok(Self { listener, service, relay, db, outbox_poll: Duration::from_millis(settings.outbox_poll_ms) })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The outbox relay, for tests that drive it step by step.
    pub fn relay(&self) -> OutboxRelay {
        self.relay.clone()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let relay = tokio::spawn(self.relay.run(self.outbox_poll, shutdown.clone()));
        let health = tonic_health::server::health_reporter();
        let result = grpc::serve(SERVICE, self.listener, CatalogServer::new(self.service), health, shutdown).await;
        if let Err(error) = relay.await {
            tracing::error!(%error, "outbox relay task failed");
        }
        self.db.close().await;
        result
    }
}
