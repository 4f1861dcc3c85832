//! The read model's promises, on SQLite and on PostgreSQL: the figures of a sale add up
//! (sold + held + available = capacity), an envelope delivered again changes nothing, any
//! order of delivery gives the same figures, a rebuild gives the very same figures, and only
//! the organization's members read them.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Backend, Harness, Sale, cancelled, expired, paid, placed, refunded};
use eventhive_domain::{
    TicketId,
    events::{Envelope, TicketTypeSnapshot},
};
use eventhive_platform::storage;
use eventhive_proto::{
    analytics::{EventAnalytics, RebuildRequest, analytics_server::Analytics},
    common::{Actor, Membership},
};
use time::macros::datetime;
use tonic::Code;

on_both_backends!(
    a_sale_adds_up,
    an_envelope_delivered_again_changes_nothing,
    any_order_of_delivery_gives_the_same_figures,
    concurrent_deliveries_converge,
    a_rebuild_gives_the_very_same_figures,
    a_rebuild_recomputes_exactly_the_incrementally_kept_figures,
    the_newest_snapshot_sets_the_capacity,
    only_the_organizations_members_read_the_figures,
);

/// One sale, in the order it happened:
/// - order A (2 general admission) placed and still held;
/// - order B (1 VIP, 3 general) paid at 12:00:10;
/// - order C (5 general) expired;
/// - order D (1 general) paid at 12:00:40 and refunded;
/// - order E (2 VIP) cancelled unpaid;
/// - order F (2 VIP) paid at 12:01:30;
/// - one VIP and one general admission ticket checked in, the general one announced twice.
fn story(sale: &Sale) -> Vec<Envelope> {
    let a = sale.order(0, 2);
    let b = sale.order(1, 3);
    let c = sale.order(0, 5);
    let d = sale.order(0, 1);
    let e = sale.order(2, 0);
    let f = sale.order(2, 0);
    let general_ticket = TicketId::new();
    vec![
        sale.published(),
        placed(&a),
        placed(&b),
        paid(&b, datetime!(2027-05-01 12:00:10 UTC)),
        placed(&c),
        expired(&c),
        placed(&d),
        paid(&d, datetime!(2027-05-01 12:00:40 UTC)),
        refunded(&d),
        placed(&e),
        cancelled(&e),
        placed(&f),
        paid(&f, datetime!(2027-05-01 12:01:30.999 UTC)),
        sale.checked_in(&sale.vip, TicketId::new()),
        sale.checked_in(&sale.general, general_ticket),
        // The same scan announced twice (two messages): one check-in.
        sale.checked_in(&sale.general, general_ticket),
    ]
}

/// What the story adds up to.
fn assert_story(sale: &Sale, figures: &EventAnalytics) {
    assert_eq!(figures.event_id, sale.event_id.to_string());
    assert_eq!((figures.tickets_sold, figures.tickets_held, figures.tickets_available), (6, 2, 102));
    assert_eq!(figures.revenue.as_ref().map(|m| (m.amount_minor, m.currency.as_str())), Some((21_000, "EUR")));
    assert_eq!(figures.orders_paid, 2);
    assert_eq!(figures.checkins, 2);

    let [vip, general] = figures.by_ticket_type.as_slice() else { panic!("two ticket types: {figures:?}") };
    assert_eq!(vip.ticket_type_id, sale.vip.id.to_string());
    assert_eq!((vip.name.as_str(), vip.capacity, vip.sold, vip.held, vip.available), ("VIP", 10, 3, 0, 7));
    assert_eq!(vip.revenue.as_ref().map(|m| m.amount_minor), Some(15_000));
    assert_eq!(vip.checkins, 1);
    assert_eq!((general.capacity, general.sold, general.held, general.available), (100, 3, 2, 95));
    assert_eq!(general.revenue.as_ref().map(|m| m.amount_minor), Some(6_000));
    assert_eq!(general.checkins, 1);

    let minutes: Vec<_> = figures
        .sales_per_minute
        .iter()
        .map(|m| (m.minute.as_str(), m.tickets, m.revenue.as_ref().map(|r| r.amount_minor)))
        .collect();
    assert_eq!(
        minutes,
        [("2027-05-01T12:00:00Z", 4, Some(11_000)), ("2027-05-01T12:01:00Z", 2, Some(10_000))],
        "refunded order D is no sale"
    );
    assert!(!figures.as_of.is_empty());
}

