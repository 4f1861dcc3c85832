//! One screen of figures, and the same as JSON: purchases per second to sell-out, latency per
//! step (p50, p95, p99, max), answers that were not successes by problem type, and every check.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::{FlashSale, race::Race, verify::Verdict, waiting::QueueFigures, watchers::WatchFigures};

pub struct Figures {
    pub race: Race,
    pub verdict: Verdict,
    /// With --waiting-room.
    pub queue: Option<QueueFigures>,
    /// With --analytics-streams.
    pub watched: Option<WatchFigures>,
}

fn rate(figures: &Figures) -> f64 {
    let seconds = figures.race.to_last_purchase.as_secs_f64();
    if seconds > 0.0 { figures.race.paid.len() as f64 / seconds } else { 0.0 }
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn latency(histogram: &Histogram<u64>) -> Value {
    json!({
        "count": histogram.len(),
        "p50_ms": ms(histogram, 0.50),
        "p95_ms": ms(histogram, 0.95),
        "p99_ms": ms(histogram, 0.99),
        "max_ms": histogram.max() as f64 / 1000.0,
    })
}

pub fn print(options: &FlashSale, figures: &Figures) {
    let race = &figures.race;
    let target = options.url.as_deref().unwrap_or(if options.infra {
        "in-process, PostgreSQL + RabbitMQ + Redis"
    } else {
        "in-process, embedded"
    });
    println!();
    println!(
        "  flash sale: {} tickets, {} buyers, {} ticket type(s) — {target}",
        options.tickets, options.buyers, options.ticket_types
    );
    println!(
        "  sold {} in {:.2} s: {:.0} purchases/s to sell-out ({} attempts, {:.2} s in all)",
        race.paid.len(),
        race.to_last_purchase.as_secs_f64(),
        rate(figures),
        race.attempts,
        race.elapsed.as_secs_f64()
    );
    println!();
    println!("  {:<10} {:>8} {:>9} {:>9} {:>9} {:>9}", "step", "count", "p50 ms", "p95 ms", "p99 ms", "max ms");
    for (name, histogram) in [("order", &race.order), ("payment", &race.payment), ("purchase", &race.purchase)] {
        println!(
            "  {:<10} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            name,
            histogram.len(),
            ms(histogram, 0.50),
            ms(histogram, 0.95),
            ms(histogram, 0.99),
            histogram.max() as f64 / 1000.0
        );
    }
    if let Some(queue) = &figures.queue {
        println!();
        println!(
            "  waiting room: {} of {} buyers admitted in {:.2} s after the opening: {:.1} admissions/s; {} polls ({:.1} per buyer)",
            queue.admitted,
            queue.buyers,
            queue.admitting_for.as_secs_f64(),
            queue.admissions_per_second(),
            queue.polls,
            queue.polls as f64 / queue.buyers.max(1) as f64
        );
        println!(
            "  fairness: positions 1..n drawn: {}; admitted = the front of the line: {}; join order vs position, Spearman rho {:+.3}",
            queue.positions_are_a_draw, queue.admitted_are_the_front, queue.rho
        );
    }
    if let Some(watched) = &figures.watched {
        println!();
        println!(
            "  analytics: {} live streams open during the race received {} figures; {} ended before it did",
            watched.streams, watched.received, watched.ended_early
        );
    }
    if !race.errors.is_empty() {
        println!();
        println!("  not a success:");
        for (kind, count) in &race.errors {
            println!("    {count:>7}  {kind}");
        }
    }
    println!();
    println!("  checks:");
    for (what, holds) in &figures.verdict.checks {
        println!("    {}  {what}", if *holds { "ok  " } else { "FAIL" });
    }
    println!();
}

pub fn json(options: &FlashSale, figures: &Figures) -> Value {
    let race = &figures.race;
    json!({
        "tickets": options.tickets,
        "buyers": options.buyers,
        "ticket_types": options.ticket_types,
        "target": options.url.clone().unwrap_or_else(|| if options.infra { "infra".into() } else { "embedded".into() }),
        "sold": race.paid.len(),
        "attempts": race.attempts,
        "seconds_to_sell_out": race.to_last_purchase.as_secs_f64(),
        "purchases_per_second": rate(figures),
        "latency": {"order": latency(&race.order), "payment": latency(&race.payment), "purchase": latency(&race.purchase)},
        "errors": race.errors,
        "checks": super::verify::summary(&figures.verdict),
        "verified": figures.verdict.failures.is_empty(),
        "waiting_room": figures.queue.as_ref().map(super::waiting::json),
        "analytics_streams": figures.watched.as_ref().map(WatchFigures::json),
    })
}
