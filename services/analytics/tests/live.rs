//! The live stream and the running service, on SQLite and on PostgreSQL: figures at once, new
//! figures within a second of a change (from this replica or another), to every stream of the
//! event, a keep-alive when nothing changes, caps on open streams, the end of a stream whose
//! reader left the organization, the end of the stream when the service stops, and the whole
//! service wired to a bus on port 0.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{Backend, Cleanup, Harness, Sale, next_within, paid, placed};
use eventhive_analytics::{Application, FiguresStream, MIGRATIONS, Projection, SERVICE, StreamCaps, WatchTiming};
use eventhive_platform::{
    Context, Database, Service,
    bus::{MessageBus, MessageHandler, in_process::InProcessBus},
    shutdown::CancellationToken,
};
use eventhive_proto::analytics::{
    GetEventAnalyticsRequest, RebuildRequest, analytics_client::AnalyticsClient, analytics_server::Analytics,
};
use time::macros::datetime;
use tonic::Code;

on_both_backends!(
    the_stream_sends_figures_at_once_and_within_a_second_of_a_change,
    the_stream_sees_changes_another_replica_applied,
    the_stream_carries_the_waiting_rooms_changes,
    a_quiet_stream_is_kept_alive,
    every_stream_of_an_event_gets_each_change,
    streams_are_capped_per_user_and_per_event,
    a_removed_member_stops_receiving,
    a_stream_ends_when_its_reader_cannot_be_rechecked,
    the_stream_ends_when_the_service_stops,
    only_the_organizations_members_watch,
    the_running_service_consumes_the_bus_and_answers_over_grpc,
);

const SECOND: Duration = Duration::from_secs(1);

async fn watch(app: &Harness, sale: &Sale) -> FiguresStream {
    app.watch_as(&sale.member("staff"), &sale.event_id.to_string()).await.unwrap()
}

async fn the_stream_sends_figures_at_once_and_within_a_second_of_a_change(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    let order = sale.order(1, 2);
    app.deliver(&placed(&order)).await;

    let mut stream = watch(&app, &sale).await;
    let first = next_within(&mut stream, SECOND).await.unwrap().unwrap();
    assert_eq!((first.tickets_sold, first.tickets_held), (0, 3));

    app.deliver(&paid(&order, datetime!(2027-05-01 12:00 UTC))).await;
    let second = next_within(&mut stream, SECOND).await.unwrap().unwrap();
    assert_eq!((second.tickets_sold, second.tickets_held, second.orders_paid), (3, 0, 1));
    common::assert_balanced(&second);

    // A change that changes no figure (an OrderPlaced heard after OrderPaid) sends nothing;
    // the next real change is the next message.
    let late = sale.order(0, 1);
    app.deliver(&paid(&late, datetime!(2027-05-01 12:02 UTC))).await;
    app.deliver(&placed(&late)).await;
    let third = next_within(&mut stream, SECOND).await.unwrap().unwrap();
    assert_eq!(third.tickets_sold, 4);
    let quiet = tokio::time::timeout(Duration::from_millis(600), futures::StreamExt::next(&mut stream)).await;
    assert!(quiet.is_err(), "nothing changed, yet the stream sent {quiet:?}");
    app.close().await;
}

/// The room's queue and admissions reach open streams as the sales figures do: one refresh per
/// change, shared, no poll per stream.
async fn the_stream_carries_the_waiting_rooms_changes(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    let mut stream = watch(&app, &sale).await;
    let first = next_within(&mut stream, SECOND).await.unwrap().unwrap();
    assert_eq!(first.waiting_room, None);

    app.deliver(&sale.room_opened(datetime!(2027-05-01 12:00 UTC), 12)).await;
    let opened = next_within(&mut stream, SECOND).await.unwrap().unwrap();
    assert_eq!(opened.waiting_room.map(|r| (r.status, r.early_arrivals)), Some(("open".into(), Some(12))));

    app.deliver(&sale.room_admitted(datetime!(2027-05-01 12:00:05 UTC), 3, 3, 9)).await;
    let admitted = next_within(&mut stream, SECOND).await.unwrap().unwrap().waiting_room.unwrap();
    assert_eq!((admitted.queued, admitted.admitted, admitted.admitted_per_minute), (9, 3, 3));

    app.deliver(&sale.room_expired(datetime!(2027-05-01 12:10:05 UTC), 1, 1)).await;
    let expired = next_within(&mut stream, SECOND).await.unwrap().unwrap().waiting_room.unwrap();
    assert_eq!(expired.expired, 1);
    app.close().await;
}

