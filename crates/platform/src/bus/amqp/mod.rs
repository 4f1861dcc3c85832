//! RabbitMQ: one durable topic exchange; per subscription a durable queue bound to its routing
//! keys, and beside it a retry queue (`<queue>.retry`) and a dead-letter queue (`<queue>.dlq`).
//! The whole topology is declared before anything is published
//! ([`MessageBus::declare_topology`]). Messages are persistent; every publish is `mandatory`
//! and waits for the broker's confirm, and a message the broker returns (no queue bound for
//! its routing key) is a failure, so the outbox keeps it.
//!
//! Consumers acknowledge manually, after the handler succeeded. A transient failure is
//! republished to the retry queue with its attempt count, the time of its first failure and an
//! expiration (the backoff); when it expires, the broker dead-letters it back onto the queue.
//! The retry is therefore in the broker, not in a consumer's memory: a consumer that restarts
//! meanwhile forgets nothing. A message that can never succeed, or still fails after
//! `EVENTHIVE_BUS_RETRY_FOR_SECS`, is published to the dead-letter queue with the reason in
//! its `x-eventhive-error` header. The retry queue is one FIFO with per-message expirations,
//! and RabbitMQ only expires a queue's head: a short backoff behind a long one waits for it,
//! at most `EVENTHIVE_BUS_RETRY_MAX_MS`.
//!
//! A lost connection is re-established on the next publish and by each consumer loop.

mod dead_letters;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use async_trait::async_trait;
use eventhive_domain::events::Envelope;
use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    publisher_confirm::Confirmation,
    types::{AMQPValue, FieldTable, ShortString},
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{BusError, DeadLetter, MessageBus, MessageHandler, Replay, RetryPolicy, Subscription, retry::Outcome};
use crate::storage::now_ms;

/// Deliveries so far plus one.
const ATTEMPT_HEADER: &str = "x-eventhive-attempt";
/// When a delivery first failed (Unix ms).
const FIRST_FAILED_HEADER: &str = "x-eventhive-first-failed-at";
/// The last error (retry queue) or why it was parked (dead-letter queue).
const ERROR_HEADER: &str = "x-eventhive-error";
/// When it was parked (Unix ms).
const DEAD_AT_HEADER: &str = "x-eventhive-dead-at";
/// The default exchange routes by queue name: used for retries and dead letters.
const DIRECT: &str = "";

/// The broker's names of one subscription's queues.
struct Names {
    queue: String,
    retry: String,
    dead: String,
}

pub struct AmqpBus {
    url: String,
    exchange: String,
    policy: RetryPolicy,
    /// The publishing channel (in confirm mode), re-opened when the connection was lost.
    publisher: Mutex<Option<(Connection, Channel)>>,
    /// Queues this bus declared, so that tests can remove what they created.
    declared: Arc<std::sync::Mutex<BTreeSet<String>>>,
}

impl AmqpBus {
    pub async fn connect(url: &str, exchange: &str) -> anyhow::Result<Self> {
        let bus = Self {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            policy: RetryPolicy::default(),
            publisher: Mutex::new(None),
            declared: Arc::default(),
        };
        bus.publishing_channel().await.map_err(|e| anyhow::anyhow!("cannot connect to RabbitMQ: {e}"))?;
        Ok(bus)
    }

    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The same bus with a publishing connection of its own (each consumer's).
    fn sibling(&self) -> Self {
        Self {
            url: self.url.clone(),
            exchange: self.exchange.clone(),
            policy: self.policy,
            publisher: Mutex::new(None),
            declared: self.declared.clone(),
        }
    }

    /// The queue names on the broker; namespaced by the exchange so that deployments (and test
    /// runs) sharing a broker never share queues.
    fn names(&self, queue: &str) -> Names {
        let queue = format!("{}.{}", self.exchange, queue);
        Names { retry: format!("{queue}.retry"), dead: format!("{queue}.dlq"), queue }
    }

    async fn open(&self) -> Result<(Connection, Channel), BusError> {
        // Named after the exchange, so that an operator (or a test) can tell a deployment's
        // connections apart on a shared broker.
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("eventhive {}", self.exchange).as_str().into())
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let connection = Connection::connect(&self.url, properties).await.map_err(unavailable)?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(unavailable)?;
        channel
            .exchange_declare(
                &self.exchange,
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok((connection, channel))
    }

    async fn publishing_channel(&self) -> Result<Channel, BusError> {
        let mut guard = self.publisher.lock().await;
        if let Some((connection, channel)) = guard.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let (connection, channel) = self.open().await?;
        *guard = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// Publishes `payload` as mandatory and waits for the confirm; a returned message is
    /// [`BusError::Unroutable`].
    async fn publish_bytes(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BusError> {
        let channel = self.publishing_channel().await?;
        let mandatory = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let result = async {
            let confirm = channel
                .basic_publish(exchange, routing_key, mandatory, payload, properties)
                .await
                .map_err(unavailable)?
                .await
                .map_err(unavailable)?;
            match confirm {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(_returned)) => Err(BusError::Unroutable(routing_key.to_owned())),
                Confirmation::Nack(_) | Confirmation::NotRequested => Err(BusError::NotConfirmed),
            }
        }
        .await;
        if matches!(result, Err(BusError::Unavailable(_) | BusError::NotConfirmed)) {
            // Start from a fresh connection next time.
            self.publisher.lock().await.take();
        }
        result
    }

    /// Declares a subscription's queue, retry queue, dead-letter queue and bindings.
    async fn declare(&self, channel: &Channel, subscription: &Subscription) -> Result<Names, BusError> {
        let names = self.names(&subscription.queue);
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        let back_to = |target: &str| {
            let mut arguments = FieldTable::default();
            arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(DIRECT.into()));
            arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(target.into()));
            arguments
        };
        let parked = channel.queue_declare(&names.dead, durable, FieldTable::default()).await.map_err(unavailable)?;
        super::record_dead_letters(&subscription.queue, parked.message_count() as usize);
        // What the broker itself rejects goes to the dead-letter queue (as it always did: a
        // queue's arguments cannot change once it exists).
        channel.queue_declare(&names.queue, durable, back_to(&names.dead)).await.map_err(unavailable)?;
        // An expired retry goes back onto the queue.
        channel.queue_declare(&names.retry, durable, back_to(&names.queue)).await.map_err(unavailable)?;
        for key in &subscription.routing_keys {
            channel
                .queue_bind(&names.queue, &self.exchange, key, QueueBindOptions::default(), FieldTable::default())
                .await
                .map_err(unavailable)?;
        }
        self.declared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(subscription.queue.clone());
        Ok(names)
    }

