//! The invariants after the race, for every event on sale, each a named check with what it saw.
//! From the API: sold never above capacity, analytics equal to the truth and adding up to
//! capacity, each buyer's tickets
//! and confirmation emails (the dev inbox, when served) equal to their purchases. From the
//! databases, when the platform runs in this process: per ticket type sold + held + available
//! = capacity and sold = paid, one ticket per paid order, one capture per paid order and none
//! for anything else, one confirmation email per paid order, no order left mid-payment.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use eventhive_gateway::DEV_INBOX_LISTS;
use eventhive_platform::{Database, Settings};
use serde_json::Value;

use super::{
    race::Race,
    setup::{Api, OnSale, Sale},
};

/// The checks made, and those that failed.
#[derive(Debug, Default)]
pub struct Verdict {
    pub checks: Vec<(String, bool)>,
    pub failures: Vec<String>,
}

impl Verdict {
    pub fn check(&mut self, what: impl Into<String>, holds: bool) {
        let what = what.into();
        if !holds {
            self.failures.push(what.clone());
        }
        self.checks.push((what, holds));
    }
}

/// How long eventually consistent figures (analytics, emails) get to catch up.
const CATCH_UP: Duration = Duration::from_secs(30);

pub async fn check(api: &Api, sale: &Sale, race: &Race, settings: Option<&Settings>) -> anyhow::Result<Verdict> {
    let mut verdict = Verdict::default();
    let paid = i64::try_from(race.paid.len())?;
    let capacity = sale.capacity();
    verdict.check(format!("sold {paid} <= capacity {capacity}"), paid <= capacity);
    for (event, paid) in sale.events.iter().zip(paid_per_event(sale, race)) {
        analytics(&mut verdict, api, sale, event, i64::try_from(paid.len())?).await;
    }

    let mut bought: BTreeMap<usize, i64> = BTreeMap::new();
    for (buyer, _) in &race.paid {
        *bought.entry(*buyer).or_default() += 1;
    }
    let mut tickets_seen = 0;
    for (&buyer, &count) in &bought {
        let event = sale.event_of(buyer).id.as_str();
        // Every page: a buyer of a big sale holds more tickets than one page lists.
        let (mut mine, mut token) = (0, None::<String>);
        loop {
            let path = match &token {
                Some(token) => format!("/v1/me/tickets?page_size=100&page_token={token}"),
                None => "/v1/me/tickets?page_size=100".to_owned(),
            };
            let (_, page) = api.get(&path, Some(&sale.buyers[buyer].token)).await?;
            mine += page["items"]
                .as_array()
                .map_or(0, |items| items.iter().filter(|t| t["event_id"].as_str() == Some(event)).count());
            token = page["next_page_token"].as_str().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        tickets_seen += i64::try_from(mine)?.min(count);
    }
    verdict
        .check(format!("every buyer's tickets are their purchases ({tickets_seen} of {paid})"), tickets_seen == paid);
    let (inbox, _) = api.get("/dev/mail?to=nobody@bench.eventhive.dev", None).await?;
    if inbox == 200 {
        // The inbox lists a recipient's newest messages only: a buyer with more confirmations
        // than that is checked for a full list of them (the databases' check counts them all).
        let confirmed = eventually(|| async {
            let mut confirmed = 0;
            for (&buyer, &count) in &bought {
                let to = &sale.buyers[buyer].email;
                let (_, mail) = api.get(&format!("/dev/mail?to={to}"), None).await.ok()?;
                let mine =
                    mail.as_array().map_or(0, |m| m.iter().filter(|m| m["kind"] == "order_confirmation").count());
                if i64::try_from(mine).ok()? != count.min(DEV_INBOX_LISTS) {
                    return None;
                }
                confirmed += count;
            }
            Some(confirmed)
        })
        .await;
        let shown = if bought.values().any(|&count| count > DEV_INBOX_LISTS) {
            format!("; the newest {DEV_INBOX_LISTS} of each buyer's")
        } else {
            String::new()
        };
        verdict.check(
            format!("one confirmation email per paid order in the dev inbox ({paid}{shown})"),
            confirmed == Some(paid),
        );
    }

    if let Some(settings) = settings {
        databases(&mut verdict, settings, sale, race).await?;
    }
    Ok(verdict)
}

/// The paid orders of each of the sale's events, in the order of `sale.events`.
fn paid_per_event<'a>(sale: &Sale, race: &'a Race) -> Vec<BTreeSet<&'a str>> {
    let mut per_event = vec![BTreeSet::new(); sale.events.len()];
    for (buyer, order) in &race.paid {
        per_event[buyer % sale.events.len()].insert(order.as_str());
    }
    per_event
}

/// The event's analytics catch up with its `paid` tickets and add up to its capacity.
async fn analytics(verdict: &mut Verdict, api: &Api, sale: &Sale, event: &OnSale, paid: i64) {
    let path = format!("/v1/events/{}/analytics", event.id);
    let figures = eventually(|| async {
        let (status, figures) = api.get(&path, Some(&sale.organizer.token)).await.ok()?;
        (status == 200 && figures["tickets_sold"].as_i64() == Some(paid)).then_some(figures)
    })
    .await;
    let capacity = event.capacity();
    match figures {
        Some(f) => {
            let total = ["tickets_sold", "tickets_held", "tickets_available"]
                .iter()
                .map(|k| f[*k].as_i64().unwrap_or_default())
                .sum::<i64>();
            verdict.check(
                format!(
                    "analytics {}: sold {paid}, and sold + held + available = {total} = capacity {capacity}",
                    event.id
                ),
                total == capacity,
            );
        }
        None => verdict.check(format!("analytics {} shows {paid} tickets sold within {CATCH_UP:?}", event.id), false),
    }
}

