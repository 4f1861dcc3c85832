//! Starting EventHive: every service in one process (`eventhive dev`, the tests) or one service
//! per process (`eventhive serve <service>`, production). Each service takes its listener and a
//! shutdown token from here, which is what lets the same code run both ways.
//!
//! # Layout
//! - [`ServiceName`]: the services this build contains.
//! - [`System`]: all of them in one process, on chosen or random ports.
//! - [`serve`]: one of them.
//! - [`migrate`]: migrations without serving.
//! - [`demo`]: the demo data of dev mode.

pub mod demo;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use eventhive_platform::{
    Database, Settings,
    bus::{self, MessageBus},
    shutdown::{self, CancellationToken},
};
use tokio::{net::TcpListener, task::JoinSet};

/// The services this build contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ServiceName {
    Gateway,
    Identity,
    Catalog,
    Ticketing,
    Payments,
    Notifications,
    Analytics,
}

impl ServiceName {
    /// In start order. Consumers are built before catalog, whose events they subscribe to, so
    /// that nothing catalog publishes is missed.
    pub const ALL: [ServiceName; 7] = [
        Self::Identity,
        Self::Payments,
        Self::Ticketing,
        Self::Notifications,
        Self::Analytics,
        Self::Catalog,
        Self::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => eventhive_gateway::SERVICE,
            Self::Identity => eventhive_identity::SERVICE,
            Self::Catalog => eventhive_catalog::SERVICE,
            Self::Ticketing => eventhive_ticketing::SERVICE,
            Self::Payments => eventhive_payments::SERVICE,
            Self::Notifications => eventhive_notifications::SERVICE,
            Self::Analytics => eventhive_analytics::SERVICE,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn port(self, settings: &Settings) -> u16 {
        match self {
            Self::Gateway => settings.gateway_port,
            Self::Identity => settings.identity_port,
            Self::Catalog => settings.catalog_port,
            Self::Ticketing => settings.ticketing_port,
            Self::Payments => settings.payments_port,
            Self::Notifications => settings.notifications_port,
            Self::Analytics => settings.analytics_port,
        }
    }
}

async fn bind(settings: &Settings, service: ServiceName) -> anyhow::Result<TcpListener> {
    let address = format!("{}:{}", settings.bind_host, service.port(settings));
    TcpListener::bind(&address).await.with_context(|| format!("{} cannot listen on {address}", service.as_str()))
}

/// Every service in one process.
pub struct System {
    /// The settings as running: ports bound to 0 are replaced by the real ones.
    pub settings: Settings,
    pub bus: Arc<dyn MessageBus>,
    /// Ticketing's sweeper and fault points, for tests and operator tools.
    pub ticketing: eventhive_ticketing::Handles,
    /// Notifications' sender, for tests that drive deliveries step by step.
    pub notifications: eventhive_notifications::Handles,
    shutdown: CancellationToken,
    tasks: JoinSet<(ServiceName, anyhow::Result<()>)>,
}

impl System {
    /// Binds every listener (port 0 picks a free one), builds every service, starts them.
    pub async fn start(mut settings: Settings) -> anyhow::Result<Self> {
        let identity_listener = bind(&settings, ServiceName::Identity).await?;
        let catalog_listener = bind(&settings, ServiceName::Catalog).await?;
        let ticketing_listener = bind(&settings, ServiceName::Ticketing).await?;
        let payments_listener = bind(&settings, ServiceName::Payments).await?;
        let notifications_listener = bind(&settings, ServiceName::Notifications).await?;
        let analytics_listener = bind(&settings, ServiceName::Analytics).await?;
        let gateway_listener = bind(&settings, ServiceName::Gateway).await?;
        settings.identity_port = identity_listener.local_addr()?.port();
        settings.catalog_port = catalog_listener.local_addr()?.port();
        settings.ticketing_port = ticketing_listener.local_addr()?.port();
        settings.payments_port = payments_listener.local_addr()?.port();
        settings.notifications_port = notifications_listener.local_addr()?.port();
        settings.analytics_port = analytics_listener.local_addr()?.port();
        settings.gateway_port = gateway_listener.local_addr()?.port();

        eventhive_platform::metrics::recorder();
        let metrics_listener = eventhive_platform::metrics::bind(&settings).await?;
        if let Some(listener) = &metrics_listener {
            settings.metrics_port = Some(listener.local_addr()?.port());
        }
        let bus = bus::connect(&settings).await?;
        let identity = eventhive_identity::Application::build(&settings, identity_listener).await?;
        let payments = eventhive_payments::Application::build(&settings, payments_listener).await?;
        // Ticketing subscribes to catalog's events, so it is built before catalog publishes.
        let ticketing = eventhive_ticketing::Application::build(&settings, ticketing_listener, bus.clone()).await?;
        let notifications =
            eventhive_notifications::Application::build(&settings, notifications_listener, bus.clone()).await?;
        let analytics = eventhive_analytics::Application::build(&settings, analytics_listener, bus.clone()).await?;
        let catalog = eventhive_catalog::Application::build(&settings, catalog_listener, bus.clone()).await?;
        let gateway = eventhive_gateway::Application::build(&settings, gateway_listener).await?;
        let ticketing_handles = ticketing.handles();
        let notifications_handles = notifications.handles();

        let shutdown = CancellationToken::new();
        if let Some(listener) = metrics_listener {
            tokio::spawn(eventhive_platform::metrics::serve(listener, shutdown.clone()));
        }
        let mut tasks = JoinSet::new();
        let token = shutdown.clone();
        tasks.spawn(async move { (ServiceName::Identity, identity.run_until_stopped(token).await) });
        let token = shutdown.clone();
        tasks.spawn(async move { (ServiceName::Payments, payments.run_until_stopped(token).await) });
        let token = shutdown.clone();
        tasks.spawn(async move { (ServiceName::Ticketing, ticketing.run_until_stopped(token).await) });
        let token = shutdown.clone();
        tasks.spawn(async move { (ServiceName::Notifications, notifications.run_until_stopped(token).await) });
        let token = shutdown.clone();
        tasks.spawn(async move { (ServiceName::Analytics, analytics.run_until_stopped(token).await) });
        let token = shutdown.clone();
        tasks.spawn(async move { (ServiceName::Catalog, catalog.run_until_stopped(token).await) });
        let token = shutdown.clone();
        tasks.spawn(async move { (ServiceName::Gateway, gateway.run_until_stopped(token).await) });
        Ok(Self { settings, bus, ticketing: ticketing_handles, notifications: notifications_handles, shutdown, tasks })
    }

