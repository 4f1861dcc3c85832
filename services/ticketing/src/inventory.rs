//! Inventory: each ticket type's capacity spread over a few counter rows ("shards"). A hold
//! takes tickets from one shard with a single conditional update — `available >= n` — so
//! availability can never go below zero, on any backend, under any concurrency; buyers of the
//! same ticket type land on different rows (a shard being written is skipped, not waited
//! for) and do not queue behind one hot row. Only when no free shard has enough does a hold
//! lock all shards of the type (in shard order, as every other writer of shards does, so
//! holds cannot deadlock) and gather across them.
//!
//! Tickets move between three columns and never leave a shard: hold (available → held),
//! release (held → available), sell (held → sold), restock (sold → available).
//!
//! Lock order, for every transaction that takes both: the buyer's per-event total
//! (`buyer_event_totals`) first, then the shards in shard order. A hold reserves the buyer's
//! quota before it holds; a release or restock gives the quota back before it moves tickets.
//!
//! This module owns the `inventory_shards` and `order_allocations` tables.

use anyhow::Context;
use eventhive_domain::{EventId, OrderId, TicketTypeId};
use eventhive_platform::Database;
use rand::Rng;
use sqlx::{AnyConnection, Connection};

use crate::{engine::Engine, error::TicketingError};

/// How a capacity is spread: `shards` rows (never more than there are tickets), the remainder
/// on the first rows.
fn split(capacity: i64, shards: i64) -> Vec<i64> {
    let count = shards.clamp(1, capacity.max(1));
    let (base, remainder) = (capacity / count, capacity % count);
    (0..count).map(|i| base + i64::from(i < remainder)).collect()
}

/// Creates the shards of a new ticket type.
pub(crate) async fn create(
    tx: &mut AnyConnection,
    ticket_type_id: TicketTypeId,
    capacity: i64,
    shards: i64,
) -> anyhow::Result<i64> {
    let parts = split(capacity, shards);
    for (shard, available) in parts.iter().enumerate() {
        sqlx::query(
            "INSERT INTO inventory_shards (ticket_type_id, shard, available, held, sold) VALUES ($1, $2, $3, 0, 0)",
        )
        .bind(ticket_type_id.to_string())
        .bind(shard as i64)
        .bind(*available)
        .execute(&mut *tx)
        .await
        .context("creating inventory")?;
    }
    Ok(parts.len() as i64)
}

/// Holds `quantity` tickets of a type for `order_id`. `false`: not that many are left.
pub(crate) async fn hold(
    db: &Database,
    tx: &mut AnyConnection,
    order_id: OrderId,
    ticket_type_id: TicketTypeId,
    quantity: i64,
    shards: i64,
) -> anyhow::Result<bool> {
    // Fast path: the whole quantity from one shard that no one else is writing, never waiting
    // for a lock (a waiting UPDATE keeps the lock of a row it then finds too empty, and
    // waiting in random shard order would deadlock). Starting at a random shard spreads
    // buyers over the rows. It runs in a savepoint: PostgreSQL keeps a row locked that it
    // locked and then found no longer matching, and rolling back to the savepoint lets go of
    // such a lock before the slow path queues for all shards in order.
    let mut attempt = tx.begin().await.context("savepoint")?;
    let start = rand::thread_rng().gen_range(0..shards.max(1));
    let ticket_type = ticket_type_id.to_string();
    let free: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT shard FROM inventory_shards WHERE ticket_type_id = $1 AND available >= $2 \
         ORDER BY (shard + $3) % $4 LIMIT 1{}",
        db.skip_locked()
    ))
    .bind(&ticket_type)
    .bind(quantity)
    .bind(start)
    .bind(shards.max(1))
    .fetch_optional(&mut *attempt)
    .await
    .context("finding a shard")?;
    if let Some(shard) = free {
        let taken = sqlx::query(
            "UPDATE inventory_shards SET available = available - $1, held = held + $1 \
             WHERE ticket_type_id = $2 AND shard = $3 AND available >= $1",
        )
        .bind(quantity)
        .bind(&ticket_type)
        .bind(shard)
        .execute(&mut *attempt)
        .await
        .context("holding tickets")?;
        if taken.rows_affected() == 1 {
            allocate(&mut attempt, order_id, ticket_type_id, shard, quantity).await?;
            attempt.commit().await.context("savepoint")?;
            return Ok(true);
        }
    }
    attempt.rollback().await.context("savepoint")?;
    // Slow path, near sell-out: gather from several shards under lock.
    let rows: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT shard, available FROM inventory_shards WHERE ticket_type_id = $1 ORDER BY shard{}",
        db.for_update()
    ))
    .bind(&ticket_type)
    .fetch_all(&mut *tx)
    .await
    .context("reading inventory")?;
    if rows.iter().map(|(_, available)| available).sum::<i64>() < quantity {
        return Ok(false);
    }
    let mut remaining = quantity;
    for (shard, available) in rows {
        if remaining == 0 {
            break;
        }
        let take = available.min(remaining);
        if take == 0 {
            continue;
        }
        let taken = sqlx::query(
            "UPDATE inventory_shards SET available = available - $1, held = held + $1 \
             WHERE ticket_type_id = $2 AND shard = $3 AND available >= $1",
        )
        .bind(take)
        .bind(&ticket_type)
        .bind(shard)
        .execute(&mut *tx)
        .await
        .context("holding tickets")?;
        anyhow::ensure!(taken.rows_affected() == 1, "inventory changed under a lock");
        allocate(tx, order_id, ticket_type_id, shard, take).await?;
        remaining -= take;
    }
    Ok(true)
}

