//! analytics: each event's sales figures for its organizers — tickets sold, held and
//! available, revenue, check-ins, per ticket type and per minute, and its waiting room's queue
//! and admissions — as a read model built from catalog's, ticketing's and the waiting room's
//! domain events, served once or as a live stream, and rebuilt from
//! the stored events on demand.
//!
//! Each event is applied once however often it is delivered and in any order: the read model
//! stores facts that converge (an order's furthest status, the newest snapshot of an event),
//! and keeps the figures up to date in the same transaction by the difference each fact makes,
//! so that a read costs a few rows whatever the size of the event.
//!
//! # Layout
//! - [`service`]: the gRPC glue: parse a request, run one operation, answer.
//! - [`projection`]: the bus consumer that applies each envelope once, and the rebuild.
//! - [`facts`]: what an envelope tells the read model, and an order's status ranks.
//! - [`tally`]: what an order counts for, and the delta a change of its state makes.
//! - [`figures`]: the figures of one event, read from the kept rows.
//! - [`fanout`]: one refresh per change of an event's figures, shared by all its streams;
//!   the caps on open streams.
//! - [`live`]: one reader's live stream: changes, keep-alive, membership re-checks.
//! - [`access`]: who may read them.
//! - [`repository`]: every statement on analytics' tables: the event log, the read model, the
//!   kept figures and the versions live streams look at.
//! - [`waiting_rooms`]: the waiting rooms' figures, from the waiting room's events, applied by
//!   the projection like the sales' and served with them.
//! - [`error`]: analytics' errors and their gRPC statuses.

mod access;
mod error;
mod facts;
mod fanout;
mod figures;
mod live;
mod projection;
mod repository;
mod service;
mod tally;
mod waiting_rooms;

use std::{str::FromStr, sync::Arc, time::Duration};

use anyhow::Context as _;
use eventhive_platform::{
    Context, Database, Section, Service, Settings, async_trait::async_trait, bus::Subscription, config::ConfigError,
    grpc, shutdown::CancellationToken,
};
use eventhive_proto::analytics::analytics_server::AnalyticsServer;
use serde::{Deserialize, Serialize};
use sqlx::{ConnectOptions, migrate::Migrator, postgres::PgConnectOptions};
use tokio::net::TcpListener;

pub use access::{IdentityMemberships, Memberships};
pub use fanout::{LiveConfig, StreamCaps};
pub use live::WatchTiming;
pub use projection::Projection;
pub use service::{AnalyticsService, FiguresStream};

/// The name of this service: its database, its logs, its gRPC health entry.
pub const SERVICE: &str = "analytics";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Analytics' settings section: the bounds on live streams.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalyticsSettings {
    /// Live streams one user may have open at once on one replica (`EVENTHIVE_ANALYTICS_STREAMS_PER_USER`):
    /// a dashboard left open in many tabs costs a connection each.
    pub analytics_streams_per_user: u32,
    /// Live streams open at once on one event on one replica.
    pub analytics_streams_per_event: u32,
    /// How often an open stream re-checks that its reader is still a member of the event's
    /// organization: how long a removed member may keep receiving.
    pub analytics_stream_recheck_ms: u64,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        Self { analytics_streams_per_user: 10, analytics_streams_per_event: 500, analytics_stream_recheck_ms: 5000 }
    }
}

impl Section for AnalyticsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.analytics_streams_per_user == 0 {
            return Err(ConfigError::new("analytics_streams_per_user", "must be positive"));
        }
        if self.analytics_streams_per_event == 0 {
            return Err(ConfigError::new("analytics_streams_per_event", "must be positive"));
        }
        if self.analytics_stream_recheck_ms == 0 {
            return Err(ConfigError::new("analytics_stream_recheck_ms", "must be positive"));
        }
        Ok(())
    }
}

