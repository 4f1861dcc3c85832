//! API.md "Catalog", black-box through the gateway, on both backends: creating and changing
//! events, their visibility, search and paging, BOLA, and the domain events they announce.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use eventhive_platform::bus::{MessageHandler, Subscription};
use eventhive_test_support::{Backend, Session, TestApp, assert_problem, on_both_backends, problem::error_fields};
use serde_json::{Value, json};

on_both_backends!(
    an_organizer_creates_a_draft_event,
    event_fields_are_validated,
    only_owners_and_admins_of_the_organization_create_events,
    ticket_types_have_a_price_in_the_event_currency_and_a_capacity,
    patch_changes_only_the_given_fields,
    publish_puts_a_draft_on_sale_and_cancel_ends_it,
    drafts_are_visible_to_members_only,
    a_non_member_cannot_change_publish_or_cancel_another_organizations_event,
    staff_see_drafts_but_change_nothing,
    search_finds_on_sale_events_by_text_city_and_time,
    search_pages_with_opaque_tokens_until_null,
    search_parameters_are_validated,
    catalog_changes_are_announced_as_domain_events,
);

async fn an_organizer_creates_a_draft_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let mut body = app.event_body(&organization);
    body.as_object_mut().unwrap().remove("max_tickets_per_order");
    let event = app.create_event(&organizer, &body).await;
    assert_eq!(event["status"], "draft");
    assert_eq!(event["organization_id"], organization.as_str());
    assert_eq!(event["title"], "Night of the Test Suite");
    assert_eq!(event["venue"], json!({"name": "Paradiso", "city": "Amsterdam", "country": "NL"}));
    assert_eq!(event["starts_at"], "2027-06-01T19:30:00Z");
    assert_eq!(event["ends_at"], "2027-06-01T23:00:00Z");
    assert_eq!(event["currency"], "EUR");
    assert_eq!(event["max_tickets_per_order"], 10, "the default");
    assert_eq!(event["ticket_types"], json!([]));
    let fetched: Value =
        app.get(&format!("/v1/events/{}", event["id"].as_str().unwrap()), Some(&organizer)).await.json().await.unwrap();
    assert_eq!(fetched, event);
}

async fn event_fields_are_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let body = json!({
        "organization_id": organization,
        "title": "",
        "venue": {"name": "Paradiso", "city": "Amsterdam", "country": "XX"},
        "starts_at": "2027-06-01T19:30:00Z",
        "ends_at": "2027-06-01T18:00:00Z",
        "currency": "EURO",
        "max_tickets_per_order": 0
    });
    let problem = assert_problem(app.post("/v1/events", Some(&organizer), &body).await, 422, "validation").await;
    let fields = error_fields(&problem);
    for field in ["title", "venue.country", "ends_at", "currency", "max_tickets_per_order"] {
        assert!(fields.contains(&field.to_owned()), "{field} missing in {fields:?}");
    }
    let mut bad_time = app.event_body(&organization);
    bad_time["starts_at"] = json!("next friday");
    let problem = assert_problem(app.post("/v1/events", Some(&organizer), &bad_time).await, 422, "validation").await;
    assert_eq!(error_fields(&problem), vec!["starts_at"]);
    let mut wrong_type = app.event_body(&organization);
    wrong_type["venue"]["city"] = json!(42);
    let problem = assert_problem(app.post("/v1/events", Some(&organizer), &wrong_type).await, 422, "validation").await;
    assert_eq!(error_fields(&problem), vec!["venue.city"]);
}

async fn only_owners_and_admins_of_the_organization_create_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, organization) = app.organizer().await;
    let stranger = app.sign_up().await;
    let body = app.event_body(&organization);
    // Another organization's id, or one that does not exist, is not there for the caller: 404
    // (API.md), whatever else is wrong with the body. An id that is no id is a bad field.
    assert_problem(app.post("/v1/events", Some(&stranger), &body).await, 404, "not-found").await;
    let mut ghost = body.clone();
    ghost["organization_id"] = json!("01900000-0000-7000-8000-000000000000");
    assert_problem(app.post("/v1/events", Some(&owner), &ghost).await, 404, "not-found").await;
    ghost["organization_id"] = json!("not-an-id");
    let problem = assert_problem(app.post("/v1/events", Some(&owner), &ghost).await, 422, "validation").await;
    assert_eq!(error_fields(&problem), vec!["organization_id"]);
    assert_problem(app.post("/v1/events", None, &body).await, 401, "unauthorized").await;
    let admin = app.sign_up().await;
    app.add_member(&owner, &organization, &admin.email, "admin").await;
    assert_eq!(app.post("/v1/events", Some(&admin), &body).await.status(), 201);
}

