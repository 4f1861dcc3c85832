//! The extension `GET /v1/organizations/{id}/events`, black-box through the gateway, on both
//! backends: every event of the organization whatever its status, for its members only, paged
//! like the public search.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eventhive_test_support::{Backend, Session, TestApp, assert_problem, on_both_backends, problem::error_fields};
use serde_json::{Value, json};

on_both_backends!(
    members_see_every_event_of_their_organization_drafts_and_cancelled_too,
    the_list_pages_with_opaque_tokens_until_null,
    outsiders_and_bad_parameters_are_refused,
);

async fn event_at(app: &TestApp, organizer: &Session, organization: &str, title: &str, starts_at: &str) -> String {
    let mut body = app.event_body(organization);
    body["title"] = json!(title);
    body["starts_at"] = json!(starts_at);
    body["ends_at"] = json!("2030-01-01T00:00:00Z");
    app.create_event(organizer, &body).await["id"].as_str().unwrap().to_owned()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

async fn members_see_every_event_of_their_organization_drafts_and_cancelled_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, organization) = app.organizer().await;
    let draft = event_at(&app, &owner, &organization, "Draft", "2027-03-01T20:00:00Z").await;
    let on_sale = event_at(&app, &owner, &organization, "On sale", "2027-01-01T20:00:00Z").await;
    app.add_ticket_type(&owner, &on_sale, "Standing", 2500, 40).await;
    app.publish(&owner, &on_sale).await;
    let cancelled = event_at(&app, &owner, &organization, "Cancelled", "2027-02-01T20:00:00Z").await;
    let path = format!("/v1/events/{cancelled}/cancel");
    assert_eq!(app.post(&path, Some(&owner), &json!({"reason": "Rain"})).await.status(), 200);
    // Another organization's event is not in the list.
    let (other, other_organization) = app.organizer().await;
    event_at(&app, &other, &other_organization, "Theirs", "2027-01-15T20:00:00Z").await;

    let list = format!("/v1/organizations/{organization}/events");
    let response = app.get(&list, Some(&owner)).await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(ids(&page), vec![on_sale.clone(), cancelled.clone(), draft.clone()], "soonest first");
    let statuses: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["on_sale", "cancelled", "draft"]);
    assert_eq!(page["items"][0]["ticket_types"][0]["available"], 40, "with what is left for sale");
    assert!(page["next_page_token"].is_null());

    // Staff are members too: they see the drafts they check tickets in for.
    let staff = app.sign_up().await;
    assert_eq!(app.add_member(&owner, &organization, &staff.email, "staff").await.status(), 201);
    let page: Value = app.get(&list, Some(&staff)).await.json().await.unwrap();
    assert_eq!(ids(&page).len(), 3);
}

async fn the_list_pages_with_opaque_tokens_until_null(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, organization) = app.organizer().await;
    let mut expected = Vec::new();
    // Two at the same time: the keyset breaks the tie by id.
    for (i, at) in ["2027-01-01T10:00:00Z", "2027-01-02T10:00:00Z", "2027-01-02T10:00:00Z"].iter().enumerate() {
        expected.push(event_at(&app, &owner, &organization, &format!("Event {i}"), at).await);
    }
    expected[1..3].sort();
    let mut seen = Vec::new();
    let mut path = format!("/v1/organizations/{organization}/events?page_size=2");
    for _ in 0..3 {
        let page: Value = app.get(&path, Some(&owner)).await.json().await.unwrap();
        seen.extend(ids(&page));
        match page["next_page_token"].as_str() {
            Some(token) => path = format!("/v1/organizations/{organization}/events?page_size=2&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

async fn outsiders_and_bad_parameters_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, organization) = app.organizer().await;
    event_at(&app, &owner, &organization, "Secret draft", "2027-01-01T10:00:00Z").await;
    let list = format!("/v1/organizations/{organization}/events");
    // An organization one is not in is not there (API.md: 404, never 403).
    let outsider = app.sign_up().await;
    assert_problem(app.get(&list, Some(&outsider)).await, 404, "not-found").await;
    assert_problem(app.get(&list, None).await, 401, "unauthorized").await;
    let nobody = "/v1/organizations/0190a1b2-0000-7000-8000-000000000000/events";
    assert_problem(app.get(nobody, Some(&owner)).await, 404, "not-found").await;
    assert_problem(app.get("/v1/organizations/not-an-id/events", Some(&owner)).await, 404, "not-found").await;
    for query in ["page_size=0", "page_size=101", "page_token=forged"] {
        let problem = assert_problem(app.get(&format!("{list}?{query}"), Some(&owner)).await, 422, "validation").await;
        assert_eq!(error_fields(&problem), vec![query.split('=').next().unwrap()], "{query}");
    }
}
