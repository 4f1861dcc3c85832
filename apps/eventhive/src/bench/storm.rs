//! Requests of one kind, each timed, and what they add up to: rate, latency, failures by
//! problem type. Shared by the browsing clients and the registration and login storm.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::histograms::{self, histogram, micros, problem, transport};

/// One kind of request: how many, how long they took, what failed.
pub struct Requests {
    pub latency: Histogram<u64>,
    /// Problem types (or why no answer came), with how often.
    pub errors: BTreeMap<String, u64>,
}

impl Default for Requests {
    fn default() -> Self {
        Self { latency: histogram(), errors: BTreeMap::new() }
    }
}

impl Requests {
    /// Keeps one answer that took `took`; whether it was the `expected` status.
    pub fn keep(&mut self, took: Duration, answer: &anyhow::Result<(u16, Value)>, expected: u16) -> bool {
        self.latency.saturating_record(micros(took));
        let kind = match answer {
            Ok((status, _)) if *status == expected => return true,
            Ok((status, body)) => problem(*status, body),
            Err(error) => transport(error),
        };
        *self.errors.entry(kind).or_default() += 1;
        false
    }

    pub fn add(&mut self, other: Self) {
        let _ = self.latency.add(&other.latency);
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Requests per second over `elapsed`.
    pub fn rate(&self, elapsed: Duration) -> f64 {
        let seconds = elapsed.as_secs_f64();
        if seconds > 0.0 { self.latency.len() as f64 / seconds } else { 0.0 }
    }

    pub fn json(&self, elapsed: Duration) -> Value {
        json!({
            "per_second": self.rate(elapsed),
            "latency": histograms::latency(&self.latency),
            "errors": self.errors,
        })
    }
}

/// A table of `(name, requests, elapsed)`: rate and latency per kind, then what failed.
pub fn print(what: &str, rows: &[(&str, &Requests, Duration)]) {
    println!(
        "  {:<22} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        what, "count", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for (name, requests, elapsed) in rows {
        let latency = &requests.latency;
        println!(
            "  {:<22} {:>8} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            latency.len(),
            requests.rate(*elapsed),
            histograms::ms(latency, 0.50),
            histograms::ms(latency, 0.95),
            histograms::ms(latency, 0.99),
            latency.max() as f64 / 1000.0
        );
    }
    for (name, requests, _) in rows {
        for (kind, count) in &requests.errors {
            println!("    {count:>7}  {name}: {kind}");
        }
    }
}