    pub fn gateway_url(&self) -> String {
        format!("http://{}:{}", self.settings.bind_host, self.settings.gateway_port)
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
            Some(Ok((service, Err(error)))) => Err(error.context(format!("{} failed", service.as_str()))),
            Some(Ok((service, Ok(())))) => Err(anyhow::anyhow!("{} stopped unexpectedly", service.as_str())),
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

fn report(joined: Result<(ServiceName, anyhow::Result<()>), tokio::task::JoinError>) {
    match joined {
        Ok((service, Ok(()))) => tracing::info!(service = service.as_str(), "stopped"),
        Ok((service, Err(error))) => {
            tracing::error!(service = service.as_str(), error = format!("{error:#}"), "failed")
        }
        Err(error) => tracing::error!(%error, "a service task panicked"),
    }
}

/// Runs one service as this process until SIGINT/SIGTERM.
pub async fn serve(settings: Settings, service: ServiceName) -> anyhow::Result<()> {
    let listener = bind(&settings, service).await?;
    eventhive_platform::metrics::recorder();
    let metrics_listener = eventhive_platform::metrics::bind(&settings).await?;
    let stop = shutdown::token_on_signal();
    if let Some(listener) = metrics_listener {
        tokio::spawn(eventhive_platform::metrics::serve(listener, stop.clone()));
    }
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    let work: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>> = match service {
        ServiceName::Identity => {
            Box::pin(eventhive_identity::Application::build(&settings, listener).await?.run_until_stopped(stop.clone()))
        }
        ServiceName::Catalog => {
            let bus = bus::connect(&settings).await?;
            Box::pin(
                eventhive_catalog::Application::build(&settings, listener, bus).await?.run_until_stopped(stop.clone()),
            )
        }
        ServiceName::Gateway => {
            Box::pin(eventhive_gateway::Application::build(&settings, listener).await?.run_until_stopped(stop.clone()))
        }
        ServiceName::Ticketing => {
            let bus = bus::connect(&settings).await?;
            Box::pin(
                eventhive_ticketing::Application::build(&settings, listener, bus)
                    .await?
                    .run_until_stopped(stop.clone()),
            )
        }
        ServiceName::Payments => {
            Box::pin(eventhive_payments::Application::build(&settings, listener).await?.run_until_stopped(stop.clone()))
        }
        ServiceName::Notifications => {
            let bus = bus::connect(&settings).await?;
            Box::pin(
                eventhive_notifications::Application::build(&settings, listener, bus)
                    .await?
                    .run_until_stopped(stop.clone()),
            )
        }
        ServiceName::Analytics => {
            let bus = bus::connect(&settings).await?;
            Box::pin(
                eventhive_analytics::Application::build(&settings, listener, bus)
                    .await?
                    .run_until_stopped(stop.clone()),
            )
        }
    };
    shutdown::drain(service.as_str(), work, stop, grace).await
}

/// Applies the migrations of `services` (every service with a database when empty).
pub async fn migrate(settings: &Settings, services: &[ServiceName]) -> anyhow::Result<()> {
    let services = if services.is_empty() { &ServiceName::ALL[..] } else { services };
    for service in services {
        let migrations = match service {
            ServiceName::Identity => &eventhive_identity::MIGRATIONS,
            ServiceName::Catalog => &eventhive_catalog::MIGRATIONS,
            ServiceName::Ticketing => &eventhive_ticketing::MIGRATIONS,
            ServiceName::Payments => &eventhive_payments::MIGRATIONS,
            ServiceName::Notifications => &eventhive_notifications::MIGRATIONS,
            ServiceName::Analytics => &eventhive_analytics::MIGRATIONS,
            ServiceName::Gateway => continue,
        };
        let db = Database::connect(settings, service.as_str()).await?;
        db.migrate(migrations).await?;
        tracing::info!(service = service.as_str(), database = db.location(), "migrated");
        db.close().await;
    }
    Ok(())
}
