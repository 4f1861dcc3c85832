//! The `eventhive` command: run the whole platform on a laptop (`dev`), one service in
//! production (`serve`), or the migrations alone (`migrate`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use eventhive_platform::{Settings, config::LogFormat, shutdown, telemetry};
use eventhive_system::{ServiceName, System, demo};

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
        /// gateway, identity, catalog, ticketing, payments, notifications or analytics.
        service: String,
    },
    /// Applies database migrations and exits.
    Migrate {
        /// Services to migrate; all when none is named.
        services: Vec<String>,
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
}

#[derive(Subcommand)]
enum NotificationsCommand {
    /// Lists dead deliveries, with their last error.
    DeadLetters,
    /// Queues dead deliveries for sending again: the ids given, or all of them.
    Replay { delivery_ids: Vec<String> },
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

fn parse_services(names: &[String]) -> anyhow::Result<Vec<ServiceName>> {
    names
        .iter()
        .map(|name| {
            ServiceName::parse(name).with_context(|| {
                let known: Vec<&str> = ServiceName::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown service {name:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
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
    telemetry::init(settings.log_format.unwrap_or(default_format));
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
                settings.gateway_port = port;
            }
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            settings.dev_mode = true;
            let system = System::start(settings).await?;
            let seeded = if no_seed { false } else { demo::seed(&system.settings).await? };
            print_banner(&system, seeded);
            system.run_until(shutdown::token_on_signal()).await
        }
        Command::Serve { service } => {
            let service = parse_services(&[service])?.remove(0);
            eventhive_system::serve(settings, service).await
        }
        Command::Migrate { services } => eventhive_system::migrate(&settings, &parse_services(&services)?).await,
        Command::Notifications { command } => notifications(&settings, command).await,
        Command::Analytics { command: AnalyticsCommand::Rebuild { offline } } => {
            let replayed = if offline {
                eventhive_analytics::rebuild(&settings).await?
            } else {
                let channel = eventhive_platform::grpc::streaming_channel(&settings.analytics_endpoint())?;
                let mut client = eventhive_proto::analytics::analytics_client::AnalyticsClient::new(channel);
                let response =
                    client.rebuild(eventhive_proto::analytics::RebuildRequest {}).await.with_context(|| {
                        format!(
                            "asking analytics at {} (use --offline when it is stopped)",
                            settings.analytics_endpoint()
                        )
                    })?;
                u64::try_from(response.into_inner().events_replayed).unwrap_or_default()
            };
            println!("analytics rebuilt from {replayed} events");
            Ok(())
        }
    }
}

async fn notifications(settings: &Settings, command: NotificationsCommand) -> anyhow::Result<()> {
    use eventhive_proto::notifications::{
        ListDeadLettersRequest, ReplayDeadLettersRequest, notifications_client::NotificationsClient,
    };
    let channel = eventhive_platform::grpc::channel(
        &settings.notifications_endpoint(),
        std::time::Duration::from_millis(settings.grpc_deadline_ms),
    )?;
    let mut client = NotificationsClient::new(channel);
    let reach = || format!("asking notifications at {}", settings.notifications_endpoint());
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

fn print_banner(system: &System, seeded: bool) {
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
    println!("  API           {url}");
    println!("  API docs      {url}/docs   (OpenAPI: {url}/openapi.json)");
    println!("  identity      gRPC on {}:{}", settings.bind_host, settings.identity_port);
    println!("  catalog       gRPC on {}:{}", settings.bind_host, settings.catalog_port);
    println!("  ticketing     gRPC on {}:{}", settings.bind_host, settings.ticketing_port);
    println!("  payments      gRPC on {}:{}  (simulated card processor)", settings.bind_host, settings.payments_port);
    println!("  notifications gRPC on {}:{}", settings.bind_host, settings.notifications_port);
    println!("  analytics     gRPC on {}:{}", settings.bind_host, settings.analytics_port);
    match &settings.smtp_url {
        Some(smtp) => println!("  mail          sent to {smtp}"),
        None => println!("  mail          kept in the dev inbox: {url}/dev/mail"),
    }
    if let Some(port) = settings.metrics_port.filter(|_| settings.metrics_enabled) {
        println!("  metrics       http://{}:{port}/metrics  (Prometheus)", settings.bind_host);
    }
    println!("  storage       {storage}; bus {bus}; rate limits {limits}");
    println!();
    println!("  Demo logins (password {:?}){}:", demo::PASSWORD, if seeded { "" } else { ", seeded before" });
    println!("    organizer  {}  (owner of Hive Live Productions)", demo::ORGANIZER);
    println!("    door staff {}", demo::STAFF);
    println!("    buyer      {}", demo::BUYER);
    println!();
    println!("  Try: curl -s '{url}/v1/events?q=jazz'");
    println!("  Stop with Ctrl-C.");
    println!();
}
