//! The storefront served at `/` (eventhive-web): HTML pages beside an unchanged JSON API, the
//! session in HttpOnly SameSite cookies, and no form accepted without this browser's CSRF
//! token. The journeys themselves run in a real browser (tests/browser). Embedded backend:
//! the pages are a client of the API, whichever backend is under it.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use eventhive_platform::storage::{ms_to_rfc3339, now_ms};
use eventhive_test_support::{Backend, Session, TestApp, assert_problem};
use reqwest::{Method, Response, redirect::Policy};
use serde_json::json;

/// A client that shows redirects instead of following them, and keeps no cookies of its own.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

fn set_cookies(response: &Response) -> Vec<String> {
    response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

fn cookie_value(cookies: &[String], name: &str) -> String {
    let prefix = format!("{name}=");
    let cookie = cookies.iter().find(|c| c.starts_with(&prefix)).unwrap_or_else(|| panic!("no {name} in {cookies:?}"));
    cookie[prefix.len()..].split(';').next().unwrap().to_owned()
}

async fn post_form(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)]) -> Response {
    browser()
        .post(app.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(form))
        .send()
        .await
        .unwrap()
}

fn form_body(form: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(form).unwrap()
}

/// Signs `user` in through the login page; returns the browser's cookies.
async fn signed_in(app: &TestApp, user: &Session) -> String {
    let login = [("email", user.email.as_str()), ("password", user.password.as_str()), ("csrf", "ours")];
    let response = post_form(app, "/login", "eh_csrf=ours", &login).await;
    assert_eq!(response.status(), 303);
    format!("eh_csrf=ours; eh_access={}", cookie_value(&set_cookies(&response), "eh_access"))
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    let response = browser().get(app.url(path)).header("cookie", cookie).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_storefront_is_served_at_the_root_beside_an_unchanged_api() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let page = browser().get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let csrf = set_cookies(&page);
    assert!(csrf[0].starts_with("eh_csrf=") && csrf[0].ends_with("; Path=/; HttpOnly; SameSite=Lax"), "{csrf:?}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>Events</h1>") && html.contains(r#"<main id="main" tabindex="-1">"#), "{html}");

    let css = browser().get(app.url("/static/style.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // The API answers as before: JSON, problems for unknown routes, and no page in its document.
    let events = app.get("/v1/events", None).await;
    assert_eq!(events.headers()["content-type"], "application/json");
    assert_problem(app.get("/no/such/route", None).await, 404, "not-found").await;
    let document = app.get("/openapi.json", None).await.text().await.unwrap();
    assert!(!document.contains("/hold") && !document.contains("\"/login\""));
    // A page that does not exist is the API's 404, as every unknown path.
    assert_problem(app.get("/events", None).await, 404, "not-found").await;
}

#[tokio::test]
async fn a_form_without_this_browser_s_csrf_token_is_refused() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let user = app.sign_up().await;
    let login = [("email", user.email.as_str()), ("password", user.password.as_str()), ("next", "/my/tickets")];
    // No CSRF cookie at all, then a token that is not the cookie's.
    let refused = post_form(&app, "/login", "", &[&login[..], &[("csrf", "")]].concat()).await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("This form has expired"));
    let refused = post_form(&app, "/login", "eh_csrf=ours", &[&login[..], &[("csrf", "theirs")]].concat()).await;
    assert_eq!(refused.status(), 403);
    // The right token, but sent from another site.
    let cross_site = browser()
        .post(app.url("/login"))
        .header("cookie", "eh_csrf=ours")
        .header("origin", "https://elsewhere.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[&login[..], &[("csrf", "ours")]].concat()))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);

    let wrong_password = [("email", user.email.as_str()), ("password", "not the password"), ("csrf", "ours")];
    let refused = post_form(&app, "/login", "eh_csrf=ours", &wrong_password).await;
    assert_eq!(refused.status(), 401);
    assert!(refused.text().await.unwrap().contains("match an account"));

    let signed_in = post_form(&app, "/login", "eh_csrf=ours", &[&login[..], &[("csrf", "ours")]].concat()).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/my/tickets");
}

#[tokio::test]
async fn the_session_lives_in_http_only_cookies_and_renews_itself() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let user = app.sign_up().await;
    let login = [("email", user.email.as_str()), ("password", user.password.as_str()), ("csrf", "ours")];
    // `next` only ever leads to a page of this site.
    let away =
        post_form(&app, "/login", "eh_csrf=ours", &[&login[..], &[("next", "//elsewhere.example")]].concat()).await;
    assert_eq!(away.headers()["location"], "/");
    let cookies = set_cookies(&away);
    for name in ["eh_access", "eh_refresh"] {
        let cookie = cookies.iter().find(|c| c.starts_with(&format!("{name}="))).unwrap();
        assert!(cookie.contains("; HttpOnly; SameSite=Lax; Max-Age="), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    }

    let access = cookie_value(&cookies, "eh_access");
    let mine = browser().get(app.url("/my/orders")).header("cookie", format!("eh_access={access}")).send().await;
    let mine = mine.unwrap();
    assert_eq!(mine.status(), 200);
    assert!(mine.text().await.unwrap().contains("<h1>My orders</h1>"));
    let anonymous = browser().get(app.url("/my/orders")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/login?next=%2Fmy%2Forders");

    // Without an access token, the refresh token renews the session (and rotates).
    let refresh = cookie_value(&cookies, "eh_refresh");
    let renewed = browser().get(app.url("/my/tickets")).header("cookie", format!("eh_refresh={refresh}")).send().await;
    let renewed = renewed.unwrap();
    assert_eq!(renewed.status(), 200);
    let cookies = set_cookies(&renewed);
    assert_ne!(cookie_value(&cookies, "eh_refresh"), refresh);
    assert!(!cookie_value(&cookies, "eh_access").is_empty());

    // Behind an https proxy the cookies are Secure and bound to the host.
    let secure = browser()
        .post(app.url("/login"))
        .header("cookie", "__Host-eh_csrf=ours")
        .header("x-forwarded-proto", "https")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&login))
        .send()
        .await
        .unwrap();
    assert_eq!(secure.status(), 303);
    let cookies = set_cookies(&secure);
    assert!(cookies.iter().all(|c| c.starts_with("__Host-eh_") && c.ends_with("; Secure")), "{cookies:?}");
}

#[tokio::test]
async fn a_buyer_waits_in_the_room_then_holds_with_the_admission() {
    // The admission loop never runs by itself here: the test steps it.
    let app = TestApp::spawn_with(Backend::Embedded, |s| s.set("waiting_room_tick_ms", 3_600_000)).await;
    let sale = app.sale(10, |_| {}).await;
    // Admission needs ticketing to count the sale's tickets (its copy of catalog follows events).
    let mut counted = false;
    for _ in 0..200 {
        counted = app.stock(&sale.ticket_type_id).await.2 == 10;
        if counted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(counted, "ticketing never counted the sale's tickets");
    let room = json!({"opens_at": ms_to_rfc3339(now_ms() - 3_600_000), "admit_per_minute": 60});
    let path = format!("/v1/events/{}/waiting-room", sale.event_id);
    let put = app.request(Method::PUT, &path, Some(&sale.organizer)).json(&room).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let buyer = app.sign_up().await;
    let cookie = signed_in(&app, &buyer).await;
    let event = format!("/events/{}", sale.event_id);

    let (status, html) = page(&app, &event, &cookie).await;
    assert_eq!(status, 200);
    assert!(html.contains("Go to the waiting room") && !html.contains("Hold tickets"), "{html}");
    let hold = [("csrf", "ours"), ("key", "k1")];
    let quantity = format!("qty-{}", sale.ticket_type_id);
    let hold = [&hold[..], &[(quantity.as_str(), "2")]].concat();
    // Holding before one's turn leads to the queue.
    let early = post_form(&app, &format!("{event}/hold"), &cookie, &hold).await;
    assert_eq!(early.headers()["location"], format!("{event}/queue"));

    let joined = post_form(&app, &format!("{event}/queue"), &cookie, &[("csrf", "ours")]).await;
    assert_eq!(joined.headers()["location"], format!("{event}/queue"));
    let (_, html) = page(&app, &format!("{event}/queue"), &cookie).await;
    assert!(
        html.contains(r#"aria-live="polite""#) && html.contains("Your place in the queue: <strong>1</strong>"),
        "{html}"
    );
    assert!(html.contains("Nobody is ahead of you") && html.contains("data-poll-after="), "{html}");

    assert_eq!(app.admit(Duration::ZERO).await.admitted, 1);
    let (_, place) = page(&app, &format!("{event}/queue/place"), &cookie).await;
    assert!(place.contains("It's your turn!") && !place.contains("data-poll-after"), "{place}");
    assert!(!place.contains("<html"), "the place alone, for the page's script: {place}");
    let (_, html) = page(&app, &event, &cookie).await;
    assert!(html.contains("Hold tickets"), "{html}");
    // The page holds with the admission, which it reads from the place itself.
    let held = post_form(&app, &format!("{event}/hold"), &cookie, &hold).await;
    assert_eq!(held.status(), 303);
    assert!(held.headers()["location"].to_str().unwrap().starts_with("/orders/"));
}

#[tokio::test]
async fn the_live_dashboard_is_for_the_organization_only() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let sale = app.sale(10, |_| {}).await;
    let dashboard = format!("/manage/events/{}", sale.event_id);
    let buyer = signed_in(&app, &app.sign_up().await).await;
    let (status, html) = page(&app, &dashboard, &buyer).await;
    assert_eq!(status, 403);
    assert!(html.contains("Not for you"), "{html}");

    let organizer = signed_in(&app, &sale.organizer).await;
    let (status, html) = page(&app, &dashboard, &organizer).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<dd data-figure="tickets_available">10</dd>"#), "{html}");
    // The live stream is the API's, passed through: its first event comes at once.
    let live = browser().get(app.url(&format!("{dashboard}/live"))).header("cookie", &organizer).send().await.unwrap();
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let mut live = live;
    let first = tokio::time::timeout(Duration::from_secs(10), live.chunk()).await.unwrap().unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: analytics"), "{first:?}");
}
