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
//! 3. **Admit**: at `admit_per_minute`, or automatically: in steps paced by how fast the sale
//!    answers ([`crate::pace`], at most `EVENTHIVE_WAITING_ROOM_AUTO_ADMIT_PER_SEC` a second),
//!    and never more admitted buyers with a valid admission than tickets available: a closed
//!    loop on what is left to buy, which the holds of admitted buyers shrink and expired holds
//!    give back. The queue store admits atomically, so replicas share the rate and never admit
//!    a place twice.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use eventhive_domain::{
    EventId,
    events::{BuyersAdmitted, WaitingRoomOpened, WaitingRoomSoldOut},
};
use eventhive_platform::grpc::Channel;
use eventhive_platform::{
    grpc,
    outbox::{OutboxRelay, enqueue},
    storage::{from_ms, now_ms},
};
use eventhive_proto::ticketing::{GetAvailabilityRequest, ticketing_client::TicketingClient};
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE, draw,
    pace::Pace,
    queue::{AdmitLimit, QueueStore},
    repository::{RoomRow, Rooms},
};

/// What one step did, for tests and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub opened: usize,
    pub admitted: usize,
    pub sold_out: usize,
    pub resumed: usize,
}

#[derive(Clone)]
pub struct AdmissionLoop {
    rooms: Rooms,
    queue: Arc<dyn QueueStore>,
    ticketing: TicketingClient<Channel>,
    relay: OutboxRelay,
    pace: Pace,
}

impl AdmissionLoop {
    pub fn new(
        rooms: Rooms,
        queue: Arc<dyn QueueStore>,
        ticketing: TicketingClient<Channel>,
        relay: OutboxRelay,
        pace: Pace,
    ) -> Self {
        Self { rooms, queue, ticketing, relay, pace }
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
        let counts = self.queue.counts(event, now_ms).await?;
        let was_sold_out = room.sold_out_at.is_some();
        if counts.queued == 0 && !was_sold_out {
            return Ok(());
        }
        // Ticketing has not heard of the event's tickets yet (its copy of catalog lags): no
        // signal, so no decision this tick.
        let asked = Instant::now();
        let Some((available, held)) = self.availability(event).await? else { return Ok(()) };
        let answered_in = asked.elapsed();
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
            None => AdmitLimit {
                per_minute: self.pace.next(event, answered_in) * 60,
                outstanding_at_most: Some(available),
                ttl_ms,
            },
        };
        let admitted = self.queue.admit(event, now_ms, limit).await?;
        if !admitted.is_empty() {
            step.admitted += admitted.len();
            metrics::counter!("eventhive_waiting_room_admitted_total").increment(u64::try_from(admitted.len())?);
            let counts = self.queue.counts(event, now_ms).await?;
            let announced = BuyersAdmitted {
                event_id: event,
                admitted: i64::try_from(admitted.len())?,
                admitted_total: counts.admitted_total,
                queued: counts.queued,
                at: from_ms(now_ms),
            };
            let mut conn = self.rooms.db().pool().acquire().await?;
            enqueue(&mut conn, SERVICE, &announced, None).await?;
            self.relay.wake();
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
            self.relay.wake();
        }
        self.queue.place_drawn(event, &drawn).await?;
        Ok(opened)
    }

    /// The event's tickets available and held, over every ticket type; `None` while ticketing
    /// knows none of its ticket types.
    async fn availability(&self, event: EventId) -> anyhow::Result<Option<(i64, i64)>> {
        let request = grpc::request(GetAvailabilityRequest { event_id: event.to_string() }, None);
        let types = self.ticketing.clone().get_availability(request).await?.into_inner().ticket_types;
        Ok((!types.is_empty())
            .then(|| types.iter().fold((0, 0), |(available, held), t| (available + t.available, held + t.held))))
    }

    async fn mark_sold_out(&self, event: EventId, sold_out: bool, now_ms: i64) -> anyhow::Result<bool> {
        let mut tx = self.rooms.db().pool().begin().await?;
        let changed = self.rooms.mark_sold_out(&mut tx, event, sold_out, now_ms).await?;
        if changed {
            enqueue(&mut tx, SERVICE, &WaitingRoomSoldOut { event_id: event, sold_out, at: from_ms(now_ms) }, None)
                .await?;
        }
        tx.commit().await?;
        self.relay.wake();
        Ok(changed)
    }
}
