//! A measurement to run by hand, not a test: it asserts no time. It seeds one event with 1,000,
//! then 10,000, then 100,000 paid orders through the projection's handler (as the bus would
//! deliver them), and after each step times 200 reads of the figures through the service's
//! `GetEventAnalytics` (authorization and read, without the gateway and the network), printing
//! p50 and p99. Then it times applying envelopes with no live stream open and with 100 open on
//! the event. See docs/benchmarks.md for the command and the figures.
//!
//! `eventhive bench` is not built yet; this is the stand-in.

// A measurement: an unwrap or panic here is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Harness, Sale, paid};
use eventhive_domain::events::TicketTypeSnapshot;
use futures::StreamExt;
use time::macros::datetime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand: see docs/benchmarks.md"]
async fn measure_sqlite() {
    measure(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand: see docs/benchmarks.md"]
async fn measure_postgres() {
    measure(Backend::Postgres).await;
}

/// Orders delivered at once: competing consumers on PostgreSQL; SQLite serializes them anyway.
const CONCURRENCY: usize = 8;

async fn measure(backend: Backend) {
    let app = Harness::new(backend).await;
    let big = TicketTypeSnapshot { capacity: 1_000_000, ..Sale::new().general };
    let sale = Sale { general: big, ..Sale::new() };
    app.deliver(&sale.published()).await;
    let owner = sale.member("owner");
    let event_id = sale.event_id.to_string();

    println!("backend {backend:?}: GetEventAnalytics, 200 reads after each step");
    let mut seeded = 0_u32;
    for target in [1_000_u32, 10_000, 100_000] {
        let step = target - seeded;
        let started = Instant::now();
        seed(&app, &sale, step).await;
        let seeding = started.elapsed();
        seeded = target;
        let mut times = Vec::with_capacity(200);
        let mut figures = None;
        for _ in 0..200 {
            let started = Instant::now();
            figures = Some(app.get_as(Some(owner.clone()), &event_id).await.unwrap());
            times.push(started.elapsed());
        }
        let figures = figures.unwrap();
        assert_eq!(figures.orders_paid, i64::from(target));
        times.sort();
        println!(
            "{target:>7} paid orders: p50 {:>8.3} ms, p99 {:>8.3} ms (seeded {} orders in {:.1} s); sold {}, revenue {}, {} minutes",
            ms(times[99]),
            ms(times[197]),
            step,
            seeding.as_secs_f64(),
            figures.tickets_sold,
            figures.revenue.map(|m| m.amount_minor).unwrap_or_default(),
            figures.sales_per_minute.len(),
        );
    }

    // Applying cost with and without viewers: the same number of orders, timed.
    let orders = 2_000;
    let started = Instant::now();
    seed(&app, &sale, orders).await;
    let without = started.elapsed();
    let mut streams = Vec::new();
    for i in 0..100 {
        // Distinct users: the per-user cap is about one person's tabs.
        let viewer = sale.member(if i % 2 == 0 { "staff" } else { "admin" });
        streams.push(app.watch_as(&viewer, &event_id).await.unwrap());
    }
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let received = received.clone();
            tokio::spawn(async move {
                while let Some(Ok(_)) = stream.next().await {
                    received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    seed(&app, &sale, orders).await;
    let with = started.elapsed();
    // Let the last change reach the streams.
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "applying {orders} paid orders: {:.0}/s with no stream open, {:.0}/s with 100 streams open \
         ({:+.1}%); the streams received {} messages",
        f64::from(orders) / without.as_secs_f64(),
        f64::from(orders) / with.as_secs_f64(),
        (with.as_secs_f64() / without.as_secs_f64() - 1.0) * 100.0,
        received.load(std::sync::atomic::Ordering::Relaxed),
    );
    app.shutdown.cancel();
    for reader in readers {
        reader.await.unwrap();
    }
    app.close().await;
}

/// Delivers `orders` paid orders of one general admission ticket each, paid over an hour.
async fn seed(app: &Harness, sale: &Sale, orders: u32) {
    let envelopes: Vec<_> = (0..orders)
        .map(|i| {
            paid(&sale.order(0, 1), datetime!(2027-05-01 12:00 UTC) + time::Duration::seconds(i64::from(i % 3600)))
        })
        .collect();
    for batch in envelopes.chunks(CONCURRENCY) {
        futures::future::join_all(batch.iter().map(|envelope| app.deliver(envelope))).await;
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
