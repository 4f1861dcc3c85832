//! What analytics learns from a domain event: the [`Fact`] an envelope carries, and an order's
//! [`OrderStatus`] with the rank that lets a status heard late never replace one further along.

use eventhive_domain::{
    EventId,
    events::{
        Envelope, EnvelopeError, EventCancelled, EventChanged, EventPublished, EventSnapshot, OrderCancelled,
        OrderExpired, OrderPaid, OrderPlaced, OrderRefunded, OrderSummary, TicketCheckedIn,
    },
};
use eventhive_platform::storage::to_ms;

use crate::waiting_rooms::RoomFact;

/// An order's status as analytics counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Its tickets are held: they count as held.
    Placed,
    /// Its tickets are sold and its total is revenue.
    Paid,
    /// The hold ran out: its tickets count as neither sold nor held.
    Expired,
    /// Cancelled unpaid: neither sold nor held.
    Cancelled,
    /// Paid and then refunded: neither sold nor held, and no revenue.
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    /// The status `as_str` gave; `None` for text no version of analytics wrote.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Placed, Self::Paid, Self::Expired, Self::Cancelled, Self::Refunded]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// How far along an order is: an order only ever moves to a higher rank, so a status heard
    /// late never replaces one further along.
    pub fn rank(self) -> i64 {
        match self {
            Self::Placed => 1,
            Self::Paid | Self::Expired | Self::Cancelled => 2,
            Self::Refunded => 3,
        }
    }
}

/// What one envelope tells the read model.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// An event as catalog announced it.
    Snapshot(EventSnapshot),
    /// An order reached `status`; `paid_at` (Unix ms) when it was paid.
    Order { order: OrderSummary, status: OrderStatus, paid_at: Option<i64> },
    /// A ticket was scanned in.
    CheckIn(TicketCheckedIn),
    /// The event's waiting room opened, admitted, sold out or counted expired admissions.
    Room(RoomFact),
}

impl Fact {
    /// The fact an envelope carries; `None` for an envelope the read model does not need.
    pub fn decode(envelope: &Envelope) -> Result<Option<Self>, EnvelopeError> {
        let order = |order: OrderSummary, status: OrderStatus| Some(Self::Order { order, status, paid_at: None });
        Ok(if envelope.is::<EventPublished>() {
            Some(Self::Snapshot(envelope.decode::<EventPublished>()?.event))
        } else if envelope.is::<EventChanged>() {
            Some(Self::Snapshot(envelope.decode::<EventChanged>()?.event))
        } else if envelope.is::<EventCancelled>() {
            Some(Self::Snapshot(envelope.decode::<EventCancelled>()?.event))
        } else if envelope.is::<OrderPlaced>() {
            order(envelope.decode::<OrderPlaced>()?.order, OrderStatus::Placed)
        } else if envelope.is::<OrderPaid>() {
            let paid = envelope.decode::<OrderPaid>()?;
            Some(Self::Order { order: paid.order, status: OrderStatus::Paid, paid_at: Some(to_ms(paid.paid_at)) })
        } else if envelope.is::<OrderExpired>() {
            order(envelope.decode::<OrderExpired>()?.order, OrderStatus::Expired)
        } else if envelope.is::<OrderCancelled>() {
            order(envelope.decode::<OrderCancelled>()?.order, OrderStatus::Cancelled)
        } else if envelope.is::<OrderRefunded>() {
            order(envelope.decode::<OrderRefunded>()?.order, OrderStatus::Refunded)
        } else if envelope.is::<TicketCheckedIn>() {
            Some(Self::CheckIn(envelope.decode::<TicketCheckedIn>()?))
        } else {
            RoomFact::decode(envelope)?.map(Self::Room)
        })
    }

    /// The event (of catalog) the fact is about: whose figures it changes.
    pub fn event_id(&self) -> EventId {
        match self {
            Self::Snapshot(snapshot) => snapshot.event_id,
            Self::Order { order, .. } => order.event_id,
            Self::CheckIn(checked_in) => checked_in.event_id,
            Self::Room(room) => room.event_id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use eventhive_domain::{OrderId, UserId};

    use super::*;

    fn summary() -> OrderSummary {
        OrderSummary {
            order_id: OrderId::new(),
            event_id: EventId::new(),
            buyer_id: UserId::new(),
            lines: vec![],
            total_minor: 0,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn ranks_only_rise_towards_refunded() {
        assert!(OrderStatus::Placed.rank() < OrderStatus::Paid.rank());
        assert_eq!(OrderStatus::Paid.rank(), OrderStatus::Expired.rank());
        assert_eq!(OrderStatus::Paid.rank(), OrderStatus::Cancelled.rank());
        assert!(OrderStatus::Paid.rank() < OrderStatus::Refunded.rank());
    }

    #[test]
    fn envelopes_decode_into_facts_about_their_event() -> anyhow::Result<()> {
        let order = summary();
        let at = time::macros::datetime!(2027-06-01 19:30:15.5 UTC);
        let paid =
            Envelope::new("ticketing", &OrderPaid { order: order.clone(), payment_id: "p".into(), paid_at: at }, None)?;
        let fact = Fact::decode(&paid)?;
        assert_eq!(
            fact,
            Some(Fact::Order { order: order.clone(), status: OrderStatus::Paid, paid_at: Some(to_ms(at)) })
        );
        assert_eq!(fact.map(|f| f.event_id()), Some(order.event_id));
        let issued = Envelope::new(
            "ticketing",
            &eventhive_domain::events::TicketsIssued {
                order_id: order.order_id,
                event_id: order.event_id,
                buyer_id: order.buyer_id,
                tickets: vec![],
            },
            None,
        )?;
        assert_eq!(Fact::decode(&issued)?, None, "tickets issued say nothing paid did not");
        Ok(())
    }
}
