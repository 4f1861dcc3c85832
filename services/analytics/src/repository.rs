//! Analytics' storage: every statement on its tables — the event log, the read model (`events`,
//! `ticket_types`, `orders`, `order_lines`, `checkins`) and `event_versions`. Writes are
//! idempotent upserts that converge whatever order the facts arrive in; reads of one event's
//! figures share one snapshot.

use anyhow::Context;
use eventhive_domain::{
    EventId,
    events::{Envelope, EventSnapshot, OrderSummary, TicketCheckedIn},
};
use eventhive_platform::{
    Database,
    storage::{Backend, to_ms},
};
use sqlx::{AnyConnection, Row};

use crate::{facts::OrderStatus, figures::MinuteFigures};

/// Keeps the envelope for rebuilds.
pub async fn log(tx: &mut AnyConnection, envelope: &Envelope, event_id: EventId) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO event_log (message_id, routing_key, event_id, occurred_at, envelope) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(envelope.id.to_string())
    .bind(&envelope.routing_key)
    .bind(event_id.to_string())
    .bind(to_ms(envelope.occurred_at))
    .bind(serde_json::to_string(envelope)?)
    .execute(&mut *tx)
    .await
    .context("logging an envelope")?;
    Ok(())
}

/// The newest snapshot wins, with its ticket types; an older one arriving late changes nothing.
pub async fn apply_snapshot(tx: &mut AnyConnection, snapshot: &EventSnapshot) -> anyhow::Result<()> {
    let event_id = snapshot.event_id.to_string();
    let inserted = sqlx::query(
        "INSERT INTO events (event_id, organization_id, title, status, currency, revision) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event_id)
    .bind(snapshot.organization_id.to_string())
    .bind(&snapshot.title)
    .bind(&snapshot.status)
    .bind(&snapshot.currency)
    .bind(snapshot.revision)
    .execute(&mut *tx)
    .await
    .context("storing an event")?
    .rows_affected()
        == 1;
    let newer = inserted
        || sqlx::query(
            "UPDATE events SET organization_id = $1, title = $2, status = $3, currency = $4, revision = $5 \
             WHERE event_id = $6 AND revision < $5",
        )
        .bind(snapshot.organization_id.to_string())
        .bind(&snapshot.title)
        .bind(&snapshot.status)
        .bind(&snapshot.currency)
        .bind(snapshot.revision)
        .bind(&event_id)
        .execute(&mut *tx)
        .await
        .context("updating an event")?
        .rows_affected()
            == 1;
    if !newer {
        return Ok(());
    }
    // Capacities are those of the newest snapshot, and a ticket type it no longer lists is gone.
    sqlx::query("DELETE FROM ticket_types WHERE event_id = $1").bind(&event_id).execute(&mut *tx).await?;
    for (ordinal, ticket_type) in (0_i64..).zip(&snapshot.ticket_types) {
        sqlx::query(
            "INSERT INTO ticket_types (event_id, ticket_type_id, ordinal, name, price_minor, capacity) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&event_id)
        .bind(ticket_type.id.to_string())
        .bind(ordinal)
        .bind(&ticket_type.name)
        .bind(ticket_type.price_minor)
        .bind(ticket_type.capacity)
        .execute(&mut *tx)
        .await
        .context("storing a ticket type")?;
    }
    Ok(())
}

/// The first event heard of an order inserts it with its lines (whatever its status); later
/// ones only move its status up the ranks.
pub async fn apply_order(
    tx: &mut AnyConnection,
    order: &OrderSummary,
    status: OrderStatus,
    paid_at: Option<i64>,
    occurred_at: i64,
) -> anyhow::Result<()> {
    let order_id = order.order_id.to_string();
    let inserted = sqlx::query(
        "INSERT INTO orders (order_id, event_id, status, status_rank, quantity, total_minor, currency, paid_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(&order_id)
    .bind(order.event_id.to_string())
    .bind(status.as_str())
    .bind(status.rank())
    .bind(order.quantity())
    .bind(order.total_minor)
    .bind(&order.currency)
    .bind(paid_at)
    .bind(occurred_at)
    .execute(&mut *tx)
    .await
    .context("storing an order")?
    .rows_affected()
        == 1;
    if inserted {
        for line in &order.lines {
            sqlx::query(
                "INSERT INTO order_lines (order_id, ticket_type_id, quantity, unit_price_minor) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (order_id, ticket_type_id) DO NOTHING",
            )
            .bind(&order_id)
            .bind(line.ticket_type_id.to_string())
            .bind(line.quantity)
            .bind(line.unit_price_minor)
            .execute(&mut *tx)
            .await
            .context("storing an order line")?;
        }
        return Ok(());
    }
    // Equal ranks never meet in practice (an order is paid, expired or cancelled, not two of
    // them); should they, the status text decides, so that the order of arrival never does.
    sqlx::query(
        "UPDATE orders SET status = $1, status_rank = $2, updated_at = $3 \
         WHERE order_id = $4 AND (status_rank < $2 OR (status_rank = $2 AND status < $1))",
    )
    .bind(status.as_str())
    .bind(status.rank())
    .bind(occurred_at)
    .bind(&order_id)
    .execute(&mut *tx)
    .await
    .context("moving an order on")?;
    if let Some(paid_at) = paid_at {
        // The payment time is a fact of its own: it stays when a refund came first.
        sqlx::query("UPDATE orders SET paid_at = $1 WHERE order_id = $2 AND (paid_at IS NULL OR paid_at > $1)")
            .bind(paid_at)
            .bind(&order_id)
            .execute(&mut *tx)
            .await
            .context("recording a payment time")?;
    }
    Ok(())
}

pub async fn apply_check_in(tx: &mut AnyConnection, checked_in: &TicketCheckedIn) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO checkins (ticket_id, event_id, ticket_type_id, checked_in_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (ticket_id) DO NOTHING",
    )
    .bind(checked_in.ticket_id.to_string())
    .bind(checked_in.event_id.to_string())
    .bind(checked_in.ticket_type_id.to_string())
    .bind(to_ms(checked_in.checked_in_at))
    .execute(&mut *tx)
    .await
    .context("storing a check-in")?;
    Ok(())
}

/// Tells watchers on every replica that the event's figures may have changed. Last in each
/// transaction, so that concurrent consumers lock rows in one order.
pub async fn bump_version(tx: &mut AnyConnection, event_id: EventId) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO event_versions (event_id, version) VALUES ($1, 1) \
         ON CONFLICT (event_id) DO UPDATE SET version = event_versions.version + 1",
    )
    .bind(event_id.to_string())
    .execute(&mut *tx)
    .await
    .context("bumping an event's version")?;
    Ok(())
}

