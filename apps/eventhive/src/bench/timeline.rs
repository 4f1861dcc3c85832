//! What happened in each second of the timed part: how many requests (or purchases) completed
//! and their latencies, for `--plot` and the progress line. A histogram per second rather than
//! one for the run, so a stall shows where it happened instead of vanishing into the p99.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use super::histograms::{micros, with_precision};

pub struct Timeline {
    started: Instant,
    /// Completed so far, read by the progress line without taking the lock.
    completed: AtomicU64,
    seconds: Mutex<Vec<Histogram<u64>>>,
}

/// One second of the run.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub completed: u64,
    pub p99_ms: f64,
}

impl Timeline {
    pub fn start() -> Self {
        Self { started: Instant::now(), completed: AtomicU64::new(0), seconds: Mutex::new(Vec::new()) }
    }

    /// A completion now, that took `latency`.
    pub fn record(&self, latency: Duration) {
        let second = usize::try_from(self.started.elapsed().as_secs()).unwrap_or(usize::MAX);
        self.completed.fetch_add(1, Ordering::Relaxed);
        // A poisoned lock means another recorder panicked; the figures go on without it.
        let Ok(mut seconds) = self.seconds.lock() else { return };
        if seconds.len() <= second {
            seconds.resize_with(second + 1, || with_precision(2));
        }
        seconds[second].saturating_record(micros(latency));
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every second from the start to the last completion, empty seconds included.
    pub fn buckets(&self) -> Vec<Bucket> {
        let Ok(seconds) = self.seconds.lock() else { return Vec::new() };
        seconds
            .iter()
            .map(|second| Bucket {
                completed: second.len(),
                p99_ms: if second.is_empty() { 0.0 } else { second.value_at_quantile(0.99) as f64 / 1000.0 },
            })
            .collect()
    }
}
