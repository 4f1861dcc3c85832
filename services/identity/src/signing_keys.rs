//! The SQL of the `signing_keys` table: the Ed25519 keys that sign access tokens, shared by
//! every replica through the database. Private keys are stored sealed (see `tokens`).

use anyhow::Context;
use eventhive_platform::{Database, storage::now_ms};

/// A stored key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub kid: String,
    /// PKCS#8, base64url, sealed with the deployment's secret key (or in the clear, if stored
    /// before sealing existed).
    pub private_key: String,
    /// Raw Ed25519 public key, base64url.
    pub public_key: String,
    pub retired_at: Option<i64>,
}

/// Every key, oldest first.
pub async fn load(db: &Database) -> anyhow::Result<Vec<StoredKey>> {
    sqlx::query_as(
        "SELECT kid, private_key_pkcs8 AS private_key, public_key, retired_at FROM signing_keys ORDER BY created_at, kid",
    )
    .fetch_all(db.pool())
    .await
    .context("loading signing keys")
}

pub async fn insert(db: &Database, kid: &str, sealed_private_key: &str, public_key: &str) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO signing_keys (kid, private_key_pkcs8, public_key, created_at) VALUES ($1, $2, $3, $4)")
        .bind(kid)
        .bind(sealed_private_key)
        .bind(public_key)
        .bind(now_ms())
        .execute(db.pool())
        .await
        .context("storing a signing key")?;
    Ok(())
}

/// Replaces a key's stored private key with the same key sealed anew.
pub async fn reseal(db: &Database, kid: &str, sealed_private_key: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE signing_keys SET private_key_pkcs8 = $1 WHERE kid = $2")
        .bind(sealed_private_key)
        .bind(kid)
        .execute(db.pool())
        .await
        .context("sealing a signing key")?;
    Ok(())
}

/// Retires every key still signing.
pub async fn retire_all(db: &Database, now: i64) -> anyhow::Result<u64> {
    let retired = sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(now)
        .execute(db.pool())
        .await
        .context("retiring signing keys")?;
    Ok(retired.rows_affected())
}

/// Deletes keys retired before `before`: no token they signed is still valid.
pub async fn delete_retired_before(db: &Database, before: i64) -> anyhow::Result<u64> {
    let deleted = sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
        .bind(before)
        .execute(db.pool())
        .await
        .context("deleting retired signing keys")?;
    Ok(deleted.rows_affected())
}
