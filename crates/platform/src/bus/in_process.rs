//! The in-process bus of dev mode: the same contract as RabbitMQ inside one process, with its
//! queues kept in a database (`bus_messages` and `bus_dead_letters`, in `<prefix>_bus`: a
//! SQLite file beside the services' own under `eventhive dev`). `publish` returns once the
//! message is committed to every queue it is routed to; a consumer deletes a message only after
//! its handler succeeded, and a retry is the message's row made due again later. A crash or a
//! Ctrl-C therefore loses nothing: on the next start every queue's consumer picks up what is
//! still in its rows. A message delivered but not yet deleted when the process died is
//! delivered again, which the consumer's inbox makes harmless.
//!
//! Consumers are woken at once by a publish in the same process, and look every
//! [`POLL`] for retries that fell due and for dead letters replayed by another process
//! (`eventhive dead-letters replay` while `eventhive dev` runs).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use eventhive_domain::events::Envelope;
use sqlx::{AnyConnection, migrate::Migrator};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{BusError, DeadLetter, MessageBus, MessageHandler, Replay, RetryPolicy, Subscription, retry::Outcome};
use crate::{
    config::Settings,
    storage::{Database, now_ms},
};

/// The bus's own tables.
static BUS_MIGRATIONS: Migrator = sqlx::migrate!("./migrations-bus");

/// How often a consumer looks for messages nothing woke it for.
pub const POLL: Duration = Duration::from_millis(100);

/// A queue as declared in this process: what it takes, how to wake its consumers, and the
/// messages they are handling (shared, so that two consumers of one queue compete for its
/// messages as on a broker instead of both taking each).
struct Queue {
    subscription: Subscription,
    wake: Arc<Notify>,
    in_flight: InFlight,
}

type InFlight = Arc<Mutex<HashSet<String>>>;

#[derive(Clone)]
pub struct InProcessBus {
    db: Database,
    policy: RetryPolicy,
    queues: Arc<Mutex<HashMap<String, Queue>>>,
}

/// A message waiting in a queue.
struct Row {
    message_id: String,
    envelope: String,
    attempt: u32,
    first_failed_at: Option<i64>,
}

