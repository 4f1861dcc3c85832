//! Analytics' storage: every statement on its tables — the event log, the read model (`events`,
//! `ticket_types`, `orders`, `order_lines`, `checkins`) and `event_versions` — but the waiting
//! rooms', which [`crate::waiting_rooms`] owns. Writes are
//! idempotent upserts that converge whatever order the facts arrive in; the read of one event's
//! figures is one statement ([`kept_figures`]), so it is one snapshot.

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

use crate::{
    facts::OrderStatus,
    tally::{Delta, Line, OrderState, StoredOrder},
};

mod figures_read;
mod replay;

pub use figures_read::*;
pub use replay::*;

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
/// ones only move its status up the ranks. Returns what the event's kept figures change by:
/// what the order counts for now less what it counted for before.
pub async fn apply_order(
    tx: &mut AnyConnection,
    db: &Database,
    order: &OrderSummary,
    status: OrderStatus,
    paid_at: Option<i64>,
    occurred_at: i64,
) -> anyhow::Result<Delta> {
    let order_id = order.order_id.to_string();
    let heard = OrderState { status, paid_at };
    // On PostgreSQL a concurrent insert of the same order makes this wait for it and then do
    // nothing, so that the row read below is the one that other transaction committed.
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
    let (stored, before, after) = if inserted {
        let mut lines: Vec<Line> = Vec::new();
        for line in &order.lines {
            let inserted = sqlx::query(
                "INSERT INTO order_lines (order_id, ticket_type_id, quantity, unit_price_minor) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (order_id, ticket_type_id) DO NOTHING",
            )
            .bind(&order_id)
            .bind(line.ticket_type_id.to_string())
            .bind(line.quantity)
            .bind(line.unit_price_minor)
            .execute(&mut *tx)
            .await
            .context("storing an order line")?
            .rows_affected()
                == 1;
            // Counted as stored: a ticket type named twice counts once, with its first line.
            if inserted {
                lines.push(Line {
                    ticket_type_id: line.ticket_type_id.to_string(),
                    quantity: line.quantity,
                    unit_price_minor: line.unit_price_minor,
                });
            }
        }
        (StoredOrder { quantity: order.quantity(), total_minor: order.total_minor, lines }, None, heard)
    } else {
        // Locked on PostgreSQL: the state read is the state this transaction moves on from.
        let row = sqlx::query(&format!(
            "SELECT status, paid_at, updated_at, quantity, total_minor FROM orders WHERE order_id = $1{}",
            db.for_update()
        ))
        .bind(&order_id)
        .fetch_one(&mut *tx)
        .await
        .context("reading an order")?;
        let text: String = row.try_get("status")?;
        let before = OrderState {
            status: OrderStatus::parse(&text).with_context(|| format!("order {order_id} has status {text:?}"))?,
            paid_at: row.try_get("paid_at")?,
        };
        let after = before.hearing(status, paid_at);
        if after == before {
            return Ok(Delta::default());
        }
        // When the status last moved, for operators.
        let updated_at = if after.status == before.status { row.try_get("updated_at")? } else { occurred_at };
        sqlx::query(
            "UPDATE orders SET status = $1, status_rank = $2, paid_at = $3, updated_at = $4 WHERE order_id = $5",
        )
        .bind(after.status.as_str())
        .bind(after.status.rank())
        .bind(after.paid_at)
        .bind(updated_at)
        .bind(&order_id)
        .execute(&mut *tx)
        .await
        .context("moving an order on")?;
        let lines = sqlx::query(
            "SELECT ticket_type_id, quantity, unit_price_minor FROM order_lines WHERE order_id = $1 \
             ORDER BY ticket_type_id",
        )
        .bind(&order_id)
        .fetch_all(&mut *tx)
        .await
        .context("reading an order's lines")?
        .into_iter()
        .map(|row| {
            Ok(Line {
                ticket_type_id: row.try_get("ticket_type_id")?,
                quantity: row.try_get("quantity")?,
                unit_price_minor: row.try_get("unit_price_minor")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let stored =
            StoredOrder { quantity: row.try_get("quantity")?, total_minor: row.try_get("total_minor")?, lines };
        (stored, Some(before), after)
    };
    Ok(Delta::of_move(&stored, before, after))
}

/// A ticket is checked in once, however often the scan is announced. Returns what the event's
/// kept figures change by.
pub async fn apply_check_in(tx: &mut AnyConnection, checked_in: &TicketCheckedIn) -> anyhow::Result<Delta> {
    let inserted = sqlx::query(
        "INSERT INTO checkins (ticket_id, event_id, ticket_type_id, checked_in_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (ticket_id) DO NOTHING",
    )
    .bind(checked_in.ticket_id.to_string())
    .bind(checked_in.event_id.to_string())
    .bind(checked_in.ticket_type_id.to_string())
    .bind(to_ms(checked_in.checked_in_at))
    .execute(&mut *tx)
    .await
    .context("storing a check-in")?
    .rows_affected()
        == 1;
    Ok(if inserted { Delta::check_in(&checked_in.ticket_type_id.to_string()) } else { Delta::default() })
}

/// Adds `delta` to the kept figures of `event_id` and moves their "as of" to `occurred_at` if
/// that is later. Rows are written in one order — ticket types by id, minutes by time, then the
/// event's row — so that concurrent consumers on PostgreSQL cannot deadlock, and the event's
/// row, which every transaction of the event writes, is locked as late as possible.
pub async fn add_to_figures(
    tx: &mut AnyConnection,
    event_id: EventId,
    delta: &Delta,
    occurred_at: i64,
) -> anyhow::Result<()> {
    let id = event_id.to_string();
    for (ticket_type_id, d) in &delta.by_ticket_type {
        sqlx::query(
            "INSERT INTO ticket_type_figures (event_id, ticket_type_id, sold, held, revenue_minor, checkins) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id, ticket_type_id) DO UPDATE SET \
             sold = ticket_type_figures.sold + excluded.sold, held = ticket_type_figures.held + excluded.held, \
             revenue_minor = ticket_type_figures.revenue_minor + excluded.revenue_minor, \
             checkins = ticket_type_figures.checkins + excluded.checkins",
        )
        .bind(&id)
        .bind(ticket_type_id)
        .bind(d.sold)
        .bind(d.held)
        .bind(d.revenue_minor)
        .bind(d.checkins)
        .execute(&mut *tx)
        .await
        .context("adding to a ticket type's figures")?;
    }
    for (minute_ms, d) in &delta.by_minute {
        sqlx::query(
            "INSERT INTO minute_figures (event_id, minute_ms, tickets, revenue_minor) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id, minute_ms) DO UPDATE SET tickets = minute_figures.tickets + excluded.tickets, \
             revenue_minor = minute_figures.revenue_minor + excluded.revenue_minor",
        )
        .bind(&id)
        .bind(minute_ms)
        .bind(d.tickets)
        .bind(d.revenue_minor)
        .execute(&mut *tx)
        .await
        .context("adding to a minute's figures")?;
    }
    sqlx::query(
        "INSERT INTO event_figures (event_id, orders_paid, revenue_minor, as_of) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (event_id) DO UPDATE SET orders_paid = event_figures.orders_paid + excluded.orders_paid, \
         revenue_minor = event_figures.revenue_minor + excluded.revenue_minor, \
         as_of = CASE WHEN excluded.as_of > event_figures.as_of THEN excluded.as_of ELSE event_figures.as_of END",
    )
    .bind(&id)
    .bind(delta.orders_paid)
    .bind(delta.revenue_minor)
    .bind(occurred_at)
    .execute(&mut *tx)
    .await
    .context("adding to an event's figures")?;
    Ok(())
}

/// The PostgreSQL notification channel on which a committed change of an event's figures is
/// announced to every replica, with the event's id as the payload.
pub const CHANGES_CHANNEL: &str = "eventhive_analytics_figures";

/// Tells watchers on every replica that the event's figures may have changed: a new version for
/// those that poll (SQLite, or a replica whose listener is reconnecting) and, on PostgreSQL, a
/// notification that the database delivers to every listening replica when (and only if) the
/// transaction commits. Last in each transaction, so that concurrent consumers lock rows in one
/// order.
pub async fn bump_version(tx: &mut AnyConnection, backend: Backend, event_id: EventId) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO event_versions (event_id, version) VALUES ($1, 1) \
         ON CONFLICT (event_id) DO UPDATE SET version = event_versions.version + 1",
    )
    .bind(event_id.to_string())
    .execute(&mut *tx)
    .await
    .context("bumping an event's version")?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(event_id.to_string())
            .execute(&mut *tx)
            .await
            .context("announcing a change")?;
    }
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

/// The organization that runs `event_id`; `None` if analytics has not heard of the event.
pub async fn organization_of(db: &Database, event_id: EventId) -> anyhow::Result<Option<String>> {
    let organization = sqlx::query_scalar("SELECT organization_id FROM events WHERE event_id = $1")
        .bind(event_id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("reading an event's organization")?;
    Ok(organization)
}
