//! Admissions used: ticketing's `order_placed` events tell which admitted buyers have ordered.
//! From then on their tickets are held, so the tickets left already count them, and the cap
//! of automatic admission stops counting their admission as tickets still to take; without
//! this, buyers who bought would hold room for others until their admissions expire.
//!
//! The effect is one removal from a set in the queue store, the same however often it is
//! applied, so a redelivered event needs no inbox claim (ADR 0003's purpose, met without one);
//! an order for an event without a room removes nothing.

use std::sync::Arc;

use eventhive_domain::events::{DomainEvent as _, Envelope, OrderPlaced};
use eventhive_platform::{async_trait::async_trait, bus::MessageHandler};

use crate::queue::QueueStore;

/// The bus queue it consumes.
pub const QUEUE: &str = "waiting_room.orders";

pub fn routing_keys() -> [String; 1] {
    [OrderPlaced::routing_key()]
}

pub struct UsedAdmissions {
    queue: Arc<dyn QueueStore>,
}

impl UsedAdmissions {
    pub fn new(queue: Arc<dyn QueueStore>) -> Self {
        Self { queue }
    }
}

#[async_trait]
impl MessageHandler for UsedAdmissions {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        if !envelope.is::<OrderPlaced>() {
            return Ok(());
        }
        let placed = envelope.decode::<OrderPlaced>()?;
        self.queue.mark_used(placed.order.event_id, placed.order.buyer_id).await
    }
}
