//! Orders, payment and tickets: API.md's "Orders, payment, tickets" table (its check-in rows
//! are in `checkins`). A new order is parsed here as ticketing parses it, so that a malformed
//! one never costs a call.

use std::collections::HashSet;

use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::{StatusCode, request::Parts},
};
use eventhive_domain::{
    EventId, OrderId, TicketTypeId, admission,
    rules::{IdempotencyKey, Quantity},
};
use eventhive_platform::{ErrorKind, FieldError, Problem, grpc::request, problem::validation_status};
use eventhive_proto::{
    payments::Card,
    ticketing::{
        self, CancelOrderRequest, GetOrderRequest, ListOrdersRequest, ListTicketsRequest, OrderItemInput,
        PayOrderRequest, PlaceOrderRequest,
    },
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    RequestId, answers,
    shared::{MoneyDto, page_size},
};
use crate::{
    auth::AuthUser,
    extract::{ApiJson, ApiQuery, PathId},
    state::AppState,
};

/// The `Idempotency-Key` header, required where a retry must not act twice. A missing or
/// malformed one is 400 `bad-request`, as any malformed header (API.md).
pub struct IdempotencyHeader(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = IdempotencyKey::HEADER;
        let bad = |detail: String| Problem::new(ErrorKind::BadRequest, detail);
        let value = parts.headers.get(header).ok_or_else(|| bad(format!("the {header} header is required")))?;
        let key = value.to_str().map_err(|_| bad(format!("the {header} must be printable ASCII")))?;
        IdempotencyKey::parse(key)
            .map(IdempotencyHeader)
            .map_err(|error| bad(format!("the {} {}", error.field, error.message)))
    }
}

/// The `Admission-Token` header, passed on as it is: ticketing decides whether the event needs
/// one and verifies it.
pub struct AdmissionHeader(pub String);

impl<S: Send + Sync> FromRequestParts<S> for AdmissionHeader {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(admission::HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Ok(Self(value.to_owned()))
    }
}

/// Holds tickets for a new order until `expires_at`.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]([ -~]*[!-~])?$", description = "1 to 255 printable ASCII characters (spaces inside only, as HTTP drops them at the ends); a retry with the same key and body returns the first answer"),
           ("Admission-Token" = Option<String>, Header, description = "for an event with a waiting room: the caller's admission token for that event")),
    request_body = CreateOrderBody,
    responses((status = 201, body = OrderDto), answers::Always, answers::SignedIn, answers::JsonBody,
              (status = 400, description = "bad-request: the body is missing or is not valid JSON, or the `Idempotency-Key` header is missing or malformed", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "admission-required: the event has a waiting room and the token is missing, expired, forged or not the caller's for this event", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "sold-out: not enough tickets left; conflict: the event is cancelled, its sales are closed or it has started, or the buyer would hold more than its `max_tickets_per_buyer`", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "validation: invalid fields, `event_id` not an event on sale, a ticket type not of that event, more tickets than its `max_tickets_per_order`; idempotency-key-reused: the key came with another body", body = Problem, content_type = "application/problem+json")))]
pub async fn place(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    IdempotencyHeader(key): IdempotencyHeader,
    AdmissionHeader(admission_token): AdmissionHeader,
    ApiJson(body): ApiJson<CreateOrderBody>,
) -> Result<(StatusCode, Json<OrderDto>), Problem> {
    let order = NewOrder::try_from(body)?;
    let event_id = order.event_id.to_string();
    let message = PlaceOrderRequest {
        buyer_id: user.to_string(),
        idempotency_key: key.to_string(),
        event_id: event_id.clone(),
        items: order
            .items
            .into_iter()
            .map(|(ticket_type_id, quantity)| OrderItemInput {
                ticket_type_id: ticket_type_id.to_string(),
                quantity: quantity.get(),
            })
            .collect(),
        admission_token,
    };
    let order = state.ticketing.clone().place_order(request(message, rid.as_deref())).await;
    // Whatever the answer (a timeout may still have held), the event's availability is read
    // again by the next visitor.
    state.public.forget_event(&event_id);
    Ok((StatusCode::CREATED, Json(order.map_err(Problem::from)?.into_inner().into())))
}

