//! Payments against a real database, on both backends (a temporary SQLite file, and a fresh
//! PostgreSQL database that is dropped afterwards): every test card, at most one capture per
//! order under replays, concurrency, crashes and processor outages, refunds, and recovery,
//! including the settlement of an abandoned pending payment by a lookup at the processor.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use eventhive_domain::{Currency, OrderId};
use eventhive_payments::{
    Application, Card as ParsedCard, ChargeCommand, ChargeOutcome, MIGRATIONS, PaymentProcessor, PaymentsError,
    PaymentsService, ProcessorError, RefundCommand, SERVICE, SimulatedProcessor, test_cards,
};
use eventhive_platform::{
    Context, Database, Problem, Service, Settings, shutdown::CancellationToken, storage::now_ms, telemetry,
};
use eventhive_proto::{
    common::Money,
    payments::{
        Card, ChargeRequest, GetPaymentForOrderRequest, Payment, RefundRequest, payments_client::PaymentsClient,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` as two tests, `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    if !eventhive_test_infra::run_infra_test() {
                        return;
                    }
                    super::$test(super::Backend::Postgres).await
                }
            )*
        }
    };
}

on_both_backends!(
    each_test_card_gets_its_answer,
    invalid_input_names_its_fields,
    a_replayed_charge_of_a_captured_order_charges_nothing_new,
    twenty_concurrent_charges_of_one_order_capture_exactly_once,
    the_transient_card_is_captured_on_the_second_attempt,
    a_declined_order_can_be_charged_later_with_a_good_card,
    a_replayed_decline_answers_the_same_decline,
    an_idempotency_key_belongs_to_one_charge,
    refunding_twice_refunds_once,
    only_a_captured_payment_is_refunded,
    the_payment_for_an_order_prefers_the_live_one,
    a_charge_interrupted_by_a_crash_is_settled_by_the_next_charge,
    a_processor_outage_leaves_the_payment_pending_until_it_is_settled,
    a_processor_refusal_declines_the_payment_without_blocking_the_order,
    a_payment_whose_answers_were_lost_is_settled_as_captured_by_a_lookup,
    a_payment_whose_requests_were_lost_is_declined_by_a_lookup,
    lookups_racing_charges_over_an_abandoned_payment_capture_at_most_once,
    the_application_serves_payments_over_grpc,
);

fn database_url() -> String {
    eventhive_test_infra::database_url()
}

