//! Ticketing's copy of what catalog sells. It follows catalog's domain events (applied once,
//! newest revision wins), and reads an event from catalog directly when an order names one it
//! has not heard of yet — the event may have been published a moment ago. Its writes go
//! through [`crate::repository::catalog`].

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use eventhive_domain::{
    EventId, OrganizationId, TicketTypeId,
    events::{
        Envelope, EventCancelled, EventChanged, EventPublished, EventSnapshot, TicketTypeSnapshot, VenueSnapshot,
    },
};
use eventhive_platform::grpc::Channel;
use eventhive_platform::{Database, Secrets, bus::MessageHandler, inbox, storage::to_ms};
use eventhive_proto::catalog::{Event, GetEventRequest, catalog_client::CatalogClient};
use ring::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use sqlx::AnyConnection;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::sync::Notify;
use tonic::Code;

use crate::{inventory, repository::catalog};

/// The inbox name of this consumer.
const CONSUMER: &str = "ticketing.catalog-sync";

#[derive(Clone)]
pub struct CatalogSync {
    db: Database,
    catalog: CatalogClient<Channel>,
    shards: i64,
    /// Woken when an event is cancelled, so its orders are refunded now, not at the next sweep.
    sweeper: Arc<Notify>,
    /// Seals each event's private signing key before it is stored.
    secrets: Secrets,
}

impl CatalogSync {
    pub fn new(
        db: Database,
        catalog: CatalogClient<Channel>,
        shards: i64,
        sweeper: Arc<Notify>,
        secrets: Secrets,
    ) -> Self {
        Self { db, catalog, shards, sweeper, secrets }
    }

    /// Applies a snapshot: the event's fields if newer than what we hold, and any new ticket
    /// types with their inventory.
    pub(crate) async fn apply(&self, tx: &mut AnyConnection, snapshot: &EventSnapshot) -> anyhow::Result<()> {
        match catalog::revision(tx, snapshot.event_id).await? {
            None => {
                let (private, public) = new_signing_key()?;
                let sealed = self.secrets.seal(crate::tickets::EVENT_KEY_PURPOSE, private.as_bytes())?;
                catalog::insert_event(tx, snapshot, sealed, public).await?;
            }
            Some(revision) if revision < snapshot.revision => catalog::update_event(tx, snapshot).await?,
            Some(_) => {}
        }
        for ticket_type in &snapshot.ticket_types {
            if catalog::insert_ticket_type(tx, snapshot.event_id, ticket_type).await? {
                let shards = inventory::create(tx, ticket_type.id, ticket_type.capacity, self.shards).await?;
                catalog::set_shards(tx, ticket_type.id, shards).await?;
            }
        }
        Ok(())
    }

    /// Reads a public event from catalog and applies it. `false`: catalog has no such public
    /// event. Must not be called while holding a transaction (SQLite has one connection).
    pub(crate) async fn fetch(&self, event_id: EventId, request_id: Option<&str>) -> anyhow::Result<bool> {
        let request = eventhive_platform::grpc::request(
            GetEventRequest { actor: None, event_id: event_id.to_string() },
            request_id,
        );
        let event = match self.catalog.clone().get_event(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == Code::NotFound => return Ok(false),
            Err(status) => anyhow::bail!("catalog is unavailable: {status}"),
        };
        let snapshot = snapshot_of(&event)?;
        let mut tx = self.db.pool().begin().await?;
        self.apply(&mut tx, &snapshot).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl MessageHandler for CatalogSync {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let (snapshot, cancelled) = if envelope.is::<EventPublished>() {
            (envelope.decode::<EventPublished>()?.event, false)
        } else if envelope.is::<EventChanged>() {
            (envelope.decode::<EventChanged>()?.event, false)
        } else if envelope.is::<EventCancelled>() {
            (envelope.decode::<EventCancelled>()?.event, true)
        } else {
            return Ok(());
        };
        let mut tx = self.db.pool().begin().await?;
        if inbox::claim(&mut tx, CONSUMER, envelope.id).await? {
            self.apply(&mut tx, &snapshot).await?;
        }
        tx.commit().await?;
        if cancelled {
            self.sweeper.notify_one();
        }
        Ok(())
    }
}

/// A new Ed25519 key pair: (PKCS#8 private key, raw public key), both base64url.
fn new_signing_key() -> anyhow::Result<(String, String)> {
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| anyhow::anyhow!("key generation failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| anyhow::anyhow!("generated key is invalid"))?;
    Ok((URL_SAFE_NO_PAD.encode(pkcs8.as_ref()), URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())))
}

fn parse_time(text: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).with_context(|| format!("catalog sent a bad time {text:?}"))
}

/// The snapshot a catalog event stands for.
fn snapshot_of(event: &Event) -> anyhow::Result<EventSnapshot> {
    let venue = event.venue.clone().unwrap_or_default();
    Ok(EventSnapshot {
        event_id: EventId::parse(&event.id)?,
        organization_id: OrganizationId::parse(&event.organization_id)?,
        title: event.title.clone(),
        venue: VenueSnapshot { name: venue.name, city: venue.city, country: venue.country },
        starts_at: parse_time(&event.starts_at)?,
        ends_at: parse_time(&event.ends_at)?,
        currency: event.currency.clone(),
        max_tickets_per_order: event.max_tickets_per_order,
        max_tickets_per_buyer: event.max_tickets_per_buyer,
        status: event.status.clone(),
        ticket_types: event
            .ticket_types
            .iter()
            .map(|t| {
                Ok(TicketTypeSnapshot {
                    id: TicketTypeId::parse(&t.id)?,
                    name: t.name.clone(),
                    price_minor: t.price.as_ref().map(|p| p.amount_minor).unwrap_or_default(),
                    capacity: t.capacity,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        revision: to_ms(parse_time(&event.updated_at)?),
    })
}
