//! gateway: the only public HTTP API. It authenticates (JWTs verified locally with identity's
//! JWKS), rate-limits per client IP and per user, authorizes with the caller's current
//! memberships, and routes to the services over gRPC with deadlines. Every error, its own and
//! the services', answers as RFC 9457 problem+json. The whole API is published as OpenAPI 3.1
//! at `/openapi.json`, browsable at `/docs`. The web storefront (`eventhive-web`) is served at
//! `/`, a client of this same API.
//!
//! # Layout
//! - [`routes`]: one module per area of API.md, each with its handlers and its wire types.
//! - [`extract`]: body, query and path extractors that fail as problem+json.
//! - [`auth`]: JWT verification and the `AuthUser` extractor.
//! - [`ratelimit`]: token buckets in Redis or memory.
//! - [`middleware`]: authentication, rate limits, time bound, uniform errors.
//! - [`openapi`]: the OpenAPI document.
//! - [`state`]: what handlers share.

mod auth;
mod extract;
mod middleware;
mod openapi;
mod public_reads;
mod ratelimit;
mod routes;
mod state;

use std::{net::SocketAddr, time::Duration};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, header},
    middleware::{from_fn, from_fn_with_state},
    routing::{get, post, put},
    serve::ListenerExt as _,
};
use eventhive_platform::{
    Context, ErrorKind, Problem, Section, Service, async_trait::async_trait, config::ConfigError, grpc::REQUEST_ID,
    service::Health, shutdown::CancellationToken, telemetry,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use openapi::ApiDoc;
pub use routes::dev::DEV_INBOX_LISTS;
pub use state::AppState;

pub const SERVICE: &str = "gateway";

/// The gateway's settings section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewaySettings {
    /// Requests per second per client IP (burst twice that); 0 turns it off.
    pub rate_limit_ip_per_sec: u32,
    /// Requests per second per signed-in user (burst twice that); 0 turns it off.
    pub rate_limit_user_per_sec: u32,
    /// Bound on one public request, gRPC calls included.
    pub request_timeout_ms: u64,
    /// Take the client IP from the last `X-Forwarded-For` hop (behind one trusted proxy or
    /// ingress); otherwise the peer address is the client.
    pub trust_forwarded_for: bool,
    /// Origins browsers may call the API from; `*` allows any.
    pub cors_allowed_origins: String,
    /// How long the token-signing keys fetched from identity are trusted before they are
    /// fetched again: a key identity stopped publishing (retired, or removed after a leak)
    /// stops verifying within this time.
    pub jwks_cache_secs: u64,
    /// How long the event list and an event's page, as a visitor not signed in reads them, are
    /// served from this gateway before they are read again (`public_reads`); 0 reads them live.
    pub public_read_cache_ms: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            rate_limit_ip_per_sec: 100,
            rate_limit_user_per_sec: 20,
            request_timeout_ms: 15_000,
            trust_forwarded_for: false,
            cors_allowed_origins: "*".into(),
            jwks_cache_secs: 300,
            public_read_cache_ms: 1000,
        }
    }
}

impl Section for GatewaySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::new("request_timeout_ms", "must be positive"));
        }
        if self.jwks_cache_secs == 0 || self.jwks_cache_secs > 3600 {
            return Err(ConfigError::new("jwks_cache_secs", "must be between 1 and 3600"));
        }
        if self.public_read_cache_ms > 60_000 {
            return Err(ConfigError::new("public_read_cache_ms", "must be at most 60000"));
        }
        Ok(())
    }
}

