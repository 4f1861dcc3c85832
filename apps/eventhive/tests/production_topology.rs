//! Issues 16 and 11 on the production topology: every service its own `eventhive serve` process, on
//! PostgreSQL, RabbitMQ and Redis. There the cancellation's domain event takes a real trip
//! through the broker, so if the cancel relied on it, an order placed right after the answer
//! would still be taken; the same for an update that lowers a cap. Run only when the
//! infrastructure is there.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use eventhive_test_support::{infra, topology::Topology};
use reqwest::{Client, Response};
use serde_json::{Value, json};

/// The public API of a running topology, as a buyer and an organizer use it.
struct Api {
    topology: Topology,
    client: Client,
}

impl Api {
    async fn post(&self, path: &str, token: Option<&str>, key: Option<&str>, body: &Value) -> Response {
        let mut request = self.client.post(self.topology.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    async fn created(&self, path: &str, token: Option<&str>, body: &Value) -> Value {
        let response = self.post(path, token, None, body).await;
        assert!(response.status().is_success(), "POST {path}: {}", response.text().await.unwrap_or_default());
        response.json().await.unwrap()
    }

    /// A new user, signed in: their access token.
    async fn sign_up(&self) -> String {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({"email": email, "password": "correct horse battery", "display_name": "Test User"});
        self.created("/v1/auth/register", None, &body).await;
        let login = json!({"email": email, "password": "correct horse battery"});
        self.created("/v1/auth/login", None, &login).await["access_token"].as_str().unwrap().to_owned()
    }

    /// An on-sale event of `organization` with one ticket type: (event id, ticket type id).
    async fn on_sale(&self, organizer: &str, organization: &str) -> (String, String) {
        let body = json!({
            "organization_id": organization, "title": "Topology Night", "description": "",
            "venue": {"name": "Paradiso", "city": "Amsterdam", "country": "NL"},
            "starts_at": "2027-06-01T19:30:00Z", "ends_at": "2027-06-01T23:00:00Z", "currency": "EUR"
        });
        let event = self.created("/v1/events", Some(organizer), &body).await;
        let event_id = event["id"].as_str().unwrap().to_owned();
        let ticket_type = json!({"name": "General Admission", "price_minor": 4500, "capacity": 100});
        let ticket_type =
            self.created(&format!("/v1/events/{event_id}/ticket-types"), Some(organizer), &ticket_type).await;
        self.created(&format!("/v1/events/{event_id}/publish"), Some(organizer), &json!({})).await;
        (event_id, ticket_type["id"].as_str().unwrap().to_owned())
    }

    async fn order(&self, buyer: &str, event_id: &str, ticket_type_id: &str) -> Response {
        let body = json!({"event_id": event_id, "items": [{"ticket_type_id": ticket_type_id, "quantity": 1}]});
        self.post("/v1/orders", Some(buyer), Some(&uuid::Uuid::new_v4().to_string()), &body).await
    }

    async fn cancel(&self, organizer: &str, event_id: &str) {
        let body = json!({"reason": "the band split up"});
        let response = self.post(&format!("/v1/events/{event_id}/cancel"), Some(organizer), None, &body).await;
        assert_eq!(response.status(), 200, "cancel: {}", response.text().await.unwrap_or_default());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_processes_a_cancelled_event_takes_no_order_and_no_payment() {
    if !infra::run_infra_test() {
        return;
    }
    let topology = Topology::start(Path::new(env!("CARGO_BIN_EXE_eventhive")), &[]).await;
    let api = Api { topology, client: Client::new() };
    let organizer = api.sign_up().await;
    let organization = api.created("/v1/organizations", Some(&organizer), &json!({"name": "Topo"})).await;
    let organization = organization["id"].as_str().unwrap().to_owned();
    let buyer = api.sign_up().await;

    for round in 0..20 {
        let (event_id, ticket_type_id) = api.on_sale(&organizer, &organization).await;
        if round % 2 == 0 {
            // Ticketing has sold this one before the cancel; the other rounds, maybe not.
            assert_eq!(api.order(&buyer, &event_id, &ticket_type_id).await.status(), 201);
        }
        api.cancel(&organizer, &event_id).await;
        let order = api.order(&buyer, &event_id, &ticket_type_id).await;
        assert_eq!(order.status(), 409, "round {round}: {}", order.text().await.unwrap_or_default());
    }

    let payments = api.topology.database("payments").await;
    for round in 0..5 {
        let (event_id, ticket_type_id) = api.on_sale(&organizer, &organization).await;
        let order = api.order(&buyer, &event_id, &ticket_type_id).await;
        assert_eq!(order.status(), 201);
        let order_id = order.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        api.cancel(&organizer, &event_id).await;
        let card = json!({"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}});
        let key = uuid::Uuid::new_v4().to_string();
        let paid = api.post(&format!("/v1/orders/{order_id}/payment"), Some(&buyer), Some(&key), &card).await;
        assert_eq!(paid.status(), 409, "round {round}: {}", paid.text().await.unwrap_or_default());
        let captured: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM payments WHERE order_id = $1 AND status IN ('pending', 'captured', 'refunded')",
        )
        .bind(&order_id)
        .fetch_one(payments.pool())
        .await
        .unwrap();
        assert_eq!(captured, 0, "round {round}: no charge for an order of a cancelled event");
    }
    payments.close().await;

    // A lower cap per order, like a cancellation, holds in ticketing when the organizer is told.
    for round in 0..10 {
        let (event_id, ticket_type_id) = api.on_sale(&organizer, &organization).await;
        if round % 2 == 0 {
            assert_eq!(api.order(&buyer, &event_id, &ticket_type_id).await.status(), 201);
        }
        let path = format!("/v1/events/{event_id}");
        let lowered = api
            .client
            .patch(api.topology.url(&path))
            .bearer_auth(&organizer)
            .json(&json!({"max_tickets_per_order": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(lowered.status(), 200, "round {round}: {}", lowered.text().await.unwrap_or_default());
        let body = json!({"event_id": event_id, "items": [{"ticket_type_id": ticket_type_id, "quantity": 2}]});
        let two = api.post("/v1/orders", Some(&buyer), Some(&uuid::Uuid::new_v4().to_string()), &body).await;
        assert_eq!(two.status(), 422, "round {round}: {}", two.text().await.unwrap_or_default());
    }
}

/// A service down (killed, as `eventhive chaos` does) leaves the gateway ready — its readiness
/// is its own, so a load balancer keeps it in rotation — and a route that needs the service
/// answers 503 `unavailable` with `Retry-After` at once instead of hanging; once the service is
/// back, the route works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_down_leaves_the_gateway_ready_and_its_routes_answer_503_with_retry_after() {
    if !infra::run_infra_test() {
        return;
    }
    let mut topology = Topology::start(Path::new(env!("CARGO_BIN_EXE_eventhive")), &[]).await;
    let client = Client::builder().timeout(std::time::Duration::from_secs(20)).build().unwrap();
    topology.kill("catalog");

    let ready = client.get(topology.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "readiness: {}", ready.text().await.unwrap_or_default());
    let events = client.get(topology.url("/v1/events")).send().await.unwrap();
    assert_eq!(events.status(), 503);
    assert!(events.headers().contains_key("retry-after"), "503 without Retry-After");
    let problem: Value = events.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap_or_default().ends_with("/unavailable"), "{problem}");

    topology.start_instance("catalog", &[]);
    assert!(topology.wait_ready("catalog", std::time::Duration::from_secs(60)).await);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = client.get(topology.url("/v1/events")).send().await.unwrap().status();
        if status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {status} after catalog came back");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
