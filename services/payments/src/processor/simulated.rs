//! The simulated card processor that ships: it knows the documented test cards, declines
//! numbers that fail the Luhn check and expired cards, and can be slowed down or made to fail
//! transiently, for development, tests and benchmarks.

use std::time::Duration;

use async_trait::async_trait;
use eventhive_platform::Database;
use rand::Rng;

use super::{
    ChargeCommand, ChargeOutcome, PaymentProcessor, ProcessorError, RefundCommand,
    ledger::{Entry, Ledger, LedgerRow},
    test_cards,
};
use crate::domain::{Card, luhn_valid};

/// A processor simulated in-process, for development, tests and benchmarks. Its ledger is the
/// `simulated_processor_charges` table: the state of the pretend external processor, durable so
/// that a payments crash and a retry with the same key never charge twice "at the processor".
/// Payments' own code never reads that table; only this type does.
#[derive(Debug, Clone)]
pub struct SimulatedProcessor {
    ledger: Ledger,
    /// Added to every call, to make benchmarks feel a real network round trip.
    latency: Duration,
    /// Share of calls (0.0 to 1.0) that fail with [`ProcessorError::Transient`]: half of them
    /// before reaching the ledger (the request was lost), half after (the answer was lost), so
    /// that both kinds of retry are exercised.
    failure_rate: f64,
}

/// How a failure injected by `failure_rate` strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InjectedFailure {
    None,
    RequestLost,
    ResponseLost,
}

/// A decision that has not been written to the ledger yet.
struct Verdict {
    outcome: &'static str,
    reference: Option<String>,
    decline_code: Option<&'static str>,
}

impl Verdict {
    /// The verdict as the ledger stores it.
    fn entry(&self) -> Entry<'_> {
        Entry { outcome: self.outcome, reference: self.reference.as_deref(), decline_code: self.decline_code }
    }

    fn answer(self) -> Result<ChargeOutcome, ProcessorError> {
        match (self.outcome, self.reference, self.decline_code) {
            ("captured", Some(reference), _) => Ok(ChargeOutcome::Captured { reference }),
            ("declined", _, Some(code)) => Ok(ChargeOutcome::Declined { code: code.to_owned() }),
            _ => Err(ProcessorError::Transient("simulated: this test card fails its first call".into())),
        }
    }
}

/// How many times a call re-reads the ledger after losing a race on the same key.
const LEDGER_ROUNDS: usize = 3;

impl SimulatedProcessor {
    pub fn new(db: Database, latency: Duration, failure_rate: f64) -> Self {
        let failure_rate = if failure_rate.is_finite() { failure_rate.clamp(0.0, 1.0) } else { 0.0 };
        Self { ledger: Ledger::new(db), latency, failure_rate }
    }

    fn roll_failure(&self) -> InjectedFailure {
        if self.failure_rate <= 0.0 {
            return InjectedFailure::None;
        }
        let roll: f64 = rand::thread_rng().r#gen();
        if roll >= self.failure_rate {
            InjectedFailure::None
        } else if roll < self.failure_rate / 2.0 {
            InjectedFailure::RequestLost
        } else {
            InjectedFailure::ResponseLost
        }
    }

