//! Where notifications learns what domain events do not say: a buyer's email (from identity)
//! and, for an event it has not heard of, the event's details (from catalog). Both are traits
//! so that tests feed them from memory instead of running the other services.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use anyhow::Context;
use async_trait::async_trait;
use eventhive_domain::{EventId, UserId};
use eventhive_platform::grpc::Channel;
use eventhive_platform::storage::to_ms;
use eventhive_proto::{
    catalog::{GetEventRequest, catalog_client::CatalogClient},
    identity::{GetUserRequest, identity_client::IdentityClient},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tonic::Code;

use crate::store::EventInfo;

/// Who gets a buyer's email.
#[async_trait]
pub trait RecipientDirectory: Send + Sync + 'static {
    /// The email address of `user_id`; `None` if there is no such user. `Err`: cannot tell now,
    /// ask again later.
    async fn email_of(&self, user_id: &UserId) -> anyhow::Result<Option<String>>;
}

/// Identity's `GetUser`.
#[derive(Clone)]
pub struct IdentityDirectory {
    client: IdentityClient<Channel>,
}

impl IdentityDirectory {
    pub fn new(channel: Channel) -> Self {
        Self { client: IdentityClient::new(channel) }
    }
}

#[async_trait]
impl RecipientDirectory for IdentityDirectory {
    #[tracing::instrument(name = "identity.get_user", skip(self))]
    async fn email_of(&self, user_id: &UserId) -> anyhow::Result<Option<String>> {
        let request = GetUserRequest { user_id: user_id.to_string() };
        match self.client.clone().get_user(request).await {
            Ok(profile) => Ok(profile.into_inner().user.map(|user| user.email).filter(|email| !email.is_empty())),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => anyhow::bail!("identity is unavailable: {status}"),
        }
    }
}

/// Emails kept in memory, for tests and tools: add users, count the look-ups, make it fail.
#[derive(Clone, Default)]
pub struct InMemoryRecipients {
    emails: Arc<Mutex<HashMap<UserId, String>>>,
    lookups: Arc<AtomicUsize>,
    /// While set, every look-up fails as if identity were down.
    unavailable: Arc<AtomicBool>,
}

impl InMemoryRecipients {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, user_id: UserId, email: impl Into<String>) {
        self.emails.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(user_id, email.into());
    }

    /// Look-ups so far, failed ones included.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }
}

#[async_trait]
impl RecipientDirectory for InMemoryRecipients {
    async fn email_of(&self, user_id: &UserId) -> anyhow::Result<Option<String>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.unavailable.load(Ordering::SeqCst) {
            anyhow::bail!("the directory is unavailable");
        }
        Ok(self.emails.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(user_id).cloned())
    }
}

/// Details of an event that notifications has not heard of (it started after the event was
/// published, or the deliveries crossed).
#[async_trait]
pub trait EventDirectory: Send + Sync + 'static {
    /// The event, if it exists and is public. `Err`: cannot tell now.
    async fn event(&self, event_id: &EventId) -> anyhow::Result<Option<EventInfo>>;
}

/// Catalog's `GetEvent`, as an anonymous caller: on-sale and cancelled events are public, and
/// those are the only ones anybody holds tickets for.
#[derive(Clone)]
pub struct CatalogDirectory {
    client: CatalogClient<Channel>,
}

impl CatalogDirectory {
    pub fn new(channel: Channel) -> Self {
        Self { client: CatalogClient::new(channel) }
    }
}

#[async_trait]
impl EventDirectory for CatalogDirectory {
    #[tracing::instrument(name = "catalog.get_event", skip(self))]
    async fn event(&self, event_id: &EventId) -> anyhow::Result<Option<EventInfo>> {
        let request = GetEventRequest { actor: None, event_id: event_id.to_string() };
        let event = match self.client.clone().get_event(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == Code::NotFound => return Ok(None),
            Err(status) => anyhow::bail!("catalog is unavailable: {status}"),
        };
        let time = |text: &str| {
            OffsetDateTime::parse(text, &Rfc3339)
                .map(to_ms)
                .with_context(|| format!("catalog sent a bad time {text:?}"))
        };
        let venue = event.venue.unwrap_or_default();
        Ok(Some(EventInfo {
            id: event.id,
            title: event.title,
            venue_name: venue.name,
            venue_city: venue.city,
            venue_country: venue.country,
            starts_at: time(&event.starts_at)?,
            ends_at: time(&event.ends_at)?,
            status: event.status,
            revision: time(&event.updated_at)?,
            cancel_reason: event.cancel_reason,
        }))
    }
}

/// Events kept in memory, for tests and tools; it knows none unless told.
#[derive(Clone, Default)]
pub struct InMemoryEvents {
    events: Arc<Mutex<HashMap<String, EventInfo>>>,
}

impl InMemoryEvents {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, event: EventInfo) {
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(event.id.clone(), event);
    }
}

#[async_trait]
impl EventDirectory for InMemoryEvents {
    async fn event(&self, event_id: &EventId) -> anyhow::Result<Option<EventInfo>> {
        Ok(self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&event_id.to_string()).cloned())
    }
}
