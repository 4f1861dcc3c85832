//! Tokens. Access tokens are short-lived JWTs signed with Ed25519 (EdDSA) and a key id, so the
//! gateway verifies them with the published JWKS without calling identity. Refresh tokens are
//! random opaque strings; only their SHA-256 hash is stored.

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use eventhive_domain::UserId;
use eventhive_platform::{Database, storage::now_ms};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::{
    rand::{SecureRandom, SystemRandom},
    signature::{Ed25519KeyPair, KeyPair},
};
use serde::{Deserialize, Serialize};

use crate::signing_keys;

/// `iss` of every access token.
pub const ISSUER: &str = "eventhive";
/// `aud` of every access token: the public API.
pub const AUDIENCE: &str = "eventhive-api";

/// What an access token says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
}

/// Signs access tokens and publishes the keys that verify them.
pub struct TokenIssuer {
    current: SigningKey,
    jwks_json: String,
    access_ttl_secs: i64,
}

impl TokenIssuer {
    /// Loads the signing keys, creating the first one on a fresh database.
    pub async fn load(db: &Database, access_ttl_secs: u64) -> anyhow::Result<Self> {
        let mut keys = signing_keys::load(db).await?;
        if keys.is_empty() {
            create_key(db).await?;
            keys = signing_keys::load(db).await?;
        }
        // Several replicas starting at once may each create a key; all verify, and every
        // replica signs with the newest, so they converge.
        let (kid, pkcs8, _) = keys.last().cloned().context("no signing key after creating one")?;
        let der = URL_SAFE_NO_PAD.decode(pkcs8).context("stored signing key is not base64")?;
        let jwks = serde_json::json!({
            "keys": keys.iter().map(|(kid, _, x)| serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": x,
            })).collect::<Vec<_>>()
        });
        Ok(Self {
            current: SigningKey { kid, encoding: EncodingKey::from_ed_der(&der) },
            jwks_json: jwks.to_string(),
            access_ttl_secs: i64::try_from(access_ttl_secs).context("access token lifetime")?,
        })
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl_secs
    }

    pub fn jwks_json(&self) -> &str {
        &self.jwks_json
    }

    pub fn issue_access_token(&self, user_id: UserId) -> anyhow::Result<String> {
        let now = now_ms() / 1000;
        let claims = Claims {
            sub: user_id.to_string(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + self.access_ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let header = Header { kid: Some(self.current.kid.clone()), ..Header::new(Algorithm::EdDSA) };
        jsonwebtoken::encode(&header, &claims, &self.current.encoding).context("signing an access token")
    }
}

async fn create_key(db: &Database) -> anyhow::Result<()> {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow::anyhow!("cannot generate an Ed25519 key"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| anyhow::anyhow!("generated key is invalid"))?;
    let kid = uuid::Uuid::now_v7().to_string();
    signing_keys::insert(
        db,
        &kid,
        &URL_SAFE_NO_PAD.encode(pkcs8.as_ref()),
        &URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
    )
    .await
}

/// A new refresh token: 256 random bits, URL-safe.
pub fn new_refresh_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness available"))?;
    Ok(format!("rt_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// How a refresh token is stored and looked up.
pub fn hash_refresh_token(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}