    /// The network in front of the processor: latency, and sometimes a lost request.
    async fn arrive(&self) -> Result<InjectedFailure, ProcessorError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        match self.roll_failure() {
            InjectedFailure::RequestLost => Err(ProcessorError::Transient("simulated: the request was lost".into())),
            other => Ok(other),
        }
    }

    /// What the processor decides for a card it is actually charging now.
    fn decide(card: &Card) -> Verdict {
        let decline = |code| Verdict { outcome: "declined", reference: None, decline_code: Some(code) };
        if !luhn_valid(card.number()) {
            return decline("incorrect_number");
        }
        if card.is_expired_at(time::OffsetDateTime::now_utc()) {
            return decline("expired_card");
        }
        match card.number() {
            test_cards::DECLINED => decline("card_declined"),
            test_cards::INSUFFICIENT_FUNDS => decline("insufficient_funds"),
            _ => Verdict {
                outcome: "captured",
                reference: Some(format!("ch_sim_{}", uuid::Uuid::now_v7().simple())),
                decline_code: None,
            },
        }
    }

    fn recorded_charge(row: LedgerRow) -> Result<ChargeOutcome, ProcessorError> {
        match (row.outcome.as_str(), row.reference, row.decline_code) {
            ("captured", Some(reference), _) => Ok(ChargeOutcome::Captured { reference }),
            ("declined", _, Some(code)) => Ok(ChargeOutcome::Declined { code }),
            (outcome, ..) => Err(ProcessorError::Permanent(format!("ledger entry in state {outcome}"))),
        }
    }

    async fn charge_in_ledger(&self, command: &ChargeCommand) -> anyhow::Result<Result<ChargeOutcome, ProcessorError>> {
        for _ in 0..LEDGER_ROUNDS {
            match self.ledger.row(&command.idempotency_key).await? {
                Some(row) => {
                    if row.kind != "charge"
                        || row.amount_minor != command.amount_minor
                        || row.currency != command.currency.as_str()
                    {
                        return Ok(Err(ProcessorError::Permanent(
                            "idempotency key reused with different parameters".into(),
                        )));
                    }
                    if row.outcome != "transient_error" {
                        return Ok(Self::recorded_charge(row));
                    }
                    // The call after a served transient failure goes through.
                    let verdict = Self::decide(&command.card);
                    if self.ledger.settle_transient(&command.idempotency_key, &verdict.entry()).await? {
                        return Ok(verdict.answer());
                    }
                    // A concurrent call with this key settled it first: the next round answers
                    // what that call decided.
                }
                None => {
                    let first_call_fails = command.card.number() == test_cards::FAILS_FIRST_CALL;
                    let verdict = if first_call_fails {
                        Verdict { outcome: "transient_error", reference: None, decline_code: None }
                    } else {
                        Self::decide(&command.card)
                    };
                    if self.ledger.insert_charge(command, &verdict.entry(), i64::from(first_call_fails)).await? {
                        return Ok(verdict.answer());
                    }
                    // A concurrent call with this key recorded it first: the next round answers
                    // what that call decided.
                }
            }
        }
        Ok(Err(ProcessorError::Transient("too much contention on one idempotency key".into())))
    }

    async fn refund_in_ledger(&self, command: &RefundCommand) -> anyhow::Result<Result<String, ProcessorError>> {
        for _ in 0..LEDGER_ROUNDS {
            if let Some(row) = self.ledger.row(&command.idempotency_key).await? {
                return Ok(match (row.kind.as_str(), row.charge_reference, row.reference) {
                    ("refund", Some(charge), Some(reference))
                        if charge == command.charge_reference && row.amount_minor == command.amount_minor =>
                    {
                        Ok(reference)
                    }
                    _ => Err(ProcessorError::Permanent("idempotency key reused with different parameters".into())),
                });
            }
            let Some((charged, currency)) = self.ledger.captured_charge(&command.charge_reference).await? else {
                return Ok(Err(ProcessorError::Permanent(format!("no captured charge {}", command.charge_reference))));
            };
            let refunded = self.ledger.refunded(&command.charge_reference).await?;
            if currency != command.currency.as_str()
                || command.amount_minor <= 0
                || refunded.saturating_add(command.amount_minor) > charged
            {
                return Ok(Err(ProcessorError::Permanent("the refund exceeds what is left of the charge".into())));
            }
            let reference = format!("re_sim_{}", uuid::Uuid::now_v7().simple());
            if self.ledger.insert_refund(command, &reference).await? {
                return Ok(Ok(reference));
            }
        }
        Ok(Err(ProcessorError::Transient("too much contention on one idempotency key".into())))
    }
}

