//! The projection: how a domain event becomes facts in the read model. An event is applied once
//! however often it is delivered (the inbox claim commits with its effect) and in any order:
//! every write is an idempotent upsert that converges to the same rows, and nothing is summed
//! until the figures are read. The same code applies an event fresh from the bus and when a
//! rebuild replays the event log, so a rebuild gives exactly the figures the consumer gave.

use std::collections::BTreeSet;

use anyhow::Context;
use async_trait::async_trait;
use eventhive_domain::{
    EventId,
    events::{
        DomainEvent, Envelope, EnvelopeError, EventCancelled, EventChanged, EventPublished, EventSnapshot,
        OrderCancelled, OrderExpired, OrderPaid, OrderPlaced, OrderRefunded, OrderSummary, TicketCheckedIn,
    },
};
use eventhive_platform::{
    Database,
    bus::MessageHandler,
    inbox,
    storage::{Backend, to_ms},
};
use sqlx::{AnyConnection, Row};
use tokio::sync::broadcast;

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
enum Fact {
    /// An event as catalog announced it.
    Snapshot(EventSnapshot),
    /// An order reached `status`; `paid_at` (Unix ms) when it was paid.
    Order { order: OrderSummary, status: OrderStatus, paid_at: Option<i64> },
    /// A ticket was scanned in.
    CheckIn(TicketCheckedIn),
}

impl Fact {
    /// The fact an envelope carries; `None` for an envelope the read model does not need.
    fn decode(envelope: &Envelope) -> Result<Option<Self>, EnvelopeError> {
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
            None
        })
    }

    /// The event (of catalog) the fact is about: whose figures it changes.
    fn event_id(&self) -> EventId {
        match self {
            Self::Snapshot(snapshot) => snapshot.event_id,
            Self::Order { order, .. } => order.event_id,
            Self::CheckIn(checked_in) => checked_in.event_id,
        }
    }
}

/// The read model's writer: the bus consumer and the rebuild.
#[derive(Clone)]
pub struct Projection {
    db: Database,
    /// Tells live watchers on this replica that an event's figures may have changed, so they
    /// need not wait for their next poll. Watchers on other replicas learn it by polling.
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
        if self.db.backend() == Backend::Postgres {
            // Consumers append to the log before they touch the read model: holding the log
            // still means no envelope is applied to the model being rebuilt, and none is missed
            // by the replay. (SQLite's single connection serializes everything anyway.)
            sqlx::query("LOCK TABLE event_log IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        }
        for table in ["checkins", "order_lines", "orders", "ticket_types", "events"] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *tx)
                .await
                .with_context(|| format!("clearing {table}"))?;
        }
        let mut replayed = 0_u64;
        let mut touched = BTreeSet::new();
        // Keyset paging: (occurred_at, message_id) of the last envelope replayed.
        let mut after = (i64::MIN, String::new());
        loop {
            let rows = sqlx::query(
                "SELECT message_id, occurred_at, envelope FROM event_log \
                 WHERE occurred_at > $1 OR (occurred_at = $1 AND message_id > $2) \
                 ORDER BY occurred_at, message_id LIMIT $3",
            )
            .bind(after.0)
            .bind(&after.1)
            .bind(REPLAY_PAGE)
            .fetch_all(&mut *tx)
            .await
            .context("reading the event log")?;
            let Some(last) = rows.last() else { break };
            after = (last.try_get("occurred_at")?, last.try_get("message_id")?);
            for row in &rows {
                let message_id: String = row.try_get("message_id")?;
                let text: String = row.try_get("envelope")?;
                let envelope: Envelope = serde_json::from_str(&text)
                    .with_context(|| format!("logged envelope {message_id} is not an envelope"))?;
                let fact = Fact::decode(&envelope)
                    .with_context(|| format!("logged envelope {message_id} no longer decodes"))?
                    .with_context(|| format!("logged envelope {message_id} is of no use: {}", envelope.routing_key))?;
                apply(&mut tx, &fact, to_ms(envelope.occurred_at)).await?;
                touched.insert(fact.event_id());
                replayed += 1;
            }
        }
        for event_id in &touched {
            bump_version(&mut tx, *event_id).await?;
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
            log(&mut tx, envelope, event_id).await?;
            apply(&mut tx, &fact, to_ms(envelope.occurred_at)).await?;
            bump_version(&mut tx, event_id).await?;
        }
        tx.commit().await?;
        if fresh {
            self.announce(event_id);
        }
        Ok(())
    }
}

