//! Every SQL statement on `orders`, `order_items` and `buyer_event_totals` (the per-buyer cap
//! an order counts against). An order's status changes only by a conditional update from the
//! status it was read in ([`transition`]), so two actors can never both move the same order.

use anyhow::Context;
use eventhive_domain::{EventId, OrderId, TicketTypeId, UserId};
use eventhive_platform::{Database, storage::now_ms};
use sqlx::AnyConnection;

use super::catalog;
use crate::{
    error::TicketingError,
    saga::{OrderEvent, OrderState},
};

type Result<T> = std::result::Result<T, TicketingError>;

/// What an [`OrderRecord`] is read from.
const COLUMNS: &str = "id, buyer_id, event_id, status, currency, total_minor, quantity, expires_at, created_at, authorizing_since, paid_at, payment_key";

/// An order as stored, its ids and status parsed.
#[derive(Debug, Clone)]
pub(crate) struct OrderRecord {
    pub id: OrderId,
    pub buyer_id: UserId,
    pub event_id: EventId,
    pub state: OrderState,
    pub currency: String,
    pub total_minor: i64,
    pub quantity: i64,
    pub expires_at: i64,
    pub created_at: i64,
    /// When the current payment attempt started (`authorizing`), for crash recovery.
    pub authorizing_since: Option<i64>,
    pub paid_at: Option<i64>,
    /// The Idempotency-Key of the request that started the current payment attempt.
    pub payment_key: Option<String>,
}

impl OrderRecord {
    /// Free tickets only (a price of 0): paid without a charge, refunded without one.
    pub fn is_free(&self) -> bool {
        self.total_minor == 0
    }
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    buyer_id: String,
    event_id: String,
    status: String,
    currency: String,
    total_minor: i64,
    quantity: i64,
    expires_at: i64,
    created_at: i64,
    authorizing_since: Option<i64>,
    paid_at: Option<i64>,
    payment_key: Option<String>,
}

impl TryFrom<OrderRow> for OrderRecord {
    type Error = TicketingError;

    fn try_from(row: OrderRow) -> Result<Self> {
        let state = OrderState::parse(&row.status)
            .ok_or_else(|| anyhow::anyhow!("order {} has unknown status {}", row.id, row.status))?;
        Ok(Self {
            id: OrderId::parse(&row.id).context("stored order id")?,
            buyer_id: UserId::parse(&row.buyer_id).context("stored buyer id")?,
            event_id: EventId::parse(&row.event_id).context("stored event id")?,
            state,
            currency: row.currency,
            total_minor: row.total_minor,
            quantity: row.quantity,
            expires_at: row.expires_at,
            created_at: row.created_at,
            authorizing_since: row.authorizing_since,
            paid_at: row.paid_at,
            payment_key: row.payment_key,
        })
    }
}

fn records(rows: Vec<OrderRow>) -> Result<Vec<OrderRecord>> {
    rows.into_iter().map(OrderRecord::try_from).collect()
}

/// One line of an order: a ticket type, how many, at what price.
#[derive(Debug, Clone)]
pub(crate) struct ItemRecord {
    pub ticket_type_id: TicketTypeId,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

/// A new order, as [`insert`] writes it: `pending_payment`, holding until `expires_at`.
pub(crate) struct NewOrderRecord<'a> {
    pub id: OrderId,
    pub buyer_id: UserId,
    pub event_id: EventId,
    pub currency: &'a str,
    pub total_minor: i64,
    pub quantity: i64,
    pub expires_at: i64,
    pub now: i64,
}

/// Writes the new order; returns it as stored, so that the transaction need not read it back.
#[tracing::instrument(skip_all, fields(order_id = %order.id))]
pub(crate) async fn insert(tx: &mut AnyConnection, order: &NewOrderRecord<'_>) -> Result<OrderRecord> {
    sqlx::query(
        "INSERT INTO orders (id, buyer_id, event_id, status, currency, total_minor, quantity, expires_at, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(order.id.to_string())
    .bind(order.buyer_id.to_string())
    .bind(order.event_id.to_string())
    .bind(OrderState::PendingPayment.as_str())
    .bind(order.currency)
    .bind(order.total_minor)
    .bind(order.quantity)
    .bind(order.expires_at)
    .bind(order.now)
    .bind(order.now)
    .execute(&mut *tx)
    .await?;
    Ok(OrderRecord {
        id: order.id,
        buyer_id: order.buyer_id,
        event_id: order.event_id,
        state: OrderState::PendingPayment,
        currency: order.currency.to_owned(),
        total_minor: order.total_minor,
        quantity: order.quantity,
        expires_at: order.expires_at,
        created_at: order.now,
        authorizing_since: None,
        paid_at: None,
        payment_key: None,
    })
}

pub(crate) async fn insert_item(tx: &mut AnyConnection, order_id: OrderId, item: &ItemRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO order_items (order_id, ticket_type_id, name, quantity, unit_price_minor) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(order_id.to_string())
    .bind(item.ticket_type_id.to_string())
    .bind(&item.name)
    .bind(item.quantity)
    .bind(item.unit_price_minor)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The order, or `None`.
pub(crate) async fn find(conn: &mut AnyConnection, id: OrderId) -> Result<Option<OrderRecord>> {
    find_with(conn, id, "").await
}

/// The order, locked until the end of the transaction (on PostgreSQL; SQLite's one connection
/// serializes writers anyway).
pub(crate) async fn find_for_update(db: &Database, tx: &mut AnyConnection, id: OrderId) -> Result<Option<OrderRecord>> {
    find_with(tx, id, db.for_update()).await
}

async fn find_with(conn: &mut AnyConnection, id: OrderId, lock: &str) -> Result<Option<OrderRecord>> {
    let row: Option<OrderRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1{lock}"))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(OrderRecord::try_from).transpose()
}

/// An order that must exist (the caller read or wrote it a moment ago).
pub(crate) async fn get(conn: &mut AnyConnection, id: OrderId) -> Result<OrderRecord> {
    find(conn, id).await?.ok_or_else(|| anyhow::anyhow!("order vanished").into())
}

pub(crate) async fn items(conn: &mut AnyConnection, order_id: OrderId) -> Result<Vec<ItemRecord>> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT ticket_type_id, name, quantity, unit_price_minor FROM order_items WHERE order_id = $1 ORDER BY ticket_type_id",
    )
    .bind(order_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(ticket_type_id, name, quantity, unit_price_minor)| {
            Ok(ItemRecord {
                ticket_type_id: TicketTypeId::parse(&ticket_type_id).context("stored ticket type id")?,
                name,
                quantity,
                unit_price_minor,
            })
        })
        .collect()
}

