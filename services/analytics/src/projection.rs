//! The projection: how a domain event becomes facts and figures in the read model. An event is
//! applied once however often it is delivered (the inbox claim commits with its effect) and in
//! any order: the facts are upserts that converge to the same rows (an order's furthest status,
//! the newest snapshot), and the kept figures change by the difference between what a fact
//! counted for before and after ([`crate::tally`]), in the same transaction. The same code
//! applies an event fresh from the bus and when a rebuild replays the event log, so a rebuild
//! gives exactly the figures the consumer kept. The waiting rooms' events (their own queue,
//! [`crate::waiting_rooms`]) go through the same consumer: logged, claimed, replayed.

use std::collections::BTreeSet;

use anyhow::Context;
use async_trait::async_trait;
use eventhive_domain::{
    EventId,
    events::{
        DomainEvent, Envelope, EventCancelled, EventChanged, EventPublished, OrderCancelled, OrderExpired, OrderPaid,
        OrderPlaced, OrderRefunded, TicketCheckedIn,
    },
};
use eventhive_platform::{Database, bus::MessageHandler, inbox, storage::to_ms};
use sqlx::AnyConnection;
use tokio::sync::broadcast;

use crate::{facts::Fact, repository, tally::Delta, waiting_rooms};

/// The inbox name of the read model's consumer.
const CONSUMER: &str = "analytics.read-model";

/// The bus queue the read model consumes.
pub const QUEUE: &str = "analytics.read-model";

/// Envelopes a rebuild reads from the log at a time: bounded memory on any log size.
const REPLAY_PAGE: i64 = 500;

/// Every routing key the read model needs: catalog's event snapshots and ticketing's order and
/// check-in events.
pub fn routing_keys() -> Vec<String> {
    vec![
        EventPublished::routing_key(),
        EventChanged::routing_key(),
        EventCancelled::routing_key(),
        OrderPlaced::routing_key(),
        OrderPaid::routing_key(),
        OrderExpired::routing_key(),
        OrderCancelled::routing_key(),
        OrderRefunded::routing_key(),
        TicketCheckedIn::routing_key(),
    ]
}

/// The read model's writer: the bus consumer and the rebuild.
#[derive(Clone)]
pub struct Projection {
    db: Database,
    /// Tells live watchers on this replica that an event's figures may have changed. Watchers on
    /// other replicas learn it from the database (see [`repository::bump_version`]).
    changes: broadcast::Sender<EventId>,
}

impl Projection {
    pub fn new(db: Database) -> Self {
        // Watchers that fall behind get `Lagged`, which they take as "look now": no update is lost.
        let (changes, _) = broadcast::channel(256);
        Self { db, changes }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Ids of events whose figures this replica changed, from now on.
    pub fn changes(&self) -> broadcast::Receiver<EventId> {
        self.changes.subscribe()
    }

    fn announce(&self, event_id: EventId) {
        // No receiver only means nobody is watching right now.
        let _nobody_watching = self.changes.send(event_id);
    }

    /// Deletes the read model and re-applies every logged envelope in (occurred_at, message_id)
    /// order, in one transaction: readers see the old figures or the new, never a half-built
    /// model. The log and the inbox stay. Returns how many envelopes were replayed.
    #[tracing::instrument(skip_all, fields(database = self.db.location()))]
    pub async fn rebuild(&self) -> anyhow::Result<u64> {
        let mut tx = self.db.pool().begin().await?;
        repository::lock_log(&mut tx, self.db.backend()).await?;
        repository::clear_read_model(&mut tx).await?;
        let mut replayed = 0_u64;
        let mut touched = BTreeSet::new();
        // Keyset paging: (occurred_at, message_id) of the last envelope replayed.
        let mut after = (i64::MIN, String::new());
        loop {
            let logged = repository::logged_page(&mut tx, (after.0, &after.1), REPLAY_PAGE).await?;
            let Some(last) = logged.last() else { break };
            after = (last.occurred_at, last.message_id.clone());
            for row in &logged {
                let message_id = &row.message_id;
                let envelope: Envelope = serde_json::from_str(&row.envelope)
                    .with_context(|| format!("logged envelope {message_id} is not an envelope"))?;
                let fact = Fact::decode(&envelope)
                    .with_context(|| format!("logged envelope {message_id} no longer decodes"))?
                    .with_context(|| format!("logged envelope {message_id} is of no use: {}", envelope.routing_key))?;
                apply(&mut tx, &self.db, &fact, to_ms(envelope.occurred_at)).await?;
                touched.insert(fact.event_id());
                replayed += 1;
            }
        }
        for event_id in &touched {
            repository::bump_version(&mut tx, self.db.backend(), *event_id).await?;
        }
        tx.commit().await.context("committing the rebuild")?;
        for event_id in touched {
            self.announce(event_id);
        }
        tracing::info!(replayed, "rebuilt the read model");
        Ok(replayed)
    }
}

#[async_trait]
impl MessageHandler for Projection {
    #[tracing::instrument(skip_all, fields(message_id = %envelope.id, routing_key = %envelope.routing_key))]
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let Some(fact) = Fact::decode(envelope)? else {
            return Ok(());
        };
        let event_id = fact.event_id();
        let mut tx = self.db.pool().begin().await?;
        let fresh = inbox::claim(&mut tx, CONSUMER, envelope.id).await?;
        if fresh {
            // The log first: a rebuild locks it, so an envelope is either in the replay or
            // applied after the rebuild, never lost in between.
            repository::log(&mut tx, envelope, event_id).await?;
            apply(&mut tx, &self.db, &fact, to_ms(envelope.occurred_at)).await?;
            repository::bump_version(&mut tx, self.db.backend(), event_id).await?;
        }
        tx.commit().await?;
        if fresh {
            self.announce(event_id);
        }
        Ok(())
    }
}

/// Applies one fact and adds what it changes to the kept figures; `occurred_at` (Unix ms) is
/// when the envelope says it happened.
async fn apply(tx: &mut AnyConnection, db: &Database, fact: &Fact, occurred_at: i64) -> anyhow::Result<()> {
    let delta = match fact {
        Fact::Snapshot(snapshot) => {
            repository::apply_snapshot(tx, snapshot).await?;
            Delta::default()
        }
        Fact::Order { order, status, paid_at } => {
            repository::apply_order(tx, db, order, *status, *paid_at, occurred_at).await?
        }
        Fact::CheckIn(checked_in) => repository::apply_check_in(tx, checked_in).await?,
        Fact::Room(room) => {
            waiting_rooms::apply(tx, room).await?;
            Delta::default()
        }
    };
    // Also for a fact that changes no count: it moves the figures' "as of".
    repository::add_to_figures(tx, fact.event_id(), &delta, occurred_at).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_routing_key_is_one_the_projection_decodes() {
        let keys = routing_keys();
        assert_eq!(keys.len(), 9);
        assert!(keys.iter().all(|k| k.starts_with("catalog.") || k.starts_with("ticketing.")));
    }
}
