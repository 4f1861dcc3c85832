//! Every SQL statement on `tickets`: one row per admission of a paid order, issued once
//! (`(order_id, position)` is unique), then valid, checked in or void.

use anyhow::Context;
use eventhive_domain::{EventId, OrderId, TicketId, TicketTypeId, UserId};
use sqlx::AnyConnection;

/// A ticket as stored, with the name of its ticket type.
#[derive(Debug, Clone)]
pub(crate) struct TicketRecord {
    pub id: TicketId,
    pub order_id: OrderId,
    pub event_id: EventId,
    pub ticket_type_id: TicketTypeId,
    pub ticket_type_name: String,
    pub code: String,
    /// `valid`, `checked_in` or `void`.
    pub status: String,
    pub checked_in_at: Option<i64>,
    pub created_at: i64,
    pub buyer_id: UserId,
}

#[derive(sqlx::FromRow)]
struct TicketRow {
    id: String,
    order_id: String,
    event_id: String,
    ticket_type_id: String,
    ticket_type_name: String,
    code: String,
    status: String,
    checked_in_at: Option<i64>,
    created_at: i64,
    buyer_id: String,
}

impl TryFrom<TicketRow> for TicketRecord {
    type Error = anyhow::Error;

    fn try_from(row: TicketRow) -> anyhow::Result<Self> {
        Ok(Self {
            id: TicketId::parse(&row.id).context("stored ticket id")?,
            order_id: OrderId::parse(&row.order_id).context("stored order id")?,
            event_id: EventId::parse(&row.event_id).context("stored event id")?,
            ticket_type_id: TicketTypeId::parse(&row.ticket_type_id).context("stored ticket type id")?,
            ticket_type_name: row.ticket_type_name,
            code: row.code,
            status: row.status,
            checked_in_at: row.checked_in_at,
            created_at: row.created_at,
            buyer_id: UserId::parse(&row.buyer_id).context("stored buyer id")?,
        })
    }
}

fn records(rows: Vec<TicketRow>) -> anyhow::Result<Vec<TicketRecord>> {
    rows.into_iter().map(TicketRecord::try_from).collect()
}

const SELECT: &str = "SELECT k.id, k.order_id, k.event_id, k.ticket_type_id, t.name AS ticket_type_name, k.code, \
    k.status, k.checked_in_at, k.created_at, k.buyer_id FROM tickets k JOIN ticket_types t ON t.id = k.ticket_type_id";

/// A ticket to issue: the admission at `position` of its order.
pub(crate) struct NewTicket<'a> {
    pub id: TicketId,
    pub order_id: OrderId,
    pub event_id: EventId,
    pub ticket_type_id: TicketTypeId,
    pub buyer_id: UserId,
    pub position: i64,
    pub code: &'a str,
    pub now: i64,
}

/// Issues a ticket unless its order's position is taken (a repeat issues nothing).
pub(crate) async fn insert_once(tx: &mut AnyConnection, ticket: &NewTicket<'_>) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO tickets (id, order_id, event_id, ticket_type_id, buyer_id, position, code, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'valid', $8) ON CONFLICT (order_id, position) DO NOTHING",
    )
    .bind(ticket.id.to_string())
    .bind(ticket.order_id.to_string())
    .bind(ticket.event_id.to_string())
    .bind(ticket.ticket_type_id.to_string())
    .bind(ticket.buyer_id.to_string())
    .bind(ticket.position)
    .bind(ticket.code)
    .bind(ticket.now)
    .execute(&mut *tx)
    .await
    .context("issuing a ticket")?;
    Ok(())
}

/// The tickets of an order, in the order they were issued.
pub(crate) async fn of_order(conn: &mut AnyConnection, order_id: OrderId) -> anyhow::Result<Vec<TicketRecord>> {
    records(
        sqlx::query_as(&format!("{SELECT} WHERE k.order_id = $1 ORDER BY k.position"))
            .bind(order_id.to_string())
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// The ticket, if it is one of the event's.
pub(crate) async fn of_event(
    conn: &mut AnyConnection,
    id: TicketId,
    event_id: EventId,
) -> anyhow::Result<Option<TicketRecord>> {
    let row: Option<TicketRow> = sqlx::query_as(&format!("{SELECT} WHERE k.id = $1 AND k.event_id = $2"))
        .bind(id.to_string())
        .bind(event_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(TicketRecord::try_from).transpose()
}

/// A page of the buyer's tickets below the id `after`, newest first.
pub(crate) async fn page_of_buyer(
    conn: &mut AnyConnection,
    buyer_id: UserId,
    after: &str,
    limit: i64,
) -> anyhow::Result<Vec<TicketRecord>> {
    page_where(conn, "buyer_id", buyer_id.to_string(), after, limit).await
}

/// A page of the event's tickets below the id `after`, newest first.
pub(crate) async fn page_of_event(
    conn: &mut AnyConnection,
    event_id: EventId,
    after: &str,
    limit: i64,
) -> anyhow::Result<Vec<TicketRecord>> {
    page_where(conn, "event_id", event_id.to_string(), after, limit).await
}

/// The tickets whose `column` (named here, never by a caller) is `value`, below the id
/// `after`, newest first.
async fn page_where(
    conn: &mut AnyConnection,
    column: &str,
    value: String,
    after: &str,
    limit: i64,
) -> anyhow::Result<Vec<TicketRecord>> {
    records(
        sqlx::query_as(&format!("{SELECT} WHERE k.{column} = $1 AND k.id < $2 ORDER BY k.id DESC LIMIT $3"))
            .bind(value)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// valid → checked_in at `now`. `false`: it was not valid (any more).
pub(crate) async fn check_in(conn: &mut AnyConnection, id: TicketId, now: i64) -> anyhow::Result<bool> {
    let scanned =
        sqlx::query("UPDATE tickets SET status = 'checked_in', checked_in_at = $1 WHERE id = $2 AND status = 'valid'")
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
    Ok(scanned.rows_affected() == 1)
}

pub(crate) async fn checked_in_at(conn: &mut AnyConnection, id: TicketId) -> anyhow::Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT checked_in_at FROM tickets WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&mut *conn)
        .await?)
}

/// Whether a ticket of the order was checked in: such an order was used and is not refunded.
pub(crate) async fn any_checked_in(conn: &mut AnyConnection, order_id: OrderId) -> anyhow::Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM tickets WHERE order_id = $1 AND status = 'checked_in' LIMIT 1")
            .bind(order_id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

/// Voids every ticket of a refunded order.
pub(crate) async fn void_of_order(tx: &mut AnyConnection, order_id: OrderId) -> anyhow::Result<()> {
    sqlx::query("UPDATE tickets SET status = 'void' WHERE order_id = $1")
        .bind(order_id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}
