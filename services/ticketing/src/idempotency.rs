//! Idempotency keys for the two requests a buyer must be able to retry blindly: placing an
//! order and paying it. A key is scoped to the buyer and the [`Operation`], stored with a
//! fingerprint of the request and the first answer, and kept for 24 hours. A replay gets the
//! first answer; the same key with another request is refused; a duplicate arriving while the
//! first is running waits for it. This module owns the `idempotency_keys` table.

use anyhow::Context;
use base64::{Engine, engine::general_purpose::STANDARD};
use eventhive_domain::{OrderId, UserId, rules::IdempotencyKey};
use eventhive_platform::{Database, ErrorKind, FieldError, storage::now_ms};
use prost::Message;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyConnection, Transaction};

use crate::error::TicketingError;
use eventhive_proto::ticketing::Order;

/// How long a key and its answer are kept.
const RETENTION_MS: i64 = 24 * 3600 * 1000;
/// How long a claim may stay in progress before another request may take it over (the first
/// one crashed).
const LEASE_MS: i64 = 60_000;

/// What a key is used for: the same key may serve one buyer once per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    PlaceOrder,
    PayOrder { order_id: OrderId },
}

impl Operation {
    /// The stored form, e.g. `place_order` or `pay_order:<order id>` (the migration
    /// `20261202000001_idempotency_operations.sql` rewrote the keys stored before in the old
    /// form, the public request path).
    fn stored(self) -> String {
        match self {
            Self::PlaceOrder => "place_order".into(),
            Self::PayOrder { order_id } => format!("pay_order:{order_id}"),
        }
    }
}

/// Who asked what, under which key.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    buyer_id: String,
    /// [`Operation::stored`].
    operation: String,
    key: IdempotencyKey,
    /// SHA-256 of the request's content.
    fingerprint: String,
}

impl Scope {
    pub(crate) fn new(buyer_id: UserId, operation: Operation, key: IdempotencyKey, request: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, request);
        let fingerprint = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Self { buyer_id: buyer_id.to_string(), operation: operation.stored(), key, fingerprint }
    }
}

/// The first answer, as kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Stored {
    /// A successful answer: the order as it was then (protobuf, base64).
    Order { order: String },
    /// An error answer.
    Error { slug: String, message: String, fields: Vec<(String, String)> },
}

impl Stored {
    fn of(result: &Result<Order, TicketingError>) -> Self {
        match result {
            Ok(order) => Self::Order { order: STANDARD.encode(order.encode_to_vec()) },
            Err(error) => Self::Error {
                slug: error.kind().slug().to_owned(),
                message: error.to_string(),
                fields: match error {
                    TicketingError::Invalid(fields) => {
                        fields.iter().map(|f| (f.field.clone(), f.message.clone())).collect()
                    }
                    _ => Vec::new(),
                },
            },
        }
    }

    /// The answer again.
    fn replay(&self) -> Result<Order, TicketingError> {
        match self {
            Self::Order { order } => {
                let bytes = STANDARD.decode(order).context("stored answer")?;
                Ok(Order::decode(bytes.as_slice()).context("stored answer")?)
            }
            Self::Error { slug, message, fields } => {
                let kind = ErrorKind::from_slug(slug).unwrap_or(ErrorKind::Conflict);
                let fields: Vec<FieldError> = fields.iter().map(|(f, m)| FieldError::new(f, m)).collect();
                Err(TicketingError::Upstream(eventhive_platform::problem::status(kind, message.clone(), &fields)))
            }
        }
    }
}

/// Whether an answer is final enough to keep: temporary failures and a payment whose outcome is
/// not known yet are not, so that a retry with the same key runs the request again and gets
/// the first real answer once there is one.
fn keeps(result: &Result<Order, TicketingError>) -> bool {
    match result {
        Ok(_) => true,
        Err(TicketingError::PaymentInFlight) => false,
        Err(error) => !matches!(error.kind(), ErrorKind::Unavailable | ErrorKind::Internal | ErrorKind::RateLimited),
    }
}

/// What a claim found.
enum Claim {
    /// The key is ours: run the request.
    Owned,
    /// Answered before: replay it.
    Answered(Stored),
    /// Another request with this key is running.
    Running,
}

