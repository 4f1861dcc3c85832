//! The engine: what every ticketing operation shares. The operations themselves live beside it,
//! one module per concern (`orders`, `purchase`, `tickets`, `sweeper`), each an `impl Engine`.

use std::time::Duration;

use eventhive_platform::{Database, outbox::OutboxRelay};
use eventhive_proto::payments::payments_client::PaymentsClient;
use tonic::transport::Channel;

use crate::{catalog_sync::CatalogSync, faults::Faults};

#[derive(Clone)]
pub struct Engine {
    pub(crate) db: Database,
    pub(crate) catalog: CatalogSync,
    pub(crate) payments: PaymentsClient<Channel>,
    pub(crate) relay: OutboxRelay,
    pub(crate) faults: Faults,
    /// How long a new order holds its tickets.
    pub(crate) hold_ttl_ms: i64,
    /// After how long an in-flight payment or refund counts as abandoned (a crash) and is
    /// resumed by the sweeper: well past the deadline of the payment call itself.
    pub(crate) stale_after_ms: i64,
}

impl Engine {
    pub fn new(
        db: Database,
        catalog: CatalogSync,
        payments: PaymentsClient<Channel>,
        relay: OutboxRelay,
        hold_ttl: Duration,
        call_deadline: Duration,
    ) -> Self {
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            db,
            catalog,
            payments,
            relay,
            faults: Faults::default(),
            hold_ttl_ms: millis(hold_ttl),
            stale_after_ms: (millis(call_deadline) * 3).max(5_000),
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}
