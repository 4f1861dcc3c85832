//! The waiting rooms' figures: what the waiting room's domain events (queue
//! `analytics.waiting-room`) tell of an event's room — its status, the queue's length, buyers
//! admitted in all and in the last minute, admissions that ran out unused, when it opened and
//! with how many early arrivals. The projection applies them like the sales' events (logged,
//! claimed once, replayed by a rebuild); this module is the only owner of `waiting_rooms` and
//! `waiting_room_admissions`, and each statement converges whatever the order of delivery:
//! totals keep the largest heard (they only grow), the queue's length and the sold-out mark the
//! newest (ties settled by value), and admissions add up per 10-second bucket.

use anyhow::Context as _;
use eventhive_domain::{
    EventId,
    events::{
        AdmissionsExpired, BuyersAdmitted, DomainEvent as _, Envelope, EnvelopeError, WaitingRoomOpened,
        WaitingRoomSoldOut,
    },
};
use eventhive_platform::{
    bus::Subscription,
    storage::{ms_to_rfc3339, to_ms},
};
use eventhive_proto::analytics as pb;
use sqlx::{AnyConnection, Row};

/// The bus queue of the waiting room's events; the projection consumes it besides its own.
pub const ROOM_EVENTS_QUEUE: &str = "analytics.waiting-room";

/// Admissions are kept per bucket of this many milliseconds.
const BUCKET_MS: i64 = 10_000;

/// "The last minute": this many buckets, the newest one included.
const BUCKETS_PER_MINUTE: i64 = 6;

pub fn subscription() -> Subscription {
    Subscription::new(
        ROOM_EVENTS_QUEUE,
        [
            WaitingRoomOpened::routing_key(),
            BuyersAdmitted::routing_key(),
            WaitingRoomSoldOut::routing_key(),
            AdmissionsExpired::routing_key(),
        ],
    )
}

/// What one of the waiting room's events tells.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomFact {
    Opened(WaitingRoomOpened),
    Admitted(BuyersAdmitted),
    SoldOut(WaitingRoomSoldOut),
    Expired(AdmissionsExpired),
}

impl RoomFact {
    /// The fact an envelope carries; `None` for any other envelope.
    pub fn decode(envelope: &Envelope) -> Result<Option<Self>, EnvelopeError> {
        Ok(if envelope.is::<WaitingRoomOpened>() {
            Some(Self::Opened(envelope.decode()?))
        } else if envelope.is::<BuyersAdmitted>() {
            Some(Self::Admitted(envelope.decode()?))
        } else if envelope.is::<WaitingRoomSoldOut>() {
            Some(Self::SoldOut(envelope.decode()?))
        } else if envelope.is::<AdmissionsExpired>() {
            Some(Self::Expired(envelope.decode()?))
        } else {
            None
        })
    }

    pub fn event_id(&self) -> EventId {
        match self {
            Self::Opened(opened) => opened.event_id,
            Self::Admitted(admitted) => admitted.event_id,
            Self::SoldOut(changed) => changed.event_id,
            Self::Expired(expired) => expired.event_id,
        }
    }
}

/// Applies one fact to the room's rows: the bucket first, then the room's row (the order every
/// transaction of a room takes, so that concurrent consumers cannot deadlock).
pub async fn apply(tx: &mut AnyConnection, fact: &RoomFact) -> anyhow::Result<()> {
    let event_id = fact.event_id().to_string();
    if let RoomFact::Admitted(admitted) = fact
        && admitted.admitted != 0
    {
        sqlx::query(
            "INSERT INTO waiting_room_admissions (event_id, bucket_ms, admitted) VALUES ($1, $2, $3) \
             ON CONFLICT (event_id, bucket_ms) DO UPDATE SET \
             admitted = waiting_room_admissions.admitted + excluded.admitted",
        )
        .bind(&event_id)
        .bind(to_ms(admitted.at).div_euclid(BUCKET_MS) * BUCKET_MS)
        .bind(admitted.admitted)
        .execute(&mut *tx)
        .await
        .context("adding to a room's admissions")?;
    }
    sqlx::query("INSERT INTO waiting_rooms (event_id) VALUES ($1) ON CONFLICT (event_id) DO NOTHING")
        .bind(&event_id)
        .execute(&mut *tx)
        .await
        .context("storing a waiting room")?;
    // What the fact sets, and its values ($2 on).
    let (assignments, values): (&str, Vec<i64>) = match fact {
        RoomFact::Opened(opened) => {
            ("opened_at = $2, early_arrivals = $3", vec![to_ms(opened.opened_at), opened.early_arrivals])
        }
        RoomFact::Admitted(admitted) => (
            // The newest count of the queue; of two at the same moment, the shorter.
            "admitted_total = CASE WHEN admitted_total < $3 THEN $3 ELSE admitted_total END, \
             queued = CASE WHEN counted_at < $2 OR (counted_at = $2 AND queued > $4) THEN $4 ELSE queued END, \
             counted_at = CASE WHEN counted_at < $2 THEN $2 ELSE counted_at END",
            vec![to_ms(admitted.at), admitted.admitted_total, admitted.queued],
        ),
        RoomFact::SoldOut(changed) => (
            // The newest transition; of two at the same moment, sold out.
            "sold_out = CASE WHEN sold_out_changed_at < $2 OR (sold_out_changed_at = $2 AND sold_out < $3) \
             THEN $3 ELSE sold_out END, \
             sold_out_changed_at = CASE WHEN sold_out_changed_at < $2 THEN $2 ELSE sold_out_changed_at END",
            vec![to_ms(changed.at), i64::from(changed.sold_out)],
        ),
        RoomFact::Expired(expired) => {
            ("expired_total = CASE WHEN expired_total < $2 THEN $2 ELSE expired_total END", vec![expired.expired_total])
        }
    };
    let sql = format!("UPDATE waiting_rooms SET {assignments} WHERE event_id = $1");
    let mut update = sqlx::query(&sql).bind(&event_id);
    for value in values {
        update = update.bind(value);
    }
    update.execute(&mut *tx).await.context("updating a waiting room")?;
    Ok(())
}

