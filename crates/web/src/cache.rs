//! An on-sale event's page data (the API's `GET /v1/events/{id}`), kept for a moment in the
//! gateway's process: when a sale opens, thousands of buyers load the same event page each
//! second, and all of them but one per [`EVENT_TTL`] are served from here instead of asking
//! catalog and ticketing again. One load at a time per event: buyers who arrive while it is
//! under way wait for it and share it, so an expiry never lets the crowd through at once.
//!
//! Only what everyone may see is kept: an on-sale event. A draft is answered to its
//! organization's members alone, so it is never shared; errors are never kept either.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use crate::{api::ApiError, pages::Event};

/// How long an event's page data is served before it is read again: the availability a buyer
/// sees is at most this old (docs/web.md says why one second).
pub const EVENT_TTL: Duration = Duration::from_secs(1);

/// The `Cache-Control` of an event's page that everyone sees alike (a visitor not signed in):
/// browsers and shared caches keep it as long as the data it shows is kept here.
pub const SHARED_EVENT_PAGE: &str = "public, max-age=1";

/// Past this many events kept, the stale ones are dropped before another is added.
const MOST_EVENTS: usize = 4096;

/// Whether an answer came from the cache, for the page's `Server-Timing` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Cached,
    Loaded,
}

impl Served {
    pub fn server_timing(self) -> &'static str {
        match self {
            Served::Cached => "event-cache;desc=\"hit\"",
            Served::Loaded => "event-cache;desc=\"miss\"",
        }
    }
}

pub struct EventCache {
    ttl: Duration,
    events: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One event's place: locked while it is loaded, so that concurrent pages share the load.
type Slot = tokio::sync::Mutex<Option<Kept>>;

struct Kept {
    /// When the load that read it began: what it says is at least this recent.
    read_at: Instant,
    event: Arc<Event>,
}

impl Kept {
    fn fresh(&self, ttl: Duration) -> bool {
        self.read_at.elapsed() < ttl
    }
}

impl EventCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, events: Mutex::new(HashMap::new()) }
    }

    /// The event `id`, from the cache while fresh, else from `load` (kept if it is on sale).
    pub async fn get<Load>(&self, id: &str, load: Load) -> Result<(Arc<Event>, Served), ApiError>
    where
        Load: AsyncFnOnce() -> Result<Event, ApiError>,
    {
        let slot = self.slot(id);
        let mut kept = slot.lock().await;
        if let Some(kept) = kept.as_ref().filter(|k| k.fresh(self.ttl)) {
            return Ok((kept.event.clone(), Served::Cached));
        }
        let read_at = Instant::now();
        let event = Arc::new(load().await?);
        *kept = (event.status == "on_sale").then(|| Kept { read_at, event: event.clone() });
        Ok((event, Served::Loaded))
    }

    fn slot(&self, id: &str) -> Arc<Slot> {
        // Nothing panics while the map is locked; a poisoned lock still holds a sound map.
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() >= MOST_EVENTS && !events.contains_key(id) {
            let ttl = self.ttl;
            // A slot some page holds, or one locked by a load, stays.
            events.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || match slot.try_lock() {
                        Ok(kept) => kept.as_ref().is_some_and(|k| k.fresh(ttl)),
                        Err(_) => true,
                    }
            });
        }
        events.entry(id.to_owned()).or_default().clone()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).len()
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

    /// A load that counts itself and answers `available` tickets left, after a while, as a
    /// call through the API does.
    async fn load(loads: &AtomicUsize, status: &str, available: i64) -> Result<Event, ApiError> {
        loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(event(status, available))
    }

    #[test]
    fn a_shared_page_is_kept_as_long_as_its_data() {
        assert_eq!(SHARED_EVENT_PAGE, format!("public, max-age={}", EVENT_TTL.as_secs()));
    }

    #[tokio::test]
    async fn a_crowd_shares_one_load_and_sees_a_new_one_after_the_ttl() {
        let cache = EventCache::new(EVENT_TTL);
        let loads = AtomicUsize::new(0);
        let crowd = (0..50).map(|_| cache.get("e", async || load(&loads, "on_sale", 10).await));
        let answers = futures::future::join_all(crowd).await;
        assert_eq!(loads.load(Ordering::SeqCst), 1, "fifty pages at once, one load");
        let served: Vec<Served> = answers.into_iter().map(|a| a.unwrap().1).collect();
        assert_eq!(served.iter().filter(|s| **s == Served::Loaded).count(), 1);

        let (event, served) = cache.get("e", async || load(&loads, "on_sale", 8).await).await.unwrap();
        assert_eq!((served, event.ticket_types[0].available), (Served::Cached, 10));

        // The TTL counts from when the load began, so nothing older than it is served.
        tokio::time::sleep(EVENT_TTL).await;
        let (event, served) = cache.get("e", async || load(&loads, "on_sale", 8).await).await.unwrap();
        assert_eq!((served, event.ticket_types[0].available), (Served::Loaded, 8));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn drafts_and_errors_are_never_kept() {
        let cache = EventCache::new(EVENT_TTL);
        let loads = AtomicUsize::new(0);
        for _ in 0..2 {
            let (_, served) = cache.get("e", async || load(&loads, "draft", 1).await).await.unwrap();
            assert_eq!(served, Served::Loaded);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 2);

        let missing = Problem { status: 404, type_uri: "not-found".into(), detail: String::new(), errors: Vec::new() };
        let answer = cache.get("gone", async || Err(ApiError::Problem(missing))).await;
        assert!(matches!(answer, Err(ApiError::Problem(p)) if p.status == 404));
        let (_, served) = cache.get("gone", async || load(&loads, "on_sale", 1).await).await.unwrap();
        assert_eq!(served, Served::Loaded);
    }

    #[tokio::test]
    async fn stale_events_make_room_for_new_ones() {
        let ttl = Duration::from_millis(50);
        let cache = EventCache::new(ttl);
        for n in 0..MOST_EVENTS {
            cache.get(&n.to_string(), async || Ok(event("on_sale", 1))).await.unwrap();
        }
        assert_eq!(cache.len(), MOST_EVENTS);
        tokio::time::sleep(ttl).await;
        cache.get("one more", async || Ok(event("on_sale", 1))).await.unwrap();
        assert_eq!(cache.len(), 1);
    }
}
