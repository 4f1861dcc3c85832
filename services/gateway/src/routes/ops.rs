//! Liveness, readiness and the public keys of access tokens.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use eventhive_platform::{ErrorKind, Problem};
use eventhive_proto::identity::GetJwksRequest;

use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// Alive: the process answers.
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Ready: this process's own dependencies answer — Redis, when its rate limits live there.
/// Not the services it calls: each reports its own readiness, and a load balancer that took
/// every gateway out of rotation because one service behind them was down would turn a partial
/// outage into a total one (a route that needs the missing service answers 503 `unavailable`
/// with `Retry-After` instead).
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    if state.limiter.is_healthy().await {
        Ok(Json(Health { status: "ready".into() }))
    } else {
        Err(Problem::new(ErrorKind::Unavailable, "not ready: redis unavailable"))
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
