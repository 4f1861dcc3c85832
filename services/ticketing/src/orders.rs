//! The buyer's side of an order: place (hold), read, list and cancel; and closing an unpaid
//! order when its hold runs out or its event is cancelled. Placing an order holds its tickets
//! in the same transaction that records the order, its idempotency key and its `OrderPlaced`
//! event. Paying and refunding are the saga's, in [`crate::purchase`].

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
};

use eventhive_domain::{
    EventId, OrderId, TicketTypeId, UserId,
    events::{OrderCancelled, OrderExpired, OrderPlaced},
    rules::{IdempotencyKey, Quantity},
};
use eventhive_platform::{
    FieldError, outbox,
    storage::{from_ms, now_ms},
};
use eventhive_proto::ticketing::{ListOrdersResponse, Order};
use sqlx::{Acquire, AnyConnection};

use crate::{
    SERVICE,
    engine::Engine,
    error::TicketingError,
    idempotency::{self, Operation, Scope, Turn},
    inventory::{self, Move},
    paging::Page,
    repository::{
        catalog,
        orders::{self, ItemRecord, NewOrderRecord, OrderRecord},
    },
    saga::{OrderEvent, OrderState},
    views,
};

type Result<T> = std::result::Result<T, TicketingError>;

/// An order as the buyer asked for it, parsed: the event and a line per ticket type.
#[derive(Debug, Clone)]
pub(crate) struct NewOrder {
    pub event_id: EventId,
    /// In ticket type order, which is the order holds lock shards in.
    pub lines: BTreeMap<TicketTypeId, Line>,
    /// The tickets of all lines.
    pub quantity: i64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    /// The item's index in the request, for error paths (`items[2].ticket_type_id`).
    pub index: usize,
    pub quantity: Quantity,
}

impl NewOrder {
    /// What an idempotency key is bound to. Its form must not change while keys live (24 h):
    /// a retry across a deploy must match the first request.
    fn fingerprint(&self) -> String {
        let quantities: Vec<(String, i64)> =
            self.lines.iter().map(|(id, line)| (id.to_string(), line.quantity.get())).collect();
        format!("{}|{quantities:?}", self.event_id)
    }
}

/// The (event, ticket type) pairs found in ticketing's copy of catalog. Ticketing never
/// removes an event or a ticket type from that copy, so a pair found once stays found: an order
/// for it need not look again (the hold reads the event and its ticket types anyway, in its
/// transaction). Only a shortcut: a replica that forgot (a restart, a full set) looks again.
#[derive(Clone, Default)]
pub(crate) struct KnownTicketTypes(Arc<Mutex<HashSet<(EventId, TicketTypeId)>>>);

impl KnownTicketTypes {
    /// More than any number of ticket types on sale at once; past it the set starts over.
    const CAPACITY: usize = 100_000;

    fn all_known(&self, order: &NewOrder) -> bool {
        let known = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        order.lines.keys().all(|ticket_type_id| known.contains(&(order.event_id, *ticket_type_id)))
    }

    fn remember(&self, order: &NewOrder) {
        let mut known = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() + order.lines.len() > Self::CAPACITY {
            known.clear();
        }
        known.extend(order.lines.keys().map(|ticket_type_id| (order.event_id, *ticket_type_id)));
    }
}

