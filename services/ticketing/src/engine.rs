//! The engine: what every ticketing operation shares (the database, the clients of catalog and
//! payments, the outbox relay, the fault points and the time limits). It holds no logic: the
//! operations live beside it, one module per concern (`orders`, `purchase`, `tickets`,
//! `inventory`'s stock), each an `impl Engine`, and their SQL in `repository`.

use std::time::Duration;

use eventhive_platform::grpc::Channel;
use eventhive_platform::{Database, Secrets, outbox::OutboxRelay};
use eventhive_proto::payments::payments_client::PaymentsClient;

use crate::{catalog_sync::CatalogSync, faults::Faults, orders::KnownTicketTypes};

#[derive(Clone)]
pub struct Engine {
    pub(crate) db: Database,
    /// Reads an event from catalog when an order or a check-in names one not heard of yet.
    pub(crate) catalog: CatalogSync,
    pub(crate) payments: PaymentsClient<Channel>,
    /// Woken after a commit that wrote to the outbox, so the event leaves at once.
    pub(crate) relay: OutboxRelay,
    /// The deployment's secret key, for the keyed fingerprint of a payment's card.
    pub(crate) secrets: Secrets,
    /// The ticket types this replica has found in its copy of catalog, so that placing an order
    /// for them does not read that copy twice (the hold reads it again, under its lock).
    pub(crate) known_ticket_types: KnownTicketTypes,
    /// Where tests make the saga "crash" between two steps.
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
        secrets: Secrets,
        hold_ttl: Duration,
        call_deadline: Duration,
    ) -> Self {
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            db,
            catalog,
            payments,
            relay,
            secrets,
            known_ticket_types: KnownTicketTypes::default(),
            faults: Faults::default(),
            hold_ttl_ms: millis(hold_ttl),
            stale_after_ms: (millis(call_deadline) * 3).max(5_000),
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}
