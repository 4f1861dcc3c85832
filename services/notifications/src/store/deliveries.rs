//! The delivery records: `deliveries` (one row per email: the send queue, the dead-letter store
//! and the dev inbox at once) and `delivery_attachments`. Every statement on them is here.

use anyhow::Context;
use base64::{Engine, engine::general_purpose::STANDARD};
use eventhive_platform::Database;
use sqlx::{AnyConnection, FromRow};

use crate::render::Email;

/// Whether `recipient` was sent (or is about to be sent) an email of `kind` about an event.
pub async fn was_told(conn: &mut AnyConnection, event_id: &str, kind: &str, recipient: &str) -> anyhow::Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM deliveries WHERE event_id = $1 AND kind = $2 AND recipient = $3 LIMIT 1")
            .bind(event_id)
            .bind(kind)
            .bind(recipient)
            .fetch_optional(&mut *conn)
            .await
            .context("looking for a delivery")?;
    Ok(found.is_some())
}

/// An email to queue, and what caused it.
pub struct NewDelivery<'a> {
    pub message_id: &'a str,
    pub recipient: &'a str,
    pub kind: &'a str,
    pub email: &'a Email,
    pub event_id: Option<&'a str>,
    pub order_id: Option<&'a str>,
}

/// Queues an email, due at once. `false`: this (message, recipient, kind) was queued before.
pub async fn queue(conn: &mut AnyConnection, delivery: NewDelivery<'_>, now: i64) -> anyhow::Result<bool> {
    let id = uuid::Uuid::now_v7().to_string();
    let inserted = sqlx::query(
        "INSERT INTO deliveries (id, message_id, recipient, kind, subject, body_text, body_html, event_id, order_id, \
         status, attempts, last_error, next_attempt_at, created_at, sent_at, sent_via) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, NULL, $10, $10, NULL, NULL) \
         ON CONFLICT (message_id, recipient, kind) DO NOTHING",
    )
    .bind(&id)
    .bind(delivery.message_id)
    .bind(delivery.recipient)
    .bind(delivery.kind)
    .bind(&delivery.email.subject)
    .bind(&delivery.email.text)
    .bind(&delivery.email.html)
    .bind(delivery.event_id)
    .bind(delivery.order_id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("queueing a delivery")?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    for (position, attachment) in delivery.email.attachments.iter().enumerate() {
        sqlx::query(
            "INSERT INTO delivery_attachments (delivery_id, position, filename, content_type, content_id, size, data) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(i64::try_from(position)?)
        .bind(&attachment.filename)
        .bind(&attachment.content_type)
        .bind(&attachment.content_id)
        .bind(i64::try_from(attachment.data.len())?)
        .bind(STANDARD.encode(&attachment.data))
        .execute(&mut *conn)
        .await
        .context("storing an attachment")?;
    }
    Ok(true)
}

/// A delivery as the sender and the operator tools see it.
#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub recipient: String,
    pub kind: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

pub const DELIVERY_COLUMNS: &str =
    "id, recipient, kind, subject, body_text, body_html, attempts, last_error, created_at";

/// An attachment's description, without its bytes.
#[derive(Debug, Clone, FromRow)]
pub struct AttachmentMeta {
    pub delivery_id: String,
    pub filename: String,
    pub content_type: String,
    pub content_id: String,
    pub size: i64,
}

/// `$first, $first+1, ...`: placeholders for an `IN (...)` list of `count` values.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// The attachments (without bytes) of the given deliveries, in order.
pub async fn attachment_metas(
    conn: &mut AnyConnection,
    delivery_ids: &[String],
) -> anyhow::Result<Vec<AttachmentMeta>> {
    if delivery_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT delivery_id, filename, content_type, content_id, size FROM delivery_attachments \
         WHERE delivery_id IN ({}) ORDER BY delivery_id, position",
        placeholders(1, delivery_ids.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in delivery_ids {
        query = query.bind(id);
    }
    query.fetch_all(&mut *conn).await.context("reading attachments")
}

/// An attachment with its bytes, for sending.
#[derive(Debug, Clone)]
pub struct StoredAttachment {
    pub filename: String,
    pub content_type: String,
    pub content_id: String,
    pub data: Vec<u8>,
}

pub async fn attachments(conn: &mut AnyConnection, delivery_id: &str) -> anyhow::Result<Vec<StoredAttachment>> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT filename, content_type, content_id, data FROM delivery_attachments WHERE delivery_id = $1 \
         ORDER BY position",
    )
    .bind(delivery_id)
    .fetch_all(&mut *conn)
    .await
    .context("reading attachments")?;
    rows.into_iter()
        .map(|(filename, content_type, content_id, data)| {
            let data = STANDARD.decode(data).context("a stored attachment is not base64")?;
            Ok(StoredAttachment { filename, content_type, content_id, data })
        })
        .collect()
}

/// Mail the dev inbox kept, newest first, optionally only to `to` (compared case-insensitively).
pub async fn dev_inbox(conn: &mut AnyConnection, to: &str, limit: i64) -> anyhow::Result<Vec<DeliveryRow>> {
    let filter = if to.is_empty() { "" } else { " AND LOWER(recipient) = LOWER($2)" };
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'sent' AND sent_via = 'dev_inbox'{filter} \
         ORDER BY created_at DESC, id DESC LIMIT $1"
    );
    let mut query = sqlx::query_as::<_, DeliveryRow>(&sql).bind(limit);
    if !to.is_empty() {
        query = query.bind(to);
    }
    query.fetch_all(&mut *conn).await.context("listing the dev inbox")
}

