//! The waiting rooms' figures in the read model, on SQLite and on PostgreSQL: absent for an
//! event without a room; status, queue, admissions (in all and in the last minute) and expired
//! admissions as the room's events tell them, in any order of delivery; and a rebuild gives
//! them again. (The rebuild-equals-incremental check of a mixed sale with a room is in
//! read_model.rs.)

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Backend, Harness, Sale};
use time::macros::datetime;

on_both_backends!(the_waiting_rooms_figures_are_served_with_the_sales);

async fn the_waiting_rooms_figures_are_served_with_the_sales(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    assert_eq!(app.figures(&sale).await.waiting_room, None, "no room: null");

    let opening = datetime!(2027-05-01 12:00 UTC);
    let at = |seconds: i64| opening + time::Duration::seconds(seconds);
    app.deliver(&sale.room_opened(opening, 30)).await;
    let room = app.figures(&sale).await.waiting_room.unwrap();
    assert_eq!(
        (room.status.as_str(), room.early_arrivals, room.opened_at.as_str()),
        ("open", Some(30), "2027-05-01T12:00:00Z")
    );
    assert_eq!((room.queued, room.admitted, room.admitted_per_minute, room.expired), (0, 0, 0, 0));

    // Steps at 0 s, 30 s, 65 s and 70 s: the last minute up to 70 s is the buckets from 20 s on.
    let steps = [
        sale.room_admitted(at(0), 10, 10, 40),
        sale.room_admitted(at(30), 5, 15, 35),
        sale.room_admitted(at(65), 4, 19, 31),
        sale.room_admitted(at(70), 0, 19, 45),
    ];
    // Delivered newest first, and twice: the newest count of the queue still wins.
    app.deliver_all(steps.iter().rev()).await;
    app.deliver_all(&steps).await;
    let room = app.figures(&sale).await.waiting_room.unwrap();
    assert_eq!((room.queued, room.admitted, room.admitted_per_minute), (45, 19, 9), "{room:?}");

    // Sold out, then back; expiries heard out of order keep the largest total.
    app.deliver(&sale.room_sold_out(at(80), true)).await;
    assert_eq!(app.figures(&sale).await.waiting_room.unwrap().status, "sold_out");
    app.deliver(&sale.room_expired(at(95), 2, 5)).await;
    app.deliver(&sale.room_expired(at(90), 3, 3)).await;
    app.deliver(&sale.room_sold_out(at(100), false)).await;
    app.deliver(&sale.room_sold_out(at(80), true)).await;
    let room = app.figures(&sale).await.waiting_room.unwrap();
    assert_eq!((room.status.as_str(), room.expired), ("open", 5));

    let before = app.figures(&sale).await;
    app.projection.rebuild().await.unwrap();
    assert_eq!(app.figures(&sale).await, before, "a rebuild gives the room's figures again");
    app.close().await;
}
