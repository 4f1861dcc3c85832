//! The organizer's console (`/manage`, eventhive-web): organizations and members, an event
//! created, edited, given a ticket type, published, given a waiting room and cancelled, and the
//! exports, all through its forms; what the API refuses comes back in words beside the field.
//! The journey itself runs in a real browser (tests/browser/test_console.py). Embedded backend:
//! the pages are a client of the API, whichever backend is under it.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eventhive_test_support::{Backend, Session, TestApp};
use reqwest::redirect::Policy;
use serde_json::Value;

/// A browser signed in to the console: its cookies, and no redirect followed, so that each
/// answer is seen as it is.
struct Console<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: String,
}

impl<'a> Console<'a> {
    async fn sign_in(app: &'a TestApp, user: &Session) -> Self {
        let client = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
        let mut console = Self { app, client, cookie: "eh_csrf=ours".into() };
        let (status, _, headers) =
            console.post_raw("/login", &[("email", user.email.as_str()), ("password", user.password.as_str())]).await;
        assert_eq!(status, 303);
        let access = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("eh_access="))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .unwrap();
        console.cookie = format!("eh_csrf=ours; eh_access={access}");
        console
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.app.url(path)).header("cookie", &self.cookie).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Posts a form with this browser's CSRF token: the status, and where it leads or the page.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let (status, body, headers) = self.post_raw(path, form).await;
        let location = headers.get("location").map(|l| l.to_str().unwrap().to_owned());
        (status, location.unwrap_or(body))
    }

    async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, reqwest::header::HeaderMap) {
        let form = [form, &[("csrf", "ours")]].concat();
        let response = self
            .client
            .post(self.app.url(path))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&form).unwrap())
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, response.text().await.unwrap(), headers)
    }
}

async fn event_status(app: &TestApp, organizer: &Session, event_id: &str) -> Value {
    app.get(&format!("/v1/events/{event_id}"), Some(organizer)).await.json().await.unwrap()
}

const DETAILS: [(&str, &str); 9] = [
    ("title", "Console Night"),
    ("description", "Made in the console."),
    ("venue_name", "Paradiso"),
    ("venue_city", "Amsterdam"),
    ("venue_country", "NL"),
    ("starts_at", "2027-06-01T19:30"),
    ("ends_at", "2027-06-01T23:00"),
    ("currency", "EUR"),
    ("max_tickets_per_order", "6"),
];

fn details_with(changes: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    DETAILS.iter().map(|(k, v)| (*k, changes.iter().find(|(c, _)| c == k).map_or(*v, |(_, new)| *new))).collect()
}

