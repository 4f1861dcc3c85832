//! Every SQL statement on `events` and `ticket_types`: ticketing's copy of what catalog sells,
//! written only by [`crate::catalog_sync`] and read by the rest.

use anyhow::Context;
use eventhive_domain::{
    EventId, OrganizationId, TicketTypeId,
    events::{EventSnapshot, TicketTypeSnapshot},
};
use eventhive_platform::storage::to_ms;
use sqlx::AnyConnection;

/// An event as ticketing last heard of it, with the key pair that signs its tickets.
#[derive(Debug, Clone)]
pub(crate) struct EventRecord {
    pub id: EventId,
    pub organization_id: OrganizationId,
    pub status: String,
    pub starts_at: i64,
    pub currency: String,
    pub max_tickets_per_order: i64,
    pub max_tickets_per_buyer: i64,
    /// Catalog closed the event's sales (`CloseSales`), whatever `status` says yet.
    pub sales_closed: bool,
    /// PKCS#8, base64url.
    pub signing_key_pkcs8: String,
    /// Raw Ed25519 public key, base64url.
    pub public_key: String,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    organization_id: String,
    status: String,
    starts_at: i64,
    currency: String,
    max_tickets_per_order: i64,
    max_tickets_per_buyer: i64,
    sales_closed_at: Option<i64>,
    signing_key_pkcs8: String,
    public_key: String,
}

/// A ticket type on sale: what an order line needs of it.
#[derive(Debug, Clone)]
pub(crate) struct TicketTypeRecord {
    pub name: String,
    pub price_minor: i64,
    /// How many inventory rows its capacity is spread over.
    pub shards: i64,
}

pub(crate) async fn event(conn: &mut AnyConnection, id: EventId) -> anyhow::Result<Option<EventRecord>> {
    load_event(conn, id, "").await
}

/// The event, for a decision to sell it (a hold, a payment's start): on PostgreSQL the row is
/// share-locked until the transaction ends, so a concurrent [`close_sales`] waits for the sale
/// in progress, and a sale that starts after it sees the sales closed. SQLite's single writer
/// serializes them anyway.
pub(crate) async fn event_for_sale(conn: &mut AnyConnection, id: EventId) -> anyhow::Result<Option<EventRecord>> {
    let lock = key_share(conn);
    load_event(conn, id, lock).await
}

async fn load_event(conn: &mut AnyConnection, id: EventId, lock: &str) -> anyhow::Result<Option<EventRecord>> {
    let row: Option<EventRow> = sqlx::query_as(&format!(
        "SELECT id, organization_id, status, starts_at, currency, max_tickets_per_order, max_tickets_per_buyer, \
         sales_closed_at, signing_key_pkcs8, public_key FROM events WHERE id = $1{lock}"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(EventRecord {
        id: EventId::parse(&row.id).context("stored event id")?,
        organization_id: OrganizationId::parse(&row.organization_id).context("stored organization id")?,
        status: row.status,
        starts_at: row.starts_at,
        currency: row.currency,
        max_tickets_per_order: row.max_tickets_per_order,
        max_tickets_per_buyer: row.max_tickets_per_buyer,
        sales_closed: row.sales_closed_at.is_some(),
        signing_key_pkcs8: row.signing_key_pkcs8,
        public_key: row.public_key,
    }))
}

/// `FOR KEY SHARE` on PostgreSQL: it conflicts with the `FOR UPDATE` of [`close_sales`] but not
/// with the plain updates of catalog sync, nor with other sales of the same event.
pub(crate) fn key_share(conn: &AnyConnection) -> &'static str {
    if conn.backend_name() == "PostgreSQL" { " FOR KEY SHARE" } else { "" }
}

/// Closes the event's sales, unless they are closed already; returns when they closed (the
/// first time). `None`: ticketing has no such event. Takes the event's row lock first, so it
/// waits for the sales in progress (see [`event_for_sale`]).
pub(crate) async fn close_sales(
    tx: &mut AnyConnection,
    id: EventId,
    reason: &str,
    revision: i64,
    now: i64,
) -> anyhow::Result<Option<i64>> {
    let lock = if tx.backend_name() == "PostgreSQL" { " FOR UPDATE" } else { "" };
    let closed: Option<Option<i64>> =
        sqlx::query_scalar(&format!("SELECT sales_closed_at FROM events WHERE id = $1{lock}"))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .context("locking an event to close its sales")?;
    match closed {
        None => Ok(None),
        Some(Some(at)) => Ok(Some(at)),
        Some(None) => {
            sqlx::query(
                "UPDATE events SET sales_closed_at = $1, sales_closed_reason = $2, sales_closed_revision = $3 \
                 WHERE id = $4",
            )
            .bind(now)
            .bind(reason)
            .bind(revision)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .context("closing an event's sales")?;
            Ok(Some(now))
        }
    }
}

