//! The promises of the purchase saga, checked where they matter: a crowd racing for too few
//! tickets, and a crash between any two steps of a purchase or a refund. On both backends.
//!
//! After every scenario:
//! - sold + held + available = capacity, for every ticket type;
//! - tickets issued (not void) = tickets of paid orders;
//! - at most one captured charge per order, in payments and at the processor;
//! - no buyer above the per-buyer cap;
//! - every paid order has its tickets; no captured payment without a paid or refunded order.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use eventhive_test_support::{
    Backend, Session, TestApp,
    api::{Sale, cards},
    on_both_backends,
};
use eventhive_ticketing::FaultPoint;
use serde_json::{Value, json};

on_both_backends!(
    two_hundred_buyers_racing_for_fifty_tickets_never_oversell,
    a_crash_before_the_charge_leaves_the_order_payable,
    a_crash_after_the_charge_still_issues_the_tickets,
    a_crash_after_paying_loses_nothing,
    a_crash_before_the_refund_is_resumed,
    a_crash_after_the_refund_is_finished,
    one_buyer_cancelling_and_ordering_at_once_never_deadlocks,
);

const CAPACITY: i64 = 50;
const PER_BUYER: i64 = 3;

/// Checks every invariant of the module doc for one sale.
async fn assert_invariants(app: &TestApp, sale: &Sale) {
    let ticketing = app.database("ticketing").await;
    let payments = app.database("payments").await;

    let (sold, held, available) = app.stock(&sale.ticket_type_id).await;
    assert_eq!(sold + held + available, CAPACITY, "sold {sold} + held {held} + available {available}");
    // Per shard too: the shards are the truth the sums come from.
    let broken: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM inventory_shards WHERE available < 0 OR held < 0 OR sold < 0")
            .fetch_one(ticketing.pool())
            .await
            .unwrap();
    assert_eq!(broken, 0);

    let paid_quantity: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM orders WHERE event_id = $1 AND status IN ('paid', 'refunding')",
    )
    .bind(&sale.event_id)
    .fetch_one(ticketing.pool())
    .await
    .unwrap();
    let held_quantity: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM orders WHERE event_id = $1 \
         AND status IN ('pending_payment', 'authorizing')",
    )
    .bind(&sale.event_id)
    .fetch_one(ticketing.pool())
    .await
    .unwrap();
    let live_tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND status <> 'void'")
        .bind(&sale.event_id)
        .fetch_one(ticketing.pool())
        .await
        .unwrap();
    assert_eq!(sold, paid_quantity, "inventory sold = paid orders");
    assert_eq!(held, held_quantity, "inventory held = unpaid orders");
    assert_eq!(live_tickets, paid_quantity, "tickets issued = paid quantity");
    let paid_without_tickets: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM orders o WHERE o.status = 'paid' AND o.quantity <> \
         (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id)",
    )
    .fetch_one(ticketing.pool())
    .await
    .unwrap();
    assert_eq!(paid_without_tickets, 0, "every paid order has all its tickets");

    let over_cap: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT buyer_id FROM orders WHERE event_id = $1 \
         AND status IN ('pending_payment', 'authorizing', 'paid', 'refunding') GROUP BY buyer_id HAVING SUM(quantity) > $2) x",
    )
    .bind(&sale.event_id)
    .bind(PER_BUYER)
    .fetch_one(ticketing.pool())
    .await
    .unwrap();
    assert_eq!(over_cap, 0, "no buyer above the cap");

    let doubly_charged: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT order_id FROM payments WHERE status IN ('captured', 'refunded') \
         GROUP BY order_id HAVING COUNT(*) > 1) x",
    )
    .fetch_one(payments.pool())
    .await
    .unwrap();
    assert_eq!(doubly_charged, 0, "one capture per order in payments");
    let processor_doubles: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT p.order_id FROM simulated_processor_charges c \
         JOIN payments p ON p.idempotency_key = c.idempotency_key WHERE c.kind = 'charge' AND c.outcome = 'captured' \
         GROUP BY p.order_id HAVING COUNT(*) > 1) x",
    )
    .fetch_one(payments.pool())
    .await
    .unwrap();
    assert_eq!(processor_doubles, 0, "one capture per order at the processor");

    // Every captured payment belongs to a paid order; every refunded one to a closed order.
    let captured: Vec<String> = sqlx::query_scalar("SELECT order_id FROM payments WHERE status = 'captured'")
        .fetch_all(payments.pool())
        .await
        .unwrap();
    for order_id in captured {
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
            .bind(&order_id)
            .fetch_optional(ticketing.pool())
            .await
            .unwrap();
        assert_eq!(status.as_deref(), Some("paid"), "captured payment of order {order_id}");
    }
    ticketing.close().await;
    payments.close().await;
}

async fn new_sale(app: &TestApp) -> Sale {
    app.sale(CAPACITY, |body| {
        body["max_tickets_per_order"] = json!(PER_BUYER);
        body["max_tickets_per_buyer"] = json!(PER_BUYER);
    })
    .await
}

