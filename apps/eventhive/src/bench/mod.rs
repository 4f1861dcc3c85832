//! `eventhive bench flash-sale`: the on-sale of a hit event, as real buyers would make it, on
//! the public API only. Setup (untimed): an organizer, one or more events sharing Q tickets
//! over one or more ticket types, C registered buyers. Timed, by `--mode`: the C buyers race,
//! each repeating order + payment with Idempotency-Keys, until the events are sold out or each
//! has spent its attempts (`race`); purchases arrive at a fixed rate (`steady`); anonymous
//! clients read the event list and pages (`browse`); accounts register and log in all at once
//! (`logins`). Verified after: from the API and, when the platform runs in this process, from
//! its databases — sold never above capacity, paid orders == tickets == captures ==
//! confirmation emails, analytics equal to the truth. A failed check exits non-zero.
//!
//! # Layout
//! - [`setup`]: the organizer, the events and the buyers.
//! - [`race`]: the race; the purchase and its bookkeeping, shared with [`steady`].
//! - [`steady`], [`browse`], [`logins`]: the other modes; [`storm`] counts their requests.
//! - [`verify`]: the invariants, from the API and the databases.
//! - [`report`]: one screen, and `--json`; [`histograms`] for the latency tables.
//! - [`timeline`], [`progress`], [`plot`]: each second of the run, on stderr and in `--plot`.
//! - [`usage`]: CPU and peak RSS of the server processes.
//! - [`waiting`]: `--waiting-room`, the same sale behind a waiting room.
//! - [`watchers`]: `--analytics-streams`, the sale watched live by its organizers.
//!
//! `eventhive bench analytics` ([`reads`]) times the read of an event's figures as the event
//! grows to 1,000, 10,000 and 100,000 paid orders.

mod browse;
mod histograms;
mod logins;
mod plot;
mod progress;
mod race;
mod reads;
mod report;
mod setup;
mod steady;
mod storm;
mod timeline;
mod usage;
mod verify;
mod waiting;
mod watchers;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Args;
use eventhive_platform::{Settings, bus::MessageBus, shutdown::CancellationToken};
use eventhive_system::System;

/// `eventhive bench flash-sale`.
#[derive(Debug, Args)]
pub struct FlashSale {
    /// The gateway of a running platform. Unset: the benchmark starts one in this process
    /// (embedded, or on real infrastructure with --infra), rate limits off, and stops it after.
    #[arg(long)]
    pub url: Option<String>,
    /// With no --url: run the platform on PostgreSQL, RabbitMQ and Redis (EVENTHIVE_DATABASE_URL,
    /// EVENTHIVE_AMQP_URL, EVENTHIVE_REDIS_URL, else their loopback defaults) in fresh databases
    /// dropped after.
    #[arg(long)]
    pub infra: bool,
    /// With --infra: leave the run's databases (`eh_bench_<run>_<service>`) in place and name
    /// them, so that what the sale cost each database can be read from PostgreSQL's statistics
    /// after (scripts/count-purchase-work.sh); the bus's exchange and queues are still removed.
    #[arg(long, requires = "infra")]
    pub keep_databases: bool,
    /// What is measured: `race` (the buyers race to sell-out), `steady` (purchases at --rate
    /// for --duration), `browse` (--buyers anonymous clients read the event list and pages for
    /// --duration), `logins` (--buyers accounts register, then log in, all at once, with the
    /// platform's real password hashing).
    #[arg(long, value_enum, default_value_t = Mode::Race)]
    pub mode: Mode,
    /// Tickets on sale (Q) [default: 1000; with --mode steady, a quarter more than rate × duration].
    #[arg(long)]
    pub tickets: Option<i64>,
    /// Buyers racing (C); the buyers taking turns in steady; the clients in browse; the
    /// accounts in logins.
    #[arg(long, default_value_t = 64)]
    pub buyers: usize,
    /// With --mode steady: purchases started per second, whether or not the platform keeps up.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// With --mode steady or browse: seconds of load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Events on sale at once: the tickets are split among them and the buyers dealt over them.
    #[arg(long, default_value_t = 1)]
    pub events: usize,
    /// Ticket types the tickets are spread over.
    #[arg(long, default_value_t = 1)]
    pub ticket_types: usize,
    /// Order + payment attempts per buyer at most (N).
    #[arg(long, default_value_t = 1000)]
    pub attempts: usize,
    /// The sale behind a waiting room: every buyer joins before it opens, polls as told, and
    /// makes one purchase once admitted.
    #[arg(long)]
    pub waiting_room: bool,
    /// With --waiting-room: a fixed admission rate; unset, automatic.
    #[arg(long)]
    pub admit_per_minute: Option<i64>,
    /// Live analytics streams open on the event during the race, as organizers' dashboards.
    #[arg(long, default_value_t = 0)]
    pub analytics_streams: usize,
    /// Writes the figures as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Writes an SVG plot of each second: purchases (or requests) completed and their p99.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// With --url: the platform's server processes, whose CPU time and peak RSS are reported
    /// (read from /proc, Linux only). Without --url, this process is measured.
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Race,
    Steady,
    Browse,
    Logins,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Race => "race",
            Self::Steady => "steady",
            Self::Browse => "browse",
            Self::Logins => "logins",
        }
    }
}