/// The version of an event's figures; `None` before anything about it was applied.
pub async fn version(db: &Database, event_id: EventId) -> anyhow::Result<Option<i64>> {
    let version = sqlx::query_scalar("SELECT version FROM event_versions WHERE event_id = $1")
        .bind(event_id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("reading an event's version")?;
    Ok(version)
}

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
    for table in ["checkins", "order_lines", "orders", "ticket_types", "events"] {
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

/// The organization that runs `event_id`; `None` if analytics has not heard of the event.
pub async fn organization_of(db: &Database, event_id: EventId) -> anyhow::Result<Option<String>> {
    let organization = sqlx::query_scalar("SELECT organization_id FROM events WHERE event_id = $1")
        .bind(event_id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("reading an event's organization")?;
    Ok(organization)
}

/// A ticket type of the newest snapshot of an event, in the snapshot's order.
#[derive(sqlx::FromRow)]
pub struct TicketTypeRow {
    pub ticket_type_id: String,
    pub name: String,
    pub capacity: i64,
}

/// The tickets and amount of one ticket type over the placed or the paid orders of an event.
#[derive(sqlx::FromRow)]
pub struct LineSum {
    pub ticket_type_id: String,
    /// `placed` or `paid`.
    pub status: String,
    pub quantity: i64,
    pub amount: i64,
}

/// The facts one event's figures are summed from, read in one snapshot.
pub struct FigureFacts {
    pub organization_id: String,
    pub currency: String,
    pub ticket_types: Vec<TicketTypeRow>,
    pub line_sums: Vec<LineSum>,
    /// Check-ins per ticket type id.
    pub checkins: Vec<(String, i64)>,
    pub orders_paid: i64,
    pub revenue_minor: i64,
    pub sales_per_minute: Vec<MinuteFigures>,
    /// When the newest logged event of the event occurred (Unix ms).
    pub as_of_ms: Option<i64>,
}

/// The facts of `event_id`'s figures; `None` if analytics has not heard of the event.
#[tracing::instrument(skip(db))]
pub async fn figure_facts(db: &Database, event_id: EventId) -> anyhow::Result<Option<FigureFacts>> {
    let id = event_id.to_string();
    let mut tx = db.pool().begin().await?;
    if db.backend() == Backend::Postgres {
        // One snapshot for all the queries below, so that sold, held and capacity agree even
        // while consumers write. (SQLite's transaction is one snapshot already.)
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    }
    let Some(event) = sqlx::query("SELECT organization_id, currency FROM events WHERE event_id = $1")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await
        .context("reading an event")?
    else {
        return Ok(None);
    };

    let ticket_types: Vec<TicketTypeRow> =
        sqlx::query_as("SELECT ticket_type_id, name, capacity FROM ticket_types WHERE event_id = $1 ORDER BY ordinal")
            .bind(&id)
            .fetch_all(&mut *tx)
            .await
            .context("reading ticket types")?;

    let line_sums: Vec<LineSum> = sqlx::query_as(
        "SELECT l.ticket_type_id, o.status, CAST(SUM(l.quantity) AS BIGINT) AS quantity, \
         CAST(SUM(l.quantity * l.unit_price_minor) AS BIGINT) AS amount \
         FROM order_lines l JOIN orders o ON o.order_id = l.order_id \
         WHERE o.event_id = $1 AND o.status IN ($2, $3) GROUP BY l.ticket_type_id, o.status",
    )
    .bind(&id)
    .bind(OrderStatus::Placed.as_str())
    .bind(OrderStatus::Paid.as_str())
    .fetch_all(&mut *tx)
    .await
    .context("summing order lines")?;

    let checkins: Vec<(String, i64)> = sqlx::query_as(
        "SELECT ticket_type_id, COUNT(*) AS checkins FROM checkins WHERE event_id = $1 GROUP BY ticket_type_id",
    )
    .bind(&id)
    .fetch_all(&mut *tx)
    .await
    .context("counting check-ins")?;

    let paid = sqlx::query(
        "SELECT COUNT(*) AS orders, CAST(COALESCE(SUM(total_minor), 0) AS BIGINT) AS revenue \
         FROM orders WHERE event_id = $1 AND status = $2",
    )
    .bind(&id)
    .bind(OrderStatus::Paid.as_str())
    .fetch_one(&mut *tx)
    .await
    .context("summing paid orders")?;

    let sales_per_minute = sqlx::query(
        // Integer division truncates a payment time (Unix ms) to the start of its minute.
        "SELECT (paid_at / 60000) * 60000 AS minute, CAST(SUM(quantity) AS BIGINT) AS tickets, \
         CAST(SUM(total_minor) AS BIGINT) AS revenue FROM orders \
         WHERE event_id = $1 AND status = $2 AND paid_at IS NOT NULL \
         GROUP BY (paid_at / 60000) * 60000 ORDER BY minute",
    )
    .bind(&id)
    .bind(OrderStatus::Paid.as_str())
    .fetch_all(&mut *tx)
    .await
    .context("summing sales per minute")?
    .into_iter()
    .map(|row| {
        Ok(MinuteFigures {
            minute_ms: row.try_get("minute")?,
            tickets: row.try_get("tickets")?,
            revenue_minor: row.try_get("revenue")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;

    let as_of_ms: Option<i64> = sqlx::query_scalar("SELECT MAX(occurred_at) FROM event_log WHERE event_id = $1")
        .bind(&id)
        .fetch_one(&mut *tx)
        .await
        .context("reading when the figures last changed")?;
    tx.commit().await?;

    Ok(Some(FigureFacts {
        organization_id: event.try_get("organization_id")?,
        currency: event.try_get("currency")?,
        ticket_types,
        line_sums,
        checkins,
        orders_paid: paid.try_get("orders")?,
        revenue_minor: paid.try_get("revenue")?,
        sales_per_minute,
        as_of_ms,
    }))
}
