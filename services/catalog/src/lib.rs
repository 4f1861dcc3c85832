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
//! - `sales`: ticketing, which must stop selling before a cancellation is committed.
//! - `error`: catalog's errors and their gRPC statuses.
//!
//! Only [`Application`], [`SERVICE`] and [`MIGRATIONS`] are public: the platform starts the
//! service through them, and nothing else reaches inside.

mod domain;
mod error;
mod events;
mod repository;
mod sales;
mod service;

use std::time::Duration;

use eventhive_platform::{
    Context, Database, NoSettings, Service, async_trait::async_trait, grpc, outbox::OutboxRelay,
    shutdown::CancellationToken,
};
use eventhive_proto::{catalog::catalog_server::CatalogServer, ticketing::ticketing_client::TicketingClient};
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

/// The name of this service: its database, its logs, its gRPC health entry, its events' source.
pub const SERVICE: &str = "catalog";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

pub struct Application {
    listener: TcpListener,
    /// The deployment's secret key: the service token its gRPC server asks of callers.
    secrets: eventhive_platform::Secrets,
    service: service::CatalogService,
    relay: OutboxRelay,
    db: Database,
    outbox_poll: Duration,
}

#[async_trait]
impl Service for Application {
    const NAME: &'static str = SERVICE;
    const DEFAULT_PORT: u16 = 50052;
    const USES_BUS: bool = true;
    type Settings = NoSettings;

    fn migrations() -> Option<&'static Migrator> {
        Some(&MIGRATIONS)
    }

    async fn build(context: Context) -> anyhow::Result<Self> {
        let secrets = context.secrets()?;
        let db = context.database()?;
        let relay = OutboxRelay::new(db.clone(), context.bus.clone());
        let deadline = Duration::from_millis(context.settings.grpc_deadline_ms);
        let ticketing =
            TicketingClient::new(grpc::channel(&context.settings.endpoint("ticketing")?, deadline, &secrets)?);
        let sales = sales::Sales::new(ticketing, deadline / 2);
        let service = service::CatalogService::new(db.clone(), relay.clone(), sales);
        let outbox_poll = Duration::from_millis(context.settings.outbox_poll_ms);
        Ok(Self { listener: context.listener, secrets, service, relay, db, outbox_poll })
    }

    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let relay = tokio::spawn(self.relay.run(self.outbox_poll, shutdown.clone()));
        let health = tonic_health::server::health_reporter();
        let result =
            grpc::serve(SERVICE, self.listener, CatalogServer::new(self.service), health, shutdown, &self.secrets)
                .await;
        if let Err(error) = relay.await {
            tracing::error!(%error, "outbox relay task failed");
        }
        self.db.close().await;
        result
    }
}