/// Settings for a database of the test's own: a SQLite file in `data_dir`, or a uniquely
/// named PostgreSQL database.
fn test_settings(backend: Backend, data_dir: &tempfile::TempDir) -> Settings {
    let mut settings = Settings { data_dir: data_dir.path().to_owned(), ..Settings::default() };
    if backend == Backend::Postgres {
        settings.database_url = Some(database_url());
        settings.database_prefix = format!("eh_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    }
    settings
}

/// Drops the test's PostgreSQL database when the test ends, passed or failed.
struct DropDatabase(Settings);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let Some(url) = self.0.database_url.clone() else { return };
        let name = format!("{}_{SERVICE}", self.0.database_prefix);
        // Drop is not async and the test's runtime is going away: clean up on a thread of our own.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                let _ = eventhive_platform::storage::drop_postgres_database(&url, &name).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// The payments service on a database of its own.
struct TestPayments {
    service: Arc<PaymentsService>,
    db: Database,
    _drop_database: DropDatabase,
    /// Keeps the SQLite file alive as long as the test.
    _data_dir: tempfile::TempDir,
}

impl TestPayments {
    async fn new(backend: Backend) -> Self {
        Self::with_processor_settings(backend, Duration::ZERO, 0.0).await
    }

    /// With the simulated processor slowed down by `latency` and failing `failure_rate` of its calls.
    async fn with_processor_settings(backend: Backend, latency: Duration, failure_rate: f64) -> Self {
        telemetry::init_for_tests();
        let data_dir = tempfile::tempdir().unwrap();
        let settings = test_settings(backend, &data_dir);
        let drop_database = DropDatabase(settings.clone());
        let db = Database::connect(&settings, SERVICE).await.unwrap();
        db.migrate(&MIGRATIONS).await.unwrap();
        let processor = SimulatedProcessor::new(db.clone(), latency, failure_rate);
        let service = Arc::new(PaymentsService::new(db.clone(), Arc::new(processor)));
        Self { service, db, _drop_database: drop_database, _data_dir: data_dir }
    }

    /// The same database behind another processor, as after a restart.
    fn with_processor(&self, processor: Arc<dyn PaymentProcessor>) -> PaymentsService {
        PaymentsService::new(self.db.clone(), processor)
    }

    fn simulated_processor(&self) -> Arc<dyn PaymentProcessor> {
        Arc::new(SimulatedProcessor::new(self.db.clone(), Duration::ZERO, 0.0))
    }

    /// The same database behind `processor`, settling pending payments by lookup without delay.
    fn settling_with(&self, processor: Arc<dyn PaymentProcessor>) -> PaymentsService {
        self.with_processor(processor).with_settle_delay(Duration::ZERO)
    }

    /// A processor outage: every call fails transiently. With `answers_lost` the charges still
    /// reach the processor, which decides them; only its answers are lost on the way back.
    fn outage(&self, answers_lost: bool) -> Arc<dyn PaymentProcessor> {
        Arc::new(Outage { processor: SimulatedProcessor::new(self.db.clone(), Duration::ZERO, 0.0), answers_lost })
    }

    /// Moves a payment's last activity `by` into the past, as if nobody had touched it since.
    async fn age(&self, payment_id: &str, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap();
        for sql in [
            "UPDATE payments SET updated_at = updated_at - $1 WHERE id = $2",
            "UPDATE payment_attempts SET created_at = created_at - $1 WHERE payment_id = $2",
        ] {
            sqlx::query(sql).bind(ms).bind(payment_id).execute(self.db.pool()).await.unwrap();
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(self.db.pool()).await.unwrap()
    }

    async fn count_for(&self, sql: &str, order_id: &str) -> i64 {
        sqlx::query_scalar(sql).bind(order_id).fetch_one(self.db.pool()).await.unwrap()
    }

    /// Captures at the simulated processor, over the whole database.
    async fn processor_captures(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM simulated_processor_charges WHERE kind = 'charge' AND outcome = 'captured'")
            .await
    }

    async fn captured_payments(&self, order_id: &str) -> i64 {
        self.count_for("SELECT COUNT(*) FROM payments WHERE order_id = $1 AND status = 'captured'", order_id).await
    }

    async fn charge(&self, order_id: &str, number: &str, key: &str) -> Payment {
        self.service.charge(charge_request(order_id, number, key)).await.unwrap()
    }

    async fn attempt_outcomes(&self, payment_id: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT outcome FROM payment_attempts WHERE payment_id = $1 ORDER BY attempt")
            .bind(payment_id)
            .fetch_all(self.db.pool())
            .await
            .unwrap()
    }
}

fn new_order() -> String {
    OrderId::new().to_string()
}

fn card(number: &str) -> Card {
    Card { number: number.into(), exp_month: 12, exp_year: 2099, cvc: "123".into() }
}

fn charge_request(order_id: &str, number: &str, key: &str) -> ChargeRequest {
    ChargeRequest {
        order_id: order_id.into(),
        amount: Some(Money { amount_minor: 4200, currency: "EUR".into() }),
        card: Some(card(number)),
        idempotency_key: key.into(),
    }
}

fn refund_request(order_id: &str) -> RefundRequest {
    RefundRequest { order_id: order_id.into(), reason: "event cancelled".into() }
}

fn fields(error: PaymentsError) -> Vec<String> {
    match error {
        PaymentsError::Invalid(fields) => fields.into_iter().map(|f| f.field).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

async fn each_test_card_gets_its_answer(backend: Backend) {
    let app = TestPayments::new(backend).await;

    let order = new_order();
    let paid = app.charge(&order, test_cards::SUCCEEDS, "k-success").await;
    assert_eq!(paid.status, "captured");
    assert_eq!(paid.order_id, order);
    assert_eq!(paid.decline_code, "");
    assert_eq!((paid.card_last4.as_str(), paid.card_brand.as_str()), ("4242", "visa"));
    assert_eq!(paid.amount, Some(Money { amount_minor: 4200, currency: "EUR".into() }));
    assert_eq!(paid.attempts, 1);
    assert!(paid.created_at.ends_with('Z'), "{}", paid.created_at);

    for (number, code) in
        [(test_cards::DECLINED, "card_declined"), (test_cards::INSUFFICIENT_FUNDS, "insufficient_funds")]
    {
        let payment = app.charge(&new_order(), number, "").await;
        assert_eq!((payment.status.as_str(), payment.decline_code.as_str()), ("declined", code), "{number}");
        assert_eq!(payment.attempts, 1);
    }

    let transient = app.charge(&new_order(), test_cards::FAILS_FIRST_CALL, "").await;
    assert_eq!((transient.status.as_str(), transient.attempts), ("captured", 2));

    let mastercard = app.charge(&new_order(), "5555555555554444", "").await;
    assert_eq!((mastercard.status.as_str(), mastercard.card_brand.as_str()), ("captured", "mastercard"));

    let expired = ChargeRequest {
        card: Some(Card { exp_month: 1, exp_year: 2020, ..card(test_cards::SUCCEEDS) }),
        ..charge_request(&new_order(), test_cards::SUCCEEDS, "")
    };
    let payment = app.service.charge(expired).await.unwrap();
    assert_eq!((payment.status.as_str(), payment.decline_code.as_str()), ("declined", "expired_card"));

    // Neither the number nor the CVC is kept anywhere.
    let leaked =
        app.count("SELECT COUNT(*) FROM payments WHERE card_last4 LIKE '%424242%' OR card_brand LIKE '%424242%'").await;
    assert_eq!(leaked, 0);
}

async fn invalid_input_names_its_fields(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let request = ChargeRequest {
        order_id: "order-1".into(),
        amount: Some(Money { amount_minor: -5, currency: "XYZ".into() }),
        card: Some(Card { number: "4242424242424241".into(), exp_month: 0, exp_year: 1999, cvc: "1".into() }),
        idempotency_key: String::new(),
    };
    assert_eq!(
        fields(app.service.charge(request).await.unwrap_err()),
        [
            "order_id",
            "amount.amount_minor",
            "amount.currency",
            "card.number",
            "card.exp_month",
            "card.exp_year",
            "card.cvc"
        ]
    );
    let letters = charge_request(&new_order(), "4242abcd42424242", "");
    assert_eq!(fields(app.service.charge(letters).await.unwrap_err()), ["card.number"]);
    let refund = RefundRequest { order_id: "nope".into(), reason: String::new() };
    assert_eq!(fields(app.service.refund(refund).await.unwrap_err()), ["order_id"]);
    let get = GetPaymentForOrderRequest { order_id: String::new() };
    assert_eq!(fields(app.service.payment_for_order(get).await.unwrap_err()), ["order_id"]);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
}

async fn a_replayed_charge_of_a_captured_order_charges_nothing_new(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let first = app.charge(&order, test_cards::SUCCEEDS, "k1").await;
    let same_key = app.charge(&order, test_cards::SUCCEEDS, "k1").await;
    let other_key = app.charge(&order, test_cards::SUCCEEDS, "k2").await;
    let no_key = app.charge(&order, "5555555555554444", "").await;
    for replay in [&same_key, &other_key, &no_key] {
        assert_eq!(replay.id, first.id);
        assert_eq!(replay.status, "captured");
    }
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.captured_payments(&order).await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_attempts").await, 1, "replays call no processor");
}

async fn twenty_concurrent_charges_of_one_order_capture_exactly_once(backend: Backend) {
    // A slow processor keeps the first charge in flight while the others arrive.
    let app = TestPayments::with_processor_settings(backend, Duration::from_millis(20), 0.0).await;
    let order = new_order();
    let mut charges = tokio::task::JoinSet::new();
    for i in 0..20 {
        let service = app.service.clone();
        // Half of them replay one key, half bring their own.
        let key = if i % 2 == 0 { "shared".to_owned() } else { format!("own-{i}") };
        let request = charge_request(&order, test_cards::SUCCEEDS, &key);
        charges.spawn(async move { service.charge(request).await });
    }
    let mut ids = Vec::new();
    while let Some(answer) = charges.join_next().await {
        let payment = answer.unwrap().unwrap();
        assert_eq!(payment.status, "captured");
        ids.push(payment.id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "every caller sees the one payment");
    assert_eq!(app.captured_payments(&order).await, 1);
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
}

async fn the_transient_card_is_captured_on_the_second_attempt(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let payment = app.charge(&order, test_cards::FAILS_FIRST_CALL, "k-transient").await;
    assert_eq!(payment.status, "captured");
    assert_eq!(payment.attempts, 2);
    assert_eq!(app.attempt_outcomes(&payment.id).await, ["transient_error", "captured"]);
    let keys = app
        .count_for(
            "SELECT COUNT(*) FROM payment_attempts WHERE payment_id = $1 AND processor_idempotency_key = 'k-transient'",
            &payment.id,
        )
        .await;
    assert_eq!(keys, 2, "the retry asks with the same key");
    assert_eq!(app.processor_captures().await, 1);
}

async fn a_declined_order_can_be_charged_later_with_a_good_card(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let declined = app.charge(&order, test_cards::INSUFFICIENT_FUNDS, "attempt-1").await;
    assert_eq!(declined.status, "declined");
    let paid = app.charge(&order, test_cards::SUCCEEDS, "attempt-2").await;
    assert_eq!(paid.status, "captured");
    assert_ne!(paid.id, declined.id);
    assert_eq!(app.captured_payments(&order).await, 1);
    assert_eq!(app.count_for("SELECT COUNT(*) FROM payments WHERE order_id = $1", &order).await, 2);
    let current = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order }).await.unwrap();
    assert_eq!(current.id, paid.id);
}

async fn a_replayed_decline_answers_the_same_decline(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let declined = app.charge(&order, test_cards::DECLINED, "k-declined").await;
    let replay = app.charge(&order, test_cards::DECLINED, "k-declined").await;
    assert_eq!(replay.id, declined.id);
    assert_eq!(replay.decline_code, "card_declined");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_attempts").await, 1);
}

async fn an_idempotency_key_belongs_to_one_charge(backend: Backend) {
    let app = TestPayments::new(backend).await;
    app.charge(&new_order(), test_cards::DECLINED, "k-once").await;
    let error = app.service.charge(charge_request(&new_order(), test_cards::SUCCEEDS, "k-once")).await.unwrap_err();
    assert!(matches!(error, PaymentsError::IdempotencyKeyReused), "{error:?}");
    let order = new_order();
    app.charge(&order, test_cards::DECLINED, "k-amount").await;
    let other_amount = ChargeRequest {
        amount: Some(Money { amount_minor: 1, currency: "EUR".into() }),
        ..charge_request(&order, test_cards::SUCCEEDS, "k-amount")
    };
    let error = app.service.charge(other_amount).await.unwrap_err();
    assert!(matches!(error, PaymentsError::IdempotencyKeyReused), "{error:?}");
}

async fn refunding_twice_refunds_once(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let paid = app.charge(&order, test_cards::SUCCEEDS, "").await;
    let refunded = app.service.refund(refund_request(&order)).await.unwrap();
    assert_eq!((refunded.id.as_str(), refunded.status.as_str()), (paid.id.as_str(), "refunded"));
    let again = app.service.refund(refund_request(&order)).await.unwrap();
    assert_eq!((again.id.as_str(), again.status.as_str()), (paid.id.as_str(), "refunded"));
    assert_eq!(app.count("SELECT COUNT(*) FROM refunds").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM simulated_processor_charges WHERE kind = 'refund'").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_attempts WHERE kind = 'refund'").await, 1);
    let reason: String = sqlx::query_scalar("SELECT reason FROM refunds").fetch_one(app.db.pool()).await.unwrap();
    assert_eq!(reason, "event cancelled");
    // A refunded order is done: charging it again charges nothing.
    let charged_again = app.charge(&order, test_cards::SUCCEEDS, "").await;
    assert_eq!((charged_again.id.as_str(), charged_again.status.as_str()), (paid.id.as_str(), "refunded"));
    assert_eq!(app.processor_captures().await, 1);
}

async fn only_a_captured_payment_is_refunded(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let never_charged = app.service.refund(refund_request(&new_order())).await.unwrap_err();
    assert!(matches!(never_charged, PaymentsError::NothingToRefund), "{never_charged:?}");
    let order = new_order();
    app.charge(&order, test_cards::DECLINED, "").await;
    let declined = app.service.refund(refund_request(&order)).await.unwrap_err();
    assert!(matches!(declined, PaymentsError::NothingToRefund), "{declined:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM refunds").await, 0);
}

async fn the_payment_for_an_order_prefers_the_live_one(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let get = || app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order.clone() });
    assert!(matches!(get().await.unwrap_err(), PaymentsError::NeverCharged));
    let declined = app.charge(&order, test_cards::DECLINED, "").await;
    assert_eq!(get().await.unwrap(), declined);
    let paid = app.charge(&order, test_cards::SUCCEEDS, "").await;
    assert_eq!(get().await.unwrap(), paid);
    // A decline recorded after the capture (say, a row restored from elsewhere) does not hide it.
    sqlx::query(
        "INSERT INTO payments (id, order_id, amount_minor, currency, status, decline_code, card_last4, card_brand, \
         idempotency_key, created_at, updated_at) VALUES ($1, $2, 4200, 'EUR', 'declined', 'card_declined', '0002', \
         'visa', 'late-decline', $3, $4)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&order)
    .bind(now_ms() + 1000)
    .bind(now_ms() + 1000)
    .execute(app.db.pool())
    .await
    .unwrap();
    assert_eq!(get().await.unwrap().id, paid.id);
    // Another spelling of the same UUID is the same order.
    let upper = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order.to_uppercase() }).await;
    assert_eq!(upper.unwrap().id, paid.id);
}