    /// Consumes until the connection drops (an error) or `shutdown` (`Ok`).
    async fn consume_once(
        self: &Arc<Self>,
        subscription: &Subscription,
        handler: &Arc<dyn MessageHandler>,
        shutdown: &CancellationToken,
    ) -> Result<(), BusError> {
        let (connection, channel) = self.open().await?;
        let names = Arc::new(self.declare(&channel, subscription).await?);
        channel.basic_qos(subscription.concurrency.max(1), BasicQosOptions::default()).await.map_err(unavailable)?;
        let mut consumer = channel
            .basic_consume(&names.queue, "", BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(unavailable)?;
        let in_flight = Arc::new(tokio::sync::Semaphore::new(usize::from(subscription.concurrency.max(1))));
        loop {
            let delivery = tokio::select! {
                () = shutdown.cancelled() => break,
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(error)) => return Err(unavailable(error)),
                    None => return Err(BusError::Unavailable("consumer stream ended".into())),
                },
            };
            let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
            let (bus, handler, subscription, names) =
                (self.clone(), handler.clone(), subscription.clone(), names.clone());
            tokio::spawn(async move {
                let _permit = permit;
                bus.settle(&names, &subscription, &*handler, delivery).await;
            });
        }
        // Let in-flight handlers finish before the channel goes.
        let _all = in_flight.acquire_many(u32::from(subscription.concurrency.max(1))).await;
        let _ = channel.close(200, "shutdown").await;
        let _ = connection.close(200, "shutdown").await;
        Ok(())
    }

    /// Runs the handler on one delivery and settles it: acknowledged once handled, or once
    /// its retry or its dead letter is confirmed by the broker; returned to the queue when
    /// neither could be published.
    async fn settle(
        &self,
        names: &Names,
        subscription: &Subscription,
        handler: &dyn MessageHandler,
        delivery: Delivery,
    ) {
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let attempt = header_int(&headers, ATTEMPT_HEADER).and_then(|n| u32::try_from(n).ok()).unwrap_or(1).max(1);
        let first_failed = header_int(&headers, FIRST_FAILED_HEADER);
        let settled = match serde_json::from_slice::<Envelope>(&delivery.data) {
            Err(error) => {
                let reason = format!("undecodable message: {error}");
                tracing::error!(queue = %names.queue, %reason, "dead-lettering message");
                self.bury(names, subscription, &delivery, attempt, &reason).await
            }
            Ok(envelope) => {
                match super::handle_delivery(subscription, &self.policy, handler, &envelope, attempt, first_failed)
                    .await
                {
                    Outcome::Done => Ok(()),
                    Outcome::Retry { after, error } => {
                        let mut headers = FieldTable::default();
                        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(i64::from(attempt) + 1));
                        let first_failed = first_failed.unwrap_or_else(now_ms);
                        headers.insert(FIRST_FAILED_HEADER.into(), AMQPValue::LongLongInt(first_failed));
                        headers.insert(ERROR_HEADER.into(), AMQPValue::LongString(error.as_str().into()));
                        let properties = message_properties(&delivery, headers)
                            .with_expiration(ShortString::from(after.as_millis().max(1).to_string()));
                        self.publish_bytes(DIRECT, &names.retry, &delivery.data, properties).await
                    }
                    Outcome::Dead { reason } => self.bury(names, subscription, &delivery, attempt, &reason).await,
                }
            }
        };
        match settled {
            Ok(()) => {
                if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                    tracing::warn!(queue = %names.queue, %error, "ack failed; the message will be redelivered");
                }
            }
            Err(error) => {
                tracing::warn!(queue = %names.queue, %error, "cannot settle message; returning it to the queue");
                // Not at once: the broker would hand it straight back.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = delivery.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
            }
        }
    }

    /// Publishes a delivery to its dead-letter queue with `reason`.
    async fn bury(
        &self,
        names: &Names,
        subscription: &Subscription,
        delivery: &Delivery,
        attempt: u32,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut headers = FieldTable::default();
        headers.insert(ERROR_HEADER.into(), AMQPValue::LongString(reason.into()));
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(i64::from(attempt)));
        headers.insert(DEAD_AT_HEADER.into(), AMQPValue::LongLongInt(now_ms()));
        let properties = message_properties(delivery, headers);
        self.publish_bytes(DIRECT, &names.dead, &delivery.data, properties).await?;
        super::count_dead_letter(&subscription.queue);
        Ok(())
    }

    /// Deletes a subscription's queues (test clean-up).
    pub async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        let channel = self.publishing_channel().await?;
        let names = self.names(queue);
        for name in [names.dead, names.retry, names.queue] {
            channel.queue_delete(&name, QueueDeleteOptions::default()).await.map_err(unavailable)?;
        }
        Ok(())
    }

    /// Deletes the exchange (test clean-up).
    pub async fn delete_exchange(&self) -> Result<(), BusError> {
        let channel = self.publishing_channel().await?;
        channel.exchange_delete(&self.exchange, Default::default()).await.map_err(unavailable)
    }
}

