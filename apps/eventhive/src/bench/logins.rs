//! `--mode logins`: a storm of sign-ups and sign-ins, as when an on-sale is announced. B
//! accounts register all at once, then all log in at once. Each step's rate and latency are
//! reported, and the servers' peak RSS after: the platform must hash passwords as in
//! production (the benchmark does not make hashing cheap in this mode), and issue 18 asks that
//! 500 logins at once keep it under 300 MiB.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{
    progress::Progress,
    setup::{self, Api},
    storm::{self, Requests},
    timeline::{Bucket, Timeline},
};

pub struct Logins {
    pub accounts: usize,
    pub register: (Requests, Duration),
    pub login: (Requests, Duration),
    /// Requests completed, and their p99, in each second.
    pub seconds: Vec<Bucket>,
}

pub async fn run(api: &Api, accounts: usize) -> Logins {
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let emails: Arc<Vec<String>> =
        Arc::new((0..accounts).map(|index| setup::email(&run, &format!("fan{index}"))).collect());
    let timeline = Arc::new(Timeline::start());
    let progress = Progress::start("requests", timeline.clone());
    let register =
        storm(api, &emails, &timeline, ("/v1/auth/register", |email| setup::registration(email, "fan")), 201).await;
    let login = storm(api, &emails, &timeline, ("/v1/auth/login", setup::credentials), 200).await;
    progress.stop();
    Logins { accounts, register, login, seconds: timeline.buckets() }
}

/// Every account POSTs to `path` the body made for its address, all at once; how they were
/// answered, and how long the step took.
async fn storm(
    api: &Api,
    emails: &Arc<Vec<String>>,
    timeline: &Arc<Timeline>,
    (path, body): (&'static str, fn(&str) -> Value),
    expected: u16,
) -> (Requests, Duration) {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..emails.len() {
        let (api, emails, timeline) = (api.clone(), emails.clone(), timeline.clone());
        tasks.spawn(async move {
            let email = &emails[index];
            let body = body(email);
            let begun = Instant::now();
            let answer = api.post(path, None, None, &body).await;
            let took = begun.elapsed();
            timeline.record(took);
            let mut requests = Requests::default();
            requests.keep(took, &answer, expected);
            requests
        });
    }
    let mut all = Requests::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok(requests) = done {
            all.add(requests);
        }
    }
    (all, started.elapsed())
}

impl Logins {
    pub fn print(&self) {
        println!();
        storm::print(
            "step (all at once)",
            &[
                ("POST /v1/auth/register", &self.register.0, self.register.1),
                ("POST /v1/auth/login", &self.login.0, self.login.1),
            ],
        );
    }

    pub fn json(&self) -> Value {
        json!({
            "accounts": self.accounts,
            "register": self.register.0.json(self.register.1),
            "login": self.login.0.json(self.login.1),
        })
    }
}