/// A crash after the processor captured and before the payment row was updated: the row is
/// pending, the money moved. The next charge asks the processor with the payment's own key and
/// learns it was captured, instead of charging again.
async fn a_charge_interrupted_by_a_crash_is_settled_by_the_next_charge(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let payment_id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO payments (id, order_id, amount_minor, currency, status, card_last4, card_brand, \
         idempotency_key, created_at, updated_at) VALUES ($1, $2, 4200, 'EUR', 'pending', '4242', 'visa', \
         'crashed-key', $3, $4)",
    )
    .bind(&payment_id)
    .bind(&order)
    .bind(now_ms())
    .bind(now_ms())
    .execute(app.db.pool())
    .await
    .unwrap();
    let command = ChargeCommand {
        idempotency_key: "crashed-key".into(),
        amount_minor: 4200,
        currency: Currency::parse("EUR").unwrap(),
        card: ParsedCard::parse(&card(test_cards::SUCCEEDS)).unwrap(),
    };
    let at_processor = app.simulated_processor().charge(command).await.unwrap();
    assert!(matches!(at_processor, ChargeOutcome::Captured { .. }));

    let seen = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order.clone() }).await.unwrap();
    assert_eq!((seen.id.as_str(), seen.status.as_str()), (payment_id.as_str(), "pending"));
    // Refunding waits until the outcome is known.
    let refund = app.service.refund(refund_request(&order)).await.unwrap_err();
    assert!(matches!(refund, PaymentsError::ChargeInProgress), "{refund:?}");
    // A different card cannot settle it: that could charge a card the buyer did not pick for it.
    let error = app.service.charge(charge_request(&order, "5555555555554444", "after-crash")).await.unwrap_err();
    assert!(matches!(error, PaymentsError::ChargeInProgress), "{error:?}");

    let settled = app.charge(&order, test_cards::SUCCEEDS, "after-crash").await;
    assert_eq!((settled.id.as_str(), settled.status.as_str()), (payment_id.as_str(), "captured"));
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
}

