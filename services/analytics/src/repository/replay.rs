//! The statements of a rebuild: holding the event log still, clearing the read model, and
//! reading the log back a page at a time.

use eventhive_platform::storage::Backend;
use sqlx::{AnyConnection, Row};

use super::*;

/// Holds the event log still for the rest of a rebuild's transaction, on PostgreSQL: consumers
/// append to the log before they touch the read model, so no envelope is applied to the model
/// being rebuilt, and none is missed by the replay. (SQLite's single connection serializes
/// everything anyway.)
pub async fn lock_log(tx: &mut AnyConnection, backend: Backend) -> anyhow::Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("LOCK TABLE event_log IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    }
    Ok(())
}

/// Deletes the whole read model; the log, the inbox and the versions stay.
pub async fn clear_read_model(tx: &mut AnyConnection) -> anyhow::Result<()> {
    for table in crate::waiting_rooms::TABLES.into_iter().chain([
        "minute_figures",
        "ticket_type_figures",
        "event_figures",
        "checkins",
        "order_lines",
        "orders",
        "ticket_types",
        "events",
    ]) {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("clearing {table}"))?;
    }
    Ok(())
}

/// One envelope of the event log, as stored.
pub struct LoggedEnvelope {
    pub message_id: String,
    pub occurred_at: i64,
    /// The envelope as JSON.
    pub envelope: String,
}

/// Up to `limit` logged envelopes after `after` (occurred_at, message_id), in that order: keyset
/// paging, so a replay reads any log size in bounded memory.
pub async fn logged_page(
    tx: &mut AnyConnection,
    after: (i64, &str),
    limit: i64,
) -> anyhow::Result<Vec<LoggedEnvelope>> {
    let rows = sqlx::query(
        "SELECT message_id, occurred_at, envelope FROM event_log \
         WHERE occurred_at > $1 OR (occurred_at = $1 AND message_id > $2) \
         ORDER BY occurred_at, message_id LIMIT $3",
    )
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .context("reading the event log")?;
    rows.into_iter()
        .map(|row| {
            Ok(LoggedEnvelope {
                message_id: row.try_get("message_id")?,
                occurred_at: row.try_get("occurred_at")?,
                envelope: row.try_get("envelope")?,
            })
        })
        .collect()
}
