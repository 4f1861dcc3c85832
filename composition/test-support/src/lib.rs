//! Test support: boots the whole system in-process on port 0, against embedded storage (SQLite
//! files in a temporary directory, the in-process bus, in-memory rate limits) or against the
//! real infrastructure (a fresh, uniquely named PostgreSQL database per service, a private
//! RabbitMQ exchange, a private Redis key prefix; all removed afterwards), and hands the test
//! a [`TestApp`] with typed helpers for the public API.
//!
//! # Layout
//! - [`Backend`] and [`on_both_backends!`]: run one test body against each backend.
//! - [`TestApp`]: the running system and its HTTP client.
//! - [`api`]: helpers that speak API.md (sign-up, organizations, events).
//! - [`problem`]: assertions on problem+json answers.
//! - [`smtp`]: a real SMTP server that records what it is sent (and can refuse at first).
//! - [`topology`]: the production topology instead, every service its own process, replicas
//!   behind [`balancer`] (HAProxy).
//! - [`private`]: PostgreSQL and RabbitMQ servers of one's own, for a harness that restarts them.

// Test helpers fail by panicking, exactly like the assertions around them.
#![allow(clippy::panic)]

pub mod api;
pub mod balancer;
pub mod private;
pub mod problem;
pub mod smtp;
pub mod topology;

use std::{sync::Arc, time::Duration};

use eventhive_platform::{Settings, bus::MessageBus, shutdown::CancellationToken, telemetry};
use eventhive_system::System;
use tokio::task::JoinHandle;

pub use api::Session;
/// Whether the real infrastructure is there, and what the run does when it is not.
pub use eventhive_test_infra as infra;
pub use problem::assert_problem;

/// Where the system under test keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, in-process bus, in-memory rate limits: `eventhive dev` on a fresh laptop.
    Embedded,
    /// PostgreSQL, RabbitMQ and Redis: production.
    Infra,
}

/// Runs each named `async fn(Backend)` as two tests, `embedded::<name>` and `infra::<name>`;
/// the second is skipped (or fails, under `EVENTHIVE_TEST_INFRA=required`) when PostgreSQL,
/// RabbitMQ or Redis does not answer (see [`infra`]).
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::Backend::Embedded).await
                }
            )*
        }
        mod infra {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if !$crate::infra::run_infra_test() {
                        return;
                    }
                    super::$test($crate::Backend::Infra).await
                }
            )*
        }
    };
}

/// Every service listens on a port the OS picks, so tests never collide.
fn any_free_ports(settings: &mut Settings) {
    for name in eventhive_system::names() {
        settings.set(&format!("{name}_port"), 0);
    }
}

/// A service's handles, as the type the service gives them.
fn handles<T: Clone + Send + Sync + 'static>(system: &System, service: &str) -> T {
    system.handles(service).get::<T>().unwrap_or_else(|| panic!("{service} gives no handles of that type"))
}

