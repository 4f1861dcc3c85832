//! The public forms of what ticketing stores: an order and its tickets as the gRPC contract
//! shows them, and an order as domain events describe it.

use eventhive_domain::events::{OrderLine, OrderSummary};
use eventhive_platform::storage::ms_to_rfc3339;
use eventhive_proto::{
    common::Money,
    ticketing::{Order, OrderItem, Ticket},
};
use sqlx::AnyConnection;

use crate::{
    error::TicketingError,
    repository::{
        orders::{self, ItemRecord, OrderRecord},
        tickets::{self, TicketRecord},
    },
};

/// The order as domain events describe it.
pub(crate) async fn summary(conn: &mut AnyConnection, order: &OrderRecord) -> Result<OrderSummary, TicketingError> {
    Ok(summary_of(order, &orders::items(conn, order.id).await?))
}

/// The order as domain events describe it, from its items at hand: a transaction that has just
/// written or read them does not read them again (issue 18: every statement costs a round trip).
pub(crate) fn summary_of(order: &OrderRecord, items: &[ItemRecord]) -> OrderSummary {
    let lines = items
        .iter()
        .map(|item| OrderLine {
            ticket_type_id: item.ticket_type_id,
            quantity: item.quantity,
            unit_price_minor: item.unit_price_minor,
        })
        .collect();
    OrderSummary {
        order_id: order.id,
        event_id: order.event_id,
        buyer_id: order.buyer_id,
        lines,
        total_minor: order.total_minor,
        currency: order.currency.clone(),
    }
}

pub(crate) fn money(amount_minor: i64, currency: &str) -> Money {
    Money { amount_minor, currency: currency.to_owned() }
}

pub(crate) fn ticket(record: &TicketRecord) -> Ticket {
    Ticket {
        id: record.id.to_string(),
        order_id: record.order_id.to_string(),
        event_id: record.event_id.to_string(),
        ticket_type_id: record.ticket_type_id.to_string(),
        ticket_type_name: record.ticket_type_name.clone(),
        code: record.code.clone(),
        status: record.status.clone(),
        checked_in_at: record.checked_in_at.map(ms_to_rfc3339),
        created_at: ms_to_rfc3339(record.created_at),
        buyer_id: record.buyer_id.to_string(),
    }
}

/// The public form of an order, with its items and tickets.
pub(crate) async fn order(conn: &mut AnyConnection, order: &OrderRecord) -> Result<Order, TicketingError> {
    let items = orders::items(conn, order.id).await?;
    let tickets = tickets::of_order(conn, order.id).await?;
    Ok(order_of(order, &items, &tickets))
}

/// The public form of an order, from its items and tickets at hand (see [`summary_of`]).
pub(crate) fn order_of(order: &OrderRecord, items: &[ItemRecord], tickets: &[TicketRecord]) -> Order {
    Order {
        id: order.id.to_string(),
        event_id: order.event_id.to_string(),
        buyer_id: order.buyer_id.to_string(),
        status: order.state.public_status().to_owned(),
        expires_at: ms_to_rfc3339(order.expires_at),
        items: items
            .iter()
            .map(|item| OrderItem {
                ticket_type_id: item.ticket_type_id.to_string(),
                name: item.name.clone(),
                quantity: item.quantity,
                unit_price: Some(money(item.unit_price_minor, &order.currency)),
                subtotal: Some(money(item.unit_price_minor.saturating_mul(item.quantity), &order.currency)),
            })
            .collect(),
        total: Some(money(order.total_minor, &order.currency)),
        tickets: tickets.iter().map(ticket).collect(),
        created_at: ms_to_rfc3339(order.created_at),
        paid_at: order.paid_at.map(ms_to_rfc3339),
    }
}

/// The public forms of several orders, in their order.
pub(crate) async fn orders(conn: &mut AnyConnection, records: &[OrderRecord]) -> Result<Vec<Order>, TicketingError> {
    let mut items = Vec::with_capacity(records.len());
    for record in records {
        items.push(order(conn, record).await?);
    }
    Ok(items)
}
