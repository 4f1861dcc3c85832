//! The waiting rooms' figures: a small read model of the waiting room's domain events, apart
//! from the sales figures (queue `analytics.waiting-room`, its own inbox consumer). It keeps, per
//! event, when the room opened and with how many early arrivals, the admitted total and the
//! queue's length at the newest admission step, and whether the room is sold out. Each value is
//! the newest event's, so redeliveries and reordering converge. Its SQL is here, the only owner
//! of `waiting_rooms`. Not yet served by the API, nor rebuilt by `eventhive analytics rebuild`.

use eventhive_domain::events::{BuyersAdmitted, DomainEvent as _, Envelope, WaitingRoomOpened, WaitingRoomSoldOut};
use eventhive_platform::{
    Database, async_trait::async_trait, bus::MessageHandler, bus::Subscription, inbox, storage::to_ms,
};

/// The inbox name of this consumer, and its bus queue.
const CONSUMER: &str = "analytics.waiting-room";

pub fn subscription() -> Subscription {
    Subscription::new(
        "analytics.waiting-room",
        [WaitingRoomOpened::routing_key(), BuyersAdmitted::routing_key(), WaitingRoomSoldOut::routing_key()],
    )
}

pub struct WaitingRooms {
    db: Database,
}

impl WaitingRooms {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl MessageHandler for WaitingRooms {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        // What the envelope says: the event, the columns it sets, and their values ($2 on).
        let (event_id, statement, values): (String, &str, Vec<i64>) = if envelope.is::<WaitingRoomOpened>() {
            let opened = envelope.decode::<WaitingRoomOpened>()?;
            let values = vec![to_ms(opened.opened_at), opened.early_arrivals];
            (opened.event_id.to_string(), "opened_at = $2, early_arrivals = $3", values)
        } else if envelope.is::<BuyersAdmitted>() {
            let admitted = envelope.decode::<BuyersAdmitted>()?;
            let newer = "admitted_total = CASE WHEN counted_at <= $2 THEN $3 ELSE admitted_total END, \
                         queued = CASE WHEN counted_at <= $2 THEN $4 ELSE queued END, \
                         counted_at = CASE WHEN counted_at <= $2 THEN $2 ELSE counted_at END";
            (admitted.event_id.to_string(), newer, vec![to_ms(admitted.at), admitted.admitted_total, admitted.queued])
        } else if envelope.is::<WaitingRoomSoldOut>() {
            let changed = envelope.decode::<WaitingRoomSoldOut>()?;
            let newer = "sold_out = CASE WHEN sold_out_changed_at <= $2 THEN $3 ELSE sold_out END, \
                         sold_out_changed_at = CASE WHEN sold_out_changed_at <= $2 THEN $2 ELSE sold_out_changed_at END";
            (changed.event_id.to_string(), newer, vec![to_ms(changed.at), i64::from(changed.sold_out)])
        } else {
            return Ok(());
        };
        let mut tx = self.db.pool().begin().await?;
        if !inbox::claim(&mut tx, CONSUMER, envelope.id).await? {
            return Ok(());
        }
        sqlx::query("INSERT INTO waiting_rooms (event_id) VALUES ($1) ON CONFLICT (event_id) DO NOTHING")
            .bind(&event_id)
            .execute(&mut *tx)
            .await?;
        let sql = format!("UPDATE waiting_rooms SET {statement} WHERE event_id = $1");
        let mut update = sqlx::query(&sql).bind(&event_id);
        for value in values {
            update = update.bind(value);
        }
        update.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
