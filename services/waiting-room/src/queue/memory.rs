//! The queue in this process's memory, for `eventhive dev` without Redis. One lock per store;
//! every operation is one critical section, which gives it the same atomicity the Redis
//! scripts have. Gone when the process ends.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use eventhive_domain::{EventId, UserId};
use eventhive_platform::async_trait::async_trait;

use super::{AdmitLimit, QueueCounts, QueueStore, Standing};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Draw {
    #[default]
    NotYet,
    Closing,
    Done,
}

#[derive(Default)]
struct Room {
    early: Vec<UserId>,
    draw: Draw,
    /// The last position given.
    last: i64,
    waiting: BTreeMap<i64, UserId>,
    /// The position of every buyer who has one (waiting, admitted or expired).
    positions: HashMap<UserId, i64>,
    /// Admitted buyers and when their admission expires.
    admitted: HashMap<UserId, i64>,
    /// Admitted buyers who have not ordered yet, and when their admission expires.
    unused: HashMap<UserId, i64>,
    admitted_total: i64,
    /// Admissions that ran out unused, counted.
    expired_total: i64,
    allowance: Allowance,
}

/// The unspent part of a rate, as the Redis script keeps it.
#[derive(Default)]
struct Allowance {
    credit: f64,
    at: Option<i64>,
}

impl Allowance {
    /// What may be admitted now, before any cap.
    fn refill(&mut self, per_minute: i64, now_ms: i64) -> i64 {
        let burst = (per_minute as f64 / 30.0).max(1.0);
        self.credit = match self.at {
            None => burst,
            Some(at) => (self.credit + per_minute as f64 * (now_ms - at).max(0) as f64 / 60_000.0).min(burst),
        };
        self.at = Some(now_ms);
        self.credit.floor() as i64
    }
}

impl Room {
    /// How many wait before `position`, without walking them (a poll of a 100,000-buyer queue
    /// must not count 100,000 entries): the waiting positions are one unbroken run, since they
    /// are handed out in order (the draw's 1..n, then one more per later arrival) and admission
    /// takes them from the front only.
    fn ahead_of(&self, position: i64) -> i64 {
        let first = self.waiting.first_key_value().map_or(position, |(first, _)| *first);
        debug_assert_eq!(
            self.waiting.last_key_value().map_or(0, |(last, _)| last - first + 1),
            i64::try_from(self.waiting.len()).unwrap_or(i64::MAX),
            "the waiting positions are one unbroken run"
        );
        (position - first).max(0)
    }

    fn close(&mut self) {
        if self.draw == Draw::NotYet {
            self.draw = Draw::Closing;
            self.last = i64::try_from(self.early.len()).unwrap_or(i64::MAX);
        }
    }

    fn standing(&self, buyer: UserId, now_ms: i64) -> Option<Standing> {
        if let Some(&expires_at_ms) = self.admitted.get(&buyer) {
            let position = self.positions.get(&buyer).copied().unwrap_or_default();
            return Some(if expires_at_ms > now_ms {
                Standing::Admitted { position, expires_at_ms }
            } else {
                Standing::Expired { position }
            });
        }
        if let Some(&position) = self.positions.get(&buyer) {
            return Some(Standing::Waiting { position, ahead: self.ahead_of(position) });
        }
        self.early.contains(&buyer).then_some(Standing::Early)
    }
}

#[derive(Default)]
pub struct MemoryQueue {
    rooms: Mutex<HashMap<EventId, Room>>,
}

impl MemoryQueue {
    fn with<T>(&self, event: EventId, f: impl FnOnce(&mut Room) -> T) -> anyhow::Result<T> {
        let mut rooms = self.rooms.lock().map_err(|_| anyhow::anyhow!("the queue's lock is poisoned"))?;
        Ok(f(rooms.entry(event).or_default()))
    }
}

