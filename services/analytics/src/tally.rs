//! The arithmetic of the kept figures: what an order counts for in its current state, and the
//! [`Delta`] that moving it from one state to another adds to its event's figures. Because an
//! order's deltas always run from the state stored before to the state stored after, they
//! telescope: whatever path and order of delivery an order took, the sum of its deltas is what
//! its final state counts for — which is what a rebuild, replaying the log, adds up to as well.

use std::collections::BTreeMap;

use crate::facts::OrderStatus;

/// The state of an order that decides what it counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderState {
    pub status: OrderStatus,
    /// When it was paid (Unix ms), once `OrderPaid` was heard, even after a refund.
    pub paid_at: Option<i64>,
}

impl OrderState {
    /// The state after hearing that the order reached `status` (paid at `paid_at`): the status
    /// moves only up the ranks (equal ranks, which never meet in practice, are decided by the
    /// status text so that the order of arrival never decides), and the earliest payment time
    /// stays.
    pub fn hearing(self, status: OrderStatus, paid_at: Option<i64>) -> Self {
        let moves = self.status.rank() < status.rank()
            || (self.status.rank() == status.rank() && self.status.as_str() < status.as_str());
        let paid_at = match (self.paid_at, paid_at) {
            (Some(before), Some(heard)) => Some(before.min(heard)),
            (before, heard) => before.or(heard),
        };
        Self { status: if moves { status } else { self.status }, paid_at }
    }
}

/// One line of an order, as the read model stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub ticket_type_id: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

/// What an order is made of, as the read model stored it when it first heard of the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// Tickets in the order, for the per-minute figures.
    pub quantity: i64,
    pub total_minor: i64,
    /// One per ticket type.
    pub lines: Vec<Line>,
}

/// A change to one ticket type's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TicketTypeDelta {
    pub sold: i64,
    pub held: i64,
    pub revenue_minor: i64,
    pub checkins: i64,
}

/// A change to one minute's sales.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteDelta {
    pub tickets: i64,
    pub revenue_minor: i64,
}

/// A change to one event's kept figures. Keyed maps, so that rows are always written in one
/// order and concurrent consumers on PostgreSQL cannot deadlock on them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub by_ticket_type: BTreeMap<String, TicketTypeDelta>,
    /// Keyed by the start of the minute, Unix ms.
    pub by_minute: BTreeMap<i64, MinuteDelta>,
    pub orders_paid: i64,
    pub revenue_minor: i64,
}

impl Delta {
    /// What `order` counts for in `state`: a placed order's tickets are held; a paid order's
    /// are sold, its total is revenue and, once its payment time is known, a sale of that
    /// minute; expired, cancelled and refunded orders count for nothing.
    pub fn of_order(order: &StoredOrder, state: Option<OrderState>) -> Self {
        let mut delta = Self::default();
        let Some(state) = state else { return delta };
        match state.status {
            OrderStatus::Placed => {
                for line in &order.lines {
                    delta.ticket_type(&line.ticket_type_id).held += line.quantity;
                }
            }
            OrderStatus::Paid => {
                for line in &order.lines {
                    let figures = delta.ticket_type(&line.ticket_type_id);
                    figures.sold += line.quantity;
                    figures.revenue_minor += line.quantity * line.unit_price_minor;
                }
                delta.orders_paid = 1;
                delta.revenue_minor = order.total_minor;
                if let Some(paid_at) = state.paid_at {
                    let minute = delta.by_minute.entry(minute_of(paid_at)).or_default();
                    minute.tickets += order.quantity;
                    minute.revenue_minor += order.total_minor;
                }
            }
            OrderStatus::Expired | OrderStatus::Cancelled | OrderStatus::Refunded => {}
        }
        delta
    }

    /// What moving `order` from `before` (`None`: not heard of) to `after` changes.
    pub fn of_move(order: &StoredOrder, before: Option<OrderState>, after: OrderState) -> Self {
        Self::of_order(order, Some(after)).minus(&Self::of_order(order, before))
    }

    /// One more ticket of `ticket_type_id` scanned in.
    pub fn check_in(ticket_type_id: &str) -> Self {
        let mut delta = Self::default();
        delta.ticket_type(ticket_type_id).checkins = 1;
        delta
    }

