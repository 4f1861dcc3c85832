//! notifications: email to buyers and ticket holders, driven by domain events. A paid order's
//! buyer gets a confirmation with every ticket's code and QR image; holders hear when their
//! event changes time or venue or is cancelled; buyers hear of a refund they asked for and of
//! a hold that expired. Each email is sent once per domain event and recipient, retried with
//! backoff while the SMTP server fails, and kept as a dead letter (for an operator to replay)
//! after the last attempt. Without an SMTP server, mail is kept in a dev inbox.
//!
//! # Layout
//! - [`service`]: the gRPC glue (dev inbox, dead letters).
//! - [`consumer`]: domain events in; read models kept and emails queued, once per event.
//! - [`directory`]: a buyer's email (identity) and an unknown event's details (catalog).
//! - [`render`]: the email templates (text and HTML) and [`qr`]: ticket QR images.
//! - [`sender`]: queued deliveries out, over SMTP or into the dev inbox, with retries.
//! - [`store`]: every statement on notifications' tables: the read models, and the deliveries.
//! - [`error`]: notifications' errors and their gRPC statuses.

mod consumer;
mod directory;
mod error;
mod qr;
mod render;
mod sender;
mod service;
mod store;

use std::{sync::Arc, time::Duration};

use eventhive_platform::{
    Context, Database, Section, Service, async_trait::async_trait, bus::Subscription, config::ConfigError, grpc,
    service::Handles as ServiceHandles, shutdown::CancellationToken,
};
use eventhive_proto::notifications::notifications_server::NotificationsServer;
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

pub use consumer::EmailConsumer;
pub use directory::{EventDirectory, InMemoryEvents, InMemoryRecipients, RecipientDirectory};
pub use render::Templates;
pub use sender::{SendReport, Sender};
pub use service::NotificationsService;
pub use store::{EVENT_CANCELLED_REASON, EventInfo};

/// The name of this service: its database, its logs, its gRPC health entry.
pub const SERVICE: &str = "notifications";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// The bus queue of the consumer.
const QUEUE: &str = "notifications.email";

/// The consumer's queue. A failure there mostly means identity is briefly unreachable: the bus
/// retries it for as long as `EVENTHIVE_BUS_RETRY_FOR_SECS` allows, so the email still goes out.
fn subscription() -> Subscription {
    Subscription::new(QUEUE, consumer::routing_keys())
}

/// Notifications' settings section: where mail goes and how hard to try.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationsSettings {
    /// An SMTP server for outgoing mail (`smtp://host:port`, `smtps://` for TLS); unset: mail
    /// is kept in the dev inbox served at `GET /dev/mail`.
    pub smtp_url: Option<String>,
    /// The sender of every email.
    pub smtp_from: String,
    /// Attempts to deliver one email before it is dead-lettered (with the default backoff, 12
    /// attempts ride out about 18 minutes of SMTP outage).
    pub smtp_max_attempts: u32,
    /// The first retry's delay; it doubles per attempt (at most 5 minutes).
    pub smtp_retry_base_ms: u64,
    /// How long a delivery being sent is left alone by other senders: longer than a send can
    /// take. It is also how long the emails a sender had in hand wait after it crashes.
    pub smtp_lease_ms: u64,
}

impl Default for NotificationsSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            smtp_from: "EventHive <tickets@eventhive.dev>".into(),
            smtp_max_attempts: 12,
            smtp_retry_base_ms: 1_000,
            smtp_lease_ms: 120_000,
        }
    }
}

impl Section for NotificationsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            return Err(ConfigError::new("smtp_url", "expected an smtp:// or smtps:// URL"));
        }
        if self.smtp_lease_ms < 1_000 {
            return Err(ConfigError::new("smtp_lease_ms", "must be at least 1000"));
        }
        if self.smtp_max_attempts == 0 {
            return Err(ConfigError::new("smtp_max_attempts", "must be at least 1"));
        }
        Ok(())
    }
}

/// What tests (and operators' tools) reach into a running notifications with.
#[derive(Clone)]
pub struct Handles {
    /// Sends due deliveries; `step` does one pass at a chosen time.
    pub sender: Sender,
}

/// A built notifications service, bound to its listener and subscribed, ready to run.
pub struct Application {
    listener: TcpListener,
    /// The deployment's secret key: the service token its gRPC server asks of callers.
    secrets: eventhive_platform::Secrets,
    service: service::NotificationsService,
    sender: Sender,
    db: Database,
    /// Stops the subscription, which starts at build time.
    consuming: CancellationToken,
}

#[async_trait]
impl Service for Application {
    const NAME: &'static str = SERVICE;
    const DEFAULT_PORT: u16 = 50055;
    const USES_BUS: bool = true;
    type Settings = NotificationsSettings;

    fn migrations() -> Option<&'static Migrator> {
        Some(&MIGRATIONS)
    }

    fn subscriptions() -> Vec<Subscription> {
        vec![subscription()]
    }

    /// Builds the mailer and subscribes to the domain events (at once, so that nothing
    /// published from now on is missed).
    async fn build(context: Context) -> anyhow::Result<Self> {
        let secrets = context.secrets()?;
        let settings: NotificationsSettings = context.section()?;
        let db = context.database()?;
        let sender = Sender::new(db.clone(), &settings)?;
        let deadline = Duration::from_millis(context.settings.grpc_deadline_ms);
        let identity = grpc::channel(&context.settings.endpoint("identity")?, deadline, &secrets)?;
        let catalog = grpc::channel(&context.settings.endpoint("catalog")?, deadline, &secrets)?;
        let consumer = consumer::EmailConsumer::new(
            db.clone(),
            Arc::new(render::Templates::new()?),
            Arc::new(directory::IdentityDirectory::new(identity)),
            Arc::new(directory::CatalogDirectory::new(catalog)),
            sender.clone(),
        );
        let consuming = CancellationToken::new();
        context.bus.subscribe(subscription(), Arc::new(consumer), consuming.clone()).await?;
        Ok(Self {
            listener: context.listener,
            secrets,
            service: service::NotificationsService::new(db.clone(), sender.clone()),
            sender,
            db,
            consuming,
        })
    }

    fn handles(&self) -> ServiceHandles {
        ServiceHandles::of(Handles { sender: self.sender.clone() })
    }

    /// Serves gRPC and sends mail until `shutdown`; then stops consuming and closes the database.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Stops the background work on shutdown, and also if serving ends on its own.
        let stop = shutdown.child_token();
        let sending = tokio::spawn(self.sender.clone().run(stop.clone()));
        let consuming = self.consuming.clone();
        let stop_consuming = stop.clone();
        tokio::spawn(async move {
            stop_consuming.cancelled().await;
            consuming.cancel();
        });
        tokio::spawn(eventhive_platform::outbox::prune_periodically(self.db.clone(), stop.clone()));
        let health = tonic_health::server::health_reporter();
        let result = grpc::serve(
            SERVICE,
            self.listener,
            NotificationsServer::new(self.service),
            health,
            shutdown,
            &self.secrets,
        )
        .await;
        stop.cancel();
        if let Err(error) = sending.await {
            tracing::error!(%error, "notifications sender failed");
        }
        self.db.close().await;
        result
    }
}