/// The processor's own storage failing is, to its caller, the processor being unavailable.
fn ledger_failure(error: anyhow::Error) -> ProcessorError {
    tracing::warn!(error = format!("{error:#}"), "simulated processor ledger failed");
    ProcessorError::Transient("the simulated processor failed internally".into())
}

#[async_trait]
impl PaymentProcessor for SimulatedProcessor {
    async fn charge(&self, command: ChargeCommand) -> Result<ChargeOutcome, ProcessorError> {
        let failure = self.arrive().await?;
        let outcome = self.charge_in_ledger(&command).await.map_err(ledger_failure)?;
        if failure == InjectedFailure::ResponseLost {
            return Err(ProcessorError::Transient("simulated: the answer was lost".into()));
        }
        outcome
    }

    async fn refund(&self, command: RefundCommand) -> Result<String, ProcessorError> {
        let failure = self.arrive().await?;
        let outcome = self.refund_in_ledger(&command).await.map_err(ledger_failure)?;
        if failure == InjectedFailure::ResponseLost {
            return Err(ProcessorError::Transient("simulated: the answer was lost".into()));
        }
        outcome
    }

    /// Reads the ledger only: a lookup never decides, settles or charges anything, so a charge
    /// that only failed transiently stays one that the next charge call with its key decides.
    async fn lookup(&self, idempotency_key: &str) -> Result<Option<ChargeOutcome>, ProcessorError> {
        let failure = self.arrive().await?;
        let row = self.ledger.row(idempotency_key).await.map_err(ledger_failure)?;
        if failure == InjectedFailure::ResponseLost {
            return Err(ProcessorError::Transient("simulated: the answer was lost".into()));
        }
        match row {
            None => Ok(None),
            Some(row) if row.kind != "charge" => {
                Err(ProcessorError::Permanent("the idempotency key belongs to a refund, not a charge".into()))
            }
            Some(row) if row.outcome == "transient_error" => Ok(None),
            Some(row) => Self::recorded_charge(row).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use eventhive_domain::Currency;
    use eventhive_platform::Settings;
    use eventhive_proto::payments as wire;

    use super::*;

    struct Ledger {
        processor: SimulatedProcessor,
        db: Database,
        _dir: tempfile::TempDir,
    }

    async fn ledger(failure_rate: f64) -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings { data_dir: dir.path().to_owned(), ..Settings::default() };
        let db = Database::connect(&settings, crate::SERVICE).await.unwrap();
        db.migrate(&crate::MIGRATIONS).await.unwrap();
        Ledger { processor: SimulatedProcessor::new(db.clone(), Duration::ZERO, failure_rate), db, _dir: dir }
    }

    fn card(number: &str) -> Card {
        Card::parse(&wire::Card { number: number.into(), exp_month: 12, exp_year: 2099, cvc: "123".into() }).unwrap()
    }

    fn charge(key: &str, card: Card) -> ChargeCommand {
        ChargeCommand {
            idempotency_key: key.into(),
            amount_minor: 2500,
            currency: Currency::parse("EUR").unwrap(),
            card,
        }
    }

    async fn ledger_rows(db: &Database) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM simulated_processor_charges").fetch_one(db.pool()).await.unwrap()
    }

    fn reference(outcome: Result<ChargeOutcome, ProcessorError>) -> String {
        match outcome {
            Ok(ChargeOutcome::Captured { reference }) => reference,
            other => panic!("expected a capture, got {other:?}"),
        }
    }

    fn declined(code: &str) -> Result<ChargeOutcome, ProcessorError> {
        Ok(ChargeOutcome::Declined { code: code.into() })
    }

    #[tokio::test]
    async fn the_success_card_and_any_luhn_valid_card_are_captured() {
        let l = ledger(0.0).await;
        let first = reference(l.processor.charge(charge("a", card(test_cards::SUCCEEDS))).await);
        assert!(first.starts_with("ch_sim_"));
        reference(l.processor.charge(charge("b", card("5555555555554444"))).await);
    }

