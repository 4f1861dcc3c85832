//! Admissions: for an event with a waiting room, an order is held only for a buyer with a valid
//! admission token for that event (API.md, "Waiting room"). Ticketing verifies the token itself
//! with the room's public key, which the waiting room gave it before it stored the room.
//!
//! Why here and not in the gateway: the rule is the sale's, like the buyer's caps it sits
//! beside; ticketing already reads its own database for the order, so the check costs one
//! indexed read and no call to another service, and whoever reaches ticketing without the
//! gateway meets the same rule. A refusal is not kept as the Idempotency-Key's answer (it is
//! checked before the key is claimed), so a buyer who tried too early and retries once
//! admitted, with the same key, gets their order.

use eventhive_domain::{
    EventId, UserId,
    admission::{Admission, Refusal},
};
use eventhive_platform::storage::now_ms;

use crate::{engine::Engine, error::TicketingError, repository::admissions};

impl Engine {
    /// From now on, orders for `event` need an admission verified with `public_key`.
    pub(crate) async fn require_admission(&self, event: EventId, public_key: &str) -> Result<(), TicketingError> {
        admissions::require(&self.db, event, public_key, now_ms()).await?;
        Ok(())
    }

    /// Refuses an order for an event with a waiting room unless `token` admits `buyer` to it now.
    pub(crate) async fn check_admission(
        &self,
        buyer: UserId,
        event: EventId,
        token: Option<&str>,
    ) -> Result<(), TicketingError> {
        let Some(public_key) = admissions::key(&self.db, event).await? else { return Ok(()) };
        let checked = Admission::verify(token, &public_key, event, buyer, now_ms());
        let outcome = match checked {
            Ok(_) => "used",
            Err(Refusal::Missing) => "missing",
            Err(Refusal::Forged) => "forged",
            Err(Refusal::Expired) => "expired",
            Err(Refusal::NotYours) => "not_yours",
        };
        metrics::counter!("eventhive_admissions_checked_total", "outcome" => outcome).increment(1);
        checked.map(drop).map_err(TicketingError::AdmissionRequired)
    }
}
