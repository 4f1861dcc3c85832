//! The composition layer: the one place that knows every service. It holds the one list of
//! services, [`SERVICES`], and runs them from it: every service in one process (`eventhive dev`,
//! the tests), one service per process (`eventhive serve <service>`, production), or their
//! migrations alone. The services know nothing of this crate or of each other's crates; each
//! shows the platform one interface, [`eventhive_platform::Service`].
//!
//! # Layout
//! - [`SERVICES`]: the list; adding a service is one line here.
//! - [`subscriptions`]: every queue of every service, declared on the bus before anything runs.
//! - [`prepare`]: settings completed with every service's default port and checked against every
//!   service's section, so a misspelled or bad setting stops start-up with its variable's name.
//! - [`System`]: every service in one process, on chosen or random ports.
//! - [`serve`]: one service as this process.
//! - [`migrate`]: migrations without serving.
//! - [`readiness`]: whether each service answers its health check.
//! - [`demo`]: the demo data of dev mode.

pub mod demo;
pub mod keys;
pub mod readiness;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Context as _;
use eventhive_platform::{
    Database, Settings,
    bus::{self, MessageBus, Subscription},
    config::ConfigError,
    service::{Context, Entry, Handles, open_database},
    shutdown::{self, CancellationToken},
};
use tokio::{net::TcpListener, task::JoinSet};

/// Every service of EventHive, in start order: consumers are built before catalog, whose
/// events they subscribe to, so that nothing catalog publishes is missed; the gateway, which
/// calls the others, comes last.
pub const SERVICES: [Entry; 8] = [
    Entry::of::<eventhive_identity::Application>(),
    Entry::of::<eventhive_payments::Application>(),
    Entry::of::<eventhive_waiting_room::Application>(),
    Entry::of::<eventhive_ticketing::Application>(),
    Entry::of::<eventhive_notifications::Application>(),
    Entry::of::<eventhive_analytics::Application>(),
    Entry::of::<eventhive_catalog::Application>(),
    Entry::of::<eventhive_gateway::Application>(),
];

/// The service named `name`.
pub fn service(name: &str) -> Result<&'static Entry, UnknownService> {
    SERVICES.iter().find(|entry| entry.name == name).ok_or_else(|| UnknownService(name.to_owned()))
}

/// The names of every service, in start order.
pub fn names() -> impl Iterator<Item = &'static str> {
    SERVICES.iter().map(|entry| entry.name)
}

/// Every subscription of every service: the bus's whole topology.
pub fn subscriptions() -> Vec<Subscription> {
    SERVICES.iter().flat_map(|entry| (entry.subscriptions)()).collect()
}

/// Connects the bus and declares the whole topology on it, so that a message published by any
/// service from now on is kept for its consumers even before they subscribe.
pub async fn connect_bus(settings: &Settings) -> anyhow::Result<Arc<dyn MessageBus>> {
    let bus = bus::connect(settings).await?;
    bus.declare_topology(&subscriptions()).await.context("declaring the bus's queues")?;
    Ok(bus)
}

#[derive(Debug, thiserror::Error)]
#[error("unknown service {0:?}; known: {known}", known = names().collect::<Vec<_>>().join(", "))]
pub struct UnknownService(pub String);

/// Completes `settings` with every service's default port and checks them: every service's
/// section must parse and validate, and every key must belong to the shared settings or to a
/// service, so a misspelled variable is an error rather than silently ignored.
pub fn prepare(mut settings: Settings) -> Result<Settings, ConfigError> {
    for entry in &SERVICES {
        settings.set_default(&format!("{}_port", entry.name), entry.default_port);
    }
    for entry in &SERVICES {
        (entry.check_settings)(&settings)?;
        settings.endpoint(entry.name)?;
    }
    let known: Vec<String> = SERVICES.iter().flat_map(Entry::keys).collect();
    if let Some(unknown) = settings.unknown_keys(&known).first() {
        return Err(ConfigError::new(unknown, "is not a setting of EventHive or of any of its services"));
    }
    Ok(settings)
}

async fn bind(settings: &Settings, entry: &Entry) -> anyhow::Result<TcpListener> {
    let address = format!("{}:{}", settings.bind_host, settings.port(entry.name)?);
    TcpListener::bind(&address).await.with_context(|| format!("{} cannot listen on {address}", entry.name))
}

/// The service's database, connected and migrated, if it keeps one.
async fn database(settings: &Settings, entry: &Entry) -> anyhow::Result<Option<Database>> {
    open_database(settings, entry.name, (entry.migrations)()).await
}

