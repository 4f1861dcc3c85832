//! An event's orders and attendees, for its organization's owner and admins: JSON a page at a
//! time (paged like every list), or with `format=csv` every row in one CSV file for a
//! spreadsheet. Each row names its buyer by their account's email and name, asked of identity
//! once per buyer.

use std::collections::HashMap;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use eventhive_domain::{EventId, money::format_minor, rules::PageSize};
use eventhive_platform::{Problem, grpc::request};
use eventhive_proto::{
    common::Actor,
    identity::GetUserRequest,
    ticketing::{ListEventOrdersRequest, ListEventTicketsRequest, ListOrdersResponse, ListTicketsResponse},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{RequestId, answers, orders::OrderDto, shared::page_size};
use crate::{
    auth::AuthUser,
    extract::{ApiQuery, PathId},
    state::AppState,
};

/// An event's orders (every status), newest first, each with its buyer.
#[utoipa::path(get, path = "/v1/events/{id}/orders", tag = "exports", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id"), ExportParams),
    responses((status = 200, description = "a page of orders, or with `format=csv` all of them as a CSV file (columns: order_id, created_at, status, buyer_email, buyer_name, tickets, items, total, currency, paid_at)",
               content((EventOrderPage = "application/json"), (String = "text/csv"))),
              answers::Always, answers::SignedIn,
              (status = 403, description = "forbidden: only the organization's owner and admins see its orders", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: no such event for the caller", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "validation: `page_size` out of range, a `page_token` this API did not give out, or an unknown `format`", body = Problem, content_type = "application/problem+json")))]
pub async fn event_orders(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, Problem> {
    let lists = Lists { state: &state, rid: &rid, actor: state.actor(user, rid.as_deref()).await?, event_id };
    let mut buyers = Buyers::default();
    if params.format == Some(ExportFormat::Csv) {
        let mut csv = Csv::new(&[
            "order_id",
            "created_at",
            "status",
            "buyer_email",
            "buyer_name",
            "tickets",
            "items",
            "total",
            "currency",
            "paid_at",
        ]);
        let mut token = String::new();
        loop {
            let page = lists.orders(PageSize::MAX, token).await?;
            for order in page.items {
                let buyer = buyers.of(&state, &rid, &order.buyer_id).await?;
                let total = order.total.clone().unwrap_or_default();
                let tickets: i64 = order.items.iter().map(|i| i.quantity).sum();
                let items: Vec<String> = order.items.iter().map(|i| format!("{} x {}", i.quantity, i.name)).collect();
                let amount = format_minor(total.amount_minor, &total.currency);
                csv.row(&[
                    &order.id,
                    &order.created_at,
                    &order.status,
                    &buyer.email,
                    &buyer.display_name,
                    &tickets.to_string(),
                    &items.join("; "),
                    amount.split(' ').next().unwrap_or_default(),
                    &total.currency,
                    order.paid_at.as_deref().unwrap_or_default(),
                ]);
            }
            match page.next_page_token {
                Some(next) => token = next,
                None => break,
            }
        }
        return Ok(csv.file(&format!("orders-{event_id}.csv")));
    }
    let size = page_size(params.page_size)?.get();
    let page = lists.orders(size, params.page_token.unwrap_or_default()).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for order in page.items {
        let buyer = buyers.of(&state, &rid, &order.buyer_id).await?;
        items.push(EventOrderDto { order: order.into(), buyer });
    }
    Ok(Json(EventOrderPage { items, next_page_token: page.next_page_token }).into_response())
}

/// An event's tickets (every status), newest first, each with who bought it: the attendees.
#[utoipa::path(get, path = "/v1/events/{id}/attendees", tag = "exports", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id"), ExportParams),
    responses((status = 200, description = "a page of tickets, or with `format=csv` all of them as a CSV file (columns: ticket_id, ticket_type, status, checked_in_at, buyer_email, buyer_name, order_id)",
               content((AttendeePage = "application/json"), (String = "text/csv"))),
              answers::Always, answers::SignedIn,
              (status = 403, description = "forbidden: only the organization's owner and admins see its attendees", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: no such event for the caller", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "validation: `page_size` out of range, a `page_token` this API did not give out, or an unknown `format`", body = Problem, content_type = "application/problem+json")))]
pub async fn event_attendees(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, Problem> {
    let lists = Lists { state: &state, rid: &rid, actor: state.actor(user, rid.as_deref()).await?, event_id };
    let mut buyers = Buyers::default();
    if params.format == Some(ExportFormat::Csv) {
        let mut csv =
            Csv::new(&["ticket_id", "ticket_type", "status", "checked_in_at", "buyer_email", "buyer_name", "order_id"]);
        let mut token = String::new();
        loop {
            let page = lists.tickets(PageSize::MAX, token).await?;
            for ticket in page.items {
                let buyer = buyers.of(&state, &rid, &ticket.buyer_id).await?;
                csv.row(&[
                    &ticket.id,
                    &ticket.ticket_type_name,
                    &ticket.status,
                    ticket.checked_in_at.as_deref().unwrap_or_default(),
                    &buyer.email,
                    &buyer.display_name,
                    &ticket.order_id,
                ]);
            }
            match page.next_page_token {
                Some(next) => token = next,
                None => break,
            }
        }
        return Ok(csv.file(&format!("attendees-{event_id}.csv")));
    }
    let size = page_size(params.page_size)?.get();
    let page = lists.tickets(size, params.page_token.unwrap_or_default()).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for ticket in page.items {
        let buyer = buyers.of(&state, &rid, &ticket.buyer_id).await?;
        items.push(AttendeeDto {
            ticket_id: ticket.id,
            order_id: ticket.order_id,
            ticket_type_id: ticket.ticket_type_id,
            ticket_type_name: ticket.ticket_type_name,
            status: ticket.status,
            checked_in_at: ticket.checked_in_at,
            buyer,
        });
    }
    Ok(Json(AttendeePage { items, next_page_token: page.next_page_token }).into_response())
}

/// One export's call to ticketing: who asks, for which event.
struct Lists<'a> {
    state: &'a AppState,
    rid: &'a RequestId,
    actor: Actor,
    event_id: EventId,
}

impl Lists<'_> {
    async fn orders(&self, page_size: i64, page_token: String) -> Result<ListOrdersResponse, Problem> {
        let message = ListEventOrdersRequest {
            actor: Some(self.actor.clone()),
            event_id: self.event_id.to_string(),
            page_size,
            page_token,
        };
        let page = self.state.ticketing.clone().list_event_orders(request(message, self.rid.as_deref())).await;
        Ok(page.map_err(Problem::from)?.into_inner())
    }

    async fn tickets(&self, page_size: i64, page_token: String) -> Result<ListTicketsResponse, Problem> {
        let message = ListEventTicketsRequest {
            actor: Some(self.actor.clone()),
            event_id: self.event_id.to_string(),
            page_size,
            page_token,
        };
        let page = self.state.ticketing.clone().list_event_tickets(request(message, self.rid.as_deref())).await;
        Ok(page.map_err(Problem::from)?.into_inner())
    }
}

/// Buyers already asked of identity, so a list asks once per buyer however many rows are theirs.
#[derive(Default)]
struct Buyers(HashMap<String, BuyerDto>);

impl Buyers {
    async fn of(&mut self, state: &AppState, rid: &RequestId, user_id: &str) -> Result<BuyerDto, Problem> {
        if let Some(buyer) = self.0.get(user_id) {
            return Ok(buyer.clone());
        }
        let message = GetUserRequest { user_id: user_id.to_owned() };
        let profile = state.identity.clone().get_user(request(message, rid.as_deref())).await.map_err(Problem::from)?;
        let user = profile.into_inner().user.unwrap_or_default();
        let buyer = BuyerDto { id: user_id.to_owned(), email: user.email, display_name: user.display_name };
        self.0.insert(user_id.to_owned(), buyer.clone());
        Ok(buyer)
    }
}

/// A CSV file (RFC 4180): a header row, then one row per record, CRLF line ends.
struct Csv(String);

impl Csv {
    fn new(header: &[&str]) -> Self {
        let mut csv = Self(String::new());
        csv.row(header);
        csv
    }

    fn row(&mut self, fields: &[&str]) {
        let cells: Vec<String> = fields.iter().map(|field| cell(field)).collect();
        self.0.push_str(&cells.join(","));
        self.0.push_str("\r\n");
    }

    fn file(self, name: &str) -> Response {
        let disposition = format!("attachment; filename=\"{name}\"");
        let mut response = self.0.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        response
    }
}

/// One field: quoted when it holds a separator, a quote or a line break; and a buyer's name
/// that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) starts with a `'` instead.
fn cell(field: &str) -> String {
    let field =
        if field.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{field}") } else { field.to_owned() };
    if field.contains([',', '"', '\n', '\r']) { format!("\"{}\"", field.replace('"', "\"\"")) } else { field }
}

// Wire types.

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Default 20; not used with `format=csv`, whose file holds every row.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
    /// From the previous page's `next_page_token`.
    pub page_token: Option<String>,
    /// `json` (the default): a page; `csv`: every row, as a file to download.
    #[param(inline)]
    pub format: Option<ExportFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Json,
    Csv,
}

/// Who bought: their account's email and name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BuyerDto {
    pub id: String,
    pub email: String,
    pub display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventOrderDto {
    #[serde(flatten)]
    pub order: OrderDto,
    pub buyer: BuyerDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventOrderPage {
    pub items: Vec<EventOrderDto>,
    pub next_page_token: Option<String>,
}

/// A ticket of the event and who bought it (not its code: that opens the door).
#[derive(Debug, Serialize, ToSchema)]
pub struct AttendeeDto {
    pub ticket_id: String,
    pub order_id: String,
    pub ticket_type_id: String,
    pub ticket_type_name: String,
    /// `valid`, `checked_in` or `void`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub checked_in_at: Option<String>,
    pub buyer: BuyerDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttendeePage {
    pub items: Vec<AttendeeDto>,
    pub next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_never_formulas() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("-1"), "'-1");
        let mut csv = Csv::new(&["a", "b"]);
        csv.row(&["1", "two\nlines"]);
        assert_eq!(csv.0, "a,b\r\n1,\"two\nlines\"\r\n");
    }
}
