//! Assertions on error answers.

use serde_json::Value;

/// Asserts that `response` is an RFC 9457 problem with `status` and the stable `slug`, and
/// returns its body for further checks.
pub async fn assert_problem(response: reqwest::Response, status: u16, slug: &str) -> Value {
    let actual = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(actual, status, "status; body: {body}");
    assert!(content_type.starts_with("application/problem+json"), "content type {content_type:?}; body: {body}");
    let type_uri = body["type"].as_str().unwrap_or_default();
    assert!(type_uri.ends_with(&format!("/{slug}")), "type {type_uri:?}, expected slug {slug}; body: {body}");
    assert_eq!(body["status"], status, "status field; body: {body}");
    assert!(body["title"].is_string() && body["detail"].is_string(), "title and detail; body: {body}");
    body
}

/// The field paths of a validation problem's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}
