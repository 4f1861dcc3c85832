//! The card processor payments talks to, behind [`PaymentProcessor`], and the simulated one
//! that ships ([`SimulatedProcessor`]).
//!
//! Every call carries an idempotency key, and a processor must answer a repeated key with what
//! it answered the first time without moving money again. That promise is what makes it safe
//! for payments to retry a call, or to settle a charge a crash interrupted, by simply asking
//! again. A processor also tells what it did under a key without being asked to charge
//! ([`PaymentProcessor::lookup`]), which settles a charge when the card is no longer at hand.
//!
//! - [`simulated`]: the [`SimulatedProcessor`] and how it decides;
//! - [`ledger`]: its ledger, the only code that touches `simulated_processor_charges`.

mod ledger;
mod simulated;

use async_trait::async_trait;
use eventhive_domain::Currency;

pub use simulated::SimulatedProcessor;

use crate::domain::Card;

/// Card numbers with a fixed behaviour, as in the public API documentation.
pub mod test_cards {
    /// Captured.
    pub const SUCCEEDS: &str = "4242424242424242";
    /// Declined with `card_declined`.
    pub const DECLINED: &str = "4000000000000002";
    /// Declined with `insufficient_funds`.
    pub const INSUFFICIENT_FUNDS: &str = "4000000000009995";
    /// The first call for each idempotency key fails transiently; asking again captures.
    pub const FAILS_FIRST_CALL: &str = "4000000000000119";
}

/// Ask the processor to take `amount_minor` from `card`.
#[derive(Debug, Clone)]
pub struct ChargeCommand {
    /// The same key always gets the same answer and moves money at most once.
    pub idempotency_key: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub card: Card,
}

/// Ask the processor to give back (part of) a charge.
#[derive(Debug, Clone)]
pub struct RefundCommand {
    /// The same key always gets the same answer and refunds at most once.
    pub idempotency_key: String,
    /// The processor's reference of the captured charge.
    pub charge_reference: String,
    pub amount_minor: i64,
    pub currency: Currency,
}

/// The processor's verdict on a charge. A decline is a verdict, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Captured {
        /// The processor's id of the charge, needed to refund it.
        reference: String,
    },
    Declined {
        /// Why: `card_declined`, `insufficient_funds`, `expired_card`, `incorrect_number`.
        code: String,
    },
}

/// A call that got no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    /// The processor could not answer this time (overloaded, unreachable, timed out). Whether
    /// the call took effect is unknown; asking again with the same key is safe and finds out.
    #[error("the processor is temporarily unavailable: {0}")]
    Transient(String),
    /// The processor refused the call itself (malformed, a key reused for something else);
    /// asking again will not help.
    #[error("the processor refused the call: {0}")]
    Permanent(String),
}

/// A card processor: Stripe, Adyen, or the simulation.
#[async_trait]
pub trait PaymentProcessor: Send + Sync {
    async fn charge(&self, command: ChargeCommand) -> Result<ChargeOutcome, ProcessorError>;

    /// Returns the processor's reference of the refund.
    async fn refund(&self, command: RefundCommand) -> Result<String, ProcessorError>;

    /// What the processor did with the charge made under `idempotency_key`, without charging
    /// anything (a real processor's "retrieve"): its verdict if it settled one, `None` if it never
    /// received a charge under that key or only failed it transiently, in which case it moved
    /// no money under that key.
    async fn lookup(&self, idempotency_key: &str) -> Result<Option<ChargeOutcome>, ProcessorError>;
}
