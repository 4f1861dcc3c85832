//! The in-process bus of dev mode: the same contract as RabbitMQ inside one process. Each
//! subscription is a queue; `publish` returns once every matching queue holds the message; a
//! handler's failure is retried with backoff and, after the last attempt, dead-lettered.
//! What it cannot give is durability across a crash of the process — the outbox covers the
//! publishing side, since a message is marked published only after `publish` returned.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use eventhive_domain::events::Envelope;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{BusError, DeadLetter, MessageBus, MessageHandler, Subscription, retry_backoff, topic_matches};

struct Queue {
    routing_keys: Vec<String>,
    sender: mpsc::UnboundedSender<Delivery>,
}

struct Delivery {
    envelope: Envelope,
    /// Deliveries so far, this one included.
    attempt: u32,
}

#[derive(Default)]
struct State {
    queues: HashMap<String, Queue>,
    dead_letters: HashMap<String, Vec<DeadLetter>>,
}

#[derive(Default, Clone)]
pub struct InProcessBus {
    state: Arc<Mutex<State>>,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the map itself is still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl MessageBus for InProcessBus {
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        let state = self.lock();
        for queue in state.queues.values() {
            if queue.routing_keys.iter().any(|pattern| topic_matches(pattern, &envelope.routing_key)) {
                queue
                    .sender
                    .send(Delivery { envelope: envelope.clone(), attempt: 1 })
                    .map_err(|_| BusError::Unavailable("a consumer queue is closed".into()))?;
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn MessageHandler>,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Delivery>();
        self.lock().queues.insert(
            subscription.queue.clone(),
            Queue { routing_keys: subscription.routing_keys.clone(), sender: sender.clone() },
        );
        let bus = self.clone();
        let permits = Arc::new(Semaphore::new(usize::from(subscription.concurrency.max(1))));
        tokio::spawn(async move {
            loop {
                let delivery = tokio::select! {
                    () = shutdown.cancelled() => break,
                    delivery = receiver.recv() => match delivery { Some(d) => d, None => break },
                };
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let handler = handler.clone();
                let sender = sender.clone();
                let bus = bus.clone();
                let subscription = subscription.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let outcome =
                        super::handle_delivery(&subscription, &*handler, &delivery.envelope, delivery.attempt).await;
                    if let Err(error) = outcome {
                        if delivery.attempt >= subscription.max_attempts {
                            tracing::error!(queue = %subscription.queue, message_id = %delivery.envelope.id, error = format!("{error:#}"), "dead-lettering message");
                            let mut state = bus.lock();
                            let letters = state.dead_letters.entry(subscription.queue.clone()).or_default();
                            letters.push(DeadLetter {
                                queue: subscription.queue.clone(),
                                envelope: delivery.envelope,
                                error: format!("{error:#}"),
                            });
                            super::record_dead_letters(&subscription.queue, letters.len());
                        } else {
                            tracing::warn!(queue = %subscription.queue, message_id = %delivery.envelope.id, attempt = delivery.attempt, error = format!("{error:#}"), "handler failed; will retry");
                            tokio::time::sleep(retry_backoff(delivery.attempt)).await;
                            let _closed =
                                sender.send(Delivery { envelope: delivery.envelope, attempt: delivery.attempt + 1 });
                        }
                    }
                });
            }
            bus.lock().queues.remove(&subscription.queue);
        });
        Ok(())
    }

    async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadLetter>, BusError> {
        Ok(self.lock().dead_letters.get(queue).cloned().unwrap_or_default())
    }

    async fn replay_dead_letters(&self, queue: &str) -> Result<usize, BusError> {
        let mut state = self.lock();
        let letters = state.dead_letters.remove(queue).unwrap_or_default();
        let Some(target) = state.queues.get(queue) else {
            state.dead_letters.insert(queue.to_owned(), letters);
            return Err(BusError::Unavailable(format!("no consumer for queue {queue}")));
        };
        let count = letters.len();
        super::record_dead_letters(queue, 0);
        for letter in letters {
            target
                .sender
                .send(Delivery { envelope: letter.envelope, attempt: 1 })
                .map_err(|_| BusError::Unavailable("the consumer queue is closed".into()))?;
        }
        Ok(count)
    }

    async fn is_healthy(&self) -> bool {
        true
    }
}
