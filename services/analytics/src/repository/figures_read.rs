//! The read of one event's kept figures: the event, its ticket types, their figures and its
//! minutes of sales in ONE statement, then its waiting room in one more. A dashboard's read is
//! two round trips to the database whatever the event's size, and needs no transaction: one
//! statement sees one snapshot on both backends, so sold, held and capacity always agree. (It
//! was ten round trips: a transaction around a statement per table. On PostgreSQL under a
//! sale's load each round trip waits for a core twice, and the read's p99 at 100,000 orders
//! was 12.8 ms.)

use anyhow::Context;
use eventhive_domain::EventId;
use eventhive_platform::Database;
use sqlx::Row;

use crate::{
    figures::MinuteFigures,
    waiting_rooms::{self, RoomFigures},
};

/// A ticket type of the newest snapshot of an event, in the snapshot's order.
pub struct TicketTypeRow {
    pub ticket_type_id: String,
    pub name: String,
    pub capacity: i64,
}

/// The kept figures of one ticket type.
pub struct TicketTypeFiguresRow {
    pub ticket_type_id: String,
    pub sold: i64,
    pub held: i64,
    pub revenue_minor: i64,
    pub checkins: i64,
}

/// The rows one event's figures are read from: a handful per ticket type and per minute of
/// sales, whatever the number of orders.
pub struct KeptFigures {
    pub organization_id: String,
    pub currency: String,
    pub ticket_types: Vec<TicketTypeRow>,
    /// By ticket type id.
    pub by_ticket_type: Vec<TicketTypeFiguresRow>,
    pub orders_paid: i64,
    pub revenue_minor: i64,
    /// Minutes with standing sales, oldest first.
    pub sales_per_minute: Vec<MinuteFigures>,
    /// When the newest event applied to the event occurred (Unix ms).
    pub as_of_ms: Option<i64>,
    /// Its waiting room, if it has one.
    pub waiting_room: Option<RoomFigures>,
}

/// Every row of the figures as one shape: which table it is from, then its columns in
/// order, two text and four numbers (what each holds is said per table below). A minute whose
/// sales were all refunded has no standing sale, and is left out.
const FIGURES: &str = "\
    SELECT 'event' AS kind, e.organization_id AS k, e.currency AS t, \
           f.orders_paid AS n1, f.revenue_minor AS n2, f.as_of AS n3, CAST(NULL AS BIGINT) AS n4 \
    FROM events e LEFT JOIN event_figures f ON f.event_id = e.event_id WHERE e.event_id = $1 \
    UNION ALL \
    SELECT 'ticket_type', ticket_type_id, name, capacity, ordinal, NULL, NULL \
    FROM ticket_types WHERE event_id = $1 \
    UNION ALL \
    SELECT 'figures', ticket_type_id, NULL, sold, held, revenue_minor, checkins \
    FROM ticket_type_figures WHERE event_id = $1 \
    UNION ALL \
    SELECT 'minute', NULL, NULL, minute_ms, tickets, revenue_minor, NULL \
    FROM minute_figures WHERE event_id = $1 AND (tickets <> 0 OR revenue_minor <> 0)";

/// The kept figures of `event_id`; `None` if analytics has not heard of the event.
#[tracing::instrument(skip(db))]
pub async fn kept_figures(db: &Database, event_id: EventId) -> anyhow::Result<Option<KeptFigures>> {
    let id = event_id.to_string();
    let mut conn = db.pool().acquire().await?;
    let rows = sqlx::query(FIGURES).bind(&id).fetch_all(&mut *conn).await.context("reading an event's figures")?;

    let mut event = None;
    let mut ticket_types = Vec::new();
    let mut by_ticket_type = Vec::new();
    let mut sales_per_minute = Vec::new();
    for row in rows {
        let kind: String = row.try_get("kind")?;
        let number = |column: &str| row.try_get::<Option<i64>, _>(column).map(Option::unwrap_or_default);
        match kind.as_str() {
            // organization, currency; orders paid, revenue, as of (none before any sale).
            "event" => {
                let as_of: Option<i64> = row.try_get("n3")?;
                event = Some((
                    row.try_get::<String, _>("k")?,
                    row.try_get::<String, _>("t")?,
                    number("n1")?,
                    number("n2")?,
                    as_of,
                ));
            }
            // id, name; capacity, place in the snapshot.
            "ticket_type" => ticket_types.push((
                number("n2")?,
                TicketTypeRow { ticket_type_id: row.try_get("k")?, name: row.try_get("t")?, capacity: number("n1")? },
            )),
            // id; sold, held, revenue, check-ins.
            "figures" => by_ticket_type.push(TicketTypeFiguresRow {
                ticket_type_id: row.try_get("k")?,
                sold: number("n1")?,
                held: number("n2")?,
                revenue_minor: number("n3")?,
                checkins: number("n4")?,
            }),
            // minute; tickets, revenue.
            _ => sales_per_minute.push(MinuteFigures {
                minute_ms: number("n1")?,
                tickets: number("n2")?,
                revenue_minor: number("n3")?,
            }),
        }
    }
    let Some((organization_id, currency, orders_paid, revenue_minor, as_of_ms)) = event else {
        return Ok(None);
    };
    ticket_types.sort_by_key(|(ordinal, _)| *ordinal);
    by_ticket_type.sort_by(|a, b| a.ticket_type_id.cmp(&b.ticket_type_id));
    sales_per_minute.sort_by_key(|minute| minute.minute_ms);
    // The room's figures are facts of their own: they need not share the sales' snapshot.
    let waiting_room = waiting_rooms::read(&mut conn, &id).await?;

    Ok(Some(KeptFigures {
        organization_id,
        currency,
        ticket_types: ticket_types.into_iter().map(|(_, row)| row).collect(),
        by_ticket_type,
        orders_paid,
        revenue_minor,
        sales_per_minute,
        as_of_ms,
        waiting_room,
    }))
}
