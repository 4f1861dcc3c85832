//! The `eventhive` command: run the whole platform on a laptop (`dev`), one service in
//! production (`serve`), or the migrations alone (`migrate`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use eventhive_platform::{Settings, shutdown, telemetry};
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
        /// gateway, identity, catalog, ticketing or payments.
        service: String,
    },
    /// Applies database migrations and exits.
    Migrate {
        /// Services to migrate; all when none is named.
        services: Vec<String>,
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
    telemetry::init(settings.log_format);
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
    }
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
    println!("  API          {url}");
    println!("  API docs     {url}/docs   (OpenAPI: {url}/openapi.json)");
    println!("  identity     gRPC on {}:{}", settings.bind_host, settings.identity_port);
    println!("  catalog      gRPC on {}:{}", settings.bind_host, settings.catalog_port);
    println!("  ticketing    gRPC on {}:{}", settings.bind_host, settings.ticketing_port);
    println!("  payments     gRPC on {}:{}  (simulated card processor)", settings.bind_host, settings.payments_port);
    println!("  storage      {storage}; bus {bus}; rate limits {limits}");
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
