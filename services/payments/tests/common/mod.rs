//! What the payments tests share: a payments service over a fresh database of either backend
//! (a temporary SQLite file, or a PostgreSQL database dropped afterwards), test processors that
//! refuse or fail, and request builders.

// Each test binary uses a different part of this module; an unwrap or panic is a failed assertion.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub use std::{sync::Arc, time::Duration};

pub use async_trait::async_trait;
pub use eventhive_domain::{Currency, OrderId};
pub use eventhive_payments::{
    Application, Card as ParsedCard, ChargeCommand, ChargeOutcome, MIGRATIONS, PaymentProcessor, PaymentsError,
    PaymentsService, ProcessorError, RefundCommand, SERVICE, SimulatedProcessor, test_cards,
};
pub use eventhive_platform::{
    Context, Database, Problem, Secrets, Service, Settings, shutdown::CancellationToken, storage::now_ms, telemetry,
};
pub use eventhive_proto::{
    common::Money,
    payments::{
        Card, ChargeRequest, GetPaymentForOrderRequest, Payment, RefundRequest, payments_client::PaymentsClient,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` as two tests, `sqlite::<name>` and `postgres::<name>`.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::common::Backend::Sqlite).await
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
                    super::$test(super::common::Backend::Postgres).await
                }
            )*
        }
    };
}

pub fn database_url() -> String {
    eventhive_test_infra::database_url()
}

/// Settings for a database of the test's own: a SQLite file in `data_dir`, or a uniquely
/// named PostgreSQL database.
pub fn test_settings(backend: Backend, data_dir: &tempfile::TempDir) -> Settings {
    let mut settings = Settings {
        data_dir: data_dir.path().to_owned(),
        secret_key: Some(eventhive_platform::Secrets::new_key_text().unwrap().into()),
        ..Settings::default()
    };
    if backend == Backend::Postgres {
        settings.database_url = Some(database_url());
        settings.database_prefix = format!("eh_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    }
    settings
}

/// Drops the test's PostgreSQL database when the test ends, passed or failed.
pub struct DropDatabase(pub Settings);

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
pub struct TestPayments {
    pub service: Arc<PaymentsService>,
    pub db: Database,
    _drop_database: DropDatabase,
    /// Keeps the SQLite file alive as long as the test.
    _data_dir: tempfile::TempDir,
}

impl TestPayments {
    pub async fn new(backend: Backend) -> Self {
        Self::with_processor_settings(backend, Duration::ZERO, 0.0).await
    }

    /// With the simulated processor slowed down by `latency` and failing `failure_rate` of its calls.
    pub async fn with_processor_settings(backend: Backend, latency: Duration, failure_rate: f64) -> Self {
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
    pub fn with_processor(&self, processor: Arc<dyn PaymentProcessor>) -> PaymentsService {
        PaymentsService::new(self.db.clone(), processor)
    }

    pub fn simulated_processor(&self) -> Arc<dyn PaymentProcessor> {
        Arc::new(SimulatedProcessor::new(self.db.clone(), Duration::ZERO, 0.0))
    }

    /// The same database behind `processor`, settling pending payments by lookup without delay.
    pub fn settling_with(&self, processor: Arc<dyn PaymentProcessor>) -> PaymentsService {
        self.with_processor(processor).with_settle_delay(Duration::ZERO)
    }

    /// A processor outage: every call fails transiently. With `answers_lost` the charges still
    /// reach the processor, which decides them; only its answers are lost on the way back.
    pub fn outage(&self, answers_lost: bool) -> Arc<dyn PaymentProcessor> {
        Arc::new(Outage { processor: SimulatedProcessor::new(self.db.clone(), Duration::ZERO, 0.0), answers_lost })
    }

    /// Moves a payment's last activity `by` into the past, as if nobody had touched it since.
    pub async fn age(&self, payment_id: &str, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap();
        for sql in [
            "UPDATE payments SET updated_at = updated_at - $1 WHERE id = $2",
            "UPDATE payment_attempts SET created_at = created_at - $1 WHERE payment_id = $2",
        ] {
            sqlx::query(sql).bind(ms).bind(payment_id).execute(self.db.pool()).await.unwrap();
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(self.db.pool()).await.unwrap()
    }

    pub async fn count_for(&self, sql: &str, order_id: &str) -> i64 {
        sqlx::query_scalar(sql).bind(order_id).fetch_one(self.db.pool()).await.unwrap()
    }

    /// Captures at the simulated processor, over the whole database.
    pub async fn processor_captures(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM simulated_processor_charges WHERE kind = 'charge' AND outcome = 'captured'")
            .await
    }

    pub async fn captured_payments(&self, order_id: &str) -> i64 {
        self.count_for("SELECT COUNT(*) FROM payments WHERE order_id = $1 AND status = 'captured'", order_id).await
    }

    pub async fn charge(&self, order_id: &str, number: &str, key: &str) -> Payment {
        self.service.charge(charge_request(order_id, number, key)).await.unwrap()
    }

    pub async fn attempt_outcomes(&self, payment_id: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT outcome FROM payment_attempts WHERE payment_id = $1 ORDER BY attempt")
            .bind(payment_id)
            .fetch_all(self.db.pool())
            .await
            .unwrap()
    }
}

pub fn new_order() -> String {
    OrderId::new().to_string()
}

pub fn card(number: &str) -> Card {
    Card { number: number.into(), exp_month: 12, exp_year: 2099, cvc: "123".into() }
}

pub fn charge_request(order_id: &str, number: &str, key: &str) -> ChargeRequest {
    ChargeRequest {
        order_id: order_id.into(),
        amount: Some(Money { amount_minor: 4200, currency: "EUR".into() }),
        card: Some(card(number)),
        idempotency_key: key.into(),
    }
}

pub fn refund_request(order_id: &str) -> RefundRequest {
    RefundRequest { order_id: order_id.into(), reason: "event cancelled".into() }
}

pub fn fields(error: PaymentsError) -> Vec<String> {
    match error {
        PaymentsError::Invalid(fields) => fields.into_iter().map(|f| f.field).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

impl TestPayments {
    pub async fn charge_error(&self, order: &str) -> PaymentsError {
        self.service.charge(charge_request(order, test_cards::SUCCEEDS, "")).await.unwrap_err()
    }
}

/// A processor that refuses every call outright.
pub struct RefusingProcessor;

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
pub struct Outage {
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

pub fn get(order: &str) -> GetPaymentForOrderRequest {
    GetPaymentForOrderRequest { order_id: order.into() }
}
