//! The extensions `GET /v1/events/{id}/orders` and `GET /v1/events/{id}/attendees`,
//! black-box through the gateway, on both backends: an event's orders and tickets with their
//! buyers, for the organization's owner and admins, as JSON pages or (`format=csv`) one CSV file.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eventhive_test_support::{Backend, TestApp, assert_problem, on_both_backends, problem::error_fields};
use serde_json::Value;

on_both_backends!(
    owners_and_admins_page_through_an_event_s_orders_with_their_buyers,
    the_exports_are_csv_files_with_every_row,
    only_owners_and_admins_see_the_exports,
);

async fn owners_and_admins_page_through_an_event_s_orders_with_their_buyers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let (first, second) = (app.sign_up().await, app.sign_up().await);
    let paid = app.buy(&first, &sale, 2).await;
    let held = app.hold(&second, &sale, 1).await;

    let orders = format!("/v1/events/{}/orders", sale.event_id);
    let page: Value = app.get(&format!("{orders}?page_size=1"), Some(&sale.organizer)).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], held["id"], "newest first");
    assert_eq!(page["items"][0]["status"], "pending_payment");
    assert_eq!(page["items"][0]["buyer"]["email"], second.email.as_str());
    let token = page["next_page_token"].as_str().unwrap();
    let page: Value =
        app.get(&format!("{orders}?page_size=1&page_token={token}"), Some(&sale.organizer)).await.json().await.unwrap();
    assert_eq!(page["items"][0]["id"], paid["id"]);
    assert_eq!(page["items"][0]["buyer"]["id"], first.user_id.as_str());
    assert_eq!(page["items"][0]["total"]["amount_minor"], 9000);
    assert!(page["next_page_token"].is_null());

    let attendees: Value =
        app.get(&format!("/v1/events/{}/attendees", sale.event_id), Some(&sale.organizer)).await.json().await.unwrap();
    let items = attendees["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the paid order's two tickets");
    assert!(items.iter().all(|t| t["buyer"]["email"] == first.email.as_str() && t["order_id"] == paid["id"]));
    assert!(items.iter().all(|t| t["status"] == "valid" && t.get("code").is_none()), "no codes: {attendees}");

    // An admin reads them too.
    let admin = app.sign_up().await;
    assert_eq!(app.add_member(&sale.organizer, &sale.organization, &admin.email, "admin").await.status(), 201);
    assert_eq!(app.get(&orders, Some(&admin)).await.status(), 200);
    for query in ["page_size=0", "page_token=forged", "format=xml"] {
        let response = app.get(&format!("{orders}?{query}"), Some(&admin)).await;
        let problem = assert_problem(response, 422, "validation").await;
        assert_eq!(error_fields(&problem), vec![query.split('=').next().unwrap()], "{query}");
    }
}

async fn the_exports_are_csv_files_with_every_row(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let paid = app.buy(&buyer, &sale, 2).await;

    let response = app.get(&format!("/v1/events/{}/orders?format=csv", sale.event_id), Some(&sale.organizer)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert_eq!(disposition, format!("attachment; filename=\"orders-{}.csv\"", sale.event_id));
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "order_id,created_at,status,buyer_email,buyer_name,tickets,items,total,currency,paid_at");
    assert_eq!(lines.len(), 2, "{csv}");
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(row[0], paid["id"].as_str().unwrap());
    assert_eq!(
        (row[2], row[3], row[5], row[6], row[7], row[8]),
        ("paid", buyer.email.as_str(), "2", "2 x General Admission", "90.00", "EUR")
    );

    let response = app.get(&format!("/v1/events/{}/attendees?format=csv", sale.event_id), Some(&sale.organizer)).await;
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "ticket_id,ticket_type,status,checked_in_at,buyer_email,buyer_name,order_id");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1..].iter().all(|l| l.contains(&buyer.email) && l.ends_with(paid["id"].as_str().unwrap())));
}

async fn only_owners_and_admins_see_the_exports(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sale = app.sale(10, |_| {}).await;
    let staff = app.sign_up().await;
    assert_eq!(app.add_member(&sale.organizer, &sale.organization, &staff.email, "staff").await.status(), 201);
    let buyer = app.sign_up().await;
    for list in ["orders", "attendees"] {
        let path = format!("/v1/events/{}/{list}", sale.event_id);
        // An on-sale event is public, so a role that may not read it is 403 (API.md).
        assert_problem(app.get(&path, Some(&staff)).await, 403, "forbidden").await;
        assert_problem(app.get(&format!("{path}?format=csv"), Some(&buyer)).await, 403, "forbidden").await;
        assert_problem(app.get(&path, None).await, 401, "unauthorized").await;
        let unknown = format!("/v1/events/0190a1b2-0000-7000-8000-000000000000/{list}");
        assert_problem(app.get(&unknown, Some(&sale.organizer)).await, 404, "not-found").await;
    }
}