pub use reads::{AnalyticsReads, analytics_reads};

impl FlashSale {
    fn shape(&self) -> setup::Shape {
        let buyers = if self.mode == Mode::Browse { 0 } else { self.buyers };
        setup::Shape { tickets: self.tickets(), ticket_types: self.ticket_types, buyers, events: self.events }
    }

    /// Q: as given; else enough for a steady run never to sell out, else 1000.
    fn tickets(&self) -> i64 {
        match (self.tickets, self.mode) {
            (Some(tickets), _) => tickets,
            (None, Mode::Steady) => {
                let due = i64::try_from(steady::purchases(self.rate, self.duration())).unwrap_or(i64::MAX);
                (due + due / 4).max(self.minimum_tickets())
            }
            (None, _) => 1000,
        }
    }

    /// One ticket for each ticket type of each event.
    fn minimum_tickets(&self) -> i64 {
        i64::try_from(self.events.saturating_mul(self.ticket_types)).unwrap_or(i64::MAX)
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration)
    }

    /// Options that make no sense together are refused before anything starts.
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.buyers > 0 && self.ticket_types > 0 && self.events > 0, "nothing to race for");
        anyhow::ensure!(
            self.tickets() >= self.minimum_tickets(),
            "--tickets must give every ticket type of every event one ticket ({})",
            self.minimum_tickets()
        );
        anyhow::ensure!(
            self.events == 1 || (!self.waiting_room && self.analytics_streams == 0),
            "--waiting-room and --analytics-streams watch one event: use them with --events 1"
        );
        anyhow::ensure!(self.mode == Mode::Race || !self.waiting_room, "--waiting-room is a race: use --mode race");
        if matches!(self.mode, Mode::Race | Mode::Steady) {
            anyhow::ensure!(self.buyers >= self.events, "every event needs a buyer: --buyers at least --events");
        }
        if matches!(self.mode, Mode::Steady | Mode::Browse) {
            anyhow::ensure!(self.duration > 0, "--duration must be above 0");
        }
        if self.mode == Mode::Steady {
            anyhow::ensure!(self.rate > 0.0 && self.rate.is_finite(), "--rate must be above 0");
            let per_buyer = steady::purchases(self.rate, self.duration()).div_ceil(self.buyers as u64);
            anyhow::ensure!(
                per_buyer <= 1000,
                "each buyer would buy {per_buyer} tickets, over the 1,000 an event allows a buyer: raise --buyers"
            );
        }
        Ok(())
    }
}

/// What the benchmark talks to: a running platform's URL, or one it started itself.
struct Target {
    url: String,
    /// The platform in this process, with its settings, for database checks; `None` with --url.
    system: Option<(Settings, CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>)>,
    /// The bus of the platform in this process.
    bus: Option<Arc<dyn MessageBus>>,
    /// The bus queues the platform in this process declared, removed after an --infra run.
    queues: Vec<String>,
    _data_dir: Option<tempfile::TempDir>,
}

pub async fn flash_sale(options: FlashSale, mut settings: Settings) -> anyhow::Result<()> {
    options.validate()?;
    let hashing = if options.mode == Mode::Logins { Hashing::Production } else { Hashing::Cheap };
    let target = start(options.url.as_deref(), options.infra, hashing, &mut settings).await?;
    let outcome = run(&options, &target).await;
    stop(target, options.infra, options.keep_databases).await;
    let figures = outcome?;
    report::print(&options, &figures);
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report::json(&options, &figures))?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &options.plot {
        plot::write(path, &report::title(&options), figures.completing(), figures.seconds())?;
    }
    anyhow::ensure!(
        figures.verdict.failures.is_empty(),
        "verification failed: {}",
        figures.verdict.failures.join("; ")
    );
    Ok(())
}

