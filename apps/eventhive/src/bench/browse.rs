//! `--mode browse`: the read path of an on-sale. C anonymous clients, each in a loop for the
//! duration, read the list of events (`GET /v1/events`) and then an event's page
//! (`GET /v1/events/{id}`, the sale's events in turn), as the crowd refreshing before and
//! during an on-sale does. Issue 18 aims at 10,000 requests a second with p99 under 10 ms on
//! both; this measures it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{
    progress::Progress,
    setup::{Api, Sale},
    storm::{self, Requests},
    timeline::{Bucket, Timeline},
};

pub struct Browse {
    pub clients: usize,
    pub elapsed: Duration,
    pub list: Requests,
    pub page: Requests,
    /// Requests completed, and their p99, in each second.
    pub seconds: Vec<Bucket>,
}

pub async fn run(api: &Api, sale: &Sale, clients: usize, duration: Duration) -> Browse {
    let timeline = Arc::new(Timeline::start());
    let progress = Progress::start("requests", timeline.clone());
    let pages: Arc<Vec<String>> =
        Arc::new(sale.events.iter().map(|event| format!("/v1/events/{}", event.id)).collect());
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let (api, pages, timeline) = (api.clone(), pages.clone(), timeline.clone());
        tasks.spawn(async move {
            let (mut list, mut page) = (Requests::default(), Requests::default());
            let mut turn = client;
            while started.elapsed() < duration {
                for (path, requests) in [("/v1/events", &mut list), (pages[turn % pages.len()].as_str(), &mut page)] {
                    let begun = Instant::now();
                    let answer = api.read(path).await;
                    let took = begun.elapsed();
                    timeline.record(took);
                    requests.keep(took, &answer, 200);
                }
                turn += 1;
            }
            (list, page)
        });
    }
    let (mut list, mut page) = (Requests::default(), Requests::default());
    while let Some(done) = tasks.join_next().await {
        if let Ok((client_list, client_page)) = done {
            list.add(client_list);
            page.add(client_page);
        }
    }
    let elapsed = started.elapsed();
    progress.stop();
    Browse { clients, elapsed, list, page, seconds: timeline.buckets() }
}

impl Browse {
    pub fn requests(&self) -> u64 {
        self.list.latency.len() + self.page.latency.len()
    }

    pub fn print(&self) {
        let seconds = self.elapsed.as_secs_f64();
        println!(
            "  {} requests in {seconds:.2} s: {:.0} requests/s",
            self.requests(),
            if seconds > 0.0 { self.requests() as f64 / seconds } else { 0.0 }
        );
        println!();
        storm::print(
            "route",
            &[("GET /v1/events", &self.list, self.elapsed), ("GET /v1/events/{id}", &self.page, self.elapsed)],
        );
    }

    pub fn json(&self) -> Value {
        json!({
            "clients": self.clients,
            "seconds": self.elapsed.as_secs_f64(),
            "requests": self.requests(),
            "requests_per_second": self.requests() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON),
            "routes": {"list": self.list.json(self.elapsed), "event_page": self.page.json(self.elapsed)},
        })
    }
}