async fn a_sale_adds_up(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    let story = story(&sale);

    app.deliver(&story[0]).await;
    let figures = app.figures(&sale).await;
    assert_eq!((figures.tickets_sold, figures.tickets_held, figures.tickets_available), (0, 0, sale.total_capacity()));
    assert_eq!(figures.revenue.as_ref().map(|m| m.amount_minor), Some(0));
    assert!(figures.sales_per_minute.is_empty());

    // A and B placed: 2 + 4 held.
    app.deliver_all(&story[1..3]).await;
    let figures = app.figures(&sale).await;
    assert_eq!((figures.tickets_sold, figures.tickets_held), (0, 6));

    // B paid: its 4 move from held to sold.
    app.deliver(&story[3]).await;
    let figures = app.figures(&sale).await;
    assert_eq!((figures.tickets_sold, figures.tickets_held, figures.orders_paid), (4, 2, 1));
    assert_eq!(figures.revenue.as_ref().map(|m| m.amount_minor), Some(11_000));

    // C placed then expired: held again, then neither.
    app.deliver(&story[4]).await;
    assert_eq!(app.figures(&sale).await.tickets_held, 7);
    app.deliver(&story[5]).await;
    assert_eq!(app.figures(&sale).await.tickets_held, 2);

    // D paid then refunded: sold, then neither, and no revenue.
    app.deliver_all(&story[6..8]).await;
    assert_eq!(app.figures(&sale).await.tickets_sold, 5);
    app.deliver(&story[8]).await;
    let figures = app.figures(&sale).await;
    assert_eq!((figures.tickets_sold, figures.orders_paid), (4, 1));
    assert_eq!(figures.revenue.as_ref().map(|m| m.amount_minor), Some(11_000));

    app.deliver_all(&story[9..]).await;
    assert_story(&sale, &app.figures(&sale).await);
    app.close().await;
}

async fn an_envelope_delivered_again_changes_nothing(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    let story = story(&sale);
    app.deliver_all(&story).await;
    let once = app.figures(&sale).await;
    assert_story(&sale, &once);
    for _ in 0..2 {
        app.deliver_all(&story).await;
        assert_eq!(app.figures(&sale).await, once);
    }
    // Even a redelivered OrderPlaced after the order moved on, or a paid order's OrderPaid.
    app.deliver(&story[1]).await;
    app.deliver(&story[3]).await;
    assert_eq!(app.figures(&sale).await, once);
    app.close().await;
}

async fn any_order_of_delivery_gives_the_same_figures(backend: Backend) {
    let sale = Sale::new();
    let story = story(&sale);
    let in_order = Harness::new(backend).await;
    in_order.deliver_all(&story).await;
    let expected = in_order.figures(&sale).await;
    assert_story(&sale, &expected);
    in_order.close().await;

    // Reversed: each order's last event comes first, and the event's snapshot last.
    let reversed = Harness::new(backend).await;
    reversed.deliver_all(story.iter().rev()).await;
    assert_eq!(reversed.figures(&sale).await, expected);
    reversed.close().await;

    // Interleaved: every other envelope, then the rest backwards.
    let shuffled = Harness::new(backend).await;
    let (evens, odds): (Vec<_>, Vec<_>) = story.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    shuffled.deliver_all(evens.into_iter().map(|(_, e)| e)).await;
    shuffled.deliver_all(odds.into_iter().rev().map(|(_, e)| e)).await;
    assert_eq!(shuffled.figures(&sale).await, expected);
    shuffled.close().await;
}

