//! The deployment's keys (issue 19): private keys are stored sealed with the secret key, and
//! `eventhive keys rotate` gives identity a new token-signing key while tokens signed with the
//! old one keep working until they expire, and tickets issued before still get in.

// A test file: a helper that fails, fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use eventhive_test_support::{Backend, TestApp, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    keys_are_sealed_at_rest_and_rotate_without_logging_anyone_out,
    a_key_identity_no_longer_publishes_stops_verifying_at_the_gateway,
);

/// The key id in an access token's header.
fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn stored_keys(app: &TestApp, service: &str, sql: &str) -> Vec<String> {
    let db = app.database(service).await;
    let keys = sqlx::query_scalar(sql).fetch_all(db.pool()).await.unwrap();
    db.close().await;
    keys
}

async fn keys_are_sealed_at_rest_and_rotate_without_logging_anyone_out(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| settings.set("signing_key_reload_secs", 1)).await;
    let sale = app.sale(10, |_| {}).await;
    let buyer = app.sign_up().await;
    let paid = app.buy(&buyer, &sale, 1).await;

    let sealed = |keys: Vec<String>| keys.iter().all(|key| key.starts_with("sealed:v1:"));
    let identity_keys = "SELECT private_key_pkcs8 FROM signing_keys";
    let event_keys = "SELECT signing_key_pkcs8 FROM events";
    assert!(sealed(stored_keys(&app, "identity", identity_keys).await), "token-signing keys are sealed");
    assert!(sealed(stored_keys(&app, "ticketing", event_keys).await), "event signing keys are sealed");

    let report = eventhive_system::keys::rotate(&app.settings, false).await.unwrap();
    assert_eq!(report.len(), 4, "{report:?}");
    assert_eq!(stored_keys(&app, "identity", identity_keys).await.len(), 2, "the old key stays to verify");

    // The old token still works; a login after the replicas reloaded signs with the new key.
    assert_eq!(app.get("/v1/me", Some(&buyer)).await.status(), 200);
    let mut fresh = String::new();
    for _ in 0..50 {
        let session = app.login(&buyer.email, &buyer.password).await.json::<Value>().await.unwrap();
        fresh = session["access_token"].as_str().unwrap().to_owned();
        if kid(&fresh) != kid(&buyer.access_token) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(kid(&fresh), kid(&buyer.access_token), "new logins sign with the new key");
    // The gateway asks identity for the keys on an unknown key id, at most every 5 s.
    let mut status = 0;
    for _ in 0..80 {
        let me = app.request(reqwest::Method::GET, "/v1/me", None).bearer_auth(&fresh).send().await.unwrap();
        status = me.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the gateway learns the new key");

    // A ticket issued before the rotation gets in; one sold after it is signed as well.
    let checkins = format!("/v1/events/{}/checkins", sale.event_id);
    let code = paid["tickets"][0]["code"].as_str().unwrap();
    assert_eq!(app.post(&checkins, Some(&sale.organizer), &json!({"code": code})).await.status(), 200);
    let later = app.buy(&buyer, &sale, 1).await;
    let code = later["tickets"][0]["code"].as_str().unwrap();
    assert_eq!(app.post(&checkins, Some(&sale.organizer), &json!({"code": code})).await.status(), 200);
    assert!(sealed(stored_keys(&app, "identity", identity_keys).await));
}

/// A key removed from identity (a leak) used to verify at the gateway for as long as the gateway
/// ran: it fetched keys only for a key id it had not seen. It now trusts its copy for
/// `EVENTHIVE_JWKS_CACHE_SECS`, so the removed key's tokens are refused soon after.
async fn a_key_identity_no_longer_publishes_stops_verifying_at_the_gateway(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.set("signing_key_reload_secs", 1);
        settings.set("jwks_cache_secs", 1);
    })
    .await;
    let buyer = app.sign_up().await;
    assert_eq!(app.get("/v1/me", Some(&buyer)).await.status(), 200);
    let identity = app.database("identity").await;
    sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
        .bind(kid(&buyer.access_token))
        .execute(identity.pool())
        .await
        .unwrap();
    identity.close().await;
    let mut status = 0;
    for _ in 0..80 {
        status = app.get("/v1/me", Some(&buyer)).await.status().as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401, "a token of the removed key is refused");
    // Identity signs with a new key, which the gateway learns.
    let session = app.login(&buyer.email, &buyer.password).await.json::<Value>().await.unwrap();
    let fresh = session["access_token"].as_str().unwrap().to_owned();
    let mut status = 0;
    for _ in 0..80 {
        let me = app.request(reqwest::Method::GET, "/v1/me", None).bearer_auth(&fresh).send().await.unwrap();
        status = me.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "a token of the new key verifies");
}