async fn a_processor_outage_leaves_the_payment_pending_until_it_is_settled(backend: Backend) {
    let app = TestPayments::with_processor_settings(backend, Duration::ZERO, 1.0).await;
    let order = new_order();
    let error = app.charge_error(&order).await;
    assert!(matches!(error, PaymentsError::ProcessorUnavailable), "{error:?}");
    let pending = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order.clone() }).await.unwrap();
    assert_eq!(pending.status, "pending", "nobody knows whether money moved");
    assert_eq!(pending.attempts, 4, "one call and three retries");
    assert_eq!(app.attempt_outcomes(&pending.id).await, ["transient_error"; 4]);

    // The processor recovers (a restart with it healthy): the next charge settles the payment.
    let recovered = app.with_processor(app.simulated_processor());
    let paid = recovered.charge(charge_request(&order, test_cards::SUCCEEDS, "retry")).await.unwrap();
    assert_eq!((paid.id.as_str(), paid.status.as_str()), (pending.id.as_str(), "captured"));
    assert_eq!(paid.attempts, 5);
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.captured_payments(&order).await, 1);
}

impl TestPayments {
    async fn charge_error(&self, order: &str) -> PaymentsError {
        self.service.charge(charge_request(order, test_cards::SUCCEEDS, "")).await.unwrap_err()
    }
}

