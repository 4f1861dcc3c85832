//! Every SQL statement on `owed_refunds`: payments captured for orders whose hold had already
//! ended, which must be given back. A row is written in the transaction that learns of such a
//! capture and settled only once payments confirmed the refund, so the money owed is never
//! forgotten, whatever fails in between.

use anyhow::Context;
use eventhive_domain::OrderId;
use sqlx::AnyConnection;

use crate::error::TicketingError;

type Result<T> = std::result::Result<T, TicketingError>;

/// A refund still owed.
#[derive(Debug, Clone)]
pub(crate) struct OwedRefund {
    pub order_id: OrderId,
    pub reason: String,
}

/// Records that the payment of `order_id` must be refunded. Idempotent: the first record stays.
pub(crate) async fn record(
    tx: &mut AnyConnection,
    order_id: OrderId,
    payment_id: &str,
    reason: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO owed_refunds (order_id, payment_id, reason, created_at, attempts) VALUES ($1, $2, $3, $4, 0) \
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id.to_string())
    .bind(payment_id)
    .bind(reason)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The refund owed for `order_id`, if one is still open.
pub(crate) async fn open(conn: &mut AnyConnection, order_id: OrderId) -> Result<Option<OwedRefund>> {
    let reason: Option<String> =
        sqlx::query_scalar("SELECT reason FROM owed_refunds WHERE order_id = $1 AND refunded_at IS NULL")
            .bind(order_id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(reason.map(|reason| OwedRefund { order_id, reason }))
}

/// Open refunds, oldest order id first, at most `limit`.
pub(crate) async fn due(conn: &mut AnyConnection, limit: i64) -> Result<Vec<OwedRefund>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT order_id, reason FROM owed_refunds WHERE refunded_at IS NULL ORDER BY order_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(order_id, reason)| {
            Ok(OwedRefund { order_id: OrderId::parse(&order_id).context("stored order id")?, reason })
        })
        .collect()
}

/// Notes a refund call that failed; the row stays open for the next sweep.
pub(crate) async fn failed(conn: &mut AnyConnection, order_id: OrderId, error: &str) -> Result<()> {
    sqlx::query("UPDATE owed_refunds SET attempts = attempts + 1, last_error = $1 WHERE order_id = $2")
        .bind(error)
        .bind(order_id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Closes the row: payments confirmed the refund.
pub(crate) async fn settled(conn: &mut AnyConnection, order_id: OrderId, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE owed_refunds SET attempts = attempts + 1, last_error = NULL, refunded_at = $1 \
         WHERE order_id = $2 AND refunded_at IS NULL",
    )
    .bind(now)
    .bind(order_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