async fn concurrent_deliveries_converge(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    let story = story(&sale);
    // Every envelope twice, all at once: the bus hands a queue's messages to several workers.
    let deliveries = story.iter().chain(story.iter()).map(|envelope| app.deliver(envelope));
    futures::future::join_all(deliveries).await;
    assert_story(&sale, &app.figures(&sale).await);

    // A crowd on one event: 40 orders placed and paid, 40 placed only, each envelope twice, all
    // at once, so that consumers race on the same orders and the same event's version row.
    let crowd = Sale { event_id: eventhive_domain::EventId::new(), ..sale.clone() };
    let mut envelopes = vec![crowd.published()];
    for i in 0..80 {
        let order = crowd.order(0, 1);
        envelopes.push(placed(&order));
        if i % 2 == 0 {
            envelopes.push(paid(&order, datetime!(2027-05-01 12:00 UTC)));
        }
    }
    let deliveries = envelopes.iter().chain(envelopes.iter().rev()).map(|envelope| app.deliver(envelope));
    futures::future::join_all(deliveries).await;
    let figures = app.figures(&crowd).await;
    assert_eq!((figures.tickets_sold, figures.tickets_held, figures.orders_paid), (40, 40, 40));
    app.close().await;
}

async fn a_rebuild_gives_the_very_same_figures(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    let story = story(&sale);
    // Delivered backwards, replayed in the order the events occurred: the same figures still.
    app.deliver_all(story.iter().rev()).await;
    app.deliver_all(&story).await;
    let before = app.figures(&sale).await;
    assert_story(&sale, &before);
    let logged = u64::try_from(story.len()).unwrap();

    assert_eq!(app.projection.rebuild().await.unwrap(), logged);
    assert_eq!(app.figures(&sale).await, before);

    let response = app.service.rebuild(tonic::Request::new(RebuildRequest {})).await.unwrap().into_inner();
    assert_eq!(response.events_replayed, i64::try_from(logged).unwrap());
    assert_eq!(app.figures(&sale).await, before);

    // The CLI's way, on a database of its own opening.
    assert_eq!(eventhive_analytics::rebuild(&app.cleanup.settings).await.unwrap(), logged);
    assert_eq!(app.figures(&sale).await, before);

    // The inbox survived the rebuild: a redelivery is still skipped.
    app.deliver_all(&story).await;
    assert_eq!(app.figures(&sale).await, before);
    assert_eq!(app.projection.rebuild().await.unwrap(), logged);
    app.close().await;
}

/// What a mixed sale of `n` orders adds up to, kept by the test itself.
#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    sold: i64,
    held: i64,
    revenue: i64,
    orders_paid: i64,
    checkins: i64,
    /// Per minute (Unix ms): tickets, revenue.
    minutes: std::collections::BTreeMap<i64, (i64, i64)>,
    /// The waiting room: status, queued, admitted, admitted in the last minute, expired.
    room: (String, i64, i64, i64, i64),
}