    #[tokio::test]
    async fn the_decline_cards_are_declined_with_their_codes() {
        let l = ledger(0.0).await;
        assert_eq!(l.processor.charge(charge("a", card(test_cards::DECLINED))).await, declined("card_declined"));
        assert_eq!(
            l.processor.charge(charge("b", card(test_cards::INSUFFICIENT_FUNDS))).await,
            declined("insufficient_funds")
        );
    }

    #[tokio::test]
    async fn an_expired_card_is_declined() {
        let l = ledger(0.0).await;
        let expired = Card::parse(&wire::Card {
            number: test_cards::SUCCEEDS.into(),
            exp_month: 1,
            exp_year: 2020,
            cvc: "123".into(),
        })
        .unwrap();
        assert_eq!(l.processor.charge(charge("a", expired)).await, declined("expired_card"));
    }

    #[tokio::test]
    async fn the_transient_card_fails_its_first_call_per_key_then_captures() {
        let l = ledger(0.0).await;
        let first = l.processor.charge(charge("a", card(test_cards::FAILS_FIRST_CALL))).await;
        assert!(matches!(first, Err(ProcessorError::Transient(_))), "{first:?}");
        let captured = reference(l.processor.charge(charge("a", card(test_cards::FAILS_FIRST_CALL))).await);
        let again = reference(l.processor.charge(charge("a", card(test_cards::FAILS_FIRST_CALL))).await);
        assert_eq!(captured, again);
        let served: i64 = sqlx::query_scalar(
            "SELECT transient_failures_served FROM simulated_processor_charges WHERE idempotency_key = 'a'",
        )
        .fetch_one(l.db.pool())
        .await
        .unwrap();
        assert_eq!(served, 1);
        // A new key fails its first call again.
        let other = l.processor.charge(charge("b", card(test_cards::FAILS_FIRST_CALL))).await;
        assert!(matches!(other, Err(ProcessorError::Transient(_))), "{other:?}");
    }

    #[tokio::test]
    async fn a_seen_key_returns_the_recorded_outcome_and_charges_nothing_new() {
        let l = ledger(0.0).await;
        let first = reference(l.processor.charge(charge("a", card(test_cards::SUCCEEDS))).await);
        let second = reference(l.processor.charge(charge("a", card(test_cards::SUCCEEDS))).await);
        assert_eq!(first, second);
        assert_eq!(l.processor.charge(charge("d", card(test_cards::DECLINED))).await, declined("card_declined"));
        // Even a good card cannot turn a recorded decline into a charge under the same key.
        assert_eq!(l.processor.charge(charge("d", card(test_cards::SUCCEEDS))).await, declined("card_declined"));
        assert_eq!(ledger_rows(&l.db).await, 2);
    }

    #[tokio::test]
    async fn a_key_reused_for_another_amount_is_refused() {
        let l = ledger(0.0).await;
        reference(l.processor.charge(charge("a", card(test_cards::SUCCEEDS))).await);
        let other_amount = ChargeCommand { amount_minor: 1, ..charge("a", card(test_cards::SUCCEEDS)) };
        assert!(matches!(l.processor.charge(other_amount).await, Err(ProcessorError::Permanent(_))));
    }

    #[tokio::test]
    async fn a_refund_is_idempotent_and_never_exceeds_the_charge() {
        let l = ledger(0.0).await;
        let charge_reference = reference(l.processor.charge(charge("a", card(test_cards::SUCCEEDS))).await);
        let refund = |key: &str| RefundCommand {
            idempotency_key: key.into(),
            charge_reference: charge_reference.clone(),
            amount_minor: 2500,
            currency: Currency::parse("EUR").unwrap(),
        };
        let first = l.processor.refund(refund("r1")).await.unwrap();
        assert!(first.starts_with("re_sim_"));
        assert_eq!(l.processor.refund(refund("r1")).await.unwrap(), first);
        assert!(matches!(l.processor.refund(refund("r2")).await, Err(ProcessorError::Permanent(_))));
        let unknown = RefundCommand { charge_reference: "ch_sim_nope".into(), ..refund("r3") };
        assert!(matches!(l.processor.refund(unknown).await, Err(ProcessorError::Permanent(_))));
    }

