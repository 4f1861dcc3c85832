//! The transactional outbox. A service writes a domain event with [`enqueue`] inside the
//! transaction that changes its state, so the two commit or fail together; the [`OutboxRelay`]
//! then publishes unpublished messages in the order they were written and marks them published
//! only after the bus confirmed them. A crash in between publishes a message twice, never zero
//! times: consumers dedupe with the inbox.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use eventhive_domain::events::{DomainEvent, Envelope};
use sqlx::AnyConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::MessageBus,
    storage::{Database, now_ms},
};

/// How long published outbox messages are kept, for operators tracing what went out.
pub const OUTBOX_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// How long a consumer remembers a message id it applied.
pub const INBOX_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Writes `event` to the outbox on `tx`; it is published after the transaction commits.
pub async fn enqueue<E: DomainEvent>(
    tx: &mut AnyConnection,
    source: &str,
    event: &E,
    request_id: Option<String>,
) -> anyhow::Result<Envelope> {
    let mut envelope = Envelope::new(source, event, request_id).context("encoding a domain event")?;
    envelope.traceparent = crate::telemetry::current_traceparent();
    sqlx::query("INSERT INTO outbox_messages (id, routing_key, envelope, created_at) VALUES ($1, $2, $3, $4)")
        .bind(envelope.id.to_string())
        .bind(&envelope.routing_key)
        .bind(serde_json::to_string(&envelope).context("encoding an envelope")?)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .context("writing to the outbox")?;
    Ok(envelope)
}

/// Publishes what the outbox holds. Cheap to clone; `wake` after a commit publishes at once
/// instead of at the next poll.
#[derive(Clone)]
pub struct OutboxRelay {
    db: Database,
    bus: Arc<dyn MessageBus>,
    wake: Arc<Notify>,
    batch_size: i64,
}

impl OutboxRelay {
    pub fn new(db: Database, bus: Arc<dyn MessageBus>) -> Self {
        Self { db, bus, wake: Arc::new(Notify::new()), batch_size: 100 }
    }