/// Whether the event is cancelled, or its sales are closed because it is being cancelled.
pub(crate) async fn is_cancelled(conn: &mut AnyConnection, id: EventId) -> anyhow::Result<bool> {
    let cancelled: Option<String> = sqlx::query_scalar(
        "SELECT status FROM events WHERE id = $1 AND (status = 'cancelled' OR sales_closed_at IS NOT NULL)",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(cancelled.is_some())
}

/// The ticket type, if it is one of the event's.
pub(crate) async fn ticket_type(
    conn: &mut AnyConnection,
    id: TicketTypeId,
    event_id: EventId,
) -> anyhow::Result<Option<TicketTypeRecord>> {
    let row: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT name, price_minor, shards FROM ticket_types WHERE id = $1 AND event_id = $2")
            .bind(id.to_string())
            .bind(event_id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(name, price_minor, shards)| TicketTypeRecord { name, price_minor, shards }))
}

/// Catalog's revision of the snapshot of the event applied last; `None`: not heard of.
pub(crate) async fn revision(conn: &mut AnyConnection, id: EventId) -> anyhow::Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT catalog_revision FROM events WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?)
}

/// Stores an event heard of for the first time, with its new key pair.
pub(crate) async fn insert_event(
    tx: &mut AnyConnection,
    snapshot: &EventSnapshot,
    signing_key_pkcs8: String,
    public_key: String,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO events (id, organization_id, title, status, starts_at, currency, max_tickets_per_order, \
         max_tickets_per_buyer, catalog_revision, signing_key_pkcs8, public_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
    )
    .bind(snapshot.event_id.to_string())
    .bind(snapshot.organization_id.to_string())
    .bind(&snapshot.title)
    .bind(&snapshot.status)
    .bind(to_ms(snapshot.starts_at))
    .bind(&snapshot.currency)
    .bind(snapshot.max_tickets_per_order)
    .bind(snapshot.max_tickets_per_buyer)
    .bind(snapshot.revision)
    .bind(signing_key_pkcs8)
    .bind(public_key)
    .execute(&mut *tx)
    .await
    .context("storing an event")?;
    Ok(())
}

/// Overwrites the event's fields with a newer snapshot's (the key pair stays).
pub(crate) async fn update_event(tx: &mut AnyConnection, snapshot: &EventSnapshot) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE events SET organization_id = $1, title = $2, status = $3, starts_at = $4, currency = $5, \
         max_tickets_per_order = $6, max_tickets_per_buyer = $7, catalog_revision = $8 WHERE id = $9",
    )
    .bind(snapshot.organization_id.to_string())
    .bind(&snapshot.title)
    .bind(&snapshot.status)
    .bind(to_ms(snapshot.starts_at))
    .bind(&snapshot.currency)
    .bind(snapshot.max_tickets_per_order)
    .bind(snapshot.max_tickets_per_buyer)
    .bind(snapshot.revision)
    .bind(snapshot.event_id.to_string())
    .execute(&mut *tx)
    .await
    .context("updating an event")?;
    Ok(())
}

/// Stores a ticket type if it is new (with no shards yet); `false`: it was known.
pub(crate) async fn insert_ticket_type(
    tx: &mut AnyConnection,
    event_id: EventId,
    ticket_type: &TicketTypeSnapshot,
) -> anyhow::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO ticket_types (id, event_id, name, price_minor, capacity, shards) \
         VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (id) DO NOTHING",
    )
    .bind(ticket_type.id.to_string())
    .bind(event_id.to_string())
    .bind(&ticket_type.name)
    .bind(ticket_type.price_minor)
    .bind(ticket_type.capacity)
    .execute(&mut *tx)
    .await
    .context("storing a ticket type")?;
    Ok(inserted.rows_affected() == 1)
}

pub(crate) async fn set_shards(tx: &mut AnyConnection, id: TicketTypeId, shards: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE ticket_types SET shards = $1 WHERE id = $2")
        .bind(shards)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Every event's stored private signing key: (event id, stored key).
pub(crate) async fn signing_keys(conn: &mut AnyConnection) -> anyhow::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT id, signing_key_pkcs8 FROM events").fetch_all(&mut *conn).await.context("reading event keys")
}

/// Stores an event's private signing key sealed anew (the key itself does not change: the codes
/// on issued tickets keep verifying).
pub(crate) async fn reseal_signing_key(conn: &mut AnyConnection, event_id: &str, sealed: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE events SET signing_key_pkcs8 = $1 WHERE id = $2")
        .bind(sealed)
        .bind(event_id)
        .execute(&mut *conn)
        .await
        .context("sealing an event key")?;
    Ok(())
}
