//! The live stream and the running service, on SQLite and on PostgreSQL: figures at once, new
//! figures within a second of a change (from this replica or another), a keep-alive when
//! nothing changes, the end of the stream when the service stops, and the whole service wired
//! to a bus on port 0.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{Backend, Cleanup, Harness, Sale, next_within, paid, placed};
use eventhive_analytics::{Application, FiguresStream, MIGRATIONS, Projection, SERVICE, WatchTiming};
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
    a_quiet_stream_is_kept_alive,
    the_stream_ends_when_the_service_stops,
    only_the_organizations_members_watch,
    the_running_service_consumes_the_bus_and_answers_over_grpc,
);

const SECOND: Duration = Duration::from_secs(1);

async fn watch(app: &Harness, sale: &Sale) -> FiguresStream {
    let request = GetEventAnalyticsRequest { actor: Some(sale.member("staff")), event_id: sale.event_id.to_string() };
    app.service.watch_event_analytics(tonic::Request::new(request)).await.unwrap().into_inner()
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
    let timing = WatchTiming { poll: Duration::from_millis(50), keep_alive: Duration::from_millis(300) };
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
    let bus: Arc<dyn MessageBus> = Arc::new(InProcessBus::new());
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

    let mut client = AnalyticsClient::connect(format!("http://127.0.0.1:{port}")).await.unwrap();
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
