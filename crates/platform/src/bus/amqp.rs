//! RabbitMQ: one durable topic exchange; per subscription a durable queue bound to its routing
//! keys, with a dead-letter queue beside it (`<queue>.dlq`). Messages are persistent,
//! publishes wait for the broker's confirm, consumers acknowledge manually after the handler
//! succeeded. A failed message is re-queued with its attempt count and a backoff; after the
//! last attempt it goes to the dead-letter queue with the error. A lost connection is
//! re-established on the next publish and by each consumer loop.

use std::sync::Arc;

use async_trait::async_trait;
use eventhive_domain::events::Envelope;
use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    publisher_confirm::Confirmation,
    types::{AMQPValue, FieldTable, ShortString},
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{BusError, DeadLetter, MessageBus, MessageHandler, Subscription, retry_backoff};

const ATTEMPT_HEADER: &str = "x-eventhive-attempt";
const ERROR_HEADER: &str = "x-eventhive-error";
/// The default exchange routes by queue name: used for retries and dead letters.
const DIRECT: &str = "";

pub struct AmqpBus {
    url: String,
    exchange: String,
    /// The publishing channel (in confirm mode), re-opened when the connection was lost.
    publisher: Mutex<Option<(Connection, Channel)>>,
    /// Queues this bus declared, so that tests can remove what they created.
    declared: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl AmqpBus {
    pub async fn connect(url: &str, exchange: &str) -> anyhow::Result<Self> {
        let bus = Self {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            publisher: Mutex::new(None),
            declared: Arc::default(),
        };
        bus.publishing_channel().await.map_err(|e| anyhow::anyhow!("cannot connect to RabbitMQ: {e}"))?;
        Ok(bus)
    }

    /// The queue name on the broker; namespaced by the exchange so that deployments (and test
    /// runs) sharing a broker never share queues.
    fn queue_name(&self, queue: &str) -> String {
        format!("{}.{}", self.exchange, queue)
    }

    async fn open(&self) -> Result<(Connection, Channel), BusError> {
        let properties = ConnectionProperties::default()
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

    async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope,
        headers: FieldTable,
    ) -> Result<(), BusError> {
        let payload = serde_json::to_vec(envelope)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(ShortString::from("application/json"))
            .with_message_id(ShortString::from(envelope.id.to_string()))
            .with_type(ShortString::from(envelope.routing_key.clone()))
            .with_headers(headers);
        let channel = self.publishing_channel().await?;
        let result = async {
            let confirm = channel
                .basic_publish(exchange, routing_key, BasicPublishOptions::default(), &payload, properties)
                .await
                .map_err(unavailable)?
                .await
                .map_err(unavailable)?;
            match confirm {
                Confirmation::Ack(_) => Ok(()),
                _ => Err(BusError::NotConfirmed),
            }
        }
        .await;
        if result.is_err() {
            // Start from a fresh connection next time.
            self.publisher.lock().await.take();
        }
        result
    }

    /// Declares the queue, its dead-letter queue and the bindings.
    async fn declare(&self, channel: &Channel, subscription: &Subscription) -> Result<String, BusError> {
        let queue = self.queue_name(&subscription.queue);
        let dead_letter_queue = format!("{queue}.dlq");
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        let parked =
            channel.queue_declare(&dead_letter_queue, durable, FieldTable::default()).await.map_err(unavailable)?;
        super::record_dead_letters(&subscription.queue, parked.message_count() as usize);
        let mut arguments = FieldTable::default();
        arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(DIRECT.into()));
        arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(dead_letter_queue.as_str().into()));
        channel.queue_declare(&queue, durable, arguments).await.map_err(unavailable)?;
        for key in &subscription.routing_keys {
            channel
                .queue_bind(&queue, &self.exchange, key, QueueBindOptions::default(), FieldTable::default())
                .await
                .map_err(unavailable)?;
        }
        Ok(queue)
    }

    /// Consumes until the connection drops or `shutdown`; returns whether to stop for good.
    async fn consume_once(
        self: &Arc<Self>,
        subscription: &Subscription,
        handler: &Arc<dyn MessageHandler>,
        shutdown: &CancellationToken,
    ) -> Result<(), BusError> {
        let (connection, channel) = self.open().await?;
        let queue = self.declare(&channel, subscription).await?;
        channel.basic_qos(subscription.concurrency.max(1), BasicQosOptions::default()).await.map_err(unavailable)?;
        let mut consumer = channel
            .basic_consume(&queue, "", BasicConsumeOptions::default(), FieldTable::default())
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
            let bus = self.clone();
            let handler = handler.clone();
            let subscription = subscription.clone();
            let queue = queue.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let attempt = delivery
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned())
                    .and_then(|v| match v {
                        AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
                        AMQPValue::LongInt(n) => u32::try_from(n).ok(),
                        _ => None,
                    })
                    .unwrap_or(1);
                let envelope: Envelope = match serde_json::from_slice(&delivery.data) {
                    Ok(envelope) => envelope,
                    Err(error) => {
                        // Unreadable: no retry can help. Let the broker dead-letter it.
                        tracing::error!(%queue, %error, "malformed message; dead-lettering");
                        let _ = delivery.nack(BasicNackOptions { requeue: false, ..BasicNackOptions::default() }).await;
                        return;
                    }
                };
                let outcome = super::handle_delivery(&subscription, &*handler, &envelope, attempt).await;
                let settled = match outcome {
                    Ok(()) => Ok(()),
                    Err(error) if attempt >= subscription.max_attempts => {
                        tracing::error!(%queue, message_id = %envelope.id, attempt, error = format!("{error:#}"), "dead-lettering message");
                        let mut headers = FieldTable::default();
                        headers
                            .insert(ERROR_HEADER.into(), AMQPValue::LongString(format!("{error:#}").as_str().into()));
                        let parked = bus.publish_raw(DIRECT, &format!("{queue}.dlq"), &envelope, headers).await;
                        if parked.is_ok() {
                            super::count_dead_letter(&subscription.queue);
                        }
                        parked
                    }
                    Err(error) => {
                        tracing::warn!(%queue, message_id = %envelope.id, attempt, error = format!("{error:#}"), "handler failed; will retry");
                        tokio::time::sleep(retry_backoff(attempt)).await;
                        let mut headers = FieldTable::default();
                        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(i64::from(attempt) + 1));
                        bus.publish_raw(DIRECT, &queue, &envelope, headers).await
                    }
                };
                match settled {
                    Ok(()) => {
                        if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                            tracing::warn!(%queue, %error, "ack failed; the message will be redelivered");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%queue, %error, "cannot settle message; returning it to the queue");
                        let _ = delivery.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
                    }
                }
            });
        }
        // Let in-flight handlers finish before the channel goes.
        let _all = in_flight.acquire_many(u32::from(subscription.concurrency.max(1))).await;
        let _ = channel.close(200, "shutdown").await;
        let _ = connection.close(200, "shutdown").await;
        Ok(())
    }

    /// Deletes a subscription's queues (test clean-up).
    pub async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        let channel = self.publishing_channel().await?;
        let queue = self.queue_name(queue);
        for name in [format!("{queue}.dlq"), queue] {
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

fn unavailable(error: lapin::Error) -> BusError {
    BusError::Unavailable(error.to_string())
}

#[async_trait]
impl MessageBus for AmqpBus {
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        self.publish_raw(&self.exchange, &envelope.routing_key, envelope, FieldTable::default()).await
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn MessageHandler>,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        self.declared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(subscription.queue.clone());
        let bus = Arc::new(Self {
            url: self.url.clone(),
            exchange: self.exchange.clone(),
            publisher: Mutex::new(None),
            declared: self.declared.clone(),
        });
        // Declare before returning, so a message published right after `subscribe` is queued.
        {
            let (connection, channel) = bus.open().await?;
            bus.declare(&channel, &subscription).await?;
            let _ = channel.close(200, "declared").await;
            let _ = connection.close(200, "declared").await;
        }
        tokio::spawn(async move {
            let mut failures = 0u32;
            while !shutdown.is_cancelled() {
                match bus.consume_once(&subscription, &handler, &shutdown).await {
                    Ok(()) => break,
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(queue = %subscription.queue, %error, "consumer lost its connection; reconnecting");
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(retry_backoff(failures)) => {}
                        }
                    }
                }
            }
        });
        Ok(())
    }

    async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadLetter>, BusError> {
        // Reads every dead letter without acknowledging it, then returns them all to the queue.
        let (connection, channel) = self.open().await?;
        let dead_letter_queue = format!("{}.dlq", self.queue_name(queue));
        let mut letters = Vec::new();
        let mut last_tag = None;
        while let Some(message) =
            channel.basic_get(&dead_letter_queue, BasicGetOptions { no_ack: false }).await.map_err(unavailable)?
        {
            let error = message
                .delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(ERROR_HEADER).cloned())
                .map(|v| match v {
                    AMQPValue::LongString(s) => s.to_string(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_else(|| "rejected by the broker".to_owned());
            last_tag = Some(message.delivery.delivery_tag);
            if let Ok(envelope) = serde_json::from_slice::<Envelope>(&message.delivery.data) {
                letters.push(DeadLetter { queue: queue.to_owned(), envelope, error });
            }
        }
        if let Some(tag) = last_tag {
            channel.basic_nack(tag, BasicNackOptions { multiple: true, requeue: true }).await.map_err(unavailable)?;
        }
        super::record_dead_letters(queue, letters.len());
        let _ = channel.close(200, "listed").await;
        let _ = connection.close(200, "listed").await;
        Ok(letters)
    }

    async fn replay_dead_letters(&self, queue: &str) -> Result<usize, BusError> {
        let (connection, channel) = self.open().await?;
        let target = self.queue_name(queue);
        let dead_letter_queue = format!("{target}.dlq");
        let mut count = 0;
        while let Some(message) =
            channel.basic_get(&dead_letter_queue, BasicGetOptions { no_ack: false }).await.map_err(unavailable)?
        {
            match serde_json::from_slice::<Envelope>(&message.delivery.data) {
                Ok(envelope) => {
                    self.publish_raw(DIRECT, &target, &envelope, FieldTable::default()).await?;
                    count += 1;
                }
                Err(error) => tracing::error!(%error, "dropping an unreadable dead letter"),
            }
            message.delivery.ack(BasicAckOptions::default()).await.map_err(unavailable)?;
        }
        super::record_dead_letters(queue, 0);
        let _ = channel.close(200, "replayed").await;
        let _ = connection.close(200, "replayed").await;
        Ok(count)
    }

    async fn is_healthy(&self) -> bool {
        self.publishing_channel().await.is_ok()
    }

    fn declared_queues(&self) -> Vec<String> {
        self.declared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }
}