/// A sale of many orders, each of them taking one of the paths an order takes — held, paid,
/// expired, cancelled, paid then refunded, refunded heard before paid — with check-ins, every
/// envelope delivered twice, scrambled, several at a time: the deltas must come out right
/// whatever the order of arrival.
fn mixed_sale(sale: &Sale, orders: usize) -> (Vec<Envelope>, Expected) {
    let mut envelopes = vec![sale.published()];
    let mut expected = Expected::default();
    let base = datetime!(2027-05-01 12:00 UTC);
    for i in 0..orders {
        let order = sale.order(i64::from(i % 3 == 0), 1 + (i % 2) as i64);
        let tickets = order.quantity();
        let paid_at = base + time::Duration::seconds((i as i64 * 17) % 300);
        let minute = storage::to_ms(paid_at) / 60_000 * 60_000;
        envelopes.push(placed(&order));
        match i % 6 {
            0 => expected.held += tickets,
            1 | 2 => {
                envelopes.push(paid(&order, paid_at));
                expected.sold += tickets;
                expected.revenue += order.total_minor;
                expected.orders_paid += 1;
                let m = expected.minutes.entry(minute).or_default();
                m.0 += tickets;
                m.1 += order.total_minor;
                if i % 4 == 1 {
                    for line in &order.lines {
                        let ticket_type = if line.ticket_type_id == sale.vip.id { &sale.vip } else { &sale.general };
                        envelopes.push(sale.checked_in(ticket_type, TicketId::new()));
                        expected.checkins += 1;
                    }
                }
            }
            3 => envelopes.push(expired(&order)),
            4 => envelopes.push(cancelled(&order)),
            _ => {
                envelopes.push(paid(&order, paid_at));
                envelopes.push(refunded(&order));
            }
        }
    }
    // The waiting room: opened with 40 early arrivals, an admission step every 7 s (some
    // admitting none), sold out at 12:03:20 and back at 12:03:50, five expiries.
    envelopes.push(sale.room_opened(base, 40));
    let (mut admitted_total, mut last_step) = (0, 0);
    for step in 0..40_i64 {
        let admitted = step % 3;
        admitted_total += admitted;
        last_step = step * 7;
        envelopes.push(sale.room_admitted(
            base + time::Duration::seconds(last_step),
            admitted,
            admitted_total,
            400 - step,
        ));
    }
    envelopes.push(sale.room_sold_out(base + time::Duration::seconds(200), true));
    envelopes.push(sale.room_sold_out(base + time::Duration::seconds(230), false));
    for k in 0..5 {
        envelopes.push(sale.room_expired(base + time::Duration::seconds(100 + 10 * k), 1, k + 1));
    }
    // The last minute, to 10 s: the steps in the six buckets ending with the newest one's.
    let newest_bucket = last_step / 10 * 10;
    let last_minute = (0..40_i64).filter(|s| s * 7 >= newest_bucket - 50).map(|s| s % 3).sum();
    expected.room = ("open".into(), 361, admitted_total, last_minute, 5);
    // Scrambled deterministically: a stride through the list that is coprime with its length.
    let n = envelopes.len();
    let stride = (1..n).rev().find(|s| gcd(*s, n) == 1 && *s > n / 3).unwrap_or(1);
    let scrambled = (0..n).map(|k| envelopes[(k * stride) % n].clone()).collect();
    (scrambled, expected)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The kept rows of one event that are not all zeros, as text, in key order: what the figures
/// are read from.
async fn kept_rows(app: &Harness, sale: &Sale) -> Vec<String> {
    use sqlx::Row;
    let id = sale.event_id.to_string();
    let mut rows = Vec::new();
    for (table, query) in [
        ("event", "SELECT orders_paid, revenue_minor, as_of FROM event_figures WHERE event_id = $1"),
        (
            "ticket_type",
            "SELECT ticket_type_id, sold, held, revenue_minor, checkins FROM ticket_type_figures \
             WHERE event_id = $1 AND (sold <> 0 OR held <> 0 OR revenue_minor <> 0 OR checkins <> 0) \
             ORDER BY ticket_type_id",
        ),
        (
            "minute",
            "SELECT minute_ms, tickets, revenue_minor FROM minute_figures \
             WHERE event_id = $1 AND (tickets <> 0 OR revenue_minor <> 0) ORDER BY minute_ms",
        ),
        (
            "room",
            "SELECT opened_at, early_arrivals, admitted_total, queued, counted_at, sold_out, \
             sold_out_changed_at, expired_total FROM waiting_rooms WHERE event_id = $1",
        ),
        (
            "admissions",
            "SELECT bucket_ms, admitted FROM waiting_room_admissions WHERE event_id = $1 ORDER BY bucket_ms",
        ),
    ] {
        for row in sqlx::query(query).bind(&id).fetch_all(app.db.pool()).await.unwrap() {
            let columns: Vec<String> = (0..row.len())
                .map(|i| row.try_get::<i64, _>(i).map(|v| v.to_string()).unwrap_or_else(|_| row.get::<String, _>(i)))
                .collect();
            rows.push(format!("{table}: {}", columns.join(", ")));
        }
    }
    rows
}

async fn a_rebuild_recomputes_exactly_the_incrementally_kept_figures(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale { vip: TicketTypeSnapshot { capacity: 1000, ..Sale::new().vip }, ..Sale::new() };
    let sale = Sale { general: TicketTypeSnapshot { capacity: 1000, ..sale.general.clone() }, ..sale };
    let (envelopes, expected) = mixed_sale(&sale, 120);
    // Every envelope twice, eight at a time, as competing consumers would apply them.
    let twice: Vec<&Envelope> = envelopes.iter().chain(envelopes.iter().rev()).collect();
    for batch in twice.chunks(8) {
        futures::future::join_all(batch.iter().map(|envelope| app.deliver(envelope))).await;
    }
    let kept = app.figures(&sale).await;
    let minutes: std::collections::BTreeMap<i64, (i64, i64)> = kept
        .sales_per_minute
        .iter()
        .map(|m| {
            let at = time::OffsetDateTime::parse(&m.minute, &time::format_description::well_known::Rfc3339).unwrap();
            (storage::to_ms(at), (m.tickets, m.revenue.as_ref().unwrap().amount_minor))
        })
        .collect();
    let room = kept.waiting_room.clone().expect("the event has a waiting room");
    let got = Expected {
        sold: kept.tickets_sold,
        held: kept.tickets_held,
        revenue: kept.revenue.as_ref().unwrap().amount_minor,
        orders_paid: kept.orders_paid,
        checkins: kept.checkins,
        minutes,
        room: (room.status, room.queued, room.admitted, room.admitted_per_minute, room.expired),
    };
    assert_eq!(got, expected, "the kept figures are what the sale adds up to");
    let rows = kept_rows(&app, &sale).await;

    let logged = app.projection.rebuild().await.unwrap();
    assert_eq!(logged, u64::try_from(envelopes.len()).unwrap());
    assert_eq!(kept_rows(&app, &sale).await, rows, "the rebuild recomputes the very same rows");
    assert_eq!(app.figures(&sale).await, kept);
    app.close().await;
}

async fn the_newest_snapshot_sets_the_capacity(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    let order = sale.order(0, 4);
    app.deliver(&paid(&order, datetime!(2027-05-01 12:00 UTC))).await;
    // Revision 3 adds 50 general admission tickets; revision 1 (the publication) and 2 (+20)
    // arrive after it and are stale.
    app.deliver(&sale.changed(3, 50)).await;
    app.deliver(&sale.published()).await;
    app.deliver(&sale.changed(2, 20)).await;
    let figures = app.figures(&sale).await;
    assert_eq!(figures.by_ticket_type.iter().map(|t| t.capacity).collect::<Vec<_>>(), [10, 150]);
    assert_eq!((figures.tickets_sold, figures.tickets_available), (4, 156));
    app.close().await;
}

async fn only_the_organizations_members_read_the_figures(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    let event_id = sale.event_id.to_string();

    // Orders of an event analytics has not heard of yet: no event.
    app.deliver(&placed(&sale.order(1, 0))).await;
    assert_eq!(app.get_as(Some(sale.member("owner")), &event_id).await.unwrap_err().code(), Code::NotFound);

    app.deliver(&sale.published()).await;
    for role in ["owner", "admin", "staff"] {
        let figures = app.get_as(Some(sale.member(role)), &event_id).await.unwrap();
        assert_eq!(figures.tickets_held, 1, "{role}");
    }
    let outsider = Actor {
        user_id: "someone".into(),
        memberships: vec![Membership { organization_id: "another-organization".into(), role: "owner".into() }],
    };
    let nobody = Actor { user_id: "buyer".into(), memberships: vec![] };
    for actor in [Some(outsider), Some(nobody), None] {
        let status = app.get_as(actor.clone(), &event_id).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{actor:?}");
        let problem = eventhive_platform::Problem::from_status(&status);
        assert_eq!(problem.slug(), "forbidden");
    }

    for unknown in [eventhive_domain::EventId::new().to_string(), "not-an-id".to_owned(), String::new()] {
        let status = app.get_as(Some(sale.member("owner")), &unknown).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{unknown:?}");
        assert_eq!(eventhive_platform::Problem::from_status(&status).slug(), "not-found");
    }
    app.close().await;
}
