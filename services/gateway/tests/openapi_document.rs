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

/// Every operation states the error answers its kind of route can give (API.md's Errors), so
/// that clients and fuzzers know them: the rate limits and the time bound everywhere, 401 where
/// a bearer token is required, and the body's 400/413/415/422 where a JSON body is read.
#[test]
fn every_operation_documents_the_answers_its_kind_of_route_can_give() {
    use utoipa::OpenApi;
    let document = serde_json::to_value(eventhive_gateway::ApiDoc::openapi()).unwrap();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let answers = operation["responses"].as_object().unwrap();
            let mut expected = vec!["429", "503"];
            if operation.get("security").is_some() {
                expected.push("401");
            }
            if operation["requestBody"]["content"].get("application/json").is_some() {
                expected.extend(["400", "413", "415", "422"]);
            }
            for status in expected {
                let answer =
                    &answers.get(status).unwrap_or_else(|| panic!("{method} {path} does not document {status}"));
                assert!(
                    answer["content"].get("application/problem+json").is_some(),
                    "{method} {path}: {status} is not a problem+json answer"
                );
            }
        }
    }
}
