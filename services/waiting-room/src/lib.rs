//! waiting_room: the queue in front of an on-sale. An organizer gives an event a room (when it
//! opens, how fast it admits, how long an admission lasts); buyers join its queue; at the
//! opening a recorded random draw orders everyone who came early, later arrivals queue first
//! come first served; an admission loop lets buyers through at a fixed rate, or automatically
//! as the purchase p99 and what is left to buy allow, each with an Ed25519-signed admission that ticketing checks
//! on its own before it holds tickets.
//!
//! # Layout
//! - `service`: the gRPC glue: decodes a request, runs an operation, encodes the answer.
//! - `rooms`: the operations: put and read a room, join the queue, read one's place.
//! - `admission`: the background loop: the draw at the opening, sold out and resumed, admitting.
//! - `pace`: the automatic rate's step, paced by the purchase p99 against its target.
//! - `signals`: the purchase latency ticketing's replicas report, combined.
//! - `draw`: the seeded, replayable shuffle of the early arrivals.
//! - `queue`: [`queue::QueueStore`], the queue behind one trait: Redis, or memory for dev.
//! - `repository`: every SQL statement on `rooms`.
//! - `uses`: ticketing's `order_placed` events, which tell which admissions were used.
//! - `error`: the waiting room's errors and their gRPC statuses.
//!
//! [`Application`], [`SERVICE`], [`MIGRATIONS`], the settings and the test [`Handles`] are
//! public, and the queue stores so their tests can run them against Redis directly.

mod admission;
mod draw;
mod error;
mod pace;
pub mod queue;
mod repository;
mod rooms;
mod service;
mod signals;
mod uses;

use std::{sync::Arc, time::Duration};

use eventhive_platform::{
    Context, Database, Section, Service, async_trait::async_trait, bus::Subscription, config::ConfigError, grpc,
    outbox::OutboxRelay, service::Handles as ServiceHandles, shutdown::CancellationToken,
};
use eventhive_proto::{
    catalog::catalog_client::CatalogClient, ticketing::ticketing_client::TicketingClient,
    waiting_room::waiting_room_server::WaitingRoomServer,
};
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

pub use admission::{AdmissionLoop, EXPIRY_GRACE_MS, Step};
pub use draw::draw;

/// The name of this service: its database, its logs, its gRPC health entry, its events' source.
pub const SERVICE: &str = "waiting_room";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// `eventhive keys rotate`, the waiting room's part: every room's private signing key sealed
/// with the current secret key. The keys themselves stay: admissions already handed out must
/// keep verifying in ticketing until they expire.
pub async fn reseal_keys(settings: &eventhive_platform::Settings) -> anyhow::Result<String> {
    let secrets = eventhive_platform::Secrets::load(settings)?;
    let db = eventhive_platform::service::open_database(settings, SERVICE, Some(&MIGRATIONS))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the waiting room has a database"))?;
    let rooms = repository::Rooms::new(db.clone());
    let mut resealed = 0;
    for (event_id, stored) in rooms.signing_keys().await? {
        let opened = secrets.open(rooms::ROOM_KEY_PURPOSE, &stored)?;
        if !opened.current {
            rooms.reseal_signing_key(&event_id, &secrets.seal(rooms::ROOM_KEY_PURPOSE, &opened.plaintext)?).await?;
            resealed += 1;
        }
    }
    db.close().await;
    Ok(format!("waiting room: {resealed} room signing keys sealed with the current secret key"))
}

/// The waiting room's settings section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WaitingRoomSettings {
    /// How often the admission loop draws, checks the sale and admits.
    pub waiting_room_tick_ms: u64,
    /// The automatic rate's ceiling: at most this many buyers admitted a second; the step
    /// starts at one and grows while the sale keeps up.
    pub waiting_room_auto_admit_per_sec: i64,
    /// The p99 of placing and paying orders (as ticketing measures it) above which the
    /// automatic step halves: the latency buyers are promised while the room admits.
    pub waiting_room_purchase_p99_target_ms: u64,
}

impl Default for WaitingRoomSettings {
    fn default() -> Self {
        Self {
            waiting_room_tick_ms: 1000,
            waiting_room_auto_admit_per_sec: 20,
            waiting_room_purchase_p99_target_ms: 500,
        }
    }
}

