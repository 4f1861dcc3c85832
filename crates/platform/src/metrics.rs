//! Prometheus metrics. Code records with the `metrics` macros (`metrics::counter!`, ...);
//! every process renders them at `GET /metrics` on its own metrics port, never on the public
//! one. One recorder serves a whole process, so in dev mode one listener covers all services.
//!
//! Histograms are rendered as Prometheus histograms with the explicit buckets below, not as
//! summaries: buckets add up across replicas (`histogram_quantile` over `sum by (le)`), quantiles
//! computed per process do not. [`CATALOG`] describes every series EventHive records, so that
//! each has its `# HELP` line; a test keeps it complete.

use std::{sync::OnceLock, time::Duration};

use anyhow::Context;
use axum::{Router, routing::get};
use metrics::Unit;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often histograms are drained into their buckets. Without upkeep, samples of a histogram
/// nobody scrapes pile up without bound.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Buckets of request and handler durations, in seconds: from a cached read (1 ms) to a
/// purchase whose payment is retried (several seconds), up to the 10 s gRPC deadline and the
/// 15 s request timeout.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0];

/// Buckets of a consumer's lag behind the event it handles, in seconds: milliseconds normally,
/// minutes while a broker or a consumer was down.
pub const LAG_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0];

/// The kind of a series, as described to Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every series EventHive records: name, kind, unit and help text. Services record with the
/// `metrics` macros; a series missing here has no `# HELP` line (a test catches it).
pub const CATALOG: &[(&str, Kind, Option<Unit>, &str)] = &[
    // The gateway.
    (
        "eventhive_http_requests_total",
        Kind::Counter,
        None,
        "HTTP requests answered by the gateway, by method, route pattern and status.",
    ),
    (
        "eventhive_http_request_duration_seconds",
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time the gateway took to answer a request, by method and route pattern.",
    ),
    // Every gRPC server.
    (
        "eventhive_grpc_server_requests_total",
        Kind::Counter,
        None,
        "gRPC calls a service answered, by gRPC service, method and status code.",
    ),
    (
        "eventhive_grpc_server_request_duration_seconds",
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time a gRPC service took to answer a call (to its response headers), by gRPC service and method.",
    ),
    // Identity: logins.
    (
        "eventhive_logins_failed_total",
        Kind::Counter,
        None,
        "Logins refused for a wrong email or password (each earns its account a growing delay).",
    ),
    (
        "eventhive_logins_delayed_total",
        Kind::Counter,
        None,
        "Logins refused unchecked (429) because their account's failed-login delay was running.",
    ),
    // Ticketing: the purchase.
    ("eventhive_orders_placed_total", Kind::Counter, None, "Orders placed: tickets held for a buyer."),
    (
        "eventhive_orders_sold_out_total",
        Kind::Counter,
        None,
        "Orders refused because the tickets asked for were sold out.",
    ),
    (
        "eventhive_holds_released_total",
        Kind::Counter,
        None,
        "Holds released without a sale, by reason: expired or cancelled.",
    ),
    ("eventhive_payments_declined_total", Kind::Counter, None, "Payments of orders the card processor declined."),
    (
        "eventhive_refunds_owed_total",
        Kind::Counter,
        None,
        "Captures found for orders whose hold had already ended: money owed back until refunded.",
    ),
    ("eventhive_orders_paid_total", Kind::Counter, None, "Orders paid: purchases completed."),
    ("eventhive_tickets_issued_total", Kind::Counter, None, "Tickets issued to buyers of paid orders."),
    ("eventhive_orders_refunded_total", Kind::Counter, None, "Paid orders refunded."),
    // Notifications.
    (
        "eventhive_emails_total",
        Kind::Counter,
        None,
        "Emails the sender finished with, by outcome: sent, retried or dead.",
    ),
    // The waiting room, and ticketing's check of its admissions.
    (
        "eventhive_waiting_room_admitted_total",
        Kind::Counter,
        None,
        "Buyers the waiting room's admission loop admitted (each place once, whichever replica).",
    ),
    (
        "eventhive_waiting_room_transitions_total",
        Kind::Counter,
        None,
        "Rooms' changes of state, by the state reached: opened, sold_out or resumed.",
    ),
    (
        "eventhive_admissions_checked_total",
        Kind::Counter,
        None,
        "Admission tokens ticketing checked for orders of events with a waiting room, by outcome: used, missing, forged, expired or not_yours.",
    ),
    // The outbox and the bus.
    ("eventhive_outbox_published_total", Kind::Counter, None, "Domain events the outbox relays published to the bus."),
    (
        "eventhive_outbox_backlog",
        Kind::Gauge,
        None,
        "Domain events committed to an outbox and not yet published, by database.",
    ),
    (
        "eventhive_bus_messages_handled_total",
        Kind::Counter,
        None,
        "Messages consumers handled, by queue and outcome: ok, retry or dead.",
    ),
    ("eventhive_bus_messages_in_flight", Kind::Gauge, None, "Messages a consumer is handling now, by queue."),
    (
        "eventhive_bus_message_lag_seconds",
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time from a domain event's occurrence to a consumer starting to handle it, by queue.",
    ),
    (
        "eventhive_bus_dead_letters",
        Kind::Gauge,
        None,
        "Messages parked in a queue's dead-letter queue, as last seen by this process, by queue.",
    ),
];