async fn ticket_types_have_a_price_in_the_event_currency_and_a_capacity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let event = app.create_event(&organizer, &app.event_body(&organization)).await;
    let id = event["id"].as_str().unwrap();
    let ticket_type = app.add_ticket_type(&organizer, id, "Balcony", 4500, 120).await;
    assert_eq!(ticket_type["name"], "Balcony");
    assert_eq!(ticket_type["price"], json!({"amount_minor": 4500, "currency": "EUR"}));
    assert_eq!(ticket_type["capacity"], 120);
    let path = format!("/v1/events/{id}/ticket-types");
    let problem = assert_problem(
        app.post(&path, Some(&organizer), &json!({"name": "", "price_minor": -1, "capacity": 0})).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["name", "price_minor", "capacity"]);
    assert_problem(
        app.post(&path, Some(&organizer), &json!({"name": "Balcony", "price_minor": 1, "capacity": 1})).await,
        409,
        "conflict",
    )
    .await;
    let fetched: Value = app.get(&format!("/v1/events/{id}"), Some(&organizer)).await.json().await.unwrap();
    let listed = &fetched["ticket_types"][0];
    assert_eq!(listed["id"], ticket_type["id"]);
    assert_eq!(listed["available"], 120, "nothing sold yet");
}

async fn patch_changes_only_the_given_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let event = app.create_event(&organizer, &app.event_body(&organization)).await;
    let path = format!("/v1/events/{}", event["id"].as_str().unwrap());
    let response = app
        .patch(
            &path,
            Some(&organizer),
            &json!({"title": "Renamed", "venue": {"city": "Utrecht"}, "starts_at": "2027-06-01T20:00:00Z"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["title"], "Renamed");
    assert_eq!(changed["venue"], json!({"name": "Paradiso", "city": "Utrecht", "country": "NL"}));
    assert_eq!(changed["starts_at"], "2027-06-01T20:00:00Z");
    assert_eq!(changed["description"], event["description"]);
    assert_eq!(changed["ends_at"], event["ends_at"]);
    // The combination must still make sense.
    let problem = assert_problem(
        app.patch(&path, Some(&organizer), &json!({"ends_at": "2027-01-01T00:00:00Z"})).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["ends_at"]);
    assert_problem(
        app.patch(&path, Some(&organizer), &json!({"max_tickets_per_order": "ten"})).await,
        422,
        "validation",
    )
    .await;
}

async fn publish_puts_a_draft_on_sale_and_cancel_ends_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let event = app.create_event(&organizer, &app.event_body(&organization)).await;
    let id = event["id"].as_str().unwrap();
    let published = app.publish(&organizer, id).await;
    assert_eq!(published["status"], "on_sale");
    // Publishing again changes nothing.
    assert_eq!(app.publish(&organizer, id).await["status"], "on_sale");

    let cancel = format!("/v1/events/{id}/cancel");
    assert_problem(app.post(&cancel, Some(&organizer), &json!({"reason": ""})).await, 422, "validation").await;
    let response = app.post(&cancel, Some(&organizer), &json!({"reason": "The band broke up"})).await;
    assert_eq!(response.status(), 200);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "The band broke up");
    // Final: no second cancel, no publish, no change.
    assert_problem(app.post(&cancel, Some(&organizer), &json!({"reason": "again"})).await, 409, "conflict").await;
    assert_problem(app.post(&format!("/v1/events/{id}/publish"), Some(&organizer), &json!({})).await, 409, "conflict")
        .await;
    assert_problem(
        app.patch(&format!("/v1/events/{id}"), Some(&organizer), &json!({"title": "x"})).await,
        409,
        "conflict",
    )
    .await;
    // Cancelled events stay public, so buyers can see what happened, but leave the search.
    let anonymous: Value = app.get(&format!("/v1/events/{id}"), None).await.json().await.unwrap();
    assert_eq!(anonymous["status"], "cancelled");
    let found: Value = app.get("/v1/events", None).await.json().await.unwrap();
    assert!(found["items"].as_array().unwrap().iter().all(|e| e["id"] != id));
}

async fn drafts_are_visible_to_members_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let stranger = app.sign_up().await;
    let event = app.create_event(&organizer, &app.event_body(&organization)).await;
    let path = format!("/v1/events/{}", event["id"].as_str().unwrap());
    assert_problem(app.get(&path, None).await, 404, "not-found").await;
    assert_problem(app.get(&path, Some(&stranger)).await, 404, "not-found").await;
    assert_eq!(app.get(&path, Some(&organizer)).await.status(), 200);
    let found: Value = app.get("/v1/events", None).await.json().await.unwrap();
    assert_eq!(found["items"], json!([]), "drafts never appear in search");
    app.publish(&organizer, event["id"].as_str().unwrap()).await;
    assert_eq!(app.get(&path, None).await.status(), 200);
    assert_problem(app.get("/v1/events/01900000-0000-7000-8000-000000000000", None).await, 404, "not-found").await;
}

