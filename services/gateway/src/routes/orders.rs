//! Orders, payment, tickets and check-in: API.md's "Orders, payment, tickets" table.

use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::{StatusCode, request::Parts},
};
use eventhive_platform::{ErrorKind, Problem, grpc::request};
use eventhive_proto::{
    payments::Card,
    ticketing::{
        CancelOrderRequest, CheckInRequest, GetCheckinKeyRequest, GetOrderRequest, ListOrdersRequest,
        ListTicketsRequest, OrderItemInput, PayOrderRequest, PlaceOrderRequest,
    },
};

use super::RequestId;
use crate::{
    auth::AuthUser,
    dto::{
        CheckinBody, CheckinDto, CheckinKeyDto, CreateOrderBody, OrderDto, OrderPage, PageParams, PaymentBody,
        TicketDto, TicketPage,
    },
    extract::{ApiJson, ApiQuery, PathId},
    state::AppState,
};

/// The `Idempotency-Key` header: required, 1 to 255 printable ASCII characters.
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let bad = |detail: &str| Problem::new(ErrorKind::BadRequest, detail.to_owned());
        let value =
            parts.headers.get("idempotency-key").ok_or_else(|| bad("the Idempotency-Key header is required"))?;
        let key = value.to_str().map_err(|_| bad("the Idempotency-Key must be printable ASCII"))?;
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(bad("the Idempotency-Key must be 1 to 255 printable ASCII characters"));
        }
        Ok(IdempotencyKey(key.to_owned()))
    }
}

fn page_size(params: &PageParams) -> Result<i64, Problem> {
    match params.page_size {
        Some(size) if !(1..=100).contains(&size) => Err(Problem::validation("page_size", "must be between 1 and 100")),
        Some(size) => Ok(size),
        None => Ok(20),
    }
}

/// Holds tickets for a new order until `expires_at`.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "1 to 255 printable ASCII characters; a retry with the same key and body returns the first answer")),
    request_body = CreateOrderBody,
    responses((status = 201, body = OrderDto),
              (status = 400, description = "missing Idempotency-Key", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "sold-out, or the buyer's cap is reached", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "invalid fields, or idempotency-key-reused", body = Problem, content_type = "application/problem+json")))]
pub async fn place(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateOrderBody>,
) -> Result<(StatusCode, Json<OrderDto>), Problem> {
    let message = PlaceOrderRequest {
        buyer_id: user.to_string(),
        idempotency_key: key,
        event_id: body.event_id,
        items: body
            .items
            .into_iter()
            .map(|item| OrderItemInput { ticket_type_id: item.ticket_type_id, quantity: item.quantity })
            .collect(),
    };
    let order = state.ticketing.clone().place_order(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok((StatusCode::CREATED, Json(order.into_inner().into())))
}

/// Pays an order with a card; its tickets are issued.
#[utoipa::path(post, path = "/v1/orders/{id}/payment", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id"),
           ("Idempotency-Key" = String, Header, description = "a retry with the same key and body returns the first answer and never charges twice")),
    request_body = PaymentBody,
    responses((status = 200, body = OrderDto),
              (status = 402, description = "payment-declined; the order stays payable until it expires", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "hold-expired, or already paid or cancelled", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn pay(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(order_id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<PaymentBody>,
) -> Result<Json<OrderDto>, Problem> {
    let month =
        i32::try_from(body.card.exp_month).map_err(|_| Problem::validation("card.exp_month", "must be 1 to 12"))?;
    let year = i32::try_from(body.card.exp_year).map_err(|_| Problem::validation("card.exp_year", "is not a year"))?;
    let message = PayOrderRequest {
        buyer_id: user.to_string(),
        order_id,
        idempotency_key: key,
        card: Some(Card { number: body.card.number, exp_month: month, exp_year: year, cvc: body.card.cvc }),
    };
    let order = state.ticketing.clone().pay_order(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(order.into_inner().into()))
}

/// An order of the caller, with its tickets.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, body = OrderDto), (status = 404, description = "not the caller's order", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(order_id): PathId,
) -> Result<Json<OrderDto>, Problem> {
    let message = GetOrderRequest { buyer_id: user.to_string(), order_id };
    let order = state.ticketing.clone().get_order(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(order.into_inner().into()))
}

/// Cancels an order: a pending one releases its hold; a paid one is refunded until the event starts.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, body = OrderDto), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(order_id): PathId,
) -> Result<Json<OrderDto>, Problem> {
    let message = CancelOrderRequest { buyer_id: user.to_string(), order_id };
    let order = state.ticketing.clone().cancel_order(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(order.into_inner().into()))
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/v1/me/orders", tag = "orders", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = OrderPage)))]
pub async fn mine(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<OrderPage>, Problem> {
    let message = ListOrdersRequest {
        buyer_id: user.to_string(),
        page_size: page_size(&params)?,
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
    responses((status = 200, body = TicketPage)))]
pub async fn my_tickets(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<TicketPage>, Problem> {
    let message = ListTicketsRequest {
        buyer_id: user.to_string(),
        page_size: page_size(&params)?,
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

/// Checks a ticket in at the door. The organization's owner, admins and staff only.
#[utoipa::path(post, path = "/v1/events/{id}/checkins", tag = "check-in", security(("bearer" = [])),
    params(("id" = String, Path, description = "event id")), request_body = CheckinBody,
    responses((status = 200, body = CheckinDto), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not a valid ticket of this event", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "already checked in (with checked_in_at), or void", body = Problem, content_type = "application/problem+json")))]
pub async fn check_in(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId,
    ApiJson(body): ApiJson<CheckinBody>,
) -> Result<Json<CheckinDto>, Problem> {
    if body.code.trim().is_empty() {
        return Err(Problem::validation("code", "must not be empty"));
    }
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = CheckInRequest { actor: Some(actor), event_id, code: body.code };
    let checked =
        state.ticketing.clone().check_in(request(message, rid.as_deref())).await.map_err(Problem::from)?.into_inner();
    Ok(Json(CheckinDto { ticket_id: checked.ticket_id, status: checked.status, checked_in_at: checked.checked_in_at }))
}

/// The public key that verifies the event's ticket codes offline. Door staff only.
#[utoipa::path(get, path = "/v1/events/{id}/checkin-key", tag = "check-in", security(("bearer" = [])),
    params(("id" = String, Path, description = "event id")),
    responses((status = 200, body = CheckinKeyDto), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn checkin_key(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId,
) -> Result<Json<CheckinKeyDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = GetCheckinKeyRequest { actor: Some(actor), event_id };
    let key = state
        .ticketing
        .clone()
        .get_checkin_key(request(message, rid.as_deref()))
        .await
        .map_err(Problem::from)?
        .into_inner();
    Ok(Json(CheckinKeyDto {
        event_id: key.event_id,
        algorithm: key.algorithm,
        public_key: key.public_key,
        code_format: key.code_format,
    }))
}