impl Engine {
    #[tracing::instrument(skip_all, fields(%buyer_id, event_id = %order.event_id))]
    pub(crate) async fn place_order(
        &self,
        buyer_id: UserId,
        order: NewOrder,
        key: IdempotencyKey,
        admission_token: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<Order> {
        self.check_admission(buyer_id, order.event_id, admission_token).await?;
        let scope = Scope::new(buyer_id, Operation::PlaceOrder, key, order.fingerprint().as_bytes());
        self.know_event(&order, request_id).await?;

        let mut tx = match idempotency::claim_or_wait(&self.db, &scope).await? {
            Turn::Replay(answer) => return answer,
            Turn::Owned(tx) => tx,
        };
        // A savepoint: a refused order leaves no trace but its kept answer.
        let mut attempt = tx.begin().await?;
        let result = self.hold(&mut attempt, buyer_id, &order, request_id).await;
        if result.is_ok() {
            attempt.commit().await?;
        } else {
            attempt.rollback().await?;
        }
        idempotency::finish(&mut tx, &scope, &result).await?;
        tx.commit().await?;
        match &result {
            Ok(_) => {
                metrics::counter!("eventhive_orders_placed_total").increment(1);
                self.relay.wake();
            }
            Err(TicketingError::SoldOut(_)) => metrics::counter!("eventhive_orders_sold_out_total").increment(1),
            Err(_) => {}
        }
        result
    }

    /// Makes sure ticketing knows the event and every ticket type named, asking catalog if not.
    async fn know_event(&self, order: &NewOrder, request_id: Option<&str>) -> Result<()> {
        if self.known_ticket_types.all_known(order) {
            return Ok(());
        }
        let mut conn = self.db.pool().acquire().await?;
        let known_event = catalog::event(&mut conn, order.event_id).await?.is_some();
        let mut known_types = 0;
        for ticket_type_id in order.lines.keys() {
            let found = catalog::ticket_type(&mut conn, *ticket_type_id, order.event_id).await?;
            known_types += usize::from(found.is_some());
        }
        drop(conn);
        if known_event && known_types == order.lines.len() {
            self.known_ticket_types.remember(order);
        } else {
            self.catalog
                .fetch(order.event_id, request_id)
                .await
                .map_err(|e| TicketingError::Unavailable(format!("{e:#}")))?;
        }
        Ok(())
    }

    async fn hold(
        &self,
        tx: &mut AnyConnection,
        buyer_id: UserId,
        order: &NewOrder,
        request_id: Option<&str>,
    ) -> Result<Order> {
        // Share-locked: a concurrent close of the event's sales waits for this hold to commit.
        let event = catalog::event_for_sale(tx, order.event_id)
            .await?
            .ok_or_else(|| FieldError::new("event_id", "no event on sale has this id"))?;
        let now = now_ms();
        match event.status.as_str() {
            "cancelled" => return Err(TicketingError::Conflict("the event is cancelled".into())),
            _ if event.sales_closed => return Err(TicketingError::Conflict("the event's sales are closed".into())),
            "on_sale" => {}
            _ => return Err(FieldError::new("event_id", "no event on sale has this id").into()),
        }
        if event.starts_at <= now {
            return Err(TicketingError::Conflict("sales have closed: the event has started".into()));
        }
        if order.quantity > event.max_tickets_per_order {
            return Err(
                FieldError::new("items", format!("at most {} tickets per order", event.max_tickets_per_order)).into()
            );
        }
        // Per-buyer cap across all live orders.
        if !orders::reserve_buyer_quota(tx, buyer_id, event.id, order.quantity, event.max_tickets_per_buyer).await? {
            return Err(TicketingError::Conflict(format!(
                "one buyer may hold at most {} tickets for this event",
                event.max_tickets_per_buyer
            )));
        }

        let order_id = OrderId::new();
        let expires_at = now + self.hold_ttl_ms;
        let mut total: i64 = 0;
        let mut lines = Vec::new();
        for (ticket_type_id, line) in &order.lines {
            let Some(ticket_type) = catalog::ticket_type(tx, *ticket_type_id, event.id).await? else {
                return Err(FieldError::new(
                    format!("items[{}].ticket_type_id", line.index),
                    "is not a ticket type of this event",
                )
                .into());
            };
            let quantity = line.quantity.get();
            total = ticket_type
                .price_minor
                .checked_mul(quantity)
                .and_then(|subtotal| total.checked_add(subtotal))
                .ok_or_else(|| FieldError::new("items", "the total is out of range"))?;
            let item = ItemRecord {
                ticket_type_id: *ticket_type_id,
                name: ticket_type.name,
                quantity,
                unit_price_minor: ticket_type.price_minor,
            };
            lines.push((item, ticket_type.shards));
        }
        let record = NewOrderRecord {
            id: order_id,
            buyer_id,
            event_id: event.id,
            currency: &event.currency,
            total_minor: total,
            quantity: order.quantity,
            expires_at,
            now,
        };
        let placed = orders::insert(tx, &record).await?;
        for (item, shards) in &lines {
            orders::insert_item(tx, order_id, item).await?;
            if !inventory::hold(&self.db, tx, order_id, item.ticket_type_id, item.quantity, *shards).await? {
                return Err(TicketingError::SoldOut(format!("not enough {} tickets left", item.name)));
            }
        }
        // The order, its items and its (no) tickets are at hand: nothing is read back.
        let items: Vec<ItemRecord> = lines.into_iter().map(|(item, _)| item).collect();
        outbox::enqueue(
            tx,
            SERVICE,
            &OrderPlaced { order: views::summary_of(&placed, &items), expires_at: from_ms(expires_at) },
            request_id.map(str::to_owned),
        )
        .await?;
        Ok(views::order_of(&placed, &items, &[]))
    }

    /// An order of `buyer_id`; anyone else's is not found.
    pub(crate) async fn get_order(&self, buyer_id: UserId, order_id: OrderId) -> Result<Order> {
        let mut conn = self.db.pool().acquire().await?;
        let order = self.owned_order(&mut conn, buyer_id, order_id).await?;
        views::order(&mut conn, &order).await
    }

    pub(crate) async fn owned_order(
        &self,
        conn: &mut AnyConnection,
        buyer_id: UserId,
        order_id: OrderId,
    ) -> Result<OrderRecord> {
        orders::find(conn, order_id)
            .await?
            .filter(|order| order.buyer_id == buyer_id)
            .ok_or_else(|| TicketingError::NotFound("no such order".into()))
    }

    /// The buyer's orders, newest first.
    pub(crate) async fn list_orders(&self, buyer_id: UserId, page: Page) -> Result<ListOrdersResponse> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = orders::page_of_buyer(&mut conn, buyer_id, &page.after, page.probe()).await?;
        let (rows, next_page_token) = page.split(rows, |o| o.id.to_string());
        Ok(ListOrdersResponse { items: views::orders(&mut conn, &rows).await?, next_page_token })
    }

