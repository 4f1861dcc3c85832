//! The timed part: every buyer repeats order + payment, each request with an Idempotency-Key,
//! until every ticket type has answered `sold-out` or the buyer has spent its attempts.
//! Latencies are kept in HDR histograms, in microseconds, per step and per whole purchase.
//! Behind a waiting room, each buyer first waits to be admitted, then makes one purchase.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{
    FlashSale,
    setup::{Api, Sale},
    waiting::Gate,
};

/// What the race measured.
pub struct Race {
    pub elapsed: Duration,
    /// From the start to the last completed purchase.
    pub to_last_purchase: Duration,
    pub attempts: usize,
    /// The paid orders, by buyer index.
    pub paid: Vec<(usize, String)>,
    pub order: Histogram<u64>,
    pub payment: Histogram<u64>,
    pub purchase: Histogram<u64>,
    /// Problem types (or transport errors) of the answers that were not 201/200.
    pub errors: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Shared {
    paid: Vec<(usize, String)>,
    errors: BTreeMap<String, u64>,
    last_purchase: Option<Duration>,
}

pub(super) fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits; a longer latency is clamped by `saturating_record`.
    #[expect(clippy::expect_used, reason = "the bounds are constants that hdrhistogram accepts")]
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// The problem's type slug (`sold-out`), or the status when the body is no problem.
fn problem(status: u16, body: &Value) -> String {
    body["type"]
        .as_str()
        .and_then(|uri| uri.rsplit('/').next())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("http-{status}"))
}

pub async fn run(api: &Api, sale: &Sale, options: &FlashSale, gate: Option<Arc<Gate>>) -> Race {
    let sold_out: Arc<Vec<AtomicBool>> = Arc::new(sale.ticket_types.iter().map(|_| AtomicBool::new(false)).collect());
    let shared = Arc::new(Mutex::new(Shared::default()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let histograms = Arc::new(Mutex::new((histogram(), histogram(), histogram())));
    let started = Instant::now();
    let mut buyers = tokio::task::JoinSet::new();
    for (index, buyer) in sale.buyers.iter().cloned().enumerate() {
        let (api, sale, sold_out, shared, attempts, histograms, gate) = (
            api.clone(),
            sale.clone(),
            sold_out.clone(),
            shared.clone(),
            attempts.clone(),
            histograms.clone(),
            gate.clone(),
        );
        let tries = options.attempts;
        buyers.spawn(async move {
            let admission = match &gate {
                Some(gate) => gate.wait(index, &buyer).await,
                None => None,
            };
            if gate.is_some() && admission.is_none() {
                // Told sold out (or expired) in the queue: nothing to buy, nothing to record.
                return;
            }
            // Made only by a buyer who buys: three histograms are tens of kilobytes, and a
            // waiting-room crowd is 100,000 buyers.
            let mut local = (histogram(), histogram(), histogram());
            for attempt in 0..tries {
                let open: Vec<usize> = (0..sold_out.len()).filter(|&t| !sold_out[t].load(Ordering::Relaxed)).collect();
                let Some(&pick) = open.get((index + attempt) % open.len().max(1)) else { break };
                attempts.fetch_add(1, Ordering::Relaxed);
                let body = json!({"event_id": sale.event_id, "items": [{"ticket_type_id": sale.ticket_types[pick].0, "quantity": 1}]});
                let key = uuid::Uuid::new_v4().to_string();
                let begun = Instant::now();
                let placed =
                    api.post_admitted("/v1/orders", Some(&buyer.token), Some(&key), admission.as_deref(), &body).await;
                let order_took = begun.elapsed();
                local.0.saturating_record(micros(order_took));
                let order_id = match placed {
                    Ok((201, order)) => order["id"].as_str().unwrap_or_default().to_owned(),
                    Ok((status, answer)) => {
                        let kind = problem(status, &answer);
                        if kind == "sold-out" {
                            sold_out[pick].store(true, Ordering::Relaxed);
                        }
                        *shared.lock().await.errors.entry(format!("order: {kind}")).or_default() += 1;
                        back_off(&kind).await;
                        continue;
                    }
                    Err(error) => {
                        *shared.lock().await.errors.entry(format!("order: {}", transport(&error))).or_default() += 1;
                        back_off("transport").await;
                        continue;
                    }
                };
                let card = json!({"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}});
                let key = uuid::Uuid::new_v4().to_string();
                let paying = Instant::now();
                let paid = api.post(&format!("/v1/orders/{order_id}/payment"), Some(&buyer.token), Some(&key), &card).await;
                local.1.saturating_record(micros(paying.elapsed()));
                match paid {
                    Ok((200, _)) => {
                        local.2.saturating_record(micros(begun.elapsed()));
                        let mut shared = shared.lock().await;
                        shared.paid.push((index, order_id));
                        shared.last_purchase = Some(started.elapsed());
                        if gate.is_some() {
                            break;
                        }
                    }
                    Ok((status, answer)) => {
                        let kind = problem(status, &answer);
                        *shared.lock().await.errors.entry(format!("payment: {kind}")).or_default() += 1;
                        back_off(&kind).await;
                    }
                    Err(error) => {
                        *shared.lock().await.errors.entry(format!("payment: {}", transport(&error))).or_default() += 1;
                        back_off("transport").await;
                    }
                }
            }
            let mut all = histograms.lock().await;
            let _ = all.0.add(&local.0);
            let _ = all.1.add(&local.1);
            let _ = all.2.add(&local.2);
        });
    }
    while buyers.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let shared = std::mem::take(&mut *shared.lock().await);
    let (order, payment, purchase) =
        std::mem::replace(&mut *histograms.lock().await, (histogram(), histogram(), histogram()));
    Race {
        elapsed,
        to_last_purchase: shared.last_purchase.unwrap_or(elapsed),
        attempts: attempts.load(Ordering::Relaxed),
        paid: shared.paid,
        order,
        payment,
        purchase,
        errors: shared.errors,
    }
}

/// A buyer told the platform is unavailable (503 with `Retry-After`, a proxy's 502, a refused
/// connection) waits before trying again, as a browser honouring `Retry-After` would, instead of
/// spending its attempts in a burst while a service restarts.
async fn back_off(kind: &str) {
    if kind == "unavailable" || kind == "transport" || kind.starts_with("http-5") {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn transport(error: &anyhow::Error) -> String {
    match error.downcast_ref::<reqwest::Error>() {
        Some(e) if e.is_timeout() => "timeout".into(),
        Some(e) if e.is_connect() => "connection refused".into(),
        _ => "transport error".into(),
    }
}