async fn the_stream_sees_changes_another_replica_applied(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    let mut stream = watch(&app, &sale).await;
    let first = next_within(&mut stream, SECOND).await.unwrap().unwrap();
    assert_eq!(first.tickets_held, 0);

    // Another replica on the same database: no in-process wake-up reaches this one.
    let other_db = Database::connect(&app.cleanup.settings, SERVICE).await.unwrap();
    let other = Projection::new(other_db.clone());
    other.handle(&placed(&sale.order(2, 0))).await.unwrap();
    let second = next_within(&mut stream, SECOND).await.unwrap().unwrap();
    assert_eq!(second.tickets_held, 2);

    // A rebuild there, too, is seen here (and changes nothing, so it sends nothing).
    other.rebuild().await.unwrap();
    other.handle(&placed(&sale.order(0, 1))).await.unwrap();
    let third = next_within(&mut stream, SECOND).await.unwrap().unwrap();
    assert_eq!(third.tickets_held, 3);
    other_db.close().await;
    app.close().await;
}

async fn a_quiet_stream_is_kept_alive(backend: Backend) {
    let timing = WatchTiming {
        poll: Duration::from_millis(50),
        keep_alive: Duration::from_millis(300),
        ..WatchTiming::default()
    };
    let app = Harness::with_timing(backend, timing).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    let mut stream = watch(&app, &sale).await;
    let first = next_within(&mut stream, SECOND).await.unwrap().unwrap();
    let started = tokio::time::Instant::now();
    let again = next_within(&mut stream, SECOND).await.unwrap().unwrap();
    assert_eq!(again, first, "a keep-alive repeats the figures");
    assert!(started.elapsed() >= Duration::from_millis(250), "not before the keep-alive is due");
    app.close().await;
}

async fn every_stream_of_an_event_gets_each_change(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut stream = watch(&app, &sale).await;
        assert_eq!(next_within(&mut stream, SECOND).await.unwrap().unwrap().tickets_held, 0);
        streams.push(stream);
    }
    // Another event's change reaches none of them.
    let other = Sale::new();
    app.deliver(&other.published()).await;
    app.deliver(&placed(&other.order(1, 0))).await;

    let order = sale.order(1, 1);
    app.deliver(&placed(&order)).await;
    for stream in &mut streams {
        assert_eq!(next_within(stream, SECOND).await.unwrap().unwrap().tickets_held, 2);
    }
    // Streams come and go; the rest go on receiving, and a stream opened later starts from the
    // figures the others have.
    streams.truncate(5);
    app.deliver(&paid(&order, datetime!(2027-05-01 12:00 UTC))).await;
    for stream in &mut streams {
        assert_eq!(next_within(stream, SECOND).await.unwrap().unwrap().tickets_sold, 2);
    }
    let mut late = watch(&app, &sale).await;
    assert_eq!(next_within(&mut late, SECOND).await.unwrap().unwrap().tickets_sold, 2);
    app.close().await;
}

async fn streams_are_capped_per_user_and_per_event(backend: Backend) {
    let caps = StreamCaps { per_user: 2, per_event: 3 };
    let app = Harness::with_live(backend, WatchTiming::default(), caps).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    let event_id = sale.event_id.to_string();
    let owner = sale.member("owner");
    let first = app.watch_as(&owner, &event_id).await.unwrap();
    let _second = app.watch_as(&owner, &event_id).await.unwrap();
    let refused = app.watch_as(&owner, &event_id).await.err().unwrap();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let problem = eventhive_platform::Problem::from_status(&refused);
    assert_eq!(problem.slug(), "rate-limited");
    // A stream that ends gives its place back.
    drop(first);
    let _third = app.watch_as(&owner, &event_id).await.unwrap();

    // Two streams of the owner and one of an admin: the event is full, even for a newcomer.
    let _admins = app.watch_as(&sale.member("admin"), &event_id).await.unwrap();
    let full = app.watch_as(&sale.member("staff"), &event_id).await.err().unwrap();
    assert_eq!(full.code(), Code::ResourceExhausted);
    // Another event is not.
    let other = Sale::new();
    app.deliver(&other.published()).await;
    let _elsewhere = app.watch_as(&other.member("staff"), &other.event_id.to_string()).await.unwrap();
    app.close().await;
}

async fn a_removed_member_stops_receiving(backend: Backend) {
    let timing = WatchTiming { recheck: Duration::from_millis(100), ..WatchTiming::default() };
    let app = Harness::with_timing(backend, timing).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    let (staying, leaving) = (sale.member("owner"), sale.member("staff"));
    let event_id = sale.event_id.to_string();
    let mut stays = app.watch_as(&staying, &event_id).await.unwrap();
    let mut leaves = app.watch_as(&leaving, &event_id).await.unwrap();
    next_within(&mut stays, SECOND).await.unwrap().unwrap();
    next_within(&mut leaves, SECOND).await.unwrap().unwrap();
    // Several re-checks pass while they are members.
    tokio::time::sleep(Duration::from_millis(350)).await;

    app.memberships.remove(&leaving.user_id);
    let ended = next_within(&mut leaves, SECOND).await.unwrap().unwrap_err();
    assert_eq!(ended.code(), Code::PermissionDenied);
    assert!(next_within(&mut leaves, SECOND).await.is_none(), "nothing after the end");

    app.deliver(&placed(&sale.order(1, 0))).await;
    assert_eq!(next_within(&mut stays, SECOND).await.unwrap().unwrap().tickets_held, 1);
    app.close().await;
}