/// A processor that refuses every call outright.
struct RefusingProcessor;

#[async_trait]
impl PaymentProcessor for RefusingProcessor {
    async fn charge(&self, _command: ChargeCommand) -> Result<ChargeOutcome, ProcessorError> {
        Err(ProcessorError::Permanent("account suspended".into()))
    }

    async fn refund(&self, _command: RefundCommand) -> Result<String, ProcessorError> {
        Err(ProcessorError::Permanent("account suspended".into()))
    }

    async fn lookup(&self, _idempotency_key: &str) -> Result<Option<ChargeOutcome>, ProcessorError> {
        Err(ProcessorError::Permanent("account suspended".into()))
    }
}

/// See [`TestPayments::outage`].
struct Outage {
    processor: SimulatedProcessor,
    answers_lost: bool,
}

#[async_trait]
impl PaymentProcessor for Outage {
    async fn charge(&self, command: ChargeCommand) -> Result<ChargeOutcome, ProcessorError> {
        if self.answers_lost {
            let _ = self.processor.charge(command).await;
        }
        Err(ProcessorError::Transient("outage".into()))
    }

    async fn refund(&self, _command: RefundCommand) -> Result<String, ProcessorError> {
        Err(ProcessorError::Transient("outage".into()))
    }

    async fn lookup(&self, _idempotency_key: &str) -> Result<Option<ChargeOutcome>, ProcessorError> {
        Err(ProcessorError::Transient("outage".into()))
    }
}

