//! API.md "Errors" and "Operations": whatever a client sends, the answer is a 4xx
//! problem+json, never a 5xx; rate limits answer 429 with Retry-After; the whole API is
//! published as OpenAPI 3.1. On both backends.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eventhive_test_support::{Backend, TestApp, assert_problem, on_both_backends, problem::error_fields};
use serde_json::{Value, json};

on_both_backends!(
    malformed_json_and_missing_bodies_are_400,
    bodies_of_the_wrong_shape_are_422_naming_the_field,
    unknown_enum_values_are_422,
    oversized_bodies_are_413,
    other_media_types_are_415,
    bad_ids_in_the_path_are_404,
    unknown_routes_are_404_and_wrong_methods_405,
    rate_limits_answer_429_with_retry_after,
    each_user_has_a_rate_limit_of_their_own,
    the_api_is_published_as_openapi_3_1_with_a_docs_page,
    health_readiness_request_ids_and_cors,
    metrics_are_served_on_their_own_port,
    the_dev_inbox_is_not_served_outside_dev_mode,
);

async fn the_dev_inbox_is_not_served_outside_dev_mode(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.dev_mode = false).await;
    assert_problem(app.get("/dev/mail", None).await, 404, "not-found").await;
}

async fn metrics_are_served_on_their_own_port(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.metrics_port = Some(0)).await;
    assert_eq!(app.get("/v1/events", None).await.status(), 200);
    let port = app.settings.metrics_port.unwrap();
    let metrics = app.client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("eventhive_http_requests_total{method=\"GET\",route=\"/v1/events\",status=\"200\"}"),
        "{text}"
    );
    // Never on the public port.
    assert_problem(app.get("/metrics", None).await, 404, "not-found").await;
}

async fn malformed_json_and_missing_bodies_are_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for body in [&b"{\"email\": "[..], b"not json", b"{\"a\":1}}"] {
        assert_problem(
            app.post_raw("/v1/auth/register", None, "application/json", body.to_vec()).await,
            400,
            "bad-request",
        )
        .await;
    }
    assert_problem(app.post_raw("/v1/auth/login", None, "application/json", vec![]).await, 400, "bad-request").await;
    // A route that needs a body, sent without one.
    let (organizer, organization) = app.organizer().await;
    let event = app.create_event(&organizer, &app.event_body(&organization)).await;
    let cancel = format!("/v1/events/{}/cancel", event["id"].as_str().unwrap());
    let response = app.request(reqwest::Method::POST, &cancel, Some(&organizer)).send().await.unwrap();
    assert_problem(response, 400, "bad-request").await;
}

async fn bodies_of_the_wrong_shape_are_422_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for body in [json!([1, 2]), json!("text"), json!(42), json!(null)] {
        assert_problem(app.post("/v1/auth/register", None, &body).await, 422, "validation").await;
    }
    let problem = assert_problem(
        app.post("/v1/auth/register", None, &json!({"email": 5, "password": "0123456789", "display_name": "x"})).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["email"]);
    let (organizer, organization) = app.organizer().await;
    let event = app.create_event(&organizer, &app.event_body(&organization)).await;
    let path = format!("/v1/events/{}/ticket-types", event["id"].as_str().unwrap());
    let problem = assert_problem(
        app.post(&path, Some(&organizer), &json!({"name": "GA", "price_minor": "free", "capacity": 10})).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["price_minor"]);
    let problem = assert_problem(
        app.post(&path, Some(&organizer), &json!({"name": "GA", "price_minor": 1.5, "capacity": 10})).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["price_minor"]);
    let problem = assert_problem(
        app.post(&path, Some(&organizer), &json!({"name": "GA", "price_minor": 100, "capacity": 1e30})).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["capacity"]);
}

async fn unknown_enum_values_are_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, organization) = app.organizer().await;
    let other = app.sign_up().await;
    let problem =
        assert_problem(app.add_member(&owner, &organization, &other.email, "emperor").await, 422, "validation").await;
    assert_eq!(error_fields(&problem), vec!["role"]);
}

async fn oversized_bodies_are_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let huge = format!("{{\"email\":\"{}\"}}", "a".repeat(1024 * 1024 + 1));
    assert_problem(
        app.post_raw("/v1/auth/register", None, "application/json", huge.into_bytes()).await,
        413,
        "payload-too-large",
    )
    .await;
    // Just under the limit is read (and then judged on its content).
    let fits = format!("{{\"email\":\"{}\"}}", "a".repeat(1024 * 1000));
    assert_problem(
        app.post_raw("/v1/auth/register", None, "application/json", fits.into_bytes()).await,
        422,
        "validation",
    )
    .await;
}

