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
    Database, Settings,
    bus::{MessageBus, Subscription},
    grpc,
    shutdown::CancellationToken,
};
use eventhive_proto::notifications::notifications_server::NotificationsServer;
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
/// Deliveries of one domain event before the bus parks it: generous, because a failure here
/// mostly means identity is briefly unreachable, and the email should still go out.
const MAX_HANDLER_ATTEMPTS: u32 = 10;

/// What tests (and operators' tools) reach into a running notifications with.
#[derive(Clone)]
pub struct Handles {
    /// Sends due deliveries; `step` does one pass at a chosen time.
    pub sender: Sender,
}

/// A built notifications service, bound to its listener and subscribed, ready to run.
pub struct Application {
    listener: TcpListener,
    service: service::NotificationsService,
    sender: Sender,
    db: Database,
    /// Stops the subscription, which starts at build time.
    consuming: CancellationToken,
}

impl Application {
    /// Connects and migrates the database, builds the mailer and subscribes to the domain
    /// events (at once, so that nothing published from now on is missed). `listener` may be
    /// on port 0.
    pub async fn build(settings: &Settings, listener: TcpListener, bus: Arc<dyn MessageBus>) -> anyhow::Result<Self> {
        let db = Database::connect(settings, SERVICE).await?;
        db.migrate(&MIGRATIONS).await?;
        let sender = Sender::new(db.clone(), settings)?;
        let deadline = Duration::from_millis(settings.grpc_deadline_ms);
        let recipients = directory::IdentityDirectory::new(grpc::channel(&settings.identity_endpoint(), deadline)?);
        let events = directory::CatalogDirectory::new(grpc::channel(&settings.catalog_endpoint(), deadline)?);
        let consumer = consumer::EmailConsumer::new(
            db.clone(),
            Arc::new(render::Templates::new()?),
            Arc::new(recipients),
            Arc::new(events),
            sender.clone(),
        );
        let consuming = CancellationToken::new();
        let mut subscription = Subscription::new(QUEUE, consumer::routing_keys());
        subscription.max_attempts = MAX_HANDLER_ATTEMPTS;
        bus.subscribe(subscription, Arc::new(consumer), consuming.clone()).await?;
        Ok(Self {
            listener,
            service: service::NotificationsService::new(db.clone(), sender.clone()),
            sender,
            db,
            consuming,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    pub fn handles(&self) -> Handles {
        Handles { sender: self.sender.clone() }
    }

    /// Serves gRPC and sends mail until `shutdown`; then stops consuming and closes the database.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
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
        let result =
            grpc::serve(SERVICE, self.listener, NotificationsServer::new(self.service), health, shutdown).await;
        stop.cancel();
        if let Err(error) = sending.await {
            tracing::error!(%error, "notifications sender failed");
        }
        self.db.close().await;
        result
    }
}
