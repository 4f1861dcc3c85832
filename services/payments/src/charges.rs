//! Payments' operations: charge an order (at most one capture per order), refund it, and tell
//! where an order's payment stands for sagas that recover after a crash.
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

use anyhow::anyhow;
use eventhive_domain::OrderId;
use eventhive_platform::storage::{is_unique_violation, now_ms};

use crate::{
    domain::{AttemptKind, Card, ChargeInput, PaymentStatus, RefundInput},
    error::PaymentsError,
    processor::{ChargeCommand, ChargeOutcome, PaymentProcessor, ProcessorError, RefundCommand},
    repository::{PaymentRow, Repository},
};

type Result<T> = std::result::Result<T, PaymentsError>;

/// Waits before each retry of a transient processor failure: three retries, then give up.
const RETRY_BACKOFF: [Duration; 3] =
    [Duration::from_millis(50), Duration::from_millis(100), Duration::from_millis(200)];

/// Rounds of "look at the order, then act" one charge may take when concurrent charges of the
/// same order keep changing what it finds; each round normally ends the charge or settles
/// another one, so this bound is only hit by pathological contention.
const CHARGE_ROUNDS: usize = 5;

/// How long a pending payment must have been left alone before `GetPaymentForOrder` settles it
/// by a lookup at the processor: longer than any one processor call takes, so that a charge
/// still in flight is never mistaken for one that never reached the processor.
pub const DEFAULT_SETTLE_DELAY: Duration = Duration::from_secs(5);

/// The decline code of a payment the processor could not or did not process.
const PROCESSING_ERROR: &str = "processing_error";

/// Payments' operations over its storage and the processor that moves the money.
#[derive(Clone)]
pub struct Charges {
    payments: Repository,
    /// Behind a trait so that the simulated processor ships and a real one can replace it.
    processor: Arc<dyn PaymentProcessor>,
    /// How long a pending payment must be left alone before `payment_for_order` settles it by
    /// a lookup; see [`DEFAULT_SETTLE_DELAY`].
    settle_delay: Duration,
}

impl Charges {
    /// Operations that settle abandoned pending payments after [`DEFAULT_SETTLE_DELAY`].
    pub fn new(payments: Repository, processor: Arc<dyn PaymentProcessor>) -> Self {
        Self { payments, processor, settle_delay: DEFAULT_SETTLE_DELAY }
    }

    /// Changes how long a pending payment must be left alone before `payment_for_order`
    /// settles it by a lookup at the processor. Tests use zero; in production it must outlast
    /// any single processor call.
    #[must_use]
    pub fn with_settle_delay(mut self, settle_delay: Duration) -> Self {
        self.settle_delay = settle_delay;
        self
    }

    /// Charges an order at most once; see the module documentation for how.
    pub async fn charge(&self, input: ChargeInput) -> Result<PaymentRow> {
        for _ in 0..CHARGE_ROUNDS {
            let (live, keyed) = self.payments.live_and_keyed(input.order_id, input.idempotency_key.as_deref()).await?;
            if let Some(live) = live {
                match live.status()? {
                    PaymentStatus::Captured | PaymentStatus::Refunded => {
                        tracing::info!(payment_id = %live.id, status = %live.status, "order already paid; nothing charged");
                        return Ok(live);
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
            if let Some(earlier) = keyed {
                if earlier.order_id != input.order_id.to_string()
                    || earlier.amount_minor != input.amount.amount_minor
                    || earlier.currency != input.amount.currency.as_str()
                {
                    return Err(PaymentsError::IdempotencyKeyReused);
                }
                // A replay of a declined charge answers the decline again; anything else became
                // live since we looked, and the next round deals with it.
                if earlier.status()? == PaymentStatus::Declined {
                    return Ok(earlier);
                }
                continue;
            }
            match self.payments.insert_pending(&input).await {
                // Just written pending, touched now: claimed already, as `settle` would claim it.
                Ok(payment) => return self.ask_processor(payment, &input.card).await,
                // Another charge of this order (or with this key) got in first; look again.
                Err(error) if is_unique_violation(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(PaymentsError::ChargeInProgress)
    }

    /// Refunds the captured payment of an order, once.
    pub async fn refund(&self, input: RefundInput) -> Result<PaymentRow> {
        let payment = self.payments.live_payment(input.order_id).await?.ok_or(PaymentsError::NothingToRefund)?;
        match payment.status()? {
            PaymentStatus::Refunded => return Ok(payment),
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
        self.payments.record_refund(&payment, &input.reason, &reference).await?;
        tracing::info!(payment_id = %payment.id, "payment refunded");
        self.payments.payment_by_id(&payment.id).await
    }

    /// The payment that stands for the order: the live one if any, else the latest decline.
    /// A pending one left alone for the settle delay is first settled by a lookup at the
    /// processor (the caller may never have the card again to charge it), see the module docs.
    pub async fn payment_for_order(&self, order_id: OrderId) -> Result<PaymentRow> {
        let payment = self.payments.standing_payment(order_id).await?.ok_or(PaymentsError::NeverCharged)?;
        if payment.status()? != PaymentStatus::Pending {
            return Ok(payment);
        }
        let settle_delay_ms = i64::try_from(self.settle_delay.as_millis()).unwrap_or(i64::MAX);
        let stale_before = now_ms().saturating_sub(settle_delay_ms);
        if payment.last_activity_at() > stale_before {
            return Ok(payment);
        }
        self.settle_by_lookup(&payment, stale_before).await?;
        // Settled by us, by a concurrent charge, or still pending: answer whichever it is now.
        self.payments.standing_payment(order_id).await?.ok_or(PaymentsError::NeverCharged)
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
            let declined = self.payments.decline_untouched(&payment.id, PROCESSING_ERROR, stale_before).await?;
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
        self.payments
            .record_attempt(
                &payment.id,
                AttemptKind::Charge,
                &payment.idempotency_key,
                recorded,
                Some(format!("lookup: {detail}")),
            )
            .await?;
        // A verdict is final whoever stores it; a concurrent charge that stored it first is left alone.
        let stored = self.payments.store_verdict(&payment.id, status, reference, decline_code).await?;
        if stored {
            tracing::info!(status = status.as_str(), "pending payment settled by a processor lookup");
        } else {
            tracing::info!("pending payment settled by a charge meanwhile; left as it is");
        }
        Ok(())
    }

    /// Asks the processor how a pending payment ends, with the payment's own key, and stores
    /// the answer. Whoever stores first wins; everyone returns what was stored.
    async fn settle(&self, payment: PaymentRow, card: &Card) -> Result<PaymentRow> {
        if !self.payments.claim_pending(&payment.id).await? {
            // Settled since we looked, possibly declined by a lookup that found no charge under
            // its key: charging with that key now could move money for a declined payment.
            return self.payments.payment_by_id(&payment.id).await;
        }
        self.ask_processor(payment, card).await
    }

    /// The rest of [`Self::settle`], for a pending payment this charge has claimed.
    async fn ask_processor(&self, payment: PaymentRow, card: &Card) -> Result<PaymentRow> {
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
        let stored = self.payments.store_verdict(&payment.id, status, reference, decline_code).await?;
        let settled = self.payments.payment_by_id(&payment.id).await?;
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
            self.payments.record_attempt(payment_id, kind, idempotency_key, outcome, detail).await?;
            match (&answer, backoff.next()) {
                (Err(ProcessorError::Transient(reason)), Some(delay)) => {
                    tracing::warn!(%payment_id, %reason, ?delay, "transient processor failure; retrying");
                    tokio::time::sleep(delay).await;
                }
                _ => return Ok(answer),
            }
        }
    }
}