async fn a_stream_ends_when_its_reader_cannot_be_rechecked(backend: Backend) {
    let timing = WatchTiming { recheck: Duration::from_millis(100), ..WatchTiming::default() };
    let app = Harness::with_timing(backend, timing).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    let mut stream = watch(&app, &sale).await;
    next_within(&mut stream, SECOND).await.unwrap().unwrap();
    app.memberships.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let ended = next_within(&mut stream, SECOND).await.unwrap().unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable);
    app.close().await;
}

async fn the_stream_ends_when_the_service_stops(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    let mut stream = watch(&app, &sale).await;
    next_within(&mut stream, SECOND).await.unwrap().unwrap();
    app.shutdown.cancel();
    assert!(next_within(&mut stream, SECOND).await.is_none(), "the stream ends");
    app.close().await;
}

async fn only_the_organizations_members_watch(backend: Backend) {
    let app = Harness::new(backend).await;
    let sale = Sale::new();
    app.deliver(&sale.published()).await;
    let ask = |actor, event_id: String| {
        let request = GetEventAnalyticsRequest { actor, event_id };
        app.service.watch_event_analytics(tonic::Request::new(request))
    };
    let denied = ask(Some(Sale::new().member("owner")), sale.event_id.to_string()).await.err().unwrap();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let unknown = ask(Some(sale.member("owner")), Sale::new().event_id.to_string()).await.err().unwrap();
    assert_eq!(unknown.code(), Code::NotFound);
    app.close().await;
}

async fn the_running_service_consumes_the_bus_and_answers_over_grpc(backend: Backend) {
    eventhive_platform::telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let cleanup = Cleanup { settings: common::settings(backend, &dir), dir };
    let bus: Arc<dyn MessageBus> = Arc::new(InProcessBus::in_memory().await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let context = Context::of::<Application>(cleanup.settings.clone(), listener, bus.clone()).await.unwrap();
    let application = Application::build(context).await.unwrap();
    assert_ne!(port, 0);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(application.run_until_stopped(shutdown.clone()));

    // Published after build: the subscription exists already.
    let sale = Sale::new();
    let order = sale.order(2, 1);
    for envelope in [sale.published(), placed(&order), paid(&order, datetime!(2027-05-01 12:00 UTC))] {
        bus.publish(&envelope).await.unwrap();
    }

    let secrets = eventhive_platform::Secrets::load(&cleanup.settings).unwrap();
    let channel =
        eventhive_platform::grpc::channel(&format!("http://127.0.0.1:{port}"), Duration::from_secs(10), &secrets)
            .unwrap();
    let mut client = AnalyticsClient::new(channel);
    let request =
        || GetEventAnalyticsRequest { actor: Some(sale.member("owner")), event_id: sale.event_id.to_string() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let figures = loop {
        match client.get_event_analytics(request()).await {
            Ok(figures) if figures.get_ref().tickets_sold == 3 => break figures.into_inner(),
            _ if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("the bus never delivered: {other:?}"),
        }
    };
    common::assert_balanced(&figures);
    assert_eq!(figures.revenue.as_ref().map(|m| m.amount_minor), Some(12_000));

    let mut stream = client.watch_event_analytics(request()).await.unwrap().into_inner();
    assert_eq!(stream.message().await.unwrap(), Some(figures.clone()));
    bus.publish(&placed(&sale.order(0, 5))).await.unwrap();
    let changed = tokio::time::timeout(SECOND, stream.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(changed.tickets_held, 5);

    let rebuilt = client.rebuild(RebuildRequest {}).await.unwrap().into_inner();
    assert_eq!(rebuilt.events_replayed, 4);

    // Stopping ends the open stream and the service, and stops consuming.
    shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap();
    assert!(matches!(ended, Ok(None) | Err(_)), "the stream ends: {ended:?}");
    tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap().unwrap();

    // The CLI rebuild, with the service stopped.
    assert_eq!(eventhive_analytics::rebuild(&cleanup.settings).await.unwrap(), 4);
    let db = Database::connect(&cleanup.settings, SERVICE).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    let logged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_log").fetch_one(db.pool()).await.unwrap();
    assert_eq!(logged, 4);
    db.close().await;
}
