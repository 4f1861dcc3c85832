//! The live figures of one event for one reader: a stream that sends them at once, then
//! whenever the event's shared figures ([`crate::fanout`]) change to something else than what
//! this stream sent last, and again after a quiet while so that a live stream can be told from
//! a dead one. While it stays open it re-checks, every so often, that its reader is still a
//! member of the event's organization, and ends when they are not.

use std::{sync::Arc, time::Duration};

use eventhive_domain::EventId;
use eventhive_platform::shutdown::CancellationToken;
use eventhive_proto::{analytics::EventAnalytics, common::Actor};
use futures::{
    StreamExt,
    stream::{self, BoxStream},
};
use tokio::{
    sync::watch,
    time::{Instant, Interval, MissedTickBehavior},
};
use tonic::Status;

use crate::{
    access::{self, Memberships},
    error::AnalyticsError,
    fanout::{Hub, Latest, Permit},
};

/// How a live stream keeps up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchTiming {
    /// How often a watched event's version is polled where no notification tells of changes
    /// (SQLite): the bound on how late a change from another process is seen. Once per event
    /// per replica, whatever the number of streams.
    pub poll: Duration,
    /// How often it is polled anyway where notifications do tell (PostgreSQL), in case one was
    /// lost while the listener reconnected.
    pub resync: Duration,
    /// Unchanged figures are sent again after this long, so that proxies and clients can tell
    /// a quiet stream from a dead one.
    pub keep_alive: Duration,
    /// How often an open stream re-checks its reader's memberships: the bound on how long a
    /// removed member keeps receiving.
    pub recheck: Duration,
}

impl Default for WatchTiming {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            resync: Duration::from_secs(5),
            keep_alive: Duration::from_secs(15),
            recheck: Duration::from_secs(5),
        }
    }
}

/// Re-checks that fail in a row (identity unreachable) before the stream ends: a blip does not
/// drop every dashboard, but nobody reads on unchecked for long.
const RECHECK_FAILURES_TOLERATED: u32 = 3;

/// The figures of `event_id` now, then each change of them until `shutdown`, for `actor`, who
/// must have been authorized for the event. Refused when a cap on open streams is reached.
pub async fn watch(
    hub: &Hub,
    memberships: Arc<dyn Memberships>,
    actor: &Actor,
    event_id: EventId,
) -> Result<BoxStream<'static, Result<EventAnalytics, Status>>, AnalyticsError> {
    let permit = hub.admit(&actor.user_id, event_id)?;
    let mut figures = hub.subscribe(event_id).await?;
    let first = figures.borrow_and_update().figures.clone();
    let timing = hub.timing();
    let mut recheck = tokio::time::interval_at(Instant::now() + timing.recheck, timing.recheck);
    recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watch = Watch {
        figures,
        _permit: permit,
        memberships,
        user_id: actor.user_id.clone(),
        shutdown: hub.shutdown(),
        timing,
        recheck,
        recheck_failures: 0,
        last: first.clone(),
        last_sent: Instant::now(),
        ended: false,
    };
    // When the client hangs up, tonic drops the stream, and the watch with it.
    let updates = stream::unfold(watch, |mut watch| async move { watch.next().await.map(|item| (item, watch)) });
    Ok(stream::once(async move { Ok(first) }).chain(updates).boxed())
}

/// A live stream's state between two messages.
struct Watch {
    /// The event's figures, shared with every stream of it on this replica.
    figures: watch::Receiver<Arc<Latest>>,
    /// This stream's place under the caps, given back when the stream is dropped.
    _permit: Permit,
    memberships: Arc<dyn Memberships>,
    /// The reader, whose memberships are re-checked.
    user_id: String,
    /// The service's shutdown: an open stream would otherwise hold the server's drain.
    shutdown: CancellationToken,
    timing: WatchTiming,
    recheck: Interval,
    /// Re-checks that failed in a row.
    recheck_failures: u32,
    /// The figures sent last: new figures are sent only if they differ.
    last: EventAnalytics,
    /// When anything was sent last, for the keep-alive.
    last_sent: Instant,
    /// Set once the stream sent its final error.
    ended: bool,
}

impl Watch {
    /// The next message; `None` ends the stream.
    async fn next(&mut self) -> Option<Result<EventAnalytics, Status>> {
        if self.ended {
            return None;
        }
        loop {
            let keep_alive = self.last_sent + self.timing.keep_alive;
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                changed = self.figures.changed() => {
                    // The channel is dropped only at shutdown.
                    changed.ok()?;
                    let latest = self.figures.borrow_and_update().figures.clone();
                    if latest != self.last {
                        return Some(Ok(self.send(latest)));
                    }
                }
                () = tokio::time::sleep_until(keep_alive) => return Some(Ok(self.send(self.last.clone()))),
                _ = self.recheck.tick() => {
                    if let Err(error) = self.recheck().await {
                        self.ended = true;
                        return Some(Err(error.into()));
                    }
                }
            }
        }
    }

    fn send(&mut self, figures: EventAnalytics) -> EventAnalytics {
        self.last = figures.clone();
        self.last_sent = Instant::now();
        figures
    }

    /// Whether the reader may go on reading: an error ends the stream.
    async fn recheck(&mut self) -> Result<(), AnalyticsError> {
        let organization_id = self.figures.borrow().organization_id.clone();
        match access::may_still_read(self.memberships.as_ref(), &self.user_id, &organization_id).await {
            Ok(true) => {
                self.recheck_failures = 0;
                Ok(())
            }
            Ok(false) => {
                tracing::info!(user_id = %self.user_id, "reader is no longer a member; ending the stream");
                Err(AnalyticsError::NotAllowed)
            }
            Err(error) => {
                self.recheck_failures += 1;
                tracing::warn!(
                    error = format!("{error:#}"),
                    failures = self.recheck_failures,
                    "cannot re-check a reader"
                );
                if self.recheck_failures >= RECHECK_FAILURES_TOLERATED {
                    Err(AnalyticsError::MembershipsUnavailable)
                } else {
                    Ok(())
                }
            }
        }
    }
}
