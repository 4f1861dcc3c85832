//! The loss paths of the bus, closed (issue 11), on the in-process bus and on RabbitMQ: a
//! message that can never succeed is dead-lettered at once with its reason; a message no queue
//! takes is refused, so the outbox keeps it; a declared queue keeps messages for a consumer
//! that has not subscribed yet; a retry outlives its consumer; consumers of one queue share its
//! messages; and a crash of `eventhive dev` loses nothing the outbox marked published.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod common;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use common::{Applier, Flaky, Kind, Ping, Rig, eventually};
use eventhive_domain::events::{DomainEvent, Envelope};
use eventhive_platform::{
    Database, Settings,
    bus::{BusError, MessageBus, MessageHandler, RetryPolicy, Subscription, in_process::InProcessBus, permanent},
    outbox,
    outbox::OutboxRelay,
    shutdown::CancellationToken,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Other {
    text: String,
}

impl DomainEvent for Other {
    const TYPE: &'static str = "test.other";
    const VERSION: u32 = 1;
}

/// Fails every ping permanently, and cannot read any other message.
struct Refuser;

#[async_trait]
impl MessageHandler for Refuser {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        if envelope.is::<Ping>() {
            return Err(permanent(anyhow::anyhow!("ping refers to nothing we know")));
        }
        envelope.decode::<Other>()?;
        Ok(())
    }
}

async fn messages_that_can_never_succeed_are_dead_lettered_at_once_with_their_reason(kind: Kind) {
    let rig = Rig::new(kind).await;
    let stop = CancellationToken::new();
    rig.bus.subscribe(Subscription::new("refuser", ["test.#"]), Arc::new(Refuser), stop.clone()).await.unwrap();
    let ping = Envelope::new("test", &Ping { n: 1 }, None).unwrap();
    let mut garbled = Envelope::new("test", &Other { text: "x".into() }, None).unwrap();
    garbled.payload = serde_json::json!({"unexpected": true});
    rig.bus.publish(&ping).await.unwrap();
    rig.bus.publish(&garbled).await.unwrap();
    let mut letters = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while letters.len() < 2 && tokio::time::Instant::now() < deadline {
        letters = rig.bus.dead_letters("refuser").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    letters.sort_by_key(|letter| letter.routing_key.clone());
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].id, garbled.id.to_string());
    assert!(letters[0].reason.contains("permanent") && letters[0].reason.contains("malformed payload"), "{letters:?}");
    assert_eq!(letters[1].id, ping.id.to_string());
    assert!(letters[1].reason.contains("ping refers to nothing we know"), "{letters:?}");
    assert!(letters.iter().all(|letter| letter.attempts == 1), "no retry can help: {letters:?}");
    stop.cancel();
    rig.cleanup().await;
}

async fn unroutable_messages_are_refused_until_the_topology_is_declared(kind: Kind) {
    let rig = Rig::new(kind).await;
    let mut tx = rig.db.pool().begin().await.unwrap();
    outbox::enqueue(&mut tx, "test", &Ping { n: 5 }, None).await.unwrap();
    tx.commit().await.unwrap();
    let relay = OutboxRelay::new(rig.db.clone(), rig.bus.clone());

    // No queue takes it: a failure, and the outbox keeps it.
    let lost = Envelope::new("test", &Ping { n: 0 }, None).unwrap();
    assert!(matches!(rig.bus.publish(&lost).await, Err(BusError::Unroutable(_))));
    assert!(relay.step().await.is_err());
    assert_eq!(relay.backlog().await.unwrap(), 1, "not marked published");

    // Declared (no consumer yet): published, and kept for the consumer that comes later.
    let subscription = Subscription::new("late", ["test.ping.v1"]);
    rig.bus.declare_topology(std::slice::from_ref(&subscription)).await.unwrap();
    assert_eq!(relay.step().await.unwrap(), 1);
    assert_eq!(relay.backlog().await.unwrap(), 0);
    let stop = CancellationToken::new();
    rig.bus.subscribe(subscription, Arc::new(Applier { db: rig.db.clone() }), stop.clone()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while rig.applied().await.0 < 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rig.applied().await, (1, 5));
    stop.cancel();
    rig.cleanup().await;
}

