//! web: the storefront, server-rendered HTML on the public API. The gateway mounts
//! [`router`] at `/` in every run mode, so the pages share the API's origin (cookies and CSRF
//! stay simple, no CORS) and its process. The pages get every piece of data by calling the
//! gateway's own API router in-process ([`Api`]), with the visitor's token, exactly as an
//! outside client would over HTTP: they see only the public contract, pass the same
//! authentication and rate limits, and never touch a service's gRPC or database (ADR 0010).
//!
//! # Layout
//! - [`api`]: the in-process client of the public API and its errors.
//! - [`cache`]: on-sale events' page data, kept a second for the crowd of an on-sale.
//! - [`session`]: cookies holding the tokens, CSRF, security headers (one middleware).
//! - [`layout`]: the page shell and the small pieces every page uses.
//! - [`qr`]: ticket codes drawn as SVG QR codes.
//! - [`pages`]: one module per area: catalog, account, checkout, waiting room, mine, door,
//!   dashboard, and the organizer's console (`manage`).
//! - `assets/`: the CSS file and the scripts (every page's, the door's), compiled into the binary.

mod api;
mod cache;
mod layout;
mod pages;
mod qr;
mod session;

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderValue, header},
    middleware::from_fn_with_state,
    response::IntoResponse,
    routing::{get, post},
};

pub use api::Api;
pub use cache::EVENT_TTL;

/// What every page handler shares.
#[derive(Clone)]
pub struct Web {
    pub(crate) api: Api,
    pub(crate) events: Arc<cache::EventCache>,
}

/// The storefront's routes. `api` is the gateway's API router, with its authentication and
/// rate limits, which the pages call in-process.
pub fn router(api: axum::Router) -> Router {
    let web = Web { api: Api::new(api), events: Arc::new(cache::EventCache::new(cache::EVENT_TTL)) };
    Router::new()
        .route("/", get(pages::catalog::events))
        .route("/events/{id}", get(pages::catalog::event))
        .route("/events/{id}/hold", post(pages::checkout::hold))
        .route("/events/{id}/queue", get(pages::queue::show).post(pages::queue::join))
        .route("/events/{id}/queue/place", get(pages::queue::place))
        .route("/orders/{id}", get(pages::checkout::order))
        .route("/orders/{id}/pay", post(pages::checkout::pay))
        .route("/orders/{id}/cancel", post(pages::checkout::cancel))
        .route("/my/orders", get(pages::mine::orders))
        .route("/my/tickets", get(pages::mine::tickets))
        .route("/door", get(pages::door::events))
        .route("/door/{id}", get(pages::door::event).post(pages::door::check_in))
        .route("/manage/events/{id}", get(pages::dashboard::show))
        .route("/manage/events/{id}/figures", get(pages::dashboard::figures))
        .route("/manage/events/{id}/live", get(pages::dashboard::live))
        .merge(pages::manage::routes())
        .route("/login", get(pages::account::login_form).post(pages::account::login))
        .route("/register", get(pages::account::register_form).post(pages::account::register))
        .route("/logout", post(pages::account::logout))
        .layer(from_fn_with_state(web.clone(), session::middleware))
        // Assets need no session: they are the same for everyone.
        .route("/static/style.css", get(|| asset("text/css; charset=utf-8", include_str!("../assets/style.css"))))
        .route("/static/app.js", get(|| asset("text/javascript; charset=utf-8", include_str!("../assets/app.js"))))
        .route("/static/door.js", get(|| asset("text/javascript; charset=utf-8", include_str!("../assets/door.js"))))
        .with_state(web)
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Short: a new binary's assets reach browsers within minutes without versioned names.
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        body,
    )
}