    /// Nothing changes.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_ticket_type.is_empty() && self.by_minute.is_empty() && self.orders_paid == 0 && self.revenue_minor == 0
    }

    fn ticket_type(&mut self, ticket_type_id: &str) -> &mut TicketTypeDelta {
        self.by_ticket_type.entry(ticket_type_id.to_owned()).or_default()
    }

    /// `self - other`, without the rows that do not change.
    fn minus(mut self, other: &Self) -> Self {
        for (id, o) in &other.by_ticket_type {
            let t = self.ticket_type(id);
            t.sold -= o.sold;
            t.held -= o.held;
            t.revenue_minor -= o.revenue_minor;
            t.checkins -= o.checkins;
        }
        for (minute, o) in &other.by_minute {
            let m = self.by_minute.entry(*minute).or_default();
            m.tickets -= o.tickets;
            m.revenue_minor -= o.revenue_minor;
        }
        self.orders_paid -= other.orders_paid;
        self.revenue_minor -= other.revenue_minor;
        self.by_ticket_type.retain(|_, t| *t != TicketTypeDelta::default());
        self.by_minute.retain(|_, m| *m != MinuteDelta::default());
        self
    }
}

/// The start of the minute of `at` (Unix ms), as the per-minute figures group payments. Integer
/// division truncates, as SQL's did when the figures were summed at read time.
pub fn minute_of(at: i64) -> i64 {
    (at / 60_000) * 60_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> StoredOrder {
        StoredOrder {
            quantity: 3,
            total_minor: 9000,
            lines: vec![
                Line { ticket_type_id: "general".into(), quantity: 2, unit_price_minor: 2000 },
                Line { ticket_type_id: "vip".into(), quantity: 1, unit_price_minor: 5000 },
            ],
        }
    }

    fn state(status: OrderStatus, paid_at: Option<i64>) -> OrderState {
        OrderState { status, paid_at }
    }

    /// Adds `delta` to `total`, as the upserts do.
    fn add(total: &mut Delta, delta: &Delta) {
        *total = std::mem::take(total).minus(&Delta::default().minus(delta));
    }

    #[test]
    fn paying_moves_tickets_from_held_to_sold_in_the_minute_of_payment() {
        let placed = state(OrderStatus::Placed, None);
        let paid = placed.hearing(OrderStatus::Paid, Some(61_500));
        let delta = Delta::of_move(&order(), Some(placed), paid);
        assert_eq!(
            delta.by_ticket_type["general"],
            TicketTypeDelta { sold: 2, held: -2, revenue_minor: 4000, checkins: 0 }
        );
        assert_eq!(
            delta.by_ticket_type["vip"],
            TicketTypeDelta { sold: 1, held: -1, revenue_minor: 5000, checkins: 0 }
        );
        assert_eq!(delta.by_minute[&60_000], MinuteDelta { tickets: 3, revenue_minor: 9000 });
        assert_eq!((delta.orders_paid, delta.revenue_minor), (1, 9000));
    }

    #[test]
    fn an_order_heard_again_changes_nothing() {
        let paid = state(OrderStatus::Paid, Some(1));
        assert!(Delta::of_move(&order(), Some(paid), paid.hearing(OrderStatus::Placed, None)).is_empty());
        assert!(Delta::of_move(&order(), Some(paid), paid.hearing(OrderStatus::Paid, Some(1))).is_empty());
        assert_eq!(paid.hearing(OrderStatus::Placed, None), paid, "a late placed never lowers the rank");
    }

    #[test]
    fn any_path_to_a_state_adds_up_to_what_that_state_counts_for() {
        use OrderStatus::*;
        // Every order of hearing the events of a placed → paid → refunded order, and of a
        // placed → expired one, starting from nothing.
        let heard_refunded = [(Placed, None), (Paid, Some(125_000)), (Refunded, None)];
        let heard_expired = [(Placed, None), (Expired, None)];
        let heard_paid = [(Placed, None), (Paid, Some(125_000)), (Paid, Some(121_000))];
        for heard in [&heard_refunded[..], &heard_expired[..], &heard_paid[..]] {
            for permutation in permutations(heard.len()) {
                let mut total = Delta::default();
                let mut current: Option<OrderState> = None;
                for &i in &permutation {
                    let (status, paid_at) = heard[i];
                    let after = match current {
                        None => state(status, paid_at),
                        Some(before) => before.hearing(status, paid_at),
                    };
                    add(&mut total, &Delta::of_move(&order(), current, after));
                    current = Some(after);
                }
                let final_state = current.unwrap_or(state(Placed, None));
                assert_eq!(total, Delta::of_order(&order(), Some(final_state)), "{heard:?} in order {permutation:?}");
            }
        }
    }

    #[test]
    fn refunded_orders_count_for_nothing_and_paid_ones_for_their_earliest_payment() {
        assert!(Delta::of_order(&order(), Some(state(OrderStatus::Refunded, Some(5)))).is_empty());
        let paid = state(OrderStatus::Paid, Some(125_000)).hearing(OrderStatus::Paid, Some(59_000));
        assert_eq!(paid.paid_at, Some(59_000));
        assert_eq!(minute_of(125_000), 120_000);
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut all = Vec::new();
        for rest in permutations(n - 1) {
            for at in 0..=rest.len() {
                let mut p = rest.clone();
                p.insert(at, n - 1);
                all.push(p);
            }
        }
        all
    }
}
