//! analytics: each event's sales figures for its organizers — tickets sold, held and
//! available, revenue, check-ins, per ticket type and per minute — as a read model built from
//! catalog's and ticketing's domain events, served once or as a live stream, and rebuilt from
//! the stored events on demand.
//!
//! Each event is applied once however often it is delivered and in any order: the read model
//! stores facts that converge (an order's furthest status, the newest snapshot of an event)
//! and sums them only when the figures are read.
//!
//! # Layout
//! - [`service`]: the gRPC glue: parse a request, run one operation, answer.
//! - [`projection`]: the bus consumer that applies each envelope once, and the rebuild.
//! - [`facts`]: what an envelope tells the read model, and an order's status ranks.
//! - [`figures`]: the figures of one event, aggregated at read time.
//! - [`live`]: the live stream of an event's figures.
//! - [`access`]: who may read them.
//! - [`repository`]: every statement on analytics' tables: the event log, the read model and
//!   the versions live streams poll.
//! - [`error`]: analytics' errors and their gRPC statuses.

mod access;
mod error;
mod facts;
mod figures;
mod live;
mod projection;
mod repository;
mod service;

use std::sync::Arc;

use eventhive_platform::{
    Context, Database, NoSettings, Service, Settings, async_trait::async_trait, bus::Subscription, grpc,
    shutdown::CancellationToken,
};
use eventhive_proto::analytics::analytics_server::AnalyticsServer;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

pub use live::WatchTiming;
pub use projection::Projection;
pub use service::{AnalyticsService, FiguresStream};

/// The name of this service: its database, its logs, its gRPC health entry.
pub const SERVICE: &str = "analytics";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// A built analytics service, bound to its listener and already consuming, ready to run.
pub struct Application {
    /// Bound by the caller (port 0 in tests), so that `eventhive dev` can run every service in
    /// one process.
    listener: TcpListener,
    /// Consuming since build; the gRPC service reads through it and is woken by it.
    projection: Projection,
    /// Closed once the server has drained.
    db: Database,
    /// Stops the subscription, which starts at build time.
    consuming: CancellationToken,
}

#[async_trait]
impl Service for Application {
    const NAME: &'static str = SERVICE;
    const DEFAULT_PORT: u16 = 50056;
    const USES_BUS: bool = true;
    type Settings = NoSettings;

    fn migrations() -> Option<&'static Migrator> {
        Some(&MIGRATIONS)
    }

    /// Subscribes to the events the figures are made of (at once, so that nothing published
    /// from now on is missed).
    async fn build(context: Context) -> anyhow::Result<Self> {
        let db = context.database()?;
        let projection = Projection::new(db.clone());
        let consuming = CancellationToken::new();
        let subscription = Subscription::new(projection::QUEUE, projection::routing_keys());
        context.bus.subscribe(subscription, Arc::new(projection.clone()), consuming.clone()).await?;
        Ok(Self { listener: context.listener, projection, db, consuming })
    }

    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let consuming = self.consuming.clone();
        let stop_consuming = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop_consuming.cancelled() => {}
                // Already stopped: the server failed.
                () = consuming.cancelled() => {}
            }
            consuming.cancel();
        });
        // The inbox's old claims; the event log is kept for rebuilds.
        tokio::spawn(eventhive_platform::outbox::prune_periodically(self.db.clone(), shutdown.clone()));
        let health = tonic_health::server::health_reporter();
        let service = AnalyticsServer::new(AnalyticsService::new(self.projection, shutdown.clone()));
        let result = grpc::serve(SERVICE, self.listener, service, health, shutdown).await;
        self.consuming.cancel();
        self.db.close().await;
        result
    }
}

/// Rebuilds the read model of the database `settings` name from its event log (`eventhive
/// analytics rebuild`); returns how many events were replayed. Running replicas see the new
/// figures at their next poll.
pub async fn rebuild(settings: &Settings) -> anyhow::Result<u64> {
    let db = Database::connect(settings, SERVICE).await?;
    db.migrate(&MIGRATIONS).await?;
    let replayed = Projection::new(db.clone()).rebuild().await;
    db.close().await;
    replayed
}