#[async_trait]
impl QueueStore for MemoryQueue {
    async fn join(
        &self,
        event: EventId,
        buyer: UserId,
        now_ms: i64,
        opens_at_ms: i64,
    ) -> anyhow::Result<(bool, Standing)> {
        self.with(event, |room| {
            match room.standing(buyer, now_ms) {
                Some(Standing::Expired { .. }) => {
                    room.admitted.remove(&buyer);
                    if room.unused.remove(&buyer).is_some() {
                        room.expired_total += 1;
                    }
                }
                Some(standing) => return (false, standing),
                None => {}
            }
            if room.draw == Draw::NotYet && now_ms < opens_at_ms {
                room.early.push(buyer);
                return (true, Standing::Early);
            }
            room.close();
            room.last += 1;
            room.waiting.insert(room.last, buyer);
            room.positions.insert(buyer, room.last);
            (true, room.standing(buyer, now_ms).unwrap_or(Standing::Early))
        })
    }

    async fn standing(&self, event: EventId, buyer: UserId, now_ms: i64) -> anyhow::Result<Option<Standing>> {
        self.with(event, |room| room.standing(buyer, now_ms))
    }

    async fn close_early(&self, event: EventId) -> anyhow::Result<Option<Vec<UserId>>> {
        self.with(event, |room| {
            room.close();
            (room.draw == Draw::Closing).then(|| room.early.clone())
        })
    }

    async fn place_drawn(&self, event: EventId, drawn: &[UserId]) -> anyhow::Result<()> {
        self.with(event, |room| {
            if room.draw != Draw::Closing {
                return;
            }
            for (position, buyer) in (1..).zip(drawn) {
                room.waiting.insert(position, *buyer);
                room.positions.insert(*buyer, position);
            }
            room.early.clear();
            room.draw = Draw::Done;
        })
    }

    async fn admit(&self, event: EventId, now_ms: i64, limit: AdmitLimit) -> anyhow::Result<Vec<UserId>> {
        self.with(event, |room| {
            if room.draw != Draw::Done {
                return Vec::new();
            }
            let mut n = room.allowance.refill(limit.per_minute, now_ms);
            if let Some(cap) = limit.outstanding_at_most {
                let outstanding = room.unused.values().filter(|&&expiry| expiry > now_ms).count();
                n = n.min(cap - i64::try_from(outstanding).unwrap_or(i64::MAX));
            }
            let mut admitted = Vec::new();
            while i64::try_from(admitted.len()).unwrap_or(i64::MAX) < n {
                let Some((_, buyer)) = room.waiting.pop_first() else { break };
                room.admitted.insert(buyer, now_ms + limit.ttl_ms);
                room.unused.insert(buyer, now_ms + limit.ttl_ms);
                admitted.push(buyer);
            }
            let count = i64::try_from(admitted.len()).unwrap_or(i64::MAX);
            room.allowance.credit -= count as f64;
            room.admitted_total += count;
            admitted
        })
    }

    async fn counts(&self, event: EventId, now_ms: i64) -> anyhow::Result<QueueCounts> {
        self.with(event, |room| QueueCounts {
            queued: i64::try_from(room.waiting.len() + room.early.len()).unwrap_or(i64::MAX),
            admitted_total: room.admitted_total,
            outstanding: i64::try_from(room.unused.values().filter(|&&expiry| expiry > now_ms).count())
                .unwrap_or(i64::MAX),
            expired_total: room.expired_total,
        })
    }

    async fn count_expired(&self, event: EventId, before_ms: i64) -> anyhow::Result<(i64, i64)> {
        self.with(event, |room| {
            let unused = room.unused.len();
            room.unused.retain(|_, expiry| *expiry > before_ms);
            let counted = i64::try_from(unused - room.unused.len()).unwrap_or(i64::MAX);
            room.expired_total += counted;
            (counted, room.expired_total)
        })
    }

    async fn mark_used(&self, event: EventId, buyer: UserId) -> anyhow::Result<()> {
        self.with(event, |room| {
            room.unused.remove(&buyer);
        })
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}
