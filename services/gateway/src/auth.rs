//! Authentication at the edge: access tokens are verified here, with identity's published
//! keys (JWKS), without a call to identity per request. An unknown key id makes the gateway
//! fetch the JWKS again (at most every few seconds), which is how key rotation reaches it.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{extract::FromRequestParts, http::request::Parts};
use eventhive_domain::UserId;
use eventhive_platform::grpc::Channel;
use eventhive_platform::{ErrorKind, Problem};
use eventhive_proto::identity::{GetJwksRequest, identity_client::IdentityClient};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

/// What access tokens must say (identity's `tokens` module issues them).
const ISSUER: &str = "eventhive";
const AUDIENCE: &str = "eventhive-api";
/// Clock skew tolerated between identity and gateway replicas.
const LEEWAY_SECS: u64 = 2;
/// The least time between two JWKS fetches caused by unknown key ids.
const REFETCH_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is invalid")]
    Invalid,
    #[error("cannot verify access tokens right now")]
    KeysUnavailable,
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::KeysUnavailable => Problem::new(ErrorKind::Unavailable, error.to_string()),
            _ => Problem::new(ErrorKind::Unauthorized, error.to_string()),
        }
    }
}

pub struct JwtVerifier {
    identity: IdentityClient<Channel>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_fetch: Mutex<Option<Instant>>,
    /// How long the cached keys are trusted without asking identity again
    /// (`EVENTHIVE_JWKS_CACHE_SECS`). A key identity stops publishing (retired by
    /// `eventhive keys rotate`, or removed after a leak) stops verifying here within this
    /// time, even if no token with an unknown key id ever arrives.
    trusted_for: Duration,
}

impl JwtVerifier {
    pub fn new(identity: IdentityClient<Channel>, trusted_for: Duration) -> Self {
        Self { identity, keys: RwLock::new(HashMap::new()), last_fetch: Mutex::new(None), trusted_for }
    }

    /// The user a bearer token speaks for.
    pub async fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid);
        }
        let kid = header.kid.ok_or(AuthError::Invalid)?;
        // Bound first: a guard in the match scrutinee would live into the arm that writes.
        let stale = self.last_fetch.lock().await.is_none_or(|at| at.elapsed() >= self.trusted_for);
        if stale {
            // Failing to refresh keeps the keys known (identity down must not log everyone out);
            // a key missing from a successful fetch is forgotten.
            let _ = self.refresh_keys().await;
        }
        let cached = self.keys.read().await.get(&kid).cloned();
        let key = match cached {
            Some(key) => key,
            None => {
                self.refresh_keys().await?;
                self.keys.read().await.get(&kid).cloned().ok_or(AuthError::Invalid)?
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid,
        })?;
        UserId::parse(&data.claims.sub).map_err(|_| AuthError::Invalid)
    }

    /// Fetches the JWKS from identity, unless that was done moments ago.
    async fn refresh_keys(&self) -> Result<(), AuthError> {
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) && !self.keys.read().await.is_empty() {
            return Ok(());
        }
        let jwks = self
            .identity
            .clone()
            .get_jwks(GetJwksRequest {})
            .await
            .map_err(|status| {
                tracing::warn!(%status, "cannot fetch the JWKS from identity");
                AuthError::KeysUnavailable
            })?
            .into_inner()
            .json;
        let keys = parse_jwks(&jwks).map_err(|error| {
            tracing::error!(%error, "identity published an unreadable JWKS");
            AuthError::KeysUnavailable
        })?;
        *self.keys.write().await = keys;
        *last_fetch = Some(Instant::now());
        Ok(())
    }
}

fn parse_jwks(json: &str) -> anyhow::Result<HashMap<String, DecodingKey>> {
    #[derive(Deserialize)]
    struct Jwk {
        kid: String,
        kty: String,
        crv: String,
        x: String,
    }
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Jwk>,
    }
    let jwks: Jwks = serde_json::from_str(json)?;
    let mut keys = HashMap::new();
    for jwk in jwks.keys {
        if jwk.kty == "OKP" && jwk.crv == "Ed25519" {
            keys.insert(jwk.kid, DecodingKey::from_ed_components(&jwk.x)?);
        }
    }
    Ok(keys)
}

/// What the authentication middleware found in the request, for the extractors below.
#[derive(Debug, Clone)]
pub enum Authentication {
    Anonymous,
    User(UserId),
    Failed(AuthError),
}

/// A signed-in user; 401 otherwise.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Arc<Authentication>>().map(|a| a.as_ref()) {
            Some(Authentication::User(id)) => Ok(AuthUser(*id)),
            Some(Authentication::Failed(error)) => Err(error.clone().into()),
            _ => Err(Problem::new(
                ErrorKind::Unauthorized,
                "sign in: send an access token as 'Authorization: Bearer <token>'",
            )),
        }
    }
}

/// A signed-in user if there is one; a presented but invalid token is still 401.
#[derive(Debug, Clone, Copy)]
pub struct MaybeUser(pub Option<UserId>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Arc<Authentication>>().map(|a| a.as_ref()) {
            Some(Authentication::User(id)) => Ok(MaybeUser(Some(*id))),
            Some(Authentication::Failed(error)) => Err(error.clone().into()),
            _ => Ok(MaybeUser(None)),
        }
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<Result<&str, AuthError>> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?;
    let text = value.to_str().map_err(|_| AuthError::Invalid);
    Some(text.and_then(|t| {
        let (scheme, token) = t.split_once(' ').ok_or(AuthError::Invalid)?;
        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
            Ok(token.trim())
        } else {
            Err(AuthError::Invalid)
        }
    }))
}
