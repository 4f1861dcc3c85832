//! Domain events: facts a service announces after it committed them. They travel inside an
//! [`Envelope`] that carries the id consumers dedupe by, the time, the version and the trace
//! context, so that every consumer can apply each event exactly once.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use time::OffsetDateTime;

use crate::{EventId, MessageId, OrderId, OrganizationId, TicketId, TicketTypeId, UserId};

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
    /// The W3C `traceparent` of the span that caused it, so that its consumers continue the
    /// trace of the request (set by the outbox when traces are exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
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
            traceparent: None,
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
    /// When catalog last changed the event (Unix ms): consumers apply a snapshot only if it is
    /// newer than the one they hold, since deliveries may arrive out of order.
    #[serde(default)]
    pub revision: i64,
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

/// A line of an order, as announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub ticket_type_id: TicketTypeId,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

/// What every order event says about the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order_id: OrderId,
    pub event_id: EventId,
    pub buyer_id: UserId,
    pub lines: Vec<OrderLine>,
    pub total_minor: i64,
    pub currency: String,
}

impl OrderSummary {
    pub fn quantity(&self) -> i64 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}

/// A buyer placed an order: its tickets are held until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order: OrderSummary,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl DomainEvent for OrderPlaced {
    const TYPE: &'static str = "ticketing.order_placed";
    const VERSION: u32 = 1;
}

/// An order was paid: its held tickets are sold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaid {
    pub order: OrderSummary,
    pub payment_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub paid_at: OffsetDateTime,
}

impl DomainEvent for OrderPaid {
    const TYPE: &'static str = "ticketing.order_paid";
    const VERSION: u32 = 1;
}

/// An unpaid order's hold ran out: its tickets are for sale again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderExpired {
    pub order: OrderSummary,
}

impl DomainEvent for OrderExpired {
    const TYPE: &'static str = "ticketing.order_expired";
    const VERSION: u32 = 1;
}

/// An unpaid order was cancelled (by its buyer, or because the event was): its tickets are
/// for sale again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order: OrderSummary,
    pub reason: String,
}

impl DomainEvent for OrderCancelled {
    const TYPE: &'static str = "ticketing.order_cancelled";
    const VERSION: u32 = 1;
}

/// A paid order was refunded: its tickets are void and for sale again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRefunded {
    pub order: OrderSummary,
    pub reason: String,
}

impl DomainEvent for OrderRefunded {
    const TYPE: &'static str = "ticketing.order_refunded";
    const VERSION: u32 = 1;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedTicket {
    pub ticket_id: TicketId,
    pub ticket_type_id: TicketTypeId,
    pub ticket_type_name: String,
    pub code: String,
}

/// A paid order's tickets exist, with their codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketsIssued {
    pub order_id: OrderId,
    pub event_id: EventId,
    pub buyer_id: UserId,
    pub tickets: Vec<IssuedTicket>,
}

impl DomainEvent for TicketsIssued {
    const TYPE: &'static str = "ticketing.tickets_issued";
    const VERSION: u32 = 1;
}

/// A ticket was scanned in at the door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketCheckedIn {
    pub ticket_id: TicketId,
    pub event_id: EventId,
    pub ticket_type_id: TicketTypeId,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_in_at: OffsetDateTime,
}

impl DomainEvent for TicketCheckedIn {
    const TYPE: &'static str = "ticketing.ticket_checked_in";
    const VERSION: u32 = 1;
}

/// An event's waiting room opened: its early arrivals were ordered by a recorded draw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRoomOpened {
    pub event_id: EventId,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    /// How many buyers joined before the opening and were drawn.
    pub early_arrivals: i64,
    /// The draw's seed, so that anyone can replay the draw over the early arrivals.
    pub draw_seed: String,
}

impl DomainEvent for WaitingRoomOpened {
    const TYPE: &'static str = "waiting_room.room_opened";
    const VERSION: u32 = 1;
}

/// Buyers were admitted from an event's waiting room (one event per admission step), or the
/// queue's length changed while none were (`admitted` 0), so that its readers see it live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyersAdmitted {
    pub event_id: EventId,
    /// Admitted in this step.
    pub admitted: i64,
    /// Admitted since the room opened.
    pub admitted_total: i64,
    /// Still waiting after this step.
    pub queued: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl DomainEvent for BuyersAdmitted {
    const TYPE: &'static str = "waiting_room.buyers_admitted";
    const VERSION: u32 = 1;
}

/// Nothing is left to sell (none available, none held): everyone waiting is told `sold_out`.
/// `sold_out` false is its reversal: holds expired and tickets came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRoomSoldOut {
    pub event_id: EventId,
    pub sold_out: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl DomainEvent for WaitingRoomSoldOut {
    const TYPE: &'static str = "waiting_room.sold_out";
    const VERSION: u32 = 1;
}

/// Admissions of an event's waiting room ran out unused: their buyers never ordered with them,
/// so the room let them in for nothing (one event per admission step that counted some).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionsExpired {
    pub event_id: EventId,
    /// Counted in this step.
    pub expired: i64,
    /// Counted since the room opened, by every replica: it only grows.
    pub expired_total: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl DomainEvent for AdmissionsExpired {
    const TYPE: &'static str = "waiting_room.admissions_expired";
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
                revision: 1,
            },
            reason: "rain".into(),
        };
        let envelope = Envelope::new("catalog", &event, None).unwrap();
        assert_eq!(envelope.routing_key, "catalog.event_cancelled.v1");
        assert_eq!(envelope.decode::<EventCancelled>().unwrap(), event);
        assert!(matches!(envelope.decode::<EventPublished>(), Err(EnvelopeError::WrongType { .. })));
    }
}
