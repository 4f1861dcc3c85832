//! API.md "Auth and people", black-box through the gateway, on both backends.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eventhive_test_support::{
    Backend, TestApp, api::PASSWORD, assert_problem, on_both_backends, problem::error_fields,
};
use serde_json::{Value, json};

on_both_backends!(
    registering_returns_the_account_and_emails_are_unique_case_insensitively,
    registration_checks_every_field,
    login_returns_a_bearer_token_pair,
    login_with_a_wrong_password_or_unknown_email_is_401,
    refresh_rotates_and_a_reused_token_revokes_the_family,
    logout_revokes_the_refresh_token,
    me_shows_the_account_and_its_organizations,
    me_requires_a_valid_unexpired_token,
    creating_an_organization_makes_the_caller_its_owner,
    owners_and_admins_add_members_and_nobody_picks_their_own_role,
    membership_changes_take_effect_at_once,
    failed_logins_delay_an_account_but_never_its_owners_known_client,
    expired_refresh_tokens_are_deleted,
);

async fn registering_returns_the_account_and_emails_are_unique_case_insensitively(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.register("Grace.Hopper@Example.com", PASSWORD, "Grace Hopper").await;
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.unwrap();
    assert!(uuid_like(&user["id"]));
    assert_eq!(user["email"], "Grace.Hopper@Example.com");
    assert_eq!(user["display_name"], "Grace Hopper");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let again = app.register("grace.hopper@example.COM", "another password", "Impostor").await;
    assert_problem(again, 409, "conflict").await;
}

async fn registration_checks_every_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let problem = assert_problem(app.register("not-an-email", "short", "").await, 422, "validation").await;
    let fields = error_fields(&problem);
    for field in ["email", "password", "display_name"] {
        assert!(fields.contains(&field.to_owned()), "{field} missing from {fields:?}");
    }
    // Bounds: 10 and 128 characters of password, 100 of display name.
    assert_eq!(app.register("a@example.com", &"p".repeat(10), "A").await.status(), 201);
    assert_problem(app.register("b@example.com", &"p".repeat(129), "B").await, 422, "validation").await;
    assert_eq!(app.register("c@example.com", &"p".repeat(128), &"n".repeat(100)).await.status(), 201);
    assert_problem(app.register("d@example.com", PASSWORD, &"n".repeat(101)).await, 422, "validation").await;
    // A missing field is a validation error naming the field.
    let problem = assert_problem(
        app.post("/v1/auth/register", None, &json!({"email": "e@example.com"})).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["password"]);
}

async fn login_returns_a_bearer_token_pair(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("ada@example.com", PASSWORD, "Ada").await;
    let response = app.login("ADA@example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900, "access tokens live 15 minutes by default");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3, "a JWT");
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 32);
    // The JWT names its signing key, and that key is published.
    let header = decode_segment(access.split('.').next().unwrap());
    assert_eq!(header["alg"], "EdDSA");
    let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == header["kid"] && k["crv"] == "Ed25519"));
}

async fn login_with_a_wrong_password_or_unknown_email_is_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("ada@example.com", PASSWORD, "Ada").await;
    let wrong = assert_problem(app.login("ada@example.com", "wrong password").await, 401, "unauthorized").await;
    let unknown = assert_problem(app.login("nobody@example.com", PASSWORD).await, 401, "unauthorized").await;
    assert_eq!(wrong["detail"], unknown["detail"], "the answer must not tell which accounts exist");
}

async fn refresh_rotates_and_a_reused_token_revokes_the_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.sign_up().await;
    let first = session.refresh_token.clone();

    let rotated = app.post("/v1/auth/refresh", None, &json!({"refresh_token": first})).await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(rotated["token_type"], "Bearer");
    // The new access token works.
    let me =
        app.client.get(app.url("/v1/me")).bearer_auth(rotated["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(me.status(), 200);

    // The first token was used: presenting it again is theft, and revokes the whole family...
    assert_problem(app.post("/v1/auth/refresh", None, &json!({"refresh_token": first})).await, 401, "unauthorized")
        .await;
    // ...so the legitimate newest token is dead too.
    assert_problem(app.post("/v1/auth/refresh", None, &json!({"refresh_token": second})).await, 401, "unauthorized")
        .await;
    // Other logins of the same user are other families and live on.
    let other: Value = app.login(&session.email, PASSWORD).await.json().await.unwrap();
    let refreshed = app.post("/v1/auth/refresh", None, &json!({"refresh_token": other["refresh_token"]})).await;
    assert_eq!(refreshed.status(), 200);
    // Garbage is simply invalid.
    assert_problem(
        app.post("/v1/auth/refresh", None, &json!({"refresh_token": "rt_forged"})).await,
        401,
        "unauthorized",
    )
    .await;
}

async fn logout_revokes_the_refresh_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.sign_up().await;
    let response = app.post("/v1/auth/logout", None, &json!({"refresh_token": session.refresh_token})).await;
    assert_eq!(response.status(), 204);
    assert_problem(
        app.post("/v1/auth/refresh", None, &json!({"refresh_token": session.refresh_token})).await,
        401,
        "unauthorized",
    )
    .await;
}

