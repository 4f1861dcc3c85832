//! The `eventhive` command:
//! - `dev`: the whole platform in one process on a laptop, with demo data;
//! - `serve <service>`: one service as this process, in production;
//! - `migrate [service...]`: the migrations alone;
//! - `dead-letters list|replay`: bus messages parked in a queue's dead letters, on either bus;
//! - `notifications dead-letters|replay`: emails that failed every attempt;
//! - `analytics rebuild [--offline]`: the sales figures recomputed from the stored events;
//! - `bench flash-sale`: the on-sale of a hit event, timed and then verified;
//! - `chaos`: faults injected from outside the processes under that load, then every invariant
//!   checked from the databases and the broker.
//!
//! Every command reads the same settings (see `eventhive_platform::config`); the services come
//! from the one list in `eventhive_system::SERVICES`.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};

mod bench;
mod chaos;
mod dead_letters;
use eventhive_platform::{Settings, config::LogFormat, shutdown, telemetry};
use eventhive_system::{SERVICES, System, demo};

#[derive(Parser)]
#[command(name = "eventhive", version, about = "EventHive: event ticketing that holds up on the busiest on-sale.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every service in one process, each on its own loopback port, with demo data. Embedded
    /// SQLite and an in-process bus unless EVENTHIVE_DATABASE_URL / EVENTHIVE_AMQP_URL /
    /// EVENTHIVE_REDIS_URL point at PostgreSQL, RabbitMQ and Redis.
    Dev {
        /// The gateway's port (default 8080, or EVENTHIVE_GATEWAY_PORT).
        #[arg(long)]
        port: Option<u16>,
        /// Where embedded storage lives (default .eventhive, or EVENTHIVE_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Start without demo data.
        #[arg(long)]
        no_seed: bool,
    },
    /// One service as this process, for production.
    Serve {
        /// The service's name: gateway, identity, catalog, ticketing, payments, notifications,
        /// analytics.
        service: String,
    },
    /// Applies database migrations and exits.
    Migrate {
        /// Services to migrate; all when none is named.
        services: Vec<String>,
    },
    /// Bus messages that can never be handled or failed for longer than the retries allow,
    /// parked per queue with the reason (RabbitMQ's `<queue>.dlq`, or the in-process bus's
    /// database under `eventhive dev`).
    DeadLetters {
        #[command(subcommand)]
        command: dead_letters::Command,
    },
    /// Email deliveries that failed every attempt (the dead-letter store).
    Notifications {
        #[command(subcommand)]
        command: NotificationsCommand,
    },
    /// The analytics read model.
    Analytics {
        #[command(subcommand)]
        command: AnalyticsCommand,
    },
    /// The deployment's keys (docs/security.md).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Load generators that behave like real buyers on the public API, and verify after.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Fault injection: the production topology as processes (two replicas of the gateway and
    /// of ticketing behind HAProxy, PostgreSQL and RabbitMQ of its own) under the flash-sale
    /// load; services killed, the broker and the database restarted, payments slowed, the mail
    /// server down; then every invariant checked from the databases and the broker.
    Chaos(chaos::Chaos),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// C buyers race for Q tickets (order + payment each), then every invariant is checked.
    FlashSale(bench::FlashSale),
    /// Times `GET /v1/events/{id}/analytics` as one event grows to 1,000, 10,000 and 100,000
    /// paid orders (published on the platform's bus, as ticketing announces them).
    Analytics(bench::AnalyticsReads),
}