async fn a_non_member_cannot_change_publish_or_cancel_another_organizations_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (victim, organization) = app.organizer().await;
    let (attacker, _) = app.organizer().await;
    let draft = app.create_event(&victim, &app.event_body(&organization)).await;
    let on_sale = app.on_sale_event(&victim, &app.event_body(&organization)).await;
    for (event, status, slug) in [(&draft, 404, "not-found"), (&on_sale, 403, "forbidden")] {
        let id = event["id"].as_str().unwrap();
        let attempts = [
            app.patch(&format!("/v1/events/{id}"), Some(&attacker), &json!({"title": "Pwned"})).await,
            app.post(&format!("/v1/events/{id}/publish"), Some(&attacker), &json!({})).await,
            app.post(&format!("/v1/events/{id}/cancel"), Some(&attacker), &json!({"reason": "pwned"})).await,
            app.post(
                &format!("/v1/events/{id}/ticket-types"),
                Some(&attacker),
                &json!({"name": "Free", "price_minor": 0, "capacity": 1000}),
            )
            .await,
        ];
        for attempt in attempts {
            assert_problem(attempt, status, slug).await;
        }
        // Nothing changed.
        let now: Value = app.get(&format!("/v1/events/{id}"), Some(&victim)).await.json().await.unwrap();
        assert_eq!(now["title"], event["title"]);
        assert_eq!(now["status"], event["status"]);
        assert_eq!(now["ticket_types"], event["ticket_types"]);
    }
}

async fn staff_see_drafts_but_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, organization) = app.organizer().await;
    let staff = app.sign_up().await;
    app.add_member(&owner, &organization, &staff.email, "staff").await;
    let draft = app.create_event(&owner, &app.event_body(&organization)).await;
    let path = format!("/v1/events/{}", draft["id"].as_str().unwrap());
    assert_eq!(app.get(&path, Some(&staff)).await.status(), 200);
    assert_problem(app.patch(&path, Some(&staff), &json!({"title": "x"})).await, 403, "forbidden").await;
    assert_problem(app.post(&format!("{path}/publish"), Some(&staff), &json!({})).await, 403, "forbidden").await;
    assert_problem(app.post("/v1/events", Some(&staff), &app.event_body(&organization)).await, 403, "forbidden").await;
}

async fn publish_event_at(
    app: &TestApp,
    organizer: &Session,
    organization: &str,
    title: &str,
    city: &str,
    starts_at: &str,
) -> String {
    let mut body = app.event_body(organization);
    body["title"] = json!(title);
    body["description"] = json!(format!("All about {title}"));
    body["venue"]["city"] = json!(city);
    body["starts_at"] = json!(starts_at);
    body["ends_at"] = json!("2030-01-01T00:00:00Z");
    app.on_sale_event(organizer, &body).await["id"].as_str().unwrap().to_owned()
}

async fn search_finds_on_sale_events_by_text_city_and_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let jazz =
        publish_event_at(&app, &organizer, &organization, "Jazz Night", "Amsterdam", "2027-03-01T20:00:00Z").await;
    let rock =
        publish_event_at(&app, &organizer, &organization, "Rock Festival", "Utrecht", "2027-04-01T20:00:00Z").await;
    let gala = publish_event_at(
        &app,
        &organizer,
        &organization,
        "Gala of 100% Jazz_Fans",
        "amsterdam",
        "2027-05-01T20:00:00Z",
    )
    .await;

    let ids = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
    };
    let search = |query: &'static str| {
        let app = &app;
        async move {
            let response = app.get(&format!("/v1/events?{query}"), None).await;
            assert_eq!(response.status(), 200, "{query}");
            response.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(ids(&search("").await), vec![jazz.clone(), rock.clone(), gala.clone()], "soonest first");
    assert_eq!(ids(&search("q=JAZZ").await), vec![jazz.clone(), gala.clone()], "case-insensitive, title");
    assert_eq!(ids(&search("q=all%20about%20rock").await), vec![rock.clone()], "description");
    assert_eq!(ids(&search("q=100%25").await), vec![gala.clone()], "wildcards are literal");
    assert_eq!(ids(&search("q=z_f").await), vec![gala.clone()]);
    assert_eq!(ids(&search("city=AMSTERDAM").await), vec![jazz.clone(), gala.clone()]);
    assert_eq!(ids(&search("from=2027-04-01T20:00:00Z").await), vec![rock.clone(), gala.clone()], "from is inclusive");
    assert_eq!(ids(&search("to=2027-04-01T20:00:00Z").await), vec![jazz.clone(), rock.clone()], "to is inclusive");
    assert_eq!(ids(&search("q=jazz&city=amsterdam&from=2027-04-02T00:00:00Z").await), vec![gala.clone()]);
    assert_eq!(ids(&search("q=opera").await), Vec::<String>::new());
    let page = search("q=rock").await;
    assert_eq!(page["items"][0]["ticket_types"][0]["available"], 100);
    assert!(page["next_page_token"].is_null());
}

