//! The public API reference committed in the repository, docs/openapi.json, is exactly what the
//! gateway serves at `/openapi.json`, so readers without a running gateway see the real thing.
//! After a change to the API, regenerate it with
//! `EVENTHIVE_UPDATE_OPENAPI=1 cargo nextest run -p eventhive-gateway --test openapi_document`
//! (or `cargo test`) and commit the file.

// A test file: a helper that fails, fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

use eventhive_test_support::{Backend, TestApp};
use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_openapi_document_is_what_the_gateway_serves() {
    // The document does not depend on the backend; the embedded one is enough.
    let app = TestApp::spawn(Backend::Embedded).await;
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    let served: Value = response.json().await.unwrap();
    let pretty = format!("{}\n", serde_json::to_string_pretty(&served).unwrap());

    if std::env::var_os("EVENTHIVE_UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(COMMITTED, &pretty).unwrap_or_else(|e| panic!("writing {COMMITTED}: {e}"));
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    let parsed: Value = serde_json::from_str(&committed).unwrap_or(Value::Null);
    assert!(
        parsed == served && committed == pretty,
        "docs/openapi.json is not what the gateway serves at /openapi.json; regenerate it with \
         `EVENTHIVE_UPDATE_OPENAPI=1 cargo nextest run -p eventhive-gateway --test openapi_document` and commit it"
    );
}
