//! What an operator watching an on-sale sees on `/metrics`: gRPC server calls by service,
//! method and code with their durations in explicit buckets, the outbox backlog, consumers'
//! lag and in-flight messages, and a `# HELP` line for each.

// A test file: a helper that fails, fails the test.
#![allow(clippy::unwrap_used)]

use eventhive_test_support::{Backend, TestApp, on_both_backends};

on_both_backends!(a_purchase_shows_on_the_metrics_port);

async fn a_purchase_shows_on_the_metrics_port(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.metrics_port = Some(0)).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    app.buy(&buyer, &sale, 2).await;

    let port = app.settings.metrics_port.unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let expected = [
        r#"eventhive_grpc_server_requests_total{service="eventhive.ticketing.v1.Ticketing",method="PayOrder",code="Ok"}"#,
        r#"eventhive_grpc_server_requests_total{service="eventhive.payments.v1.Payments",method="Charge",code="Ok"}"#,
        r#"eventhive_grpc_server_request_duration_seconds_bucket{service="eventhive.ticketing.v1.Ticketing",method="PlaceOrder",le="0.5"}"#,
        "# TYPE eventhive_grpc_server_request_duration_seconds histogram",
        "# HELP eventhive_orders_paid_total ",
        "eventhive_outbox_backlog{database=",
        r#"eventhive_bus_messages_in_flight{queue="analytics.read-model"}"#,
        r#"eventhive_bus_message_lag_seconds_bucket{queue="analytics.read-model",le="600"}"#,
    ];
    // The consumers and the relay's gauge follow the purchase by a moment.
    let mut text = String::new();
    for _ in 0..50 {
        text = app.client.get(&url).send().await.unwrap().text().await.unwrap();
        if expected.iter().all(|line| text.contains(line)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for line in expected {
        assert!(text.contains(line), "missing {line} in:\n{text}");
    }
    assert!(!text.contains("quantile="), "durations are histograms, not summaries:\n{text}");
}
