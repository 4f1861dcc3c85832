//! The payments gRPC service: charges (at most one captured per order), refunds, and the state
//! of an order's payment for sagas that recover after a crash.
//!
//! How "at most once" holds, even across crashes and concurrent calls:
//! - a payment row is written as `pending` *before* the processor is called, and the partial
//!   unique index `payments_one_live_per_order` lets an order have only one pending, captured or
//!   refunded payment: a second, concurrent charge fails to insert its own;
//! - every processor call for a payment carries that payment's idempotency key, so asking the
//!   processor again (a retry, a concurrent duplicate, the next charge after a crash) returns the
//!   first answer and moves no money;
//! - a pending payment is only ever settled by what the processor answered. When transient
//!   failures outlast the retries nobody knows whether money moved, so it stays pending until
//!   either the next charge of the order (with the same card) asks again, or
//!   `GetPaymentForOrder` finds it untouched for the settle delay and looks the payment's key up
//!   at the processor ([`PaymentProcessor::lookup`]), which needs no card: a verdict found there
//!   is stored; no charge found there means no money moved, and the payment is declined with
//!   `processing_error` so that the order can be paid afresh or released;
//! - a charge claims a pending payment (touches its `updated_at`) before it asks the processor
//!   about it, never asks with the key of a payment that is no longer pending, and records every
//!   call as an attempt. A lookup declines only a payment with neither a claim nor an attempt
//!   within the settle delay, checked again as it stores the decline. So a lookup cannot declare
//!   "no money moved" while a charge with the key is in flight, unless a single processor call
//!   outlasts the settle delay: keep the delay above the processor's call timeout.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::{Context, anyhow};
use eventhive_domain::{Currency, OrderId};
use eventhive_platform::{
    Database,
    storage::{is_unique_violation, ms_to_rfc3339, now_ms},
};
use eventhive_proto::{
    common::Money as WireMoney,
    payments::{ChargeRequest, GetPaymentForOrderRequest, Payment, RefundRequest, payments_server},
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{Card, ChargeInput, RefundInput, parse_order_id},
    error::PaymentsError,
    processor::{ChargeCommand, ChargeOutcome, PaymentProcessor, ProcessorError, RefundCommand},
};

type Result<T> = std::result::Result<T, PaymentsError>;

/// Waits before each retry of a transient processor failure: three retries, then give up.
const RETRY_BACKOFF: [Duration; 3] =
    [Duration::from_millis(50), Duration::from_millis(100), Duration::from_millis(200)];

/// Rounds of "look at the order, then act" one charge may take when concurrent charges of the
/// same order keep changing what it finds; each round normally ends the charge or settles
/// another one, so this bound is only hit by pathological contention.
const CHARGE_ROUNDS: usize = 5;

/// Tries at numbering an attempt when concurrent calls for one payment race for a number.
const ATTEMPT_NUMBER_ROUNDS: usize = 64;

/// How long a pending payment must have been left alone before `GetPaymentForOrder` settles it
/// by a lookup at the processor: longer than any one processor call takes, so that a charge
/// still in flight is never mistaken for one that never reached the processor.
pub const DEFAULT_SETTLE_DELAY: Duration = Duration::from_secs(5);

/// The decline code of a payment the processor could not or did not process.
const PROCESSING_ERROR: &str = "processing_error";

/// A payment with the number of processor calls made for it and when the last one was recorded.
const SELECT_PAYMENT: &str = "SELECT p.id, p.order_id, p.amount_minor, p.currency, p.status, p.decline_code, \
     p.card_last4, p.card_brand, p.processor_reference, p.idempotency_key, p.created_at, p.updated_at, \
     (SELECT COUNT(*) FROM payment_attempts a WHERE a.payment_id = p.id) AS attempts, \
     (SELECT MAX(a.created_at) FROM payment_attempts a WHERE a.payment_id = p.id) AS last_attempt_at \
     FROM payments p";

/// The statuses the partial unique index covers: at most one per order.
const LIVE: &str = "('pending', 'captured', 'refunded')";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PaymentStatus {
    /// Written before the processor is called; its outcome is not known yet.
    Pending,
    Captured,
    Declined,
    Refunded,
}

