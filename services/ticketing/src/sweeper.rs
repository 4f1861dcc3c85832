//! The sweeper keeps every order moving without anyone asking: it expires holds that ran out,
//! resumes payments and refunds a crash abandoned, gives back payments captured for orders
//! whose hold had already ended, and refunds or cancels the orders of
//! cancelled events. It works in two lanes: what needs only ticketing's database (expiry,
//! cancelling unpaid orders), and what calls payments (several calls at once), each in a loop
//! of its own, so a slow payments service never keeps a hold past its time.
//! [`Sweeper::step`] does one pass of both at a given time, which is how the tests drive it;
//! [`Sweeper::run`] repeats them in the background.

use std::{sync::Arc, time::Duration};

use eventhive_domain::OrderId;
use eventhive_platform::{shutdown::CancellationToken, storage::now_ms};
use futures::StreamExt;
use tokio::sync::Notify;

use crate::{
    engine::Engine,
    error::TicketingError,
    idempotency,
    repository::{orders, owed_refunds},
};

/// Orders handled per kind and pass; a backlog is worked off over several passes.
const BATCH: i64 = 500;
/// Calls to payments the sweeper makes at once.
const PAYMENT_CALLS: usize = 8;

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

    /// One pass of both lanes as of `now` (Unix ms). Failures of single orders are logged
    /// and retried on the next pass.
    pub async fn step(&self, now: i64) -> Result<Sweep, TicketingError> {
        let local = self.local_step(now).await?;
        let remote = self.payments_step(now).await?;
        Ok(Sweep {
            expired: local.expired,
            cancelled: local.cancelled,
            keys_purged: local.keys_purged,
            payments_resolved: remote.payments_resolved,
            refunds_started: remote.refunds_started,
            refunds_finished: remote.refunds_finished,
            owed_refunds_settled: remote.owed_refunds_settled,
            failures: local.failures + remote.failures,
        })
    }

    /// The lane that needs only ticketing's database: holds that ran out, unpaid orders of
    /// cancelled events, old idempotency keys. It never waits for payments, so a slow or
    /// absent payments service does not keep tickets held past their time.
    async fn local_step(&self, now: i64) -> Result<Sweep, TicketingError> {
        let engine = &self.engine;
        let mut sweep = Sweep::default();
        let mut conn = engine.db.pool().acquire().await?;
        let due = orders::expired_holds(&mut conn, now, BATCH).await?;
        let of_cancelled_events = orders::unpaid_of_cancelled_events(&mut conn, BATCH).await?;
        drop(conn);
        for order in due {
            match engine.expire(order.id, now).await {
                Ok(true) => sweep.expired += 1,
                Ok(false) => {}
                Err(error) => failed(&mut sweep, "expire an order", order.id, error),
            }
        }
        for order in of_cancelled_events {
            match engine.cancel_unpaid(order.id, "the event was cancelled").await {
                Ok(true) => sweep.cancelled += 1,
                Ok(false) => {}
                Err(error) => failed(&mut sweep, "cancel an order", order.id, error),
            }
        }
        let mut conn = engine.db.pool().acquire().await?;
        sweep.keys_purged = idempotency::purge(&mut conn, now).await?;
        Ok(sweep)
    }

    /// The lane that asks payments: abandoned payments and refunds, refunds of cancelled
    /// events, captures owed back. Up to [`PAYMENT_CALLS`] orders at once, so one slow call (up
    /// to its deadline) does not hold up the others.
    async fn payments_step(&self, now: i64) -> Result<Sweep, TicketingError> {
        let engine = &self.engine;
        let mut conn = engine.db.pool().acquire().await?;
        let stale = now - engine.stale_after_ms;
        let abandoned_payments = orders::abandoned_payments(&mut conn, stale, BATCH).await?;
        let paid_for_cancelled_events = orders::paid_of_cancelled_events(&mut conn, BATCH).await?;
        let abandoned_refunds = orders::abandoned_refunds(&mut conn, stale, BATCH).await?;
        let owed = owed_refunds::due(&mut conn, BATCH).await?;
        drop(conn);

        let mut work: Vec<(Job, OrderId)> = Vec::new();
        work.extend(
            abandoned_payments.into_iter().map(|order| (Job::ResolvePayment(Box::new(order.clone())), order.id)),
        );
        work.extend(paid_for_cancelled_events.into_iter().map(|order| (Job::RefundCancelled, order.id)));
        work.extend(abandoned_refunds.into_iter().map(|order| (Job::FinishRefund, order.id)));
        work.extend(owed.into_iter().map(|refund| (Job::SettleOwed, refund.order_id)));
        let outcomes: Vec<_> = futures::stream::iter(work)
            .map(|(job, order_id)| async move {
                let result = match &job {
                    Job::ResolvePayment(order) => engine.resolve_payment(order, now).await,
                    Job::RefundCancelled => engine.refund_order(order_id, "the event was cancelled", false, None).await,
                    Job::FinishRefund => engine.finish_refund(order_id, None).await,
                    Job::SettleOwed => engine.settle_owed_refund(order_id, None).await,
                };
                (job, order_id, result)
            })
            .buffer_unordered(PAYMENT_CALLS)
            .collect()
            .await;
        let mut sweep = Sweep::default();
        for (job, order_id, result) in outcomes {
            match (result, job) {
                (Ok(()), Job::ResolvePayment(_)) => sweep.payments_resolved += 1,
                (Ok(()), Job::RefundCancelled) => sweep.refunds_started += 1,
                (Ok(()), Job::FinishRefund) => sweep.refunds_finished += 1,
                (Ok(()), Job::SettleOwed) => sweep.owed_refunds_settled += 1,
                (Err(error), job) => failed(&mut sweep, job.what(), order_id, error),
            }
        }
        Ok(sweep)
    }

    /// Sweeps every `interval`, and at once when woken, until `shutdown`: the two lanes in
    /// loops of their own, so that the payments lane's calls never delay an expiry.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        let payments = self.clone();
        let payments_shutdown = shutdown.clone();
        let remote = tokio::spawn(async move {
            payments.repeat(interval, payments_shutdown, |sweeper, now| Box::pin(sweeper.payments_step(now))).await;
        });
        self.repeat(interval, shutdown, |sweeper, now| Box::pin(sweeper.local_step(now))).await;
        let _ = remote.await;
    }

    async fn repeat<F>(&self, interval: Duration, shutdown: CancellationToken, pass: F)
    where
        F: for<'a> Fn(&'a Sweeper, i64) -> futures::future::BoxFuture<'a, Result<Sweep, TicketingError>>,
    {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
            match pass(self, now_ms()).await {
                Ok(sweep) if sweep != Sweep::default() => tracing::info!(?sweep, "swept"),
                Ok(_) => {}
                Err(error) => tracing::warn!(error = format!("{error:#}"), "sweep failed"),
            }
        }
    }
}

/// A payments-lane task.
enum Job {
    ResolvePayment(Box<orders::OrderRecord>),
    RefundCancelled,
    FinishRefund,
    SettleOwed,
}

impl Job {
    fn what(&self) -> &'static str {
        match self {
            Self::ResolvePayment(_) => "resolve a payment",
            Self::RefundCancelled => "refund an order",
            Self::FinishRefund => "finish a refund",
            Self::SettleOwed => "give back a payment captured for an ended order",
        }
    }
}

fn failed(sweep: &mut Sweep, what: &str, order_id: OrderId, error: TicketingError) {
    sweep.failures += 1;
    tracing::warn!(%order_id, error = format!("{error:#}"), "sweeper could not {what}; will retry");
}
