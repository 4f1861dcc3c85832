//! The queue stores, each run through the same checks: the memory store of `eventhive dev` and
//! the Redis store of real infrastructure (skipped, or failed under
//! `EVENTHIVE_TEST_INFRA=required`, when Redis is not there). Redis alone is checked for what
//! only it promises: a new connection (a restarted service) finds every place, and two
//! replicas admitting at once never admit the same place twice.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use eventhive_domain::{EventId, UserId};
use eventhive_test_infra as infra;
use eventhive_waiting_room::{
    draw,
    queue::{AdmitLimit, QueueStore, Standing, memory::MemoryQueue, redis::RedisQueue},
};

const OPENS_AT: i64 = 1_000_000;
const TTL_MS: i64 = 60_000;

/// A Redis store under a prefix of its own, and the prefix (to connect a second one).
async fn redis_store() -> Option<(RedisQueue, String)> {
    if !infra::run_infra_test() {
        return None;
    }
    let prefix = format!("eh-test-{}", uuid::Uuid::new_v4().simple());
    Some((RedisQueue::connect(&infra::redis_url(), &prefix).await.unwrap(), prefix))
}

async fn clean(prefix: &str) {
    let client = redis::Client::open(infra::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    }
}

fn buyers(n: usize) -> Vec<UserId> {
    (0..n).map(|_| UserId::new()).collect()
}

async fn position(store: &dyn QueueStore, event: EventId, buyer: UserId, now: i64) -> Standing {
    store.standing(event, buyer, now).await.unwrap().expect("the buyer has a place")
}

/// Opens the room: draws the early arrivals with `seed`; returns them in drawn order.
async fn open(store: &dyn QueueStore, event: EventId, seed: u64) -> Vec<UserId> {
    let early = store.close_early(event).await.unwrap().expect("the draw is not done yet");
    let drawn = draw(seed, early);
    store.place_drawn(event, &drawn).await.unwrap();
    drawn
}

const fn fast(outstanding_at_most: Option<i64>) -> AdmitLimit {
    AdmitLimit { per_minute: 600_000, outstanding_at_most, ttl_ms: TTL_MS }
}

/// Early arrivals get no position until the draw, then positions 1..n in the drawn order;
/// whoever joins after the opening (also while the draw is under way) gets the next position,
/// in order of arrival; joining again moves nobody; admission takes the front of the line and
/// moves no one else's position.
async fn early_arrivals_are_drawn_and_later_ones_queue_in_order(store: &dyn QueueStore) {
    let event = EventId::new();
    let early = buyers(12);
    for buyer in &early {
        assert_eq!(store.join(event, *buyer, OPENS_AT - 1000, OPENS_AT).await.unwrap(), (true, Standing::Early));
    }
    assert_eq!(store.join(event, early[3], OPENS_AT - 500, OPENS_AT).await.unwrap(), (false, Standing::Early));
    assert_eq!(store.counts(event, OPENS_AT).await.unwrap().queued, 12);

    let closed = store.close_early(event).await.unwrap().unwrap();
    assert_eq!(closed, early, "the early arrivals, in order of arrival");
    // Joins during the draw already queue after every early arrival.
    let during = UserId::new();
    let joined = store.join(event, during, OPENS_AT + 1, OPENS_AT).await.unwrap();
    assert_eq!(joined, (true, Standing::Waiting { position: 13, ahead: 0 }));
    let drawn = draw(99, closed);
    store.place_drawn(event, &drawn).await.unwrap();
    store.place_drawn(event, &draw(100, early.clone())).await.unwrap();
    assert_eq!(store.close_early(event).await.unwrap(), None, "the draw is done");

    for (i, buyer) in drawn.iter().enumerate() {
        let i = i64::try_from(i).unwrap();
        assert_eq!(position(store, event, *buyer, OPENS_AT).await, Standing::Waiting { position: i + 1, ahead: i });
    }
    let late = buyers(3);
    for (i, buyer) in (14..).zip(&late) {
        let (joined, standing) = store.join(event, *buyer, OPENS_AT + 10, OPENS_AT).await.unwrap();
        assert!(joined);
        assert_eq!(standing, Standing::Waiting { position: i, ahead: i - 1 });
    }

    let admitted = store.admit(event, OPENS_AT, AdmitLimit { per_minute: 60, ..fast(None) }).await.unwrap();
    assert_eq!(admitted, drawn[..2].to_vec(), "a second's worth of 60/min, with its burst, from the front");
    let standing = position(store, event, drawn[0], OPENS_AT).await;
    assert_eq!(standing, Standing::Admitted { position: 1, expires_at_ms: OPENS_AT + TTL_MS });
    assert_eq!(position(store, event, drawn[2], OPENS_AT).await, Standing::Waiting { position: 3, ahead: 0 });
    assert_eq!(position(store, event, late[2], OPENS_AT).await, Standing::Waiting { position: 16, ahead: 13 });
    let counts = store.counts(event, OPENS_AT).await.unwrap();
    assert_eq!((counts.queued, counts.admitted_total, counts.outstanding), (14, 2, 2));
    assert_eq!(store.standing(event, UserId::new(), OPENS_AT).await.unwrap(), None);
}

