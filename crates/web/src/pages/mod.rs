//! The pages, one module per area, and the parts of the API's answers they read: a client's
//! own view of the public contract (API.md), apart from the gateway's wire types, as any other
//! client would have it. Fields a page does not show are not read.
//!
//! - [`catalog`]: the events with search, an event with its ticket types.
//! - [`account`]: register, log in, log out.
//! - [`checkout`]: hold, pay, an order.
//! - [`queue`]: an event's waiting room.
//! - [`mine`]: my orders, my tickets.
//! - [`door`]: checking tickets in at the door.
//! - [`dashboard`]: an event's live figures, for its organization.
//! - [`manage`]: the organizer's console: organizations, members, events, the waiting room.

pub mod account;
pub mod catalog;
pub mod checkout;
pub mod dashboard;
pub mod door;
pub mod manage;
pub mod mine;
pub mod queue;

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
    response::Response,
};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Venue {
    pub name: String,
    pub city: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TicketType {
    pub id: String,
    pub name: String,
    pub price: Money,
    pub available: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    pub organization_id: String,
    pub title: String,
    pub description: String,
    /// `on_sale`, `draft` or `cancelled`: only an on-sale event's page may be shared.
    #[serde(default)]
    pub status: String,
    pub venue: Venue,
    pub starts_at: String,
    pub max_tickets_per_order: i64,
    pub ticket_types: Vec<TicketType>,
}

#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderItem {
    pub name: String,
    pub quantity: i64,
    pub subtotal: Money,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ticket {
    pub id: String,
    pub event_id: String,
    pub ticket_type_name: String,
    pub code: String,
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: String,
    pub event_id: String,
    pub status: String,
    pub expires_at: String,
    pub items: Vec<OrderItem>,
    pub total: Money,
    #[serde(default)]
    pub tickets: Vec<Ticket>,
    pub created_at: String,
}

/// An event's waiting room.
#[derive(Debug, Clone, Deserialize)]
pub struct Room {
    pub opens_at: String,
    pub status: String,
}

/// The caller's place in a waiting room.
#[derive(Debug, Clone, Deserialize)]
pub struct Place {
    pub status: String,
    pub position: Option<i64>,
    pub ahead: Option<i64>,
    pub estimated_wait_secs: Option<i64>,
    pub poll_after_secs: Option<i64>,
    pub admission: Option<Admission>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Admission {
    pub token: String,
    pub expires_at: String,
}

/// An id from the path, if it can be one: the API's ids are UUIDs, so anything else is no
/// page (answered here, for every page), and what is passed on never needs escaping in the
/// API's path.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| no_such_page())?;
        if is_id(&raw) { Ok(PathId(raw)) } else { Err(no_such_page()) }
    }
}

/// Whether `raw` is shaped like one of the API's ids (a UUID), before the API is asked.
pub fn is_id(raw: &str) -> bool {
    raw.len() == 36 && raw.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The answer for a path whose id cannot be one.
pub fn no_such_page() -> Response {
    crate::layout::problem_page(
        axum::http::StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing here: the link is wrong or out of date.",
    )
}
