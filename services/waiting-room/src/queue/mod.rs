//! Each room's queue, behind one trait with two stores: [`redis::RedisQueue`] under real
//! infrastructure (it survives a restart of the service and is shared by every replica; each
//! change is one Lua script, so two replicas never admit the same place twice) and
//! [`memory::MemoryQueue`] for `eventhive dev` without Redis (one process, gone at exit).
//!
//! A place goes: early arrival (joined before the opening, no position yet) → waiting (a
//! position: drawn for early arrivals, the next in line for later ones) → admitted (until its
//! admission expires) → expired. Joining again after expiry puts the buyer at the back.

pub mod memory;
pub mod redis;

use eventhive_domain::{EventId, UserId};
use eventhive_platform::async_trait::async_trait;

/// Where a buyer stands in a room's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Joined before the opening: their position is drawn when the room opens.
    Early,
    Waiting {
        position: i64,
        /// Waiting buyers in front.
        ahead: i64,
    },
    Admitted {
        position: i64,
        expires_at_ms: i64,
    },
    Expired {
        position: i64,
    },
}

/// How many may be admitted by one call of [`QueueStore::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmitLimit {
    /// The rate, per minute. The store keeps the room's unspent allowance, so the rate holds
    /// however many replicas call and however often; at most a second's worth (at least one)
    /// accumulates while nobody waits.
    pub per_minute: i64,
    /// If set, admitted buyers whose admission is still valid and who have not ordered yet
    /// never number more than this (automatic mode: the tickets left to buy; a buyer who
    /// ordered holds tickets, which the tickets left already count).
    pub outstanding_at_most: Option<i64>,
    /// How long an admission lasts.
    pub ttl_ms: i64,
}

/// A room's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    /// Waiting, early arrivals included.
    pub queued: i64,
    /// Admitted since the opening.
    pub admitted_total: i64,
    /// Admitted, not yet expired, and not yet ordered.
    pub outstanding: i64,
    /// Admissions that ran out unused, counted so far (see [`QueueStore::count_expired`]).
    pub expired_total: i64,
}

#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Puts `buyer` in the queue (an early arrival before `opens_at_ms`, unless the draw has
    /// begun; the next position after). Returns whether they joined now (false: they had a
    /// place already, which is unchanged) and where they stand.
    async fn join(
        &self,
        event: EventId,
        buyer: UserId,
        now_ms: i64,
        opens_at_ms: i64,
    ) -> anyhow::Result<(bool, Standing)>;

    /// Where `buyer` stands; `None` if they never joined. Reads only.
    async fn standing(&self, event: EventId, buyer: UserId, now_ms: i64) -> anyhow::Result<Option<Standing>>;

    /// The first step of the draw: closes the early arrivals (whoever joins from now on gets a
    /// position after all of them) and returns them in order of arrival; `None` once the draw
    /// is complete. Repeatable until [`QueueStore::place_drawn`] completes it.
    async fn close_early(&self, event: EventId) -> anyhow::Result<Option<Vec<UserId>>>;

    /// The second step: gives the early arrivals positions 1, 2, ... in `drawn` order. A second
    /// call (another replica with the same seed) changes nothing.
    async fn place_drawn(&self, event: EventId, drawn: &[UserId]) -> anyhow::Result<()>;

    /// Admits the first waiting buyers within `limit`; returns them. Atomic: a place is
    /// admitted once, whoever calls.
    async fn admit(&self, event: EventId, now_ms: i64, limit: AdmitLimit) -> anyhow::Result<Vec<UserId>>;

    async fn counts(&self, event: EventId, now_ms: i64) -> anyhow::Result<QueueCounts>;

    /// The buyer ordered with their admission: it no longer counts as tickets they may still
    /// take. Idempotent; nothing for a buyer who is not admitted.
    async fn mark_used(&self, event: EventId, buyer: UserId) -> anyhow::Result<()>;

    /// Counts the admissions that ran out unused (their buyers never ordered) by `before_ms`,
    /// each once whoever calls; returns how many this call counted and the room's total. A
    /// buyer who joins again after their admission ran out unused is counted then.
    async fn count_expired(&self, event: EventId, before_ms: i64) -> anyhow::Result<(i64, i64)>;

    /// Whether the store answers (readiness).
    async fn ping(&self) -> anyhow::Result<()>;
}
