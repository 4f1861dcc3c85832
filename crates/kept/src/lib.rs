//! A value that many readers ask for at once and that changes rarely, kept in the process for a
//! moment: when an on-sale opens, thousands of buyers load the same event page and poll the same
//! waiting room each second, and all of them but one per TTL are answered from here.
//!
//! One load at a time per key: readers who arrive while it is under way wait for it and share
//! it, so an expiry never lets the crowd through to the database at once. What is kept is at
//! most the TTL old, counted from when its load began. Errors are never kept, nor a value the
//! caller says not to keep; a writer in this process [`forget`](Kept::forget)s what it changed.
//!
//! Used by the storefront (crates/web) and the waiting room, neither of which may depend on
//! the other or on the platform kit: hence a crate of its own, on tokio alone.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// Past this many keys kept, the stale ones are dropped before another is added; when every
/// one is fresh, a new key is loaded for its reader and not kept, so memory stays bounded
/// whatever keys the readers make up.
const MOST_KEYS: usize = 4096;

/// A request extension that asks for a read made live rather than served from what is kept.
/// Only a caller in the same process can set it (no client sends an extension): the
/// storefront, which keeps the event pages it reads itself, so that they are not kept twice.
#[derive(Debug, Clone, Copy)]
pub struct ReadLive;

/// Whether an answer came from what was kept, or was loaded for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Cached,
    Loaded,
}

pub struct Kept<V> {
    ttl: Duration,
    most_keys: usize,
    slots: Mutex<HashMap<String, Arc<Slot<V>>>>,
}

/// One key's place: locked while it is loaded, so that concurrent readers share the load.
type Slot<V> = tokio::sync::Mutex<Option<Entry<V>>>;

struct Entry<V> {
    /// When the load that read it began: what it says is at least this recent.
    read_at: Instant,
    value: Arc<V>,
}

impl<V> Entry<V> {
    fn fresh(&self, ttl: Duration) -> bool {
        self.read_at.elapsed() < ttl
    }
}

impl<V> Kept<V> {
    pub fn new(ttl: Duration) -> Self {
        Self::with_most_keys(ttl, MOST_KEYS)
    }

