//! The simulated processor's ledger, `simulated_processor_charges`: the state of the pretend
//! external processor. Every statement on that table is here; payments' own code never reads it.

use anyhow::Context;
use eventhive_platform::{Database, storage::now_ms};

use super::{ChargeCommand, RefundCommand};

/// One charge or refund the simulated processor recorded under an idempotency key.
#[derive(sqlx::FromRow)]
pub(super) struct LedgerRow {
    pub kind: String,
    pub amount_minor: i64,
    pub currency: String,
    pub outcome: String,
    pub reference: Option<String>,
    pub decline_code: Option<String>,
    pub charge_reference: Option<String>,
}

/// A verdict as the ledger stores it: `outcome` is `captured`, `declined` or `transient_error`.
pub(super) struct Entry<'a> {
    pub outcome: &'a str,
    pub reference: Option<&'a str>,
    pub decline_code: Option<&'a str>,
}

/// The ledger's storage.
#[derive(Debug, Clone)]
pub(super) struct Ledger {
    db: Database,
}

impl Ledger {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn row(&self, idempotency_key: &str) -> anyhow::Result<Option<LedgerRow>> {
        sqlx::query_as(
            "SELECT kind, amount_minor, currency, outcome, reference, decline_code, charge_reference \
             FROM simulated_processor_charges WHERE idempotency_key = $1",
        )
        .bind(idempotency_key)
        .fetch_optional(self.db.pool())
        .await
        .context("reading the simulated processor's ledger")
    }

    /// Decides a charge whose first call failed transiently; false if a concurrent call with the
    /// key decided it first.
    pub async fn settle_transient(&self, idempotency_key: &str, entry: &Entry<'_>) -> anyhow::Result<bool> {
        let settled = sqlx::query(
            "UPDATE simulated_processor_charges SET outcome = $1, reference = $2, decline_code = $3 \
             WHERE idempotency_key = $4 AND outcome = 'transient_error'",
        )
        .bind(entry.outcome)
        .bind(entry.reference)
        .bind(entry.decline_code)
        .bind(idempotency_key)
        .execute(self.db.pool())
        .await
        .context("settling a charge in the simulated processor's ledger")?;
        Ok(settled.rows_affected() == 1)
    }

    /// Records the first call with a charge's key; false if a concurrent call with the key
    /// recorded it first (the primary key makes the first call the only one that decides).
    pub async fn insert_charge(
        &self,
        command: &ChargeCommand,
        entry: &Entry<'_>,
        transient_failures_served: i64,
    ) -> anyhow::Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO simulated_processor_charges \
             (idempotency_key, kind, amount_minor, currency, card_last4, outcome, reference, decline_code, \
              transient_failures_served, created_at) \
             VALUES ($1, 'charge', $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&command.idempotency_key)
        .bind(command.amount_minor)
        .bind(command.currency.as_str())
        .bind(command.card.last4())
        .bind(entry.outcome)
        .bind(entry.reference)
        .bind(entry.decline_code)
        .bind(transient_failures_served)
        .bind(now_ms())
        .execute(self.db.pool())
        .await
        .context("recording a charge in the simulated processor's ledger")?;
        Ok(inserted.rows_affected() == 1)
    }

    /// The amount and currency of the captured charge `reference`.
    pub async fn captured_charge(&self, reference: &str) -> anyhow::Result<Option<(i64, String)>> {
        sqlx::query_as(
            "SELECT amount_minor, currency FROM simulated_processor_charges \
             WHERE kind = 'charge' AND outcome = 'captured' AND reference = $1",
        )
        .bind(reference)
        .fetch_optional(self.db.pool())
        .await
        .context("finding a charge in the simulated processor's ledger")
    }

    /// How much of the charge `reference` was refunded so far.
    pub async fn refunded(&self, charge_reference: &str) -> anyhow::Result<i64> {
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM simulated_processor_charges \
             WHERE kind = 'refund' AND charge_reference = $1",
        )
        .bind(charge_reference)
        .fetch_one(self.db.pool())
        .await
        .context("summing refunds in the simulated processor's ledger")
    }

    /// Records a refund under its key; false if a concurrent call with the key recorded one first.
    pub async fn insert_refund(&self, command: &RefundCommand, reference: &str) -> anyhow::Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO simulated_processor_charges \
             (idempotency_key, kind, amount_minor, currency, outcome, reference, charge_reference, created_at) \
             VALUES ($1, 'refund', $2, $3, 'refunded', $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&command.idempotency_key)
        .bind(command.amount_minor)
        .bind(command.currency.as_str())
        .bind(reference)
        .bind(&command.charge_reference)
        .bind(now_ms())
        .execute(self.db.pool())
        .await
        .context("recording a refund in the simulated processor's ledger")?;
        Ok(inserted.rows_affected() == 1)
    }
}
