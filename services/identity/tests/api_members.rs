//! The extension `GET /v1/organizations/{id}/members`, black-box through the gateway, on both
//! backends: an organization's members with their role, oldest first, for its members only.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eventhive_test_support::{Backend, TestApp, assert_problem, on_both_backends};
use serde_json::Value;

on_both_backends!(members_list_their_organization_with_roles, outsiders_see_no_members);

async fn members_list_their_organization_with_roles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, organization) = app.organizer().await;
    let admin = app.sign_up().await;
    let staff = app.sign_up().await;
    assert_eq!(app.add_member(&owner, &organization, &admin.email, "admin").await.status(), 201);
    assert_eq!(app.add_member(&admin, &organization, &staff.email, "staff").await.status(), 201);

    let path = format!("/v1/organizations/{organization}/members");
    // Every member reads the list, staff too.
    for reader in [&owner, &admin, &staff] {
        let response = app.get(&path, Some(reader)).await;
        assert_eq!(response.status(), 200);
        let list: Value = response.json().await.unwrap();
        let members: Vec<(&str, &str, &str)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["user_id"].as_str().unwrap(), m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
            .collect();
        assert_eq!(
            members,
            vec![
                (owner.user_id.as_str(), owner.email.as_str(), "owner"),
                (admin.user_id.as_str(), admin.email.as_str(), "admin"),
                (staff.user_id.as_str(), staff.email.as_str(), "staff"),
            ],
            "oldest first"
        );
        assert!(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["display_name"].is_string() && m["organization_id"] == organization.as_str())
        );
    }
}

async fn outsiders_see_no_members(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_owner, organization) = app.organizer().await;
    let path = format!("/v1/organizations/{organization}/members");
    // An organization one is not in is not there for them (API.md: 404, never 403).
    let outsider = app.sign_up().await;
    assert_problem(app.get(&path, Some(&outsider)).await, 404, "not-found").await;
    assert_problem(app.get(&path, None).await, 401, "unauthorized").await;
    let nobody = "/v1/organizations/0190a1b2-0000-7000-8000-000000000000/members";
    assert_problem(app.get(nobody, Some(&outsider)).await, 404, "not-found").await;
}
