//! `--mode steady`: purchases arrive at a fixed rate, open loop, as buyers do whether or not
//! the platform keeps up. Purchase k is due at k / R seconds and is made by buyer k mod C (each
//! buyer's event, its ticket types in turn); its latency counts from when it was due, not from
//! when the driver got round to sending it, so a driver that falls behind cannot hide the
//! queueing (coordinated omission).

use std::{sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinSet, time::Instant};

use super::{
    progress::Progress,
    race::{self, Race, Tally},
    setup::{Api, Sale},
};

/// Purchases in flight at most. Waiting for one of these counts in the latency like any other
/// delay, since it is measured from the due time; it only keeps a stalled platform from
/// drawing the driver into opening thousands of connections.
const IN_FLIGHT: usize = 2048;

/// The purchases a steady run makes: `rate` per second for `duration`.
pub fn purchases(rate: f64, duration: Duration) -> u64 {
    (rate * duration.as_secs_f64()).round() as u64
}

pub async fn run(api: &Api, sale: &Sale, rate: f64, duration: Duration) -> Race {
    let tally = Tally::start();
    let progress = Progress::start("purchases", tally.timeline.clone());
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let sale = Arc::new(sale.clone());
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for k in 0..purchases(rate, duration) {
        let due = started + interval.mul_f64(k as f64);
        tokio::time::sleep_until(due).await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let index = usize::try_from(k).unwrap_or_default() % sale.buyers.len();
        let (api, sale, tally) = (api.clone(), sale.clone(), tally.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let buyer = &sale.buyers[index];
            let event = sale.event_of(index);
            // Turn by turn over the event's types: the buyer's n-th purchase takes type n mod T.
            let round = usize::try_from(k).unwrap_or_default() / sale.buyers.len();
            let ticket_type = &event.ticket_types[round % event.ticket_types.len()].0;
            let made = race::purchase(&api, buyer, None, &event.id, ticket_type).await;
            let _ = tally.keep(index, due.into_std(), made);
        });
        // Finished tasks are collected as the run goes, so the set stays as small as the load.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    progress.stop();
    tally.finish()
}
