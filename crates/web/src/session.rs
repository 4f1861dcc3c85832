//! The visitor's session and the defences every page shares, in one middleware:
//! - the API tokens live in HttpOnly, SameSite=Lax cookies (Secure, with the `__Host-` prefix,
//!   when the site is served over https), so no script can read them; an access token that
//!   has run out is renewed with the refresh token before the page is made;
//! - every POST carries the CSRF token of the browser's own cookie in a form field (double
//!   submit), and a cross-site `Origin` is refused before the form is read;
//! - pages are never cached (but for an event's page as a visitor who is not signed in sees
//!   it, see `cache`), may not be framed, and run only the site's own scripts.

use std::net::SocketAddr;

use axum::{
    body::{Body, to_bytes},
    extract::{ConnectInfo, FromRequestParts, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    middleware::Next,
    response::Response,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;

use crate::{
    Web,
    api::{ApiError, Caller},
    layout,
};

/// The largest form a page posts (a card form, a quantity per ticket type) is well under this.
const FORM_LIMIT: usize = 64 * 1024;
/// The refresh token's cookie lasts as long as identity keeps refresh tokens by default.
const REFRESH_MAX_AGE_SECS: i64 = 30 * 24 * 3600;
/// The access token's cookie goes a little before the token does, so a page never sends a token
/// that expires on the way.
const ACCESS_MARGIN_SECS: i64 = 30;

/// One visit: who is calling and the browser's CSRF token, for the page handlers.
#[derive(Clone, Debug)]
pub struct Visit {
    pub caller: Caller,
    pub refresh: Option<String>,
    pub csrf: String,
    pub secure: bool,
    /// The page to come back to after signing in: this one, or for a form the page it is on
    /// (`/events/{id}/hold` is posted from `/events/{id}`).
    pub back: String,
}

impl Visit {
    pub fn signed_in(&self) -> bool {
        self.caller.token.is_some()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Visit {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Visit>().cloned().ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The fields of a posted form, read (and its CSRF token checked) by the middleware.
#[derive(Clone, Debug, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The field's value, trimmed; empty when it is missing.
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.trim()).unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Fields {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Fields>().cloned().unwrap_or_default())
    }
}

/// The tokens the API's login and refresh answer with.
#[derive(Debug, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: String,
}

pub async fn middleware(State(web): State<Web>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let secure = is_https(&parts.headers);
    let cookie = |name| cookie(&parts.headers, &cookie_name(name, secure));
    let (access, refresh, csrf) = (cookie(ACCESS), cookie(REFRESH), cookie(CSRF));
    let mut set_cookies = Vec::new();
    let mut new_csrf = None;
    let csrf = match csrf {
        Some(token) => token,
        None => {
            let token = random_token();
            new_csrf = Some(set_cookie(CSRF, &token, None, secure));
            token
        }
    };
    let mut visit = Visit {
        caller: Caller {
            token: access,
            peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| *peer),
            forwarded_for: header_string(&parts.headers, "x-forwarded-for"),
            request_id: header_string(&parts.headers, "x-request-id"),
        },
        refresh,
        csrf,
        secure,
        back: page_of(&parts.method, &parts.uri),
    };
    if visit.caller.token.is_none()
        && let Some(refresh) = visit.refresh.clone()
    {
        match web
            .api
            .post(&visit.caller, "/v1/auth/refresh", json!({ "refresh_token": refresh }))
            .json::<Tokens>()
            .await
        {
            Ok(tokens) => {
                set_cookies.extend(signed_in(&tokens, secure));
                visit.caller.token = Some(tokens.access_token);
                visit.refresh = Some(tokens.refresh_token);
            }
            Err(ApiError::Problem(problem)) if problem.status == 401 => {
                set_cookies.extend(signed_out(secure));
                visit.refresh = None;
            }
            Err(error) => tracing::warn!(error = %error, "renewing a session failed; the page is made signed out"),
        }
    }
    let body = if parts.method == Method::POST {
        match read_form(&parts.headers, body, &visit.csrf).await {
            Ok((fields, bytes)) => {
                parts.extensions.insert(fields);
                Body::from(bytes)
            }
            Err(refusal) => return refusal,
        }
    } else {
        body
    };
    parts.extensions.insert(visit);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let headers = response.headers_mut();
    // A page every visitor sees alike (`public`) has no form, so it needs no CSRF cookie, and
    // must not hand out one visitor's cookie from a shared cache; a session's cookies make it
    // that visitor's own.
    let shared = headers.get(header::CACHE_CONTROL).is_some_and(|value| value.as_bytes().starts_with(b"public"));
    if shared && !set_cookies.is_empty() {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !shared {
        set_cookies.extend(new_csrf);
    }
    for value in set_cookies {
        headers.append(header::SET_COOKIE, value);
    }
    for (name, value) in SECURITY_HEADERS {
        headers.entry(*name).or_insert(HeaderValue::from_static(value));
    }
    response
}

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("cache-control", "no-store"),
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
];