async fn search_pages_with_opaque_tokens_until_null(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, organization) = app.organizer().await;
    let mut expected = Vec::new();
    // Five events, two of them at the same time: the keyset must break the tie.
    for (i, at) in [
        "2027-01-01T10:00:00Z",
        "2027-01-02T10:00:00Z",
        "2027-01-02T10:00:00Z",
        "2027-01-03T10:00:00Z",
        "2027-01-04T10:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        expected.push(publish_event_at(&app, &organizer, &organization, &format!("Event {i}"), "Delft", at).await);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/events?page_size=2&page_token={t}"),
            None => "/v1/events?page_size=2".to_owned(),
        };
        let page: Value = app.get(&path, None).await.json().await.unwrap();
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let mut sorted_expected = expected.clone();
    // Same start time: ordered by id, which is how the keyset breaks ties.
    sorted_expected[1..3].sort();
    assert_eq!(seen, sorted_expected);
    // An event published while paging does not shift the pages already read.
    let page: Value = app.get("/v1/events?page_size=100", None).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert!(page["next_page_token"].is_null());
}

async fn search_parameters_are_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for query in [
        "page_size=0",
        "page_size=101",
        "page_size=ten",
        "page_token=forged",
        "from=yesterday",
        "to=2027-13-01T00:00:00Z",
    ] {
        let problem = assert_problem(app.get(&format!("/v1/events?{query}"), None).await, 422, "validation").await;
        let field = query.split('=').next().unwrap();
        assert_eq!(error_fields(&problem), vec![field], "{query}");
    }
    assert_eq!(app.get("/v1/events?page_size=100", None).await.status(), 200);
    assert_eq!(app.get("/v1/events?page_size=1", None).await.status(), 200);
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<eventhive_domain::events::Envelope>>,
}

#[eventhive_platform::async_trait::async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, envelope: &eventhive_domain::events::Envelope) -> anyhow::Result<()> {
        self.seen.lock().unwrap().push(envelope.clone());
        Ok(())
    }
}

async fn catalog_changes_are_announced_as_domain_events(backend: Backend) {
    use eventhive_domain::events::{EventCancelled, EventChanged, EventPublished};
    let app = TestApp::spawn(backend).await;
    let recorder = Arc::new(Recorder::default());
    let stop = eventhive_platform::shutdown::CancellationToken::new();
    app.bus.subscribe(Subscription::new("test.recorder", ["catalog.#"]), recorder.clone(), stop.clone()).await.unwrap();

    let (organizer, organization) = app.organizer().await;
    let event = app.on_sale_event(&organizer, &app.event_body(&organization)).await;
    let id = event["id"].as_str().unwrap();
    app.patch(&format!("/v1/events/{id}"), Some(&organizer), &json!({"starts_at": "2027-06-01T21:00:00Z"})).await;
    app.patch(&format!("/v1/events/{id}"), Some(&organizer), &json!({"description": "Now with fireworks"})).await;
    app.post(&format!("/v1/events/{id}/cancel"), Some(&organizer), &json!({"reason": "Storm"})).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if recorder.seen.lock().unwrap().len() >= 4 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = recorder.seen.lock().unwrap().clone();
    let keys: Vec<&str> = seen.iter().map(|e| e.routing_key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "catalog.event_published.v1",
            "catalog.event_changed.v1",
            "catalog.event_changed.v1",
            "catalog.event_cancelled.v1"
        ]
    );
    let published = seen[0].decode::<EventPublished>().unwrap();
    assert_eq!(published.event.event_id.to_string(), id);
    assert_eq!(published.event.ticket_types.len(), 1);
    assert_eq!(published.event.ticket_types[0].capacity, 100);
    let moved = seen[1].decode::<EventChanged>().unwrap();
    assert!(moved.time_changed && !moved.venue_changed);
    let described = seen[2].decode::<EventChanged>().unwrap();
    assert!(!described.time_changed && !described.venue_changed);
    assert_eq!(described.changed_fields, vec!["description"]);
    let cancelled = seen[3].decode::<EventCancelled>().unwrap();
    assert_eq!(cancelled.reason, "Storm");
    assert!(seen.iter().all(|e| e.source == "catalog" && e.request_id.is_some()), "source and trace context");
    let ids: std::collections::HashSet<_> = seen.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 4, "every event has its own id");
    stop.cancel();
}
