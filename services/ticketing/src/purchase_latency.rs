//! The purchase path's own latency, the signal the waiting room's automatic rate follows: how
//! long placing and paying orders took on this replica recently (their p99), and how many
//! orders it completed a second. A rolling window, in memory: the newest [`CAPACITY`] samples
//! of the last [`WINDOW`], so recording stays one push under a lock however busy the sale.
//!
//! Each replica keeps its own window and says which replica it is; the waiting room combines
//! the replicas' reports (see its `signals` module).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use eventhive_proto::ticketing::PurchaseLatency;

/// How far back the window reaches.
pub const WINDOW: Duration = Duration::from_secs(10);

/// The most samples kept: at a few thousand purchases a second the window is the newest of
/// them, which is recent enough and bounds the memory and the sort of a report.
const CAPACITY: usize = 4096;

struct Sample {
    at: Instant,
    latency: Duration,
    /// The call paid an order.
    completed: bool,
}

#[derive(Default)]
struct Samples {
    recent: VecDeque<Sample>,
    /// When the newest sample dropped to stay within [`CAPACITY`] was taken: the window's
    /// counts cover only what came after it.
    dropped_up_to: Option<Instant>,
}

/// This replica's recent purchases.
#[derive(Clone)]
pub struct PurchaseWindow {
    /// Which replica this is, for the waiting room to tell the replicas' reports apart.
    replica: String,
    samples: Arc<Mutex<Samples>>,
}

impl Default for PurchaseWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl PurchaseWindow {
    pub fn new() -> Self {
        Self { replica: uuid::Uuid::new_v4().to_string(), samples: Arc::default() }
    }

    fn samples(&self) -> std::sync::MutexGuard<'_, Samples> {
        // A panic while holding the lock cannot leave the samples half-changed.
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One order placed or paid (or refused) in `latency`; `completed` if it paid an order.
    pub fn record(&self, latency: Duration, completed: bool) {
        self.record_at(Instant::now(), latency, completed);
    }

    fn record_at(&self, at: Instant, latency: Duration, completed: bool) {
        let mut samples = self.samples();
        if samples.recent.len() >= CAPACITY
            && let Some(dropped) = samples.recent.pop_front()
        {
            samples.dropped_up_to = Some(dropped.at);
        }
        samples.recent.push_back(Sample { at, latency, completed });
    }

    /// The window now, as the waiting room reads it.
    pub fn report(&self) -> PurchaseLatency {
        self.report_at(Instant::now())
    }

    fn report_at(&self, now: Instant) -> PurchaseLatency {
        let start = now.checked_sub(WINDOW);
        let mut samples = self.samples();
        while samples.recent.front().is_some_and(|oldest| start.is_some_and(|start| oldest.at < start)) {
            samples.recent.pop_front();
        }
        let mut latencies: Vec<Duration> = samples.recent.iter().map(|s| s.latency).collect();
        let completed = samples.recent.iter().filter(|s| s.completed).count();
        // The span the kept samples cover: the whole window, unless some were dropped within it.
        let covered = match (samples.dropped_up_to, start) {
            (Some(dropped), Some(start)) if dropped > start => now.duration_since(dropped),
            (Some(dropped), None) => now.duration_since(dropped),
            _ => WINDOW,
        };
        drop(samples);
        latencies.sort_unstable();
        PurchaseLatency {
            replica: self.replica.clone(),
            samples: i64::try_from(latencies.len()).unwrap_or(i64::MAX),
            p99_ms: percentile(&latencies, 99).map_or(0.0, |p99| p99.as_secs_f64() * 1000.0),
            orders_completed_per_sec: completed as f64 / covered.as_secs_f64().max(0.001),
        }
    }
}

/// The nearest-rank `p`th percentile of sorted `latencies`; `None` for none.
fn percentile(latencies: &[Duration], p: usize) -> Option<Duration> {
    let rank = (latencies.len() * p).div_ceil(100).max(1);
    latencies.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_p99_is_of_the_last_ten_seconds_and_completed_orders_are_counted_per_second() {
        let window = PurchaseWindow::new();
        let start = Instant::now();
        assert_eq!((window.report_at(start).samples, window.report_at(start).p99_ms), (0, 0.0), "no signal yet");
        // Long ago: a very slow purchase that the window has forgotten.
        window.record_at(start, ms(5000), true);
        let now = start + WINDOW + ms(1000);
        // 100 purchases now: 98 of 10 ms, 2 of 400 ms; 20 of them paid an order.
        for n in 0..100 {
            window.record_at(now, ms(if n < 98 { 10 } else { 400 }), n % 5 == 0);
        }
        let report = window.report_at(now);
        assert_eq!(report.samples, 100);
        assert!((report.p99_ms - 400.0).abs() < 1e-6, "{report:?}");
        assert!((report.orders_completed_per_sec - 2.0).abs() < 1e-9, "20 in 10 s: {report:?}");
        assert!(!report.replica.is_empty());
    }

    #[test]
    fn a_full_window_counts_over_the_span_it_still_covers() {
        let window = PurchaseWindow::new();
        let start = Instant::now() + WINDOW;
        // CAPACITY + 10 completed orders over 1 s: the first 10 are dropped.
        let n = CAPACITY + 10;
        for i in 0..n {
            let at = start + Duration::from_secs(1) * u32::try_from(i).unwrap() / u32::try_from(n).unwrap();
            window.record_at(at, ms(1), true);
        }
        let report = window.report_at(start + Duration::from_secs(1));
        assert_eq!(report.samples, i64::try_from(CAPACITY).unwrap());
        let per_sec = report.orders_completed_per_sec;
        assert!((per_sec - n as f64).abs() / (n as f64) < 0.01, "about {n} a second, not {per_sec}");
    }

    #[test]
    fn the_percentile_is_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=200).map(ms).collect();
        assert_eq!(percentile(&sorted, 99), Some(ms(198)));
        assert_eq!(percentile(&sorted[..1], 99), Some(ms(1)));
        assert_eq!(percentile(&[], 99), None);
    }
}
