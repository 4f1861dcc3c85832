//! The pages' client of the public API: requests sent to the gateway's API router in-process,
//! with the visitor's bearer token, client address and request id, answered as JSON exactly as
//! over HTTP. Problems (RFC 9457) come back as [`ApiError::Problem`], for pages to put in words.

use std::net::SocketAddr;

use axum::{
    body::{Body, to_bytes},
    extract::ConnectInfo,
    http::{Method, Request, StatusCode, header},
};
use serde::{Deserialize, de::DeserializeOwned};
use tower::ServiceExt;

/// The largest API answer a page reads: a page of events with their ticket types is far less.
const ANSWER_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct Api {
    router: axum::Router,
}

/// Who a request to the API is made for: their token, and what the rate limits and logs see.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub token: Option<String>,
    pub peer: Option<SocketAddr>,
    pub forwarded_for: Option<String>,
    pub request_id: Option<String>,
}

/// An RFC 9457 answer of the API.
#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    #[serde(skip)]
    pub status: u16,
    #[serde(rename = "type", default)]
    pub type_uri: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl Problem {
    /// The stable last segment of `type`: `sold-out`, `payment-declined`, ...
    pub fn kind(&self) -> &str {
        self.type_uri.rsplit('/').next().unwrap_or_default()
    }

    /// The validation messages, one per field, for a form to show.
    pub fn field_messages(&self) -> Vec<String> {
        self.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the API answered {} {}", .0.status, .0.type_uri)]
    Problem(Problem),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    /// The problem's kind, when the API answered one.
    pub fn kind(&self) -> Option<&str> {
        match self {
            ApiError::Problem(problem) => Some(problem.kind()),
            ApiError::Unexpected(_) => None,
        }
    }
}

/// A request to the API, built up before it is sent.
pub struct Call<'a> {
    api: &'a Api,
    caller: &'a Caller,
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    headers: Vec<(&'static str, String)>,
    live: bool,
}

impl Api {
    pub fn new(router: axum::Router) -> Self {
        Self { router }
    }

    pub fn get<'a>(&'a self, caller: &'a Caller, path: impl Into<String>) -> Call<'a> {
        self.call(caller, Method::GET, path.into())
    }

    pub fn post<'a>(&'a self, caller: &'a Caller, path: impl Into<String>, body: serde_json::Value) -> Call<'a> {
        self.with_body(caller, Method::POST, path.into(), body)
    }

    pub fn patch<'a>(&'a self, caller: &'a Caller, path: impl Into<String>, body: serde_json::Value) -> Call<'a> {
        self.with_body(caller, Method::PATCH, path.into(), body)
    }

    pub fn put<'a>(&'a self, caller: &'a Caller, path: impl Into<String>, body: serde_json::Value) -> Call<'a> {
        self.with_body(caller, Method::PUT, path.into(), body)
    }

    fn with_body<'a>(&'a self, caller: &'a Caller, method: Method, path: String, body: serde_json::Value) -> Call<'a> {
        let mut call = self.call(caller, method, path);
        call.body = Some(body);
        call
    }

    fn call<'a>(&'a self, caller: &'a Caller, method: Method, path: String) -> Call<'a> {
        Call { api: self, caller, method, path, body: None, headers: Vec::new(), live: false }
    }
}

impl Call<'_> {
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Asks for the answer read live, not served from what the API keeps for visitors who are
    /// not signed in: for a reader that keeps it itself.
    pub fn live(mut self) -> Self {
        self.live = true;
        self
    }

    /// Sends the request and reads a JSON answer.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        let path = self.path.clone();
        let body = self.send().await?;
        serde_json::from_slice(&body)
            .map_err(|error| anyhow::anyhow!("the API's answer to {path} did not parse: {error}").into())
    }

    /// Sends the request; a success's body is not needed.
    pub async fn done(self) -> Result<(), ApiError> {
        self.send().await.map(drop)
    }

    /// Sends the request; a success is passed on as it comes, body streaming (a live stream of
    /// Server-Sent Events stays open as long as the visitor's page).
    pub async fn stream(self) -> Result<axum::response::Response, ApiError> {
        let path = self.path.clone();
        let response = self.respond().await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(problem_of(response, &path).await)
    }

    async fn send(self) -> Result<axum::body::Bytes, ApiError> {
        let path = self.path.clone();
        let response = self.respond().await?;
        if !response.status().is_success() {
            return Err(problem_of(response, &path).await);
        }
        to_bytes(response.into_body(), ANSWER_LIMIT)
            .await
            .map_err(|e| anyhow::anyhow!("reading the API's answer to {path}: {e}").into())
    }

    async fn respond(self) -> Result<axum::response::Response, ApiError> {
        let mut request = Request::builder().method(self.method).uri(&self.path);
        if let Some(token) = &self.caller.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(forwarded) = &self.caller.forwarded_for {
            request = request.header("x-forwarded-for", forwarded);
        }
        if let Some(id) = &self.caller.request_id {
            request = request.header("x-request-id", id);
        }
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        let body = match &self.body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).map_err(|e| anyhow::anyhow!("building a request: {e}"))?;
        // The rate limits count the visitor's address, as for a request they made themselves.
        if let Some(peer) = self.caller.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        if self.live {
            request.extensions_mut().insert(eventhive_kept::ReadLive);
        }
        Ok(self.api.router.clone().oneshot(request).await.map_err(|e| anyhow::anyhow!("{e}"))?)
    }
}

/// The problem document of a failed answer.
async fn problem_of(response: axum::response::Response, path: &str) -> ApiError {
    let status = response.status();
    let Ok(bytes) = to_bytes(response.into_body(), ANSWER_LIMIT).await else {
        return anyhow::anyhow!("reading the API's answer to {path}").into();
    };
    match serde_json::from_slice::<Problem>(&bytes) {
        Ok(mut problem) => {
            problem.status = status.as_u16();
            ApiError::Problem(problem)
        }
        Err(_) => anyhow::anyhow!("the API answered {status} to {path} without a problem document").into(),
    }
}

/// Whether the API turned a request away for load (429 or 503): the page says "try again in
/// a moment" instead of an error.
pub fn is_busy(status: u16) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS.as_u16() || status == StatusCode::SERVICE_UNAVAILABLE.as_u16()
}