async fn me_shows_the_account_and_its_organizations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.sign_up().await;
    let me: Value = app.get("/v1/me", Some(&session)).await.json().await.unwrap();
    assert_eq!(me["id"], session.user_id.as_str());
    assert_eq!(me["email"], session.email.as_str());
    assert_eq!(me["display_name"], "Test User");
    assert_eq!(me["organizations"], json!([]));
}

async fn me_requires_a_valid_unexpired_token(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.set("access_token_ttl_secs", 1)).await;
    let session = app.sign_up().await;
    assert_problem(app.get("/v1/me", None).await, 401, "unauthorized").await;

    // Tampering with the payload (claiming another subject) breaks the signature.
    let mut parts: Vec<String> = session.access_token.split('.').map(str::to_owned).collect();
    let mut claims = decode_segment(&parts[1]);
    claims["sub"] = json!("00000000-0000-7000-8000-000000000000");
    parts[1] = encode_segment(&claims);
    let tampered = parts.join(".");
    let response = app.client.get(app.url("/v1/me")).bearer_auth(&tampered).send().await.unwrap();
    assert_problem(response, 401, "unauthorized").await;
    // An unsigned token ("alg": "none") is refused.
    let unsigned = format!("{}.{}.", encode_segment(&json!({"alg": "none", "typ": "JWT"})), parts[1]);
    let response = app.client.get(app.url("/v1/me")).bearer_auth(&unsigned).send().await.unwrap();
    assert_problem(response, 401, "unauthorized").await;
    // Not a bearer token at all.
    let response = app.client.get(app.url("/v1/me")).header("authorization", "Basic YTpi").send().await.unwrap();
    assert_problem(response, 401, "unauthorized").await;

    assert_eq!(app.get("/v1/me", Some(&session)).await.status(), 200);
    // Past expiry plus the gateway's clock-skew leeway.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let expired = assert_problem(app.get("/v1/me", Some(&session)).await, 401, "unauthorized").await;
    assert!(expired["detail"].as_str().unwrap().contains("expired"));
}

async fn creating_an_organization_makes_the_caller_its_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.sign_up().await;
    let response = app.post("/v1/organizations", Some(&session), &json!({"name": "Hive Live"})).await;
    assert_eq!(response.status(), 201);
    let organization: Value = response.json().await.unwrap();
    assert_eq!(organization["name"], "Hive Live");
    let me: Value = app.get("/v1/me", Some(&session)).await.json().await.unwrap();
    assert_eq!(me["organizations"], json!([{"id": organization["id"], "name": "Hive Live", "role": "owner"}]));

    assert_problem(app.post("/v1/organizations", None, &json!({"name": "x"})).await, 401, "unauthorized").await;
    assert_problem(app.post("/v1/organizations", Some(&session), &json!({"name": "  "})).await, 422, "validation")
        .await;
}

async fn owners_and_admins_add_members_and_nobody_picks_their_own_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, organization) = app.organizer().await;
    let admin = app.sign_up().await;
    let staff = app.sign_up().await;
    let outsider = app.sign_up().await;

    let response = app.add_member(&owner, &organization, &admin.email, "admin").await;
    assert_eq!(response.status(), 201);
    let member: Value = response.json().await.unwrap();
    assert_eq!(member["user_id"], admin.user_id.as_str());
    assert_eq!(member["role"], "admin");
    // Admins manage members too.
    assert_eq!(app.add_member(&admin, &organization, &staff.email, "staff").await.status(), 201);
    // Staff do not: they can see the organization, so 403.
    assert_problem(app.add_member(&staff, &organization, &outsider.email, "staff").await, 403, "forbidden").await;
    // An outsider cannot see it at all, and cannot add themselves: 404.
    assert_problem(app.add_member(&outsider, &organization, &outsider.email, "admin").await, 404, "not-found").await;
    // Ownership is never granted; unknown roles are validation errors.
    assert_problem(app.add_member(&owner, &organization, &outsider.email, "owner").await, 422, "validation").await;
    assert_problem(app.add_member(&owner, &organization, &outsider.email, "superuser").await, 422, "validation").await;
    // The email must belong to an account: a field error.
    let problem =
        assert_problem(app.add_member(&owner, &organization, "ghost@example.com", "staff").await, 422, "validation")
            .await;
    assert_eq!(error_fields(&problem), vec!["email"]);
    // Twice is a conflict.
    assert_problem(app.add_member(&owner, &organization, &admin.email, "staff").await, 409, "conflict").await;
    // An organization that does not exist is 404.
    let missing = format!("/v1/organizations/{}/members", "01900000-0000-7000-8000-000000000000");
    assert_problem(
        app.post(&missing, Some(&owner), &json!({"email": staff.email, "role": "staff"})).await,
        404,
        "not-found",
    )
    .await;
    let me: Value = app.get("/v1/me", Some(&staff)).await.json().await.unwrap();
    assert_eq!(me["organizations"][0]["role"], "staff");
}

