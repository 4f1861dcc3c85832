//! What every visitor reads alike during an on-sale — the list of events and an event's page
//! for a caller not signed in — kept in this gateway for a moment ([`eventhive_kept`]), as
//! JSON ready to send. When a sale opens, thousands of visitors refresh the same two pages;
//! each would otherwise cost a call to catalog and one to ticketing, with a query each. Here one
//! load per page per TTL answers them all, one load at a time per page.
//!
//! Freshness: what is served is at most the TTL old (one second by default), counted from when
//! its load began. A change made through this gateway — an order placed or cancelled, an event
//! or ticket type edited, published or cancelled — forgets the pages it shows in as soon as it
//! is answered, so whoever made it reads it back at once. A change this gateway does not see (a
//! hold that expires, a write through another replica) shows within the TTL. A signed-in
//! caller's event page is always read live: it may be a draft only they may see.

use std::time::Duration;

use axum::{
    body::Bytes,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use eventhive_kept::{Kept, Served};
use eventhive_platform::{ErrorKind, Problem};
use serde::Serialize;

/// Lists are keyed by their query, which visitors choose freely: fewer of them are kept than
/// of event pages (a page of 100 events is about 100 KiB).
const MOST_LISTS: usize = 256;

pub struct PublicReads {
    ttl: Duration,
    pages: Kept<Bytes>,
    lists: Kept<Bytes>,
    /// The `Cache-Control` of what is served from what is kept: browsers and shared caches may
    /// keep it as long as this gateway does (what is read live is `no-cache`).
    cache_control: HeaderValue,
}

impl PublicReads {
    /// Keeps what it serves for `ttl`; a zero TTL reads everything live.
    pub fn new(ttl: Duration) -> Self {
        let cache_control = HeaderValue::try_from(format!("public, max-age={}", ttl.as_secs()))
            .unwrap_or(HeaderValue::from_static("no-cache"));
        Self { ttl, pages: Kept::new(ttl), lists: Kept::with_most_keys(ttl, MOST_LISTS), cache_control }
    }

    /// The page of event `id` as a visitor not signed in sees it; read `live` when the caller
    /// asked for it ([`eventhive_kept::ReadLive`]).
    pub async fn event_page<T: Serialize>(
        &self,
        id: &str,
        live: bool,
        load: impl AsyncFnOnce() -> Result<T, Problem>,
    ) -> Result<Response, Problem> {
        self.serve(&self.pages, id, live, load).await
    }

    /// A list of events: `query` is the request's query string, which decides what it holds.
    pub async fn event_list<T: Serialize>(
        &self,
        query: &str,
        live: bool,
        load: impl AsyncFnOnce() -> Result<T, Problem>,
    ) -> Result<Response, Problem> {
        self.serve(&self.lists, query, live, load).await
    }

    /// After this gateway changed event `id`, its availability or its ticket types: its page
    /// and every list (any of which may show it) are read again by the next visitor.
    pub fn forget_event(&self, id: &str) {
        self.pages.forget(id);
        self.lists.forget_all();
    }

    async fn serve<T: Serialize>(
        &self,
        kept: &Kept<Bytes>,
        key: &str,
        live: bool,
        load: impl AsyncFnOnce() -> Result<T, Problem>,
    ) -> Result<Response, Problem> {
        let json = async || -> Result<Bytes, Problem> {
            let value = load().await?;
            serde_json::to_vec(&value)
                .map(Bytes::from)
                .map_err(|error| Problem::new(ErrorKind::Internal, error.to_string()))
        };
        let (body, served, cache_control) = if live || self.ttl.is_zero() {
            (json().await?, Served::Loaded, HeaderValue::from_static("no-cache"))
        } else {
            let (body, served) = kept.get(key, json, |_| true).await?;
            (Bytes::clone(&body), served, self.cache_control.clone())
        };
        let timing = match served {
            Served::Cached => HeaderValue::from_static("public-read;desc=\"hit\""),
            Served::Loaded => HeaderValue::from_static("public-read;desc=\"miss\""),
        };
        let headers = [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, cache_control),
            (header::HeaderName::from_static("server-timing"), timing),
        ];
        Ok((headers, body).into_response())
    }
}