pub(crate) use race::Race;
pub(crate) use setup::{Api, Sale};
pub(crate) use verify::inventory;

/// A client of the public API at `url`, as the buyers use it.
pub(crate) fn api(url: &str) -> anyhow::Result<Api> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).timeout(Duration::from_secs(30)).build()?;
    Ok(Api { client, url: url.trim_end_matches('/').to_owned() })
}

/// The organizer, the event on sale and the signed-in buyers `options` ask for.
pub(crate) async fn sale(api: &Api, options: &FlashSale) -> anyhow::Result<Sale> {
    setup::sale(api, options.shape()).await
}

/// The buyers race for the sale's tickets, without a waiting room.
pub(crate) async fn race(api: &Api, sale: &Sale, options: &FlashSale) -> Race {
    race::run(api, sale, options, None).await
}

async fn run(options: &FlashSale, target: &Target) -> anyhow::Result<report::Figures> {
    let api = api(&target.url)?;
    let servers = match (&options.url, options.pids.is_empty()) {
        (None, _) => Some(usage::Servers::ThisProcess),
        (Some(_), false) => Some(usage::Servers::Pids(options.pids.clone())),
        (Some(_), true) => None,
    };
    if options.mode == Mode::Logins {
        eprintln!("bench: {} accounts register, then log in, all at once", options.buyers);
        let meter = servers.map(usage::Meter::start);
        let logins = logins::run(&api, options.buyers).await;
        let usage = meter.map(usage::Meter::finish);
        let mut verdict = verify::Verdict::default();
        for (step, (requests, _)) in [("registration", &logins.register), ("login", &logins.login)] {
            verdict.check(format!("every {step} succeeded ({} failed)", requests.failed()), requests.failed() == 0);
        }
        return Ok(report::Figures { measured: report::Measured::Logins(logins), verdict, usage });
    }
    let shape = options.shape();
    eprintln!("bench: setting up {} tickets over {} event(s) for {} buyers", shape.tickets, shape.events, shape.buyers);
    let sale = setup::sale(&api, shape).await?;
    if options.mode == Mode::Browse {
        eprintln!("bench: {} clients browsing for {} s", options.buyers, options.duration);
        let meter = servers.map(usage::Meter::start);
        let browse = browse::run(&api, &sale, options.buyers, options.duration()).await;
        let usage = meter.map(usage::Meter::finish);
        let mut verdict = verify::Verdict::default();
        for (route, requests) in [("GET /v1/events", &browse.list), ("GET /v1/events/{id}", &browse.page)] {
            let (done, failed) = (requests.latency.len(), requests.failed());
            verdict.check(
                format!("{route} answered 200 every time ({failed} of {done} did not)"),
                failed == 0 && done > 0,
            );
        }
        return Ok(report::Figures { measured: report::Measured::Browse(browse), verdict, usage });
    }
    let gate = if options.waiting_room {
        eprintln!("bench: {} buyers join the waiting room before it opens", options.buyers);
        Some(waiting::open(&api, &sale, options).await?)
    } else {
        None
    };
    let watchers = match options.analytics_streams {
        0 => None,
        streams => {
            eprintln!("bench: opening {streams} live analytics streams on the event");
            Some(watchers::open(&api, &sale, streams).await?)
        }
    };
    let meter = servers.map(usage::Meter::start);
    let race = if options.mode == Mode::Steady {
        eprintln!("bench: {} purchases a second for {} s", options.rate, options.duration);
        steady::run(&api, &sale, options.rate, options.duration()).await
    } else {
        eprintln!("bench: racing");
        race::run(&api, &sale, options, gate.clone()).await
    };
    let usage = meter.map(usage::Meter::finish);
    let watched = match watchers {
        Some(watchers) => Some(watchers.close().await),
        None => None,
    };
    let queue = match &gate {
        Some(gate) => Some(gate.figures().await),
        None => None,
    };
    eprintln!("bench: verifying");
    let settings = target.system.as_ref().map(|(settings, _, _)| settings);
    let mut verdict = verify::check(&api, &sale, &race, settings).await?;
    if let Some(queue) = &queue {
        // The waiting room's promise: a random order among the early, and nobody overtaken.
        let (early, admitted) = (queue.buyers, queue.admitted);
        verdict.check(format!("the {early} early arrivals hold positions 1..{early}"), queue.positions_are_a_draw);
        verdict.check(
            format!("the {admitted} admitted buyers hold positions 1..{admitted}: nobody was overtaken"),
            queue.admitted_are_the_front,
        );
    }
    if let Some(watched) = &watched {
        // Each stream sends the figures once at once; a stream that ended was a dashboard lost.
        verdict.check(
            format!("{} live analytics streams stayed open and each received figures", watched.streams),
            watched.ended_early == 0 && watched.received >= watched.streams as u64,
        );
    }
    Ok(report::Figures { measured: report::Measured::Sale { race, queue, watched }, verdict, usage })
}

