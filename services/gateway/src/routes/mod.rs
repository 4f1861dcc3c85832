//! The public routes, one module per table of API.md.

pub mod analytics;
pub mod auth;
pub mod dev;
pub mod events;
pub mod ops;
pub mod orders;
pub mod organizations;

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
