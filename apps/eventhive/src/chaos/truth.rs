//! The invariants after a fault, read from the databases and the broker, never from logs or
//! from what the buyers were told: per ticket type available + held + sold = capacity; no order
//! left `authorizing` or `refunding`; every paid order has exactly its ticket, exactly one
//! capture, and exactly one confirmation email (sent, and received by the mail server when
//! there is one); every purchase a buyer was told of is paid; analytics equal to the truth;
//! every outbox published; no message waiting on a queue or its retry queue, and every dead
//! letter with a reason an operator can read.
//!
//! The system is eventually consistent, so [`converge`] polls until every check holds or a
//! generous deadline passes, and then reports each check as last seen.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use eventhive_platform::{Database, Settings, bus::MessageBus};
use eventhive_test_support::{private::queue_messages, smtp::SmtpServer};

use crate::bench::{self, Api, Race, Sale};

/// How long the system gets to settle after a fault before a check that still fails is a
/// failure: broker backlogs, retries with backoff and the sweeper's recovery of interrupted
/// payments all take seconds; a loss never heals, however long one waits.
const PATIENCE: Duration = Duration::from_secs(180);

/// Where the truth is read.
pub struct Sources<'a> {
    pub settings: &'a Settings,
    pub api: &'a Api,
    /// The mail server the platform sends to, when it sends by SMTP.
    pub smtp: Option<&'a SmtpServer>,
    pub bus: &'a dyn MessageBus,
    /// Whether the fault may kill a sender between the SMTP server taking an email and its
    /// record (SIGKILL of notifications); only then may an email go out again.
    pub resends_allowed: bool,
}

/// One named check and whether it held.
pub type Check = (String, bool);