/// The public router, with every layer.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/auth/register", post(routes::auth::register))
        .route("/v1/auth/login", post(routes::auth::login))
        .route("/v1/auth/refresh", post(routes::auth::refresh))
        .route("/v1/auth/logout", post(routes::auth::logout))
        .route("/v1/me", get(routes::auth::me))
        .route("/v1/organizations", post(routes::organizations::create))
        .route(
            "/v1/organizations/{id}/members",
            post(routes::organizations::add_member).get(routes::organizations::members),
        )
        .route("/v1/organizations/{id}/events", get(routes::organizations::events))
        .route("/v1/events", post(routes::events::create).get(routes::events::search))
        .route("/v1/events/{id}", get(routes::events::get).patch(routes::events::update))
        .route("/v1/events/{id}/ticket-types", post(routes::ticket_types::add_ticket_type))
        .route("/v1/events/{id}/ticket-types/{ticket_type_id}", put(routes::ticket_types::update_ticket_type))
        .route("/v1/events/{id}/publish", post(routes::events::publish))
        .route("/v1/events/{id}/cancel", post(routes::events::cancel))
        .route("/v1/events/{id}/checkins", post(routes::checkins::check_in))
        .route("/v1/events/{id}/checkin-key", get(routes::checkins::checkin_key))
        .route("/v1/events/{id}/orders", get(routes::exports::event_orders))
        .route("/v1/events/{id}/attendees", get(routes::exports::event_attendees))
        .route("/v1/orders", post(routes::orders::place))
        .route("/v1/orders/{id}", get(routes::orders::get))
        .route("/v1/orders/{id}/payment", post(routes::orders::pay))
        .route("/v1/orders/{id}/cancel", post(routes::orders::cancel))
        .route("/v1/me/orders", get(routes::orders::mine))
        .route("/v1/me/tickets", get(routes::orders::my_tickets))
        .route("/v1/events/{id}/analytics", get(routes::analytics::get))
        .route("/v1/events/{id}/analytics/stream", get(routes::analytics::stream))
        .route("/v1/events/{id}/waiting-room", get(routes::waiting_room::get).put(routes::waiting_room::put))
        .route("/v1/events/{id}/queue", get(routes::waiting_room::place).post(routes::waiting_room::join))
        .route("/dev/mail", get(routes::dev::dev_mail))
        .route("/dev/mail/{id}", get(routes::dev::dev_mail_page))
        .route("/.well-known/jwks.json", get(routes::ops::jwks))
        .route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::ApiDoc::openapi()))
        .route_layer(from_fn(middleware::record_metrics))
        .fallback(|| async { Problem::new(ErrorKind::NotFound, "no such route") })
        .layer(from_fn_with_state(state.clone(), middleware::authenticate_and_limit))
        .layer(from_fn_with_state(state.clone(), middleware::bound_time))
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .with_state(state.clone())
        // Plain errors become problems inside CORS and the request id, so that those headers
        // are on every answer; the web pages, which answer in HTML, are outside it.
        .layer(from_fn(middleware::problem_for_plain_errors));
    // The storefront at `/`, a client of the API above (in-process, through every layer of
    // it); what is not a page is the API's (ADR 0010).
    let site =
        eventhive_web::router(api.clone()).route_layer(from_fn(middleware::record_metrics)).fallback_service(api);
    let request_id = HeaderName::from_static(REQUEST_ID);
    // Router::layer wraps: the last one added runs first.
    site.layer(cors(&state.gateway))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            let span =
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id);
            // A client's `traceparent` is continued, so a trace can start in the browser.
            let traceparent = request.headers().get(telemetry::TRACEPARENT).and_then(|v| v.to_str().ok());
            telemetry::continue_trace(&span, traceparent);
            span
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

fn cors(settings: &GatewaySettings) -> CorsLayer {
    let origins = settings.cors_allowed_origins.trim();
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("idempotency-key")])
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static(REQUEST_ID)])
        .max_age(Duration::from_secs(600));
    if origins == "*" {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins.split(',').filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// The gateway, bound to its listener.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

#[async_trait]
impl Service for Application {
    const NAME: &'static str = SERVICE;
    const DEFAULT_PORT: u16 = 8080;
    const HEALTH: Health = Health::Http { path: "/readyz" };
    type Settings = GatewaySettings;

    fn migrations() -> Option<&'static eventhive_platform::service::Migrator> {
        None
    }

    async fn build(context: Context) -> anyhow::Result<Self> {
        let gateway: GatewaySettings = context.section()?;
        let state = AppState::new(context.settings, gateway).await?;
        Ok(Self { listener: context.listener, router: router(state) })
    }

    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(address = %self.listener.local_addr()?, "HTTP listening");
        // Nagle off, as on the gRPC servers: a response written in pieces must not wait for
        // the client's delayed ACK (40 ms) between them.
        let listener = self.listener.tap_io(|connection| {
            if let Err(error) = connection.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY not set on a connection");
            }
        });
        axum::serve(listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        Ok(())
    }
}
