//! The live figures of one event: a stream that sends them at once, then whenever they change
//! (woken by this replica's projection, or by polling the event's version for changes made
//! elsewhere), and again after a quiet while so that a live stream can be told from a dead one.

use std::time::Duration;

use eventhive_domain::EventId;
use eventhive_platform::shutdown::CancellationToken;
use eventhive_proto::analytics::EventAnalytics;
use futures::{
    StreamExt,
    stream::{self, BoxStream},
};
use tokio::{
    sync::broadcast::{self, error::RecvError},
    time::{Instant, Interval, MissedTickBehavior},
};

use crate::{error::AnalyticsError, figures, projection::Projection, repository};

/// How a live stream keeps up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchTiming {
    /// How often a stream looks at its event's version: the bound on how late an update from
    /// another replica (or a rebuild from the CLI) is seen.
    pub poll: Duration,
    /// Unchanged figures are sent again after this long, so that proxies and clients can tell
    /// a quiet stream from a dead one.
    pub keep_alive: Duration,
}

impl Default for WatchTiming {
    fn default() -> Self {
        Self { poll: Duration::from_millis(250), keep_alive: Duration::from_secs(15) }
    }
}

/// The figures of `event_id` now, then each change of them until `shutdown`. The caller must
/// have been authorized for the event.
pub async fn watch(
    projection: &Projection,
    event_id: EventId,
    timing: WatchTiming,
    shutdown: CancellationToken,
) -> Result<BoxStream<'static, EventAnalytics>, AnalyticsError> {
    // Listen and read the version before the figures: a change landing in between is then
    // seen as a change, never lost.
    let changes = projection.changes();
    let version = repository::version(projection.db(), event_id).await?;
    let first: EventAnalytics =
        figures::load(projection.db(), event_id).await?.ok_or(AnalyticsError::EventNotFound)?.into();
    let mut ticker = tokio::time::interval(timing.poll);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watch = Watch {
        projection: projection.clone(),
        event_id,
        changes,
        shutdown,
        ticker,
        timing,
        version,
        last: first.clone(),
        last_sent: Instant::now(),
        last_look: Instant::now(),
    };
    // When the client hangs up, tonic drops the stream, and the watch with it.
    let updates = stream::unfold(watch, |mut watch| async move { watch.next().await.map(|item| (item, watch)) });
    Ok(stream::once(async move { first }).chain(updates).boxed())
}

/// A live stream's state between two messages.
struct Watch {
    projection: Projection,
    /// The event watched; the caller was authorized for it when the stream opened.
    event_id: EventId,
    /// Wakes the stream early when this replica changed some event's figures.
    changes: broadcast::Receiver<EventId>,
    /// The service's shutdown: an open stream would otherwise hold the server's drain.
    shutdown: CancellationToken,
    /// The poll, which sees changes made by other replicas and makes the keep-alive due.
    ticker: Interval,
    timing: WatchTiming,
    /// The event's version when the figures last sent were read.
    version: Option<i64>,
    /// The figures sent last: a new version is sent only if the figures differ.
    last: EventAnalytics,
    /// When anything was sent last, for the keep-alive.
    last_sent: Instant,
    /// When the version was last read; bounds the reads a burst of changes causes.
    last_look: Instant,
}

impl Watch {
    /// Early wakes closer together than this wait for the next look: during a flash sale one
    /// event changes hundreds of times a second, and each stream needs only a few looks.
    const MIN_GAP: Duration = Duration::from_millis(50);

    /// The next figures to send; `None` ends the stream (the service is stopping).
    async fn next(&mut self) -> Option<EventAnalytics> {
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                _ = self.ticker.tick() => {}
                woke = self.changes.recv() => match woke {
                    Ok(event_id) if event_id != self.event_id => continue,
                    Ok(_) if self.last_look.elapsed() < Self::MIN_GAP => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    // The sender lives in the projection this watch holds: it cannot close.
                    Err(RecvError::Closed) => return None,
                },
            }
            match self.look().await {
                Ok(Some(figures)) => return Some(figures),
                Ok(None) => {}
                // The database may be back at the next look; the client keeps its last figures.
                Err(error) => {
                    tracing::warn!(event_id = %self.event_id, error = format!("{error:#}"), "cannot refresh figures")
                }
            }
        }
    }

    /// Figures to send now: changed ones, or unchanged ones when the keep-alive is due.
    async fn look(&mut self) -> anyhow::Result<Option<EventAnalytics>> {
        self.last_look = Instant::now();
        let keep_alive = self.last_sent.elapsed() >= self.timing.keep_alive;
        let version = repository::version(self.projection.db(), self.event_id).await?;
        if version == self.version && !keep_alive {
            return Ok(None);
        }
        let Some(figures) = figures::load(self.projection.db(), self.event_id).await? else {
            return Ok(None);
        };
        self.version = version;
        let figures = EventAnalytics::from(figures);
        // A version can move without the figures changing (an order placed after it was paid).
        if figures == self.last && !keep_alive {
            return Ok(None);
        }
        self.last = figures.clone();
        self.last_sent = Instant::now();
        Ok(Some(figures))
    }
}