/// Polls every check until all hold or [`PATIENCE`] runs out; returns the last round.
pub async fn converge(sources: &Sources<'_>, sale: &Sale, race: &Race) -> Vec<Check> {
    let deadline = Instant::now() + PATIENCE;
    let mut last_said = Instant::now();
    loop {
        let checks = match all(sources, sale, race).await {
            Ok(checks) => checks,
            Err(error) => vec![(format!("reading the truth: {error:#}"), false)],
        };
        if checks.iter().all(|(_, holds)| *holds) || Instant::now() >= deadline {
            return checks;
        }
        if last_said.elapsed() >= Duration::from_secs(15) {
            let waiting: Vec<&str> = checks.iter().filter(|(_, holds)| !holds).map(|(what, _)| what.as_str()).collect();
            eprintln!("chaos: still waiting for: {}", waiting.join("; "));
            last_said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn all(sources: &Sources<'_>, sale: &Sale, race: &Race) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let paid = ticketing(&mut checks, sources.settings, sale, race).await?;
    payments(&mut checks, sources.settings, &paid.all_orders, &paid.paid).await?;
    emails(&mut checks, sources, sale, &paid.paid).await?;
    let path = format!("/v1/events/{}/analytics", sale.event().id);
    let (_, figures) = sources.api.get(&path, Some(&sale.organizer.token)).await?;
    let sold = figures["tickets_sold"].as_i64();
    checks.push((format!("analytics: {sold:?} sold = {} paid", paid.paid.len()), sold == Some(len(&paid.paid))));
    outboxes(&mut checks, sources.settings).await?;
    broker(&mut checks, sources).await?;
    Ok(checks)
}

/// What ticketing holds as paid, for the other services' checks.
struct Orders {
    paid: BTreeSet<String>,
    all_orders: BTreeSet<String>,
}

async fn ticketing(checks: &mut Vec<Check>, settings: &Settings, sale: &Sale, race: &Race) -> anyhow::Result<Orders> {
    let db = Database::connect(settings, "ticketing").await?;
    for (ticket_type, capacity) in &sale.event().ticket_types {
        let (available, held, sold) = bench::inventory(&db, ticket_type).await?;
        checks.push((
            format!("available {available} + held {held} + sold {sold} = capacity {capacity}"),
            available + held + sold == *capacity,
        ));
    }
    let orders: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM orders WHERE event_id = $1")
        .bind(&sale.event().id)
        .fetch_all(db.pool())
        .await?;
    let stuck = orders.iter().filter(|(_, status)| status == "authorizing" || status == "refunding").count();
    checks.push((format!("no order stuck in authorizing/refunding ({stuck})"), stuck == 0));
    let paid: BTreeSet<String> =
        orders.iter().filter(|(_, status)| status == "paid").map(|(id, _)| id.clone()).collect();
    let told: BTreeSet<String> = race.paid.iter().map(|(_, order)| order.clone()).collect();
    let unpaid = told.difference(&paid).count();
    checks
        .push((format!("every purchase a buyer was told of is paid ({} told, {unpaid} not)", told.len()), unpaid == 0));
    let tickets: Vec<(String, i64)> =
        sqlx::query_as("SELECT order_id, CAST(COUNT(*) AS BIGINT) FROM tickets WHERE event_id = $1 GROUP BY order_id")
            .bind(&sale.event().id)
            .fetch_all(db.pool())
            .await?;
    let ticketed: BTreeSet<String> = tickets.iter().map(|(order, _)| order.clone()).collect();
    let count: i64 = tickets.iter().map(|(_, n)| n).sum();
    checks.push((
        format!("every paid order has its ticket, none else ({} paid, {count} tickets)", paid.len()),
        ticketed == paid && count == len(&paid),
    ));
    db.close().await;
    Ok(Orders { paid, all_orders: orders.into_iter().map(|(id, _)| id).collect() })
}

async fn payments(
    checks: &mut Vec<Check>,
    settings: &Settings,
    orders: &BTreeSet<String>,
    paid: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let db = Database::connect(settings, "payments").await?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT order_id, CAST(COUNT(*) AS BIGINT) FROM payments WHERE status = 'captured' GROUP BY order_id",
    )
    .fetch_all(db.pool())
    .await?;
    // The card side: what the (simulated) processor charged and did not give back, whatever
    // payments' own rows say — a charge that landed after its caller gave up shows here.
    let charged: Vec<(String, i64)> = sqlx::query_as(
        "SELECT p.order_id, CAST(COUNT(*) AS BIGINT) FROM simulated_processor_charges c \
         JOIN payments p ON p.idempotency_key = c.idempotency_key \
         WHERE c.kind = 'charge' AND c.outcome = 'captured' AND NOT EXISTS ( \
           SELECT 1 FROM simulated_processor_charges r \
           WHERE r.kind = 'refund' AND r.outcome = 'refunded' AND r.charge_reference = c.reference) \
         GROUP BY p.order_id",
    )
    .fetch_all(db.pool())
    .await?;
    db.close().await;
    let kept: BTreeMap<String, i64> = charged.into_iter().filter(|(order, _)| orders.contains(order)).collect();
    let kept_orders: BTreeSet<String> = kept.keys().cloned().collect();
    checks.push((
        format!(
            "the processor kept one charge per paid order and none else ({} orders charged, {} more than once)",
            kept.len(),
            kept.values().filter(|n| **n > 1).count()
        ),
        &kept_orders == paid && kept.values().all(|n| *n == 1),
    ));
    let captures: BTreeMap<String, i64> = rows.into_iter().filter(|(order, _)| orders.contains(order)).collect();
    let twice = captures.values().filter(|n| **n > 1).count();
    checks.push((format!("at most one capture per order ({twice} captured twice)"), twice == 0));
    let captured: BTreeSet<String> = captures.into_keys().collect();
    checks.push((
        format!("captured (and not refunded) = paid ({} captured, {} paid)", captured.len(), paid.len()),
        &captured == paid,
    ));
    Ok(())
}

async fn emails(
    checks: &mut Vec<Check>,
    sources: &Sources<'_>,
    sale: &Sale,
    paid: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let db = Database::connect(sources.settings, "notifications").await?;
    let rows: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT order_id, status FROM deliveries WHERE kind = 'order_confirmation' AND event_id = $1")
            .bind(&sale.event().id)
            .fetch_all(db.pool())
            .await?;
    db.close().await;
    let sent: Vec<&str> =
        rows.iter().filter(|(_, status)| status == "sent").filter_map(|(o, _)| o.as_deref()).collect();
    let sent_set: BTreeSet<&str> = sent.iter().copied().collect();
    let paid_set: BTreeSet<&str> = paid.iter().map(String::as_str).collect();
    checks.push((
        format!("one confirmation email sent per paid order ({} sent, {} paid)", sent.len(), paid.len()),
        sent.len() == paid.len() && sent_set == paid_set,
    ));
    if let Some(smtp) = sources.smtp {
        let buyers: BTreeSet<&str> = sale.buyers.iter().map(|buyer| buyer.email.as_str()).collect();
        let messages = smtp.messages().await;
        let received: Vec<_> = messages.iter().filter(|m| m.to.iter().any(|to| buyers.contains(to.as_str()))).collect();
        // SMTP has no idempotency: a sender killed after the server took a message but before
        // it recorded so sends it again when its lease ends, with the same Message-ID, which is
        // how a mail system tells it is one email (docs/architecture.md, Consistency). So: one
        // Message-ID per paid order; a resend of it is counted, not a second email.
        let mut one_email = 0;
        let mut resent = 0;
        for order in &paid_set {
            let ids: Vec<Option<&str>> =
                received.iter().filter(|m| m.data.contains(order)).map(|m| message_id(&m.data)).collect();
            let distinct: BTreeSet<&Option<&str>> = ids.iter().collect();
            if distinct.len() == 1 && ids.first().is_some_and(Option::is_some) {
                one_email += 1;
                resent += ids.len() - 1;
            }
        }
        checks.push((
            format!(
                "the mail server received one confirmation (one Message-ID) per paid order ({one_email} of {}; \
                 {resent} resent after a crash mid-send)",
                paid.len()
            ),
            one_email == paid.len() && (resent == 0 || sources.resends_allowed),
        ));
    }
    Ok(())
}

async fn outboxes(checks: &mut Vec<Check>, settings: &Settings) -> anyhow::Result<()> {
    let mut waiting = Vec::new();
    for entry in eventhive_system::SERVICES.iter().filter(|entry| (entry.migrations)().is_some()) {
        let db = Database::connect(settings, entry.name).await?;
        let count: Option<i64> =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM outbox_messages WHERE published_at IS NULL")
                .fetch_one(db.pool())
                .await
                .ok();
        db.close().await;
        if let Some(count) = count.filter(|count| *count > 0) {
            waiting.push(format!("{} {count}", entry.name));
        }
    }
    checks.push((format!("every outbox published ({})", waiting.join(", ")), waiting.is_empty()));
    Ok(())
}

async fn broker(checks: &mut Vec<Check>, sources: &Sources<'_>) -> anyhow::Result<()> {
    let settings = sources.settings;
    let mut waiting = Vec::new();
    let mut dead = 0;
    let mut unexplained = 0;
    for queue in eventhive_system::subscriptions().into_iter().map(|s| s.queue) {
        let ready = match &settings.amqp_url {
            Some(url) => {
                let name = format!("{}.{queue}", settings.amqp_exchange);
                i64::from(queue_messages(url, &name).await? + queue_messages(url, &format!("{name}.retry")).await?)
            }
            None => eventhive_platform::bus::in_process::InProcessBus::open(settings).await?.queued(&queue).await?,
        };
        if ready > 0 {
            waiting.push(format!("{queue} {ready}"));
        }
        let letters = sources.bus.dead_letters(&queue).await?;
        dead += letters.len();
        unexplained += letters.iter().filter(|letter| letter.reason.trim().is_empty()).count();
    }
    checks.push((format!("no message waiting on any queue ({})", waiting.join(", ")), waiting.is_empty()));
    checks.push((
        format!("every dead letter has a readable reason ({dead} dead, {unexplained} without)"),
        unexplained == 0,
    ));
    Ok(())
}

/// The `Message-ID` header of a raw message.
fn message_id(data: &str) -> Option<&str> {
    data.lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("message-id")))
        .map(|(_, value)| value.trim())
}

fn len(set: &BTreeSet<String>) -> i64 {
    i64::try_from(set.len()).unwrap_or(i64::MAX)
}
