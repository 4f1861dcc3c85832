//! The bus, the outbox and the inbox, on the in-process bus with SQLite and on RabbitMQ with
//! PostgreSQL: at-least-once delivery, retries with backoff, dead letters and their replay,
//! publishing from the outbox, and applying each message once.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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
    bus::{MessageBus, MessageHandler, Subscription, amqp::AmqpBus, in_process::InProcessBus},
    inbox, outbox,
    outbox::OutboxRelay,
    shutdown::CancellationToken,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ping {
    n: u32,
}

impl DomainEvent for Ping {
    const TYPE: &'static str = "test.ping";
    const VERSION: u32 = 1;
}

enum Kind {
    InProcess,
    Rabbit,
}

/// A bus and a database of one kind, removed again by `cleanup`.
struct Rig {
    bus: Arc<dyn MessageBus>,
    amqp: Option<(String, String)>,
    db: Database,
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// A consumer's own table, where the effect of a message is written.
const CONSUMER_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS pings_applied (message_id TEXT PRIMARY KEY, n BIGINT NOT NULL)";

impl Rig {
    async fn new(kind: Kind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let rig = match kind {
            Kind::InProcess => {
                let settings = Settings { data_dir: dir.path().to_owned(), ..Settings::default() };
                let db = Database::connect(&settings, "messaging").await.unwrap();
                Self { bus: Arc::new(InProcessBus::new()), amqp: None, db, pg: None, _dir: dir }
            }
            Kind::Rabbit => {
                let amqp_url = eventhive_test_infra::amqp_url();
                let pg_url = eventhive_test_infra::database_url();
                let exchange = format!("eh-test-{run}.events");
                let prefix = format!("eh_test_{run}");
                let settings = Settings {
                    database_url: Some(pg_url.clone()),
                    database_prefix: prefix.clone(),
                    ..Settings::default()
                };
                let db = Database::connect(&settings, "messaging").await.unwrap();
                let bus = Arc::new(AmqpBus::connect(&amqp_url, &exchange).await.unwrap());
                Self {
                    bus,
                    amqp: Some((amqp_url, exchange)),
                    db,
                    pg: Some((pg_url, format!("{prefix}_messaging"))),
                    _dir: dir,
                }
            }
        };
        rig.db.migrate(&sqlx::migrate::Migrator::DEFAULT).await.unwrap();
        sqlx::query(CONSUMER_TABLE).execute(rig.db.pool()).await.unwrap();
        rig
    }

