//! `eventhive dead-letters list|replay`, run as an operator runs it, against the in-process
//! bus of `eventhive dev` (its database under EVENTHIVE_DATA_DIR) and against RabbitMQ.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use eventhive_domain::events::{DomainEvent, Envelope};
use eventhive_platform::{
    Settings,
    async_trait::async_trait,
    bus::{self, MessageBus, MessageHandler, amqp::AmqpBus, permanent},
    shutdown::CancellationToken,
};
use eventhive_test_support::{Backend, on_both_backends};
use serde::{Deserialize, Serialize};

const QUEUE: &str = "notifications.email";

/// An email notifications could never send: its payload is not what it expects.
#[derive(Serialize, Deserialize)]
struct Garbled {
    nonsense: u32,
}

impl DomainEvent for Garbled {
    const TYPE: &'static str = "ticketing.tickets_issued";
    const VERSION: u32 = 1;
}

/// Accepts everything, and records the ids of what it accepted.
#[derive(Default)]
struct Gate {
    accepted: Mutex<Vec<String>>,
}

#[async_trait]
impl MessageHandler for Gate {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.accepted.lock().unwrap().push(envelope.id.to_string());
        Ok(())
    }
}

struct Refuse;

#[async_trait]
impl MessageHandler for Refuse {
    async fn handle(&self, _envelope: &Envelope) -> anyhow::Result<()> {
        Err(permanent(anyhow::anyhow!("no template for this payload")))
    }
}

/// `eventhive <args>` with only `env` for settings: (success, stdout + stderr).
fn eventhive(env: &[(String, String)], args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventhive"));
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("EVENTHIVE_")) {
        command.env_remove(key);
    }
    let output = command.args(args).envs(env.iter().cloned()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

async fn operators_list_and_replay_dead_letters_of_any_queue(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let mut env = vec![("EVENTHIVE_DATA_DIR".to_owned(), dir.path().to_string_lossy().into_owned())];
    let mut settings = Settings { data_dir: dir.path().to_owned(), ..Settings::default() };
    if backend == Backend::Infra {
        settings.amqp_url = Some(eventhive_test_support::infra::amqp_url());
        settings.amqp_exchange = format!("eh-test-{run}.events");
        env.push(("EVENTHIVE_AMQP_URL".into(), eventhive_test_support::infra::amqp_url()));
        env.push(("EVENTHIVE_AMQP_EXCHANGE".into(), settings.amqp_exchange.clone()));
    }
    let bus = bus::connect(&settings).await.unwrap();
    bus.declare_topology(&eventhive_system::subscriptions()).await.unwrap();
    let subscription = eventhive_system::subscriptions().into_iter().find(|s| s.queue == QUEUE).unwrap();
    let refusing = CancellationToken::new();
    bus.subscribe(subscription.clone(), Arc::new(Refuse), refusing.clone()).await.unwrap();
    let sent: Vec<Envelope> =
        (0..2).map(|nonsense| Envelope::new("ticketing", &Garbled { nonsense }, None).unwrap()).collect();
    for envelope in &sent {
        bus.publish(envelope).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while bus.dead_letters(QUEUE).await.unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refusing.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (first, second) = (sent[0].id.to_string(), sent[1].id.to_string());

    let (ok, listed) = eventhive(&env, &["dead-letters", "list"]);
    assert!(ok, "{listed}");
    for id in [&first, &second] {
        let line = listed.lines().find(|line| line.contains(id.as_str())).unwrap_or_else(|| panic!("{listed}"));
        assert!(line.starts_with(QUEUE) && line.contains("ticketing.tickets_issued.v1"), "{line}");
        assert!(line.contains("after 1 attempts: permanent failure") && line.contains("no template"), "{line}");
    }
    let (ok, refused) = eventhive(&env, &["dead-letters", "list", "--queue", "nowhere"]);
    assert!(!ok && refused.contains("notifications.email"), "names the queues there are: {refused}");
    let (ok, refused) = eventhive(&env, &["dead-letters", "replay"]);
    assert!(!ok, "replay needs --id or --all: {refused}");

    let (ok, replayed) = eventhive(&env, &["dead-letters", "replay", "--queue", QUEUE, "--id", &first]);
    assert!(ok && replayed.contains("1 dead letters replayed"), "{replayed}");
    let (_, listed) = eventhive(&env, &["dead-letters", "list", "--queue", QUEUE]);
    assert!(!listed.contains(&first) && listed.contains(&second), "{listed}");
    let (ok, replayed) = eventhive(&env, &["dead-letters", "replay", "--all"]);
    assert!(ok && replayed.contains("1 dead letters replayed"), "{replayed}");
    let (_, listed) = eventhive(&env, &["dead-letters", "list"]);
    assert!(listed.contains("no dead letters"), "{listed}");

    // Both are back on their queue for the consumer, once it can take them.
    let gate = Arc::new(Gate::default());
    let consuming = CancellationToken::new();
    bus.subscribe(subscription, gate.clone(), consuming.clone()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while gate.accepted.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut accepted = gate.accepted.lock().unwrap().clone();
    accepted.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(accepted, expected);
    consuming.cancel();
    clean_up(&settings, &*bus).await;
}

async fn clean_up(settings: &Settings, bus: &dyn MessageBus) {
    if let Some(url) = &settings.amqp_url {
        let admin = AmqpBus::connect(url, &settings.amqp_exchange).await.unwrap();
        for queue in bus.declared_queues() {
            admin.delete_queue(&queue).await.unwrap();
        }
        admin.delete_exchange().await.unwrap();
    }
}

on_both_backends!(operators_list_and_replay_dead_letters_of_any_queue);
