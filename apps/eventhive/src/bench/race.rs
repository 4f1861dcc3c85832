//! The timed part: every buyer repeats order + payment, each request with an Idempotency-Key,
//! until every ticket type of its event has answered `sold-out` or the buyer has spent its
//! attempts. Latencies are kept in HDR histograms, in microseconds, per step and per whole
//! purchase, and per second for `--plot`. Behind a waiting room, each buyer first waits to be
//! admitted, then makes one purchase.
//!
//! [`purchase`] and [`Tally`] are the purchase and its bookkeeping, shared with the steady mode.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::json;

use super::{
    FlashSale,
    histograms::{histogram, micros, problem, transport},
    progress::Progress,
    setup::{Api, Buyer, Sale},
    timeline::{Bucket, Timeline},
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
    /// Purchases completed, and their p99, in each second.
    pub seconds: Vec<Bucket>,
}

/// One purchase's answer.
pub struct Purchase {
    pub order_took: Duration,
    /// `None` when no order was placed.
    pub payment_took: Option<Duration>,
    /// The paid order's id, or the step that failed and why.
    pub outcome: Result<String, Failure>,
}

pub struct Failure {
    pub step: &'static str,
    /// The problem type (`sold-out`), or why no answer came.
    pub kind: String,
}

/// An order of one ticket of `ticket_type_id`, then its payment, each with an Idempotency-Key.
pub async fn purchase(
    api: &Api,
    buyer: &Buyer,
    admission: Option<&str>,
    event_id: &str,
    ticket_type_id: &str,
) -> Purchase {
    let body = json!({"event_id": event_id, "items": [{"ticket_type_id": ticket_type_id, "quantity": 1}]});
    let key = uuid::Uuid::new_v4().to_string();
    let begun = Instant::now();
    let placed = api.post_admitted("/v1/orders", Some(&buyer.token), Some(&key), admission, &body).await;
    let order_took = begun.elapsed();
    let failed = |kind| Purchase { order_took, payment_took: None, outcome: Err(Failure { step: "order", kind }) };
    let order_id = match placed {
        Ok((201, order)) => order["id"].as_str().unwrap_or_default().to_owned(),
        Ok((status, answer)) => return failed(problem(status, &answer)),
        Err(error) => return failed(transport(&error)),
    };
    let card = json!({"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}});
    let key = uuid::Uuid::new_v4().to_string();
    let paying = Instant::now();
    let paid = api.post(&format!("/v1/orders/{order_id}/payment"), Some(&buyer.token), Some(&key), &card).await;
    let payment_took = Some(paying.elapsed());
    let outcome = match paid {
        Ok((200, _)) => Ok(order_id),
        Ok((status, answer)) => Err(Failure { step: "payment", kind: problem(status, &answer) }),
        Err(error) => Err(Failure { step: "payment", kind: transport(&error) }),
    };
    Purchase { order_took, payment_took, outcome }
}

/// The purchases' figures as the buyers' tasks make them.
pub struct Tally {
    started: Instant,
    attempts: AtomicUsize,
    pub timeline: Arc<Timeline>,
    kept: Mutex<Kept>,
}

struct Kept {
    paid: Vec<(usize, String)>,
    errors: BTreeMap<String, u64>,
    last_purchase: Option<Duration>,
    order: Histogram<u64>,
    payment: Histogram<u64>,
    purchase: Histogram<u64>,
}

impl Kept {
    fn new() -> Self {
        Self {
            paid: Vec::new(),
            errors: BTreeMap::new(),
            last_purchase: None,
            order: histogram(),
            payment: histogram(),
            purchase: histogram(),
        }
    }
}

impl Tally {
    pub fn start() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            attempts: AtomicUsize::new(0),
            timeline: Arc::new(Timeline::start()),
            kept: Mutex::new(Kept::new()),
        })
    }

    /// Keeps `buyer`'s purchase, whose latency counts from `since`; gives back its failure.
    pub fn keep(&self, buyer: usize, since: Instant, purchase: Purchase) -> Result<(), Failure> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let took = since.elapsed();
        if purchase.outcome.is_ok() {
            self.timeline.record(took);
        }
        // A poisoned lock means a buyer's task panicked: the figures go on without it.
        let Ok(mut kept) = self.kept.lock() else { return purchase.outcome.map(drop) };
        kept.order.saturating_record(micros(purchase.order_took));
        if let Some(payment_took) = purchase.payment_took {
            kept.payment.saturating_record(micros(payment_took));
        }
        match purchase.outcome {
            Ok(order_id) => {
                kept.purchase.saturating_record(micros(took));
                kept.paid.push((buyer, order_id));
                kept.last_purchase = Some(self.started.elapsed());
                Ok(())
            }
            Err(failure) => {
                *kept.errors.entry(format!("{}: {}", failure.step, failure.kind)).or_default() += 1;
                Err(failure)
            }
        }
    }

    pub fn finish(&self) -> Race {
        let elapsed = self.started.elapsed();
        let kept =
            self.kept.lock().map(|mut kept| std::mem::replace(&mut *kept, Kept::new())).unwrap_or_else(|_| Kept::new());
        Race {
            elapsed,
            to_last_purchase: kept.last_purchase.unwrap_or(elapsed),
            attempts: self.attempts.load(Ordering::Relaxed),
            paid: kept.paid,
            order: kept.order,
            payment: kept.payment,
            purchase: kept.purchase,
            errors: kept.errors,
            seconds: self.timeline.buckets(),
        }
    }
}