/// The exporter as EventHive configures it: explicit buckets, upkeep interval.
fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets(&DURATION_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("eventhive_bus_message_lag_seconds".into()), &LAG_BUCKETS)
        .map(|builder| builder.upkeep_timeout(UPKEEP_EVERY))
}

/// A recorder configured like the process-wide one but not installed, for tests that render
/// what they record (with `metrics::with_local_recorder`).
pub fn local_recorder() -> Result<PrometheusRecorder, BuildError> {
    Ok(builder()?.build_recorder())
}

/// Sends the descriptions of [`CATALOG`] to the current recorder.
pub fn describe() {
    for &(name, kind, unit, help) in CATALOG {
        match (kind, unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

/// Installs the process-wide recorder (once), describes the catalog and starts the upkeep;
/// `None` if another recorder was installed first.
pub fn recorder() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match builder().and_then(PrometheusBuilder::install_recorder) {
            Ok(handle) => {
                describe();
                start_upkeep(handle.clone());
                Some(handle)
            }
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed");
                None
            }
        })
        .clone()
}

/// Runs the exporter's upkeep every [`UPKEEP_EVERY`] for the life of the process. A thread of
/// its own rather than a task: the recorder outlives any one runtime (tests start many).
fn start_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "metrics upkeep not started; histograms are drained only when scraped");
    }
}

/// Binds the metrics listener if one is configured. Bind before serving, so that a taken port
/// stops the process at start-up with a clear message.
pub async fn bind(settings: &Settings) -> anyhow::Result<Option<TcpListener>> {
    let Some(port) = settings.metrics_port.filter(|_| settings.metrics_enabled) else { return Ok(None) };
    let address = format!("{}:{port}", settings.bind_host);
    let listener = TcpListener::bind(&address)
        .await
        .with_context(|| format!("the metrics listener cannot bind {address} (EVENTHIVE_METRICS_PORT)"))?;
    Ok(Some(listener))
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(handle) = recorder() else { return Ok(()) };
    let app = Router::new().route("/metrics", get(move || std::future::ready(handle.render())));
    tracing::info!(address = %listener.local_addr()?, "metrics listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_have_explicit_buckets_and_every_series_its_help() {
        let recorder = local_recorder().unwrap();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            metrics::histogram!("eventhive_http_request_duration_seconds", "method" => "GET", "route" => "/x")
                .record(0.003);
            metrics::histogram!("eventhive_bus_message_lag_seconds", "queue" => "q").record(42.0);
            metrics::counter!("eventhive_orders_paid_total").increment(1);
        });
        handle.run_upkeep();
        let text = handle.render();
        assert!(text.contains("# TYPE eventhive_http_request_duration_seconds histogram"), "{text}");
        assert!(
            text.contains(r#"eventhive_http_request_duration_seconds_bucket{method="GET",route="/x",le="0.005"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"eventhive_bus_message_lag_seconds_bucket{queue="q",le="120"} 1"#), "{text}");
        assert!(!text.contains("quantile="), "no summaries: {text}");
        assert!(text.contains("# HELP eventhive_orders_paid_total Orders paid"), "{text}");
    }

    #[test]
    fn the_catalog_names_each_series_once() {
        let mut names: Vec<_> = CATALOG.iter().map(|(name, ..)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
    }
}