impl PaymentStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Captured => "captured",
            Self::Declined => "declined",
            Self::Refunded => "refunded",
        }
    }

    fn from_stored(status: &str) -> anyhow::Result<Self> {
        match status {
            "pending" => Ok(Self::Pending),
            "captured" => Ok(Self::Captured),
            "declined" => Ok(Self::Declined),
            "refunded" => Ok(Self::Refunded),
            other => Err(anyhow!("unknown stored payment status {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptKind {
    Charge,
    Refund,
}

impl AttemptKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "charge",
            Self::Refund => "refund",
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct PaymentRow {
    id: String,
    order_id: String,
    amount_minor: i64,
    currency: String,
    status: String,
    decline_code: Option<String>,
    card_last4: String,
    card_brand: String,
    processor_reference: Option<String>,
    idempotency_key: String,
    created_at: i64,
    /// Touched by every charge that sets out to settle the payment, not only by status changes.
    updated_at: i64,
    attempts: i64,
    last_attempt_at: Option<i64>,
}

impl PaymentRow {
    fn status(&self) -> anyhow::Result<PaymentStatus> {
        PaymentStatus::from_stored(&self.status)
    }

    /// The last time anyone was seen working on the payment: claiming it or recording a call.
    fn last_activity_at(&self) -> i64 {
        self.last_attempt_at.map_or(self.updated_at, |at| at.max(self.updated_at))
    }

    fn currency(&self) -> anyhow::Result<Currency> {
        Currency::parse(&self.currency).with_context(|| format!("stored currency of payment {}", self.id))
    }

    fn into_message(self) -> Payment {
        Payment {
            id: self.id,
            order_id: self.order_id,
            status: self.status,
            amount: Some(WireMoney { amount_minor: self.amount_minor, currency: self.currency }),
            decline_code: self.decline_code.unwrap_or_default(),
            card_last4: self.card_last4,
            card_brand: self.card_brand,
            attempts: i32::try_from(self.attempts).unwrap_or(i32::MAX),
            created_at: ms_to_rfc3339(self.created_at),
        }
    }
}

/// The payments service: its database and the processor that moves the money.
pub struct PaymentsService {
    db: Database,
    /// Behind a trait so that the simulated processor ships and a real one can replace it.
    processor: Arc<dyn PaymentProcessor>,
    /// How long a pending payment must be left alone before `GetPaymentForOrder` settles it by
    /// a lookup; see [`DEFAULT_SETTLE_DELAY`].
    settle_delay: Duration,
}

impl PaymentsService {
    /// A service that settles abandoned pending payments after [`DEFAULT_SETTLE_DELAY`].
    pub fn new(db: Database, processor: Arc<dyn PaymentProcessor>) -> Self {
        Self { db, processor, settle_delay: DEFAULT_SETTLE_DELAY }
    }

    /// Changes how long a pending payment must be left alone before `GetPaymentForOrder`
    /// settles it by a lookup at the processor. Tests use zero; in production it must outlast
    /// any single processor call.
    #[must_use]
    pub fn with_settle_delay(mut self, settle_delay: Duration) -> Self {
        self.settle_delay = settle_delay;
        self
    }

    /// Charges an order at most once; see the module documentation for how.
    #[tracing::instrument(skip_all, fields(order_id = %request.order_id))]
    pub async fn charge(&self, request: ChargeRequest) -> Result<Payment> {
        let input = ChargeInput::parse(&request)?;
        for _ in 0..CHARGE_ROUNDS {
            if let Some(live) = self.live_payment(&input.order_id).await? {
                match live.status()? {
                    PaymentStatus::Captured | PaymentStatus::Refunded => {
                        tracing::info!(payment_id = %live.id, status = %live.status, "order already paid; nothing charged");
                        return Ok(live.into_message());
                    }
                    // Settling it with another card than the one it was started with could
                    // charge a card the buyer did not choose for it.
                    PaymentStatus::Pending
                        if live.card_last4 != input.card.last4() || live.card_brand != input.card.brand() =>
                    {
                        return Err(PaymentsError::ChargeInProgress);
                    }
                    PaymentStatus::Pending => {
                        // In flight elsewhere or interrupted by a crash: asking the processor
                        // with its key is safe either way, and tells us how it ended.
                        self.settle(live, &input.card).await?;
                        continue;
                    }
                    PaymentStatus::Declined => {}
                }
            }
            if let Some(key) = &input.idempotency_key
                && let Some(earlier) = self.payment_by_key(key).await?
            {
                if earlier.order_id != input.order_id.to_string()
                    || earlier.amount_minor != input.amount.amount_minor
                    || earlier.currency != input.amount.currency.as_str()
                {
                    return Err(PaymentsError::IdempotencyKeyReused);
                }
                // A replay of a declined charge answers the decline again; anything else became
                // live since we looked, and the next round deals with it.
                if earlier.status()? == PaymentStatus::Declined {
                    return Ok(earlier.into_message());
                }
                continue;
            }
            match self.insert_pending(&input).await {
                Ok(payment) => return Ok(self.settle(payment, &input.card).await?.into_message()),
                // Another charge of this order (or with this key) got in first; look again.
                Err(error) if is_unique_violation(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(PaymentsError::ChargeInProgress)
    }

    /// Refunds the captured payment of an order, once.
    #[tracing::instrument(skip_all, fields(order_id = %request.order_id))]
    pub async fn refund(&self, request: RefundRequest) -> Result<Payment> {
        let input = RefundInput::parse(&request)?;
        let payment = self.live_payment(&input.order_id).await?.ok_or(PaymentsError::NothingToRefund)?;
        match payment.status()? {
            PaymentStatus::Refunded => return Ok(payment.into_message()),
            // Its outcome is unknown; charging the order again, or asking for the order's payment
            // once the settle delay has passed, settles it, then it can be refunded.
            PaymentStatus::Pending => return Err(PaymentsError::ChargeInProgress),
            PaymentStatus::Declined => return Err(PaymentsError::NothingToRefund),
            PaymentStatus::Captured => {}
        }
        let charge_reference = payment
            .processor_reference
            .clone()
            .ok_or_else(|| anyhow!("captured payment {} has no processor reference", payment.id))?;
        // One key per payment: a payment is refunded whole, so every refund call is the same one.
        let key = format!("refund:{}", payment.id);
        let command = RefundCommand {
            idempotency_key: key.clone(),
            charge_reference,
            amount_minor: payment.amount_minor,
            currency: payment.currency()?,
        };
        let answer = self
            .call_processor(
                &payment.id,
                AttemptKind::Refund,
                &key,
                || self.processor.refund(command.clone()),
                |reference| ("refunded", Some(reference.clone())),
            )
            .await?;
        let reference = match answer {
            Ok(reference) => reference,
            Err(ProcessorError::Transient(_)) => return Err(PaymentsError::ProcessorUnavailable),
            Err(ProcessorError::Permanent(reason)) => {
                tracing::error!(payment_id = %payment.id, %reason, "the processor refused a refund");
                return Err(PaymentsError::ProcessorRefused);
            }
        };
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
        .bind(&input.reason)
        .bind(&reference)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE payments SET status = 'refunded', updated_at = $1 WHERE id = $2 AND status = 'captured'")
            .bind(now)
            .bind(&payment.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(payment_id = %payment.id, "payment refunded");
        Ok(self.payment_by_id(&payment.id).await?.into_message())
    }

    /// The payment that stands for the order: the live one if any, else the latest decline.
    /// A pending one left alone for the settle delay is first settled by a lookup at the
    /// processor (the caller may never have the card again to charge it), see the module docs.
    #[tracing::instrument(skip_all, fields(order_id = %request.order_id))]
    pub async fn payment_for_order(&self, request: GetPaymentForOrderRequest) -> Result<Payment> {
        let order_id = parse_order_id(&request.order_id)?;
        let payment = self.standing_payment(&order_id).await?.ok_or(PaymentsError::NeverCharged)?;
        if payment.status()? != PaymentStatus::Pending {
            return Ok(payment.into_message());
        }
        let settle_delay_ms = i64::try_from(self.settle_delay.as_millis()).unwrap_or(i64::MAX);
        let stale_before = now_ms().saturating_sub(settle_delay_ms);
        if payment.last_activity_at() > stale_before {
            return Ok(payment.into_message());
        }
        self.settle_by_lookup(&payment, stale_before).await?;
        // Settled by us, by a concurrent charge, or still pending: answer whichever it is now.
        Ok(self.standing_payment(&order_id).await?.ok_or(PaymentsError::NeverCharged)?.into_message())
    }

    async fn standing_payment(&self, order_id: &OrderId) -> Result<Option<PaymentRow>> {
        Ok(sqlx::query_as(&format!(
            "{SELECT_PAYMENT} WHERE p.order_id = $1 \
             ORDER BY CASE WHEN p.status IN {LIVE} THEN 0 ELSE 1 END, p.created_at DESC, p.id DESC LIMIT 1"
        ))
        .bind(order_id.to_string())
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// Settles a pending payment nobody has touched since `stale_before` by asking the processor
    /// what it did under the payment's key. A verdict is stored as a charge would store it.
    /// Finding no charge there means no money moved under the key: the payment is declined with
    /// `processing_error`, but only if still nobody touched it, since a charge that claimed it
    /// meanwhile may be about to reach the processor with that key. A failed lookup changes
    /// nothing. Holds no transaction across the processor call.
    #[tracing::instrument(skip_all, fields(payment_id = %payment.id))]
    async fn settle_by_lookup(&self, payment: &PaymentRow, stale_before: i64) -> Result<()> {
        let found = match self.processor.lookup(&payment.idempotency_key).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "processor lookup failed; the payment stays pending");
                return Ok(());
            }
        };
        let Some(outcome) = found else {
            // Nothing moved under the key, but a charge that claimed the payment since we judged
            // it abandoned may be about to reach the processor with it: decline only if still
            // nobody touched it.
            let declined = sqlx::query(
                "UPDATE payments SET status = 'declined', decline_code = $1, updated_at = $2 \
                 WHERE id = $3 AND status = 'pending' AND updated_at <= $4 AND NOT EXISTS \
                 (SELECT 1 FROM payment_attempts a WHERE a.payment_id = $3 AND a.created_at > $4)",
            )
            .bind(PROCESSING_ERROR)
            .bind(now_ms())
            .bind(&payment.id)
            .bind(stale_before)
            .execute(self.db.pool())
            .await?
            .rows_affected()
                == 1;
            if declined {
                tracing::info!("the processor has no charge under the payment's key; declined as {PROCESSING_ERROR}");
            } else {
                tracing::info!("pending payment settled or claimed by a charge meanwhile; left as it is");
            }
            return Ok(());
        };
        let (status, reference, decline_code, recorded, detail) = match outcome {
            ChargeOutcome::Captured { reference } => {
                (PaymentStatus::Captured, Some(reference.clone()), None, "captured", reference)
            }
            ChargeOutcome::Declined { code } => (PaymentStatus::Declined, None, Some(code.clone()), "declined", code),
        };
        // The processor's verdict on this payment's charge, learned by a lookup: part of the
        // audit trail like any charge call's answer.
        self.record_attempt(
            &payment.id,
            AttemptKind::Charge,
            &payment.idempotency_key,
            recorded,
            Some(format!("lookup: {detail}")),
        )
        .await?;
        // A verdict is final whoever stores it; a concurrent charge that stored it first is left alone.
        let stored = self.store_verdict(&payment.id, status, reference, decline_code).await?;
        if stored {
            tracing::info!(status = status.as_str(), "pending payment settled by a processor lookup");
        } else {
            tracing::info!("pending payment settled by a charge meanwhile; left as it is");
        }
        Ok(())
    }

    async fn live_payment(&self, order_id: &OrderId) -> Result<Option<PaymentRow>> {
        Ok(sqlx::query_as(&format!("{SELECT_PAYMENT} WHERE p.order_id = $1 AND p.status IN {LIVE}"))
            .bind(order_id.to_string())
            .fetch_optional(self.db.pool())
            .await?)
    }

    async fn payment_by_key(&self, idempotency_key: &str) -> Result<Option<PaymentRow>> {
        Ok(sqlx::query_as(&format!("{SELECT_PAYMENT} WHERE p.idempotency_key = $1"))
            .bind(idempotency_key)
            .fetch_optional(self.db.pool())
            .await?)
    }

    /// Stores the processor's verdict on a pending payment. A verdict is final whoever stores
    /// it: `false` when another caller (a concurrent charge or lookup) settled it first.
    async fn store_verdict(
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

    async fn payment_by_id(&self, id: &str) -> Result<PaymentRow> {
        let payment: Option<PaymentRow> = sqlx::query_as(&format!("{SELECT_PAYMENT} WHERE p.id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(payment.ok_or_else(|| anyhow!("payment {id} vanished"))?)
    }

    /// Writes the pending payment; a unique violation means the order (or the key) is taken.
    async fn insert_pending(&self, input: &ChargeInput) -> std::result::Result<PaymentRow, sqlx::Error> {
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

    /// Asks the processor how a pending payment ends, with the payment's own key, and stores
    /// the answer. Whoever stores first wins; everyone returns what was stored.
    async fn settle(&self, payment: PaymentRow, card: &Card) -> Result<PaymentRow> {
        if !self.claim_pending(&payment.id).await? {
            // Settled since we looked, possibly declined by a lookup that found no charge under
            // its key: charging with that key now could move money for a declined payment.
            return self.payment_by_id(&payment.id).await;
        }
        let command = ChargeCommand {
            idempotency_key: payment.idempotency_key.clone(),
            amount_minor: payment.amount_minor,
            currency: payment.currency()?,
            card: card.clone(),
        };
        let answer = self
            .call_processor(
                &payment.id,
                AttemptKind::Charge,
                &payment.idempotency_key,
                || self.processor.charge(command.clone()),
                |outcome| match outcome {
                    ChargeOutcome::Captured { reference } => ("captured", Some(reference.clone())),
                    ChargeOutcome::Declined { code } => ("declined", Some(code.clone())),
                },
            )
            .await?;
        let (status, reference, decline_code, failure) = match answer {
            Ok(ChargeOutcome::Captured { reference }) => (PaymentStatus::Captured, Some(reference), None, None),
            Ok(ChargeOutcome::Declined { code }) => (PaymentStatus::Declined, None, Some(code), None),
            Err(ProcessorError::Permanent(reason)) => {
                tracing::error!(payment_id = %payment.id, %reason, "the processor refused a charge");
                (
                    PaymentStatus::Declined,
                    None,
                    Some(PROCESSING_ERROR.to_owned()),
                    Some(PaymentsError::ProcessorRefused),
                )
            }
            Err(ProcessorError::Transient(reason)) => {
                tracing::warn!(payment_id = %payment.id, %reason, "processor unavailable; the payment stays pending");
                return Err(PaymentsError::ProcessorUnavailable);
            }
        };
        let stored = self.store_verdict(&payment.id, status, reference, decline_code).await?;
        let settled = self.payment_by_id(&payment.id).await?;
        let now_stored = settled.status()?;
        // A capture that was refunded since is the same answer, moved on.
        let same_answer =
            now_stored == status || (status, now_stored) == (PaymentStatus::Captured, PaymentStatus::Refunded);
        if stored {
            tracing::info!(payment_id = %payment.id, status = status.as_str(), "charge settled");
        } else if !same_answer {
            // One key got two different answers: worth a human's look.
            tracing::error!(
                payment_id = %payment.id,
                ours = status.as_str(),
                stored = %settled.status,
                "a concurrent settlement stored a different outcome"
            );
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(settled),
        }
    }

    /// Marks a pending payment as being settled by a charge, so that a lookup does not take it
    /// for abandoned; false if it is no longer pending.
    async fn claim_pending(&self, payment_id: &str) -> Result<bool> {
        let claimed = sqlx::query("UPDATE payments SET updated_at = $1 WHERE id = $2 AND status = 'pending'")
            .bind(now_ms())
            .bind(payment_id)
            .execute(self.db.pool())
            .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Calls the processor, retrying transient failures with backoff, and records every call.
    /// The outer error is ours (the database); the inner result is the processor's last answer.
    async fn call_processor<T, F, Fut>(
        &self,
        payment_id: &str,
        kind: AttemptKind,
        idempotency_key: &str,
        call: F,
        describe: impl Fn(&T) -> (&'static str, Option<String>),
    ) -> Result<std::result::Result<T, ProcessorError>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, ProcessorError>>,
    {
        let mut backoff = RETRY_BACKOFF.into_iter();
        loop {
            let answer = call().await;
            let (outcome, detail) = match &answer {
                Ok(value) => describe(value),
                Err(ProcessorError::Transient(reason)) => ("transient_error", Some(reason.clone())),
                Err(ProcessorError::Permanent(reason)) => ("error", Some(reason.clone())),
            };
            self.record_attempt(payment_id, kind, idempotency_key, outcome, detail).await?;
            match (&answer, backoff.next()) {
                (Err(ProcessorError::Transient(reason)), Some(delay)) => {
                    tracing::warn!(%payment_id, %reason, ?delay, "transient processor failure; retrying");
                    tokio::time::sleep(delay).await;
                }
                _ => return Ok(answer),
            }
        }
    }

    async fn record_attempt(
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
}

#[tonic::async_trait]
impl payments_server::Payments for PaymentsService {
    async fn charge(&self, request: Request<ChargeRequest>) -> std::result::Result<Response<Payment>, Status> {
        Ok(Response::new(PaymentsService::charge(self, request.into_inner()).await?))
    }

    async fn refund(&self, request: Request<RefundRequest>) -> std::result::Result<Response<Payment>, Status> {
        Ok(Response::new(PaymentsService::refund(self, request.into_inner()).await?))
    }

    async fn get_payment_for_order(
        &self,
        request: Request<GetPaymentForOrderRequest>,
    ) -> std::result::Result<Response<Payment>, Status> {
        Ok(Response::new(self.payment_for_order(request.into_inner()).await?))
    }
}
