//! The message bus domain events travel on, with at-least-once delivery: a published message
//! is confirmed only once the bus holds it durably in every queue it is routed to (and a
//! message no queue takes is an error, not a silent drop); a consumer acknowledges a message
//! only after its handler succeeded; a handler's transient failure is retried durably with
//! backoff and jitter for as long as [`RetryPolicy::retry_for`] allows; and a message that can
//! never succeed (see [`retry`]) or outlived its retries is parked in a dead-letter queue with
//! a reason an operator can read, listed and replayed with `eventhive dead-letters`. Consumers
//! make redelivery harmless with the [`inbox`](crate::inbox).
//!
//! The whole topology (every subscription of every service) is declared with
//! [`MessageBus::declare_topology`] before anything is published.
//!
//! Two implementations: [`amqp::AmqpBus`] (RabbitMQ) for production and
//! [`in_process::InProcessBus`] for dev mode and tests without a broker, which keeps its queues
//! in a database so that a crash loses nothing.

pub mod amqp;
pub mod in_process;
pub mod retry;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use eventhive_domain::events::Envelope;
use retry::Outcome;
pub use retry::{Permanent, RetryPolicy, is_permanent, permanent};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Settings;

/// What a consumer does with a message. An `Err` means "try again later", unless it is
/// [`permanent`].
#[async_trait]
pub trait MessageHandler: Send + Sync + 'static {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()>;
}

/// A named, durable queue of the messages whose routing keys match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Queue name, unique per consuming service and purpose, e.g. `notifications.email`.
    pub queue: String,
    /// Routing keys to bind, exact (`catalog.event_published.v1`) or AMQP topic patterns (`catalog.#`).
    pub routing_keys: Vec<String>,
    /// Messages handled at once.
    pub concurrency: u16,
}

impl Subscription {
    pub fn new(queue: impl Into<String>, routing_keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { queue: queue.into(), routing_keys: routing_keys.into_iter().map(Into::into).collect(), concurrency: 8 }
    }

    /// Whether this queue takes messages with `routing_key`.
    pub fn matches(&self, routing_key: &str) -> bool {
        self.routing_keys.iter().any(|pattern| topic_matches(pattern, routing_key))
    }
}

/// A message parked in a queue's dead-letter queue, for an operator to inspect and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The queue it was consumed from (without the bus's namespace).
    pub queue: String,
    /// The message id: the envelope's, or the broker's for a message that could not be decoded.
    pub id: String,
    pub routing_key: String,
    /// The message as it arrived: an envelope's JSON, or whatever could not be decoded.
    pub body: String,
    /// Why it was parked, as an operator reads it.
    pub reason: String,
    /// Deliveries it had.
    pub attempts: u32,
    /// When it was parked (Unix ms), when known.
    pub dead_at: Option<i64>,
}

impl DeadLetter {
    /// The envelope, when the body is one.
    pub fn envelope(&self) -> Option<Envelope> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Which dead letters of a queue to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    All,
    /// Those with these message ids.
    Ids(Vec<String>),
}