    /// Buyer's cancel: a pending order releases its hold; a paid one is refunded until the
    /// event starts.
    #[tracing::instrument(skip_all, fields(%order_id))]
    pub(crate) async fn cancel_order(
        &self,
        buyer_id: UserId,
        order_id: OrderId,
        request_id: Option<&str>,
    ) -> Result<Order> {
        let mut conn = self.db.pool().acquire().await?;
        let order = self.owned_order(&mut conn, buyer_id, order_id).await?;
        let event =
            catalog::event(&mut conn, order.event_id).await?.ok_or_else(|| anyhow::anyhow!("event vanished"))?;
        drop(conn);
        match order.state {
            OrderState::PendingPayment => {
                if !self.cancel_unpaid(order_id, "cancelled by the buyer").await? {
                    return Err(TicketingError::Conflict("the order changed; try again".into()));
                }
            }
            OrderState::Authorizing => {
                return Err(TicketingError::Conflict("a payment for this order is in progress".into()));
            }
            OrderState::Paid => {
                if event.starts_at <= now_ms() {
                    return Err(TicketingError::Conflict(
                        "the event has started; the order can no longer be refunded".into(),
                    ));
                }
                self.refund_order(order_id, "cancelled by the buyer", true, request_id).await?;
            }
            OrderState::Refunding => self.finish_refund(order_id, request_id).await?,
            OrderState::Expired | OrderState::Cancelled | OrderState::Refunded => {
                return Err(TicketingError::Conflict(format!("the order is {} already", order.state.public_status())));
            }
        }
        self.get_order(buyer_id, order_id).await
    }

    /// Expires an unpaid order whose hold ran out: its tickets go back on sale.
    pub(crate) async fn expire(&self, order_id: OrderId, now: i64) -> Result<bool> {
        self.close_unpaid(order_id, OrderEvent::HoldExpired, Some(now), "hold expired").await
    }

    /// Cancels an unpaid order: its tickets go back on sale.
    pub(crate) async fn cancel_unpaid(&self, order_id: OrderId, reason: &str) -> Result<bool> {
        self.close_unpaid(order_id, OrderEvent::Cancelled, None, reason).await
    }

    async fn close_unpaid(
        &self,
        order_id: OrderId,
        event: OrderEvent,
        due_by: Option<i64>,
        reason: &str,
    ) -> Result<bool> {
        let mut tx = self.db.pool().begin().await?;
        let Some(order) = orders::find_for_update(&self.db, &mut tx, order_id).await? else { return Ok(false) };
        if order.state != OrderState::PendingPayment || due_by.is_some_and(|now| order.expires_at > now) {
            return Ok(false);
        }
        if !orders::transition(&mut tx, order_id, OrderState::PendingPayment, event).await? {
            return Ok(false);
        }
        orders::set_closed_reason(&mut tx, order_id, reason).await?;
        // The buyer's total before the shards, the order a hold takes them in: the other order
        // deadlocks against a hold of the same buyer waiting for a shard this holds.
        orders::release_buyer_quota(&mut tx, &order).await?;
        inventory::apply(&mut tx, order_id, Move::Release).await?;
        let summary = views::summary(&mut tx, &order).await?;
        let reason_label = if event == OrderEvent::HoldExpired { "expired" } else { "cancelled" };
        metrics::counter!("eventhive_holds_released_total", "reason" => reason_label).increment(1);
        match event {
            OrderEvent::HoldExpired => {
                outbox::enqueue(&mut tx, SERVICE, &OrderExpired { order: summary }, None).await?
            }
            _ => {
                outbox::enqueue(&mut tx, SERVICE, &OrderCancelled { order: summary, reason: reason.to_owned() }, None)
                    .await?
            }
        };
        tx.commit().await?;
        self.relay.wake();
        Ok(true)
    }
}
