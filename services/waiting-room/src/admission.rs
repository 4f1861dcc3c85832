//! The admission loop: every tick (`EVENTHIVE_WAITING_ROOM_TICK_MS`, 1 s) in every replica, for
//! each room whose opening has come:
//!
//! 1. **Draw**, once: the early arrivals are closed, the recorded seed orders them
//!    ([`crate::draw`]), the room is marked opened (announcing `WaitingRoomOpened` through the
//!    outbox), then the positions are placed. Every step is repeatable, so a crash anywhere, or
//!    two replicas at once, give the same order.
//! 2. **Sale's signals**: ticketing's available and held counts. None available and none held:
//!    the room is sold out and every waiting place says so; tickets back (holds expired): the
//!    room resumes. Each transition is announced once (`WaitingRoomSoldOut`).
//! 3. **Admit**: at `admit_per_minute`, or automatically: in steps paced by the sale's own
//!    purchase p99 ([`crate::pace`], from the reports of [`crate::signals`], at most
//!    `EVENTHIVE_WAITING_ROOM_AUTO_ADMIT_PER_SEC` a second), and never more admitted buyers
//!    with a valid admission than tickets available: a closed loop on what is left to buy,
//!    which the holds of admitted buyers shrink and expired holds give back. The queue store
//!    admits atomically, so replicas share the rate and never admit a place twice. The step is
//!    announced (`BuyersAdmitted`), also when it admitted none but the queue's length changed.
//! 4. **Expiries**: admissions that ran out unused (no order placed with them) are counted once
//!    [`EXPIRY_GRACE_MS`] after they ran out, and the new total announced (`AdmissionsExpired`).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use eventhive_domain::{
    EventId,
    events::{AdmissionsExpired, BuyersAdmitted, DomainEvent, WaitingRoomOpened, WaitingRoomSoldOut},
};
use eventhive_platform::grpc::Channel;
use eventhive_platform::{
    grpc,
    outbox::{OutboxRelay, enqueue},
    storage::{from_ms, now_ms},
};
use eventhive_proto::ticketing::{GetAvailabilityRequest, PurchaseLatency, ticketing_client::TicketingClient};
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE, draw,
    pace::Pace,
    queue::{AdmitLimit, QueueStore},
    repository::{RoomRow, Rooms},
    signals::SaleSignals,
};

/// How long after an admission ran out it is counted as unused: an order placed just before
/// it ran out is still on its way (ticketing's `order_placed`, through the bus) for a moment.
pub const EXPIRY_GRACE_MS: i64 = 10_000;

/// What one step did, for tests and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub opened: usize,
    pub admitted: usize,
    pub sold_out: usize,
    pub resumed: usize,
    /// Admissions counted as run out unused.
    pub expired: usize,
    /// The automatic rate's step of each automatic room stepped this pass, buyers a second.
    pub paces: BTreeMap<EventId, i64>,
}

/// What this replica last announced of a room: it announces what changed.
#[derive(Debug, Clone, Copy, Default)]
struct Announced {
    queued: Option<i64>,
    expired_total: i64,
}

#[derive(Clone)]
pub struct AdmissionLoop {
    rooms: Rooms,
    queue: Arc<dyn QueueStore>,
    ticketing: TicketingClient<Channel>,
    relay: OutboxRelay,
    pace: Pace,
    /// The purchase latency each ticketing replica reported last.
    signals: SaleSignals,
    announced: Arc<Mutex<HashMap<EventId, Announced>>>,
}

impl AdmissionLoop {
    pub fn new(
        rooms: Rooms,
        queue: Arc<dyn QueueStore>,
        ticketing: TicketingClient<Channel>,
        relay: OutboxRelay,
        pace: Pace,
    ) -> Self {
        Self { rooms, queue, ticketing, relay, pace, signals: SaleSignals::default(), announced: Arc::default() }
    }

    fn announced(&self) -> std::sync::MutexGuard<'_, HashMap<EventId, Announced>> {
        // Plain values, each set in one statement: nothing is left half-changed by a panic.
        self.announced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `event` to the outbox and wakes the relay.
    async fn announce<E: DomainEvent>(&self, event: &E) -> anyhow::Result<()> {
        let mut conn = self.rooms.db().pool().acquire().await?;
        enqueue(&mut conn, SERVICE, event, None).await?;
        self.relay.wake();
        Ok(())
    }

