//! Changing a ticket type (`PUT /v1/events/{id}/ticket-types/{ticket_type_id}`, an extension of
//! API.md), black-box through the gateway, on both backends: a draft's ticket types change as a
//! whole and are validated as new ones; once the event is on sale they stay as they are; only
//! the organization's owner and admins change them, and only the event's own.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eventhive_test_support::{Backend, Session, TestApp, assert_problem, on_both_backends, problem::error_fields};
use serde_json::{Value, json};

/// A draft event of a new organizer with one ticket type, "Balcony" (45.00, 120 tickets).
struct Draft {
    app: TestApp,
    organizer: Session,
    organization: String,
    id: String,
    balcony: Value,
}

impl Draft {
    async fn new(backend: Backend) -> Self {
        let app = TestApp::spawn(backend).await;
        let (organizer, organization) = app.organizer().await;
        let event = app.create_event(&organizer, &app.event_body(&organization)).await;
        let id = event["id"].as_str().unwrap().to_owned();
        let balcony = app.add_ticket_type(&organizer, &id, "Balcony", 4500, 120).await;
        Self { app, organizer, organization, id, balcony }
    }
}

on_both_backends!(
    a_drafts_ticket_type_changes_as_a_whole,
    a_changed_ticket_type_is_validated_as_a_new_one,
    ticket_types_on_sale_stay_as_they_are,
    only_the_organizations_managers_change_the_events_own_ticket_types,
);

async fn a_drafts_ticket_type_changes_as_a_whole(backend: Backend) {
    let Draft { app, organizer, id, balcony, .. } = Draft::new(backend).await;
    let id = id.as_str();
    let path = format!("/v1/events/{id}/ticket-types/{}", balcony["id"].as_str().unwrap());
    let response =
        app.put(&path, Some(&organizer), &json!({"name": "Upper balcony", "price_minor": 3900, "capacity": 80})).await;
    assert_eq!(response.status(), 200);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["id"], balcony["id"]);
    assert_eq!(changed["name"], "Upper balcony");
    assert_eq!(changed["price"], json!({"amount_minor": 3900, "currency": "EUR"}));
    assert_eq!(changed["capacity"], 80);
    // What the event says from now on, and what goes on sale when it is published.
    app.publish(&organizer, id).await;
    let fetched: Value = app.get(&format!("/v1/events/{id}"), None).await.json().await.unwrap();
    let listed = &fetched["ticket_types"][0];
    assert_eq!(listed["name"], "Upper balcony");
    assert_eq!(listed["price"]["amount_minor"], 3900);
    assert_eq!(listed["capacity"], 80);
}

async fn a_changed_ticket_type_is_validated_as_a_new_one(backend: Backend) {
    let Draft { app, organizer, id, balcony, .. } = Draft::new(backend).await;
    let id = id.as_str();
    app.add_ticket_type(&organizer, id, "Floor", 3500, 500).await;
    let path = format!("/v1/events/{id}/ticket-types/{}", balcony["id"].as_str().unwrap());
    let problem = assert_problem(
        app.put(&path, Some(&organizer), &json!({"name": "", "price_minor": -1, "capacity": 0})).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["name", "price_minor", "capacity"]);
    let problem =
        assert_problem(app.put(&path, Some(&organizer), &json!({"name": "Balcony"})).await, 422, "validation").await;
    assert!(!error_fields(&problem).is_empty(), "a change names all three fields: {problem}");
    // Two ticket types of one event never share a name.
    assert_problem(
        app.put(&path, Some(&organizer), &json!({"name": "Floor", "price_minor": 1, "capacity": 1})).await,
        409,
        "conflict",
    )
    .await;
    let fetched: Value = app.get(&format!("/v1/events/{id}"), Some(&organizer)).await.json().await.unwrap();
    let names: Vec<&str> =
        fetched["ticket_types"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"Balcony") && names.contains(&"Floor"), "nothing changed: {names:?}");
}

async fn ticket_types_on_sale_stay_as_they_are(backend: Backend) {
    let Draft { app, organizer, id, balcony, .. } = Draft::new(backend).await;
    let id = id.as_str();
    app.publish(&organizer, id).await;
    let path = format!("/v1/events/{id}/ticket-types/{}", balcony["id"].as_str().unwrap());
    let body = json!({"name": "Balcony", "price_minor": 100, "capacity": 10_000});
    assert_problem(app.put(&path, Some(&organizer), &body).await, 409, "conflict").await;
    let fetched: Value = app.get(&format!("/v1/events/{id}"), None).await.json().await.unwrap();
    assert_eq!(fetched["ticket_types"][0]["price"]["amount_minor"], 4500);
    assert_eq!(fetched["ticket_types"][0]["capacity"], 120);
    // A new ticket type is still welcome.
    app.add_ticket_type(&organizer, id, "Late release", 5500, 50).await;
}

async fn only_the_organizations_managers_change_the_events_own_ticket_types(backend: Backend) {
    let Draft { app, organizer, organization, id, balcony } = Draft::new(backend).await;
    let id = id.as_str();
    let path = format!("/v1/events/{id}/ticket-types/{}", balcony["id"].as_str().unwrap());
    let body = json!({"name": "Mine now", "price_minor": 1, "capacity": 1});
    assert_problem(app.put(&path, None, &body).await, 401, "unauthorized").await;
    // Someone else's draft does not exist for a stranger; staff see it but change nothing.
    let stranger = app.sign_up().await;
    assert_problem(app.put(&path, Some(&stranger), &body).await, 404, "not-found").await;
    let staff = app.sign_up().await;
    app.add_member(&organizer, &organization, &staff.email, "staff").await;
    assert_problem(app.put(&path, Some(&staff), &body).await, 403, "forbidden").await;
    // Another event's ticket type, and ids that are not ours, name nothing here.
    let other = app.create_event(&organizer, &app.event_body(&organization)).await;
    let other_path =
        format!("/v1/events/{}/ticket-types/{}", other["id"].as_str().unwrap(), balcony["id"].as_str().unwrap());
    assert_problem(app.put(&other_path, Some(&organizer), &body).await, 404, "not-found").await;
    assert_problem(
        app.put(&format!("/v1/events/{id}/ticket-types/not-an-id"), Some(&organizer), &body).await,
        404,
        "not-found",
    )
    .await;
    let fetched: Value = app.get(&format!("/v1/events/{id}"), Some(&organizer)).await.json().await.unwrap();
    assert_eq!(fetched["ticket_types"][0]["name"], "Balcony");
}
