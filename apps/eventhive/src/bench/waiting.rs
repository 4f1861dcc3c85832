//! `--waiting-room`: the on-sale behind a waiting room. Untimed: the event gets a room (opening
//! far ahead), every buyer joins its queue, then the opening is moved to two seconds from now.
//! Timed: each buyer polls its place as often as `poll_after_secs` says until it is admitted
//! (then makes one purchase with its `Admission-Token`) or told `sold_out`. Measured: the
//! admission rate, the time from the opening to the last purchase, the polls it cost, and the
//! fairness of the order: early arrivals hold positions 1..n, uncorrelated with the order they
//! joined in (Spearman's rho), and the admitted buyers are always the front of the line.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use eventhive_platform::storage::{ms_to_rfc3339, now_ms};
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{
    FlashSale,
    setup::{Api, Buyer, Sale},
};

/// What a buyer learned from the queue.
#[derive(Debug, Clone, Default)]
struct Waited {
    /// The order in which its join was answered.
    joined: usize,
    position: Option<i64>,
    /// Since the opening.
    admitted_after: Option<Duration>,
}

/// The queue's side of the run; each buyer waits on it before it buys.
pub struct Gate {
    api: Api,
    event_id: String,
    opened: Instant,
    waited: Mutex<Vec<Waited>>,
    polls: AtomicU64,
    /// Polls in flight at once. 100,000 simulated buyers told to poll in the same second would
    /// otherwise open as many connections from one process; real ones come through many.
    in_flight: tokio::sync::Semaphore,
}

/// At most this many polls in flight from the load driver.
const POLLS_IN_FLIGHT: usize = 256;

/// What the queue measured.
pub struct QueueFigures {
    pub buyers: usize,
    pub admitted: usize,
    pub polls: u64,
    /// From the opening to the last admission seen.
    pub admitting_for: Duration,
    /// Spearman's rho between join order and drawn position over the early arrivals.
    pub rho: f64,
    /// Early arrivals hold positions 1..n exactly.
    pub positions_are_a_draw: bool,
    /// The admitted buyers hold positions 1..k: nobody was overtaken.
    pub admitted_are_the_front: bool,
}

impl QueueFigures {
    pub fn admissions_per_second(&self) -> f64 {
        let seconds = self.admitting_for.as_secs_f64();
        if seconds > 0.0 { self.admitted as f64 / seconds } else { 0.0 }
    }
}

async fn put_room(api: &Api, sale: &Sale, opens_at_ms: i64, admit_per_minute: Option<i64>) -> anyhow::Result<()> {
    let body = json!({"opens_at": ms_to_rfc3339(opens_at_ms), "admit_per_minute": admit_per_minute});
    let response = api
        .client
        .put(format!("{}/v1/events/{}/waiting-room", api.url, sale.event().id))
        .bearer_auth(&sale.organizer.token)
        .json(&body)
        .send()
        .await
        .context("PUT waiting-room")?;
    anyhow::ensure!(response.status() == 200, "PUT waiting-room answered {}", response.status());
    Ok(())
}

