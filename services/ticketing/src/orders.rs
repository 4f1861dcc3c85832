//! Placing, reading, listing and cancelling orders. Placing an order holds its tickets in the
//! same transaction that records the order, its idempotency key and its `OrderPlaced` event.

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use eventhive_domain::{
    EventId, OrderId, TicketTypeId,
    events::{OrderCancelled, OrderExpired, OrderPlaced},
};
use eventhive_platform::{
    FieldError, outbox,
    storage::{from_ms, now_ms},
};
use eventhive_proto::ticketing::{ListOrdersResponse, Order, PlaceOrderRequest};
use sqlx::{Acquire, AnyConnection};

use crate::{
    SERVICE,
    engine::Engine,
    error::TicketingError,
    idempotency::{self, Scope, Turn},
    inventory::{self, Move},
    saga::{OrderEvent, OrderState},
    store::{self, ORDER_COLUMNS, OrderRow},
};

type Result<T> = std::result::Result<T, TicketingError>;

pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;

/// An order's content once parsed: the event and quantity per ticket type.
struct Wanted {
    event_id: String,
    /// Quantity per ticket type, with the item's index in the request (for error paths).
    items: BTreeMap<String, (usize, i64)>,
}

fn parse_request(request: &PlaceOrderRequest) -> Result<Wanted> {
    let mut errors = Vec::new();
    if EventId::parse(&request.event_id).is_err() {
        errors.push(FieldError::new("event_id", "must be the id of an event on sale"));
    }
    if request.items.is_empty() {
        errors.push(FieldError::new("items", "must name at least one ticket type"));
    }
    let mut items = BTreeMap::new();
    for (i, item) in request.items.iter().enumerate() {
        if TicketTypeId::parse(&item.ticket_type_id).is_err() {
            errors.push(FieldError::new(
                format!("items[{i}].ticket_type_id"),
                "must be the id of a ticket type of the event",
            ));
        } else if items.contains_key(&item.ticket_type_id) {
            errors.push(FieldError::new(
                format!("items[{i}].ticket_type_id"),
                "appears twice; use one item per ticket type",
            ));
        }
        if item.quantity < 1 {
            errors.push(FieldError::new(format!("items[{i}].quantity"), "must be at least 1"));
        }
        items.insert(item.ticket_type_id.clone(), (i, item.quantity));
    }
    if !errors.is_empty() {
        return Err(TicketingError::Invalid(errors));
    }
    Ok(Wanted { event_id: request.event_id.clone(), items })
}