    async fn cleanup(self) {
        self.db.close().await;
        if let Some((url, exchange)) = &self.amqp {
            let bus = AmqpBus::connect(url, exchange).await.unwrap();
            for queue in self.bus.declared_queues() {
                bus.delete_queue(&queue).await.unwrap();
            }
            bus.delete_exchange().await.unwrap();
        }
        if let Some((url, name)) = &self.pg {
            eventhive_platform::storage::drop_postgres_database(url, name).await.unwrap();
        }
    }
}

/// Fails the first `failures` deliveries (or all of them while `broken`), then records them.
struct Flaky {
    failures: u32,
    attempts: AtomicU32,
    broken: AtomicBool,
    handled: Mutex<Vec<Envelope>>,
}

impl Flaky {
    fn new(failures: u32) -> Arc<Self> {
        Arc::new(Self {
            failures,
            attempts: AtomicU32::new(0),
            broken: AtomicBool::new(false),
            handled: Mutex::default(),
        })
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

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn a_failing_handler_is_retried_until_it_succeeds(kind: Kind) {
    let rig = Rig::new(kind).await;
    let stop = CancellationToken::new();
    let handler = Flaky::new(2);
    let mut subscription = Subscription::new("retry", ["test.#"]);
    subscription.max_attempts = 5;
    rig.bus.subscribe(subscription, handler.clone(), stop.clone()).await.unwrap();
    let envelope = Envelope::new("test", &Ping { n: 1 }, None).unwrap();
    rig.bus.publish(&envelope).await.unwrap();
    eventually("the third attempt", || handler.handled.lock().unwrap().len() == 1).await;
    assert_eq!(handler.attempts.load(Ordering::SeqCst), 3);
    assert_eq!(handler.handled.lock().unwrap()[0], envelope, "the same message, id included");
    assert!(rig.bus.dead_letters("retry").await.unwrap().is_empty());
    stop.cancel();
    rig.cleanup().await;
}

async fn a_message_that_keeps_failing_is_dead_lettered_and_can_be_replayed(kind: Kind) {
    let rig = Rig::new(kind).await;
    let stop = CancellationToken::new();
    let handler = Flaky::new(0);
    handler.broken.store(true, Ordering::SeqCst);
    let mut subscription = Subscription::new("dlq", ["test.ping.v1"]);
    subscription.max_attempts = 3;
    rig.bus.subscribe(subscription, handler.clone(), stop.clone()).await.unwrap();
    let envelope = Envelope::new("test", &Ping { n: 7 }, Some("req-1".into())).unwrap();
    rig.bus.publish(&envelope).await.unwrap();
    eventually("three attempts", || handler.attempts.load(Ordering::SeqCst) >= 3).await;
    let mut letters = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while letters.is_empty() && tokio::time::Instant::now() < deadline {
        letters = rig.bus.dead_letters("dlq").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].envelope, envelope);
    assert!(letters[0].error.contains("fails on purpose"), "{}", letters[0].error);
    assert_eq!(handler.attempts.load(Ordering::SeqCst), 3, "no attempt past the limit");
    // Listing leaves them in place.
    assert_eq!(rig.bus.dead_letters("dlq").await.unwrap().len(), 1);

    // The operator fixes the cause and replays.
    handler.broken.store(false, Ordering::SeqCst);
    assert_eq!(rig.bus.replay_dead_letters("dlq").await.unwrap(), 1);
    eventually("the replayed message", || handler.handled.lock().unwrap().len() == 1).await;
    assert!(rig.bus.dead_letters("dlq").await.unwrap().is_empty());
    stop.cancel();
    rig.cleanup().await;
}

/// Applies each ping once: the inbox claim and the effect commit in one transaction.
struct Applier {
    db: Database,
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

async fn the_outbox_publishes_after_commit_and_the_inbox_applies_once(kind: Kind) {
    let rig = Rig::new(kind).await;
    let stop = CancellationToken::new();
    rig.bus
        .subscribe(Subscription::new("applier", ["test.#"]), Arc::new(Applier { db: rig.db.clone() }), stop.clone())
        .await
        .unwrap();

    // A rolled-back transaction publishes nothing.
    let mut tx = rig.db.pool().begin().await.unwrap();
    outbox::enqueue(&mut tx, "test", &Ping { n: 0 }, None).await.unwrap();
    tx.rollback().await.unwrap();
    // A committed one publishes its events.
    let mut tx = rig.db.pool().begin().await.unwrap();
    let mut sent = Vec::new();
    for n in 1..=3 {
        sent.push(outbox::enqueue(&mut tx, "test", &Ping { n }, None).await.unwrap());
    }
    tx.commit().await.unwrap();

    let relay = OutboxRelay::new(rig.db.clone(), rig.bus.clone());
    assert_eq!(relay.backlog().await.unwrap(), 3);
    assert_eq!(relay.step().await.unwrap(), 3);
    assert_eq!(relay.step().await.unwrap(), 0, "published once");
    assert_eq!(relay.backlog().await.unwrap(), 0);
    // A crash between publishing and marking publishes again: deliver duplicates.
    rig.bus.publish(&sent[0]).await.unwrap();
    rig.bus.publish(&sent[2]).await.unwrap();

    let applied = |db: Database| async move {
        sqlx::query_as::<_, (i64, i64)>("SELECT COUNT(*), COALESCE(CAST(SUM(n) AS BIGINT), 0) FROM pings_applied")
            .fetch_one(db.pool())
            .await
            .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while applied(rig.db.clone()).await.0 < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Let the duplicates arrive too, then check that nothing was applied twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(applied(rig.db.clone()).await, (3, 1 + 2 + 3));
    let claimed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox_messages WHERE consumer = 'applier'")
        .fetch_one(rig.db.pool())
        .await
        .unwrap();
    assert_eq!(claimed, 3);

    // Housekeeping: nothing recent is forgotten; a month on, published rows and claims are.
    let now = eventhive_platform::storage::now_ms();
    assert_eq!(relay.prune(now).await.unwrap(), (0, 0));
    let later = now + eventhive_platform::outbox::INBOX_RETENTION_MS + 1;
    assert_eq!(relay.prune(later).await.unwrap(), (3, 3));
    stop.cancel();
    rig.cleanup().await;
}

mod in_process {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_handler_is_retried_until_it_succeeds() {
        super::a_failing_handler_is_retried_until_it_succeeds(Kind::InProcess).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_that_keeps_failing_is_dead_lettered_and_can_be_replayed() {
        super::a_message_that_keeps_failing_is_dead_lettered_and_can_be_replayed(Kind::InProcess).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_outbox_publishes_after_commit_and_the_inbox_applies_once() {
        super::the_outbox_publishes_after_commit_and_the_inbox_applies_once(Kind::InProcess).await
    }
}

mod rabbitmq {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_handler_is_retried_until_it_succeeds() {
        if !eventhive_test_infra::run_infra_test() {
            return;
        }
        super::a_failing_handler_is_retried_until_it_succeeds(Kind::Rabbit).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_that_keeps_failing_is_dead_lettered_and_can_be_replayed() {
        if !eventhive_test_infra::run_infra_test() {
            return;
        }
        super::a_message_that_keeps_failing_is_dead_lettered_and_can_be_replayed(Kind::Rabbit).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_outbox_publishes_after_commit_and_the_inbox_applies_once() {
        if !eventhive_test_infra::run_infra_test() {
            return;
        }
        super::the_outbox_publishes_after_commit_and_the_inbox_applies_once(Kind::Rabbit).await
    }
}
