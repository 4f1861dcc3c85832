//! Latencies in HDR histograms, in microseconds, and how every mode shows them: one table row
//! per step (count, p50, p95, p99, max in milliseconds) on screen, the same as JSON.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

pub fn histogram() -> Histogram<u64> {
    with_precision(3)
}

/// 1 µs to 10 min with `digits` significant digits; a longer latency is clamped by
/// `saturating_record`. Two digits keep a histogram per second of a long run small.
pub fn with_precision(digits: u8) -> Histogram<u64> {
    #[expect(clippy::expect_used, reason = "the bounds are constants that hdrhistogram accepts")]
    Histogram::new_with_bounds(1, 600_000_000, digits).expect("valid histogram bounds")
}

pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).max(1)
}

pub fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

pub fn latency(histogram: &Histogram<u64>) -> Value {
    json!({
        "count": histogram.len(),
        "p50_ms": ms(histogram, 0.50),
        "p95_ms": ms(histogram, 0.95),
        "p99_ms": ms(histogram, 0.99),
        "max_ms": histogram.max() as f64 / 1000.0,
    })
}

/// The head of a latency table whose first column is `what`.
pub fn print_head(what: &str) {
    println!("  {:<22} {:>8} {:>9} {:>9} {:>9} {:>9}", what, "count", "p50 ms", "p95 ms", "p99 ms", "max ms");
}

pub fn print_row(name: &str, histogram: &Histogram<u64>) {
    println!(
        "  {:<22} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        name,
        histogram.len(),
        ms(histogram, 0.50),
        ms(histogram, 0.95),
        ms(histogram, 0.99),
        histogram.max() as f64 / 1000.0
    );
}

/// The problem's type slug (`sold-out`), or the status when the body is no problem.
pub fn problem(status: u16, body: &Value) -> String {
    body["type"]
        .as_str()
        .and_then(|uri| uri.rsplit('/').next())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("http-{status}"))
}

/// A request that got no answer, by why.
pub fn transport(error: &anyhow::Error) -> String {
    match error.downcast_ref::<reqwest::Error>() {
        Some(e) if e.is_timeout() => "timeout".into(),
        Some(e) if e.is_connect() => "connection refused".into(),
        _ => "transport error".into(),
    }
}
