//! Reading and writing orders and events: the rows, their public (protobuf) form, and the one
//! way an order's state changes — a conditional update from the state it was read in.

use anyhow::Context;
use eventhive_domain::{
    EventId, OrderId, TicketTypeId, UserId,
    events::{OrderLine, OrderSummary},
};
use eventhive_platform::{
    Database,
    storage::{ms_to_rfc3339, now_ms},
};
use eventhive_proto::{
    common::Money,
    ticketing::{Order, OrderItem, Ticket},
};
use sqlx::AnyConnection;

use crate::{
    error::TicketingError,
    saga::{OrderEvent, OrderState},
};

pub const ORDER_COLUMNS: &str = "id, buyer_id, event_id, status, currency, total_minor, quantity, expires_at, created_at, \
    updated_at, authorizing_since, paid_at, payment_id, closed_reason";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: String,
    pub buyer_id: String,
    pub event_id: String,
    pub status: String,
    pub currency: String,
    pub total_minor: i64,
    pub quantity: i64,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub authorizing_since: Option<i64>,
    pub paid_at: Option<i64>,
    pub payment_id: Option<String>,
    pub closed_reason: Option<String>,
}

impl OrderRow {
    pub fn state(&self) -> Result<OrderState, TicketingError> {
        OrderState::parse(&self.status)
            .ok_or_else(|| anyhow::anyhow!("order {} has unknown status {}", self.id, self.status).into())
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub organization_id: String,
    pub title: String,
    pub status: String,
    pub starts_at: i64,
    pub currency: String,
    pub max_tickets_per_order: i64,
    pub max_tickets_per_buyer: i64,
    pub signing_key_pkcs8: String,
    pub public_key: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub ticket_type_id: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketRow {
    pub id: String,
    pub order_id: String,
    pub event_id: String,
    pub ticket_type_id: String,
    pub ticket_type_name: String,
    pub code: String,
    pub status: String,
    pub checked_in_at: Option<i64>,
    pub created_at: i64,
}

pub const TICKET_SELECT: &str = "SELECT k.id, k.order_id, k.event_id, k.ticket_type_id, t.name AS ticket_type_name, k.code, \
    k.status, k.checked_in_at, k.created_at FROM tickets k JOIN ticket_types t ON t.id = k.ticket_type_id";

pub async fn order(
    db: &Database,
    conn: &mut AnyConnection,
    id: &str,
    lock: bool,
) -> Result<Option<OrderRow>, TicketingError> {
    let lock = if lock { db.for_update() } else { "" };
    Ok(sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1{lock}"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

pub async fn event(conn: &mut AnyConnection, id: &str) -> Result<Option<EventRow>, TicketingError> {
    Ok(sqlx::query_as(
        "SELECT id, organization_id, title, status, starts_at, currency, max_tickets_per_order, max_tickets_per_buyer, \
         signing_key_pkcs8, public_key FROM events WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

pub async fn items(conn: &mut AnyConnection, order_id: &str) -> Result<Vec<ItemRow>, TicketingError> {
    Ok(sqlx::query_as(
        "SELECT ticket_type_id, name, quantity, unit_price_minor FROM order_items WHERE order_id = $1 ORDER BY ticket_type_id",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?)
}

pub async fn tickets_of_order(conn: &mut AnyConnection, order_id: &str) -> Result<Vec<TicketRow>, TicketingError> {
    Ok(sqlx::query_as(&format!("{TICKET_SELECT} WHERE k.order_id = $1 ORDER BY k.position"))
        .bind(order_id)
        .fetch_all(&mut *conn)
        .await?)
}

/// Moves an order from `from` by `event`, if it is still in `from`. `false`: someone else
/// moved it first; the caller reloads and decides again.
pub async fn transition(
    conn: &mut AnyConnection,
    order_id: &str,
    from: OrderState,
    event: OrderEvent,
) -> Result<bool, TicketingError> {
    let to = from.on(event)?;
    let now = now_ms();
    let moved = sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
        .bind(to.as_str())
        .bind(now)
        .bind(order_id)
        .bind(from.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(moved.rows_affected() == 1)
}

/// The order as domain events describe it.
pub async fn summary(conn: &mut AnyConnection, order: &OrderRow) -> Result<OrderSummary, TicketingError> {
    let lines = items(conn, &order.id)
        .await?
        .into_iter()
        .map(|item| {
            Ok(OrderLine {
                ticket_type_id: TicketTypeId::parse(&item.ticket_type_id).context("stored ticket type id")?,
                quantity: item.quantity,
                unit_price_minor: item.unit_price_minor,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(OrderSummary {
        order_id: OrderId::parse(&order.id).context("stored order id")?,
        event_id: EventId::parse(&order.event_id).context("stored event id")?,
        buyer_id: UserId::parse(&order.buyer_id).context("stored buyer id")?,
        lines,
        total_minor: order.total_minor,
        currency: order.currency.clone(),
    })
}

pub fn money(amount_minor: i64, currency: &str) -> Money {
    Money { amount_minor, currency: currency.to_owned() }
}

pub fn ticket_proto(row: &TicketRow) -> Ticket {
    Ticket {
        id: row.id.clone(),
        order_id: row.order_id.clone(),
        event_id: row.event_id.clone(),
        ticket_type_id: row.ticket_type_id.clone(),
        ticket_type_name: row.ticket_type_name.clone(),
        code: row.code.clone(),
        status: row.status.clone(),
        checked_in_at: row.checked_in_at.map(ms_to_rfc3339),
        created_at: ms_to_rfc3339(row.created_at),
    }
}

/// The public form of an order, with its items and tickets.
pub async fn order_proto(conn: &mut AnyConnection, order: &OrderRow) -> Result<Order, TicketingError> {
    let items = items(conn, &order.id).await?;
    let tickets = tickets_of_order(conn, &order.id).await?;
    Ok(Order {
        id: order.id.clone(),
        event_id: order.event_id.clone(),
        buyer_id: order.buyer_id.clone(),
        status: order.state()?.public_status().to_owned(),
        expires_at: ms_to_rfc3339(order.expires_at),
        items: items
            .iter()
            .map(|item| OrderItem {
                ticket_type_id: item.ticket_type_id.clone(),
                name: item.name.clone(),
                quantity: item.quantity,
                unit_price: Some(money(item.unit_price_minor, &order.currency)),
                subtotal: Some(money(item.unit_price_minor.saturating_mul(item.quantity), &order.currency)),
            })
            .collect(),
        total: Some(money(order.total_minor, &order.currency)),
        tickets: tickets.iter().map(ticket_proto).collect(),
        created_at: ms_to_rfc3339(order.created_at),
        paid_at: order.paid_at.map(ms_to_rfc3339),
    })
}