async fn membership_changes_take_effect_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, organization) = app.organizer().await;
    let newcomer = app.sign_up().await;
    // Before: not a member, cannot create events there; the organization is not there for them.
    let body = app.event_body(&organization);
    assert_problem(app.post("/v1/events", Some(&newcomer), &body).await, 404, "not-found").await;
    app.add_member(&owner, &organization, &newcomer.email, "admin").await;
    // After: the same access token now carries the new role, since roles are read per request.
    assert_eq!(app.post("/v1/events", Some(&newcomer), &body).await.status(), 201);
}

fn uuid_like(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4)
}

fn decode_segment(segment: &str) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn encode_segment(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A login from `ip` (the gateway trusts `X-Forwarded-For` in this test, as behind a proxy).
async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    app.request(reqwest::Method::POST, "/v1/auth/login", None)
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Credential stuffing spread over many addresses: the per-address limit never trips, the
/// per-account delay does. The owner's usual client is never held back; a new client waits
/// at most the delay; an unknown email is delayed alike (the delay tells no account exists).
async fn failed_logins_delay_an_account_but_never_its_owners_known_client(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| settings.set("trust_forwarded_for", true)).await;
    let email = "ada@example.com";
    assert_eq!(app.register(email, PASSWORD, "Ada").await.status(), 201);
    assert_eq!(login_from(&app, "198.51.100.7", email, PASSWORD).await.status(), 200, "the owner's usual client");

    for attempt in 1..=3 {
        let wrong = login_from(&app, &format!("203.0.113.{attempt}"), email, "not the password").await;
        assert_problem(wrong, 401, "unauthorized").await;
    }
    let delayed = login_from(&app, "203.0.113.4", email, "not the password").await;
    let retry_after: u64 = delayed.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_problem(delayed, 429, "rate-limited").await;
    // Even the right password waits, from a client the account does not know.
    assert_problem(login_from(&app, "203.0.113.5", email, PASSWORD).await, 429, "rate-limited").await;
    // The owner's own client gets in at once.
    assert_eq!(login_from(&app, "198.51.100.7", email, PASSWORD).await.status(), 200);

    // An account that does not exist is delayed the same way.
    for attempt in 1..=3 {
        let unknown = login_from(&app, &format!("203.0.113.{attempt}"), "nobody@example.com", PASSWORD).await;
        assert_problem(unknown, 401, "unauthorized").await;
    }
    assert_problem(login_from(&app, "203.0.113.9", "nobody@example.com", PASSWORD).await, 429, "rate-limited").await;

    // The delay ends: a new client with the right password gets in, and that clears the count.
    for attempt in 1..=3 {
        assert_problem(login_from(&app, &format!("203.0.113.{attempt}"), email, "wrong").await, 401, "unauthorized")
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(login_from(&app, "192.0.2.1", email, PASSWORD).await.status(), 200);
    assert_problem(login_from(&app, "203.0.113.6", email, "wrong").await, 401, "unauthorized").await;
}

/// Refresh tokens used to stay forever; an expired one is deleted by the next prune.
async fn expired_refresh_tokens_are_deleted(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| settings.set("session_prune_interval_secs", 1)).await;
    let first = app.sign_up().await;
    let second = app.sign_up().await;
    let identity = app.database("identity").await;
    let count = |user: String| {
        let pool = identity.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM refresh_tokens WHERE user_id = $1")
                .bind(user)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    sqlx::query("UPDATE refresh_tokens SET expires_at = 0 WHERE user_id = $1")
        .bind(&first.user_id)
        .execute(identity.pool())
        .await
        .unwrap();
    let mut left = 1;
    for _ in 0..50 {
        left = count(first.user_id.clone()).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the expired token was not pruned");
    assert_eq!(count(second.user_id.clone()).await, 1, "a live token stays");
}
