//! The figures of one event, read from the figures the projection keeps as events are applied
//! (a few rows per ticket type and per minute of sales, whatever the number of orders), with
//! the capacities of the newest snapshot.

use std::collections::BTreeMap;

use eventhive_domain::EventId;
use eventhive_platform::{Database, storage::ms_to_rfc3339};
use eventhive_proto::{analytics as pb, common::Money};

use crate::{repository, waiting_rooms::RoomFigures};

/// What an event's organizers see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub event_id: EventId,
    /// The organization whose owner, admins and staff may see the figures.
    pub organization_id: String,
    /// Of every amount below, from the newest snapshot of the event.
    pub currency: String,
    /// Tickets of paid orders.
    pub tickets_sold: i64,
    /// Tickets of placed orders not yet paid, expired or cancelled.
    pub tickets_held: i64,
    /// Per ticket type, capacity less sold and held, never below zero; summed.
    pub tickets_available: i64,
    /// The totals of paid orders (refunded ones are not paid any more).
    pub revenue_minor: i64,
    pub orders_paid: i64,
    /// Tickets scanned in at the door, each once.
    pub checkins: i64,
    /// The ticket types of the newest snapshot in its order, then any that only orders name.
    pub by_ticket_type: Vec<TicketTypeFigures>,
    /// Paid orders by the minute they were paid, oldest first.
    pub sales_per_minute: Vec<MinuteFigures>,
    /// When the newest event applied to these figures occurred (Unix ms). Taken from the events,
    /// not the clock, so that a rebuild gives the very same figures.
    pub as_of_ms: Option<i64>,
    /// The event's waiting room: queue, admissions, expiries; `None` if it has none.
    pub waiting_room: Option<RoomFigures>,
}

/// One ticket type's share of the figures, counted like the event's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketTypeFigures {
    pub ticket_type_id: String,
    /// Empty for a ticket type the newest snapshot no longer lists.
    pub name: String,
    /// From the newest snapshot; 0 for a ticket type it no longer lists.
    pub capacity: i64,
    pub sold: i64,
    pub held: i64,
    /// Capacity less sold and held, never below zero (a capacity may be cut below the sales).
    pub available: i64,
    /// Quantity times unit price over the paid orders' lines.
    pub revenue_minor: i64,
    pub checkins: i64,
}

/// The paid orders of one minute: the shape of a sale over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteFigures {
    /// Start of the minute, Unix ms.
    pub minute_ms: i64,
    pub tickets: i64,
    pub revenue_minor: i64,
}

impl Figures {
    /// Total capacity of the newest snapshot's ticket types.
    pub fn capacity(&self) -> i64 {
        self.by_ticket_type.iter().map(|t| t.capacity).sum()
    }
}

/// The figures of `event_id`; `None` if analytics has not heard of the event.
pub async fn load(db: &Database, event_id: EventId) -> anyhow::Result<Option<Figures>> {
    let Some(kept) = repository::kept_figures(db, event_id).await? else {
        return Ok(None);
    };

    // Ticket types keyed by id, in the snapshot's order first.
    let mut types: Vec<TicketTypeFigures> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for row in kept.ticket_types {
        index.insert(row.ticket_type_id.clone(), types.len());
        types.push(TicketTypeFigures {
            ticket_type_id: row.ticket_type_id,
            name: row.name,
            capacity: row.capacity,
            sold: 0,
            held: 0,
            available: 0,
            revenue_minor: 0,
            checkins: 0,
        });
    }
    // Sales or check-ins of a ticket type the newest snapshot dropped still count in the totals;
    // they are listed after the snapshot's, by id. A ticket type whose figures all went back to
    // zero (its only order expired) is not listed.
    let mut unlisted: BTreeMap<String, TicketTypeFigures> = BTreeMap::new();
    for row in kept.by_ticket_type {
        if !index.contains_key(&row.ticket_type_id)
            && row.sold == 0
            && row.held == 0
            && row.revenue_minor == 0
            && row.checkins == 0
        {
            continue;
        }
        let figures = entry(&mut types, &index, &mut unlisted, row.ticket_type_id);
        figures.sold += row.sold;
        figures.held += row.held;
        figures.revenue_minor += row.revenue_minor;
        figures.checkins += row.checkins;
    }
    types.extend(unlisted.into_values());
    for figures in &mut types {
        figures.available = (figures.capacity - figures.sold - figures.held).max(0);
    }

    Ok(Some(Figures {
        event_id,
        organization_id: kept.organization_id,
        currency: kept.currency,
        tickets_sold: types.iter().map(|t| t.sold).sum(),
        tickets_held: types.iter().map(|t| t.held).sum(),
        tickets_available: types.iter().map(|t| t.available).sum(),
        revenue_minor: kept.revenue_minor,
        orders_paid: kept.orders_paid,
        checkins: types.iter().map(|t| t.checkins).sum(),
        by_ticket_type: types,
        sales_per_minute: kept.sales_per_minute,
        as_of_ms: kept.as_of_ms,
        waiting_room: kept.waiting_room,
    }))
}

