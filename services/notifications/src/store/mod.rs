//! Notifications' tables: the read models kept from domain events (events, holders) here, and
//! the delivery records in [`deliveries`]. Every statement on them is in this module. Functions
//! take a connection so that the consumer can run several of them in the transaction that
//! claims a domain event.

mod deliveries;

pub use deliveries::*;

use anyhow::Context;
use eventhive_domain::{
    MessageId,
    events::{EventSnapshot, IssuedTicket, OrderSummary},
};
use eventhive_platform::{Database, storage::to_ms};
use sqlx::{AnyConnection, FromRow};

/// The reason ticketing gives when it refunds or cancels an order because its event was
/// cancelled (ticketing's sweeper): such holders hear of the cancellation, not of a refund.
pub const EVENT_CANCELLED_REASON: &str = "the event was cancelled";

/// What an email says about an event.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct EventInfo {
    pub id: String,
    pub title: String,
    pub venue_name: String,
    pub venue_city: String,
    pub venue_country: String,
    /// Unix ms.
    pub starts_at: i64,
    pub ends_at: i64,
    /// draft, on_sale or cancelled.
    pub status: String,
    /// Catalog's revision (Unix ms of its last change); only newer snapshots replace this one.
    pub revision: i64,
    /// The organizer's reason, once cancelled: holders who hear of it late are told it too.
    pub cancel_reason: Option<String>,
}

impl EventInfo {
    pub fn from_snapshot(snapshot: &EventSnapshot) -> Self {
        Self {
            id: snapshot.event_id.to_string(),
            title: snapshot.title.clone(),
            venue_name: snapshot.venue.name.clone(),
            venue_city: snapshot.venue.city.clone(),
            venue_country: snapshot.venue.country.clone(),
            starts_at: to_ms(snapshot.starts_at),
            ends_at: to_ms(snapshot.ends_at),
            status: snapshot.status.clone(),
            revision: snapshot.revision,
            cancel_reason: None,
        }
    }

    pub fn with_cancel_reason(mut self, reason: &str) -> Self {
        self.cancel_reason = Some(reason.to_owned());
        self
    }
}

const EVENT_COLUMNS: &str =
    "id, title, venue_name, venue_city, venue_country, starts_at, ends_at, status, revision, cancel_reason";

