//! `--analytics-streams N`: the organizers watching the on-sale live. Before the race, N live
//! analytics streams (`GET /v1/events/{id}/analytics/stream`) are opened on the event and each
//! is drained by a task of its own, counting the figures it receives, until the race is over.
//! Run with 0 and with N to see what watching costs the sale (issue 17 asks for less than 5%
//! at 100 streams).
//!
//! A user may hold only a few streams at once (the analytics service's per-user cap, 10 by
//! default), so the streams are spread over staff members added to the organization, as a real
//! organization's dashboards would be.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::setup::{self, Api, Sale};

/// Streams one watcher holds; at most the analytics service's default per-user cap.
const STREAMS_PER_WATCHER: usize = 10;

/// The open streams, counting what they receive.
pub struct Watchers {
    streams: usize,
    received: Arc<AtomicU64>,
    /// Streams the server ended before the race did: a stream must stay open for the sale.
    ended_early: Arc<AtomicU64>,
    tasks: JoinSet<()>,
}

/// What the streams saw.
#[derive(Debug, Clone, Copy)]
pub struct WatchFigures {
    pub streams: usize,
    pub received: u64,
    pub ended_early: u64,
}

impl WatchFigures {
    pub fn json(&self) -> Value {
        json!({"streams": self.streams, "figures_received": self.received, "ended_early": self.ended_early})
    }
}

/// Opens `streams` live streams on the sale's event; returns once every one answered 200.
pub async fn open(api: &Api, sale: &Sale, streams: usize) -> anyhow::Result<Watchers> {
    let mut watchers =
        Watchers { streams, received: Arc::default(), ended_early: Arc::default(), tasks: JoinSet::new() };
    let path = format!("/v1/events/{}/analytics/stream", sale.event().id);
    for index in 0..streams.div_ceil(STREAMS_PER_WATCHER) {
        let watcher = setup::staff_member(api, sale, &format!("watcher{index}")).await?;
        let count = STREAMS_PER_WATCHER.min(streams - index * STREAMS_PER_WATCHER);
        for _ in 0..count {
            let response = api
                .client
                .get(format!("{}{path}", api.url))
                .bearer_auth(&watcher.token)
                // The client's whole-request timeout would end a stream that is meant to stay.
                .timeout(std::time::Duration::from_secs(24 * 3600))
                .send()
                .await
                .with_context(|| format!("GET {path}"))?;
            let status = response.status();
            anyhow::ensure!(status.is_success(), "GET {path} answered {status}: {}", response.text().await?);
            let received = watchers.received.clone();
            let ended_early = watchers.ended_early.clone();
            watchers.tasks.spawn(async move {
                drain(response, &received).await;
                ended_early.fetch_add(1, Ordering::Relaxed);
            });
        }
    }
    Ok(watchers)
}

/// Reads a stream to its end, counting its `analytics` events (keep-alives are comments).
async fn drain(mut response: reqwest::Response, received: &AtomicU64) {
    let mut pending = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        pending.extend_from_slice(&chunk);
        // Only whole lines are looked at: a chunk may end in the middle of one.
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            if pending.starts_with(b"event: analytics") || pending.starts_with(b"event:analytics") {
                received.fetch_add(1, Ordering::Relaxed);
            }
            pending.drain(..=end);
        }
    }
}

impl Watchers {
    /// Closes every stream and gives what they received.
    pub async fn close(mut self) -> WatchFigures {
        // Read before the tasks are aborted: an abort is not a stream the server ended.
        let ended_early = self.ended_early.load(Ordering::Relaxed);
        self.tasks.shutdown().await;
        WatchFigures { streams: self.streams, received: self.received.load(Ordering::Relaxed), ended_early }
    }
}
