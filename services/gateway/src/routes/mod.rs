//! The public routes, one module per area of the API (API.md's tables; check-in, a tag of its
//! own, apart from orders). Each module holds its handlers and then its wire types: what clients
//! send and get, apart from the services' protobuf messages so that the public contract changes
//! only on purpose. Ids and rules are parsed at the edge and travel typed until they are put
//! into a protobuf request.
//!
//! - [`auth`]: registration, sessions and the caller's profile.
//! - [`organizations`]: organizations and their members.
//! - [`events`]: events and ticket types.
//! - [`ticket_types`]: an event's ticket types, added and (while a draft) changed.
//! - [`orders`]: orders, payment and tickets.
//! - [`checkins`]: checking tickets in at the door.
//! - [`exports`]: an event's orders and attendees, as JSON pages or CSV files.
//! - [`analytics`]: sales figures for organizers, also live.
//! - [`waiting_room`]: an on-sale's waiting room and its queue.
//! - [`dev`]: the dev inbox.
//! - [`ops`]: health, readiness and the JWKS.
//! - [`shared`]: money, the ISO code lists and the contract's rules, for several of them.
//! - [`answers`]: the error answers many routes share, for the OpenAPI document.

pub mod analytics;
mod answers;
pub mod auth;
pub mod checkins;
pub mod dev;
pub mod events;
pub mod exports;
pub mod ops;
pub mod orders;
pub mod organizations;
mod shared;
pub mod ticket_types;
pub mod waiting_room;

use axum::{extract::FromRequestParts, http::request::Parts};
use eventhive_platform::{Problem, grpc::REQUEST_ID};

/// The request id the gateway gave this request (or the client sent), passed on to every
/// service call so one id follows a request through every log.
pub struct RequestId(pub Option<String>);

impl RequestId {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(parts.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned)))
    }
}
