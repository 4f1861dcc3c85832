//! Typed helpers that speak the public API, so that tests read as user stories.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::TestApp;

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub fn request(&self, method: Method, path: &str, session: Option<&Session>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match session {
            Some(session) => builder.bearer_auth(&session.access_token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, session: Option<&Session>) -> Response {
        self.request(Method::GET, path, session).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn post(&self, path: &str, session: Option<&Session>, body: &Value) -> Response {
        self.request(Method::POST, path, session).json(body).send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn patch(&self, path: &str, session: Option<&Session>, body: &Value) -> Response {
        self.request(Method::PATCH, path, session)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PATCH {path}: {e}"))
    }

    pub async fn put(&self, path: &str, session: Option<&Session>, body: &Value) -> Response {
        self.request(Method::PUT, path, session).json(body).send().await.unwrap_or_else(|e| panic!("PUT {path}: {e}"))
    }

    /// Sends raw bytes with the given content type (malformed-input tests).
    pub async fn post_raw(&self, path: &str, session: Option<&Session>, content_type: &str, body: Vec<u8>) -> Response {
        self.request(Method::POST, path, session)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn register(&self, email: &str, password: &str, display_name: &str) -> Response {
        self.post(
            "/v1/auth/register",
            None,
            &json!({"email": email, "password": password, "display_name": display_name}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post("/v1/auth/login", None, &json!({"email": email, "password": password})).await
    }

    /// Registers a new user with a unique email and logs them in.
    pub async fn sign_up(&self) -> Session {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let registered = self.register(&email, PASSWORD, "Test User").await;
        assert_eq!(registered.status(), 201, "register: {}", registered.text().await.unwrap_or_default());
        let user: Value = registered.json().await.unwrap_or_default();
        let tokens: Value = self.login(&email, PASSWORD).await.json().await.unwrap_or_default();
        Session {
            user_id: user["id"].as_str().unwrap_or_default().to_owned(),
            email,
            password: PASSWORD.to_owned(),
            access_token: tokens["access_token"].as_str().unwrap_or_default().to_owned(),
            refresh_token: tokens["refresh_token"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Creates an organization owned by `owner`; returns its id.
    pub async fn create_organization(&self, owner: &Session, name: &str) -> String {
        let response = self.post("/v1/organizations", Some(owner), &json!({"name": name})).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap_or_default();
        body["id"].as_str().unwrap_or_default().to_owned()
    }

    /// A new user who owns a new organization.
    pub async fn organizer(&self) -> (Session, String) {
        let owner = self.sign_up().await;
        let organization = self.create_organization(&owner, "Test Productions").await;
        (owner, organization)
    }

    pub async fn add_member(&self, actor: &Session, organization: &str, email: &str, role: &str) -> Response {
        self.post(
            &format!("/v1/organizations/{organization}/members"),
            Some(actor),
            &json!({"email": email, "role": role}),
        )
        .await
    }

    /// A valid event body, to adjust per test.
    pub fn event_body(&self, organization: &str) -> Value {
        json!({
            "organization_id": organization,
            "title": "Night of the Test Suite",
            "description": "Green bars as far as the eye can see.",
            "venue": {"name": "Paradiso", "city": "Amsterdam", "country": "NL"},
            "starts_at": "2027-06-01T19:30:00Z",
            "ends_at": "2027-06-01T23:00:00Z",
            "currency": "EUR",
            "max_tickets_per_order": 6
        })
    }

    /// Creates an event from `body`, asserting 201; returns it.
    pub async fn create_event(&self, organizer: &Session, body: &Value) -> Value {
        let response = self.post("/v1/events", Some(organizer), body).await;
        assert_eq!(response.status(), 201, "create event: {}", response.text().await.unwrap_or_default());
        response.json().await.unwrap_or_default()
    }

    pub async fn add_ticket_type(
        &self,
        organizer: &Session,
        event_id: &str,
        name: &str,
        price: i64,
        capacity: i64,
    ) -> Value {
        let response = self
            .post(
                &format!("/v1/events/{event_id}/ticket-types"),
                Some(organizer),
                &json!({"name": name, "price_minor": price, "capacity": capacity}),
            )
            .await;
        assert_eq!(response.status(), 201, "add ticket type: {}", response.text().await.unwrap_or_default());
        response.json().await.unwrap_or_default()
    }

    pub async fn publish(&self, organizer: &Session, event_id: &str) -> Value {
        let response = self.post(&format!("/v1/events/{event_id}/publish"), Some(organizer), &json!({})).await;
        assert_eq!(response.status(), 200, "publish: {}", response.text().await.unwrap_or_default());
        response.json().await.unwrap_or_default()
    }

    /// An on-sale event with one ticket type, from `body`.
    pub async fn on_sale_event(&self, organizer: &Session, body: &Value) -> Value {
        let event = self.create_event(organizer, body).await;
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        self.add_ticket_type(organizer, &id, "General Admission", 4500, 100).await;
        self.publish(organizer, &id).await
    }
}

/// The simulated processor's test cards (API.md).
pub mod cards {
    pub const SUCCEEDS: &str = "4242424242424242";
    pub const DECLINED: &str = "4000000000000002";
    pub const INSUFFICIENT_FUNDS: &str = "4000000000009995";
    pub const FAILS_FIRST_CALL: &str = "4000000000000119";
}

/// An event on sale with one ticket type, and who runs it.
#[derive(Debug, Clone)]
pub struct Sale {
    pub organizer: Session,
    pub organization: String,
    pub event_id: String,
    pub ticket_type_id: String,
}

impl TestApp {
    /// Publishes an event with one ticket type of `capacity` at 45.00 EUR; `adjust` may change
    /// the event body first (caps, start time).
    pub async fn sale(&self, capacity: i64, adjust: impl FnOnce(&mut Value)) -> Sale {
        let (organizer, organization) = self.organizer().await;
        let mut body = self.event_body(&organization);
        adjust(&mut body);
        let event = self.create_event(&organizer, &body).await;
        let event_id = event["id"].as_str().unwrap_or_default().to_owned();
        let ticket_type = self.add_ticket_type(&organizer, &event_id, "General Admission", 4500, capacity).await;
        self.publish(&organizer, &event_id).await;
        Sale {
            organizer,
            organization,
            event_id,
            ticket_type_id: ticket_type["id"].as_str().unwrap_or_default().to_owned(),
        }
    }

    pub async fn place_order(&self, buyer: &Session, event_id: &str, items: &[(&str, i64)], key: &str) -> Response {
        let items: Vec<Value> =
            items.iter().map(|(id, quantity)| json!({"ticket_type_id": id, "quantity": quantity})).collect();
        self.request(Method::POST, "/v1/orders", Some(buyer))
            .header("idempotency-key", key)
            .json(&json!({"event_id": event_id, "items": items}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /v1/orders: {e}"))
    }

    /// Places an order for `quantity` tickets of the sale, asserting 201; returns it.
    pub async fn hold(&self, buyer: &Session, sale: &Sale, quantity: i64) -> Value {
        let key = uuid::Uuid::new_v4().to_string();
        let response = self.place_order(buyer, &sale.event_id, &[(&sale.ticket_type_id, quantity)], &key).await;
        assert_eq!(response.status(), 201, "place order: {}", response.text().await.unwrap_or_default());
        response.json().await.unwrap_or_default()
    }

    pub async fn pay(&self, buyer: &Session, order_id: &str, card_number: &str, key: &str) -> Response {
        self.request(Method::POST, &format!("/v1/orders/{order_id}/payment"), Some(buyer))
            .header("idempotency-key", key)
            .json(&json!({"card": {"number": card_number, "exp_month": 12, "exp_year": 2035, "cvc": "123"}}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /v1/orders/{order_id}/payment: {e}"))
    }

    /// Holds and pays `quantity` tickets with the good test card, asserting success.
    pub async fn buy(&self, buyer: &Session, sale: &Sale, quantity: i64) -> Value {
        let order = self.hold(buyer, sale, quantity).await;
        let id = order["id"].as_str().unwrap_or_default().to_owned();
        let response = self.pay(buyer, &id, cards::SUCCEEDS, &uuid::Uuid::new_v4().to_string()).await;
        assert_eq!(response.status(), 200, "pay: {}", response.text().await.unwrap_or_default());
        response.json().await.unwrap_or_default()
    }

    /// Sold, held and available of the sale's ticket type, from ticketing's inventory.
    pub async fn stock(&self, ticket_type_id: &str) -> (i64, i64, i64) {
        let db = self.database("ticketing").await;
        let row: (i64, i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(sold), 0) AS BIGINT), CAST(COALESCE(SUM(held), 0) AS BIGINT), \
             CAST(COALESCE(SUM(available), 0) AS BIGINT) FROM inventory_shards WHERE ticket_type_id = $1",
        )
        .bind(ticket_type_id)
        .fetch_one(db.pool())
        .await
        .unwrap_or_else(|e| panic!("reading stock: {e}"));
        db.close().await;
        row
    }

    /// Captured (or later refunded) charges per order, from payments' own records and from the
    /// simulated processor's ledger: (payments rows, processor captures).
    pub async fn charges(&self, order_id: &str) -> (i64, i64) {
        let db = self.database("payments").await;
        let rows: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM payments WHERE order_id = $1 AND status IN ('captured', 'refunded')",
        )
        .bind(order_id)
        .fetch_one(db.pool())
        .await
        .unwrap_or_else(|e| panic!("reading payments: {e}"));
        let captures: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM simulated_processor_charges c JOIN payments p ON p.idempotency_key = c.idempotency_key \
             WHERE p.order_id = $1 AND c.kind = 'charge' AND c.outcome = 'captured'",
        )
        .bind(order_id)
        .fetch_one(db.pool())
        .await
        .unwrap_or_else(|e| panic!("reading the processor ledger: {e}"));
        db.close().await;
        (rows, captures)
    }
}