/// Puts the room, lets every buyer join before the opening, then opens it in two seconds.
pub async fn open(api: &Api, sale: &Sale, options: &FlashSale) -> anyhow::Result<Arc<Gate>> {
    put_room(api, sale, now_ms() + 3_600_000, options.admit_per_minute).await?;
    let order = Arc::new(AtomicU64::new(0));
    let path = format!("/v1/events/{}/queue", sale.event().id);
    let joins: Vec<anyhow::Result<(usize, usize)>> = stream::iter(sale.buyers.iter().enumerate())
        .map(|(index, buyer)| {
            let (order, path) = (order.clone(), path.clone());
            async move {
                let (status, answer) = api.post(&path, Some(&buyer.token), None, &json!({})).await?;
                anyhow::ensure!(status == 201, "joining answered {status}: {answer}");
                Ok((index, usize::try_from(order.fetch_add(1, Ordering::SeqCst))?))
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut waited = vec![Waited::default(); sale.buyers.len()];
    for join in joins {
        let (index, joined) = join?;
        waited[index].joined = joined;
    }
    put_room(api, sale, now_ms() + 2000, options.admit_per_minute).await?;
    Ok(Arc::new(Gate {
        api: api.clone(),
        event_id: sale.event().id.clone(),
        opened: Instant::now() + Duration::from_secs(2),
        waited: Mutex::new(waited),
        polls: AtomicU64::new(0),
        in_flight: tokio::sync::Semaphore::new(POLLS_IN_FLIGHT),
    }))
}

impl Gate {
    /// Polls as told until admitted (the token) or sold out (`None`).
    pub async fn wait(&self, index: usize, buyer: &Buyer) -> Option<String> {
        let path = format!("/v1/events/{}/queue", self.event_id);
        loop {
            self.polls.fetch_add(1, Ordering::Relaxed);
            let polled = match self.in_flight.acquire().await {
                Ok(_permit) => self.api.get(&path, Some(&buyer.token)).await,
                Err(closed) => Err(closed.into()),
            };
            let Ok((200, place)) = polled else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            if let Some(position) = place["position"].as_i64() {
                self.waited.lock().await[index].position = Some(position);
            }
            match place["status"].as_str() {
                Some("admitted") => {
                    let mut waited = self.waited.lock().await;
                    waited[index].admitted_after = Some(self.opened.elapsed());
                    return place["admission"]["token"].as_str().map(str::to_owned);
                }
                Some("sold_out" | "expired") => return None,
                _ => {}
            }
            let after = place["poll_after_secs"].as_u64().unwrap_or(1).max(1);
            tokio::time::sleep(Duration::from_secs(after)).await;
        }
    }

    pub async fn figures(&self) -> QueueFigures {
        let waited = self.waited.lock().await.clone();
        let n = waited.len();
        let mut positions: Vec<i64> = waited.iter().filter_map(|w| w.position).collect();
        positions.sort_unstable();
        let positions_are_a_draw = positions == (1..=i64::try_from(n).unwrap_or(0)).collect::<Vec<_>>();
        let mut admitted: Vec<i64> =
            waited.iter().filter(|w| w.admitted_after.is_some()).filter_map(|w| w.position).collect();
        admitted.sort_unstable();
        let admitted_are_the_front = admitted == (1..=i64::try_from(admitted.len()).unwrap_or(0)).collect::<Vec<_>>();
        let pairs: Vec<(f64, f64)> =
            waited.iter().filter_map(|w| w.position.map(|p| (w.joined as f64 + 1.0, p as f64))).collect();
        QueueFigures {
            buyers: n,
            admitted: waited.iter().filter(|w| w.admitted_after.is_some()).count(),
            polls: self.polls.load(Ordering::Relaxed),
            admitting_for: waited.iter().filter_map(|w| w.admitted_after).max().unwrap_or_default(),
            rho: spearman(&pairs),
            positions_are_a_draw,
            admitted_are_the_front,
        }
    }
}

/// Spearman's rho of two rankings without ties (1..n each): 1 − 6 Σd² / (n(n² − 1)).
fn spearman(pairs: &[(f64, f64)]) -> f64 {
    let n = pairs.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let d2: f64 = pairs.iter().map(|(a, b)| (a - b).powi(2)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

pub fn json(figures: &QueueFigures) -> Value {
    json!({
        "buyers": figures.buyers,
        "admitted": figures.admitted,
        "admissions_per_second": figures.admissions_per_second(),
        "seconds_admitting": figures.admitting_for.as_secs_f64(),
        "polls": figures.polls,
        "polls_per_buyer": figures.polls as f64 / figures.buyers.max(1) as f64,
        "join_order_vs_position_spearman_rho": figures.rho,
        "positions_are_a_draw": figures.positions_are_a_draw,
        "admitted_are_the_front": figures.admitted_are_the_front,
    })
}