async fn other_media_types_are_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = br#"{"email":"a@example.com","password":"0123456789"}"#.to_vec();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/xml"] {
        assert_problem(
            app.post_raw("/v1/auth/login", None, content_type, body.clone()).await,
            415,
            "unsupported-media-type",
        )
        .await;
    }
    // JSON with parameters, or a +json type, is JSON.
    assert_problem(
        app.post_raw("/v1/auth/login", None, "application/json; charset=utf-8", body.clone()).await,
        401,
        "unauthorized",
    )
    .await;
}

async fn bad_ids_in_the_path_are_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, _) = app.organizer().await;
    for path in ["/v1/events/not-a-uuid", "/v1/events/123", "/v1/events/01900000-0000-7000-8000-00000000000Z"] {
        assert_problem(app.get(path, None).await, 404, "not-found").await;
    }
    assert_problem(app.patch("/v1/events/nope", Some(&organizer), &json!({"title": "x"})).await, 404, "not-found")
        .await;
    assert_problem(
        app.post("/v1/organizations/nope/members", Some(&organizer), &json!({"email": "a@b.co", "role": "staff"}))
            .await,
        404,
        "not-found",
    )
    .await;
}

async fn unknown_routes_are_404_and_wrong_methods_405(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_problem(app.get("/v1/nothing-here", None).await, 404, "not-found").await;
    assert_problem(app.get("/v1/auth/login", None).await, 405, "method-not-allowed").await;
    let response = app.request(reqwest::Method::DELETE, "/v1/events", None).send().await.unwrap();
    assert_problem(response, 405, "method-not-allowed").await;
}

async fn rate_limits_answer_429_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.set("rate_limit_ip_per_sec", 5);
        s.set("rate_limit_user_per_sec", 0);
    })
    .await;
    // Per IP: a burst of twice the rate, then 429 (a slow machine may refill a token or two).
    let mut allowed = 0;
    let mut limited = None;
    for _ in 0..40 {
        let response = app.get("/healthz", None).await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
        allowed += 1;
    }
    let response = limited.expect("the IP limit never answered 429");
    assert!((10..=20).contains(&allowed), "{allowed} requests went through before the limit");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_problem(response, 429, "rate-limited").await;
}

async fn each_user_has_a_rate_limit_of_their_own(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.set("rate_limit_ip_per_sec", 1000);
        s.set("rate_limit_user_per_sec", 2);
    })
    .await;
    let alice = app.sign_up().await;
    let bob = app.sign_up().await;
    let mut limited = false;
    for _ in 0..30 {
        let response = app.get("/v1/me", Some(&alice)).await;
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            assert_problem(response, 429, "rate-limited").await;
            limited = true;
            break;
        }
    }
    assert!(limited, "the user limit never answered 429");
    // Another user from the same address is not affected.
    assert_eq!(app.get("/v1/me", Some(&bob)).await.status(), 200);
}

async fn the_api_is_published_as_openapi_3_1_with_a_docs_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = document["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/auth/register", "post"),
        ("/v1/auth/login", "post"),
        ("/v1/auth/refresh", "post"),
        ("/v1/auth/logout", "post"),
        ("/v1/me", "get"),
        ("/v1/organizations", "post"),
        ("/v1/organizations/{id}/members", "post"),
        ("/v1/organizations/{id}/members", "get"),
        ("/v1/organizations/{id}/events", "get"),
        ("/v1/events", "post"),
        ("/v1/events", "get"),
        ("/v1/events/{id}", "get"),
        ("/v1/events/{id}", "patch"),
        ("/v1/events/{id}/ticket-types", "post"),
        ("/v1/events/{id}/publish", "post"),
        ("/v1/events/{id}/cancel", "post"),
        ("/v1/events/{id}/checkins", "post"),
        ("/v1/events/{id}/checkin-key", "get"),
        ("/v1/events/{id}/orders", "get"),
        ("/v1/events/{id}/attendees", "get"),
        ("/v1/orders", "post"),
        ("/v1/orders/{id}", "get"),
        ("/v1/orders/{id}/payment", "post"),
        ("/v1/orders/{id}/cancel", "post"),
        ("/v1/me/orders", "get"),
        ("/v1/me/tickets", "get"),
        ("/v1/events/{id}/analytics", "get"),
        ("/v1/events/{id}/analytics/stream", "get"),
        ("/dev/mail", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not documented");
    }
    assert!(document["components"]["schemas"]["Problem"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    // The interactive page is served from the binary: it works offline.
    let page = app.get("/docs/", None).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger"));
}

async fn health_readiness_request_ids_and_cors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), 200);
    assert!(ready.headers().contains_key("x-request-id"), "every answer carries its request id");
    let response = app
        .request(reqwest::Method::GET, "/v1/events", None)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let preflight = app
        .request(reqwest::Method::OPTIONS, "/v1/events", None)
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type, idempotency-key")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
}
