//! `eventhive chaos`: fault injection from outside the process. It runs the production
//! topology — every service its own `eventhive serve` process, two replicas of the gateway and
//! of ticketing behind HAProxy, PostgreSQL and RabbitMQ servers of its own (it stops and
//! restarts them, which it must never do to shared ones), Redis, an SMTP server — and for each
//! scenario races the flash-sale load of `eventhive bench flash-sale` against a fault injected
//! mid-sale, then checks every invariant from the databases and the broker ([`truth`]).
//! Whatever it stops is started again, and everything it started is stopped, even when a
//! scenario fails.
//!
//! # Layout
//! - [`scenarios`]: the faults, one per scenario, on the shared topology.
//! - [`dev`]: `eventhive dev` killed mid-sale on the embedded backend and started again.
//! - [`truth`]: the invariants, polled until they hold or a deadline passes.

mod dev;
mod scenarios;
mod truth;

use std::time::Instant;

use clap::Args;
use eventhive_platform::Settings;
use eventhive_test_support::{
    private::{PrivatePostgres, PrivateRabbit},
    smtp::SmtpServer,
    topology::{Layout, Topology},
};

use crate::bench::{self, Api, Race, Sale};
pub use scenarios::Scenario;

/// `eventhive chaos`.
#[derive(Debug, Args)]
pub struct Chaos {
    /// Scenarios to run, in order (repeat the flag); all when none is named.
    #[arg(long = "scenario", value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Tickets on sale in each scenario.
    #[arg(long, default_value_t = 150)]
    pub tickets: i64,
    /// Buyers racing in each scenario.
    #[arg(long, default_value_t = 16)]
    pub buyers: usize,
    /// Keep every process's log in this directory (by default they go with the run).
    #[arg(long)]
    pub keep_logs: Option<std::path::PathBuf>,
}

/// What one scenario saw.
pub struct Outcome {
    /// What the fault did, step by step, as it happened.
    pub fault: Vec<String>,
    pub race: Race,
    pub checks: Vec<truth::Check>,
    /// From the end of the race (and of the fault) until every check held.
    pub settled: std::time::Duration,
    pub seconds: f64,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.checks.iter().all(|(_, holds)| *holds)
    }
}

/// The topology every scenario but [`Scenario::DevKilled`] runs on, and what it runs against.
pub struct World {
    pub topology: Topology,
    pub postgres: PrivatePostgres,
    pub rabbit: PrivateRabbit,
    pub smtp: SmtpServer,
    pub api: Api,
}

pub async fn run(options: Chaos) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?;
    let scenarios = if options.scenarios.is_empty() { Scenario::all() } else { options.scenarios.clone() };
    let started = Instant::now();
    let mut failed = Vec::new();
    let on_topology: Vec<Scenario> = scenarios.iter().copied().filter(|s| *s != Scenario::DevKilled).collect();
    if !on_topology.is_empty() {
        let mut world = world(&binary, &options).await?;
        for scenario in on_topology {
            let outcome = scenarios::run(&mut world, scenario, &options).await;
            if !report(scenario, &outcome) {
                failed.push(scenario.to_string());
            }
        }
    }
    if scenarios.contains(&Scenario::DevKilled) {
        let outcome = dev::run(&binary, &options).await;
        if !report(Scenario::DevKilled, &outcome) {
            failed.push(Scenario::DevKilled.to_string());
        }
    }
    println!("chaos: {} scenario(s) in {:.0} s", scenarios.len(), started.elapsed().as_secs_f64());
    anyhow::ensure!(failed.is_empty(), "invariants broken or scenario failed: {}", failed.join(", "));
    Ok(())
}

