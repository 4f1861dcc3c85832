//! One screen of figures, and the same as JSON, for every mode: what was done and at what rate,
//! latency per step (p50, p95, p99, max), answers that were not successes by problem type, the
//! servers' CPU and peak RSS, and every check.

use serde_json::{Value, json};

use super::{
    FlashSale, Mode,
    browse::Browse,
    histograms::{self, print_head, print_row},
    logins::Logins,
    race::Race,
    steady,
    timeline::Bucket,
    usage::Usage,
    verify::Verdict,
    waiting::QueueFigures,
    watchers::WatchFigures,
};

pub struct Figures {
    pub measured: Measured,
    pub verdict: Verdict,
    /// `None` with --url and no --pids: nothing to read.
    pub usage: Option<Usage>,
}

/// What the mode measured.
pub enum Measured {
    /// `race` or `steady`: purchases.
    Sale {
        race: Race,
        /// With --waiting-room.
        queue: Option<QueueFigures>,
        /// With --analytics-streams.
        watched: Option<WatchFigures>,
    },
    Browse(Browse),
    Logins(Logins),
}

impl Figures {
    /// Each second of the timed part, for --plot.
    pub fn seconds(&self) -> &[Bucket] {
        match &self.measured {
            Measured::Sale { race, .. } => &race.seconds,
            Measured::Browse(browse) => &browse.seconds,
            Measured::Logins(logins) => &logins.seconds,
        }
    }

    /// What completes in the timed part.
    pub fn completing(&self) -> &'static str {
        match self.measured {
            Measured::Sale { .. } => "purchases",
            Measured::Browse(_) | Measured::Logins(_) => "requests",
        }
    }
}

/// Purchases per second: to sell-out in a race; over the whole run in the steady mode.
fn rate(options: &FlashSale, race: &Race) -> f64 {
    let over = if options.mode == Mode::Steady { race.elapsed } else { race.to_last_purchase };
    let seconds = over.as_secs_f64();
    if seconds > 0.0 { race.paid.len() as f64 / seconds } else { 0.0 }
}

fn target(options: &FlashSale) -> &str {
    options.url.as_deref().unwrap_or(if options.infra {
        "in-process, PostgreSQL + RabbitMQ + Redis"
    } else {
        "in-process, embedded"
    })
}

/// The run in one line: the report's head and the plot's title.
pub fn title(options: &FlashSale) -> String {
    let (buyers, types, events) = (options.buyers, options.ticket_types, options.events);
    let what = match options.mode {
        Mode::Race => {
            format!(
                "flash sale: {} tickets, {buyers} buyers, {types} ticket type(s), {events} event(s)",
                options.tickets()
            )
        }
        Mode::Steady => format!(
            "steady purchases: {}/s for {} s, {} tickets, {buyers} buyers, {types} ticket type(s), {events} event(s)",
            options.rate,
            options.duration,
            options.tickets()
        ),
        Mode::Browse => format!("browse: {buyers} anonymous clients for {} s, {events} event(s)", options.duration),
        Mode::Logins => format!("logins: {buyers} accounts register, then log in, all at once"),
    };
    format!("{what} — {}", target(options))
}

pub fn print(options: &FlashSale, figures: &Figures) {
    println!();
    println!("  {}", title(options));
    match &figures.measured {
        Measured::Sale { race, queue, watched } => print_sale(options, race, queue.as_ref(), watched.as_ref()),
        Measured::Browse(browse) => browse.print(),
        Measured::Logins(logins) => logins.print(),
    }
    println!();
    match &figures.usage {
        Some(usage) => usage.print(),
        None => println!("  servers' CPU and peak RSS: not measured (with --url, name them with --pids)"),
    }
    println!();
    println!("  checks:");
    for (what, holds) in &figures.verdict.checks {
        println!("    {}  {what}", if *holds { "ok  " } else { "FAIL" });
    }
    println!();
}

fn print_sale(options: &FlashSale, race: &Race, queue: Option<&QueueFigures>, watched: Option<&WatchFigures>) {
    if options.mode == Mode::Steady {
        println!(
            "  completed {} of {} purchases due in {:.2} s: {:.0} purchases/s achieved, {} intended ({} attempts)",
            race.paid.len(),
            steady::purchases(options.rate, options.duration()),
            race.elapsed.as_secs_f64(),
            rate(options, race),
            options.rate,
            race.attempts
        );
    } else {
        println!(
            "  sold {} in {:.2} s: {:.0} purchases/s to sell-out ({} attempts, {:.2} s in all)",
            race.paid.len(),
            race.to_last_purchase.as_secs_f64(),
            rate(options, race),
            race.attempts,
            race.elapsed.as_secs_f64()
        );
    }
    println!();
    print_head("step");
    print_row("order", &race.order);
    print_row("payment", &race.payment);
    // In the steady mode a purchase's latency counts from when it was due.
    print_row(if options.mode == Mode::Steady { "purchase (from due)" } else { "purchase" }, &race.purchase);
    if let Some(queue) = queue {
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
    if let Some(watched) = watched {
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
}

pub fn json(options: &FlashSale, figures: &Figures) -> Value {
    let mut out = json!({
        "mode": options.mode.name(),
        "buyers": options.buyers,
        "events": options.events,
        "target": options.url.clone().unwrap_or_else(|| if options.infra { "infra".into() } else { "embedded".into() }),
        "servers": figures.usage.as_ref().map(Usage::json),
        "per_second": figures.seconds().iter().map(|b| json!({"completed": b.completed, "p99_ms": b.p99_ms})).collect::<Vec<_>>(),
        "checks": super::verify::summary(&figures.verdict),
        "verified": figures.verdict.failures.is_empty(),
    });
    let measured = match &figures.measured {
        Measured::Sale { race, queue, watched } => json!({
            "tickets": options.tickets(),
            "ticket_types": options.ticket_types,
            "rate_intended": (options.mode == Mode::Steady).then_some(options.rate),
            "duration_seconds": (options.mode == Mode::Steady).then_some(options.duration),
            "sold": race.paid.len(),
            "attempts": race.attempts,
            "seconds_to_sell_out": race.to_last_purchase.as_secs_f64(),
            "seconds": race.elapsed.as_secs_f64(),
            "purchases_per_second": rate(options, race),
            "latency": {
                "order": histograms::latency(&race.order),
                "payment": histograms::latency(&race.payment),
                "purchase": histograms::latency(&race.purchase),
            },
            "errors": race.errors,
            "waiting_room": queue.as_ref().map(super::waiting::json),
            "analytics_streams": watched.as_ref().map(WatchFigures::json),
        }),
        Measured::Browse(browse) => browse.json(),
        Measured::Logins(logins) => logins.json(),
    };
    if let (Some(out), Value::Object(measured)) = (out.as_object_mut(), measured) {
        out.extend(measured);
    }
    out
}
