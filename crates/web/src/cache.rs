//! An on-sale event's page data (the API's `GET /v1/events/{id}`), kept for a moment in the
//! gateway's process ([`eventhive_kept`]): when a sale opens, thousands of buyers load the same
//! event page each second, and all of them but one per [`EVENT_TTL`] are served from here
//! instead of asking catalog and ticketing again, one load at a time per event.
//!
//! Only what everyone may see is kept: an on-sale event. A draft is answered to its
//! organization's members alone, so it is never shared; errors are never kept either.

use std::{sync::Arc, time::Duration};

use eventhive_kept::Kept;
pub use eventhive_kept::Served;

use crate::{api::ApiError, pages::Event};

/// How long an event's page data is served before it is read again: the availability a buyer
/// sees is at most this old (docs/web.md says why one second).
pub const EVENT_TTL: Duration = Duration::from_secs(1);

/// The `Cache-Control` of an event's page that everyone sees alike (a visitor not signed in):
/// browsers and shared caches keep it as long as the data it shows is kept here.
pub const SHARED_EVENT_PAGE: &str = "public, max-age=1";

/// The page's `Server-Timing` header: whether its data came from the cache.
pub fn server_timing(served: Served) -> &'static str {
    match served {
        Served::Cached => "event-cache;desc=\"hit\"",
        Served::Loaded => "event-cache;desc=\"miss\"",
    }
}

pub struct EventCache(Kept<Event>);

impl EventCache {
    pub fn new(ttl: Duration) -> Self {
        Self(Kept::new(ttl))
    }

    /// The event `id`, from the cache while fresh, else from `load` (kept if it is on sale).
    pub async fn get<Load>(&self, id: &str, load: Load) -> Result<(Arc<Event>, Served), ApiError>
    where
        Load: AsyncFnOnce() -> Result<Event, ApiError>,
    {
        self.0.get(id, load, |event| event.status == "on_sale").await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::api::Problem;

    fn event(status: &str, available: i64) -> Event {
        serde_json::from_value(serde_json::json!({
            "id": "e", "organization_id": "o", "title": "Gig", "description": "", "status": status,
            "venue": {"name": "Hall", "city": "Utrecht"}, "starts_at": "2027-01-01T20:00:00Z",
            "max_tickets_per_order": 4,
            "ticket_types": [{"id": "t", "name": "Standing", "price": {"amount_minor": 2500, "currency": "EUR"}, "available": available}],
        }))
        .unwrap()
    }

    async fn load(loads: &AtomicUsize, status: &str) -> Result<Event, ApiError> {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok(event(status, 1))
    }

    #[test]
    fn a_shared_page_is_kept_as_long_as_its_data() {
        assert_eq!(SHARED_EVENT_PAGE, format!("public, max-age={}", EVENT_TTL.as_secs()));
    }

    #[tokio::test]
    async fn on_sale_events_are_kept_and_drafts_and_errors_never() {
        let cache = EventCache::new(EVENT_TTL);
        let loads = AtomicUsize::new(0);
        for _ in 0..2 {
            let (_, served) = cache.get("draft", async || load(&loads, "draft").await).await.unwrap();
            assert_eq!(served, Served::Loaded);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        cache.get("e", async || load(&loads, "on_sale").await).await.unwrap();
        let (_, served) = cache.get("e", async || load(&loads, "on_sale").await).await.unwrap();
        assert_eq!(served, Served::Cached);

        let missing = Problem { status: 404, type_uri: "not-found".into(), detail: String::new(), errors: Vec::new() };
        let answer = cache.get("gone", async || Err(ApiError::Problem(missing))).await;
        assert!(matches!(answer, Err(ApiError::Problem(p)) if p.status == 404));
        let (_, served) = cache.get("gone", async || load(&loads, "on_sale").await).await.unwrap();
        assert_eq!(served, Served::Loaded);
    }
}