/// The figures of `ticket_type_id`: the snapshot's, or a new unlisted entry.
fn entry<'a>(
    types: &'a mut [TicketTypeFigures],
    index: &BTreeMap<String, usize>,
    unlisted: &'a mut BTreeMap<String, TicketTypeFigures>,
    ticket_type_id: String,
) -> &'a mut TicketTypeFigures {
    match index.get(&ticket_type_id).copied() {
        Some(at) if at < types.len() => &mut types[at],
        _ => unlisted.entry(ticket_type_id.clone()).or_insert_with(|| TicketTypeFigures {
            ticket_type_id,
            name: String::new(),
            capacity: 0,
            sold: 0,
            held: 0,
            available: 0,
            revenue_minor: 0,
            checkins: 0,
        }),
    }
}

impl From<Figures> for pb::EventAnalytics {
    fn from(figures: Figures) -> Self {
        let money = |amount_minor: i64| Some(Money { amount_minor, currency: figures.currency.clone() });
        Self {
            event_id: figures.event_id.to_string(),
            tickets_sold: figures.tickets_sold,
            tickets_held: figures.tickets_held,
            tickets_available: figures.tickets_available,
            revenue: money(figures.revenue_minor),
            orders_paid: figures.orders_paid,
            checkins: figures.checkins,
            by_ticket_type: figures
                .by_ticket_type
                .iter()
                .map(|t| pb::TicketTypeStats {
                    ticket_type_id: t.ticket_type_id.clone(),
                    name: t.name.clone(),
                    capacity: t.capacity,
                    sold: t.sold,
                    held: t.held,
                    available: t.available,
                    revenue: money(t.revenue_minor),
                    checkins: t.checkins,
                })
                .collect(),
            sales_per_minute: figures
                .sales_per_minute
                .iter()
                .map(|m| pb::MinuteSales {
                    minute: ms_to_rfc3339(m.minute_ms),
                    tickets: m.tickets,
                    revenue: money(m.revenue_minor),
                })
                .collect(),
            as_of: figures.as_of_ms.map(ms_to_rfc3339).unwrap_or_default(),
            waiting_room: figures.waiting_room.as_ref().map(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_carries_every_figure_in_the_event_currency() {
        let figures = Figures {
            event_id: EventId::new(),
            organization_id: "org".into(),
            currency: "EUR".into(),
            tickets_sold: 3,
            tickets_held: 1,
            tickets_available: 6,
            revenue_minor: 7500,
            orders_paid: 2,
            checkins: 1,
            by_ticket_type: vec![TicketTypeFigures {
                ticket_type_id: "t".into(),
                name: "Early bird".into(),
                capacity: 10,
                sold: 3,
                held: 1,
                available: 6,
                revenue_minor: 7500,
                checkins: 1,
            }],
            sales_per_minute: vec![MinuteFigures { minute_ms: 120_000, tickets: 3, revenue_minor: 7500 }],
            as_of_ms: Some(150_000),
            waiting_room: None,
        };
        assert_eq!(figures.capacity(), 10);
        let wire = pb::EventAnalytics::from(figures);
        assert_eq!(wire.revenue, Some(Money { amount_minor: 7500, currency: "EUR".into() }));
        assert_eq!(wire.sales_per_minute[0].minute, "1970-01-01T00:02:00Z");
        assert_eq!(wire.by_ticket_type[0].revenue.as_ref().map(|m| m.currency.as_str()), Some("EUR"));
        assert_eq!(wire.as_of, "1970-01-01T00:02:30Z");
    }
}
