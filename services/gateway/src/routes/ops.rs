//! Liveness, readiness and the public keys of access tokens.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use eventhive_platform::{ErrorKind, Problem, grpc};
use eventhive_proto::identity::GetJwksRequest;

use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// Alive: the process answers.
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Ready: every service this gateway routes to, and Redis if used, answers.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    let (identity, catalog, ticketing, analytics, notifications, waiting_room, limiter) = tokio::join!(
        grpc::is_serving(state.identity_channel.clone()),
        grpc::is_serving(state.catalog_channel.clone()),
        grpc::is_serving(state.ticketing_channel.clone()),
        grpc::is_serving(state.analytics_channel.clone()),
        grpc::is_serving(state.notifications_channel.clone()),
        grpc::is_serving(state.waiting_room_channel.clone()),
        state.limiter.is_healthy(),
    );
    let down: Vec<&str> = [
        ("identity", identity),
        ("catalog", catalog),
        ("ticketing", ticketing),
        ("analytics", analytics),
        ("notifications", notifications),
        ("waiting_room", waiting_room),
        ("redis", limiter),
    ]
    .into_iter()
    .filter(|(_, up)| !up)
    .map(|(name, _)| name)
    .collect();
    if down.is_empty() {
        Ok(Json(Health { status: "ready".into() }))
    } else {
        Err(Problem::new(ErrorKind::Unavailable, format!("not ready: {} unavailable", down.join(", "))))
    }
}

/// The JWKS that verifies access tokens, for other verifiers (and the curious).
pub async fn jwks(State(state): State<AppState>) -> Result<Response, Problem> {
    let jwks = state.identity.clone().get_jwks(GetJwksRequest {}).await.map_err(Problem::from)?.into_inner().json;
    let mut response = jwks.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    Ok(response)
}

// Wire types.

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}