/// How the platform the benchmark starts hashes passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hashing {
    /// 64 KiB, one pass: the untimed setup registers and logs in every buyer.
    Cheap,
    /// The platform's own settings: the logins mode times them, and their memory.
    Production,
}

/// The platform at `url`, or one started in this process (on real infrastructure with `infra`).
async fn start(url: Option<&str>, infra: bool, hashing: Hashing, settings: &mut Settings) -> anyhow::Result<Target> {
    if let Some(url) = url {
        return Ok(Target {
            url: url.trim_end_matches('/').to_owned(),
            system: None,
            bus: None,
            queues: Vec::new(),
            _data_dir: None,
        });
    }
    let data_dir = tempfile::tempdir()?;
    settings.data_dir = data_dir.path().to_owned();
    settings.dev_mode = true;
    settings.metrics_enabled = false;
    settings.set("rate_limit_ip_per_sec", 0);
    settings.set("rate_limit_user_per_sec", 0);
    // The setup registers and logs in every buyer, up to 100,000 with --waiting-room: cheap
    // password hashing keeps that to minutes when no login is timed. An hour-long access
    // token outlasts the setup and the race.
    if hashing == Hashing::Cheap {
        settings.set("password_hash_memory_kib", 64);
        settings.set("password_hash_iterations", 1);
    }
    settings.set("access_token_ttl_secs", 3600);
    for name in eventhive_system::names() {
        settings.set(&format!("{name}_port"), 0);
    }
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    if infra {
        let or = |value: &Option<String>, default: &str| value.clone().or_else(|| Some(default.to_owned()));
        settings.database_url = or(&settings.database_url, "postgres://postgres@127.0.0.1:5432");
        settings.amqp_url = or(&settings.amqp_url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        settings.redis_url = or(&settings.redis_url, "redis://127.0.0.1:6379");
        settings.database_prefix = format!("eh_bench_{run}");
        settings.amqp_exchange = format!("eh-bench-{run}.events");
        settings.redis_prefix = format!("eh-bench-{run}");
    } else {
        settings.database_url = None;
        settings.amqp_url = None;
        settings.redis_url = None;
    }
    let system = System::start(settings.clone()).await?;
    let url = system.gateway_url();
    let settings = system.settings.clone();
    let queues = system.bus.declared_queues();
    let bus = system.bus.clone();
    eventhive_system::readiness::wait(&settings, Duration::from_secs(30))
        .await
        .map_err(|down| anyhow::anyhow!("not ready: {}", down.join(", ")))?;
    let stop = CancellationToken::new();
    let running = tokio::spawn(system.run_until(stop.clone()));
    Ok(Target { url, system: Some((settings, stop, running)), bus: Some(bus), queues, _data_dir: Some(data_dir) })
}

/// Stops the platform the benchmark started, if it did, and removes what an --infra run made
/// (its databases too, unless `keep_databases`).
async fn stop(target: Target, infra: bool, keep_databases: bool) {
    if let Some((settings, stop, running)) = target.system {
        stop.cancel();
        let _ = running.await;
        if infra {
            clean_up(&settings, &target.queues, keep_databases).await;
        }
    }
}

/// Removes what an --infra run made: its exchange and queues, and its databases unless
/// `keep_databases`, in which case it names them (the last line of the standard error).
async fn clean_up(settings: &Settings, queues: &[String], keep_databases: bool) {
    if let Some(url) = &settings.amqp_url
        && let Ok(bus) = eventhive_platform::bus::amqp::AmqpBus::connect(url, &settings.amqp_exchange).await
    {
        for queue in queues {
            let _ = bus.delete_queue(queue).await;
        }
        let _ = bus.delete_exchange().await;
    }
    let Some(url) = &settings.database_url else { return };
    if keep_databases {
        eprintln!("bench: kept the databases {}_<service>", settings.database_prefix);
        return;
    }
    for entry in eventhive_system::SERVICES.iter().filter(|entry| (entry.migrations)().is_some()) {
        let name = format!("{}_{}", settings.database_prefix, entry.name);
        if let Err(error) = eventhive_platform::storage::drop_postgres_database(url, &name).await {
            eprintln!("bench: could not drop {name}: {error:#}");
        }
    }
}
