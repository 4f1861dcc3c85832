//! The sale's own signal, combined over ticketing's replicas. Each answer to the admission
//! loop's `GetAvailability` carries the purchase latency of the ticketing replica that answered
//! (its p99 over its last 10 s, and orders it completed a second), named by that replica. With
//! several replicas behind one address, consecutive answers come from different ones, so the
//! loop keeps each replica's newest report and combines those heard within [`FRESH_FOR`]: the
//! slowest replica's p99 (the buyers it serves are the ones the target protects), and the sum
//! of the orders they complete. One replica: its own report.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use eventhive_proto::ticketing::PurchaseLatency;

/// How long a replica's report counts once heard: a replica the load balancer no longer sends
/// to (stopped, scaled in) stops counting after this.
pub const FRESH_FOR: Duration = Duration::from_secs(15);

/// The purchase path as every ticketing replica heard from recently reports it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SaleSignal {
    /// The slowest replica's p99 of placing and paying orders; `None` when no replica had a
    /// purchase in its window (nothing to pace on).
    pub purchase_p99: Option<Duration>,
    /// Orders paid a second, over every replica.
    pub orders_completed_per_sec: f64,
}

/// The newest report of each ticketing replica, shared by the loop's clones.
#[derive(Clone, Default)]
pub struct SaleSignals {
    reports: Arc<Mutex<HashMap<String, (Instant, PurchaseLatency)>>>,
}

impl SaleSignals {
    fn reports(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, PurchaseLatency)>> {
        // Each change is one insert or retain: a panic elsewhere cannot leave it half-done.
        self.reports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `report` as its replica's newest, heard at `now`.
    pub fn hear(&self, report: PurchaseLatency, now: Instant) {
        self.reports().insert(report.replica.clone(), (now, report));
    }

    /// The combined signal of the reports heard within [`FRESH_FOR`] of `now`.
    pub fn combined(&self, now: Instant) -> SaleSignal {
        let mut reports = self.reports();
        reports.retain(|_, (heard, _)| now.saturating_duration_since(*heard) <= FRESH_FOR);
        let with_samples = || reports.values().map(|(_, report)| report).filter(|report| report.samples > 0);
        let slowest = with_samples()
            .map(|report| report.p99_ms)
            .fold(None, |slowest: Option<f64>, p99| Some(slowest.map_or(p99, |s| s.max(p99))));
        SaleSignal {
            // Whole microseconds; a float cast saturates, so no report can make this panic.
            purchase_p99: slowest.map(|ms| Duration::from_micros((ms * 1000.0).round() as u64)),
            orders_completed_per_sec: reports.values().map(|(_, report)| report.orders_completed_per_sec).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(replica: &str, samples: i64, p99_ms: f64, per_sec: f64) -> PurchaseLatency {
        PurchaseLatency { replica: replica.into(), samples, p99_ms, orders_completed_per_sec: per_sec }
    }

    #[test]
    fn the_slowest_fresh_replica_sets_the_p99_and_orders_add_up() {
        let signals = SaleSignals::default();
        let start = Instant::now();
        assert_eq!(signals.combined(start), SaleSignal::default(), "nothing heard: no signal");
        signals.hear(report("a", 50, 120.0, 4.0), start);
        signals.hear(report("b", 80, 300.0, 6.0), start + Duration::from_secs(1));
        // Replica a's newer report replaces its older one.
        signals.hear(report("a", 60, 90.0, 5.0), start + Duration::from_secs(2));
        let both = signals.combined(start + Duration::from_secs(2));
        assert_eq!(both.purchase_p99, Some(Duration::from_millis(300)));
        assert!((both.orders_completed_per_sec - 11.0).abs() < 1e-9, "{both:?}");

        // b is no longer heard from: only a counts.
        let later = start + Duration::from_secs(1) + FRESH_FOR + Duration::from_millis(1);
        let one = signals.combined(later);
        assert_eq!(one.purchase_p99, Some(Duration::from_millis(90)));
        assert!((one.orders_completed_per_sec - 5.0).abs() < 1e-9);
    }

    #[test]
    fn a_replica_without_purchases_gives_no_p99() {
        let signals = SaleSignals::default();
        let now = Instant::now();
        signals.hear(report("idle", 0, 0.0, 0.0), now);
        assert_eq!(signals.combined(now).purchase_p99, None);
        signals.hear(report("busy", 10, 40.0, 1.0), now);
        assert_eq!(signals.combined(now).purchase_p99, Some(Duration::from_millis(40)));
    }
}