async fn a_retry_outlives_its_consumer(kind: Kind) {
    // A backoff long enough for the consumer to be gone before the retry is due.
    let policy =
        RetryPolicy { first: Duration::from_millis(1500), max: Duration::from_secs(3), ..common::fast_retries() };
    let rig = Rig::with(kind, policy).await;
    let subscription = Subscription::new("survivor", ["test.#"]);
    let first = CancellationToken::new();
    let failing = Flaky::new(1);
    rig.bus.subscribe(subscription.clone(), failing.clone(), first.clone()).await.unwrap();
    let envelope = Envelope::new("test", &Ping { n: 3 }, None).unwrap();
    rig.bus.publish(&envelope).await.unwrap();
    eventually("the first, failing attempt", || failing.attempts() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.cancel();

    // A new process: its bus and its consumer know nothing of the first.
    let bus = rig.reopen().await;
    let second = CancellationToken::new();
    let handler = Flaky::new(0);
    bus.subscribe(subscription, handler.clone(), second.clone()).await.unwrap();
    eventually("the retry, by the new consumer", || handler.handled() == 1).await;
    assert_eq!(handler.handled.lock().unwrap()[0], envelope);
    assert_eq!(failing.attempts(), 1, "the old consumer stopped");
    second.cancel();
    rig.cleanup().await;
}

/// Two consumers of one queue (two replicas, or a test's consumer beside the service's) share
/// its messages: each is handled once, as on a broker.
async fn consumers_of_one_queue_compete_for_its_messages(kind: Kind) {
    let rig = Rig::new(kind).await;
    let stop = CancellationToken::new();
    let (one, two) = (Flaky::new(0), Flaky::new(0));
    for handler in [&one, &two] {
        rig.bus.subscribe(Subscription::new("shared", ["test.#"]), handler.clone(), stop.clone()).await.unwrap();
    }
    for n in 0..20 {
        rig.bus.publish(&Envelope::new("test", &Ping { n }, None).unwrap()).await.unwrap();
    }
    eventually("all twenty", || one.handled() + two.handled() >= 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(one.handled() + two.handled(), 20, "each message once");
    stop.cancel();
    rig.cleanup().await;
}

on_both_buses!(
    consumers_of_one_queue_compete_for_its_messages,
    messages_that_can_never_succeed_are_dead_lettered_at_once_with_their_reason,
    unroutable_messages_are_refused_until_the_topology_is_declared,
    a_retry_outlives_its_consumer,
);

/// Applies a ping like [`Applier`], then never returns: the process dies before the bus hears
/// that the message was handled.
struct ApplyThenHang(Applier);

#[async_trait]
impl MessageHandler for ApplyThenHang {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.0.handle(envelope).await?;
        futures::future::pending().await
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// `eventhive dev` killed mid-flight (its runtime dropped, as a crash or Ctrl-C does): one
/// message applied but not acknowledged, one not delivered at all. Restarted on the same SQLite
/// files, each is applied exactly once.
#[test]
fn a_crash_of_the_embedded_bus_loses_nothing_the_outbox_marked_published() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings { data_dir: dir.path().to_owned(), ..Settings::default() };
    let subscription = Subscription { concurrency: 1, ..Subscription::new("crash", ["test.#"]) };
    let open = |settings: Settings| async move {
        let db = Database::connect(&settings, "messaging").await.unwrap();
        db.migrate(&sqlx::migrate::Migrator::DEFAULT).await.unwrap();
        sqlx::query("CREATE TABLE IF NOT EXISTS pings_applied (message_id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
            .execute(db.pool())
            .await
            .unwrap();
        let bus = Arc::new(InProcessBus::open(&settings).await.unwrap());
        (db, bus)
    };
    let applied = |db: Database| async move {
        sqlx::query_as::<_, (i64, i64)>("SELECT COUNT(*), COALESCE(CAST(SUM(n) AS BIGINT), 0) FROM pings_applied")
            .fetch_one(db.pool())
            .await
            .unwrap()
    };

    let first = runtime();
    first.block_on(async {
        let (db, bus) = open(settings.clone()).await;
        bus.subscribe(
            subscription.clone(),
            Arc::new(ApplyThenHang(Applier { db: db.clone() })),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let mut tx = db.pool().begin().await.unwrap();
        for n in [1, 2] {
            outbox::enqueue(&mut tx, "test", &Ping { n }, None).await.unwrap();
        }
        tx.commit().await.unwrap();
        let relay = OutboxRelay::new(db.clone(), bus.clone());
        assert_eq!(relay.step().await.unwrap(), 2);
        assert_eq!(relay.backlog().await.unwrap(), 0, "the outbox is done with both");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while applied(db.clone()).await.0 < 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(applied(db.clone()).await.0, 1, "one applied, the other waiting behind it");
    });
    drop(first);

    let second = runtime();
    second.block_on(async {
        let (db, bus) = open(settings.clone()).await;
        bus.declare_topology(std::slice::from_ref(&subscription)).await.unwrap();
        bus.subscribe(subscription.clone(), Arc::new(Applier { db: db.clone() }), CancellationToken::new())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while bus.queued("crash").await.unwrap() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(bus.queued("crash").await.unwrap(), 0, "both delivered after the restart");
        assert_eq!(applied(db.clone()).await, (2, 1 + 2), "each applied exactly once");
    });
}