/// Claims the key on `conn` (inside the caller's transaction, so that a concurrent duplicate
/// blocks on it until that transaction ends).
async fn claim(conn: &mut AnyConnection, scope: &Scope) -> Result<Claim, TicketingError> {
    let now = now_ms();
    // One statement claims a new key or a key past retention (which is gone: its row is taken
    // over as if new), and leaves a live one alone.
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (buyer_id, scope, idempotency_key, fingerprint, state, locked_until, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, 'in_progress', $5, $6, $7) ON CONFLICT (buyer_id, scope, idempotency_key) DO UPDATE \
         SET fingerprint = excluded.fingerprint, state = 'in_progress', response = NULL, \
         locked_until = excluded.locked_until, created_at = excluded.created_at, expires_at = excluded.expires_at \
         WHERE idempotency_keys.expires_at <= excluded.created_at",
    )
    .bind(&scope.buyer_id)
    .bind(&scope.operation)
    .bind(scope.key.as_str())
    .bind(&scope.fingerprint)
    .bind(now + LEASE_MS)
    .bind(now)
    .bind(now + RETENTION_MS)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Owned);
    }
    let (fingerprint, state, response, locked_until): (String, String, Option<String>, i64) = sqlx::query_as(
        "SELECT fingerprint, state, response, locked_until FROM idempotency_keys \
         WHERE buyer_id = $1 AND scope = $2 AND idempotency_key = $3",
    )
    .bind(&scope.buyer_id)
    .bind(&scope.operation)
    .bind(scope.key.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if fingerprint != scope.fingerprint {
        return Err(TicketingError::IdempotencyKeyReused);
    }
    if state == "completed" {
        let stored: Stored = serde_json::from_str(response.as_deref().unwrap_or_default()).context("stored answer")?;
        return Ok(Claim::Answered(stored));
    }
    if locked_until <= now {
        // The request that claimed it died; take over.
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET locked_until = $1 WHERE buyer_id = $2 AND scope = $3 AND idempotency_key = $4 \
             AND state = 'in_progress' AND locked_until <= $5",
        )
        .bind(now + LEASE_MS)
        .bind(&scope.buyer_id)
        .bind(&scope.operation)
        .bind(scope.key.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if taken.rows_affected() == 1 {
            return Ok(Claim::Owned);
        }
    }
    Ok(Claim::Running)
}

/// How long a duplicate waits for the first request with its key: below the gateway's request
/// timeout, so the client gets an answer from us rather than a timeout.
const DUPLICATE_WAIT_MS: i64 = 10_000;

/// What [`claim_or_wait`] settled on.
pub(crate) enum Turn<'c> {
    /// The key is ours; the claim is written in this (uncommitted) transaction.
    Owned(Transaction<'c, Any>),
    /// The first request's answer, to give again.
    Replay(Result<Order, TicketingError>),
}

/// Claims the key, waiting (up to a bound) while another request with it is running.
pub(crate) async fn claim_or_wait<'c>(db: &'c Database, scope: &Scope) -> Result<Turn<'c>, TicketingError> {
    let deadline = now_ms() + DUPLICATE_WAIT_MS;
    loop {
        let mut tx = db.pool().begin().await?;
        match claim(&mut tx, scope).await? {
            Claim::Owned => return Ok(Turn::Owned(tx)),
            Claim::Answered(stored) => {
                tx.commit().await?;
                return Ok(Turn::Replay(stored.replay()));
            }
            Claim::Running => {
                tx.rollback().await?;
                if now_ms() > deadline {
                    return Err(TicketingError::Conflict(
                        "a request with this Idempotency-Key is still running".into(),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Keeps the answer of an owned claim, or lets the key go if the answer is temporary.
pub(crate) async fn finish(
    conn: &mut AnyConnection,
    scope: &Scope,
    result: &Result<Order, TicketingError>,
) -> anyhow::Result<()> {
    if keeps(result) {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'completed', response = $1 \
             WHERE buyer_id = $2 AND scope = $3 AND idempotency_key = $4",
        )
        .bind(serde_json::to_string(&Stored::of(result))?)
        .bind(&scope.buyer_id)
        .bind(&scope.operation)
        .bind(scope.key.as_str())
        .execute(&mut *conn)
        .await?;
    } else {
        sqlx::query("DELETE FROM idempotency_keys WHERE buyer_id = $1 AND scope = $2 AND idempotency_key = $3")
            .bind(&scope.buyer_id)
            .bind(&scope.operation)
            .bind(scope.key.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Forgets keys past retention; returns how many.
pub(crate) async fn purge(conn: &mut AnyConnection, now: i64) -> anyhow::Result<u64> {
    Ok(sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}