    /// Asks the relay to look now (call after committing an outbox write).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Publishes one batch; returns how many messages went out. Tests drive it directly.
    pub async fn step(&self) -> anyhow::Result<usize> {
        let mut tx = self.db.pool().begin().await.context("outbox: begin")?;
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT id, envelope FROM outbox_messages WHERE published_at IS NULL ORDER BY id LIMIT $1{}",
            self.db.skip_locked()
        ))
        .bind(self.batch_size)
        .fetch_all(&mut *tx)
        .await
        .context("outbox: reading unpublished messages")?;
        // Marked published together, in one statement at the end of the batch.
        let mut published: Vec<String> = Vec::new();
        for (id, text) in rows {
            let envelope: Envelope = match serde_json::from_str(&text) {
                Ok(envelope) => envelope,
                Err(error) => {
                    // Cannot happen for rows we wrote; park it rather than block the queue.
                    tracing::error!(%id, %error, "unreadable outbox row; marking it failed");
                    sqlx::query("UPDATE outbox_messages SET published_at = $1, last_error = $2 WHERE id = $3")
                        .bind(now_ms())
                        .bind(format!("unreadable: {error}"))
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    continue;
                }
            };
            if let Err(error) = self.bus.publish(&envelope).await {
                // Keep order: stop here and try this one again next time.
                mark_published(&mut tx, &published).await?;
                sqlx::query("UPDATE outbox_messages SET attempts = attempts + 1, last_error = $1 WHERE id = $2")
                    .bind(error.to_string())
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Err(anyhow::Error::new(error).context("outbox: publishing"));
            }
            published.push(id);
        }
        mark_published(&mut tx, &published).await?;
        tx.commit().await.context("outbox: commit")?;
        metrics::counter!("eventhive_outbox_published_total").increment(published.len() as u64);
        Ok(published.len())
    }

    /// Number of messages not yet published, for readiness and tests.
    pub async fn backlog(&self) -> anyhow::Result<i64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox_messages WHERE published_at IS NULL")
            .fetch_one(self.db.pool())
            .await?;
        Ok(count)
    }

    /// Sets the `eventhive_outbox_backlog` gauge of this relay's database. A backlog that grows
    /// means the bus is down or slower than the commits.
    async fn record_backlog(&self) {
        match self.backlog().await {
            Ok(count) => {
                metrics::gauge!("eventhive_outbox_backlog", "database" => self.database_label()).set(count as f64)
            }
            Err(error) => tracing::debug!(error = format!("{error:#}"), "cannot count the outbox backlog"),
        }
    }

    /// The database's name (`eventhive_ticketing`), also for SQLite, whose location is a path.
    fn database_label(&self) -> String {
        let location = std::path::Path::new(self.db.location());
        location.file_stem().map_or_else(|| self.db.location().to_owned(), |stem| stem.to_string_lossy().into_owned())
    }

    /// See [`prune`].
    pub async fn prune(&self, now: i64) -> anyhow::Result<(u64, u64)> {
        prune(&self.db, now).await
    }

    /// Publishes until `shutdown`: at once when woken, else every `poll`; prunes hourly.
    pub async fn run(self, poll: Duration, shutdown: CancellationToken) {
        let mut failures = 0u32;
        let mut next_prune = tokio::time::Instant::now();
        let mut last_gauge = None;
        loop {
            if tokio::time::Instant::now() >= next_prune {
                next_prune += PRUNE_EVERY;
                prune_logged(&self.db).await;
            }
            match self.step().await {
                Ok(n) if n as i64 == self.batch_size => {
                    failures = 0;
                    continue;
                }
                Ok(_) => failures = 0,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(error = format!("{error:#}"), failures, "outbox relay step failed");
                }
            }
            // At most once a second: a flash sale wakes the relay for every commit.
            if last_gauge.is_none_or(|at: tokio::time::Instant| at.elapsed() >= Duration::from_secs(1)) {
                last_gauge = Some(tokio::time::Instant::now());
                self.record_backlog().await;
            }
            let wait = if failures == 0 { poll } else { crate::bus::retry_backoff(failures).max(poll) };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        // One last pass so that what was committed before shutdown goes out now.
        if let Err(error) = self.step().await {
            tracing::warn!(error = format!("{error:#}"), "final outbox flush failed; it will be published on restart");
        }
    }
}

/// Marks the messages `ids` (at most a batch) published, in one statement: a statement per
/// message cost a round trip each (issue 18).
async fn mark_published(tx: &mut AnyConnection, ids: &[String]) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
    let sql = format!(
        "UPDATE outbox_messages SET published_at = $1, attempts = attempts + 1 WHERE id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(now_ms());
    for id in ids {
        query = query.bind(id);
    }
    query.execute(&mut *tx).await.context("outbox: marking published")?;
    Ok(())
}

/// Forgets what no longer needs remembering, as of `now` (Unix ms): outbox messages published
/// more than [`OUTBOX_RETENTION_MS`] ago, and inbox claims older than [`INBOX_RETENTION_MS`] (a
/// redelivery that late is not a thing brokers do). Returns the rows removed from each.
pub async fn prune(db: &Database, now: i64) -> anyhow::Result<(u64, u64)> {
    let outbox = sqlx::query("DELETE FROM outbox_messages WHERE published_at IS NOT NULL AND published_at < $1")
        .bind(now - OUTBOX_RETENTION_MS)
        .execute(db.pool())
        .await
        .context("pruning the outbox")?;
    let inbox = sqlx::query("DELETE FROM inbox_messages WHERE received_at < $1")
        .bind(now - INBOX_RETENTION_MS)
        .execute(db.pool())
        .await
        .context("pruning the inbox")?;
    Ok((outbox.rows_affected(), inbox.rows_affected()))
}

async fn prune_logged(db: &Database) {
    match prune(db, now_ms()).await {
        Ok((0, 0)) => {}
        Ok((outbox, inbox)) => tracing::info!(outbox, inbox, "pruned old outbox and inbox rows"),
        Err(error) => tracing::warn!(error = format!("{error:#}"), "pruning failed; will retry"),
    }
}

/// Prunes hourly until `shutdown`, for services that consume but run no relay.
pub async fn prune_periodically(db: Database, shutdown: CancellationToken) {
    loop {
        prune_logged(&db).await;
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