/// The running system and a client for its public API.
pub struct TestApp {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub address: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    /// The settings the system runs with (real ports filled in).
    pub settings: Settings,
    pub bus: Arc<dyn MessageBus>,
    /// Ticketing's sweeper, fault points and outbox relay.
    pub ticketing: eventhive_ticketing::Handles,
    /// Notifications' sender.
    pub notifications: eventhive_notifications::Handles,
    /// The waiting room's admission loop, to step.
    pub waiting_room: eventhive_waiting_room::Handles,
    stop: CancellationToken,
    running: Option<JoinHandle<anyhow::Result<()>>>,
    /// Keeps the SQLite files alive as long as the app.
    _data_dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns with settings adjusted by `configure` (rate limits, token lifetimes, ...).
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        telemetry::init_for_tests();
        let data_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let mut settings = Settings {
            bind_host: "127.0.0.1".into(),
            data_dir: data_dir.path().to_owned(),
            outbox_poll_ms: 100,
            // The system under test is `eventhive dev`, dev inbox included.
            dev_mode: true,
            // Many systems share a test process; the recorder is process-wide anyway.
            metrics_port: None,
            shutdown_grace_secs: 5,
            ..Settings::default()
        };
        // Fast hashing: the tests are about behaviour, not about resisting cracking.
        settings.set("password_hash_memory_kib", 1024);
        settings.set("password_hash_iterations", 1);
        // Off unless a test is about them: tests fire many requests from one address.
        settings.set("rate_limit_ip_per_sec", 0);
        settings.set("rate_limit_user_per_sec", 0);
        if backend == Backend::Infra {
            settings.database_url = Some(infra::database_url());
            settings.amqp_url = Some(infra::amqp_url());
            settings.redis_url = Some(infra::redis_url());
            settings.database_prefix = format!("eh_test_{run_id}");
            // Two tests run at once, each with seven services, on one PostgreSQL server with
            // 100 connections.
            settings.database_max_connections = 4;
            settings.amqp_exchange = format!("eh-test-{run_id}.events");
            settings.redis_prefix = format!("eh-test-{run_id}");
        }
        any_free_ports(&mut settings);
        configure(&mut settings);
        let settings = settings.validated().unwrap_or_else(|e| panic!("test settings: {e}"));
        let system =
            System::start(settings).await.unwrap_or_else(|e| panic!("starting the system ({backend:?}): {e:#}"));
        let settings = system.settings.clone();
        let bus = system.bus.clone();
        let ticketing = handles(&system, eventhive_ticketing::SERVICE);
        let notifications = handles(&system, eventhive_notifications::SERVICE);
        let waiting_room = handles(&system, eventhive_waiting_room::SERVICE);
        let address = system.gateway_url();
        let stop = CancellationToken::new();
        let running = tokio::spawn(system.run_until(stop.clone()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_else(|e| panic!("HTTP client: {e}"));
        Self {
            address,
            client,
            backend,
            settings,
            bus,
            ticketing,
            notifications,
            waiting_room,
            stop,
            running: Some(running),
            _data_dir: data_dir,
        }
    }

    /// Stops every service, as a crash or a deploy would, and starts them again on the same
    /// databases, broker and Redis.
    pub async fn restart(&mut self) {
        self.stop.cancel();
        if let Some(running) = self.running.take() {
            let _ = running.await;
        }
        let mut settings = self.settings.clone();
        any_free_ports(&mut settings);
        let system = System::start(settings).await.unwrap_or_else(|e| panic!("restarting the system: {e:#}"));
        self.settings = system.settings.clone();
        self.bus = system.bus.clone();
        self.ticketing = handles(&system, eventhive_ticketing::SERVICE);
        self.notifications = handles(&system, eventhive_notifications::SERVICE);
        self.waiting_room = handles(&system, eventhive_waiting_room::SERVICE);
        self.address = system.gateway_url();
        self.stop = CancellationToken::new();
        self.running = Some(tokio::spawn(system.run_until(self.stop.clone())));
    }

    /// One pass of ticketing's sweeper, `ahead` from now: expires holds and resumes sagas as
    /// if that much time had passed.
    pub async fn sweep(&self, ahead: Duration) -> eventhive_ticketing::Sweep {
        let now = eventhive_platform::storage::now_ms() + i64::try_from(ahead.as_millis()).unwrap_or(0);
        self.ticketing.sweeper.step(now).await.unwrap_or_else(|e| panic!("sweep: {e:#}"))
    }

    /// One step of the waiting room's admission loop, `ahead` from now: draws, checks the
    /// sale, admits, as if that much time had passed.
    pub async fn admit(&self, ahead: Duration) -> eventhive_waiting_room::Step {
        let now = eventhive_platform::storage::now_ms() + i64::try_from(ahead.as_millis()).unwrap_or(0);
        self.waiting_room.admission.step(now).await.unwrap_or_else(|e| panic!("admission step: {e:#}"))
    }

    /// Opens a service's database, for invariant checks no API exposes.
    pub async fn database(&self, service: &str) -> eventhive_platform::Database {
        open_database(&self.settings, service).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops every service and waits for them to finish.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(running) = self.running.take() {
            let _ = running.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
        if self.backend != Backend::Infra {
            return;
        }
        clean_up_infra(self.settings.clone(), self.bus.declared_queues());
    }
}

/// The database of `service` in a running system, for checks no API exposes.
pub(crate) async fn open_database(settings: &Settings, service: &str) -> eventhive_platform::Database {
    eventhive_platform::Database::connect(settings, service)
        .await
        .unwrap_or_else(|e| panic!("opening the {service} database: {e:#}"))
}

/// Removes what a run on the real infrastructure left: its databases, its queues and exchange,
/// its Redis keys. Drop is not async and the test's runtime is going away: the clean-up runs
/// on a thread of its own.
pub(crate) fn clean_up_infra(settings: Settings, queues: Vec<String>) {
    let cleanup = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async move {
            if let Some(url) = &settings.database_url {
                let with_database = eventhive_system::SERVICES.iter().filter(|entry| (entry.migrations)().is_some());
                // And the in-process bus's, had it run on PostgreSQL.
                let names = with_database.map(|entry| entry.name).chain(["bus"]);
                for name in names {
                    let name = format!("{}_{name}", settings.database_prefix);
                    let _ = eventhive_platform::storage::drop_postgres_database(url, &name).await;
                }
            }
            if let Some(url) = &settings.amqp_url
                && let Ok(bus) = eventhive_platform::bus::amqp::AmqpBus::connect(url, &settings.amqp_exchange).await
            {
                for queue in &queues {
                    let _ = bus.delete_queue(queue).await;
                }
                let _ = bus.delete_exchange().await;
            }
            if let Some(url) = &settings.redis_url
                && let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
            {
                let pattern = format!("{}:*", settings.redis_prefix);
                let keys: Vec<String> =
                    redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await.unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                }
            }
        });
    });
    let _ = cleanup.join();
}