impl InProcessBus {
    /// The bus kept in the database `<prefix>_bus` the settings name (a SQLite file under
    /// `data_dir` unless `EVENTHIVE_DATABASE_URL` is set).
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        Self::on(Database::connect(settings, "bus").await?).await
    }

    /// The bus kept in `db`, its tables created if missing.
    pub async fn on(db: Database) -> anyhow::Result<Self> {
        BUS_MIGRATIONS.run(db.pool()).await.map_err(|e| anyhow::anyhow!("migrating the bus's tables: {e}"))?;
        Ok(Self { db, policy: RetryPolicy::default(), queues: Arc::default() })
    }

    /// A bus in memory, gone with the process: for tests, and for a process that publishes
    /// and consumes nothing.
    pub async fn in_memory() -> anyhow::Result<Self> {
        Self::on(Database::in_memory().await?).await
    }

    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Messages waiting in `queue` (due or not), for tests and operators.
    pub async fn queued(&self, queue: &str) -> Result<i64, BusError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM bus_messages WHERE queue = $1")
            .bind(queue)
            .fetch_one(self.db.pool())
            .await
            .map_err(store)
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        // A poisoned lock only means a panic elsewhere; the map itself is still consistent.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Declares `subscription`'s queue in this process; returns what its consumers share.
    fn declare(&self, subscription: &Subscription) -> (Arc<Notify>, InFlight) {
        let mut queues = self.queues();
        let queue = queues.entry(subscription.queue.clone()).or_insert_with(|| Queue {
            subscription: subscription.clone(),
            wake: Arc::new(Notify::new()),
            in_flight: InFlight::default(),
        });
        queue.subscription = subscription.clone();
        (queue.wake.clone(), queue.in_flight.clone())
    }

    fn wake(&self, queue: &str) {
        if let Some(queue) = self.queues().get(queue) {
            queue.wake.notify_one();
        }
    }

    /// The ids of up to `limit` messages of `queue` due now, oldest first.
    async fn due(&self, queue: &str, limit: usize) -> Result<Vec<String>, BusError> {
        sqlx::query_scalar(
            "SELECT message_id FROM bus_messages WHERE queue = $1 AND available_at <= $2 \
             ORDER BY available_at, message_id LIMIT $3",
        )
        .bind(queue)
        .bind(now_ms())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.db.pool())
        .await
        .map_err(store)
    }

    /// Message `message_id` of `queue` if it is still due. Read after the message was marked in
    /// flight: a list of due ids may be stale by then (handled, or put off, by the consumer that
    /// had it in flight a moment ago), and a handled message must not be delivered again.
    async fn still_due(&self, queue: &str, message_id: &str) -> Result<Option<Row>, BusError> {
        let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT envelope, attempt, first_failed_at FROM bus_messages \
             WHERE queue = $1 AND message_id = $2 AND available_at <= $3",
        )
        .bind(queue)
        .bind(message_id)
        .bind(now_ms())
        .fetch_optional(self.db.pool())
        .await
        .map_err(store)?;
        Ok(row.map(|(envelope, attempt, first_failed_at)| Row {
            message_id: message_id.to_owned(),
            envelope,
            attempt: u32::try_from(attempt.max(1)).unwrap_or(u32::MAX),
            first_failed_at,
        }))
    }

    /// Consumes `subscription` until `shutdown`: whenever woken or every [`POLL`], starts the
    /// due messages that are not in flight yet, as many as the concurrency allows.
    async fn consume(
        self,
        subscription: Subscription,
        handler: Arc<dyn MessageHandler>,
        (wake, in_flight): (Arc<Notify>, InFlight),
        shutdown: CancellationToken,
    ) {
        let permits = Arc::new(Semaphore::new(usize::from(subscription.concurrency.max(1))));
        let busy = |in_flight: &Mutex<HashSet<String>>| in_flight.lock().unwrap_or_else(PoisonError::into_inner).len();
        while !shutdown.is_cancelled() {
            let free = permits.available_permits();
            if free > 0 {
                match self.due(&subscription.queue, busy(&in_flight) + free).await {
                    Ok(rows) => {
                        for id in rows {
                            if !in_flight.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone()) {
                                continue;
                            }
                            let Ok(permit) = permits.clone().try_acquire_owned() else {
                                in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                                break;
                            };
                            let (bus, handler, subscription) = (self.clone(), handler.clone(), subscription.clone());
                            let (in_flight, wake) = (in_flight.clone(), wake.clone());
                            tokio::spawn(async move {
                                let _permit = permit;
                                match bus.still_due(&subscription.queue, &id).await {
                                    Ok(Some(row)) => bus.deliver(&subscription, &*handler, row).await,
                                    Ok(None) => {}
                                    Err(error) => {
                                        tracing::warn!(queue = %subscription.queue, %error, "cannot read a message; will retry")
                                    }
                                }
                                in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                                wake.notify_one();
                            });
                        }
                    }
                    Err(error) => {
                        tracing::warn!(queue = %subscription.queue, %error, "cannot read the queue; will retry")
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Hands one message to its handler and records the outcome; if recording fails, the
    /// message stays as it was and is delivered again.
    async fn deliver(&self, subscription: &Subscription, handler: &dyn MessageHandler, row: Row) {
        let queue = subscription.queue.as_str();
        let recorded = match serde_json::from_str::<Envelope>(&row.envelope) {
            Err(error) => {
                let reason = format!("undecodable message: {error}");
                tracing::error!(%queue, message_id = %row.message_id, %reason, "dead-lettering message");
                self.bury(queue, &row, "unknown", &reason).await
            }
            Ok(envelope) => {
                let outcome = super::handle_delivery(
                    subscription,
                    &self.policy,
                    handler,
                    &envelope,
                    row.attempt,
                    row.first_failed_at,
                )
                .await;
                match outcome {
                    Outcome::Done => match self.db.pool().acquire().await {
                        Ok(mut connection) => dequeue(&mut connection, queue, &row.message_id).await,
                        Err(error) => Err(store(error)),
                    },
                    Outcome::Retry { after, error } => {
                        let now = now_ms();
                        sqlx::query(
                            "UPDATE bus_messages SET attempt = attempt + 1, first_failed_at = COALESCE(first_failed_at, $1), \
                             available_at = $2, last_error = $3 WHERE queue = $4 AND message_id = $5",
                        )
                        .bind(now)
                        .bind(now.saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)))
                        .bind(error)
                        .bind(queue)
                        .bind(&row.message_id)
                        .execute(self.db.pool())
                        .await
                        .map(drop)
                        .map_err(store)
                    }
                    Outcome::Dead { reason } => self.bury(queue, &row, &envelope.routing_key, &reason).await,
                }
            }
        };
        if let Err(error) = recorded {
            tracing::warn!(%queue, message_id = %row.message_id, %error, "cannot record the outcome; the message will be delivered again");
        }
    }

    /// Moves a message from its queue to the queue's dead letters, in one transaction.
    async fn bury(&self, queue: &str, row: &Row, routing_key: &str, reason: &str) -> Result<(), BusError> {
        let mut tx = self.db.pool().begin().await.map_err(store)?;
        sqlx::query(
            "INSERT INTO bus_dead_letters (queue, message_id, routing_key, envelope, reason, attempts, dead_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (queue, message_id) DO UPDATE SET \
             routing_key = excluded.routing_key, envelope = excluded.envelope, reason = excluded.reason, \
             attempts = excluded.attempts, dead_at = excluded.dead_at",
        )
        .bind(queue)
        .bind(&row.message_id)
        .bind(routing_key)
        .bind(&row.envelope)
        .bind(reason)
        .bind(i64::from(row.attempt))
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(store)?;
        dequeue(&mut tx, queue, &row.message_id).await?;
        tx.commit().await.map_err(store)?;
        super::count_dead_letter(queue);
        Ok(())
    }
}

/// Puts a message in `queue`, due at once, unless it is there already.
async fn enqueue(
    tx: &mut AnyConnection,
    queue: &str,
    message_id: &str,
    envelope: &str,
    now: i64,
) -> Result<(), BusError> {
    sqlx::query(
        "INSERT INTO bus_messages (queue, message_id, envelope, published_at, available_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (queue, message_id) DO NOTHING",
    )
    .bind(queue)
    .bind(message_id)
    .bind(envelope)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(store)?;
    Ok(())
}

/// Takes a handled (or buried) message out of `queue`.
async fn dequeue(connection: &mut AnyConnection, queue: &str, message_id: &str) -> Result<(), BusError> {
    sqlx::query("DELETE FROM bus_messages WHERE queue = $1 AND message_id = $2")
        .bind(queue)
        .bind(message_id)
        .execute(&mut *connection)
        .await
        .map_err(store)?;
    Ok(())
}

fn store(error: sqlx::Error) -> BusError {
    BusError::Unavailable(format!("the in-process bus's database: {error}"))
}

#[async_trait]
impl MessageBus for InProcessBus {
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        let targets: Vec<String> = self
            .queues()
            .values()
            .filter(|queue| queue.subscription.matches(&envelope.routing_key))
            .map(|queue| queue.subscription.queue.clone())
            .collect();
        if targets.is_empty() {
            return Err(BusError::Unroutable(envelope.routing_key.clone()));
        }
        let text = serde_json::to_string(envelope)?;
        let now = now_ms();
        let mut tx = self.db.pool().begin().await.map_err(store)?;
        for queue in &targets {
            // The same message twice in a queue (an outbox relay that crashed before marking
            // it published) is one delivery.
            enqueue(&mut tx, queue, &envelope.id.to_string(), &text, now).await?;
        }
        tx.commit().await.map_err(store)?;
        for queue in &targets {
            self.wake(queue);
        }
        Ok(())
    }

    async fn declare_topology(&self, subscriptions: &[Subscription]) -> Result<(), BusError> {
        for subscription in subscriptions {
            self.declare(subscription);
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn MessageHandler>,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        let shared = self.declare(&subscription);
        super::record_dead_letters(&subscription.queue, self.dead_letters(&subscription.queue).await?.len());
        tokio::spawn(self.clone().consume(subscription, handler, shared, shutdown));
        Ok(())
    }

    async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadLetter>, BusError> {
        let rows: Vec<(String, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT message_id, routing_key, envelope, reason, attempts, dead_at FROM bus_dead_letters \
             WHERE queue = $1 ORDER BY dead_at, message_id",
        )
        .bind(queue)
        .fetch_all(self.db.pool())
        .await
        .map_err(store)?;
        Ok(rows
            .into_iter()
            .map(|(id, routing_key, body, reason, attempts, dead_at)| DeadLetter {
                queue: queue.to_owned(),
                id,
                routing_key,
                body,
                reason,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                dead_at: Some(dead_at),
            })
            .collect())
    }

    async fn replay_dead_letters(&self, queue: &str, which: &Replay) -> Result<usize, BusError> {
        let letters = self.dead_letters(queue).await?;
        let now = now_ms();
        let mut tx = self.db.pool().begin().await.map_err(store)?;
        let mut replayed = 0;
        for letter in letters.iter().filter(|letter| which.selects(&letter.id)) {
            enqueue(&mut tx, queue, &letter.id, &letter.body, now).await?;
            sqlx::query("DELETE FROM bus_dead_letters WHERE queue = $1 AND message_id = $2")
                .bind(queue)
                .bind(&letter.id)
                .execute(&mut *tx)
                .await
                .map_err(store)?;
            replayed += 1;
        }
        tx.commit().await.map_err(store)?;
        super::record_dead_letters(queue, letters.len() - replayed);
        self.wake(queue);
        Ok(replayed)
    }

    async fn is_healthy(&self) -> bool {
        self.db.ping().await.is_ok()
    }
}
