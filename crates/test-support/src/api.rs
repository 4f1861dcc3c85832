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