/// Persistent JSON with the message id and type of `delivery` (a fresh id if it had none) and
/// `headers`.
fn message_properties(delivery: &Delivery, headers: FieldTable) -> BasicProperties {
    let id = delivery.properties.message_id().clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string().into());
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from("application/json"))
        .with_message_id(id)
        .with_headers(headers);
    if let Some(kind) = delivery.properties.kind() {
        properties = properties.with_type(kind.clone());
    }
    properties
}

/// Persistent JSON properties of a new envelope.
fn envelope_properties(envelope: &Envelope) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from("application/json"))
        .with_message_id(ShortString::from(envelope.id.to_string()))
        .with_type(ShortString::from(envelope.routing_key.clone()))
        .with_headers(FieldTable::default())
}

fn header_int(headers: &FieldTable, name: &str) -> Option<i64> {
    match headers.inner().get(name)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn header_text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(text) => Some(text.to_string()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn unavailable(error: lapin::Error) -> BusError {
    BusError::Unavailable(error.to_string())
}

#[async_trait]
impl MessageBus for AmqpBus {
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        let payload = serde_json::to_vec(envelope)?;
        self.publish_bytes(&self.exchange, &envelope.routing_key, &payload, envelope_properties(envelope)).await
    }

    async fn declare_topology(&self, subscriptions: &[Subscription]) -> Result<(), BusError> {
        let (connection, channel) = self.open().await?;
        for subscription in subscriptions {
            self.declare(&channel, subscription).await?;
        }
        let _ = channel.close(200, "declared").await;
        let _ = connection.close(200, "declared").await;
        Ok(())
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn MessageHandler>,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        // Declare before returning, so a message published right after `subscribe` is queued.
        self.declare_topology(std::slice::from_ref(&subscription)).await?;
        let bus = Arc::new(self.sibling());
        tokio::spawn(async move {
            let mut failures = 0u32;
            while !shutdown.is_cancelled() {
                let started = tokio::time::Instant::now();
                match bus.consume_once(&subscription, &handler, &shutdown).await {
                    Ok(()) => break,
                    Err(error) => {
                        // A connection that served a while counts as a fresh start.
                        failures = if started.elapsed() > Duration::from_secs(30) { 1 } else { failures + 1 };
                        tracing::warn!(queue = %subscription.queue, %error, failures, "consumer lost its connection; reconnecting");
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(super::retry_backoff(failures)) => {}
                        }
                    }
                }
            }
        });
        Ok(())
    }

    async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadLetter>, BusError> {
        dead_letters::list(self, queue).await
    }

    async fn replay_dead_letters(&self, queue: &str, which: &Replay) -> Result<usize, BusError> {
        dead_letters::replay(self, queue, which).await
    }

    async fn is_healthy(&self) -> bool {
        self.publishing_channel().await.is_ok()
    }

    fn declared_queues(&self) -> Vec<String> {
        self.declared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }
}
