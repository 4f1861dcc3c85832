//! The bus, the outbox and the inbox, on the in-process bus with SQLite and on RabbitMQ with
//! PostgreSQL: at-least-once delivery, retries for as long as a failure lasts, dead letters with
//! their reason and their replay, publishing from the outbox, and applying each message once.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod common;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use common::{Applier, Flaky, Kind, Ping, Rig, eventually};
use eventhive_domain::events::Envelope;
use eventhive_platform::{
    bus::{MessageBus, Replay, RetryPolicy, Subscription},
    outbox,
    outbox::OutboxRelay,
    shutdown::CancellationToken,
};

async fn a_failing_handler_is_retried_until_it_succeeds(kind: Kind) {
    let rig = Rig::new(kind).await;
    let stop = CancellationToken::new();
    // Past the five attempts (ten for notifications) after which the bus used to give up.
    let handler = Flaky::new(12);
    rig.bus.subscribe(Subscription::new("retry", ["test.#"]), handler.clone(), stop.clone()).await.unwrap();
    let envelope = Envelope::new("test", &Ping { n: 1 }, None).unwrap();
    rig.bus.publish(&envelope).await.unwrap();
    eventually("the thirteenth attempt", || handler.handled() == 1).await;
    assert_eq!(handler.attempts(), 13);
    assert_eq!(handler.handled.lock().unwrap()[0], envelope, "the same message, id included");
    assert!(rig.bus.dead_letters("retry").await.unwrap().is_empty());
    stop.cancel();
    rig.cleanup().await;
}

/// Waits until `queue` has `count` dead letters, and returns them.
async fn dead_letters(bus: &dyn MessageBus, queue: &str, count: usize) -> Vec<eventhive_platform::bus::DeadLetter> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let letters = bus.dead_letters(queue).await.unwrap();
        if letters.len() >= count || tokio::time::Instant::now() > deadline {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_message_that_keeps_failing_is_dead_lettered_after_the_retry_period_and_can_be_replayed(kind: Kind) {
    let policy = RetryPolicy { retry_for: Duration::from_millis(800), ..common::fast_retries() };
    let rig = Rig::with(kind, policy).await;
    let stop = CancellationToken::new();
    let handler = Flaky::new(0);
    handler.broken.store(true, Ordering::SeqCst);
    rig.bus.subscribe(Subscription::new("dlq", ["test.ping.v1"]), handler.clone(), stop.clone()).await.unwrap();
    let envelope = Envelope::new("test", &Ping { n: 7 }, Some("req-1".into())).unwrap();
    rig.bus.publish(&envelope).await.unwrap();
    let letters = dead_letters(&*rig.bus, "dlq", 1).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.envelope(), Some(envelope.clone()));
    assert_eq!((letter.id.as_str(), letter.routing_key.as_str()), (envelope.id.to_string().as_str(), "test.ping.v1"));
    assert!(letter.reason.contains("still failing after"), "{}", letter.reason);
    assert!(letter.reason.contains("fails on purpose"), "{}", letter.reason);
    assert!(letter.attempts > 1, "retried before giving up: {letter:?}");
    assert_eq!(letter.attempts, handler.attempts(), "no attempt past the retry period");
    // Listing leaves them in place.
    assert_eq!(rig.bus.dead_letters("dlq").await.unwrap(), letters);

    // The operator fixes the cause and replays it by id (another id replays nothing).
    handler.broken.store(false, Ordering::SeqCst);
    assert_eq!(rig.bus.replay_dead_letters("dlq", &Replay::Ids(vec!["no-such-id".into()])).await.unwrap(), 0);
    assert_eq!(rig.bus.dead_letters("dlq").await.unwrap().len(), 1);
    assert_eq!(rig.bus.replay_dead_letters("dlq", &Replay::Ids(vec![letter.id.clone()])).await.unwrap(), 1);
    eventually("the replayed message", || handler.handled() == 1).await;
    assert!(rig.bus.dead_letters("dlq").await.unwrap().is_empty());
    stop.cancel();
    rig.cleanup().await;
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

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while rig.applied().await.0 < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Let the duplicates arrive too, then check that nothing was applied twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.applied().await, (3, 1 + 2 + 3));
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

on_both_buses!(
    a_failing_handler_is_retried_until_it_succeeds,
    a_message_that_keeps_failing_is_dead_lettered_after_the_retry_period_and_can_be_replayed,
    the_outbox_publishes_after_commit_and_the_inbox_applies_once,
);

/// Closes every connection of this test's bus from the broker's side, as a broker restart
/// does; `false` when `rabbitmqctl` cannot be run here (the test then checks nothing).
fn drop_connections_at_the_broker(exchange: &str) -> bool {
    let rabbitmqctl = |args: &[&str]| std::process::Command::new("rabbitmqctl").args(args).output().ok();
    let Some(listed) = rabbitmqctl(&["-q", "list_connections", "pid", "client_properties", "--formatter", "json"])
        .filter(|output| output.status.success())
    else {
        return false;
    };
    let connections: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap_or_default();
    let name = format!("eventhive {exchange}");
    let ours: Vec<String> = connections
        .iter()
        .filter(|connection| connection["client_properties"].to_string().contains(&name))
        .filter_map(|connection| connection["pid"].as_str().map(str::to_owned))
        .collect();
    assert!(!ours.is_empty(), "the bus's connections are named after its exchange: {connections:?}");
    for pid in ours {
        rabbitmqctl(&["-q", "close_connection", &pid, "test: the broker went away"]);
    }
    true
}

/// Issue 11: the outbox relay and the consumers come back on their own after the broker
/// dropped their connections (what a RabbitMQ restart does to them), without stopping the
/// shared broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_publisher_and_consumers_reconnect_on_their_own() {
    if !eventhive_test_infra::run_infra_test() {
        return;
    }
    let rig = Rig::new(Kind::Rabbit).await;
    let stop = CancellationToken::new();
    let handler = Flaky::new(0);
    rig.bus.subscribe(Subscription::new("reconnect", ["test.#"]), handler.clone(), stop.clone()).await.unwrap();
    rig.bus.publish(&Envelope::new("test", &Ping { n: 1 }, None).unwrap()).await.unwrap();
    eventually("the first message", || handler.handled() == 1).await;

    if !drop_connections_at_the_broker(&rig.settings.amqp_exchange) {
        eprintln!("skipped: rabbitmqctl cannot be run here");
        stop.cancel();
        rig.cleanup().await;
        return;
    }
    // The relay retries a failed publish; the first attempt may meet the dropped connection.
    let relay_like = async {
        let envelope = Envelope::new("test", &Ping { n: 2 }, None).unwrap();
        for _ in 0..50 {
            if rig.bus.publish(&envelope).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(relay_like.await, "the publisher reconnected");
    eventually("the second message, by the reconnected consumer", || handler.handled() == 2).await;
    stop.cancel();
    rig.cleanup().await;
}