/// Pays an order with a card; its tickets are issued.
#[utoipa::path(post, path = "/v1/orders/{id}/payment", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "order id"),
           ("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]([ -~]*[!-~])?$", description = "1 to 255 printable ASCII characters (spaces inside only, as HTTP drops them at the ends); a retry with the same key and body returns the first answer and never charges twice")),
    request_body = PaymentBody,
    responses((status = 200, body = OrderDto), answers::Always, answers::SignedIn, answers::JsonBody,
              (status = 400, description = "bad-request: the body is missing or is not valid JSON, or the `Idempotency-Key` header is missing or malformed", body = Problem, content_type = "application/problem+json"),
              (status = 402, description = "payment-declined: the order stays payable until it expires", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: no such order of the caller", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "hold-expired: the order expired; conflict: the order is paid or cancelled already, its event is cancelled, or a payment of it is in progress", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "validation: invalid card fields (a number that fails the Luhn check too), no card for an order that is not free; idempotency-key-reused: the key came with another card", body = Problem, content_type = "application/problem+json")))]
pub async fn pay(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(order_id): PathId<OrderId>,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(body): ApiJson<PaymentBody>,
) -> Result<Json<OrderDto>, Problem> {
    let card = match body.card {
        Some(card) => {
            let month =
                i32::try_from(card.exp_month).map_err(|_| Problem::validation("card.exp_month", "must be 1 to 12"))?;
            let year =
                i32::try_from(card.exp_year).map_err(|_| Problem::validation("card.exp_year", "is not a year"))?;
            Some(Card { number: card.number, exp_month: month, exp_year: year, cvc: card.cvc })
        }
        None => None,
    };
    let message = PayOrderRequest {
        buyer_id: user.to_string(),
        order_id: order_id.to_string(),
        idempotency_key: key.to_string(),
        card,
    };
    let order = state.ticketing.clone().pay_order(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(order.into_inner().into()))
}

/// An order of the caller, with its tickets.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "order id")),
    responses((status = 200, body = OrderDto), answers::Always, answers::SignedIn,
              (status = 404, description = "not-found: no such order of the caller", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(order_id): PathId<OrderId>,
) -> Result<Json<OrderDto>, Problem> {
    let message = GetOrderRequest { buyer_id: user.to_string(), order_id: order_id.to_string() };
    let order = state.ticketing.clone().get_order(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(order.into_inner().into()))
}

/// Cancels an order: a pending one releases its hold; a paid one is refunded until the event starts.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "order id")),
    responses((status = 200, body = OrderDto), answers::Always, answers::SignedIn,
              (status = 404, description = "not-found: no such order of the caller", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "conflict: the order cannot be cancelled now (expired, cancelled or refunded already, a payment in progress, a paid order whose event has started or whose tickets were checked in)", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(order_id): PathId<OrderId>,
) -> Result<Json<OrderDto>, Problem> {
    let message = CancelOrderRequest { buyer_id: user.to_string(), order_id: order_id.to_string() };
    let order = state.ticketing.clone().cancel_order(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    let order: OrderDto = order.into_inner().into();
    // A released hold or a refund puts tickets back on sale.
    state.public.forget_event(&order.event_id);
    Ok(Json(order))
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/v1/me/orders", tag = "orders", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = OrderPage), answers::Always, answers::SignedIn,
              (status = 422, description = "validation: `page_size` out of range, a `page_token` this API did not give out, or a parameter given twice", body = Problem, content_type = "application/problem+json")))]
pub async fn mine(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<OrderPage>, Problem> {
    let message = ListOrdersRequest {
        buyer_id: user.to_string(),
        page_size: page_size(params.page_size)?.get(),
        page_token: params.page_token.unwrap_or_default(),
    };
    let page = state
        .ticketing
        .clone()
        .list_orders(request(message, rid.as_deref()))
        .await
        .map_err(Problem::from)?
        .into_inner();
    Ok(Json(OrderPage {
        items: page.items.into_iter().map(OrderDto::from).collect(),
        next_page_token: page.next_page_token,
    }))
}

/// The caller's tickets, newest first.
#[utoipa::path(get, path = "/v1/me/tickets", tag = "orders", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = TicketPage), answers::Always, answers::SignedIn,
              (status = 422, description = "validation: `page_size` out of range, a `page_token` this API did not give out, or a parameter given twice", body = Problem, content_type = "application/problem+json")))]
pub async fn my_tickets(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<TicketPage>, Problem> {
    let message = ListTicketsRequest {
        buyer_id: user.to_string(),
        page_size: page_size(params.page_size)?.get(),
        page_token: params.page_token.unwrap_or_default(),
    };
    let page = state
        .ticketing
        .clone()
        .list_tickets(request(message, rid.as_deref()))
        .await
        .map_err(Problem::from)?
        .into_inner();
    Ok(Json(TicketPage {
        items: page.items.into_iter().map(TicketDto::from).collect(),
        next_page_token: page.next_page_token,
    }))
}

// Wire types.

#[derive(Debug, Deserialize, ToSchema)]
pub struct OrderItemBody {
    #[schema(format = Uuid)]
    pub ticket_type_id: String,
    /// At least 1; the event's `max_tickets_per_order` caps the order's total.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrderBody {
    /// An event on sale.
    #[schema(format = Uuid)]
    pub event_id: String,
    /// One item per ticket type (no ticket type twice).
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<OrderItemBody>,
}

/// An order as the body asks for it, parsed: its ids typed, its quantities within the rules.
struct NewOrder {
    event_id: EventId,
    items: Vec<(TicketTypeId, Quantity)>,
}

impl TryFrom<CreateOrderBody> for NewOrder {
    type Error = Problem;

    /// Checks every field as ticketing does and refuses them all at once, so that the answer is
    /// the one ticketing would give.
    fn try_from(body: CreateOrderBody) -> Result<Self, Problem> {
        let mut errors = Vec::new();
        let event_id = EventId::parse(&body.event_id).ok();
        if event_id.is_none() {
            errors.push(FieldError::new("event_id", "must be the id of an event on sale"));
        }
        if body.items.is_empty() {
            errors.push(FieldError::new("items", "must name at least one ticket type"));
        }
        if let Err(error) = Quantity::lines(body.items.len()) {
            return Err(Problem::from_status(&validation_status(vec![FieldError::new(error.field, error.message)])));
        }
        let mut seen = HashSet::new();
        let mut items = Vec::with_capacity(body.items.len());
        for (i, item) in body.items.iter().enumerate() {
            let ticket_type_id = TicketTypeId::parse(&item.ticket_type_id).ok();
            match ticket_type_id {
                None => errors.push(FieldError::new(
                    format!("items[{i}].ticket_type_id"),
                    "must be the id of a ticket type of the event",
                )),
                Some(id) if !seen.insert(id) => errors.push(FieldError::new(
                    format!("items[{i}].ticket_type_id"),
                    "appears twice; use one item per ticket type",
                )),
                Some(_) => {}
            }
            match Quantity::parse(format!("items[{i}].quantity"), item.quantity) {
                Ok(quantity) => items.extend(ticket_type_id.map(|id| (id, quantity))),
                Err(error) => errors.push(FieldError::new(error.field, error.message)),
            }
        }
        match event_id {
            Some(event_id) if errors.is_empty() => Ok(Self { event_id, items }),
            _ => Err(Problem::from_status(&validation_status(errors))),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CardBody {
    /// 12 to 19 digits that pass the Luhn check. Test cards: 4242424242424242 succeeds,
    /// 4000000000000002 is declined, 4000000000009995 is declined for insufficient funds,
    /// 4000000000000119 fails once transiently (EventHive retries it).
    #[schema(pattern = r"^[0-9]{12,19}$", example = "4242424242424242")]
    pub number: String,
    #[schema(minimum = 1, maximum = 12, example = 12)]
    pub exp_month: i64,
    /// A card that expired before the current month is declined.
    #[schema(minimum = 2000, maximum = 2100, example = 2030)]
    pub exp_year: i64,
    #[schema(pattern = r"^[0-9]{3,4}$", example = "123")]
    pub cvc: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PaymentBody {
    /// Required unless the order is free (a total of 0), which is paid without a card.
    #[serde(default)]
    pub card: Option<CardBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItemDto {
    pub ticket_type_id: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price: MoneyDto,
    pub subtotal: MoneyDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketDto {
    pub id: String,
    pub order_id: String,
    pub event_id: String,
    pub ticket_type_id: String,
    pub ticket_type_name: String,
    /// Signed; door staff verify it offline with the event's check-in key.
    pub code: String,
    /// `valid`, `checked_in` or `void`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub checked_in_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<ticketing::Ticket> for TicketDto {
    fn from(t: ticketing::Ticket) -> Self {
        Self {
            id: t.id,
            order_id: t.order_id,
            event_id: t.event_id,
            ticket_type_id: t.ticket_type_id,
            ticket_type_name: t.ticket_type_name,
            code: t.code,
            status: t.status,
            checked_in_at: t.checked_in_at,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDto {
    pub id: String,
    pub event_id: String,
    /// `pending_payment`, `paid`, `expired`, `cancelled` or `refunded`.
    pub status: String,
    /// Until when the tickets are held for payment.
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub items: Vec<OrderItemDto>,
    pub total: MoneyDto,
    /// Issued when the order is paid.
    pub tickets: Vec<TicketDto>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub paid_at: Option<String>,
}

impl From<ticketing::Order> for OrderDto {
    fn from(o: ticketing::Order) -> Self {
        Self {
            id: o.id,
            event_id: o.event_id,
            status: o.status,
            expires_at: o.expires_at,
            items: o
                .items
                .into_iter()
                .map(|i| OrderItemDto {
                    ticket_type_id: i.ticket_type_id,
                    name: i.name,
                    quantity: i.quantity,
                    unit_price: MoneyDto::or_zero(i.unit_price),
                    subtotal: MoneyDto::or_zero(i.subtotal),
                })
                .collect(),
            total: MoneyDto::or_zero(o.total),
            tickets: o.tickets.into_iter().map(TicketDto::from).collect(),
            created_at: o.created_at,
            paid_at: o.paid_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderDto>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketPage {
    pub items: Vec<TicketDto>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Default 20.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
    /// From the previous page's `next_page_token`.
    pub page_token: Option<String>,
}