/// Reads a posted form after checking that it came from one of our pages: same origin when
/// the browser says where it came from, and the CSRF token of this browser's cookie.
async fn read_form(headers: &HeaderMap, body: Body, csrf: &str) -> Result<(Fields, Vec<u8>), Response> {
    let refuse = || {
        layout::problem_page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The page you sent it from was too old or came from another site. Go back, reload the page and try again.",
        )
    };
    if let (Some(origin), Some(host)) = (header_string(headers, "origin"), header_string(headers, "host"))
        && origin.split_once("://").map(|(_, rest)| rest) != Some(host.as_str())
    {
        return Err(refuse());
    }
    let bytes = to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| layout::problem_page(StatusCode::PAYLOAD_TOO_LARGE, "Too much", "That form was too large."))?;
    let fields = Fields(serde_urlencoded::from_bytes(&bytes).unwrap_or_default());
    if !same(fields.get("csrf"), csrf) {
        return Err(refuse());
    }
    Ok((fields, bytes.to_vec()))
}

/// The cookies of a new session.
pub fn signed_in(tokens: &Tokens, secure: bool) -> [HeaderValue; 2] {
    [
        set_cookie(ACCESS, &tokens.access_token, Some((tokens.expires_in - ACCESS_MARGIN_SECS).max(1)), secure),
        set_cookie(REFRESH, &tokens.refresh_token, Some(REFRESH_MAX_AGE_SECS), secure),
    ]
}

/// The cookies that end a session.
pub fn signed_out(secure: bool) -> [HeaderValue; 2] {
    [set_cookie(ACCESS, "", Some(0), secure), set_cookie(REFRESH, "", Some(0), secure)]
}

const ACCESS: &str = "eh_access";
const REFRESH: &str = "eh_refresh";
const CSRF: &str = "eh_csrf";

/// Over https the `__Host-` prefix makes the browser refuse the cookie unless it is Secure,
/// for this host only and for every path: a sibling subdomain cannot plant a CSRF token.
fn cookie_name(name: &str, secure: bool) -> String {
    if secure { format!("__Host-{name}") } else { name.to_owned() }
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut cookie = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax", cookie_name(name, secure));
    if let Some(max_age) = max_age {
        cookie.push_str(&format!("; Max-Age={max_age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    // Tokens are base64url and JWTs, and names are ours: always a valid header value.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("eh_invalid=; Max-Age=0"))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn page_of(method: &Method, uri: &axum::http::Uri) -> String {
    if method == Method::GET {
        return uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    }
    match uri.path().rsplit_once('/') {
        Some((page, _)) if !page.is_empty() => page.to_owned(),
        _ => "/".into(),
    }
}

/// Served over https: the gateway itself speaks plain HTTP, so that is what the proxy or
/// ingress in front of it says.
fn is_https(headers: &HeaderMap) -> bool {
    header_string(headers, "x-forwarded-proto").is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// 32 random bytes, base64url: a CSRF token, or a form's idempotency key.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("xeh_csrf=no; eh_csrf=yes; eh_access="));
        assert_eq!(cookie(&headers, "eh_csrf").as_deref(), Some("yes"));
        assert_eq!(cookie(&headers, "eh_access"), None);
    }

    #[test]
    fn secure_cookies_are_host_only_and_secure() {
        let value = set_cookie(CSRF, "t", None, true);
        let text = value.to_str().unwrap_or_default();
        assert!(text.starts_with("__Host-eh_csrf=t; Path=/; HttpOnly; SameSite=Lax"), "{text}");
        assert!(text.ends_with("; Secure"), "{text}");
        let plain = set_cookie(CSRF, "t", Some(5), false);
        assert_eq!(plain.to_str().unwrap_or_default(), "eh_csrf=t; Path=/; HttpOnly; SameSite=Lax; Max-Age=5");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert_ne!(random_token(), random_token());
    }
}
