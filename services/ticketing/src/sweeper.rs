//! The sweeper keeps every order moving without anyone asking: it expires holds that ran out,
//! resumes payments and refunds a crash abandoned, gives back payments captured for orders
//! whose hold had already ended, and refunds or cancels the orders of
//! cancelled events. [`Sweeper::step`] does one pass at a given time, which is how the tests
//! drive it; [`Sweeper::run`] repeats it in the background.

use std::{sync::Arc, time::Duration};

use eventhive_domain::OrderId;
use eventhive_platform::{shutdown::CancellationToken, storage::now_ms};
use tokio::sync::Notify;

use crate::{
    engine::Engine,
    error::TicketingError,
    idempotency,
    repository::{orders, owed_refunds},
};

/// Orders handled per kind and pass; a backlog is worked off over several passes.
const BATCH: i64 = 500;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pub expired: usize,
    pub cancelled: usize,
    pub payments_resolved: usize,
    pub refunds_started: usize,
    pub refunds_finished: usize,
    /// Captured payments of ended orders given back (see `owed_refunds`).
    pub owed_refunds_settled: usize,
    pub keys_purged: u64,
    pub failures: usize,
}

#[derive(Clone)]
pub struct Sweeper {
    engine: Engine,
    wake: Arc<Notify>,
}

impl Sweeper {
    pub fn new(engine: Engine, wake: Arc<Notify>) -> Self {
        Self { engine, wake }
    }

    /// One pass as of `now` (Unix ms). Failures of single orders are logged and retried on the
    /// next pass.
    pub async fn step(&self, now: i64) -> Result<Sweep, TicketingError> {
        let engine = &self.engine;
        let mut sweep = Sweep::default();
        let mut conn = engine.db.pool().acquire().await?;
        let due = orders::expired_holds(&mut conn, now, BATCH).await?;
        let of_cancelled_events = orders::unpaid_of_cancelled_events(&mut conn, BATCH).await?;
        let stale = now - engine.stale_after_ms;
        let abandoned_payments = orders::abandoned_payments(&mut conn, stale, BATCH).await?;
        let paid_for_cancelled_events = orders::paid_of_cancelled_events(&mut conn, BATCH).await?;
        let abandoned_refunds = orders::abandoned_refunds(&mut conn, stale, BATCH).await?;
        let owed = owed_refunds::due(&mut conn, BATCH).await?;
        drop(conn);

        let mut note = |what: &str, order_id: OrderId, error: TicketingError| {
            sweep.failures += 1;
            tracing::warn!(%order_id, error = format!("{error:#}"), "sweeper could not {what}; will retry");
        };
        let mut expired = 0;
        for order in due {
            match engine.expire(order.id, now).await {
                Ok(true) => expired += 1,
                Ok(false) => {}
                Err(error) => note("expire an order", order.id, error),
            }
        }
        let mut cancelled = 0;
        for order in of_cancelled_events {
            match engine.cancel_unpaid(order.id, "the event was cancelled").await {
                Ok(true) => cancelled += 1,
                Ok(false) => {}
                Err(error) => note("cancel an order", order.id, error),
            }
        }
        let mut resolved = 0;
        for order in abandoned_payments {
            match engine.resolve_payment(&order, now).await {
                Ok(()) => resolved += 1,
                Err(error) => note("resolve a payment", order.id, error),
            }
        }
        let mut refunds_started = 0;
        for order in paid_for_cancelled_events {
            match engine.refund_order(order.id, "the event was cancelled", false, None).await {
                Ok(()) => refunds_started += 1,
                Err(error) => note("refund an order", order.id, error),
            }
        }
        let mut refunds_finished = 0;
        for order in abandoned_refunds {
            match engine.finish_refund(order.id, None).await {
                Ok(()) => refunds_finished += 1,
                Err(error) => note("finish a refund", order.id, error),
            }
        }
        let mut owed_refunds_settled = 0;
        for refund in owed {
            match engine.settle_owed_refund(refund.order_id, None).await {
                Ok(()) => owed_refunds_settled += 1,
                Err(error) => note("give back a payment captured for an ended order", refund.order_id, error),
            }
        }
        let mut conn = engine.db.pool().acquire().await?;
        let keys_purged = idempotency::purge(&mut conn, now).await?;
        Ok(Sweep {
            expired,
            cancelled,
            payments_resolved: resolved,
            refunds_started,
            refunds_finished,
            owed_refunds_settled,
            keys_purged,
            failures: sweep.failures,
        })
    }

    /// Sweeps every `interval`, and at once when woken, until `shutdown`.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
            match self.step(now_ms()).await {
                Ok(sweep) if sweep != Sweep::default() => tracing::info!(?sweep, "swept"),
                Ok(_) => {}
                Err(error) => tracing::warn!(error = format!("{error:#}"), "sweep failed"),
            }
        }
    }
}