impl Replay {
    pub fn selects(&self, id: &str) -> bool {
        match self {
            Self::All => true,
            Self::Ids(ids) => ids.iter().any(|wanted| wanted == id),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    #[error("the broker did not confirm the message")]
    NotConfirmed,
    #[error("no queue takes messages with routing key {0}: declare the topology first")]
    Unroutable(String),
    #[error("cannot encode the message: {0}")]
    Encoding(#[from] serde_json::Error),
}

#[async_trait]
pub trait MessageBus: Send + Sync + 'static {
    /// Returns once every queue the message is routed to holds it durably (publisher confirm).
    /// A message no queue takes is [`BusError::Unroutable`].
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError>;

    /// Declares every queue, with its bindings, retry and dead-letter queues, so that messages
    /// published from now on are kept for consumers that have not subscribed yet.
    async fn declare_topology(&self, subscriptions: &[Subscription]) -> Result<(), BusError>;

    /// Declares `subscription` and starts consuming it with `handler` until `shutdown`.
    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn MessageHandler>,
        shutdown: CancellationToken,
    ) -> Result<(), BusError>;

    /// Messages parked on `queue`, oldest first; listing leaves them in place.
    async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadLetter>, BusError>;

    /// Moves the dead letters of `queue` that `which` selects back onto it, with a fresh set of
    /// retries; returns how many.
    async fn replay_dead_letters(&self, queue: &str, which: &Replay) -> Result<usize, BusError>;

    /// Whether the bus can take messages now, for readiness probes.
    async fn is_healthy(&self) -> bool;

    /// The queues this bus declared on a broker (none in-process), so that tests can remove them.
    fn declared_queues(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Connects the bus the settings name: RabbitMQ with `EVENTHIVE_AMQP_URL`, else in-process,
/// kept in the database `<prefix>_bus` beside the services' own.
pub async fn connect(settings: &Settings) -> anyhow::Result<Arc<dyn MessageBus>> {
    let policy = RetryPolicy::from_settings(settings);
    match &settings.amqp_url {
        Some(url) => Ok(Arc::new(amqp::AmqpBus::connect(url, &settings.amqp_exchange).await?.with_retry(policy))),
        None => Ok(Arc::new(in_process::InProcessBus::open(settings).await?.with_retry(policy))),
    }
}

/// Runs `handler` on a delivered message, as both buses do, and judges the result: records the
/// consumer's lag behind the event, the messages in flight, and what became of this delivery
/// (`ok`, `retry` or `dead`). `attempt` is the delivery's number (1 for the first);
/// `first_failed_ms` when an earlier delivery failed.
pub(crate) async fn handle_delivery(
    subscription: &Subscription,
    policy: &RetryPolicy,
    handler: &dyn MessageHandler,
    envelope: &Envelope,
    attempt: u32,
    first_failed_ms: Option<i64>,
) -> Outcome {
    let queue = subscription.queue.clone();
    let lag = (time::OffsetDateTime::now_utc() - envelope.occurred_at).as_seconds_f64().max(0.0);
    metrics::histogram!("eventhive_bus_message_lag_seconds", "queue" => queue.clone()).record(lag);
    let in_flight = metrics::gauge!("eventhive_bus_messages_in_flight", "queue" => queue.clone());
    in_flight.increment(1.0);
    let span = tracing::info_span!(
        "consume",
        queue = %subscription.queue,
        routing_key = %envelope.routing_key,
        message_id = %envelope.id,
        request_id = envelope.request_id.as_deref().unwrap_or("-"),
        attempt,
    );
    crate::telemetry::continue_trace(&span, envelope.traceparent.as_deref());
    let result = handler.handle(envelope).instrument(span).await;
    in_flight.decrement(1.0);
    let outcome = match result {
        Ok(()) => Outcome::Done,
        Err(error) => {
            let now = crate::storage::now_ms();
            Outcome::of_failure(policy, &error, attempt, first_failed_ms.unwrap_or(now), now)
        }
    };
    match &outcome {
        Outcome::Done => {}
        Outcome::Retry { after, error } => {
            tracing::warn!(%queue, message_id = %envelope.id, attempt, ?after, %error, "handler failed; will retry");
        }
        Outcome::Dead { reason } => {
            tracing::error!(%queue, message_id = %envelope.id, attempt, %reason, "dead-lettering message");
        }
    }
    metrics::counter!("eventhive_bus_messages_handled_total", "queue" => queue, "outcome" => outcome.label())
        .increment(1);
    outcome
}

/// Sets the dead-letter gauge of `queue` to what this process last saw.
pub(crate) fn record_dead_letters(queue: &str, count: usize) {
    metrics::gauge!("eventhive_bus_dead_letters", "queue" => queue.to_owned()).set(count as f64);
}

/// Adds one to the dead-letter gauge of `queue`.
pub(crate) fn count_dead_letter(queue: &str) {
    metrics::gauge!("eventhive_bus_dead_letters", "queue" => queue.to_owned()).increment(1.0);
}

/// Backoff before reconnect or republish attempt `attempt` (1-based): 100 ms doubling, at most
/// 5 s. (A failed message waits per its [`RetryPolicy`] instead.)
pub fn retry_backoff(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(6);
    Duration::from_millis(100 * 2u64.pow(exponent)).min(Duration::from_secs(5))
}

/// AMQP topic matching: words separated by `.`, `*` one word, `#` zero or more words.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    fn matches(pattern: &[&str], key: &[&str]) -> bool {
        match (pattern.first(), key.first()) {
            (None, None) => true,
            (Some(&"#"), _) => matches(&pattern[1..], key) || (!key.is_empty() && matches(pattern, &key[1..])),
            (Some(&"*"), Some(_)) => matches(&pattern[1..], &key[1..]),
            (Some(p), Some(k)) if p == k => matches(&pattern[1..], &key[1..]),
            _ => false,
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    matches(&pattern, &key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_match_like_rabbitmq() {
        assert!(topic_matches("catalog.event_published.v1", "catalog.event_published.v1"));
        assert!(topic_matches("catalog.#", "catalog.event_published.v1"));
        assert!(topic_matches("#", "a.b"));
        assert!(topic_matches("catalog.*.v1", "catalog.event_changed.v1"));
        assert!(!topic_matches("catalog.*", "catalog.event_changed.v1"));
        assert!(!topic_matches("ticketing.#", "catalog.event_changed.v1"));
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(retry_backoff(1), Duration::from_millis(100));
        assert_eq!(retry_backoff(2), Duration::from_millis(200));
        assert_eq!(retry_backoff(50), Duration::from_secs(5));
    }
}
