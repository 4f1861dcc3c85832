//! Tokens. Access tokens are short-lived JWTs signed with Ed25519 (EdDSA) and a key id, so the
//! gateway verifies them with the published JWKS without calling identity. Refresh tokens are
//! random opaque strings; only their SHA-256 hash is stored.

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use eventhive_domain::UserId;
use eventhive_platform::{Database, Secrets, storage::now_ms};
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

/// What the private keys are sealed for, in identity's database.
const KEY_PURPOSE: &str = "token-signing-key";

/// The key that signs and the JWKS that verifies, as last loaded.
struct Keys {
    current: SigningKey,
    jwks_json: String,
}

/// Signs access tokens and publishes the keys that verify them. It loads the keys again now
/// and then ([`TokenIssuer::reload`]), so that a key made by `eventhive keys rotate` signs on
/// every replica, and a retired one leaves the JWKS once its tokens have expired.
pub struct TokenIssuer {
    db: Database,
    secrets: Secrets,
    keys: std::sync::RwLock<Keys>,
    access_ttl_secs: i64,
}

impl TokenIssuer {
    /// Loads the signing keys, creating the first one on a fresh database.
    pub async fn load(db: &Database, secrets: &Secrets, access_ttl_secs: u64) -> anyhow::Result<Self> {
        let keys = load_keys(db, secrets).await?;
        Ok(Self {
            db: db.clone(),
            secrets: secrets.clone(),
            keys: std::sync::RwLock::new(keys),
            access_ttl_secs: i64::try_from(access_ttl_secs).context("access token lifetime")?,
        })
    }

    /// Reads the keys again.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let keys = load_keys(&self.db, &self.secrets).await?;
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        Ok(())
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl_secs
    }

    pub fn jwks_json(&self) -> String {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).jwks_json.clone()
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
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let header = Header { kid: Some(keys.current.kid.clone()), ..Header::new(Algorithm::EdDSA) };
        jsonwebtoken::encode(&header, &claims, &keys.current.encoding).context("signing an access token")
    }
}

/// Every stored key, sealing anew any key not sealed with the current secret key; creates the
/// first key on a fresh database. The newest key still in service signs.
async fn load_keys(db: &Database, secrets: &Secrets) -> anyhow::Result<Keys> {
    let mut keys = signing_keys::load(db).await?;
    if !keys.iter().any(|key| key.retired_at.is_none()) {
        create_key(db, secrets).await?;
        keys = signing_keys::load(db).await?;
    }
    let mut current = None;
    for key in &keys {
        let opened = secrets.open(KEY_PURPOSE, &key.private_key).with_context(|| format!("signing key {}", key.kid))?;
        if !opened.current {
            signing_keys::reseal(db, &key.kid, &secrets.seal(KEY_PURPOSE, &opened.plaintext)?).await?;
        }
        // Several replicas starting at once may each create a key; all verify, and every
        // replica signs with the newest, so they converge.
        if key.retired_at.is_none() {
            current = Some((key.kid.clone(), opened.plaintext));
        }
    }
    let (kid, pkcs8) = current.context("no signing key in service after creating one")?;
    let der = URL_SAFE_NO_PAD.decode(pkcs8).context("stored signing key is not base64")?;
    let jwks = serde_json::json!({
        "keys": keys.iter().map(|key| serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": key.kid, "x": key.public_key,
        })).collect::<Vec<_>>()
    });
    Ok(Keys { current: SigningKey { kid, encoding: EncodingKey::from_ed_der(&der) }, jwks_json: jwks.to_string() })
}

/// Seals anew each key not sealed with the current secret key; how many were.
pub async fn reseal(db: &Database, secrets: &Secrets) -> anyhow::Result<u64> {
    let mut resealed = 0;
    for key in signing_keys::load(db).await? {
        let opened = secrets.open(KEY_PURPOSE, &key.private_key).with_context(|| format!("signing key {}", key.kid))?;
        if !opened.current {
            signing_keys::reseal(db, &key.kid, &secrets.seal(KEY_PURPOSE, &opened.plaintext)?).await?;
            resealed += 1;
        }
    }
    Ok(resealed)
}

/// What `eventhive keys rotate` did to identity's keys.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    pub retired: u64,
    pub deleted: u64,
}

/// Retires the keys in service for a new one, and deletes retired keys whose last token has
/// expired (`access_ttl_secs` after retirement, plus a margin for replicas still signing with
/// a key until they reload). Every replica picks the new key up at its next reload.
pub async fn rotate(db: &Database, secrets: &Secrets, access_ttl_secs: u64) -> anyhow::Result<Rotation> {
    // Seals what an older secret key sealed, before anything else changes.
    load_keys(db, secrets).await?;
    let now = now_ms();
    let deleted = signing_keys::delete_retired_before(
        db,
        now - i64::try_from(access_ttl_secs).unwrap_or(i64::MAX / 2_000).saturating_mul(1000) - RETIRED_MARGIN_MS,
    )
    .await?;
    let retired = signing_keys::retire_all(db, now).await?;
    create_key(db, secrets).await?;
    Ok(Rotation { retired, deleted })
}

/// How long past its tokens' lifetime a retired key keeps verifying: replicas reload keys every
/// half minute, so one may sign with a retired key a little after the rotation.
const RETIRED_MARGIN_MS: i64 = 5 * 60 * 1000;

async fn create_key(db: &Database, secrets: &Secrets) -> anyhow::Result<()> {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow::anyhow!("cannot generate an Ed25519 key"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| anyhow::anyhow!("generated key is invalid"))?;
    let kid = uuid::Uuid::now_v7().to_string();
    let sealed = secrets.seal(KEY_PURPOSE, URL_SAFE_NO_PAD.encode(pkcs8.as_ref()).as_bytes())?;
    signing_keys::insert(db, &kid, &sealed, &URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())).await
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
