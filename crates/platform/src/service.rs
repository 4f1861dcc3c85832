//! The one interface a service shows the platform. Whoever runs services — `eventhive dev` (all
//! of them in one process), `eventhive serve <name>` (one), `eventhive migrate`, the test
//! harness — knows a service only through [`Service`], and finds it in the one list of the
//! composition layer above the services (`eventhive_system::SERVICES`).
//!
//! What a service declares: its name, its default port, its settings section, its migrations
//! (if it owns a database), the bus subscriptions it makes, and whether it serves gRPC or HTTP
//! health. What it is given: a
//! [`Context`] with the settings, its bound listener, the bus and its migrated database.

use std::{any::Any, sync::Arc};

use async_trait::async_trait;
use futures::future::BoxFuture;
pub use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    Database, Settings,
    bus::{MessageBus, Subscription},
    config::{ConfigError, Section},
};

/// How whoever runs a service learns it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The standard `grpc.health.v1.Health` service, with the service's name as the entry.
    Grpc,
    /// An HTTP endpoint answering 200 when ready, e.g. `/readyz`.
    Http { path: &'static str },
}

/// A service, as the platform sees it.
#[async_trait]
pub trait Service: Sized + Send + 'static {
    /// Its name: its database (`<prefix>_<name>`), its logs, its health entry, its
    /// `<name>_port` and `<name>_url` settings, its argument to `eventhive serve`.
    const NAME: &'static str;
    /// The port it listens on unless `EVENTHIVE_<NAME>_PORT` says otherwise.
    const DEFAULT_PORT: u16;
    /// How it reports readiness.
    const HEALTH: Health = Health::Grpc;
    /// Whether it publishes or consumes domain events, so needs the bus.
    const USES_BUS: bool = false;
    /// Its own settings, read from the shared flat namespace.
    type Settings: Section;

    /// Its database's migrations, or `None` when it keeps no database.
    fn migrations() -> Option<&'static Migrator>;

    /// Every subscription it makes in `build`, known before any service is built, so that the
    /// whole topology is declared before anything is published (a message published before its
    /// consumer's queue exists would otherwise be refused, or on a broker dropped).
    fn subscriptions() -> Vec<Subscription> {
        Vec::new()
    }

    /// Builds the service on what it is given; by return it is subscribed to everything it
    /// consumes, so nothing published from then on is missed.
    async fn build(context: Context) -> anyhow::Result<Self>;

    /// Serves until `shutdown` fires, then drains and closes what it opened.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()>;

    /// What tests and operators' tools in the same process reach into it with (a sweeper to
    /// step, fault points to arm); nothing by default.
    fn handles(&self) -> Handles {
        Handles::none()
    }
}

/// What a service is built from.
pub struct Context {
    pub settings: Settings,
    /// Bound by the caller, on port 0 in tests, so `eventhive dev` can run every service in one
    /// process.
    pub listener: TcpListener,
    /// Connected by the caller and shared by every service of the process.
    pub bus: Arc<dyn MessageBus>,
    /// The service's own database, connected and migrated; `None` when it has no migrations.
    pub database: Option<Database>,
}

impl Context {
    /// The context of `S` alone, its database connected and migrated: for a test or tool that
    /// runs one service on its own.
    pub async fn of<S: Service>(
        settings: Settings,
        listener: TcpListener,
        bus: Arc<dyn MessageBus>,
    ) -> anyhow::Result<Self> {
        let database = open_database(&settings, S::NAME, S::migrations()).await?;
        Ok(Self { settings, listener, bus, database })
    }

    /// The service's own database.
    pub fn database(&self) -> anyhow::Result<Database> {
        self.database
            .clone()
            .ok_or_else(|| anyhow::anyhow!("this service declares no migrations, so it has no database"))
    }

    /// Its section of the settings, validated.
    pub fn section<S: Section>(&self) -> anyhow::Result<S> {
        Ok(self.settings.section::<S>()?)
    }

    /// The deployment's secret key: for the service token of its gRPC calls and server, and for
    /// what it keeps sealed or keyed.
    pub fn secrets(&self) -> anyhow::Result<crate::Secrets> {
        Ok(crate::Secrets::load(&self.settings)?)
    }
}

/// The database of the service `name`, connected and migrated, if it has migrations.
pub async fn open_database(
    settings: &Settings,
    name: &str,
    migrations: Option<&Migrator>,
) -> anyhow::Result<Option<Database>> {
    let Some(migrations) = migrations else { return Ok(None) };
    let db = Database::connect(settings, name).await?;
    db.migrate(migrations).await.map_err(|error| error.context(format!("migrating {name}")))?;
    Ok(Some(db))
}

/// A service's handles, typed by the service and opened by whoever knows its type.
#[derive(Clone)]
pub struct Handles(Option<Arc<dyn Any + Send + Sync>>);

impl Handles {
    pub fn none() -> Self {
        Self(None)
    }

    pub fn of<T: Any + Send + Sync>(handles: T) -> Self {
        Self(Some(Arc::new(handles)))
    }

    /// The handles as the service's own type, if they are of that type.
    pub fn get<T: Any + Send + Sync + Clone>(&self) -> Option<T> {
        self.0.as_ref()?.downcast_ref::<T>().cloned()
    }
}

/// One entry of the list of services: a [`Service`] with its type erased, so that one list can
/// hold them all and be iterated by `dev`, `serve`, `migrate`, readiness and the test harness.
#[derive(Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub default_port: u16,
    pub health: Health,
    pub uses_bus: bool,
    pub migrations: fn() -> Option<&'static Migrator>,
    pub subscriptions: fn() -> Vec<Subscription>,
    /// The keys of its settings section.
    pub settings_keys: fn() -> Vec<String>,
    /// Reads and validates its section, so a bad value stops start-up before anything runs.
    pub check_settings: fn(&Settings) -> Result<(), ConfigError>,
    pub build: fn(Context) -> BoxFuture<'static, anyhow::Result<Built>>,
}

/// A built service, ready to run.
pub struct Built {
    pub handles: Handles,
    pub run: Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> + Send>,
}

impl Entry {
    pub const fn of<S: Service>() -> Self {
        Self {
            name: S::NAME,
            default_port: S::DEFAULT_PORT,
            health: S::HEALTH,
            uses_bus: S::USES_BUS,
            migrations: S::migrations,
            subscriptions: S::subscriptions,
            settings_keys: <S::Settings as Section>::keys,
            check_settings: check_settings::<S>,
            build: build::<S>,
        }
    }

    /// Every key it owns: its section's, its port and its URL.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = (self.settings_keys)();
        keys.push(format!("{}_port", self.name));
        keys.push(format!("{}_url", self.name));
        keys
    }
}

fn check_settings<S: Service>(settings: &Settings) -> Result<(), ConfigError> {
    settings.section::<S::Settings>().map(drop)
}

fn build<S: Service>(context: Context) -> BoxFuture<'static, anyhow::Result<Built>> {
    Box::pin(async move {
        let service = S::build(context).await?;
        let handles = service.handles();
        let run: Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> + Send> =
            Box::new(move |shutdown| Box::pin(service.run_until_stopped(shutdown)));
        Ok(Built { handles, run })
    })
}