/// The tables a rebuild clears, children first.
pub const TABLES: [&str; 2] = ["waiting_room_admissions", "waiting_rooms"];

/// An event's waiting room as its organizers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomFigures {
    /// `scheduled`, `open` or `sold_out`.
    pub status: &'static str,
    /// Buyers waiting, at the newest count.
    pub queued: i64,
    pub admitted_total: i64,
    /// Admitted in the minute (to 10 s) up to the newest admission step: taken from the
    /// events, not the clock, so a rebuild gives the same figure.
    pub admitted_last_minute: i64,
    /// Admissions that ran out unused.
    pub expired_total: i64,
    /// Unix ms.
    pub opened_at_ms: Option<i64>,
    pub early_arrivals: Option<i64>,
}

/// The room of `event_id`, with its admissions of the minute up to its newest admission step;
/// `None` when analytics has heard of no room for the event. One statement: the room's row and
/// at most [`BUCKETS_PER_MINUTE`] buckets summed beside it.
pub async fn read(conn: &mut AnyConnection, event_id: &str) -> anyhow::Result<Option<RoomFigures>> {
    // The newest step's bucket and the five before it; no step heard yet (counted_at 0) sums
    // buckets of 1970, of which there are none. counted_at is never negative, so integer
    // division floors as `div_euclid` does, on both backends.
    let newest = format!("(r.counted_at / {BUCKET_MS}) * {BUCKET_MS}");
    let oldest = format!("{newest} - {}", (BUCKETS_PER_MINUTE - 1) * BUCKET_MS);
    let Some(room) = sqlx::query(&format!(
        "SELECT r.opened_at, r.early_arrivals, r.admitted_total, r.queued, r.sold_out, r.expired_total, \
         (SELECT CAST(COALESCE(SUM(a.admitted), 0) AS BIGINT) FROM waiting_room_admissions a \
          WHERE a.event_id = r.event_id AND a.bucket_ms >= {oldest} AND a.bucket_ms <= {newest}) \
         AS admitted_last_minute \
         FROM waiting_rooms r WHERE r.event_id = $1"
    ))
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await
    .context("reading a waiting room")?
    else {
        return Ok(None);
    };
    let admitted_last_minute: i64 = room.try_get("admitted_last_minute")?;
    let opened_at_ms: Option<i64> = room.try_get("opened_at")?;
    let sold_out: i64 = room.try_get("sold_out")?;
    Ok(Some(RoomFigures {
        status: match (sold_out != 0, opened_at_ms.is_some()) {
            (true, _) => "sold_out",
            (false, true) => "open",
            (false, false) => "scheduled",
        },
        queued: room.try_get("queued")?,
        admitted_total: room.try_get("admitted_total")?,
        admitted_last_minute,
        expired_total: room.try_get("expired_total")?,
        opened_at_ms,
        early_arrivals: room.try_get("early_arrivals")?,
    }))
}

impl From<&RoomFigures> for pb::WaitingRoomFigures {
    fn from(room: &RoomFigures) -> Self {
        Self {
            status: room.status.to_owned(),
            queued: room.queued,
            admitted: room.admitted_total,
            admitted_per_minute: room.admitted_last_minute,
            expired: room.expired_total,
            opened_at: room.opened_at_ms.map(ms_to_rfc3339).unwrap_or_default(),
            early_arrivals: room.early_arrivals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_waiting_room_event_is_a_fact_about_its_event() -> anyhow::Result<()> {
        let event_id = EventId::new();
        let at = time::macros::datetime!(2027-05-01 12:00 UTC);
        let expired = AdmissionsExpired { event_id, expired: 2, expired_total: 5, at };
        let envelope = Envelope::new("waiting_room", &expired, None)?;
        let fact = RoomFact::decode(&envelope)?;
        assert_eq!(fact, Some(RoomFact::Expired(expired)));
        assert_eq!(fact.map(|f| f.event_id()), Some(event_id));
        let other = Envelope::new("waiting_room", &WaitingRoomSoldOut { event_id, sold_out: true, at }, None)?;
        assert!(matches!(RoomFact::decode(&other)?, Some(RoomFact::SoldOut(_))));
        assert_eq!(subscription().routing_keys.len(), 4);
        Ok(())
    }
}
