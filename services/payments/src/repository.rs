//! Payments' storage: every statement on `payments`, `payment_attempts` and `refunds`. The
//! conditions that keep a charge at most once live in these statements (a verdict is stored only
//! on a pending payment, a lookup declines only an untouched one), so they are documented here.

use anyhow::{Context, anyhow};
use eventhive_domain::{Currency, OrderId};
use eventhive_platform::{
    Database,
    storage::{is_unique_violation, now_ms},
};

use crate::{
    domain::{AttemptKind, ChargeInput, PaymentStatus},
    error::PaymentsError,
};

type Result<T> = std::result::Result<T, PaymentsError>;

/// Tries at numbering an attempt when concurrent calls for one payment race for a number.
const ATTEMPT_NUMBER_ROUNDS: usize = 64;

/// A payment with the number of processor calls made for it and when the last one was recorded.
const SELECT_PAYMENT: &str = "SELECT p.id, p.order_id, p.amount_minor, p.currency, p.status, p.decline_code, \
     p.card_last4, p.card_brand, p.processor_reference, p.idempotency_key, p.created_at, p.updated_at, \
     (SELECT COUNT(*) FROM payment_attempts a WHERE a.payment_id = p.id) AS attempts, \
     (SELECT MAX(a.created_at) FROM payment_attempts a WHERE a.payment_id = p.id) AS last_attempt_at \
     FROM payments p";

/// The statuses the partial unique index covers: at most one per order.
const LIVE: &str = "('pending', 'captured', 'refunded')";

/// A stored payment, with its processor calls counted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: String,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub decline_code: Option<String>,
    pub card_last4: String,
    pub card_brand: String,
    pub processor_reference: Option<String>,
    pub idempotency_key: String,
    pub created_at: i64,
    /// Touched by every charge that sets out to settle the payment, not only by status changes.
    pub updated_at: i64,
    pub attempts: i64,
    pub last_attempt_at: Option<i64>,
}

impl PaymentRow {
    pub fn status(&self) -> anyhow::Result<PaymentStatus> {
        PaymentStatus::from_stored(&self.status)
    }

    /// The last time anyone was seen working on the payment: claiming it or recording a call.
    pub fn last_activity_at(&self) -> i64 {
        self.last_attempt_at.map_or(self.updated_at, |at| at.max(self.updated_at))
    }

    pub fn currency(&self) -> anyhow::Result<Currency> {
        Currency::parse(&self.currency).with_context(|| format!("stored currency of payment {}", self.id))
    }
}

/// The payments tables of one database.
#[derive(Clone)]
pub struct Repository {
    db: Database,
}