async fn a_processor_refusal_declines_the_payment_without_blocking_the_order(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let refusing = app.with_processor(Arc::new(RefusingProcessor));
    let order = new_order();
    let error = refusing.charge(charge_request(&order, test_cards::SUCCEEDS, "")).await.unwrap_err();
    assert!(matches!(error, PaymentsError::ProcessorRefused), "{error:?}");
    let refused = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order.clone() }).await.unwrap();
    assert_eq!((refused.status.as_str(), refused.decline_code.as_str()), ("declined", "processing_error"));
    assert_eq!(refused.attempts, 1, "a permanent error is not retried");
    assert_eq!(app.attempt_outcomes(&refused.id).await, ["error"]);

    let paid = app.charge(&order, test_cards::SUCCEEDS, "").await;
    assert_eq!(paid.status, "captured");
    // A refund the processor refuses leaves the payment captured.
    let error = refusing.refund(refund_request(&order)).await.unwrap_err();
    assert!(matches!(error, PaymentsError::ProcessorRefused), "{error:?}");
    let current = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order }).await.unwrap();
    assert_eq!(current.status, "captured");
}

fn get(order: &str) -> GetPaymentForOrderRequest {
    GetPaymentForOrderRequest { order_id: order.into() }
}

/// The processor captured, but none of its answers came back: the saga that started the charge
/// crashed and never has the card again, only `GetPaymentForOrder`. Once the settle delay has
/// passed, that looks the payment's key up and stores the capture, and nothing is charged twice.
async fn a_payment_whose_answers_were_lost_is_settled_as_captured_by_a_lookup(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let error = app.with_processor(app.outage(true)).charge(charge_request(&order, test_cards::SUCCEEDS, "")).await;
    assert!(matches!(error, Err(PaymentsError::ProcessorUnavailable)), "{error:?}");
    assert_eq!(app.processor_captures().await, 1, "the processor took the money; we never heard");

    // While the outage lasts, the lookup fails too: the payment stays pending.
    let during_outage = app.settling_with(app.outage(true)).payment_for_order(get(&order)).await.unwrap();
    assert_eq!(during_outage.status, "pending");
    // Within the settle delay it is left alone, even with the processor back.
    let too_soon = app.with_processor(app.simulated_processor()).payment_for_order(get(&order)).await.unwrap();
    assert_eq!((too_soon.status.as_str(), too_soon.attempts), ("pending", 4));

    let settling = app.settling_with(app.simulated_processor());
    let settled = settling.payment_for_order(get(&order)).await.unwrap();
    assert_eq!((settled.id.as_str(), settled.status.as_str()), (during_outage.id.as_str(), "captured"));
    assert_eq!(settled.attempts, 5, "the lookup's verdict is recorded like a charge's");
    assert_eq!(
        app.attempt_outcomes(&settled.id).await,
        ["transient_error", "transient_error", "transient_error", "transient_error", "captured"]
    );
    let references = app
        .count_for(
            "SELECT COUNT(*) FROM payments p JOIN simulated_processor_charges c              ON c.idempotency_key = p.idempotency_key AND c.reference = p.processor_reference WHERE p.id = $1",
            &settled.id,
        )
        .await;
    assert_eq!(references, 1, "the processor's reference of the capture is stored");
    assert_eq!(settling.payment_for_order(get(&order)).await.unwrap(), settled, "asking again changes nothing");

    // Captured at most once: charging the order again charges nothing new, and it can be refunded.
    let again = app.charge(&order, test_cards::SUCCEEDS, "").await;
    assert_eq!((again.id.as_str(), again.status.as_str()), (settled.id.as_str(), "captured"));
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.captured_payments(&order).await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    let refunded = app.service.refund(refund_request(&order)).await.unwrap();
    assert_eq!(refunded.status, "refunded");
}