/// One message of the dev inbox.
pub async fn dev_inbox_message(conn: &mut AnyConnection, id: &str) -> anyhow::Result<Option<DeliveryRow>> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1 AND status = 'sent' AND sent_via = 'dev_inbox'"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .context("reading a dev inbox message")
}

/// Deliveries that failed every attempt, oldest first.
pub async fn dead_letters(db: &Database, limit: i64) -> anyhow::Result<Vec<DeliveryRow>> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'dead' ORDER BY created_at, id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .context("listing dead letters")
}

/// Queues dead deliveries again with a fresh set of attempts, due at `now`: all, or those named.
/// Returns how many.
pub async fn replay_dead(db: &Database, delivery_ids: &[String], now: i64) -> anyhow::Result<u64> {
    let only = if delivery_ids.is_empty() {
        String::new()
    } else {
        format!(" AND id IN ({})", placeholders(2, delivery_ids.len()))
    };
    let sql = format!(
        "UPDATE deliveries SET status = 'queued', attempts = 0, next_attempt_at = $1 WHERE status = 'dead'{only}"
    );
    let mut query = sqlx::query(&sql).bind(now);
    for id in delivery_ids {
        query = query.bind(id);
    }
    Ok(query.execute(db.pool()).await.context("replaying dead letters")?.rows_affected())
}

/// Marks every delivery due at `now` sent into the dev inbox, in one statement. Returns how many.
pub async fn keep_due_in_dev_inbox(db: &Database, now: i64) -> anyhow::Result<u64> {
    let kept = sqlx::query(
        "UPDATE deliveries SET status = 'sent', sent_at = $1, sent_via = 'dev_inbox', attempts = attempts + 1, \
         last_error = NULL WHERE status = 'queued' AND next_attempt_at <= $1",
    )
    .bind(now)
    .execute(db.pool())
    .await
    .context("keeping mail in the dev inbox")?;
    Ok(kept.rows_affected())
}

/// Leases up to `batch` deliveries due at `now` until `lease_until`; returns their ids. Replicas
/// skip each other's locked rows, so no delivery is leased twice at once.
pub async fn lease_due(db: &Database, now: i64, lease_until: i64, batch: i64) -> anyhow::Result<Vec<String>> {
    let sql = format!(
        "UPDATE deliveries SET next_attempt_at = $1 WHERE status = 'queued' AND next_attempt_at <= $2 AND id IN \
         (SELECT id FROM deliveries WHERE status = 'queued' AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at, id LIMIT $3{}) RETURNING id",
        db.skip_locked()
    );
    sqlx::query_scalar(&sql)
        .bind(lease_until)
        .bind(now)
        .bind(batch)
        .fetch_all(db.pool())
        .await
        .context("claiming due deliveries")
}

pub async fn delivery(conn: &mut AnyConnection, id: &str) -> anyhow::Result<Option<DeliveryRow>> {
    sqlx::query_as(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("reading a delivery")
}

/// Records an email the SMTP server accepted, at its `attempts`th attempt.
pub async fn mark_sent(db: &Database, id: &str, attempts: i64, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE deliveries SET status = 'sent', sent_at = $1, sent_via = 'smtp', attempts = $2, \
         last_error = NULL WHERE id = $3",
    )
    .bind(now)
    .bind(attempts)
    .bind(id)
    .execute(db.pool())
    .await
    .context("recording a sent email")?;
    Ok(())
}

/// Records a failed attempt: queued again for `next_attempt_at`, or dead.
pub async fn mark_failed(
    db: &Database,
    id: &str,
    dead: bool,
    attempts: i64,
    error: &str,
    next_attempt_at: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE deliveries SET status = $1, attempts = $2, last_error = $3, next_attempt_at = $4 WHERE id = $5",
    )
    .bind(if dead { "dead" } else { "queued" })
    .bind(attempts)
    .bind(error)
    .bind(next_attempt_at)
    .bind(id)
    .execute(db.pool())
    .await
    .context("recording a failed attempt")?;
    Ok(())
}
