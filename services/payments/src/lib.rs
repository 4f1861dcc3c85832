//! payments: charges a card for an order at most once, refunds it, and tells sagas where an
//! order's payment stands after a crash, settling a payment a processor outage left pending by
//! looking it up at the processor (no card needed). At most once is enforced by the database (one pending,
//! captured or refunded payment per order) together with idempotency keys sent to the card
//! processor, so retries, concurrent duplicates and crashes never charge twice. Every processor
//! call is recorded. The processor is behind a trait; a simulated one with the documented test
//! cards ships.
//!
//! # Layout
//! - [`service`]: the gRPC glue: parse a request, run one operation, answer the payment.
//! - [`charges`]: the operations (charge, refund, the payment for an order, settling a pending
//!   one) and how they keep a charge at most once.
//! - [`domain`]: parsed input: cards (never stored, never logged), charge and refund requests,
//!   and a payment's states.
//! - [`repository`]: every statement on `payments`, `payment_attempts` and `refunds`.
//! - [`processor`]: the [`PaymentProcessor`] trait and the [`SimulatedProcessor`], with its own
//!   ledger.
//! - [`error`]: payments' errors and their gRPC statuses.

mod charges;
mod domain;
mod error;
mod processor;
mod repository;
mod service;

use std::{sync::Arc, time::Duration};

use eventhive_platform::{
    Context, Database, Section, Service, async_trait::async_trait, config::ConfigError, grpc,
    shutdown::CancellationToken,
};
use eventhive_proto::payments::payments_server::PaymentsServer;
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

pub use domain::Card;
pub use error::PaymentsError;
pub use processor::{
    ChargeCommand, ChargeOutcome, PaymentProcessor, ProcessorError, RefundCommand, SimulatedProcessor, test_cards,
};
pub use service::PaymentsService;

/// The name of this service: its database, its logs, its gRPC health entry.
pub const SERVICE: &str = "payments";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Payments' settings section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentsSettings {
    /// The simulated card processor's latency per call, for benchmarks.
    pub payment_latency_ms: u64,
    /// The simulated card processor's share of calls failing transiently (0.0 to 1.0).
    pub payment_failure_rate: f64,
    /// How long a charge whose outcome is unknown is left alone before payments asks the
    /// processor how it ended. Must exceed one processor call's timeout.
    pub payment_settle_delay_ms: u64,
}

impl Default for PaymentsSettings {
    fn default() -> Self {
        Self { payment_latency_ms: 0, payment_failure_rate: 0.0, payment_settle_delay_ms: 5_000 }
    }
}

impl Section for PaymentsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.payment_failure_rate) {
            return Err(ConfigError::new("payment_failure_rate", "must be between 0.0 and 1.0"));
        }
        Ok(())
    }
}

/// A built payments service, bound to its listener, ready to run.
pub struct Application {
    listener: TcpListener,
    /// The deployment's secret key: the service token its gRPC server asks of callers.
    secrets: eventhive_platform::Secrets,
    service: service::PaymentsService,
    db: Database,
}

#[async_trait]
impl Service for Application {
    const NAME: &'static str = SERVICE;
    const DEFAULT_PORT: u16 = 50054;
    type Settings = PaymentsSettings;

    fn migrations() -> Option<&'static Migrator> {
        Some(&MIGRATIONS)
    }

    /// Sets up the simulated processor from `payment_latency_ms` and `payment_failure_rate`.
    async fn build(context: Context) -> anyhow::Result<Self> {
        let secrets = context.secrets()?;
        let settings: PaymentsSettings = context.section()?;
        let db = context.database()?;
        let processor = processor::SimulatedProcessor::new(
            db.clone(),
            Duration::from_millis(settings.payment_latency_ms),
            settings.payment_failure_rate,
        );
        let service = service::PaymentsService::new(db.clone(), Arc::new(processor))
            .with_settle_delay(Duration::from_millis(settings.payment_settle_delay_ms));
        Ok(Self { listener: context.listener, secrets, service, db })
    }

    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let health = tonic_health::server::health_reporter();
        let result =
            grpc::serve(SERVICE, self.listener, PaymentsServer::new(self.service), health, shutdown, &self.secrets)
                .await;
        self.db.close().await;
        result
    }
}