    /// Keeps at most `most_keys` keys: for values large enough that the default would be
    /// too much memory.
    pub fn with_most_keys(ttl: Duration, most_keys: usize) -> Self {
        Self { ttl, most_keys, slots: Mutex::new(HashMap::new()) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The value of `key`, kept while fresh, else from `load` (and kept if `keep` says so).
    pub async fn get<E, Load>(
        &self,
        key: &str,
        load: Load,
        keep: impl FnOnce(&V) -> bool,
    ) -> Result<(Arc<V>, Served), E>
    where
        Load: AsyncFnOnce() -> Result<V, E>,
    {
        let Some(slot) = self.slot(key) else {
            return Ok((Arc::new(load().await?), Served::Loaded));
        };
        let mut entry = slot.lock().await;
        if let Some(entry) = entry.as_ref().filter(|e| e.fresh(self.ttl)) {
            return Ok((entry.value.clone(), Served::Cached));
        }
        let read_at = Instant::now();
        let value = Arc::new(load().await?);
        *entry = keep(&value).then(|| Entry { read_at, value: value.clone() });
        Ok((value, Served::Loaded))
    }

    /// Drops what is kept of `key`, after this process changed it: the next reader loads it.
    /// A load under way still answers the readers waiting for it.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Drops every key, after this process made a change that could show in any of them.
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot<V>>>> {
        // Nothing panics while the map is locked; a poisoned lock still holds a sound map.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The place of `key`; none when every place is taken by a fresh value or a load.
    fn slot(&self, key: &str) -> Option<Arc<Slot<V>>> {
        let mut slots = self.lock();
        if let Some(slot) = slots.get(key) {
            return Some(slot.clone());
        }
        if slots.len() >= self.most_keys {
            let ttl = self.ttl;
            // A slot some reader holds, or one locked by a load, stays.
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || match slot.try_lock() {
                        Ok(entry) => entry.as_ref().is_some_and(|e| e.fresh(ttl)),
                        Err(_) => true,
                    }
            });
            if slots.len() >= self.most_keys {
                return None;
            }
        }
        Some(slots.entry(key.to_owned()).or_default().clone())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const TTL: Duration = Duration::from_secs(1);

    /// A load that counts itself and answers `value` after a while, as a call over the
    /// network does.
    async fn load(loads: &AtomicUsize, value: i64) -> Result<i64, String> {
        loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(value)
    }

    fn always(_: &i64) -> bool {
        true
    }

    #[tokio::test]
    async fn a_crowd_shares_one_load_and_sees_a_new_one_after_the_ttl() {
        let kept = Kept::new(TTL);
        let loads = AtomicUsize::new(0);
        let crowd = (0..50).map(|_| kept.get("e", async || load(&loads, 10).await, always));
        let answers = futures::future::join_all(crowd).await;
        assert_eq!(loads.load(Ordering::SeqCst), 1, "fifty readers at once, one load");
        let served: Vec<Served> = answers.into_iter().map(|a| a.unwrap().1).collect();
        assert_eq!(served.iter().filter(|s| **s == Served::Loaded).count(), 1);

        let (value, served) = kept.get("e", async || load(&loads, 8).await, always).await.unwrap();
        assert_eq!((served, *value), (Served::Cached, 10));

        // The TTL counts from when the load began, so nothing older than it is served.
        tokio::time::sleep(TTL).await;
        let (value, served) = kept.get("e", async || load(&loads, 8).await, always).await.unwrap();
        assert_eq!((served, *value), (Served::Loaded, 8));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_and_values_not_to_keep_are_loaded_again() {
        let kept = Kept::new(TTL);
        let loads = AtomicUsize::new(0);
        for _ in 0..2 {
            let (_, served) = kept.get("e", async || load(&loads, 1).await, |_| false).await.unwrap();
            assert_eq!(served, Served::Loaded);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 2);

        let failed = kept.get("gone", async || Err::<i64, _>("down".to_owned()), always).await;
        assert_eq!(failed, Err("down".to_owned()));
        let (_, served) = kept.get("gone", async || load(&loads, 1).await, always).await.unwrap();
        assert_eq!(served, Served::Loaded);
    }

    #[tokio::test]
    async fn a_forgotten_key_is_loaded_again_at_once() {
        let kept = Kept::new(TTL);
        let loads = AtomicUsize::new(0);
        kept.get("e", async || load(&loads, 1).await, always).await.unwrap();
        kept.forget("e");
        let (value, served) = kept.get("e", async || load(&loads, 2).await, always).await.unwrap();
        assert_eq!((served, *value), (Served::Loaded, 2));
    }

    #[tokio::test]
    async fn stale_keys_make_room_for_new_ones() {
        let ttl = Duration::from_millis(50);
        let kept = Kept::new(ttl);
        for n in 0..MOST_KEYS {
            kept.get(&n.to_string(), async || Ok::<_, String>(1), always).await.unwrap();
        }
        assert_eq!(kept.len(), MOST_KEYS);
        tokio::time::sleep(ttl).await;
        kept.get("one more", async || Ok::<_, String>(1), always).await.unwrap();
        assert_eq!(kept.len(), 1);
    }

    #[tokio::test]
    async fn past_the_most_keys_a_new_one_is_answered_but_not_kept() {
        let kept = Kept::with_most_keys(TTL, 2);
        let loads = AtomicUsize::new(0);
        for key in ["a", "b", "c", "c"] {
            kept.get(key, async || load(&loads, 1).await, always).await.unwrap();
        }
        assert_eq!(kept.len(), 2, "the two fresh keys stay, the third is not kept");
        assert_eq!(loads.load(Ordering::SeqCst), 4, "c loaded each time");
        let (_, served) = kept.get("a", async || load(&loads, 1).await, always).await.unwrap();
        assert_eq!(served, Served::Cached);

        kept.forget_all();
        assert_eq!(kept.len(), 0);
    }
}
