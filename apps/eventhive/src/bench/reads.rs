//! `eventhive bench analytics`: what one read of an event's live figures costs as the event
//! grows (issue 17). The figures are kept as the domain events are applied, so a read should
//! cost the same at 1,000 paid orders as at 100,000; this shows whether it does, through the
//! whole public path: HTTP, the gateway's authentication, gRPC, analytics' authorization and
//! its read.
//!
//! Setup, untimed: an organizer, an event with one ticket type as large as the largest size,
//! published through the API. Then, for each size, paid orders of one ticket each are
//! published on the platform's own bus as ticketing announces them (`ticketing.order_paid`,
//! paid over one hour, so 60 minutes of sales) until analytics has applied them all — selling
//! 100,000 tickets through the purchase path first would take longer than the measurement is
//! worth, and the read does not care how the orders came. Timed: `--reads` sequential
//! `GET /v1/events/{id}/analytics` as the organizer, after a warm-up. Verified: every read
//! answered 200, and the last one has exactly the orders, tickets and revenue published, with
//! sold + held + available = capacity. Needs the platform in this process (no --url): the
//! orders go onto its bus.

use std::{path::PathBuf, time::Instant};

use anyhow::Context;
use clap::Args;
use eventhive_domain::{
    EventId, OrderId, TicketTypeId, UserId,
    events::{Envelope, OrderLine, OrderPaid, OrderSummary},
};
use eventhive_platform::Settings;
use futures::{StreamExt, TryStreamExt, stream};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{
    histograms::{histogram, ms},
    setup::{self, Api, PRICE_MINOR, Shape},
};

/// `eventhive bench analytics`.
#[derive(Debug, Args)]
pub struct AnalyticsReads {
    /// Run the platform on PostgreSQL, RabbitMQ and Redis (as `flash-sale --infra`) in fresh
    /// databases dropped after; unset, embedded.
    #[arg(long)]
    pub infra: bool,
    /// The event's sizes at which reads are timed, in paid orders, ascending.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_u32, 10_000, 100_000])]
    pub orders: Vec<u32>,
    /// Reads timed at each size.
    #[arg(long, default_value_t = 500)]
    pub reads: usize,
    /// Paid orders published at once while the event grows.
    #[arg(long, default_value_t = 32)]
    pub publishers: usize,
    /// Writes the figures as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Reads before the timed ones: connections made, caches warm, as on a dashboard already open.
const WARM_UP: usize = 20;

/// The figures at one size.
struct Step {
    orders: u32,
    /// Paid orders applied by analytics per second while the event grew to this size.
    applied_per_second: f64,
    reads: Histogram<u64>,
}

pub async fn analytics_reads(options: AnalyticsReads, mut settings: Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        !options.orders.is_empty() && options.orders.windows(2).all(|pair| pair[0] < pair[1]) && options.orders[0] > 0,
        "--orders must be ascending sizes above 0"
    );
    anyhow::ensure!(options.reads > 0 && options.publishers > 0, "--reads and --publishers must be above 0");
    let target = super::start(None, options.infra, super::Hashing::Cheap, &mut settings).await?;
    let outcome = measure(&options, &target).await;
    super::stop(target, options.infra, false).await;
    let (steps, failures) = outcome?;
    print(&options, &steps, &failures);
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&to_json(&options, &steps, &failures))?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(failures.is_empty(), "verification failed: {}", failures.join("; "));
    Ok(())
}

async fn measure(options: &AnalyticsReads, target: &super::Target) -> anyhow::Result<(Vec<Step>, Vec<String>)> {
    let api = super::api(&target.url)?;
    let bus = target.bus.clone().context("the benchmark publishes on the platform's bus: it runs the platform")?;
    let largest = options.orders.last().copied().unwrap_or_default();
    eprintln!("bench: setting up an event for {largest} paid orders");
    let sale = setup::sale(&api, Shape { tickets: i64::from(largest), ticket_types: 1, buyers: 0, events: 1 }).await?;
    let event_id = EventId::parse(&sale.event().id)?;
    let ticket_type_id = TicketTypeId::parse(&sale.event().ticket_types[0].0)?;
    let path = format!("/v1/events/{}/analytics", sale.event().id);
    let first_sale = OffsetDateTime::now_utc() - time::Duration::hours(1);

    let mut steps = Vec::with_capacity(options.orders.len());
    let mut failures = Vec::new();
    let mut seeded = 0_u32;
    for &size in &options.orders {
        eprintln!("bench: publishing paid orders {} to {size}", seeded + 1);
        let started = Instant::now();
        stream::iter(seeded..size)
            .map(|n| {
                let bus = bus.clone();
                let paid_at = first_sale + time::Duration::seconds(i64::from(n % 3600));
                async move {
                    bus.publish(&paid_order(event_id, ticket_type_id, n, paid_at)?).await.map_err(anyhow::Error::from)
                }
            })
            .buffer_unordered(options.publishers)
            .try_collect::<()>()
            .await?;
        // A fresh token per size: growing to 100,000 may outlast an access token.
        let organizer = setup::sign_in(&api, &sale.organizer.email).await?;
        let token = Some(organizer.token.as_str());
        applied(&api, &path, token, size).await?;
        let applied_per_second = f64::from(size - seeded) / started.elapsed().as_secs_f64();
        seeded = size;

        eprintln!("bench: {} reads at {size} paid orders", options.reads);
        for _ in 0..WARM_UP {
            api.get(&path, token).await?;
        }
        let mut reads = histogram();
        let mut last = Value::Null;
        for _ in 0..options.reads {
            let started = Instant::now();
            let (status, figures) = api.get(&path, token).await?;
            reads.saturating_record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
            if status != 200 {
                failures.push(format!("a read at {size} paid orders answered {status}: {figures}"));
                break;
            }
            last = figures;
        }
        failures.extend(check(&last, size, largest));
        steps.push(Step { orders: size, applied_per_second, reads });
    }
    Ok((steps, failures))
}