async fn databases(verdict: &mut Verdict, settings: &Settings, sale: &Sale, race: &Race) -> anyhow::Result<()> {
    let paid: BTreeSet<&str> = race.paid.iter().map(|(_, order)| order.as_str()).collect();
    let ticketing = Database::connect(settings, "ticketing").await?;
    for event in &sale.events {
        for (ticket_type, capacity) in &event.ticket_types {
            let (available, held, sold) = inventory(&ticketing, ticket_type).await?;
            verdict.check(
                format!(
                    "ticketing {ticket_type}: available {available} + held {held} + sold {sold} = capacity {capacity}"
                ),
                available + held + sold == *capacity,
            );
        }
    }
    for (event, paid) in sale.events.iter().zip(paid_per_event(sale, race)) {
        ticketing_per_event(verdict, &ticketing, &event.id, &paid).await?;
    }
    ticketing.close().await;
    let payments = Database::connect(settings, "payments").await?;
    let captured: Vec<String> = sqlx::query_scalar("SELECT order_id FROM payments WHERE status = 'captured'")
        .fetch_all(payments.pool())
        .await?;
    let captured_set: BTreeSet<&str> = captured.iter().map(String::as_str).collect();
    verdict.check(
        format!("one capture per paid order and none else ({} captures)", captured.len()),
        captured.len() == captured_set.len() && captured_set == paid,
    );
    payments.close().await;

    let notifications = Database::connect(settings, "notifications").await?;
    for (event, paid) in sale.events.iter().zip(paid_per_event(sale, race)) {
        let confirmations = eventually(|| async {
            let orders: Vec<Option<String>> = sqlx::query_scalar(
                "SELECT order_id FROM deliveries WHERE kind = 'order_confirmation' AND event_id = $1",
            )
            .bind(&event.id)
            .fetch_all(notifications.pool())
            .await
            .ok()?;
            (orders.len() >= paid.len()).then_some(orders)
        })
        .await
        .unwrap_or_default();
        let confirmed: BTreeSet<&str> = confirmations.iter().flatten().map(String::as_str).collect();
        verdict.check(
            format!("{}: one confirmation email per paid order ({} emails)", event.id, confirmations.len()),
            confirmations.len() == paid.len() && confirmed == paid,
        );
    }
    notifications.close().await;
    Ok(())
}

/// One event's sold count, tickets and orders against its paid orders.
async fn ticketing_per_event(
    verdict: &mut Verdict,
    ticketing: &Database,
    event_id: &str,
    paid: &BTreeSet<&str>,
) -> anyhow::Result<()> {
    let sold: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(sold), 0) AS BIGINT) FROM inventory_shards s JOIN ticket_types t \
         ON t.id = s.ticket_type_id WHERE t.event_id = $1",
    )
    .bind(event_id)
    .fetch_one(ticketing.pool())
    .await?;
    verdict.check(
        format!("ticketing {event_id}: sold {sold} = paid orders {}", paid.len()),
        usize::try_from(sold)? == paid.len(),
    );
    let ticket_orders: Vec<String> = sqlx::query_scalar("SELECT order_id FROM tickets WHERE event_id = $1")
        .bind(event_id)
        .fetch_all(ticketing.pool())
        .await?;
    let ticketed: BTreeSet<&str> = ticket_orders.iter().map(String::as_str).collect();
    verdict.check(
        format!("{event_id}: one ticket per paid order ({} tickets, {} orders)", ticket_orders.len(), paid.len()),
        ticket_orders.len() == paid.len() && ticketed == *paid,
    );
    let stuck: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status IN ('authorizing', 'refunding')",
    )
    .bind(event_id)
    .fetch_one(ticketing.pool())
    .await?;
    verdict.check(format!("{event_id}: no order left mid-payment ({stuck})"), stuck == 0);
    Ok(())
}

/// A ticket type's (available, held, sold), summed over its inventory shards.
pub async fn inventory(ticketing: &Database, ticket_type: &str) -> anyhow::Result<(i64, i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(available), 0) AS BIGINT), CAST(COALESCE(SUM(held), 0) AS BIGINT), \
         CAST(COALESCE(SUM(sold), 0) AS BIGINT) FROM inventory_shards WHERE ticket_type_id = $1",
    )
    .bind(ticket_type)
    .fetch_one(ticketing.pool())
    .await?)
}

/// Polls `probe` until it answers, for at most [`CATCH_UP`].
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(mut probe: impl FnMut() -> F) -> Option<T> {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The paid orders' buyers' answers, for the report.
pub fn summary(verdict: &Verdict) -> Vec<Value> {
    verdict.checks.iter().map(|(what, holds)| serde_json::json!({"check": what, "holds": holds})).collect()
}