/// Keeps the envelope for rebuilds.
async fn log(tx: &mut AnyConnection, envelope: &Envelope, event_id: EventId) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO event_log (message_id, routing_key, event_id, occurred_at, envelope) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(envelope.id.to_string())
    .bind(&envelope.routing_key)
    .bind(event_id.to_string())
    .bind(to_ms(envelope.occurred_at))
    .bind(serde_json::to_string(envelope)?)
    .execute(&mut *tx)
    .await
    .context("logging an envelope")?;
    Ok(())
}

/// Applies one fact; `occurred_at` (Unix ms) is when the envelope says it happened.
async fn apply(tx: &mut AnyConnection, fact: &Fact, occurred_at: i64) -> anyhow::Result<()> {
    match fact {
        Fact::Snapshot(snapshot) => apply_snapshot(tx, snapshot).await,
        Fact::Order { order, status, paid_at } => apply_order(tx, order, *status, *paid_at, occurred_at).await,
        Fact::CheckIn(checked_in) => apply_check_in(tx, checked_in).await,
    }
}

/// The newest snapshot wins, with its ticket types; an older one arriving late changes nothing.
async fn apply_snapshot(tx: &mut AnyConnection, snapshot: &EventSnapshot) -> anyhow::Result<()> {
    let event_id = snapshot.event_id.to_string();
    let inserted = sqlx::query(
        "INSERT INTO events (event_id, organization_id, title, status, currency, revision) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event_id)
    .bind(snapshot.organization_id.to_string())
    .bind(&snapshot.title)
    .bind(&snapshot.status)
    .bind(&snapshot.currency)
    .bind(snapshot.revision)
    .execute(&mut *tx)
    .await
    .context("storing an event")?
    .rows_affected()
        == 1;
    let newer = inserted
        || sqlx::query(
            "UPDATE events SET organization_id = $1, title = $2, status = $3, currency = $4, revision = $5 \
             WHERE event_id = $6 AND revision < $5",
        )
        .bind(snapshot.organization_id.to_string())
        .bind(&snapshot.title)
        .bind(&snapshot.status)
        .bind(&snapshot.currency)
        .bind(snapshot.revision)
        .bind(&event_id)
        .execute(&mut *tx)
        .await
        .context("updating an event")?
        .rows_affected()
            == 1;
    if !newer {
        return Ok(());
    }
    // Capacities are those of the newest snapshot, and a ticket type it no longer lists is gone.
    sqlx::query("DELETE FROM ticket_types WHERE event_id = $1").bind(&event_id).execute(&mut *tx).await?;
    for (ordinal, ticket_type) in (0_i64..).zip(&snapshot.ticket_types) {
        sqlx::query(
            "INSERT INTO ticket_types (event_id, ticket_type_id, ordinal, name, price_minor, capacity) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&event_id)
        .bind(ticket_type.id.to_string())
        .bind(ordinal)
        .bind(&ticket_type.name)
        .bind(ticket_type.price_minor)
        .bind(ticket_type.capacity)
        .execute(&mut *tx)
        .await
        .context("storing a ticket type")?;
    }
    Ok(())
}

/// The first event heard of an order inserts it with its lines (whatever its status); later
/// ones only move its status up the ranks.
async fn apply_order(
    tx: &mut AnyConnection,
    order: &OrderSummary,
    status: OrderStatus,
    paid_at: Option<i64>,
    occurred_at: i64,
) -> anyhow::Result<()> {
    let order_id = order.order_id.to_string();
    let inserted = sqlx::query(
        "INSERT INTO orders (order_id, event_id, status, status_rank, quantity, total_minor, currency, paid_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(&order_id)
    .bind(order.event_id.to_string())
    .bind(status.as_str())
    .bind(status.rank())
    .bind(order.quantity())
    .bind(order.total_minor)
    .bind(&order.currency)
    .bind(paid_at)
    .bind(occurred_at)
    .execute(&mut *tx)
    .await
    .context("storing an order")?
    .rows_affected()
        == 1;
    if inserted {
        for line in &order.lines {
            sqlx::query(
                "INSERT INTO order_lines (order_id, ticket_type_id, quantity, unit_price_minor) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (order_id, ticket_type_id) DO NOTHING",
            )
            .bind(&order_id)
            .bind(line.ticket_type_id.to_string())
            .bind(line.quantity)
            .bind(line.unit_price_minor)
            .execute(&mut *tx)
            .await
            .context("storing an order line")?;
        }
        return Ok(());
    }
    // Equal ranks never meet in practice (an order is paid, expired or cancelled, not two of
    // them); should they, the status text decides, so that the order of arrival never does.
    sqlx::query(
        "UPDATE orders SET status = $1, status_rank = $2, updated_at = $3 \
         WHERE order_id = $4 AND (status_rank < $2 OR (status_rank = $2 AND status < $1))",
    )
    .bind(status.as_str())
    .bind(status.rank())
    .bind(occurred_at)
    .bind(&order_id)
    .execute(&mut *tx)
    .await
    .context("moving an order on")?;
    if let Some(paid_at) = paid_at {
        // The payment time is a fact of its own: it stays when a refund came first.
        sqlx::query("UPDATE orders SET paid_at = $1 WHERE order_id = $2 AND (paid_at IS NULL OR paid_at > $1)")
            .bind(paid_at)
            .bind(&order_id)
            .execute(&mut *tx)
            .await
            .context("recording a payment time")?;
    }
    Ok(())
}

async fn apply_check_in(tx: &mut AnyConnection, checked_in: &TicketCheckedIn) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO checkins (ticket_id, event_id, ticket_type_id, checked_in_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (ticket_id) DO NOTHING",
    )
    .bind(checked_in.ticket_id.to_string())
    .bind(checked_in.event_id.to_string())
    .bind(checked_in.ticket_type_id.to_string())
    .bind(to_ms(checked_in.checked_in_at))
    .execute(&mut *tx)
    .await
    .context("storing a check-in")?;
    Ok(())
}

/// Tells watchers on every replica that the event's figures may have changed. Last in each
/// transaction, so that concurrent consumers lock rows in one order.
async fn bump_version(tx: &mut AnyConnection, event_id: EventId) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO event_versions (event_id, version) VALUES ($1, 1) \
         ON CONFLICT (event_id) DO UPDATE SET version = event_versions.version + 1",
    )
    .bind(event_id.to_string())
    .execute(&mut *tx)
    .await
    .context("bumping an event's version")?;
    Ok(())
}

/// The version of an event's figures; `None` before anything about it was applied.
pub async fn version(db: &Database, event_id: EventId) -> anyhow::Result<Option<i64>> {
    let version = sqlx::query_scalar("SELECT version FROM event_versions WHERE event_id = $1")
        .bind(event_id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("reading an event's version")?;
    Ok(version)
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

    #[test]
    fn every_routing_key_is_one_the_projection_decodes() {
        let keys = routing_keys();
        assert_eq!(keys.len(), 9);
        assert!(keys.iter().all(|k| k.starts_with("catalog.") || k.starts_with("ticketing.")));
    }
}