#[tokio::test]
async fn an_organizer_creates_edits_publishes_and_cancels_an_event_in_the_console() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (organizer, organization) = app.organizer().await;
    let console = Console::sign_in(&app, &organizer).await;
    let (status, html) = console.get("/manage").await;
    assert_eq!(status, 200);
    assert!(html.contains("<h1>Organizer console</h1>") && html.contains("Test Productions"), "{html}");
    assert!(html.contains(&format!("/manage/organizations/{organization}/events/new")), "{html}");

    // The page's own checks, then the API's, each beside its field in words.
    let create = format!("/manage/organizations/{organization}/events");
    let (status, html) = console.post(&create, &details_with(&[("starts_at", "tomorrow")])).await;
    assert_eq!(status, 422);
    assert!(html.contains("Enter when the event starts, as a date and time"), "{html}");
    assert!(html.contains(r#"aria-describedby="starts_at-error starts_at-hint""#), "{html}");
    let (status, html) = console.post(&create, &details_with(&[("title", " "), ("venue_country", "XX")])).await;
    assert_eq!(status, 422);
    assert!(html.contains(r#"id="title-error">The title must be 1 to 200 characters.</span>"#), "{html}");
    assert!(html.contains("The country must be an ISO 3166-1 alpha-2 country code such as NL."), "{html}");
    assert!(html.contains(r#"value="Paradiso""#), "what was typed stays: {html}");

    let (status, location) = console.post(&create, &DETAILS).await;
    assert_eq!(status, 303);
    let event_id = location.strip_prefix("/manage/events/").and_then(|l| l.strip_suffix("/edit")).unwrap().to_owned();
    let page = format!("/manage/events/{event_id}");
    let (status, html) = console.get(&format!("{page}/edit")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Status: <strong>Draft</strong>") && html.contains(r#"value="2027-06-01T19:30""#), "{html}");

    let ticket = [("ticket_name", "Standing"), ("price", "25,5"), ("capacity", "forty")];
    let (status, html) = console.post(&format!("{page}/ticket-types"), &ticket).await;
    assert_eq!(status, 422);
    assert!(html.contains("Enter how many tickets of this type there are"), "{html}");
    let ticket = [("ticket_name", "Standing"), ("price", "25,5"), ("capacity", "40")];
    assert_eq!(console.post(&format!("{page}/ticket-types"), &ticket).await.0, 303);
    let (status, html) = console.post(&format!("{page}/ticket-types"), &ticket).await;
    assert_eq!(status, 409, "a name once per event: {html}");

    // A draft's ticket type changes on a page of its own, checked as a new one is.
    let draft = event_status(&app, &organizer, &event_id).await;
    let change = format!("{page}/ticket-types/{}", draft["ticket_types"][0]["id"].as_str().unwrap());
    let (_, html) = console.get(&format!("{page}/edit")).await;
    assert!(html.contains(&format!(r#"href="{change}""#)), "{html}");
    let (status, html) = console.get(&change).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"value="25.50""#) && html.contains(r#"value="40""#), "as it is: {html}");
    let (status, html) =
        console.post(&change, &[("ticket_name", "Standing"), ("price", "free"), ("capacity", "40")]).await;
    assert_eq!(status, 422);
    assert!(html.contains("Enter the price as an amount in EUR"), "{html}");
    let changed = [("ticket_name", "Standing front"), ("price", "30"), ("capacity", "50")];
    assert_eq!(console.post(&change, &changed).await.0, 303);

    let (status, _) = console.post(&format!("{page}/edit"), &details_with(&[("title", "Console Night II")])).await;
    assert_eq!(status, 303);
    assert_eq!(console.post(&format!("{page}/publish"), &[]).await.0, 303);
    let event = event_status(&app, &organizer, &event_id).await;
    assert_eq!((event["title"].as_str(), event["status"].as_str()), (Some("Console Night II"), Some("on_sale")));
    let standing = &event["ticket_types"][0];
    assert_eq!((standing["name"].as_str(), standing["capacity"].as_i64()), (Some("Standing front"), Some(50)));
    assert_eq!(standing["price"]["amount_minor"], 3000);
    // On sale, it stays as it is, and the page says why.
    let (status, html) = console.post(&change, &changed).await;
    assert_eq!(status, 409);
    assert!(html.contains("the ticket type stays as it is"), "{html}");

    let room = [("opens_at", "2030-01-01T10:00"), ("admit_per_minute", ""), ("admission_ttl_secs", "30")];
    let (status, html) = console.post(&format!("{page}/waiting-room"), &room).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains(r#"id="admission_ttl_secs-error""#), "{html}");
    let room = [("opens_at", "2030-01-01T10:00"), ("admit_per_minute", ""), ("admission_ttl_secs", "600")];
    assert_eq!(console.post(&format!("{page}/waiting-room"), &room).await.0, 303);
    let (_, html) = console.get(&format!("{page}/edit")).await;
    assert!(html.contains("Scheduled: buyers may join the queue") && html.contains("automatically"), "{html}");
    let (_, html) = console.get("/manage").await;
    assert!(html.contains("Console Night II") && html.contains("On sale"), "{html}");

    // Cancelling asks first.
    let (status, html) = console.get(&format!("{page}/cancel")).await;
    assert_eq!(status, 200);
    assert!(html.contains("<h1>Cancel Console Night II?</h1>"), "{html}");
    let (status, html) = console.post(&format!("{page}/cancel"), &[("reason", "The band is ill.")]).await;
    assert_eq!(status, 422);
    assert!(html.contains("Tick the box to confirm"), "{html}");
    let confirmed = [("reason", "The band is ill."), ("confirm", "yes")];
    assert_eq!(console.post(&format!("{page}/cancel"), &confirmed).await.0, 303);
    let event = event_status(&app, &organizer, &event_id).await;
    assert_eq!(
        (event["status"].as_str(), event["cancel_reason"].as_str()),
        (Some("cancelled"), Some("The band is ill."))
    );
}

#[tokio::test]
async fn members_are_added_in_the_console_and_staff_only_look() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let sale = app.sale(10, |_| {}).await;
    let owner = Console::sign_in(&app, &sale.organizer).await;
    let members = format!("/manage/organizations/{}/members", sale.organization);
    let (status, html) = owner.post(&members, &[("email", "nobody@example.test"), ("role", "staff")]).await;
    assert_eq!(status, 422);
    assert!(html.contains("Nobody has an account with this email"), "{html}");
    let staff = app.sign_up().await;
    let (status, _) = owner.post(&members, &[("email", staff.email.as_str()), ("role", "staff")]).await;
    assert_eq!(status, 303);
    let (_, html) = owner.get("/manage").await;
    assert!(html.contains(&format!("{} · <strong>staff</strong>", staff.email)), "{html}");
    let (status, html) = owner.post(&members, &[("email", staff.email.as_str()), ("role", "admin")]).await;
    assert_eq!(status, 409);
    assert!(html.contains("is a member already"), "{html}");

    let door = Console::sign_in(&app, &staff).await;
    let (status, html) = door.get("/manage").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Night of the Test Suite") && !html.contains("New event") && !html.contains("Add member"),
        "{html}"
    );
    let (status, html) = door.post(&format!("/manage/events/{}/publish", sale.event_id), &[]).await;
    assert_eq!(status, 403);
    assert!(html.contains("Only the organization's owner and admins manage its events."), "{html}");
    let (status, _) = door.get(&format!("/manage/events/{}/orders.csv", sale.event_id)).await;
    assert_eq!(status, 403);

    // Anyone creates an organization of their own; a blank name is said in words.
    let (status, html) = door.post("/manage/organizations", &[("name", " ")]).await;
    assert_eq!(status, 422);
    assert!(html.contains(r#"id="name-error""#), "{html}");
    assert_eq!(door.post("/manage/organizations", &[("name", "Door Folk")]).await.0, 303);
    let (_, html) = door.get("/manage").await;
    assert!(html.contains("Door Folk") && html.contains("Your role: owner"), "{html}");
}

#[tokio::test]
async fn the_exports_download_as_csv_files() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let order = app.buy(&buyer, &sale, 2).await;
    let console = Console::sign_in(&app, &sale.organizer).await;
    let (_, html) = console.get(&format!("/manage/events/{}/edit", sale.event_id)).await;
    assert!(html.contains(&format!(r#"href="/manage/events/{}/orders.csv""#, sale.event_id)), "{html}");
    let response = console
        .client
        .get(app.url(&format!("/manage/events/{}/orders.csv", sale.event_id)))
        .header("cookie", &console.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(response.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    let csv = response.text().await.unwrap();
    assert!(csv.contains(order["id"].as_str().unwrap()) && csv.contains(&buyer.email), "{csv}");
    let (status, csv) = console.get(&format!("/manage/events/{}/attendees.csv", sale.event_id)).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 3, "a header and two tickets: {csv}");
}