pub async fn event(conn: &mut AnyConnection, event_id: &str) -> anyhow::Result<Option<EventInfo>> {
    sqlx::query_as(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"))
        .bind(event_id)
        .fetch_optional(&mut *conn)
        .await
        .context("reading an event")
}

/// Stores `info` unless what we hold is as new or newer. Returns what it replaced: `Some(None)`
/// for a first sighting, `Some(Some(previous))` for an update, `None` when `info` was stale.
pub async fn apply_event(conn: &mut AnyConnection, info: &EventInfo) -> anyhow::Result<Option<Option<EventInfo>>> {
    let held = event(conn, &info.id).await?;
    match &held {
        None => {
            sqlx::query(&format!(
                "INSERT INTO events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (id) DO NOTHING"
            ))
            .bind(&info.id)
            .bind(&info.title)
            .bind(&info.venue_name)
            .bind(&info.venue_city)
            .bind(&info.venue_country)
            .bind(info.starts_at)
            .bind(info.ends_at)
            .bind(&info.status)
            .bind(info.revision)
            .bind(&info.cancel_reason)
            .execute(&mut *conn)
            .await
            .context("storing an event")?;
        }
        Some(previous) if previous.revision < info.revision => {
            sqlx::query(
                "UPDATE events SET title = $1, venue_name = $2, venue_city = $3, venue_country = $4, \
                 starts_at = $5, ends_at = $6, status = $7, revision = $8, \
                 cancel_reason = COALESCE($9, cancel_reason) WHERE id = $10 AND revision < $8",
            )
            .bind(&info.title)
            .bind(&info.venue_name)
            .bind(&info.venue_city)
            .bind(&info.venue_country)
            .bind(info.starts_at)
            .bind(info.ends_at)
            .bind(&info.status)
            .bind(info.revision)
            .bind(&info.cancel_reason)
            .bind(&info.id)
            .execute(&mut *conn)
            .await
            .context("updating an event")?;
        }
        Some(_) => {
            // A cancellation is final whatever the order of delivery: keep its reason.
            if let Some(reason) = &info.cancel_reason {
                sqlx::query("UPDATE events SET cancel_reason = $1 WHERE id = $2 AND cancel_reason IS NULL")
                    .bind(reason)
                    .bind(&info.id)
                    .execute(&mut *conn)
                    .await
                    .context("noting a cancellation")?;
            }
            return Ok(None);
        }
    }
    Ok(Some(held))
}

/// A buyer's email as last looked up, from any of their orders.
pub async fn cached_email(conn: &mut AnyConnection, buyer_id: &str) -> anyhow::Result<Option<String>> {
    let email: Option<Option<String>> = sqlx::query_scalar(
        "SELECT buyer_email FROM holders WHERE buyer_id = $1 AND buyer_email IS NOT NULL ORDER BY updated_at DESC LIMIT 1",
    )
    .bind(buyer_id)
    .fetch_optional(&mut *conn)
    .await
    .context("reading a cached email")?;
    Ok(email.flatten())
}

/// What the consumer needs of an order's holder: whom to tell.
#[derive(Debug, Clone, FromRow)]
pub struct Holder {
    pub buyer_email: Option<String>,
}

pub async fn holder(conn: &mut AnyConnection, order_id: &str) -> anyhow::Result<Option<Holder>> {
    sqlx::query_as("SELECT buyer_email FROM holders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await
        .context("reading a holder")
}

/// Records (or completes) the holder of an order's tickets. A holder already made void stays void.
pub async fn upsert_holder(
    conn: &mut AnyConnection,
    order_id: &str,
    event_id: &str,
    buyer_id: &str,
    buyer_email: Option<&str>,
    tickets: &[IssuedTicket],
    now: i64,
) -> anyhow::Result<()> {
    let tickets = serde_json::to_string(tickets).context("encoding tickets")?;
    sqlx::query(
        "INSERT INTO holders (order_id, event_id, buyer_id, buyer_email, tickets, status, void_reason, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'valid', NULL, $6, $6) \
         ON CONFLICT (order_id) DO UPDATE SET buyer_email = COALESCE(excluded.buyer_email, holders.buyer_email), \
         tickets = excluded.tickets, updated_at = excluded.updated_at",
    )
    .bind(order_id)
    .bind(event_id)
    .bind(buyer_id)
    .bind(buyer_email)
    .bind(tickets)
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("storing a holder")?;
    Ok(())
}

/// Marks an order's tickets void. Returns the holder as it was, if there is one. When there is
/// none yet, the void is kept all the same: ticketing's events arrive in no set order, and a
/// refund applied before its `tickets_issued` must not let that one make the buyer a holder
/// (the upsert above leaves a void holder void).
pub async fn void_holder(
    conn: &mut AnyConnection,
    order: &OrderSummary,
    reason: &str,
    now: i64,
) -> anyhow::Result<Option<Holder>> {
    let order_id = order.order_id.to_string();
    let before = holder(conn, &order_id).await?;
    sqlx::query(
        "INSERT INTO holders (order_id, event_id, buyer_id, buyer_email, tickets, status, void_reason, created_at, updated_at) \
         VALUES ($1, $2, $3, NULL, '[]', 'void', $4, $5, $5) \
         ON CONFLICT (order_id) DO UPDATE SET status = 'void', void_reason = $4, updated_at = $5 \
         WHERE holders.status = 'valid'",
    )
    .bind(&order_id)
    .bind(order.event_id.to_string())
    .bind(order.buyer_id.to_string())
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("voiding a holder")?;
    Ok(before)
}

/// Emails of the holders of valid tickets of an event, each once.
pub async fn holders_to_tell_of_change(conn: &mut AnyConnection, event_id: &str) -> anyhow::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT buyer_email FROM holders WHERE event_id = $1 AND status = 'valid' \
         AND buyer_email IS NOT NULL ORDER BY buyer_email",
    )
    .bind(event_id)
    .fetch_all(&mut *conn)
    .await
    .context("listing holders")
}

/// Emails of the holders to tell that an event is cancelled, each once: holders of valid tickets,
/// and those whose refund for the cancellation was heard of first, unless already told.
pub async fn holders_to_tell_of_cancellation(conn: &mut AnyConnection, event_id: &str) -> anyhow::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT h.buyer_email FROM holders h WHERE h.event_id = $1 AND h.buyer_email IS NOT NULL \
         AND (h.status = 'valid' OR h.void_reason = $2) \
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = h.event_id \
         AND d.kind = 'event_cancelled' AND d.recipient = h.buyer_email) \
         ORDER BY h.buyer_email",
    )
    .bind(event_id)
    .bind(EVENT_CANCELLED_REASON)
    .fetch_all(&mut *conn)
    .await
    .context("listing holders")
}

/// Whether `consumer` applied the message before: a cheap check that spares a redelivery the
/// lookups in other services. The claim in the transaction remains the real guard.
pub async fn applied_before(db: &Database, consumer: &str, message_id: MessageId) -> anyhow::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM inbox_messages WHERE consumer = $1 AND message_id = $2")
        .bind(consumer)
        .bind(message_id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("reading the inbox")?;
    Ok(found.is_some())
}