/// With a cap, admitted buyers whose admission is valid and unused never outnumber it; a used
/// admission (the buyer ordered) and an expired one free room; an expired buyer who joins
/// again goes to the back.
async fn the_cap_counts_valid_admissions_and_expiry_frees_them(store: &dyn QueueStore) {
    let event = EventId::new();
    let line = buyers(5);
    for buyer in &line {
        store.join(event, *buyer, OPENS_AT, 0).await.unwrap();
    }
    assert_eq!(open(store, event, 1).await, Vec::<UserId>::new());
    assert_eq!(store.admit(event, OPENS_AT, fast(Some(2))).await.unwrap(), line[..2].to_vec());
    assert!(store.admit(event, OPENS_AT + 1000, fast(Some(2))).await.unwrap().is_empty());
    store.mark_used(event, line[0]).await.unwrap();
    store.mark_used(event, line[0]).await.unwrap();
    store.mark_used(event, UserId::new()).await.unwrap();
    assert_eq!(store.counts(event, OPENS_AT + 1000).await.unwrap().outstanding, 1);
    let used = position(store, event, line[0], OPENS_AT + 1000).await;
    assert!(matches!(used, Standing::Admitted { position: 1, .. }), "a used admission stays valid: {used:?}");
    assert_eq!(store.admit(event, OPENS_AT + 2000, fast(Some(2))).await.unwrap(), vec![line[2]]);
    let later = OPENS_AT + TTL_MS + 2001;
    assert_eq!(position(store, event, line[0], later).await, Standing::Expired { position: 1 });
    assert_eq!(store.admit(event, later, fast(Some(2))).await.unwrap(), line[3..5].to_vec());
    let (joined, standing) = store.join(event, line[0], later, 0).await.unwrap();
    assert!(joined);
    assert_eq!(standing, Standing::Waiting { position: 6, ahead: 0 });
}

/// An admission that runs out before its buyer ordered is counted once: by the sweep after
/// its expiry, or when its buyer joins again first; a used one never.
async fn admissions_that_run_out_unused_are_counted_once(store: &dyn QueueStore) {
    let event = EventId::new();
    let line = buyers(3);
    for buyer in &line {
        store.join(event, *buyer, OPENS_AT, 0).await.unwrap();
    }
    open(store, event, 2).await;
    assert_eq!(store.admit(event, OPENS_AT, fast(None)).await.unwrap().len(), 3);
    store.mark_used(event, line[0]).await.unwrap();
    let runs_out = OPENS_AT + TTL_MS;
    assert_eq!(store.count_expired(event, runs_out - 1).await.unwrap(), (0, 0), "all still valid");
    // line[1] joins again once expired: counted then, and not by the sweep.
    store.join(event, line[1], runs_out, 0).await.unwrap();
    assert_eq!(store.counts(event, runs_out).await.unwrap().expired_total, 1);
    assert_eq!(store.count_expired(event, runs_out).await.unwrap(), (1, 2), "line[2]; line[0] ordered");
    assert_eq!(store.count_expired(event, runs_out + 1000).await.unwrap(), (0, 2), "each once");
    assert_eq!(store.counts(event, runs_out).await.unwrap().expired_total, 2);
}