/// One paid order of one ticket, as ticketing announces it.
fn paid_order(
    event_id: EventId,
    ticket_type_id: TicketTypeId,
    n: u32,
    paid_at: OffsetDateTime,
) -> anyhow::Result<Envelope> {
    let order = OrderSummary {
        order_id: OrderId::new(),
        event_id,
        buyer_id: UserId::new(),
        lines: vec![OrderLine { ticket_type_id, quantity: 1, unit_price_minor: PRICE_MINOR }],
        total_minor: PRICE_MINOR,
        currency: "EUR".into(),
    };
    Ok(Envelope::new("ticketing", &OrderPaid { order, payment_id: format!("bench_{n}"), paid_at }, None)?)
}

/// Waits until analytics has applied `orders` paid orders.
async fn applied(api: &Api, path: &str, token: Option<&str>, orders: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(1800);
    loop {
        let (status, figures) = api.get(path, token).await?;
        if status == 200 && figures["orders_paid"].as_i64() == Some(i64::from(orders)) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "analytics did not reach {orders} paid orders: {status} {figures}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// What the last read must say after `orders` paid orders of one ticket each.
fn check(figures: &Value, orders: u32, capacity: u32) -> Vec<String> {
    let number = |field: &str| figures[field].as_i64().unwrap_or(-1);
    let orders = i64::from(orders);
    let mut failures = Vec::new();
    let mut expect = |what: String, holds: bool| {
        if !holds {
            failures.push(format!("{what}: {figures}"));
        }
    };
    expect(format!("orders_paid = {orders}"), number("orders_paid") == orders);
    expect(format!("tickets_sold = {orders}"), number("tickets_sold") == orders);
    expect(
        format!("revenue = {}", orders * PRICE_MINOR),
        figures["revenue"]["amount_minor"].as_i64() == Some(orders * PRICE_MINOR),
    );
    expect(
        format!("sold + held + available = {capacity}"),
        number("tickets_sold") + number("tickets_held") + number("tickets_available") == i64::from(capacity),
    );
    failures
}

fn backend(options: &AnalyticsReads) -> &'static str {
    if options.infra { "in-process, PostgreSQL + RabbitMQ + Redis" } else { "in-process, embedded" }
}

fn print(options: &AnalyticsReads, steps: &[Step], failures: &[String]) {
    println!();
    println!(
        "  analytics reads: GET /v1/events/{{id}}/analytics, {} reads at each size — {}",
        options.reads,
        backend(options)
    );
    println!();
    println!(
        "  {:>11} {:>12} {:>9} {:>9} {:>9} {:>9}",
        "paid orders", "applied/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for step in steps {
        println!(
            "  {:>11} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            step.orders,
            step.applied_per_second,
            ms(&step.reads, 0.50),
            ms(&step.reads, 0.95),
            ms(&step.reads, 0.99),
            step.reads.max() as f64 / 1000.0
        );
    }
    println!();
    if failures.is_empty() {
        println!("  checks: every read answered 200; orders, tickets, revenue and capacity add up at every size");
    } else {
        for failure in failures {
            println!("  FAIL  {failure}");
        }
    }
    println!();
}

fn to_json(options: &AnalyticsReads, steps: &[Step], failures: &[String]) -> Value {
    json!({
        "target": if options.infra { "infra" } else { "embedded" },
        "reads_per_size": options.reads,
        "steps": steps.iter().map(|step| json!({
            "paid_orders": step.orders,
            "applied_per_second": step.applied_per_second,
            "p50_ms": ms(&step.reads, 0.50),
            "p95_ms": ms(&step.reads, 0.95),
            "p99_ms": ms(&step.reads, 0.99),
            "max_ms": step.reads.max() as f64 / 1000.0,
        })).collect::<Vec<_>>(),
        "failures": failures,
        "verified": failures.is_empty(),
    })
}