    async fn ledger_state(db: &Database) -> Vec<(String, String)> {
        sqlx::query_as("SELECT idempotency_key, outcome FROM simulated_processor_charges ORDER BY idempotency_key")
            .fetch_all(db.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_lookup_answers_what_was_decided_under_a_key() {
        let l = ledger(0.0).await;
        let captured = reference(l.processor.charge(charge("a", card(test_cards::SUCCEEDS))).await);
        l.processor.charge(charge("d", card(test_cards::INSUFFICIENT_FUNDS))).await.unwrap();
        assert_eq!(l.processor.lookup("a").await, Ok(Some(ChargeOutcome::Captured { reference: captured })));
        assert_eq!(
            l.processor.lookup("d").await,
            Ok(Some(ChargeOutcome::Declined { code: "insufficient_funds".into() }))
        );
    }

    #[tokio::test]
    async fn a_lookup_finds_nothing_where_no_money_moved_and_charges_nothing() {
        let l = ledger(0.0).await;
        assert_eq!(l.processor.lookup("never-sent").await, Ok(None));
        assert_eq!(ledger_rows(&l.db).await, 0, "looking up an unknown key records nothing");

        let failed = l.processor.charge(charge("t", card(test_cards::FAILS_FIRST_CALL))).await;
        assert!(matches!(failed, Err(ProcessorError::Transient(_))), "{failed:?}");
        let before = ledger_state(&l.db).await;
        assert_eq!(l.processor.lookup("t").await, Ok(None), "a transient failure moved no money");
        assert_eq!(l.processor.lookup("t").await, Ok(None));
        assert_eq!(ledger_state(&l.db).await, before, "a lookup decides nothing");
        // The next charge call with the key still decides it.
        let captured = reference(l.processor.charge(charge("t", card(test_cards::FAILS_FIRST_CALL))).await);
        assert_eq!(l.processor.lookup("t").await, Ok(Some(ChargeOutcome::Captured { reference: captured })));
    }

    #[tokio::test]
    async fn a_lookup_of_a_refund_key_is_refused() {
        let l = ledger(0.0).await;
        let charge_reference = reference(l.processor.charge(charge("a", card(test_cards::SUCCEEDS))).await);
        let refund = RefundCommand {
            idempotency_key: "r".into(),
            charge_reference,
            amount_minor: 2500,
            currency: Currency::parse("EUR").unwrap(),
        };
        l.processor.refund(refund).await.unwrap();
        assert!(matches!(l.processor.lookup("r").await, Err(ProcessorError::Permanent(_))));
    }

    #[tokio::test]
    async fn with_a_failure_rate_of_one_every_lookup_fails_transiently() {
        let l = ledger(0.0).await;
        reference(l.processor.charge(charge("a", card(test_cards::SUCCEEDS))).await);
        let failing = SimulatedProcessor::new(l.db.clone(), Duration::ZERO, 1.0);
        for _ in 0..20 {
            let answer = failing.lookup("a").await;
            assert!(matches!(answer, Err(ProcessorError::Transient(_))), "{answer:?}");
        }
        assert_eq!(ledger_rows(&l.db).await, 1);
    }

    #[tokio::test]
    async fn with_a_failure_rate_of_one_every_call_fails_transiently_but_at_most_one_charge_is_made() {
        let l = ledger(1.0).await;
        for _ in 0..20 {
            let outcome = l.processor.charge(charge("a", card(test_cards::SUCCEEDS))).await;
            assert!(matches!(outcome, Err(ProcessorError::Transient(_))), "{outcome:?}");
        }
        assert!(ledger_rows(&l.db).await <= 1);
    }
}