/// Two replicas admitting at the same moments, each with its own connection: every place is
/// admitted once, and the total counts each once. Returns how many each admitted.
async fn two_replicas_never_admit_the_same_place_twice(
    one: Arc<dyn QueueStore>,
    two: Arc<dyn QueueStore>,
) -> (usize, usize) {
    let event = EventId::new();
    let line = buyers(300);
    for buyer in &line {
        one.join(event, *buyer, OPENS_AT, 0).await.unwrap();
    }
    open(one.as_ref(), event, 5).await;
    let clock = Arc::new(AtomicI64::new(OPENS_AT));
    let replica = |store: Arc<dyn QueueStore>| {
        let clock = clock.clone();
        tokio::spawn(async move {
            let mut admitted = Vec::new();
            for _ in 0..200 {
                // 600 a minute: about ten per step of 1 s between the two of them.
                let now = clock.fetch_add(1000, Ordering::SeqCst);
                let limit = AdmitLimit { per_minute: 600, ..fast(None) };
                admitted.extend(store.admit(event, now, limit).await.unwrap());
            }
            admitted
        })
    };
    let (first, second) = tokio::join!(replica(one.clone()), replica(two.clone()));
    let (first, second) = (first.unwrap(), second.unwrap());
    let mut seen = HashSet::new();
    for buyer in first.iter().chain(&second) {
        assert!(seen.insert(*buyer), "{buyer} was admitted twice");
    }
    assert_eq!(seen.len(), line.len(), "everyone was admitted in the end");
    let counts = two.counts(event, OPENS_AT).await.unwrap();
    assert_eq!((counts.queued, counts.admitted_total), (0, 300));
    (first.len(), second.len())
}

#[tokio::test]
async fn memory_early_arrivals_are_drawn_and_later_ones_queue_in_order() {
    early_arrivals_are_drawn_and_later_ones_queue_in_order(&MemoryQueue::default()).await;
}

#[tokio::test]
async fn memory_the_cap_counts_valid_admissions_and_expiry_frees_them() {
    the_cap_counts_valid_admissions_and_expiry_frees_them(&MemoryQueue::default()).await;
}

#[tokio::test]
async fn memory_admissions_that_run_out_unused_are_counted_once() {
    admissions_that_run_out_unused_are_counted_once(&MemoryQueue::default()).await;
}

#[tokio::test]
async fn memory_concurrent_admissions_never_admit_the_same_place_twice() {
    let store: Arc<dyn QueueStore> = Arc::new(MemoryQueue::default());
    two_replicas_never_admit_the_same_place_twice(store.clone(), store).await;
}

#[tokio::test]
async fn redis_early_arrivals_are_drawn_and_later_ones_queue_in_order() {
    let Some((store, prefix)) = redis_store().await else { return };
    early_arrivals_are_drawn_and_later_ones_queue_in_order(&store).await;
    clean(&prefix).await;
}

#[tokio::test]
async fn redis_the_cap_counts_valid_admissions_and_expiry_frees_them() {
    let Some((store, prefix)) = redis_store().await else { return };
    the_cap_counts_valid_admissions_and_expiry_frees_them(&store).await;
    clean(&prefix).await;
}

#[tokio::test]
async fn redis_admissions_that_run_out_unused_are_counted_once() {
    let Some((store, prefix)) = redis_store().await else { return };
    admissions_that_run_out_unused_are_counted_once(&store).await;
    clean(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_replicas_never_admit_the_same_place_twice() {
    let Some((one, prefix)) = redis_store().await else { return };
    let two = RedisQueue::connect(&infra::redis_url(), &prefix).await.unwrap();
    let (first, second) = two_replicas_never_admit_the_same_place_twice(Arc::new(one), Arc::new(two)).await;
    assert!(first > 0 && second > 0, "both replicas admitted some: {first} and {second}");
    clean(&prefix).await;
}

/// A restarted service (a new connection) finds every place where it was: early arrivals not
/// yet drawn, positions, admissions.
#[tokio::test]
async fn redis_a_restart_keeps_every_place() {
    let Some((store, prefix)) = redis_store().await else { return };
    let event = EventId::new();
    let early = buyers(4);
    for buyer in &early {
        store.join(event, *buyer, OPENS_AT - 1, OPENS_AT).await.unwrap();
    }
    drop(store);
    let store = RedisQueue::connect(&infra::redis_url(), &prefix).await.unwrap();
    assert_eq!(position(&store, event, early[0], OPENS_AT).await, Standing::Early);
    let drawn = open(&store, event, 3).await;
    let admitted = store.admit(event, OPENS_AT, fast(Some(1))).await.unwrap();
    let before: Vec<Standing> = futures_standings(&store, event, &drawn).await;
    drop(store);
    let store = RedisQueue::connect(&infra::redis_url(), &prefix).await.unwrap();
    assert_eq!(futures_standings(&store, event, &drawn).await, before);
    assert_eq!(admitted, vec![drawn[0]]);
    assert_eq!(store.counts(event, OPENS_AT).await.unwrap().admitted_total, 1);
    clean(&prefix).await;
}

async fn futures_standings(store: &dyn QueueStore, event: EventId, buyers: &[UserId]) -> Vec<Standing> {
    let mut standings = Vec::new();
    for buyer in buyers {
        standings.push(position(store, event, *buyer, OPENS_AT).await);
    }
    standings
}
