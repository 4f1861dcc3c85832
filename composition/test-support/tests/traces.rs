//! One purchase is one trace across services: the buyer's payment request continues the trace
//! its `traceparent` names through the gateway, ticketing's and payments' gRPC handlers, and the
//! consumers of the `OrderPaid` event that ticketing committed to its outbox.
//!
//! The spans go to an in-memory exporter installed in this test process (nextest runs each test
//! in a process of its own, so the global subscriber is this test's).

// A test file: a helper that fails, fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use eventhive_platform::telemetry;
use eventhive_test_support::{Backend, TestApp};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use reqwest::Method;
use serde_json::json;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A hop of the purchase: what it is, and how to tell its span.
type Hop<'a> = (&'a str, &'a dyn Fn(&SpanData) -> bool);

fn attribute(span: &SpanData, key: &str) -> String {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string()).unwrap_or_default()
}

fn describe(span: &SpanData) -> String {
    let fields: Vec<String> = span.attributes.iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect();
    format!("{} {} [{}]", span.span_context.trace_id(), span.name, fields.join(" "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_purchase_is_one_trace_across_services() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    assert!(telemetry::init_for_tests_with_traces(&provider), "another subscriber was installed first");

    let app = TestApp::spawn(Backend::Embedded).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = app.hold(&buyer, &sale, 2).await;
    let order_id = order["id"].as_str().unwrap();

    let response = app
        .request(Method::POST, &format!("/v1/orders/{order_id}/payment"), Some(&buyer))
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .header("idempotency-key", "trace-1")
        .json(&json!({"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());

    // What must be in the trace: (description, test on a span).
    let hops: [Hop; 5] = [
        ("the gateway's request", &|s| s.name == "http" && attribute(s, "path").ends_with("/payment")),
        ("ticketing's PayOrder handler", &|s| {
            s.name == "grpc" && attribute(s, "method").ends_with("Ticketing/PayOrder")
        }),
        ("payments' Charge handler", &|s| s.name == "grpc" && attribute(s, "method").ends_with("Payments/Charge")),
        ("analytics consuming OrderPaid", &|s| {
            s.name == "consume"
                && attribute(s, "routing_key") == "ticketing.order_paid.v1"
                && attribute(s, "queue") == "analytics.read-model"
        }),
        ("notifications consuming TicketsIssued", &|s| {
            s.name == "consume"
                && attribute(s, "routing_key") == "ticketing.tickets_issued.v1"
                && attribute(s, "queue") == "notifications.email"
        }),
    ];
    // The consumers finish a moment after the answer.
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = exporter.get_finished_spans().unwrap();
        let in_trace: Vec<&SpanData> =
            spans.iter().filter(|s| s.span_context.trace_id().to_string() == TRACE_ID).collect();
        if hops.iter().all(|(_, is)| in_trace.iter().any(|s| is(s))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let in_trace: Vec<&SpanData> = spans.iter().filter(|s| s.span_context.trace_id().to_string() == TRACE_ID).collect();
    for (hop, is) in &hops {
        assert!(
            in_trace.iter().any(|s| is(s)),
            "{hop} is not in the purchase's trace {TRACE_ID}; spans seen:\n{}",
            spans.iter().map(describe).collect::<Vec<_>>().join("\n")
        );
    }
    // The outbox relay publishes outside the request, yet the consumers joined its trace: the
    // trace travelled in the envelope. And the place-order request was a trace of its own.
    assert!(
        spans.iter().any(|s| s.name == "http"
            && attribute(s, "path") == "/v1/orders"
            && s.span_context.trace_id().to_string() != TRACE_ID),
        "placing the order was a request of its own, in another trace"
    );
    app.shutdown().await;
    let _ = provider.shutdown();
}