impl Engine {
    #[tracing::instrument(skip_all, fields(buyer_id = %request.buyer_id, event_id = %request.event_id))]
    pub async fn place_order(&self, request: PlaceOrderRequest, request_id: Option<&str>) -> Result<Order> {
        let wanted = parse_request(&request)?;
        let quantities: Vec<(&String, i64)> = wanted.items.iter().map(|(id, (_, q))| (id, *q)).collect();
        let fingerprint = format!("{}|{quantities:?}", wanted.event_id);
        let scope =
            Scope::new(&request.buyer_id, "POST /v1/orders".into(), &request.idempotency_key, fingerprint.as_bytes())?;
        self.know_event(&wanted, request_id).await?;

        let mut tx = match idempotency::claim_or_wait(&self.db, &scope).await? {
            Turn::Replay(answer) => return answer,
            Turn::Owned(tx) => tx,
        };
        // A savepoint: a refused order leaves no trace but its kept answer.
        let mut attempt = tx.begin().await?;
        let result = self.hold(&mut attempt, &request.buyer_id, &wanted, request_id).await;
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
    async fn know_event(&self, wanted: &Wanted, request_id: Option<&str>) -> Result<()> {
        let mut conn = self.db.pool().acquire().await?;
        let known_event = store::event(&mut conn, &wanted.event_id).await?.is_some();
        let mut known_types = 0;
        for ticket_type_id in wanted.items.keys() {
            let found: Option<String> =
                sqlx::query_scalar("SELECT id FROM ticket_types WHERE id = $1 AND event_id = $2")
                    .bind(ticket_type_id)
                    .bind(&wanted.event_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            known_types += usize::from(found.is_some());
        }
        drop(conn);
        if !known_event || known_types < wanted.items.len() {
            self.catalog
                .fetch(&wanted.event_id, request_id)
                .await
                .map_err(|e| TicketingError::Unavailable(format!("{e:#}")))?;
        }
        Ok(())
    }

    async fn hold(
        &self,
        tx: &mut AnyConnection,
        buyer_id: &str,
        wanted: &Wanted,
        request_id: Option<&str>,
    ) -> Result<Order> {
        let event = store::event(tx, &wanted.event_id)
            .await?
            .ok_or_else(|| FieldError::new("event_id", "no event on sale has this id"))?;
        let now = now_ms();
        match event.status.as_str() {
            "on_sale" => {}
            "cancelled" => return Err(TicketingError::Conflict("the event is cancelled".into())),
            _ => return Err(FieldError::new("event_id", "no event on sale has this id").into()),
        }
        if event.starts_at <= now {
            return Err(TicketingError::Conflict("sales have closed: the event has started".into()));
        }
        let quantity: i64 = wanted.items.values().map(|(_, q)| q).sum();
        if quantity > event.max_tickets_per_order {
            return Err(
                FieldError::new("items", format!("at most {} tickets per order", event.max_tickets_per_order)).into()
            );
        }
        // Per-buyer cap across all live orders, as one conditional update: concurrent orders of
        // one buyer cannot slip past it together.
        sqlx::query(
            "INSERT INTO buyer_event_totals (buyer_id, event_id, quantity) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
        )
        .bind(buyer_id)
        .bind(&event.id)
        .execute(&mut *tx)
        .await?;
        let within_cap = sqlx::query(
            "UPDATE buyer_event_totals SET quantity = quantity + $1 WHERE buyer_id = $2 AND event_id = $3 AND quantity + $1 <= $4",
        )
        .bind(quantity)
        .bind(buyer_id)
        .bind(&event.id)
        .bind(event.max_tickets_per_buyer)
        .execute(&mut *tx)
        .await?;
        if within_cap.rows_affected() == 0 {
            return Err(TicketingError::Conflict(format!(
                "one buyer may hold at most {} tickets for this event",
                event.max_tickets_per_buyer
            )));
        }

        let order_id = OrderId::new().to_string();
        let expires_at = now + self.hold_ttl_ms;
        let mut total: i64 = 0;
        let mut lines = Vec::new();
        for (ticket_type_id, (index, wanted_quantity)) in &wanted.items {
            let row: Option<(String, i64, i64)> =
                sqlx::query_as("SELECT name, price_minor, shards FROM ticket_types WHERE id = $1 AND event_id = $2")
                    .bind(ticket_type_id)
                    .bind(&event.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((name, price_minor, shards)) = row else {
                return Err(FieldError::new(
                    format!("items[{index}].ticket_type_id"),
                    "is not a ticket type of this event",
                )
                .into());
            };
            total = price_minor
                .checked_mul(*wanted_quantity)
                .and_then(|subtotal| total.checked_add(subtotal))
                .ok_or_else(|| FieldError::new("items", "the total is out of range"))?;
            lines.push((ticket_type_id.clone(), name, *wanted_quantity, price_minor, shards));
        }
        sqlx::query(&format!(
            "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL, NULL, NULL)"
        ))
        .bind(&order_id)
        .bind(buyer_id)
        .bind(&event.id)
        .bind(OrderState::PendingPayment.as_str())
        .bind(&event.currency)
        .bind(total)
        .bind(quantity)
        .bind(expires_at)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (ticket_type_id, name, line_quantity, price_minor, shards) in &lines {
            sqlx::query(
                "INSERT INTO order_items (order_id, ticket_type_id, name, quantity, unit_price_minor) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&order_id)
            .bind(ticket_type_id)
            .bind(name)
            .bind(line_quantity)
            .bind(price_minor)
            .execute(&mut *tx)
            .await?;
            if !inventory::hold(&self.db, tx, &order_id, ticket_type_id, *line_quantity, *shards).await? {
                return Err(TicketingError::SoldOut(format!("not enough {name} tickets left")));
            }
        }
        let order =
            store::order(&self.db, tx, &order_id, false).await?.ok_or_else(|| anyhow::anyhow!("order vanished"))?;
        let summary = store::summary(tx, &order).await?;
        outbox::enqueue(
            tx,
            SERVICE,
            &OrderPlaced { order: summary, expires_at: from_ms(expires_at) },
            request_id.map(str::to_owned),
        )
        .await?;
        store::order_proto(tx, &order).await
    }

    /// An order of `buyer_id`; anyone else's is not found.
    pub async fn get_order(&self, buyer_id: &str, order_id: &str) -> Result<Order> {
        let mut conn = self.db.pool().acquire().await?;
        let order = self.owned_order(&mut conn, buyer_id, order_id).await?;
        store::order_proto(&mut conn, &order).await
    }

    pub(crate) async fn owned_order(
        &self,
        conn: &mut AnyConnection,
        buyer_id: &str,
        order_id: &str,
    ) -> Result<OrderRow> {
        let not_found = || TicketingError::NotFound("no such order".into());
        if OrderId::parse(order_id).is_err() {
            return Err(not_found());
        }
        let order = store::order(&self.db, conn, order_id, false).await?.ok_or_else(not_found)?;
        if order.buyer_id != buyer_id {
            return Err(not_found());
        }
        Ok(order)
    }

    /// The buyer's orders, newest first.
    pub async fn list_orders(&self, buyer_id: &str, page_size: i64, page_token: &str) -> Result<ListOrdersResponse> {
        let (limit, after) = page(page_size, page_token)?;
        let mut conn = self.db.pool().acquire().await?;
        let rows: Vec<OrderRow> = sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE buyer_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        ))
        .bind(buyer_id)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        let (rows, next_page_token) = split_page(rows, limit, |o| o.id.clone());
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(store::order_proto(&mut conn, row).await?);
        }
        Ok(ListOrdersResponse { items, next_page_token })
    }

    /// Expires an unpaid order whose hold ran out: its tickets go back on sale.
    pub(crate) async fn expire(&self, order_id: &str, now: i64) -> Result<bool> {
        self.close_unpaid(order_id, OrderEvent::HoldExpired, Some(now), "hold expired").await
    }

    /// Cancels an unpaid order: its tickets go back on sale.
    pub(crate) async fn cancel_unpaid(&self, order_id: &str, reason: &str) -> Result<bool> {
        self.close_unpaid(order_id, OrderEvent::Cancelled, None, reason).await
    }

    async fn close_unpaid(&self, order_id: &str, event: OrderEvent, due_by: Option<i64>, reason: &str) -> Result<bool> {
        let mut tx = self.db.pool().begin().await?;
        let Some(order) = store::order(&self.db, &mut tx, order_id, true).await? else { return Ok(false) };
        if order.state()? != OrderState::PendingPayment || due_by.is_some_and(|now| order.expires_at > now) {
            return Ok(false);
        }
        if !store::transition(&mut tx, order_id, OrderState::PendingPayment, event).await? {
            return Ok(false);
        }
        sqlx::query("UPDATE orders SET closed_reason = $1 WHERE id = $2")
            .bind(reason)
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        inventory::apply(&mut tx, order_id, Move::Release).await?;
        release_buyer_quota(&mut tx, &order).await?;
        let summary = store::summary(&mut tx, &order).await?;
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

/// Gives the buyer's per-event quota back when tickets return to sale.
pub(crate) async fn release_buyer_quota(tx: &mut AnyConnection, order: &OrderRow) -> Result<()> {
    sqlx::query("UPDATE buyer_event_totals SET quantity = quantity - $1 WHERE buyer_id = $2 AND event_id = $3")
        .bind(order.quantity)
        .bind(&order.buyer_id)
        .bind(&order.event_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Page size and the id to continue below (newest first; UUIDv7 ids sort by time).
pub(crate) fn page(page_size: i64, page_token: &str) -> Result<(i64, String)> {
    let size = if page_size == 0 { DEFAULT_PAGE_SIZE } else { page_size };
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(FieldError::new("page_size", format!("must be between 1 and {MAX_PAGE_SIZE}")).into());
    }
    if page_token.is_empty() {
        // Above every UUID.
        return Ok((size, "g".into()));
    }
    let invalid = || TicketingError::from(FieldError::new("page_token", "is not a page token this API gave out"));
    let bytes = URL_SAFE_NO_PAD.decode(page_token).map_err(|_| invalid())?;
    let id = String::from_utf8(bytes).map_err(|_| invalid())?;
    uuid::Uuid::parse_str(&id).map_err(|_| invalid())?;
    Ok((size, id))
}

pub(crate) fn split_page<T>(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let token = rows.last().map(|last| URL_SAFE_NO_PAD.encode(id(last)));
        (rows, token)
    } else {
        (rows, None)
    }
}
