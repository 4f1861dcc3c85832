//! One computation per change, shared by every viewer. Each event watched on this replica has
//! one [`watch`] channel holding its latest figures and one task that refreshes them: woken by
//! this replica's projection, or by PostgreSQL's notification of a change committed anywhere
//! (see [`repository::bump_version`]), it reads the event's version and, if it moved, the
//! figures — once, whatever the number of open streams — and publishes them only if they
//! differ. The channel is created by the event's first stream and dropped with its last.
//!
//! Where no notification arrives (SQLite, whose other processes cannot notify, or while the
//! listener is down) the same task polls the version: one poll per watched event per replica,
//! never one per stream. With notifications it still looks every `resync`, in case one was lost
//! while the listener reconnected.
//!
//! The hub also counts open streams, per user and per event, against their caps.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use eventhive_domain::EventId;
use eventhive_platform::shutdown::CancellationToken;
use eventhive_proto::analytics::EventAnalytics;
use sqlx::postgres::PgListener;
use tokio::{
    sync::{Notify, OnceCell, broadcast::error::RecvError, watch},
    time::{Instant, MissedTickBehavior},
};

use crate::{error::AnalyticsError, figures, live::WatchTiming, projection::Projection, repository};

/// How many live streams may be open at once on one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCaps {
    /// Per user, over all events: one person's forgotten tabs cannot hold the replica.
    pub per_user: usize,
    /// Per event, over all users.
    pub per_event: usize,
}

impl Default for StreamCaps {
    fn default() -> Self {
        Self { per_user: 10, per_event: 500 }
    }
}

/// How live streams are fed and bounded.
#[derive(Debug, Clone, Default)]
pub struct LiveConfig {
    pub timing: WatchTiming,
    pub caps: StreamCaps,
    /// Analytics' PostgreSQL database, to LISTEN for changes made by other replicas; `None`
    /// (SQLite) polls instead.
    pub listen_url: Option<String>,
}

/// The latest figures of one event, as every stream of it on this replica sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    /// Whose members may read them, for the re-check of an open stream.
    pub organization_id: String,
    pub figures: EventAnalytics,
}

/// Early wakes closer together than this wait for the next look: during a flash sale one event
/// changes hundreds of times a second, and its viewers need only a few looks a second.
const MIN_GAP: Duration = Duration::from_millis(100);

/// The live streams of this replica: a channel per watched event, and the streams' counts.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    projection: Projection,
    config: LiveConfig,
    shutdown: CancellationToken,
    state: Mutex<State>,
    /// Whether PostgreSQL notifications reach this replica; the wake-up sources start with the
    /// first stream.
    notified: OnceCell<bool>,
}

#[derive(Default)]
struct State {
    channels: HashMap<EventId, Arc<Channel>>,
    streams_per_user: HashMap<String, usize>,
    streams_per_event: HashMap<EventId, usize>,
}

/// One watched event.
struct Channel {
    figures: watch::Sender<Arc<Latest>>,
    /// Tells the refresher to look now; a wake while it is busy is kept for its next turn.
    wake: Notify,
}

/// An open stream's place under the caps, given back when the stream is dropped.
pub struct Permit {
    inner: Arc<Inner>,
    user_id: String,
    event_id: EventId,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.inner.state();
        decrement(&mut state.streams_per_user, &self.user_id);
        decrement(&mut state.streams_per_event, &self.event_id);
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

impl Hub {
    pub fn new(projection: Projection, config: LiveConfig, shutdown: CancellationToken) -> Self {
        let inner = Inner { projection, config, shutdown, state: Mutex::default(), notified: OnceCell::new() };
        Self { inner: Arc::new(inner) }
    }

    pub fn timing(&self) -> WatchTiming {
        self.inner.config.timing
    }

