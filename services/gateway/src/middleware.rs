//! The layers every public request passes: authentication (verify the bearer token once),
//! rate limits (per client IP, then per user), and a bound on the time a request may take.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use eventhive_platform::{ErrorKind, Problem};

use crate::{
    auth::{Authentication, bearer_token},
    ratelimit::Decision,
    state::AppState,
};

/// Verifies the bearer token, if any, and applies the rate limits.
pub async fn authenticate_and_limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let ip = client_ip(&request, state.gateway.trust_forwarded_for);
    if let Decision::Deny { retry_after } =
        state.limiter.check(&format!("ip:{ip}"), state.gateway.rate_limit_ip_per_sec).await
    {
        return too_many(retry_after);
    }
    let authentication = match bearer_token(request.headers()) {
        None => Authentication::Anonymous,
        Some(Err(error)) => Authentication::Failed(error),
        Some(Ok(token)) => match state.verifier.verify(token).await {
            Ok(user) => Authentication::User(user),
            Err(error) => Authentication::Failed(error),
        },
    };
    if let Authentication::User(user) = &authentication
        && let Decision::Deny { retry_after } =
            state.limiter.check(&format!("user:{user}"), state.gateway.rate_limit_user_per_sec).await
    {
        return too_many(retry_after);
    }
    request.extensions_mut().insert(Arc::new(authentication));
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

/// The client's address as the rate limits see it, for a route that passes it on (a login,
/// whose account throttle spares clients the account knows).
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

fn too_many(retry_after: Duration) -> Response {
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    Problem::new(ErrorKind::RateLimited, "too many requests; slow down").with_retry_after(secs).into_response()
}

fn client_ip(request: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        if let Some(ip) = forwarded {
            return ip.to_owned();
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Answers 503 problem+json when a request takes longer than the configured bound.
pub async fn bound_time(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = Duration::from_millis(state.gateway.request_timeout_ms);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(ErrorKind::Unavailable, "the request took too long; try again").into_response(),
    }
}

/// Turns axum's own plain-text rejections (e.g. a body over the size limit read by a layer)
/// into problem+json, so that every error looks the same.
pub async fn problem_for_plain_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        let kind = match status.as_u16() {
            400 => ErrorKind::BadRequest,
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed,
            413 => ErrorKind::PayloadTooLarge,
            415 => ErrorKind::UnsupportedMediaType,
            422 => ErrorKind::Validation,
            429 => ErrorKind::RateLimited,
            503 | 504 | 408 => ErrorKind::Unavailable,
            _ if status.is_client_error() => ErrorKind::BadRequest,
            _ => ErrorKind::Internal,
        };
        let mut problem = Problem::new(kind, status.canonical_reason().unwrap_or("error").to_lowercase());
        if kind == ErrorKind::MethodNotAllowed {
            problem.detail = "this route does not take that method".into();
        }
        let mut answer = problem.into_response();
        if let Some(allow) = response.headers().get(axum::http::header::ALLOW) {
            answer.headers_mut().insert(axum::http::header::ALLOW, allow.clone());
        }
        return answer;
    }
    response
}

/// Counts requests and their latency per route and status, for Prometheus.
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("eventhive_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("eventhive_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
