//! Domain events: facts a service announces after it committed them. They travel inside an
//! [`Envelope`] that carries the id consumers dedupe by, the time, the version and the trace
//! context, so that every consumer can apply each event exactly once.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use time::OffsetDateTime;

use crate::{EventId, MessageId, OrganizationId, TicketTypeId};

/// A domain event type with a stable name and schema version.
pub trait DomainEvent: Serialize + DeserializeOwned {
    /// Stable, dotted name, e.g. `catalog.event_published`.
    const TYPE: &'static str;
    /// Bumped on an incompatible change of the payload; consumers route on name and version.
    const VERSION: u32;

    /// The bus routing key: name and version, e.g. `catalog.event_published.v1`.
    fn routing_key() -> String {
        format!("{}.v{}", Self::TYPE, Self::VERSION)
    }
}

/// What travels on the bus: one domain event and its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per event; a redelivery carries the same id.
    pub id: MessageId,
    /// Routing key, `<type>.v<version>`.
    pub routing_key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The service that announced it.
    pub source: String,
    /// The request that caused it, for tracing across services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub payload: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("expected a {expected} event, got {actual}")]
    WrongType { expected: String, actual: String },
    #[error("malformed payload: {0}")]
    Payload(#[from] serde_json::Error),
}

impl Envelope {
    pub fn new<E: DomainEvent>(source: &str, event: &E, request_id: Option<String>) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: MessageId::new(),
            routing_key: E::routing_key(),
            occurred_at: OffsetDateTime::now_utc(),
            source: source.to_owned(),
            request_id,
            payload: serde_json::to_value(event)?,
        })
    }

    pub fn is<E: DomainEvent>(&self) -> bool {
        self.routing_key == E::routing_key()
    }

    /// The payload as `E`, if this envelope carries an `E`.
    pub fn decode<E: DomainEvent>(&self) -> Result<E, EnvelopeError> {
        if !self.is::<E>() {
            return Err(EnvelopeError::WrongType { expected: E::routing_key(), actual: self.routing_key.clone() });
        }
        Ok(serde_json::from_value(self.payload.clone())?)
    }
}

/// The venue of an event, as announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueSnapshot {
    pub name: String,
    pub city: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketTypeSnapshot {
    pub id: TicketTypeId,
    pub name: String,
    pub price_minor: i64,
    pub capacity: i64,
}

/// An event as it stands after the change that is announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSnapshot {
    pub event_id: EventId,
    pub organization_id: OrganizationId,
    pub title: String,
    pub venue: VenueSnapshot,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    pub currency: String,
    pub max_tickets_per_order: i64,
    pub max_tickets_per_buyer: i64,
    pub status: String,
    pub ticket_types: Vec<TicketTypeSnapshot>,
}

/// An event went on sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPublished {
    pub event: EventSnapshot,
}

impl DomainEvent for EventPublished {
    const TYPE: &'static str = "catalog.event_published";
    const VERSION: u32 = 1;
}

/// An event's details changed; `time_changed` and `venue_changed` tell holders whether they
/// must hear of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventChanged {
    pub event: EventSnapshot,
    /// Names of the fields that changed, e.g. `starts_at`, `venue`, `ticket_types`.
    pub changed_fields: Vec<String>,
    pub time_changed: bool,
    pub venue_changed: bool,
}

impl DomainEvent for EventChanged {
    const TYPE: &'static str = "catalog.event_changed";
    const VERSION: u32 = 1;
}

/// An organizer cancelled an event: every paid order is to be refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCancelled {
    pub event: EventSnapshot,
    pub reason: String,
}

impl DomainEvent for EventCancelled {
    const TYPE: &'static str = "catalog.event_cancelled";
    const VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_decodes_only_as_its_own_type() {
        let event = EventCancelled {
            event: EventSnapshot {
                event_id: EventId::new(),
                organization_id: OrganizationId::new(),
                title: "t".into(),
                venue: VenueSnapshot { name: "v".into(), city: "c".into(), country: "NL".into() },
                starts_at: OffsetDateTime::UNIX_EPOCH,
                ends_at: OffsetDateTime::UNIX_EPOCH,
                currency: "EUR".into(),
                max_tickets_per_order: 10,
                max_tickets_per_buyer: 10,
                status: "cancelled".into(),
                ticket_types: vec![],
            },
            reason: "rain".into(),
        };
        let envelope = Envelope::new("catalog", &event, None).unwrap();
        assert_eq!(envelope.routing_key, "catalog.event_cancelled.v1");
        assert_eq!(envelope.decode::<EventCancelled>().unwrap(), event);
        assert!(matches!(envelope.decode::<EventPublished>(), Err(EnvelopeError::WrongType { .. })));
    }
}