#[derive(Subcommand)]
enum NotificationsCommand {
    /// Lists dead deliveries, with their last error.
    DeadLetters,
    /// Queues dead deliveries for sending again: the ids given, or all of them.
    Replay { delivery_ids: Vec<String> },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Prints a new random secret key, for EVENTHIVE_SECRET_KEY (or the file of
    /// EVENTHIVE_SECRET_KEY_FILE).
    Generate,
    /// A new token-signing key in identity (the old ones verify until their tokens expire), and
    /// every stored private key sealed with the current secret key. To replace the secret key:
    /// set the new one as EVENTHIVE_SECRET_KEY and the old one as
    /// EVENTHIVE_PREVIOUS_SECRET_KEY on every process, run this, then drop the previous key.
    Rotate {
        /// Leave the token-signing keys as they are; only seal again.
        #[arg(long)]
        seal_only: bool,
    },
}

#[derive(Subcommand)]
enum AnalyticsCommand {
    /// Rebuilds the read model from the stored domain events.
    Rebuild {
        /// Work on the database directly instead of asking the running service (use when it is
        /// stopped).
        #[arg(long)]
        offline: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load().and_then(eventhive_system::prepare) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("eventhive: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let default_format = match cli.command {
        Command::Serve { .. } => LogFormat::Json,
        _ => LogFormat::Pretty,
    };
    let service_name = match &cli.command {
        Command::Serve { service, .. } => format!("eventhive-{service}"),
        _ => "eventhive".to_owned(),
    };
    let _traces = match telemetry::init(
        settings.log_format.unwrap_or(default_format),
        settings.otlp_endpoint.as_deref(),
        &service_name,
    ) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("eventhive: cannot export traces to EVENTHIVE_OTLP_ENDPOINT: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(cli, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "eventhive stopped with an error");
            eprintln!("eventhive: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, mut settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev { port, data_dir, no_seed } => {
            if let Some(port) = port {
                settings.set("gateway_port", port);
            }
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            settings.dev_mode = true;
            let system = System::start(settings).await?;
            if let Err(down) = eventhive_system::readiness::wait(&system.settings, Duration::from_secs(30)).await {
                anyhow::bail!("not ready after 30 s: {}", down.join(", "));
            }
            let seeded = if no_seed { false } else { demo::seed(&system.settings).await? };
            print_banner(&system, seeded)?;
            system.run_until(shutdown::token_on_signal()).await
        }
        Command::Serve { service } => eventhive_system::serve(settings, &service).await,
        Command::Migrate { services } => eventhive_system::migrate(&settings, &services).await,
        Command::DeadLetters { command } => dead_letters::run(&settings, command).await,
        Command::Notifications { command } => notifications(&settings, command).await,
        Command::Keys { command: KeysCommand::Generate } => {
            println!("{}", eventhive_platform::Secrets::new_key_text()?);
            Ok(())
        }
        Command::Keys { command: KeysCommand::Rotate { seal_only } } => {
            for line in eventhive_system::keys::rotate(&settings, seal_only).await? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Bench { command: BenchCommand::FlashSale(options) } => bench::flash_sale(options, settings).await,
        Command::Bench { command: BenchCommand::Analytics(options) } => bench::analytics_reads(options, settings).await,
        Command::Chaos(options) => chaos::run(options).await,
        Command::Analytics { command: AnalyticsCommand::Rebuild { offline } } => {
            let replayed = if offline {
                eventhive_analytics::rebuild(&settings).await?
            } else {
                let endpoint = settings.endpoint(eventhive_analytics::SERVICE)?;
                let channel = eventhive_platform::grpc::streaming_channel(&endpoint, &admin_secrets(&settings)?)?;
                let mut client = eventhive_proto::analytics::analytics_client::AnalyticsClient::new(channel);
                let response = client
                    .rebuild(eventhive_proto::analytics::RebuildRequest {})
                    .await
                    .with_context(|| format!("asking analytics at {endpoint} (use --offline when it is stopped)"))?;
                u64::try_from(response.into_inner().events_replayed).unwrap_or_default()
            };
            println!("analytics rebuilt from {replayed} events");
            Ok(())
        }
    }
}

/// The key a command that calls a running service presents: the deployment's
/// (`EVENTHIVE_SECRET_KEY`), or, next to an `eventhive dev`, the one in its data directory.
fn admin_secrets(settings: &Settings) -> anyhow::Result<eventhive_platform::Secrets> {
    let mut settings = settings.clone();
    eventhive_platform::Secrets::ensure_local_key(&mut settings)?;
    Ok(eventhive_platform::Secrets::load(&settings)?)
}

async fn notifications(settings: &Settings, command: NotificationsCommand) -> anyhow::Result<()> {
    use eventhive_proto::notifications::{
        ListDeadLettersRequest, ReplayDeadLettersRequest, notifications_client::NotificationsClient,
    };
    let endpoint = settings.endpoint(eventhive_notifications::SERVICE)?;
    let deadline = std::time::Duration::from_millis(settings.grpc_deadline_ms);
    let secrets = admin_secrets(settings)?;
    let mut client = NotificationsClient::new(eventhive_platform::grpc::channel(&endpoint, deadline, &secrets)?);
    let reach = || format!("asking notifications at {endpoint}");
    match command {
        NotificationsCommand::DeadLetters => {
            let letters = client.list_dead_letters(ListDeadLettersRequest {}).await.with_context(reach)?.into_inner();
            if letters.dead_letters.is_empty() {
                println!("no dead letters");
            }
            for letter in letters.dead_letters {
                println!(
                    "{}  {}  to {}  {:?}  after {} attempts: {}",
                    letter.delivery_id, letter.kind, letter.to, letter.subject, letter.attempts, letter.last_error
                );
            }
        }
        NotificationsCommand::Replay { delivery_ids } => {
            let replayed = client
                .replay_dead_letters(ReplayDeadLettersRequest { delivery_ids })
                .await
                .with_context(reach)?
                .into_inner();
            println!("{} deliveries queued again", replayed.replayed);
        }
    }
    Ok(())
}

fn print_banner(system: &System, seeded: bool) -> anyhow::Result<()> {
    let settings = &system.settings;
    let url = system.gateway_url();
    let storage = match &settings.database_url {
        Some(_) => format!("PostgreSQL (databases {}_<service>)", settings.database_prefix),
        None => format!("SQLite files in {}", settings.data_dir.display()),
    };
    let bus = if settings.amqp_url.is_some() { "RabbitMQ" } else { "in-process" };
    let limits = if settings.redis_url.is_some() { "Redis" } else { "in memory" };
    println!();
    println!("  EventHive is running.");
    println!();
    println!("  Storefront    {url}/   (door check-in: {url}/door)");
    println!("  API           {url}");
    println!("  API docs      {url}/docs   (OpenAPI: {url}/openapi.json)");
    for entry in SERVICES.iter().filter(|entry| entry.name != eventhive_gateway::SERVICE) {
        println!("  {:<13} gRPC on {}:{}", entry.name, settings.bind_host, settings.port(entry.name)?);
    }
    let mail: eventhive_notifications::NotificationsSettings = settings.section()?;
    match &mail.smtp_url {
        Some(smtp) => println!("  mail          sent to {smtp}"),
        None => println!("  mail          kept in the dev inbox: {url}/dev/mail"),
    }
    if let Some(port) = settings.metrics_port.filter(|_| settings.metrics_enabled) {
        println!("  metrics       http://{}:{port}/metrics  (Prometheus)", settings.bind_host);
    }
    println!("  storage       {storage}; bus {bus}; rate limits {limits}; card processor simulated");
    println!();
    println!("  Demo logins (password {:?}){}:", demo::PASSWORD, if seeded { "" } else { ", seeded before" });
    println!("    organizer  {}  (owner of Hive Live Productions)", demo::ORGANIZER);
    println!("    door staff {}  (checks tickets in at {url}/door)", demo::STAFF);
    println!("    buyer      {}", demo::BUYER);
    println!();
    println!("  Try: curl -s '{url}/v1/events?q=jazz'");
    println!("  Stop with Ctrl-C.");
    println!();
    Ok(())
}
