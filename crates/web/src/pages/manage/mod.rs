//! The organizer's console: organizations and their members, events with their ticket types,
//! publishing and cancelling, the waiting room, and the exports of orders and attendees. Every
//! change is one call of the public API; what the API refuses comes back as words beside the
//! field it is about (tied to it with `aria-describedby`), never as a raw error.
//!
//! - [`home`]: `/manage`, the caller's organizations with their events and members.
//! - [`event`]: creating and editing an event, its ticket types, publishing it.
//! - [`ticket_types`]: the ticket type forms' fields, and changing a draft's ticket type.
//! - [`sale`]: the event's waiting room, and calling the event off.
//! - [`exports`]: the event's orders and attendees as CSV files.
//! - [`form`]: the labelled fields and the errors every console form shares.

pub mod event;
pub mod exports;
pub mod form;
pub mod home;
pub mod sale;
pub mod ticket_types;

use axum::{
    Router,
    routing::{get, post},
};
use serde::Deserialize;

use super::Money;
use crate::Web;

/// An event as its organization sees it: every field the console edits.
#[derive(Debug, Clone, Deserialize)]
pub struct ManagedEvent {
    pub id: String,
    pub title: String,
    pub description: String,
    pub venue: ManagedVenue,
    pub starts_at: String,
    pub ends_at: String,
    pub currency: String,
    pub max_tickets_per_order: i64,
    pub status: String,
    #[serde(default)]
    pub cancel_reason: Option<String>,
    pub ticket_types: Vec<ManagedTicketType>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManagedVenue {
    pub name: String,
    pub city: String,
    pub country: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManagedTicketType {
    pub id: String,
    pub name: String,
    pub price: Money,
    pub capacity: i64,
    pub available: i64,
}

/// The caller's profile: the organizations they are in, with their role.
#[derive(Debug, Deserialize)]
pub struct Me {
    pub organizations: Vec<Organization>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub role: String,
}

impl Organization {
    /// Owners and admins manage events and members; staff work the door.
    pub fn manages(&self) -> bool {
        self.role == "owner" || self.role == "admin"
    }
}

/// An event's status in words.
pub fn status_words(status: &str) -> &str {
    match status {
        "draft" => "Draft",
        "on_sale" => "On sale",
        "cancelled" => "Cancelled",
        other => other,
    }
}

/// The console's routes, merged into the site's by `crate::router`.
pub fn routes() -> Router<Web> {
    Router::new()
        .route("/manage", get(home::show))
        .route("/manage/organizations", post(home::create_organization))
        .route("/manage/organizations/{id}/members", post(home::add_member))
        .route("/manage/organizations/{id}/events/new", get(event::new_form))
        .route("/manage/organizations/{id}/events", post(event::create))
        .route("/manage/events/{id}/edit", get(event::show).post(event::update))
        .route("/manage/events/{id}/ticket-types", post(event::add_ticket_type))
        .route(
            "/manage/events/{id}/ticket-types/{ticket_type_id}",
            get(ticket_types::edit_form).post(ticket_types::change),
        )
        .route("/manage/events/{id}/publish", post(event::publish))
        .route("/manage/events/{id}/waiting-room", post(sale::put_room))
        .route("/manage/events/{id}/cancel", get(sale::cancel_form).post(sale::cancel))
        .route("/manage/events/{id}/orders.csv", get(exports::orders))
        .route("/manage/events/{id}/attendees.csv", get(exports::attendees))
}