async fn allocate(
    tx: &mut AnyConnection,
    order_id: OrderId,
    ticket_type_id: TicketTypeId,
    shard: i64,
    quantity: i64,
) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO order_allocations (order_id, ticket_type_id, shard, quantity) VALUES ($1, $2, $3, $4)")
        .bind(order_id.to_string())
        .bind(ticket_type_id.to_string())
        .bind(shard)
        .bind(quantity)
        .execute(&mut *tx)
        .await
        .context("recording an allocation")?;
    Ok(())
}

/// The columns a move takes tickets from and puts them in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Move {
    /// A hold ends unpaid.
    Release,
    /// A hold is paid.
    Sell,
    /// A sale is refunded.
    Restock,
}

impl Move {
    fn columns(self) -> (&'static str, &'static str) {
        match self {
            Self::Release => ("held", "available"),
            Self::Sell => ("held", "sold"),
            Self::Restock => ("sold", "available"),
        }
    }
}

/// Moves every ticket of `order_id` between columns, shard by shard.
pub(crate) async fn apply(tx: &mut AnyConnection, order_id: OrderId, movement: Move) -> anyhow::Result<()> {
    let allocations: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT ticket_type_id, shard, quantity FROM order_allocations WHERE order_id = $1 ORDER BY ticket_type_id, shard",
    )
    .bind(order_id.to_string())
    .fetch_all(&mut *tx)
    .await
    .context("reading allocations")?;
    let (from, to) = movement.columns();
    for (ticket_type_id, shard, quantity) in allocations {
        let moved = sqlx::query(&format!(
            "UPDATE inventory_shards SET {from} = {from} - $1, {to} = {to} + $1 \
             WHERE ticket_type_id = $2 AND shard = $3 AND {from} >= $1"
        ))
        .bind(quantity)
        .bind(&ticket_type_id)
        .bind(shard)
        .execute(&mut *tx)
        .await
        .context("moving tickets")?;
        anyhow::ensure!(
            moved.rows_affected() == 1,
            "inventory of {ticket_type_id} shard {shard} has no {quantity} {from}"
        );
    }
    Ok(())
}

/// Capacity, sold, held and available per ticket type of an event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Stock {
    pub ticket_type_id: String,
    pub capacity: i64,
    pub sold: i64,
    pub held: i64,
    pub available: i64,
}

impl Engine {
    /// What is sold, held and available of each event's ticket types.
    pub(crate) async fn stock_of_events(&self, event_ids: &[EventId]) -> Result<Vec<(EventId, Stock)>, TicketingError> {
        let mut conn = self.db.pool().acquire().await?;
        Ok(stock_of_events(&mut conn, event_ids).await?)
    }
}

/// The stock of several events in one query: (event id, stock) pairs, by event and type.
async fn stock_of_events(conn: &mut AnyConnection, event_ids: &[EventId]) -> anyhow::Result<Vec<(EventId, Stock)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        event_id: String,
        #[sqlx(flatten)]
        stock: Stock,
    }
    if event_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=event_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT t.event_id AS event_id, t.id AS ticket_type_id, t.capacity AS capacity, \
                CAST(COALESCE(SUM(s.sold), 0) AS BIGINT) AS sold, \
                CAST(COALESCE(SUM(s.held), 0) AS BIGINT) AS held, \
                CAST(COALESCE(SUM(s.available), 0) AS BIGINT) AS available \
         FROM ticket_types t LEFT JOIN inventory_shards s ON s.ticket_type_id = t.id \
         WHERE t.event_id IN ({}) GROUP BY t.event_id, t.id, t.capacity ORDER BY t.event_id, t.id",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, Row>(&sql);
    for id in event_ids {
        query = query.bind(id.to_string());
    }
    let rows = query.fetch_all(&mut *conn).await.context("reading stock")?;
    rows.into_iter().map(|row| Ok((EventId::parse(&row.event_id).context("stored event id")?, row.stock))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_split_without_losing_a_ticket() {
        assert_eq!(split(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(split(3, 4), vec![1, 1, 1]);
        assert_eq!(split(1, 1), vec![1]);
        for (capacity, shards) in [(50, 4), (1_000_000, 64), (7, 3), (1, 64)] {
            let parts = split(capacity, shards);
            assert_eq!(parts.iter().sum::<i64>(), capacity);
            assert!(parts.iter().all(|p| *p > 0));
        }
    }
}