    pub fn shutdown(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// A place for one more stream of `user_id` on `event_id`, if neither cap is reached.
    pub fn admit(&self, user_id: &str, event_id: EventId) -> Result<Permit, AnalyticsError> {
        let caps = self.inner.config.caps;
        let mut state = self.inner.state();
        if state.streams_per_user.get(user_id).copied().unwrap_or(0) >= caps.per_user {
            return Err(AnalyticsError::TooManyStreams { per: "user", limit: caps.per_user });
        }
        if state.streams_per_event.get(&event_id).copied().unwrap_or(0) >= caps.per_event {
            return Err(AnalyticsError::TooManyStreams { per: "event", limit: caps.per_event });
        }
        *state.streams_per_user.entry(user_id.to_owned()).or_default() += 1;
        *state.streams_per_event.entry(event_id).or_default() += 1;
        Ok(Permit { inner: self.inner.clone(), user_id: user_id.to_owned(), event_id })
    }

    /// The latest figures of `event_id`, kept up to date. The first stream of an event on this
    /// replica reads them; the others share what is there.
    pub async fn subscribe(&self, event_id: EventId) -> Result<watch::Receiver<Arc<Latest>>, AnalyticsError> {
        let notified = *self.inner.notified.get_or_init(|| self.inner.clone().start()).await;
        if let Some(channel) = self.inner.state().channels.get(&event_id) {
            return Ok(channel.figures.subscribe());
        }
        // The version before the figures: a change landing in between shows as a new version
        // at the refresher's first look.
        let db = self.inner.projection.db();
        let version = repository::version(db, event_id).await?;
        let latest = read(&self.inner.projection, event_id).await?.ok_or(AnalyticsError::EventNotFound)?;
        let mut state = self.inner.state();
        if let Some(channel) = state.channels.get(&event_id) {
            // Another stream of the event got here first; its figures are at least as new.
            return Ok(channel.figures.subscribe());
        }
        let (figures, receiver) = watch::channel(Arc::new(latest));
        let channel = Arc::new(Channel { figures, wake: Notify::new() });
        state.channels.insert(event_id, channel.clone());
        let timing = self.inner.config.timing;
        let period = if notified { timing.resync } else { timing.poll };
        tokio::spawn(refresh(self.inner.clone(), event_id, channel, version, period));
        Ok(receiver)
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should something, the counts are still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self, event_id: EventId) {
        if let Some(channel) = self.state().channels.get(&event_id) {
            channel.wake.notify_one();
        }
    }

    fn wake_all(&self) {
        for channel in self.state().channels.values() {
            channel.wake.notify_one();
        }
    }

    /// Drops the event's channel if no stream holds it any more; false if one arrived meanwhile.
    fn forget_if_unwatched(&self, event_id: EventId) -> bool {
        let mut state = self.state();
        match state.channels.get(&event_id) {
            Some(channel) if channel.figures.receiver_count() > 0 => false,
            _ => {
                state.channels.remove(&event_id);
                true
            }
        }
    }

    /// Starts the wake-up sources: this replica's projection and, on PostgreSQL, the listener
    /// for every replica's changes. Returns whether the listener is up, before the first stream
    /// subscribes, so that no change after it is missed.
    async fn start(self: Arc<Self>) -> bool {
        let local = self.clone();
        let mut changes = local.projection.changes();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = local.shutdown.cancelled() => return,
                    change = changes.recv() => match change {
                        Ok(event_id) => local.wake(event_id),
                        // Some wakes were lost: wake everyone, each will look at its version.
                        Err(RecvError::Lagged(_)) => local.wake_all(),
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        });
        let Some(url) = self.config.listen_url.clone() else { return false };
        let mut listener = match listen(&url).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "cannot listen for changes; polling instead");
                return false;
            }
        };
        let remote = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = remote.shutdown.cancelled() => return,
                    notification = listener.try_recv() => match notification {
                        Ok(Some(notification)) => match EventId::parse(notification.payload()) {
                            Ok(event_id) => remote.wake(event_id),
                            Err(_) => tracing::warn!(payload = notification.payload(), "not an event id"),
                        },
                        // The connection was lost, and with it any notification meanwhile; the
                        // next call reconnects.
                        Ok(None) => remote.wake_all(),
                        Err(error) => {
                            tracing::warn!(error = format!("{error:#}"), "listening for changes failed; retrying");
                            tokio::select! {
                                () = remote.shutdown.cancelled() => return,
                                () = tokio::time::sleep(Duration::from_secs(1)) => remote.wake_all(),
                            }
                        }
                    },
                }
            }
        });
        true
    }
}

async fn listen(url: &str) -> anyhow::Result<PgListener> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(repository::CHANGES_CHANNEL).await?;
    Ok(listener)
}

/// The refresher of one watched event: looks when woken, or every `period`, at most once per
/// [`MIN_GAP`], and publishes figures that differ. Ends with the last stream, or at shutdown.
async fn refresh(
    inner: Arc<Inner>,
    event_id: EventId,
    channel: Arc<Channel>,
    mut version: Option<i64>,
    period: Duration,
) {
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // A look at once: a change committed before the channel existed woke nobody.
    let mut due = true;
    let mut last_look = Instant::now();
    loop {
        if !due {
            tokio::select! {
                () = inner.shutdown.cancelled() => break,
                () = channel.figures.closed() => {
                    if inner.forget_if_unwatched(event_id) {
                        return;
                    }
                    continue;
                }
                () = channel.wake.notified() => {}
                _ = ticker.tick() => {}
            }
            let gap = MIN_GAP.saturating_sub(last_look.elapsed());
            if !gap.is_zero() {
                tokio::select! {
                    () = inner.shutdown.cancelled() => break,
                    () = tokio::time::sleep(gap) => {}
                }
            }
        }
        due = false;
        last_look = Instant::now();
        match look(&inner.projection, event_id, version).await {
            Ok(Some((new_version, latest))) => {
                version = new_version;
                channel.figures.send_if_modified(|current| {
                    let differs = **current != latest;
                    if differs {
                        *current = Arc::new(latest);
                    }
                    differs
                });
            }
            Ok(None) => {}
            // The database may be back at the next look; the streams keep their last figures.
            Err(error) => tracing::warn!(%event_id, error = format!("{error:#}"), "cannot refresh figures"),
        }
    }
    // Shutdown: the streams end on their own; drop the channel with them.
    inner.state().channels.remove(&event_id);
}

/// The version and figures of `event_id` if its version moved from `known`.
async fn look(
    projection: &Projection,
    event_id: EventId,
    known: Option<i64>,
) -> anyhow::Result<Option<(Option<i64>, Latest)>> {
    let version = repository::version(projection.db(), event_id).await?;
    if version == known {
        return Ok(None);
    }
    Ok(read(projection, event_id).await?.map(|latest| (version, latest)))
}

async fn read(projection: &Projection, event_id: EventId) -> anyhow::Result<Option<Latest>> {
    Ok(figures::load(projection.db(), event_id)
        .await?
        .map(|figures| Latest { organization_id: figures.organization_id.clone(), figures: figures.into() }))
}