type Running = JoinSet<(&'static str, anyhow::Result<()>)>;

/// Every service in one process.
pub struct System {
    /// The settings as running: ports bound to 0 are replaced by the real ones.
    pub settings: Settings,
    pub bus: Arc<dyn MessageBus>,
    handles: BTreeMap<&'static str, Handles>,
    shutdown: CancellationToken,
    tasks: Running,
}

impl System {
    /// Binds every listener (port 0 picks a free one), builds every service, starts them.
    pub async fn start(mut settings: Settings) -> anyhow::Result<Self> {
        // One process, one key: the one configured, or one kept in the data directory.
        eventhive_platform::Secrets::ensure_local_key(&mut settings)?;
        let mut settings = prepare(settings)?;
        let mut listeners = Vec::with_capacity(SERVICES.len());
        for entry in &SERVICES {
            let listener = bind(&settings, entry).await?;
            settings.set(&format!("{}_port", entry.name), listener.local_addr()?.port());
            listeners.push(listener);
        }
        eventhive_platform::metrics::recorder();
        let metrics_listener = eventhive_platform::metrics::bind(&settings).await?;
        if let Some(listener) = &metrics_listener {
            settings.metrics_port = Some(listener.local_addr()?.port());
        }
        let bus = connect_bus(&settings).await?;
        let shutdown = CancellationToken::new();
        let mut handles = BTreeMap::new();
        let mut runs = Vec::with_capacity(SERVICES.len());
        for (entry, listener) in SERVICES.iter().zip(listeners) {
            let database = database(&settings, entry).await?;
            let context = Context { settings: settings.clone(), listener, bus: bus.clone(), database };
            let built = (entry.build)(context).await.with_context(|| format!("building {}", entry.name))?;
            handles.insert(entry.name, built.handles);
            runs.push((entry.name, built.run));
        }
        if let Some(listener) = metrics_listener {
            tokio::spawn(eventhive_platform::metrics::serve(listener, shutdown.clone()));
        }
        let mut tasks = JoinSet::new();
        for (name, run) in runs {
            let token = shutdown.clone();
            tasks.spawn(async move { (name, run(token).await) });
        }
        Ok(Self { settings, bus, handles, shutdown, tasks })
    }

    pub fn gateway_url(&self) -> String {
        let port = self.settings.port(eventhive_gateway::SERVICE).unwrap_or_default();
        format!("http://{}:{port}", self.settings.bind_host)
    }

    /// The handles of the service `name` (see [`eventhive_platform::Service::handles`]).
    pub fn handles(&self, name: &str) -> Handles {
        self.handles.get(name).cloned().unwrap_or_else(Handles::none)
    }

    /// A token whose cancellation stops the whole system.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until `stop` fires or a service fails; then stops every service, waiting at most
    /// the configured grace period.
    pub async fn run_until(mut self, stop: CancellationToken) -> anyhow::Result<()> {
        let failure = tokio::select! {
            () = stop.cancelled() => None,
            Some(joined) = self.tasks.join_next() => Some(joined),
        };
        self.shutdown.cancel();
        let grace = Duration::from_secs(self.settings.shutdown_grace_secs);
        let drained = tokio::time::timeout(grace, async {
            while let Some(joined) = self.tasks.join_next().await {
                report(joined);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(?grace, "services did not stop within the grace period");
            self.tasks.abort_all();
        }
        match failure {
            Some(Ok((service, Err(error)))) => Err(error.context(format!("{service} failed"))),
            Some(Ok((service, Ok(())))) => Err(anyhow::anyhow!("{service} stopped unexpectedly")),
            Some(Err(error)) => Err(anyhow::anyhow!("a service task panicked: {error}")),
            None => Ok(()),
        }
    }

    /// Stops every service now (tests).
    pub async fn stop(self) -> anyhow::Result<()> {
        let token = CancellationToken::new();
        token.cancel();
        self.run_until(token).await
    }
}

fn report(joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>) {
    match joined {
        Ok((service, Ok(()))) => tracing::info!(service, "stopped"),
        Ok((service, Err(error))) => tracing::error!(service, error = format!("{error:#}"), "failed"),
        Err(error) => tracing::error!(%error, "a service task panicked"),
    }
}

/// Runs the service `name` as this process until SIGINT/SIGTERM.
pub async fn serve(settings: Settings, name: &str) -> anyhow::Result<()> {
    let entry = service(name)?;
    let settings = prepare(settings)?;
    production_ready(&settings, entry)?;
    let listener = bind(&settings, entry).await?;
    eventhive_platform::metrics::recorder();
    let metrics_listener = eventhive_platform::metrics::bind(&settings).await?;
    let stop = shutdown::token_on_signal();
    if let Some(listener) = metrics_listener {
        tokio::spawn(eventhive_platform::metrics::serve(listener, stop.clone()));
    }
    let bus: Arc<dyn MessageBus> = if entry.uses_bus {
        connect_bus(&settings).await?
    } else {
        Arc::new(bus::in_process::InProcessBus::in_memory().await?)
    };
    let database = database(&settings, entry).await?;
    let context = Context { settings: settings.clone(), listener, bus, database };
    let built = (entry.build)(context).await.with_context(|| format!("building {}", entry.name))?;
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    shutdown::drain(entry.name, (built.run)(stop.clone()), stop, grace).await
}

/// Under `serve` a service runs in production: it refuses to start on a private SQLite file or
/// an in-process bus, which would lose its data to the next pod and publish into the void.
fn production_ready(settings: &Settings, entry: &Entry) -> Result<(), ConfigError> {
    if (entry.migrations)().is_some() && settings.database_url.is_none() {
        return Err(ConfigError::new(
            "database_url",
            format!("{} keeps data: under serve it needs PostgreSQL (eventhive dev runs on SQLite)", entry.name),
        ));
    }
    if entry.uses_bus && settings.amqp_url.is_none() {
        return Err(ConfigError::new(
            "amqp_url",
            format!("{} publishes or consumes events: under serve it needs RabbitMQ", entry.name),
        ));
    }
    // Every service calls or is called by another: without the key, no call would be trusted.
    eventhive_platform::Secrets::load(settings)?;
    Ok(())
}

/// Applies the migrations of the services named (every service with a database when none is).
pub async fn migrate(settings: &Settings, names: &[String]) -> anyhow::Result<()> {
    let entries: Vec<&Entry> = if names.is_empty() {
        SERVICES.iter().collect()
    } else {
        names.iter().map(|name| service(name)).collect::<Result<_, _>>()?
    };
    for entry in entries {
        if let Some(db) = database(settings, entry).await? {
            tracing::info!(service = entry.name, database = db.location(), "migrated");
            db.close().await;
        }
    }
    Ok(())
}