/// A page of the buyer's orders below the id `after`, newest first.
pub(crate) async fn page_of_buyer(
    conn: &mut AnyConnection,
    buyer_id: UserId,
    after: &str,
    limit: i64,
) -> Result<Vec<OrderRecord>> {
    page_where(conn, "buyer_id", buyer_id.to_string(), after, limit).await
}

/// A page of the event's orders below the id `after`, newest first.
pub(crate) async fn page_of_event(
    conn: &mut AnyConnection,
    event_id: EventId,
    after: &str,
    limit: i64,
) -> Result<Vec<OrderRecord>> {
    page_where(conn, "event_id", event_id.to_string(), after, limit).await
}

/// The orders whose `column` (named here, never by a caller) is `value`, below the id
/// `after`, newest first.
async fn page_where(
    conn: &mut AnyConnection,
    column: &str,
    value: String,
    after: &str,
    limit: i64,
) -> Result<Vec<OrderRecord>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders WHERE {column} = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
    ))
    .bind(value)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    records(rows)
}

/// Moves an order from `from` by `event`, if it is still in `from`. `false`: someone else
/// moved it first; the caller reloads and decides again.
pub(crate) async fn transition(
    conn: &mut AnyConnection,
    order_id: OrderId,
    from: OrderState,
    event: OrderEvent,
) -> Result<bool> {
    let to = from.on(event)?;
    let moved = sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
        .bind(to.as_str())
        .bind(now_ms())
        .bind(order_id.to_string())
        .bind(from.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(moved.rows_affected() == 1)
}

/// pending_payment → authorizing, only while the hold is valid at `now`; the attempt is
/// known by `now` and by the `key` of the request that started it.
pub(crate) async fn start_payment(conn: &mut AnyConnection, order_id: OrderId, now: i64, key: &str) -> Result<bool> {
    let to = OrderState::PendingPayment.on(OrderEvent::PaymentStarted)?;
    // The event's sales must be open, checked in this very statement under the event's share
    // lock: a concurrent CloseSales either waits for this payment to start or is seen by it.
    let lock = catalog::key_share(conn);
    let started = sqlx::query(&format!(
        "UPDATE orders SET status = $1, authorizing_since = $2, updated_at = $2, payment_key = $5 \
         WHERE id = $3 AND status = $4 AND expires_at > $2 \
         AND EXISTS (SELECT 1 FROM events e WHERE e.id = orders.event_id AND e.status = 'on_sale' \
         AND e.sales_closed_at IS NULL{lock})"
    ))
    .bind(to.as_str())
    .bind(now)
    .bind(order_id.to_string())
    .bind(OrderState::PendingPayment.as_str())
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(started.rows_affected() == 1)
}

/// authorizing → pending_payment, only if the payment attempt that started at `attempt`
/// (its `authorizing_since`) is still the current one: whoever saw an earlier attempt fail must
/// not take back a newer attempt that may be capturing right now.
pub(crate) async fn payment_failed(conn: &mut AnyConnection, order_id: OrderId, attempt: i64) -> Result<bool> {
    let to = OrderState::Authorizing.on(OrderEvent::PaymentFailed)?;
    let moved = sqlx::query(
        "UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4 AND authorizing_since = $5",
    )
    .bind(to.as_str())
    .bind(now_ms())
    .bind(order_id.to_string())
    .bind(OrderState::Authorizing.as_str())
    .bind(attempt)
    .execute(&mut *conn)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// Moves an order from `from` to `paid` with its captured payment, in one statement: the
/// transition of [`transition`] and the payment's record together. `false`: someone else
/// moved it first.
pub(crate) async fn mark_paid(
    tx: &mut AnyConnection,
    order_id: OrderId,
    from: OrderState,
    payment_id: &str,
    now: i64,
) -> Result<bool> {
    let to = from.on(OrderEvent::PaymentCaptured)?;
    let moved = sqlx::query(
        "UPDATE orders SET status = $1, paid_at = $2, payment_id = $3, updated_at = $2 WHERE id = $4 AND status = $5",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(payment_id)
    .bind(order_id.to_string())
    .bind(from.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// Why the order was closed (expired, cancelled, refunded), as its events will say.
pub(crate) async fn set_closed_reason(conn: &mut AnyConnection, order_id: OrderId, reason: &str) -> Result<()> {
    sqlx::query("UPDATE orders SET closed_reason = $1 WHERE id = $2")
        .bind(reason)
        .bind(order_id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn closed_reason(conn: &mut AnyConnection, order_id: OrderId) -> Result<Option<String>> {
    let reason: Option<Option<String>> = sqlx::query_scalar("SELECT closed_reason FROM orders WHERE id = $1")
        .bind(order_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(reason.flatten())
}

// What the sweeper looks for, oldest first, at most `limit` of each.

/// Unpaid orders whose hold ran out by `now`.
pub(crate) async fn expired_holds(conn: &mut AnyConnection, now: i64, limit: i64) -> Result<Vec<OrderRecord>> {
    swept(conn, "status = 'pending_payment' AND expires_at <= $1", Some(now), limit).await
}

/// Unpaid orders of cancelled events.
pub(crate) async fn unpaid_of_cancelled_events(conn: &mut AnyConnection, limit: i64) -> Result<Vec<OrderRecord>> {
    swept(
        conn,
        "status = 'pending_payment' AND event_id IN (SELECT id FROM events WHERE status = 'cancelled')",
        None,
        limit,
    )
    .await
}

/// Payments in flight since `stale_before` or earlier: a crash abandoned them.
pub(crate) async fn abandoned_payments(
    conn: &mut AnyConnection,
    stale_before: i64,
    limit: i64,
) -> Result<Vec<OrderRecord>> {
    swept(conn, "status = 'authorizing' AND authorizing_since <= $1", Some(stale_before), limit).await
}

/// Paid orders of cancelled events, to refund.
pub(crate) async fn paid_of_cancelled_events(conn: &mut AnyConnection, limit: i64) -> Result<Vec<OrderRecord>> {
    swept(conn, "status = 'paid' AND event_id IN (SELECT id FROM events WHERE status = 'cancelled')", None, limit).await
}

/// Refunds in flight since `stale_before` or earlier: a crash abandoned them.
pub(crate) async fn abandoned_refunds(
    conn: &mut AnyConnection,
    stale_before: i64,
    limit: i64,
) -> Result<Vec<OrderRecord>> {
    swept(conn, "status = 'refunding' AND updated_at <= $1", Some(stale_before), limit).await
}

/// The sweeper's queries differ only in their filter, which is always one of the constants
/// above (never built from input); `at` is bound as `$1` when the filter has it.
async fn swept(
    conn: &mut AnyConnection,
    filter: &'static str,
    at: Option<i64>,
    limit: i64,
) -> Result<Vec<OrderRecord>> {
    let next = if at.is_some() { 2 } else { 1 };
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE {filter} ORDER BY id LIMIT ${next}");
    let mut query = sqlx::query_as::<_, OrderRow>(&sql);
    if let Some(at) = at {
        query = query.bind(at);
    }
    records(query.bind(limit).fetch_all(&mut *conn).await?)
}

/// Adds `quantity` to what the buyer holds or owns of the event, unless that would pass `cap`:
/// one conditional update, so concurrent orders of one buyer cannot slip past the cap together.
pub(crate) async fn reserve_buyer_quota(
    tx: &mut AnyConnection,
    buyer_id: UserId,
    event_id: EventId,
    quantity: i64,
    cap: i64,
) -> Result<bool> {
    sqlx::query(
        "INSERT INTO buyer_event_totals (buyer_id, event_id, quantity) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
    )
    .bind(buyer_id.to_string())
    .bind(event_id.to_string())
    .execute(&mut *tx)
    .await?;
    let within_cap = sqlx::query(
        "UPDATE buyer_event_totals SET quantity = quantity + $1 WHERE buyer_id = $2 AND event_id = $3 AND quantity + $1 <= $4",
    )
    .bind(quantity)
    .bind(buyer_id.to_string())
    .bind(event_id.to_string())
    .bind(cap)
    .execute(&mut *tx)
    .await?;
    Ok(within_cap.rows_affected() == 1)
}

/// Gives the buyer's per-event quota back when an order's tickets return to sale.
pub(crate) async fn release_buyer_quota(tx: &mut AnyConnection, order: &OrderRecord) -> Result<()> {
    sqlx::query("UPDATE buyer_event_totals SET quantity = quantity - $1 WHERE buyer_id = $2 AND event_id = $3")
        .bind(order.quantity)
        .bind(order.buyer_id.to_string())
        .bind(order.event_id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}