/// None of the charge requests reached the processor: a lookup finds no charge under the key, so
/// no money moved, and the payment is declined with `processing_error`, which frees the order.
async fn a_payment_whose_requests_were_lost_is_declined_by_a_lookup(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let error = app.with_processor(app.outage(false)).charge(charge_request(&order, test_cards::SUCCEEDS, "")).await;
    assert!(matches!(error, Err(PaymentsError::ProcessorUnavailable)), "{error:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM simulated_processor_charges").await, 0);

    // A lookup the processor refuses settles nothing either.
    let refused = app.settling_with(Arc::new(RefusingProcessor)).payment_for_order(get(&order)).await.unwrap();
    assert_eq!(refused.status, "pending");
    let too_soon = app.with_processor(app.simulated_processor()).payment_for_order(get(&order)).await.unwrap();
    assert_eq!(too_soon.status, "pending");

    let settling = app.settling_with(app.simulated_processor());
    let settled = settling.payment_for_order(get(&order)).await.unwrap();
    assert_eq!(
        (settled.id.as_str(), settled.status.as_str(), settled.decline_code.as_str()),
        (refused.id.as_str(), "declined", "processing_error")
    );
    assert_eq!(app.attempt_outcomes(&settled.id).await, ["transient_error"; 4], "finding nothing is no verdict");
    assert_eq!(app.processor_captures().await, 0);

    // The order is free again: it can be paid afresh, under a new key, once.
    let paid = app.charge(&order, test_cards::SUCCEEDS, "").await;
    assert_eq!(paid.status, "captured");
    assert_ne!(paid.id, settled.id);
    assert_eq!(settling.payment_for_order(get(&order)).await.unwrap().id, paid.id);
    let declined_key_charged = app
        .count_for(
            "SELECT COUNT(*) FROM simulated_processor_charges c JOIN payments p              ON p.idempotency_key = c.idempotency_key WHERE p.id = $1",
            &settled.id,
        )
        .await;
    assert_eq!(declined_key_charged, 0, "a declined payment's key is never charged");
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.captured_payments(&order).await, 1);
}

