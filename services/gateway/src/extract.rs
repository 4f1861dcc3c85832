//! Extractors that turn every malformed request into a problem+json answer: a body that is not
//! JSON (400), of the wrong media type (415), too large (413), not an object or with fields of
//! the wrong type (422, naming the field); query strings that do not parse (422); path ids that
//! are not ids (404, since no such resource can exist).

use std::str::FromStr;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, header, request::Parts},
};
use eventhive_platform::{ErrorKind, Problem};
use serde::de::DeserializeOwned;

/// Largest body the API accepts.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON body of type `T`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = json_content_type(request.headers());
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(ErrorKind::PayloadTooLarge, format!("bodies are limited to {BODY_LIMIT} bytes"))
            } else {
                Problem::new(ErrorKind::BadRequest, format!("cannot read the body: {rejection}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Problem::new(ErrorKind::BadRequest, "a JSON body is required"));
        }
        match is_json {
            Some(true) | None => {}
            Some(false) => {
                return Err(Problem::new(
                    ErrorKind::UnsupportedMediaType,
                    "send the body as JSON with the header Content-Type: application/json",
                ));
            }
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// `Some(true)` for a JSON media type, `Some(false)` for another one, `None` when absent (curl
/// users forget it; the body then still has to be JSON).
fn json_content_type(headers: &HeaderMap) -> Option<bool> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    Some(essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")))
}

/// Parses `bytes` as JSON into `T`: syntax errors are 400, a non-object or a wrongly typed or
/// missing field 422 with its path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|error| Problem::new(ErrorKind::BadRequest, format!("the body is not valid JSON: {error}")))?;
    if !value.is_object() {
        return Err(Problem::validation("", "the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { String::new() } else { path };
        let message = clean_serde_message(&error.inner().to_string());
        let field = missing_field(&message).map(|name| join_path(&field, name)).unwrap_or(field);
        Problem::validation(field, message)
    })
}

/// Query parameters of type `T`; anything that does not parse is 422.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ApiQuery).map_err(|error| {
            let field = error.path().to_string();
            let message = clean_serde_message(&error.inner().to_string());
            Problem::validation(if field == "." { String::new() } else { field }, message)
        })
    }
}

/// The id in the path, as its type (`PathId<EventId>`): one of the UUID ids of
/// `eventhive_domain`. Anything else names no resource: 404.
pub struct PathId<T>(pub T);

impl<S: Send + Sync, T: FromStr<Err = uuid::Error>> FromRequestParts<S> for PathId<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::new(ErrorKind::NotFound, "no such resource"))?;
        path_id(&raw).map(PathId)
    }
}

/// An id from the path, or the 404 for one that cannot be ours.
fn path_id<T: FromStr<Err = uuid::Error>>(raw: &str) -> Result<T, Problem> {
    raw.parse().map_err(|_| Problem::new(ErrorKind::NotFound, format!("{raw:?} is not an id of ours")))
}

/// Two ids in the path (`PathIds<EventId, TicketTypeId>`), in their order there; as with
/// [`PathId`], anything else names no resource: 404.
pub struct PathIds<A, B>(pub A, pub B);

impl<S, A, B> FromRequestParts<S> for PathIds<A, B>
where
    S: Send + Sync,
    A: FromStr<Err = uuid::Error>,
    B: FromStr<Err = uuid::Error>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path((first, second)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|_| Problem::new(ErrorKind::NotFound, "no such resource"))?;
        Ok(PathIds(path_id(&first)?, path_id(&second)?))
    }
}

fn clean_serde_message(message: &str) -> String {
    // serde appends " at line 1 column 42", meaningless to a client who sent a JSON object.
    match message.find(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

fn join_path(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_owned() } else { format!("{parent}.{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        quantity: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }

    #[test]
    fn syntax_errors_are_400_and_type_errors_422_with_the_path() {
        assert_eq!(parse_json::<Body>(b"{").unwrap_err().status, 400);
        assert_eq!(parse_json::<Body>(b"[1]").unwrap_err().status, 422);
        let problem = parse_json::<Body>(br#"{"name":"x","items":[{"quantity":"two"}]}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "items[0].quantity");
        let problem = parse_json::<Body>(br#"{"items":[]}"#).unwrap_err();
        assert_eq!(problem.errors[0].field, "name");
    }
}