    /// Steps every `tick` until `shutdown`. A failed step is logged and retried at the next.
    pub async fn run(self, tick: Duration, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {
                    if let Err(error) = self.step(now_ms()).await {
                        tracing::warn!(error = format!("{error:#}"), "waiting room admission step failed");
                    }
                }
            }
        }
    }

    /// One pass over the rooms due at `now_ms`.
    pub async fn step(&self, now_ms: i64) -> anyhow::Result<Step> {
        let mut step = Step::default();
        for room in self.rooms.due(now_ms).await? {
            let event = EventId::parse(&room.event_id).context("stored event id")?;
            if let Err(error) = self.step_room(&room, event, now_ms, &mut step).await {
                tracing::warn!(%event, error = format!("{error:#}"), "admission step of a room failed");
            }
        }
        Ok(step)
    }

    async fn step_room(&self, room: &RoomRow, event: EventId, now_ms: i64, step: &mut Step) -> anyhow::Result<()> {
        if self.draw(room, event, now_ms).await? {
            step.opened += 1;
            metrics::counter!("eventhive_waiting_room_transitions_total", "to" => "opened").increment(1);
        }
        self.count_expired(event, now_ms, step).await?;
        let counts = self.queue.counts(event, now_ms).await?;
        let was_sold_out = room.sold_out_at.is_some();
        if counts.queued == 0 && !was_sold_out {
            return Ok(());
        }
        // Ticketing has not heard of the event's tickets yet (its copy of catalog lags): no
        // signal, so no decision this tick.
        let Some((available, held, purchases)) = self.availability(event).await? else { return Ok(()) };
        if let Some(purchases) = purchases {
            self.signals.hear(purchases, Instant::now());
        }
        let sold_out = available == 0 && held == 0;
        if sold_out != was_sold_out && self.mark_sold_out(event, sold_out, now_ms).await? {
            let to = if sold_out {
                step.sold_out += 1;
                "sold_out"
            } else {
                step.resumed += 1;
                "resumed"
            };
            metrics::counter!("eventhive_waiting_room_transitions_total", "to" => to).increment(1);
        }
        if sold_out {
            return Ok(());
        }
        let ttl_ms = room.admission_ttl_secs * 1000;
        let limit = match room.admit_per_minute {
            Some(per_minute) => AdmitLimit { per_minute, outstanding_at_most: None, ttl_ms },
            None => {
                let signal = self.signals.combined(Instant::now());
                let per_sec = self.pace.next(event, signal.purchase_p99);
                tracing::debug!(%event, per_sec, p99 = ?signal.purchase_p99,
                    orders_per_sec = signal.orders_completed_per_sec, "automatic step");
                step.paces.insert(event, per_sec);
                AdmitLimit { per_minute: per_sec * 60, outstanding_at_most: Some(available), ttl_ms }
            }
        };
        let admitted = self.queue.admit(event, now_ms, limit).await?;
        let counts = if admitted.is_empty() { counts } else { self.queue.counts(event, now_ms).await? };
        let last = self.announced().get(&event).copied().unwrap_or_default();
        if admitted.is_empty() && last.queued == Some(counts.queued) {
            return Ok(());
        }
        step.admitted += admitted.len();
        metrics::counter!("eventhive_waiting_room_admitted_total").increment(u64::try_from(admitted.len())?);
        self.announce(&BuyersAdmitted {
            event_id: event,
            admitted: i64::try_from(admitted.len())?,
            admitted_total: counts.admitted_total,
            queued: counts.queued,
            at: from_ms(now_ms),
        })
        .await?;
        self.announced().entry(event).or_default().queued = Some(counts.queued);
        Ok(())
    }

    /// Counts the admissions that ran out unused, and announces a total this replica has not.
    async fn count_expired(&self, event: EventId, now_ms: i64, step: &mut Step) -> anyhow::Result<()> {
        let (expired, expired_total) = self.queue.count_expired(event, now_ms - EXPIRY_GRACE_MS).await?;
        step.expired += usize::try_from(expired)?;
        let last = self.announced().get(&event).copied().unwrap_or_default();
        if expired_total > last.expired_total {
            self.announce(&AdmissionsExpired { event_id: event, expired, expired_total, at: from_ms(now_ms) }).await?;
            self.announced().entry(event).or_default().expired_total = expired_total;
        }
        Ok(())
    }

    /// Draws the early arrivals' order if the queue has not been drawn yet; `true` if this call
    /// marked the room opened.
    async fn draw(&self, room: &RoomRow, event: EventId, now_ms: i64) -> anyhow::Result<bool> {
        let Some(early) = self.queue.close_early(event).await? else { return Ok(false) };
        let seed = match &room.draw_seed {
            Some(seed) => seed.clone(),
            None => self.rooms.record_seed(event, &draw::seed_to_text(draw::new_seed())).await?,
        };
        let drawn = draw::draw(draw::seed_from_text(&seed).context("the recorded draw seed")?, early);
        let mut opened = false;
        if room.opened_at.is_none() {
            let mut tx = self.rooms.db().pool().begin().await?;
            let early_arrivals = i64::try_from(drawn.len())?;
            if self.rooms.mark_opened(&mut tx, event, early_arrivals, now_ms).await? {
                let announced =
                    WaitingRoomOpened { event_id: event, opened_at: from_ms(now_ms), early_arrivals, draw_seed: seed };
                enqueue(&mut tx, SERVICE, &announced, None).await?;
                opened = true;
            }
            tx.commit().await?;
            self.rooms.forget(event);
            self.relay.wake();
        }
        self.queue.place_drawn(event, &drawn).await?;
        Ok(opened)
    }

    /// The event's tickets available and held, over every ticket type, and the purchase
    /// latency of the ticketing replica that answered; `None` while ticketing knows none of
    /// the event's ticket types.
    async fn availability(&self, event: EventId) -> anyhow::Result<Option<(i64, i64, Option<PurchaseLatency>)>> {
        let request = grpc::request(GetAvailabilityRequest { event_id: event.to_string() }, None);
        let answer = self.ticketing.clone().get_availability(request).await?.into_inner();
        if answer.ticket_types.is_empty() {
            return Ok(None);
        }
        let (available, held) =
            answer.ticket_types.iter().fold((0, 0), |(available, held), t| (available + t.available, held + t.held));
        Ok(Some((available, held, answer.purchases)))
    }

    async fn mark_sold_out(&self, event: EventId, sold_out: bool, now_ms: i64) -> anyhow::Result<bool> {
        let mut tx = self.rooms.db().pool().begin().await?;
        let changed = self.rooms.mark_sold_out(&mut tx, event, sold_out, now_ms).await?;
        if changed {
            enqueue(&mut tx, SERVICE, &WaitingRoomSoldOut { event_id: event, sold_out, at: from_ms(now_ms) }, None)
                .await?;
        }
        tx.commit().await?;
        self.rooms.forget(event);
        self.relay.wake();
        Ok(changed)
    }
}