impl AnalyticsSettings {
    /// How live streams are fed and bounded with these settings, on the database of `settings`.
    pub fn live(&self, settings: &Settings) -> anyhow::Result<LiveConfig> {
        let timing =
            WatchTiming { recheck: Duration::from_millis(self.analytics_stream_recheck_ms), ..WatchTiming::default() };
        let caps = StreamCaps {
            per_user: usize::try_from(self.analytics_streams_per_user).unwrap_or(usize::MAX),
            per_event: usize::try_from(self.analytics_streams_per_event).unwrap_or(usize::MAX),
        };
        Ok(LiveConfig { timing, caps, listen_url: listen_url(settings)? })
    }
}

/// The URL of analytics' own PostgreSQL database (named as `Database::connect` names it), on
/// which replicas LISTEN for each other's changes; `None` on SQLite.
pub fn listen_url(settings: &Settings) -> anyhow::Result<Option<String>> {
    let Some(server) = &settings.database_url else { return Ok(None) };
    let server = PgConnectOptions::from_str(server).context("EVENTHIVE_DATABASE_URL is not a valid URL")?;
    let name = format!("{}_{}", settings.database_prefix, SERVICE);
    Ok(Some(server.database(&name).to_url_lossy().to_string()))
}

/// A built analytics service, bound to its listener and already consuming, ready to run.
pub struct Application {
    /// Bound by the caller (port 0 in tests), so that `eventhive dev` can run every service in
    /// one process.
    listener: TcpListener,
    /// The deployment's secret key: the service token its gRPC server asks of callers.
    secrets: eventhive_platform::Secrets,
    /// Consuming since build; the gRPC service reads through it and is woken by it.
    projection: Projection,
    /// Identity, to re-check the readers of open streams.
    memberships: Arc<dyn Memberships>,
    /// Caps, timings and where to listen for other replicas' changes.
    live: LiveConfig,
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
    type Settings = AnalyticsSettings;

    fn migrations() -> Option<&'static Migrator> {
        Some(&MIGRATIONS)
    }

    fn subscriptions() -> Vec<Subscription> {
        vec![subscription(), waiting_rooms::subscription()]
    }

    /// Subscribes to the events the figures are made of (at once, so that nothing published
    /// from now on is missed).
    async fn build(context: Context) -> anyhow::Result<Self> {
        let secrets = context.secrets()?;
        let settings: AnalyticsSettings = context.section()?;
        let live = settings.live(&context.settings)?;
        let deadline = Duration::from_millis(context.settings.grpc_deadline_ms);
        let identity = grpc::channel(&context.settings.endpoint("identity")?, deadline, &secrets)?;
        let memberships: Arc<dyn Memberships> = Arc::new(IdentityMemberships::new(identity));
        let db = context.database()?;
        let projection = Projection::new(db.clone());
        let consuming = CancellationToken::new();
        context.bus.subscribe(subscription(), Arc::new(projection.clone()), consuming.clone()).await?;
        context.bus.subscribe(waiting_rooms::subscription(), Arc::new(projection.clone()), consuming.clone()).await?;
        Ok(Self { listener: context.listener, secrets, projection, memberships, live, db, consuming })
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
        let service =
            AnalyticsServer::new(AnalyticsService::new(self.projection, self.memberships, self.live, shutdown.clone()));
        let result = grpc::serve(SERVICE, self.listener, service, health, shutdown, &self.secrets).await;
        self.consuming.cancel();
        self.db.close().await;
        result
    }
}

/// The queue of the events the figures are made of.
fn subscription() -> Subscription {
    Subscription::new(projection::QUEUE, projection::routing_keys())
}

/// Rebuilds the read model of the database `settings` name from its event log (`eventhive
/// analytics rebuild`); returns how many events were replayed. Running replicas see the new
/// figures at once on PostgreSQL (the rebuild notifies them) and at their next poll on SQLite.
pub async fn rebuild(settings: &Settings) -> anyhow::Result<u64> {
    let db = Database::connect(settings, SERVICE).await?;
    db.migrate(&MIGRATIONS).await?;
    let replayed = Projection::new(db.clone()).rebuild().await;
    db.close().await;
    replayed
}
