//! Fault injection: named points between the saga's steps where a test (and later the
//! fault-injection tooling) can make the process "crash" — the step fails as if the process had
//! died there, leaving the database exactly as a real crash would.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

/// The gaps between two steps of the purchase saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// The order is marked authorizing; the card is not charged yet.
    BeforeCharge,
    /// The card is charged; the order is not marked paid yet.
    AfterCharge,
    /// The order is paid and its tickets issued; the answer is not sent yet.
    AfterPaid,
    /// The order is marked refunding; the refund is not issued yet.
    BeforeRefund,
    /// The refund is issued; the order is not marked refunded yet.
    AfterRefund,
}

impl FaultPoint {
    pub const ALL: [FaultPoint; 5] =
        [Self::BeforeCharge, Self::AfterCharge, Self::AfterPaid, Self::BeforeRefund, Self::AfterRefund];
}

#[derive(Debug, thiserror::Error)]
#[error("injected fault at {0:?}")]
pub struct InjectedFault(pub FaultPoint);

/// Armed fault points; each fires once.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    armed: Arc<Mutex<HashSet<FaultPoint>>>,
}

impl Faults {
    pub fn arm(&self, point: FaultPoint) {
        self.lock().insert(point);
    }

    /// Fails if `point` is armed (and disarms it).
    pub fn check(&self, point: FaultPoint) -> Result<(), InjectedFault> {
        if self.lock().remove(&point) {
            tracing::warn!(?point, "injected fault");
            return Err(InjectedFault(point));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<FaultPoint>> {
        self.armed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