/// What one buyer of the crowd does.
async fn shop(app: Arc<TestApp>, buyer: Session, sale: Sale, persona: usize) {
    let quantity = 1 + (persona % 2) as i64;
    let key = format!("order-{persona}");
    let response = app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, quantity)], &key).await;
    match response.status().as_u16() {
        201 => {}
        409 => return,
        other => panic!("placing an order answered {other}: {}", response.text().await.unwrap_or_default()),
    }
    let order: Value = response.json().await.unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    match persona % 5 {
        // Pays at once.
        0 | 1 => {
            let paid = app.pay(&buyer, &id, cards::SUCCEEDS, &format!("pay-{persona}")).await;
            assert_eq!(paid.status(), 200);
        }
        // Declined, then pays with the flaky card (retried inside, charged once).
        2 => {
            assert_eq!(app.pay(&buyer, &id, cards::DECLINED, &format!("pay-{persona}-a")).await.status(), 402);
            assert_eq!(app.pay(&buyer, &id, cards::FAILS_FIRST_CALL, &format!("pay-{persona}-b")).await.status(), 200);
        }
        // Changes their mind.
        3 => {
            let cancelled = app.post(&format!("/v1/orders/{id}/cancel"), Some(&buyer), &json!({})).await;
            assert_eq!(cancelled.status(), 200);
        }
        // Walks away: the hold expires.
        _ => {}
    }
    // Double-clicks "buy" again with the same key: never a second order.
    let again = app.place_order(&buyer, &sale.event_id, &[(&sale.ticket_type_id, quantity)], &key).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], order["id"]);
}

async fn two_hundred_buyers_racing_for_fifty_tickets_never_oversell(backend: Backend) {
    let app = Arc::new(TestApp::spawn_with(backend, |s| s.set("sweep_interval_ms", 3_600_000)).await);
    let sale = new_sale(&app).await;
    let buyers = futures::future::join_all((0..200).map(|_| app.sign_up())).await;
    let crowd = buyers.into_iter().enumerate().map(|(persona, buyer)| {
        let (app, sale) = (app.clone(), sale.clone());
        tokio::spawn(shop(app, buyer, sale, persona))
    });
    for result in futures::future::join_all(crowd).await {
        result.unwrap();
    }
    assert_invariants(&app, &sale).await;
    let (sold, held, _) = app.stock(&sale.ticket_type_id).await;
    assert!(sold > 0 && held > 0, "the crowd bought and walked away: sold {sold}, held {held}");

    // Time passes: every hold left behind expires; what was sold stays sold.
    let sweep = app.sweep(Duration::from_secs(3600)).await;
    assert!(sweep.expired > 0);
    assert_eq!(sweep.failures, 0);
    assert_invariants(&app, &sale).await;
    let (sold_after, held_after, available_after) = app.stock(&sale.ticket_type_id).await;
    assert_eq!((sold_after, held_after), (sold, 0));
    assert_eq!(available_after, CAPACITY - sold);
}

