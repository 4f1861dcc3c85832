//! The purchase saga as a state machine. An order's stored status is the saga's state; every
//! change goes through [`OrderState::on`], and is written with a conditional update from the
//! state it was read in, so two actors (a buyer paying, the sweeper expiring) can never both
//! move the same order.
//!
//! ```text
//!                  PaymentStarted             PaymentCaptured
//! pending_payment ───────────────▶ authorizing ───────────────▶ paid ──RefundRequested──▶ refunding ──RefundCompleted──▶ refunded
//!   │  ▲                               │
//!   │  └────────── PaymentFailed ──────┘
//!   ├── HoldExpired ──▶ expired
//!   └── Cancelled ────▶ cancelled
//! ```
//!
//! Holds are released only from `pending_payment`: while a payment is in flight
//! (`authorizing`) the tickets stay held, so a captured payment always finds its tickets. A
//! crash leaves an order in `authorizing` or `refunding`; the sweeper resumes it from there.

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderState {
    /// Tickets held until `expires_at`; may be paid.
    PendingPayment,
    /// A charge is in flight.
    Authorizing,
    /// Charged once; tickets issued.
    Paid,
    /// The hold ran out before payment; tickets back on sale.
    Expired,
    /// Cancelled before payment; tickets back on sale.
    Cancelled,
    /// A refund is in flight.
    Refunding,
    /// Refunded; tickets void and back on sale.
    Refunded,
}

/// What happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    PaymentStarted,
    PaymentCaptured,
    /// Declined, or failed without a charge.
    PaymentFailed,
    HoldExpired,
    Cancelled,
    RefundRequested,
    RefundCompleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from:?} cannot take {event:?}")]
pub struct InvalidTransition {
    pub from: OrderState,
    pub event: OrderEvent,
}

impl OrderState {
    pub const ALL: [OrderState; 7] = [
        Self::PendingPayment,
        Self::Authorizing,
        Self::Paid,
        Self::Expired,
        Self::Cancelled,
        Self::Refunding,
        Self::Refunded,
    ];

    /// The state after `event`, or why it cannot happen.
    pub fn on(self, event: OrderEvent) -> Result<OrderState, InvalidTransition> {
        use OrderEvent as E;
        use OrderState as S;
        match (self, event) {
            (S::PendingPayment, E::PaymentStarted) => Ok(S::Authorizing),
            (S::PendingPayment, E::HoldExpired) => Ok(S::Expired),
            (S::PendingPayment, E::Cancelled) => Ok(S::Cancelled),
            (S::Authorizing, E::PaymentCaptured) => Ok(S::Paid),
            (S::Authorizing, E::PaymentFailed) => Ok(S::PendingPayment),
            (S::Paid, E::RefundRequested) => Ok(S::Refunding),
            (S::Refunding, E::RefundCompleted) => Ok(S::Refunded),
            (from, event) => Err(InvalidTransition { from, event }),
        }
    }

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Authorizing => "authorizing",
            Self::Paid => "paid",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Refunding => "refunding",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// What the public API shows: in-flight states look like the state they came from.
    pub fn public_status(self) -> &'static str {
        match self {
            Self::PendingPayment | Self::Authorizing => "pending_payment",
            Self::Paid | Self::Refunding => "paid",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    /// Whether its tickets are still held for it.
    pub fn holds_tickets(self) -> bool {
        matches!(self, Self::PendingPayment | Self::Authorizing)
    }

    /// Whether its tickets are sold to it.
    pub fn owns_tickets(self) -> bool {
        matches!(self, Self::Paid | Self::Refunding)
    }

    /// No event moves it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Expired | Self::Cancelled | Self::Refunded)
    }
}

#[cfg(test)]
mod tests {
    use super::{OrderEvent as E, OrderState as S, *};

    const EVENTS: [OrderEvent; 7] = [
        E::PaymentStarted,
        E::PaymentCaptured,
        E::PaymentFailed,
        E::HoldExpired,
        E::Cancelled,
        E::RefundRequested,
        E::RefundCompleted,
    ];

    #[test]
    fn the_happy_path_ends_paid_and_a_refund_ends_refunded() {
        let paid = S::PendingPayment.on(E::PaymentStarted).and_then(|s| s.on(E::PaymentCaptured)).unwrap();
        assert_eq!(paid, S::Paid);
        assert_eq!(paid.on(E::RefundRequested).and_then(|s| s.on(E::RefundCompleted)).unwrap(), S::Refunded);
    }

    #[test]
    fn a_failed_payment_returns_the_order_to_payable() {
        assert_eq!(S::Authorizing.on(E::PaymentFailed).unwrap(), S::PendingPayment);
    }

    #[test]
    fn a_hold_never_expires_while_a_payment_is_in_flight() {
        assert!(S::Authorizing.on(E::HoldExpired).is_err());
        assert!(S::Authorizing.on(E::Cancelled).is_err());
    }

    #[test]
    fn nothing_is_charged_twice_or_after_the_end() {
        assert!(S::Paid.on(E::PaymentStarted).is_err());
        assert!(S::Refunding.on(E::PaymentStarted).is_err());
        for state in S::ALL.into_iter().filter(|s| s.is_final()) {
            for event in EVENTS {
                assert!(state.on(event).is_err(), "{state:?} took {event:?}");
            }
        }
    }

    #[test]
    fn exactly_the_drawn_transitions_exist() {
        let allowed: Vec<(S, E)> = S::ALL
            .iter()
            .flat_map(|s| EVENTS.iter().map(move |e| (*s, *e)))
            .filter(|(s, e)| s.on(*e).is_ok())
            .collect();
        assert_eq!(allowed.len(), 7, "{allowed:?}");
    }

    #[test]
    fn tickets_are_held_or_owned_in_exactly_the_live_states() {
        for state in S::ALL {
            assert!(!(state.holds_tickets() && state.owns_tickets()));
            assert_eq!(state.is_final(), !state.holds_tickets() && !state.owns_tickets());
            assert_eq!(S::parse(state.as_str()), Some(state));
        }
    }
}
