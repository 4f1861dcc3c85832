//! The message bus domain events travel on, with at-least-once delivery: a published message
//! is confirmed only once the bus holds it, a consumer acknowledges a message only after its
//! handler succeeded, a failing handler is retried with backoff, and after
//! [`Subscription::max_attempts`] the message is parked in a dead-letter queue instead of being
//! lost. Consumers make redelivery harmless with the [`inbox`](crate::inbox).
//!
//! Two implementations: [`amqp::AmqpBus`] (RabbitMQ) for production and
//! [`in_process::InProcessBus`] for dev mode and tests without a broker.

pub mod amqp;
pub mod in_process;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use eventhive_domain::events::Envelope;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Settings;

/// What a consumer does with a message. An `Err` means "try again later".
#[async_trait]
pub trait MessageHandler: Send + Sync + 'static {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()>;
}

/// A named, durable queue of the messages whose routing keys match.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Queue name, unique per consuming service and purpose, e.g. `notifications.email`.
    pub queue: String,
    /// Routing keys to bind, exact (`catalog.event_published.v1`) or AMQP topic patterns (`catalog.#`).
    pub routing_keys: Vec<String>,
    /// Deliveries before a message is dead-lettered.
    pub max_attempts: u32,
    /// Messages handled at once.
    pub concurrency: u16,
}

impl Subscription {
    pub fn new(queue: impl Into<String>, routing_keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            queue: queue.into(),
            routing_keys: routing_keys.into_iter().map(Into::into).collect(),
            max_attempts: 5,
            concurrency: 8,
        }
    }
}

/// A message that exhausted its attempts, kept for an operator to inspect and replay.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub queue: String,
    pub envelope: Envelope,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    #[error("the broker did not confirm the message")]
    NotConfirmed,
    #[error("cannot encode the message: {0}")]
    Encoding(#[from] serde_json::Error),
}

#[async_trait]
pub trait MessageBus: Send + Sync + 'static {
    /// Returns once the bus holds the message durably (publisher confirm).
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError>;

    /// Starts consuming `subscription` with `handler` until `shutdown`.
    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn MessageHandler>,
        shutdown: CancellationToken,
    ) -> Result<(), BusError>;

    /// Messages parked after their last attempt on `queue`.
    async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadLetter>, BusError>;

    /// Moves every dead letter of `queue` back onto it; returns how many.
    async fn replay_dead_letters(&self, queue: &str) -> Result<usize, BusError>;

    /// Whether the bus can take messages now, for readiness probes.
    async fn is_healthy(&self) -> bool;

    /// The queues this bus declared on a broker (none in-process), so that tests can remove them.
    fn declared_queues(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Connects the bus the settings name: RabbitMQ with `EVENTHIVE_AMQP_URL`, else in-process.
pub async fn connect(settings: &Settings) -> anyhow::Result<Arc<dyn MessageBus>> {
    match &settings.amqp_url {
        Some(url) => Ok(Arc::new(amqp::AmqpBus::connect(url, &settings.amqp_exchange).await?)),
        None => Ok(Arc::new(in_process::InProcessBus::new())),
    }
}

/// Runs `handler` on a delivered message, as both buses do: records the consumer's lag behind
/// the event, the messages in flight, and what became of this delivery (`ok`, `retry` or `dead`:
/// `attempt` is the delivery's number, 1 for the first).
pub(crate) async fn handle_delivery(
    subscription: &Subscription,
    handler: &dyn MessageHandler,
    envelope: &Envelope,
    attempt: u32,
) -> anyhow::Result<()> {
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
    let outcome = handler.handle(envelope).instrument(span).await;
    in_flight.decrement(1.0);
    let label = match &outcome {
        Ok(()) => "ok",
        Err(_) if attempt >= subscription.max_attempts => "dead",
        Err(_) => "retry",
    };
    metrics::counter!("eventhive_bus_messages_handled_total", "queue" => queue, "outcome" => label).increment(1);
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

/// Backoff before attempt `attempt` (1-based) of a failed message: 100 ms doubling, at most 5 s.
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
