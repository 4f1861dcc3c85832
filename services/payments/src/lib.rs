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

use eventhive_platform::{Database, Settings, grpc, shutdown::CancellationToken};
use eventhive_proto::payments::payments_server::PaymentsServer;
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

/// A built payments service, bound to its listener, ready to run.
pub struct Application {
    listener: TcpListener,
    service: service::PaymentsService,
    db: Database,
}

impl Application {
    /// Connects and migrates the database and sets up the simulated processor from
    /// `payment_latency_ms` and `payment_failure_rate`. `listener` may be on port 0.
    pub async fn build(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let db = Database::connect(settings, SERVICE).await?;
        db.migrate(&MIGRATIONS).await?;
        let processor = processor::SimulatedProcessor::new(
            db.clone(),
            Duration::from_millis(settings.payment_latency_ms),
            settings.payment_failure_rate,
        );
        let service = service::PaymentsService::new(db.clone(), Arc::new(processor))
            .with_settle_delay(Duration::from_millis(settings.payment_settle_delay_ms));
        Ok(Self { listener, service, db })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let health = tonic_health::server::health_reporter();
        let result = grpc::serve(SERVICE, self.listener, PaymentsServer::new(self.service), health, shutdown).await;
        self.db.close().await;
        result
    }
}