impl Repository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The order's pending, captured or refunded payment: there is at most one.
    pub async fn live_payment(&self, order_id: OrderId) -> Result<Option<PaymentRow>> {
        Ok(sqlx::query_as(&format!("{SELECT_PAYMENT} WHERE p.order_id = $1 AND p.status IN {LIVE}"))
            .bind(order_id.to_string())
            .fetch_optional(self.db.pool())
            .await?)
    }

    /// The payment that stands for the order: the live one if any, else the latest decline.
    pub async fn standing_payment(&self, order_id: OrderId) -> Result<Option<PaymentRow>> {
        Ok(sqlx::query_as(&format!(
            "{SELECT_PAYMENT} WHERE p.order_id = $1 \
             ORDER BY CASE WHEN p.status IN {LIVE} THEN 0 ELSE 1 END, p.created_at DESC, p.id DESC LIMIT 1"
        ))
        .bind(order_id.to_string())
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// In one query: the order's live payment ([`Self::live_payment`]) and the payment with
    /// `idempotency_key` ([`Self::payment_by_key`]), which may be the same one.
    pub async fn live_and_keyed(
        &self,
        order_id: OrderId,
        idempotency_key: Option<&str>,
    ) -> Result<(Option<PaymentRow>, Option<PaymentRow>)> {
        let rows: Vec<PaymentRow> = sqlx::query_as(&format!(
            "{SELECT_PAYMENT} WHERE (p.order_id = $1 AND p.status IN {LIVE}) OR p.idempotency_key = $2"
        ))
        .bind(order_id.to_string())
        .bind(idempotency_key)
        .fetch_all(self.db.pool())
        .await?;
        let order_id = order_id.to_string();
        let is_live =
            |row: &PaymentRow| row.order_id == order_id && row.status().is_ok_and(|s| s != PaymentStatus::Declined);
        let keyed = rows.iter().find(|row| Some(row.idempotency_key.as_str()) == idempotency_key).cloned();
        let live = rows.into_iter().find(is_live);
        Ok((live, keyed))
    }

    pub async fn payment_by_id(&self, id: &str) -> Result<PaymentRow> {
        let payment: Option<PaymentRow> = sqlx::query_as(&format!("{SELECT_PAYMENT} WHERE p.id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(payment.ok_or_else(|| anyhow!("payment {id} vanished"))?)
    }

    /// Writes the pending payment; a unique violation means the order (or the key) is taken.
    pub async fn insert_pending(&self, input: &ChargeInput) -> std::result::Result<PaymentRow, sqlx::Error> {
        let id = uuid::Uuid::now_v7().to_string();
        let idempotency_key = input.idempotency_key.clone().unwrap_or_else(|| format!("charge:{id}"));
        let now = now_ms();
        let payment = PaymentRow {
            id,
            order_id: input.order_id.to_string(),
            amount_minor: input.amount.amount_minor,
            currency: input.amount.currency.as_str().to_owned(),
            status: PaymentStatus::Pending.as_str().to_owned(),
            decline_code: None,
            card_last4: input.card.last4().to_owned(),
            card_brand: input.card.brand().to_owned(),
            processor_reference: None,
            idempotency_key,
            created_at: now,
            updated_at: now,
            attempts: 0,
            last_attempt_at: None,
        };
        sqlx::query(
            "INSERT INTO payments (id, order_id, amount_minor, currency, status, card_last4, card_brand, \
             idempotency_key, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9)",
        )
        .bind(&payment.id)
        .bind(&payment.order_id)
        .bind(payment.amount_minor)
        .bind(&payment.currency)
        .bind(&payment.card_last4)
        .bind(&payment.card_brand)
        .bind(&payment.idempotency_key)
        .bind(now)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(payment)
    }

    /// Stores the processor's verdict on a pending payment. A verdict is final whoever stores
    /// it: `false` when another caller (a concurrent charge or lookup) settled it first.
    pub async fn store_verdict(
        &self,
        payment_id: &str,
        status: PaymentStatus,
        reference: Option<String>,
        decline_code: Option<String>,
    ) -> Result<bool> {
        let stored = sqlx::query(
            "UPDATE payments SET status = $1, processor_reference = $2, decline_code = $3, updated_at = $4 \
             WHERE id = $5 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(reference)
        .bind(decline_code)
        .bind(now_ms())
        .bind(payment_id)
        .execute(self.db.pool())
        .await?;
        Ok(stored.rows_affected() == 1)
    }

    /// Declines a pending payment with `decline_code`, but only if nobody claimed it or recorded a
    /// call for it after `stale_before`: false if it was settled or touched meanwhile.
    pub async fn decline_untouched(&self, payment_id: &str, decline_code: &str, stale_before: i64) -> Result<bool> {
        let declined = sqlx::query(
            "UPDATE payments SET status = 'declined', decline_code = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'pending' AND updated_at <= $4 AND NOT EXISTS \
             (SELECT 1 FROM payment_attempts a WHERE a.payment_id = $3 AND a.created_at > $4)",
        )
        .bind(decline_code)
        .bind(now_ms())
        .bind(payment_id)
        .bind(stale_before)
        .execute(self.db.pool())
        .await?;
        Ok(declined.rows_affected() == 1)
    }

    /// Marks a pending payment as being settled by a charge, so that a lookup does not take it
    /// for abandoned; false if it is no longer pending.
    pub async fn claim_pending(&self, payment_id: &str) -> Result<bool> {
        let claimed = sqlx::query("UPDATE payments SET updated_at = $1 WHERE id = $2 AND status = 'pending'")
            .bind(now_ms())
            .bind(payment_id)
            .execute(self.db.pool())
            .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Records one processor call for a payment, numbered after the payment's earlier ones.
    pub async fn record_attempt(
        &self,
        payment_id: &str,
        kind: AttemptKind,
        idempotency_key: &str,
        outcome: &str,
        detail: Option<String>,
    ) -> Result<()> {
        for _ in 0..ATTEMPT_NUMBER_ROUNDS {
            // Numbers are per payment; two calls racing for one number make one of them fail
            // the unique (payment_id, attempt) and take the next.
            let recorded = sqlx::query(
                "INSERT INTO payment_attempts \
                 (id, payment_id, attempt, kind, processor_idempotency_key, outcome, detail, created_at) \
                 SELECT $1, $2, COALESCE(MAX(attempt), 0) + 1, $3, $4, $5, $6, $7 \
                 FROM payment_attempts WHERE payment_id = $8",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(payment_id)
            .bind(kind.as_str())
            .bind(idempotency_key)
            .bind(outcome)
            .bind(detail.clone())
            .bind(now_ms())
            .bind(payment_id)
            .execute(self.db.pool())
            .await;
            match recorded {
                Ok(_) => return Ok(()),
                Err(error) if is_unique_violation(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(anyhow!("could not number an attempt of payment {payment_id}").into())
    }

    /// Writes the refund of a captured payment and marks it refunded, in one transaction.
    pub async fn record_refund(&self, payment: &PaymentRow, reason: &str, reference: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.db.pool().begin().await?;
        // A concurrent refund of the same payment got the same reference from the processor;
        // whichever commits first writes the row, the other changes nothing.
        sqlx::query(
            "INSERT INTO refunds (id, payment_id, order_id, amount_minor, reason, processor_reference, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (payment_id) DO NOTHING",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&payment.id)
        .bind(&payment.order_id)
        .bind(payment.amount_minor)
        .bind(reason)
        .bind(reference)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE payments SET status = 'refunded', updated_at = $1 WHERE id = $2 AND status = 'captured'")
            .bind(now)
            .bind(&payment.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