impl Section for WaitingRoomSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.waiting_room_tick_ms == 0 {
            return Err(ConfigError::new("waiting_room_tick_ms", "must be positive"));
        }
        if !(1..=100_000).contains(&self.waiting_room_auto_admit_per_sec) {
            return Err(ConfigError::new("waiting_room_auto_admit_per_sec", "must be 1 to 100000"));
        }
        if self.waiting_room_purchase_p99_target_ms == 0 {
            return Err(ConfigError::new("waiting_room_purchase_p99_target_ms", "must be positive"));
        }
        Ok(())
    }
}

/// What tests reach into a running waiting room with.
#[derive(Clone)]
pub struct Handles {
    pub admission: AdmissionLoop,
}

pub struct Application {
    listener: TcpListener,
    /// Checks the service token of every call it serves.
    secrets: eventhive_platform::Secrets,
    service: service::WaitingRoomService,
    admission: AdmissionLoop,
    relay: OutboxRelay,
    db: Database,
    outbox_poll: Duration,
    tick: Duration,
    /// Stops the subscription to ticketing's orders, which starts at build time.
    consuming: CancellationToken,
}

#[async_trait]
impl Service for Application {
    const NAME: &'static str = SERVICE;
    const DEFAULT_PORT: u16 = 50057;
    const USES_BUS: bool = true;
    type Settings = WaitingRoomSettings;

    fn migrations() -> Option<&'static Migrator> {
        Some(&MIGRATIONS)
    }

    fn subscriptions() -> Vec<Subscription> {
        vec![Subscription::new(uses::QUEUE, uses::routing_keys())]
    }

    /// The queue is in Redis when `EVENTHIVE_REDIS_URL` is set (shared by replicas, kept over
    /// restarts), in memory otherwise, as the gateway's rate limits are.
    async fn build(context: Context) -> anyhow::Result<Self> {
        let secrets = context.secrets()?;
        let settings: WaitingRoomSettings = context.section()?;
        let db = context.database()?;
        let relay = OutboxRelay::new(db.clone(), context.bus.clone());
        let deadline = Duration::from_millis(context.settings.grpc_deadline_ms);
        let catalog = CatalogClient::new(grpc::channel(&context.settings.endpoint("catalog")?, deadline, &secrets)?);
        let ticketing =
            TicketingClient::new(grpc::channel(&context.settings.endpoint("ticketing")?, deadline, &secrets)?);
        let queue: Arc<dyn queue::QueueStore> = match &context.settings.redis_url {
            Some(url) => Arc::new(queue::redis::RedisQueue::connect(url, &context.settings.redis_prefix).await?),
            None => Arc::new(queue::memory::MemoryQueue::default()),
        };
        let consuming = CancellationToken::new();
        let used = Arc::new(uses::UsedAdmissions::new(queue.clone()));
        for subscription in Self::subscriptions() {
            context.bus.subscribe(subscription, used.clone(), consuming.clone()).await?;
        }
        let rooms = repository::Rooms::new(db.clone());
        let auto = settings.waiting_room_auto_admit_per_sec;
        let pace = pace::Pace::new(auto, Duration::from_millis(settings.waiting_room_purchase_p99_target_ms));
        let admission = AdmissionLoop::new(rooms.clone(), queue.clone(), ticketing.clone(), relay.clone(), pace);
        let service = service::WaitingRoomService::new(rooms::WaitingRooms::new(
            rooms,
            queue,
            catalog,
            ticketing,
            secrets.clone(),
            auto,
        ));
        Ok(Self {
            listener: context.listener,
            secrets,
            service,
            admission,
            relay,
            db,
            outbox_poll: Duration::from_millis(context.settings.outbox_poll_ms),
            tick: Duration::from_millis(settings.waiting_room_tick_ms),
            consuming,
        })
    }

    fn handles(&self) -> ServiceHandles {
        ServiceHandles::of(Handles { admission: self.admission.clone() })
    }

    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let relay = tokio::spawn(self.relay.run(self.outbox_poll, shutdown.clone()));
        let admission = tokio::spawn(self.admission.run(self.tick, shutdown.clone()));
        let (consuming, stop_consuming) = (self.consuming.clone(), shutdown.clone());
        tokio::spawn(async move {
            stop_consuming.cancelled().await;
            consuming.cancel();
        });
        let health = tonic_health::server::health_reporter();
        let service = WaitingRoomServer::new(self.service);
        let result = grpc::serve(SERVICE, self.listener, service, health, shutdown, &self.secrets).await;
        for task in [relay, admission] {
            if let Err(error) = task.await {
                tracing::error!(%error, "waiting room background task failed");
            }
        }
        self.db.close().await;
        result
    }
}