pub async fn run(api: &Api, sale: &Sale, options: &FlashSale, gate: Option<Arc<Gate>>) -> Race {
    // Per event, per ticket type: told sold out.
    let sold_out: Arc<Vec<Vec<AtomicBool>>> = Arc::new(
        sale.events.iter().map(|event| event.ticket_types.iter().map(|_| AtomicBool::new(false)).collect()).collect(),
    );
    // One copy shared by the buyers' tasks: a waiting-room crowd is 100,000 buyers.
    let sale = Arc::new(sale.clone());
    let tally = Tally::start();
    let progress = Progress::start("purchases", tally.timeline.clone());
    let mut buyers = tokio::task::JoinSet::new();
    for (index, buyer) in sale.buyers.iter().cloned().enumerate() {
        let (api, sale, sold_out, tally, gate) =
            (api.clone(), sale.clone(), sold_out.clone(), tally.clone(), gate.clone());
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
            let event = sale.event_of(index);
            let sold_out = &sold_out[index % sale.events.len()];
            for attempt in 0..tries {
                let open: Vec<usize> = (0..sold_out.len()).filter(|&t| !sold_out[t].load(Ordering::Relaxed)).collect();
                let Some(&pick) = open.get((index + attempt) % open.len().max(1)) else { break };
                let begun = Instant::now();
                let made = purchase(&api, &buyer, admission.as_deref(), &event.id, &event.ticket_types[pick].0).await;
                match tally.keep(index, begun, made) {
                    Ok(()) if gate.is_some() => break,
                    Ok(()) => {}
                    Err(failure) => {
                        if failure.step == "order" && failure.kind == "sold-out" {
                            sold_out[pick].store(true, Ordering::Relaxed);
                        }
                        back_off(&failure.kind).await;
                    }
                }
            }
        });
    }
    while buyers.join_next().await.is_some() {}
    progress.stop();
    tally.finish()
}

/// A buyer told the platform is unavailable (503 with `Retry-After`, a proxy's 502, a refused
/// connection) waits before trying again, as a browser honouring `Retry-After` would, instead of
/// spending its attempts in a burst while a service restarts.
async fn back_off(kind: &str) {
    if kind == "unavailable"
        || kind.starts_with("http-5")
        || matches!(kind, "timeout" | "connection refused" | "transport error")
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
