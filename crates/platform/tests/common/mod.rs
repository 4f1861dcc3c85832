//! What the bus tests share: a bus and a database of either kind, removed again by `cleanup`,
//! and handlers that fail on purpose or apply each message once.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use eventhive_domain::events::{DomainEvent, Envelope};
use eventhive_platform::{
    Database, Settings,
    bus::{MessageBus, MessageHandler, RetryPolicy, amqp::AmqpBus, in_process::InProcessBus},
    inbox,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    pub n: u32,
}

impl DomainEvent for Ping {
    const TYPE: &'static str = "test.ping";
    const VERSION: u32 = 1;
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    InProcess,
    Rabbit,
}

/// Retries that take milliseconds, for as long as an hour.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        first: Duration::from_millis(20),
        max: Duration::from_millis(100),
        retry_for: Duration::from_secs(3600),
    }
}

/// A bus and a database of one kind, removed again by `cleanup`.
pub struct Rig {
    pub kind: Kind,
    pub bus: Arc<dyn MessageBus>,
    pub policy: RetryPolicy,
    pub settings: Settings,
    pub db: Database,
    pub dir: tempfile::TempDir,
}

/// A consumer's own table, where the effect of a message is written.
const CONSUMER_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS pings_applied (message_id TEXT PRIMARY KEY, n BIGINT NOT NULL)";

impl Rig {
    pub async fn new(kind: Kind) -> Self {
        Self::with(kind, fast_retries()).await
    }

    pub async fn with(kind: Kind, policy: RetryPolicy) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let settings = match kind {
            Kind::InProcess => Settings { data_dir: dir.path().to_owned(), ..Settings::default() },
            Kind::Rabbit => Settings {
                database_url: Some(eventhive_test_infra::database_url()),
                database_prefix: format!("eh_test_{run}"),
                amqp_url: Some(eventhive_test_infra::amqp_url()),
                amqp_exchange: format!("eh-test-{run}.events"),
                ..Settings::default()
            },
        };
        let db = Database::connect(&settings, "messaging").await.unwrap();
        db.migrate(&sqlx::migrate::Migrator::DEFAULT).await.unwrap();
        sqlx::query(CONSUMER_TABLE).execute(db.pool()).await.unwrap();
        let bus = open_bus(kind, &settings, policy).await;
        Self { kind, bus, policy, settings, db, dir }
    }

    /// Another bus on the same storage or broker, as a restarted process has.
    pub async fn reopen(&self) -> Arc<dyn MessageBus> {
        open_bus(self.kind, &self.settings, self.policy).await
    }

    pub async fn applied(&self) -> (i64, i64) {
        sqlx::query_as::<_, (i64, i64)>("SELECT COUNT(*), COALESCE(CAST(SUM(n) AS BIGINT), 0) FROM pings_applied")
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }

    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some(url) = &self.settings.amqp_url {
            let bus = AmqpBus::connect(url, &self.settings.amqp_exchange).await.unwrap();
            for queue in self.bus.declared_queues() {
                bus.delete_queue(&queue).await.unwrap();
            }
            bus.delete_exchange().await.unwrap();
        }
        if let Some(url) = &self.settings.database_url {
            let name = format!("{}_messaging", self.settings.database_prefix);
            eventhive_platform::storage::drop_postgres_database(url, &name).await.unwrap();
        }
    }
}

async fn open_bus(kind: Kind, settings: &Settings, policy: RetryPolicy) -> Arc<dyn MessageBus> {
    match kind {
        Kind::InProcess => Arc::new(InProcessBus::open(settings).await.unwrap().with_retry(policy)),
        Kind::Rabbit => {
            let url = settings.amqp_url.as_deref().unwrap();
            Arc::new(AmqpBus::connect(url, &settings.amqp_exchange).await.unwrap().with_retry(policy))
        }
    }
}

/// Fails the first `failures` deliveries (or all of them while `broken`), then records them.
pub struct Flaky {
    pub failures: u32,
    pub attempts: AtomicU32,
    pub broken: AtomicBool,
    pub handled: Mutex<Vec<Envelope>>,
}

impl Flaky {
    pub fn new(failures: u32) -> Arc<Self> {
        Arc::new(Self {
            failures,
            attempts: AtomicU32::new(0),
            broken: AtomicBool::new(false),
            handled: Mutex::default(),
        })
    }

    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::SeqCst)
    }

    pub fn handled(&self) -> usize {
        self.handled.lock().unwrap().len()
    }
}

#[async_trait]
impl MessageHandler for Flaky {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if self.broken.load(Ordering::SeqCst) || attempt <= self.failures {
            anyhow::bail!("attempt {attempt} fails on purpose");
        }
        self.handled.lock().unwrap().push(envelope.clone());
        Ok(())
    }
}

/// Applies each ping once: the inbox claim and the effect commit in one transaction.
pub struct Applier {
    pub db: Database,
}

#[async_trait]
impl MessageHandler for Applier {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let ping = envelope.decode::<Ping>()?;
        let mut tx = self.db.pool().begin().await?;
        if inbox::claim(&mut tx, "applier", envelope.id).await? {
            sqlx::query("INSERT INTO pings_applied (message_id, n) VALUES ($1, $2)")
                .bind(envelope.id.to_string())
                .bind(i64::from(ping.n))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs each named `async fn(Kind)` as two tests, `in_process::<name>` and `rabbitmq::<name>`;
/// the second only when the infrastructure answers (see `eventhive_test_infra`).
#[macro_export]
macro_rules! on_both_buses {
    ($($test:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Kind::InProcess).await
                }
            )*
        }
        mod rabbitmq {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if !eventhive_test_infra::run_infra_test() {
                        return;
                    }
                    super::$test($crate::common::Kind::Rabbit).await
                }
            )*
        }
    };
}