/// Private PostgreSQL and RabbitMQ (started side by side: RabbitMQ takes its time), the SMTP
/// server, and the topology on them, with two replicas of the gateway and of ticketing.
async fn world(binary: &std::path::Path, options: &Chaos) -> anyhow::Result<World> {
    eprintln!("chaos: starting private PostgreSQL and RabbitMQ, an SMTP server, the topology");
    let (postgres, rabbit) = tokio::join!(PrivatePostgres::start(), PrivateRabbit::start());
    let (postgres, rabbit) = (postgres?, rabbit?);
    let smtp = SmtpServer::start().await;
    let layout = Layout {
        database_url: postgres.url(),
        amqp_url: rabbit.url(),
        replicas: [("gateway", 2), ("ticketing", 2)].into_iter().collect(),
        extra: scenarios::SETTINGS
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .chain([("EVENTHIVE_SMTP_URL".to_owned(), smtp.url())])
            .collect(),
        disposable_servers: true,
        log_dir: options.keep_logs.clone(),
    };
    let topology = Topology::start_with(binary, layout).await;
    let api = bench::api(&topology.address)?;
    Ok(World { topology, postgres, rabbit, smtp, api })
}

/// The load of every scenario: the flash sale of `eventhive bench flash-sale`, smaller.
fn load(options: &Chaos, url: &str) -> bench::FlashSale {
    bench::FlashSale {
        url: Some(url.to_owned()),
        infra: false,
        keep_databases: false,
        mode: bench::Mode::Race,
        tickets: Some(options.tickets),
        buyers: options.buyers,
        rate: 0.0,
        duration: 0,
        events: 1,
        ticket_types: 2,
        attempts: 400,
        waiting_room: false,
        admit_per_minute: None,
        analytics_streams: 0,
        json: None,
        plot: None,
        pids: Vec::new(),
    }
}

/// Prints a scenario's figures and checks; whether it passed.
fn report(scenario: Scenario, outcome: &anyhow::Result<Outcome>) -> bool {
    println!();
    println!("== chaos {scenario}: {}", scenario.about());
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            println!("   FAIL  the scenario could not run: {error:#}");
            return false;
        }
    };
    for step in &outcome.fault {
        println!("   fault: {step}");
    }
    let race = &outcome.race;
    println!(
        "   {} attempts, {} purchases confirmed to buyers, {:.1} s of sale; settled {:.1} s after the sale \
         and the fault; {:.1} s in all",
        race.attempts,
        race.paid.len(),
        race.elapsed.as_secs_f64(),
        outcome.settled.as_secs_f64(),
        outcome.seconds
    );
    for (kind, count) in &race.errors {
        println!("   {count:>6}  {kind}");
    }
    for (what, holds) in &outcome.checks {
        println!("   {}  {what}", if *holds { "ok  " } else { "FAIL" });
    }
    outcome.passed()
}

/// A sale on `api`, raced by its buyers while `fault` runs; the race's figures.
async fn race_with<F: std::future::Future<Output = Vec<String>>>(
    api: &Api,
    sale: &Sale,
    load: &bench::FlashSale,
    fault: F,
) -> (Race, Vec<String>) {
    tokio::join!(bench::race(api, sale, load), fault)
}

/// The sale's paid orders so far, from ticketing's database: when a fault is due.
async fn paid_so_far(settings: &Settings, event_id: &str) -> i64 {
    let Ok(db) = eventhive_platform::Database::connect(settings, "ticketing").await else { return 0 };
    let paid =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM orders WHERE event_id = $1 AND status = 'paid'")
            .bind(event_id)
            .fetch_one(db.pool())
            .await
            .unwrap_or(0);
    db.close().await;
    paid
}

/// Waits until `count` orders of the sale are paid, or the sale is over (no progress for a
/// while): the fault then lands mid-sale whatever the machine's speed.
async fn when_paid(settings: &Settings, event_id: &str, count: i64) -> i64 {
    let mut last = (-1, Instant::now());
    loop {
        let paid = paid_so_far(settings, event_id).await;
        if paid >= count || last.1.elapsed() > std::time::Duration::from_secs(3) {
            return paid;
        }
        if paid != last.0 {
            last = (paid, Instant::now());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
