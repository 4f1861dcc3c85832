//! The error answers many routes share, for the OpenAPI document: listed in a route's
//! `responses(...)` before its own answers, which replace a shared one of the same status
//! (a route's 422 that says more than the generic one, say).
//!
//! - [`Always`]: every route — the rate limits (429) and the time bound or a service that
//!   does not answer (503).
//! - [`SignedIn`]: routes that need a bearer token (401).
//! - [`JsonBody`]: routes that read a JSON body (400, 413, 415, 422).
//! - [`ManagedEvent`]: routes that change an event, for its organization's owner and admins
//!   (403, 404).

use std::collections::BTreeMap;

use utoipa::{
    IntoResponses,
    openapi::{
        ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder,
        response::Response,
        schema::{ObjectBuilder, Type},
    },
};

/// Every route: 429 `rate-limited` and 503 `unavailable`, both with `Retry-After`.
pub struct Always;

impl IntoResponses for Always {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers([
            (
                "429",
                retry_after(problem(
                    "rate-limited: too many requests from this address or this user; wait `Retry-After` seconds",
                )),
            ),
            (
                "503",
                retry_after(problem(
                    "unavailable: a service the route needs did not answer, or the request took longer than its \
                     time bound; try again after `Retry-After` seconds",
                )),
            ),
        ])
    }
}

/// Routes that need a bearer token: 401 `unauthorized`.
pub struct SignedIn;

impl IntoResponses for SignedIn {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers([(
            "401",
            problem("unauthorized: no `Authorization: Bearer` access token, or one that is invalid or expired"),
        )])
    }
}

/// Routes that read a JSON body (API.md's Errors): 400, 413, 415 and 422.
pub struct JsonBody;

impl IntoResponses for JsonBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers([
            ("400", problem("bad-request: the body is missing or is not valid JSON")),
            ("413", problem("payload-too-large: bodies are limited to 1 MiB (1,048,576 bytes)")),
            ("415", problem("unsupported-media-type: a `Content-Type` other than `application/json`")),
            (
                "422",
                problem(
                    "validation: the body is not a JSON object, or a field is missing, of the wrong type or \
                     outside its schema's constraints; `errors` names each field",
                ),
            ),
        ])
    }
}

/// Routes that change an event (API.md's visibility rules): 403 `forbidden` and 404 `not-found`.
pub struct ManagedEvent;

impl IntoResponses for ManagedEvent {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers([
            (
                "403",
                problem("forbidden: the event is public but the caller is not an owner or admin of its organization"),
            ),
            ("404", problem("not-found: no such event, or a draft of an organization the caller is not in")),
        ])
    }
}

fn answers<const N: usize>(list: [(&str, ResponseBuilder); N]) -> BTreeMap<String, RefOr<Response>> {
    list.into_iter().map(|(status, response)| (status.to_owned(), RefOr::T(response.build()))).collect()
}

/// A problem+json answer.
fn problem(description: &str) -> ResponseBuilder {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
    ResponseBuilder::new().description(description).content("application/problem+json", content)
}

fn retry_after(response: ResponseBuilder) -> ResponseBuilder {
    let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1));
    let header = HeaderBuilder::new().schema(seconds).description(Some("Seconds to wait before trying again")).build();
    response.header("Retry-After", header)
}