/// A paid-for scenario stopped at `point`, then the whole system restarted.
async fn crash_and_restart(backend: Backend, point: FaultPoint) -> (TestApp, Sale, Session, String) {
    let mut app = TestApp::spawn_with(backend, |s| s.set("sweep_interval_ms", 3_600_000)).await;
    let sale = new_sale(&app).await;
    let buyer = app.sign_up().await;
    let order = app.hold(&buyer, &sale, 2).await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    match point {
        FaultPoint::BeforeCharge | FaultPoint::AfterCharge | FaultPoint::AfterPaid => {
            app.ticketing.faults.arm(point);
            let crashed = app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay").await;
            assert_eq!(crashed.status(), 503, "the step died");
        }
        FaultPoint::BeforeRefund | FaultPoint::AfterRefund => {
            assert_eq!(app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay").await.status(), 200);
            app.ticketing.faults.arm(point);
            let crashed = app.post(&format!("/v1/orders/{order_id}/cancel"), Some(&buyer), &json!({})).await;
            assert_eq!(crashed.status(), 503, "the step died");
        }
    }
    app.restart().await;
    // Long enough for the abandoned step to count as abandoned, short of the hold's expiry.
    let sweep = app.sweep(Duration::from_secs(120)).await;
    assert_eq!(sweep.failures, 0, "{sweep:?}");
    (app, sale, buyer, order_id)
}

async fn status_of(app: &TestApp, buyer: &Session, order_id: &str) -> Value {
    app.get(&format!("/v1/orders/{order_id}"), Some(buyer)).await.json().await.unwrap()
}

async fn a_crash_before_the_charge_leaves_the_order_payable(backend: Backend) {
    let (app, sale, buyer, order_id) = crash_and_restart(backend, FaultPoint::BeforeCharge).await;
    assert_eq!(status_of(&app, &buyer, &order_id).await["status"], "pending_payment");
    assert_eq!(app.charges(&order_id).await, (0, 0), "nothing was charged");
    assert_invariants(&app, &sale).await;
    // The buyer tries again and it goes through, once.
    assert_eq!(app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay-again").await.status(), 200);
    assert_eq!(app.charges(&order_id).await, (1, 1));
    assert_invariants(&app, &sale).await;
}

async fn a_crash_after_the_charge_still_issues_the_tickets(backend: Backend) {
    let (app, sale, buyer, order_id) = crash_and_restart(backend, FaultPoint::AfterCharge).await;
    let order = status_of(&app, &buyer, &order_id).await;
    assert_eq!(order["status"], "paid", "the captured charge completed the order");
    assert_eq!(order["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(app.charges(&order_id).await, (1, 1));
    assert_invariants(&app, &sale).await;
    // A retry of the interrupted request changes nothing and charges nothing.
    assert_eq!(app.pay(&buyer, &order_id, cards::SUCCEEDS, "pay-retry").await.status(), 409);
    assert_eq!(app.charges(&order_id).await, (1, 1));
}

async fn a_crash_after_paying_loses_nothing(backend: Backend) {
    let (app, sale, buyer, order_id) = crash_and_restart(backend, FaultPoint::AfterPaid).await;
    let order = status_of(&app, &buyer, &order_id).await;
    assert_eq!(order["status"], "paid");
    assert_eq!(order["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(app.charges(&order_id).await, (1, 1));
    assert_invariants(&app, &sale).await;
}

async fn a_crash_before_the_refund_is_resumed(backend: Backend) {
    let (app, sale, buyer, order_id) = crash_and_restart(backend, FaultPoint::BeforeRefund).await;
    let order = status_of(&app, &buyer, &order_id).await;
    assert_eq!(order["status"], "refunded");
    assert!(order["tickets"].as_array().unwrap().iter().all(|t| t["status"] == "void"));
    assert_invariants(&app, &sale).await;
    assert_eq!(app.stock(&sale.ticket_type_id).await, (0, 0, CAPACITY));
}

async fn a_crash_after_the_refund_is_finished(backend: Backend) {
    let (app, sale, buyer, order_id) = crash_and_restart(backend, FaultPoint::AfterRefund).await;
    let order = status_of(&app, &buyer, &order_id).await;
    assert_eq!(order["status"], "refunded");
    assert_invariants(&app, &sale).await;
    let db = app.database("payments").await;
    let refunds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM refunds WHERE order_id = $1")
        .bind(&order_id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(refunds, 1, "refunded once");
}

/// One buyer cancels held orders while placing new ones, on one shard so that a hold that
/// finds the shard locked queues for it. A cancel that locked the shard and then waited for
/// the buyer's total (which the hold locked first) deadlocked, a 500 to the buyer.
/// (PostgreSQL breaks a deadlock by failing one of the two transactions.)
async fn one_buyer_cancelling_and_ordering_at_once_never_deadlocks(backend: Backend) {
    let app = Arc::new(TestApp::spawn_with(backend, |settings| settings.set("inventory_shards", 1)).await);
    let sale = Arc::new(app.sale(CAPACITY, |body| body["max_tickets_per_buyer"] = json!(1000)).await);
    let buyer = Arc::new(app.sign_up().await);
    if backend == Backend::Infra {
        // Widens the race on PostgreSQL (SQLite has one writer and cannot deadlock): every
        // shard update holds its row lock 50 ms longer before the transaction goes on, so a
        // cancel holds the shard while a hold of the same buyer, holding the buyer's total,
        // queues for it.
        let ticketing = app.database("ticketing").await;
        for statement in [
            "CREATE FUNCTION slow_shards() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER slow_shards AFTER UPDATE ON inventory_shards FOR EACH ROW EXECUTE FUNCTION slow_shards()",
        ] {
            sqlx::query(statement).execute(ticketing.pool()).await.unwrap();
        }
        ticketing.close().await;
    }
    for _round in 0..4 {
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(app.hold(&buyer, &sale, 1).await["id"].as_str().unwrap().to_owned());
        }
        let mut tasks = Vec::new();
        for order_id in held {
            let (app, buyer, sale) = (app.clone(), buyer.clone(), sale.clone());
            tasks.push(tokio::spawn(async move {
                let cancel = app.post(&format!("/v1/orders/{order_id}/cancel"), Some(&buyer), &json!({})).await;
                let key = uuid::Uuid::new_v4().to_string();
                let items = [(sale.ticket_type_id.as_str(), 1)];
                let order = app.place_order(&buyer, &sale.event_id, &items, &key).await;
                (cancel.status().as_u16(), order.status().as_u16(), order.text().await.unwrap())
            }));
        }
        for task in tasks {
            let (cancel, order, body) = task.await.unwrap();
            assert_eq!(cancel, 200, "cancel");
            assert_eq!(order, 201, "order: {body}");
        }
    }
    let (sold, held, available) = app.stock(&sale.ticket_type_id).await;
    assert_eq!((sold, held + available), (0, CAPACITY));
}