/// Sagas polling `GetPaymentForOrder` and buyers charging again, all at once over a payment an
/// outage left pending: whatever wins, the order is captured once, at the processor and here.
async fn lookups_racing_charges_over_an_abandoned_payment_capture_at_most_once(backend: Backend) {
    let app = TestPayments::new(backend).await;
    for (round, answers_lost) in [(1, true), (2, false)] {
        let order = new_order();
        let error =
            app.with_processor(app.outage(answers_lost)).charge(charge_request(&order, test_cards::SUCCEEDS, "")).await;
        assert!(matches!(error, Err(PaymentsError::ProcessorUnavailable)), "{error:?}");
        let pending = app.service.payment_for_order(get(&order)).await.unwrap();
        assert_eq!(pending.status, "pending");
        // Abandoned for longer than the default settle delay.
        app.age(&pending.id, Duration::from_secs(10)).await;

        // A slow processor widens the windows in which lookups and charges interleave.
        let slow = Arc::new(SimulatedProcessor::new(app.db.clone(), Duration::from_millis(5), 0.0));
        let racing = Arc::new(app.with_processor(slow));
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..16 {
            let service = racing.clone();
            let order = order.clone();
            calls.spawn(async move {
                if i % 2 == 0 {
                    service.charge(charge_request(&order, test_cards::SUCCEEDS, "")).await.map(Some)
                } else {
                    service.payment_for_order(get(&order)).await.map(|_| None)
                }
            });
        }
        while let Some(answer) = calls.join_next().await {
            if let Some(charged) = answer.unwrap().unwrap() {
                assert_eq!(charged.status, "captured", "round {round}");
            }
        }
        let standing = app.service.payment_for_order(get(&order)).await.unwrap();
        assert_eq!(standing.status, "captured", "round {round}");
        assert_eq!(app.captured_payments(&order).await, 1, "round {round}");
        assert_eq!(app.processor_captures().await, round, "round {round}: one capture per order at the processor");
        if answers_lost {
            assert_eq!(standing.id, pending.id, "the capture the processor made is the one that stands");
        }
    }
}

async fn the_application_serves_payments_over_grpc(backend: Backend) {
    telemetry::init_for_tests();
    let data_dir = tempfile::tempdir().unwrap();
    let settings = test_settings(backend, &data_dir);
    let _drop_database = DropDatabase(settings.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bus = Arc::new(eventhive_platform::bus::in_process::InProcessBus::new());
    let context = Context::of::<Application>(settings.clone(), listener, bus).await.unwrap();
    let app = Application::build(context).await.unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));

    let channel =
        eventhive_platform::grpc::channel(&format!("http://127.0.0.1:{port}"), Duration::from_secs(10)).unwrap();
    assert!(eventhive_platform::grpc::is_serving(channel.clone()).await);
    let mut client = PaymentsClient::new(channel);
    let order = new_order();
    let paid = client.charge(charge_request(&order, test_cards::SUCCEEDS, "")).await.unwrap().into_inner();
    assert_eq!(paid.status, "captured");
    let declined = client.charge(charge_request(&new_order(), test_cards::DECLINED, "")).await.unwrap().into_inner();
    assert_eq!(declined.decline_code, "card_declined", "a decline is an answer, not an error");

    let invalid = client.charge(charge_request(&order, "1234", "")).await.unwrap_err();
    let problem = Problem::from_status(&invalid);
    assert_eq!(problem.slug(), "validation");
    assert_eq!(problem.errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["card.number"]);
    assert!(!invalid.message().contains("1234"), "the number is not echoed back");

    let missing = client.get_payment_for_order(GetPaymentForOrderRequest { order_id: new_order() }).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(Problem::from_status(&missing).slug(), "not-found");
    let refunded = client.refund(refund_request(&order)).await.unwrap().into_inner();
    assert_eq!(refunded.status, "refunded");

    stop.cancel();
    running.await.unwrap().unwrap();
}
