//! The SQL of the `signing_keys` table: the Ed25519 keys that sign access tokens, shared by
//! every replica through the database.

use anyhow::Context;
use eventhive_platform::{Database, storage::now_ms};

/// A stored key: its id, its private key (PKCS#8, base64url) and its public key (base64url).
pub type StoredKey = (String, String, String);

/// Every key, oldest first.
pub async fn load(db: &Database) -> anyhow::Result<Vec<StoredKey>> {
    sqlx::query_as("SELECT kid, private_key_pkcs8, public_key FROM signing_keys ORDER BY created_at, kid")
        .fetch_all(db.pool())
        .await
        .context("loading signing keys")
}

pub async fn insert(db: &Database, kid: &str, private_key_pkcs8: &str, public_key: &str) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO signing_keys (kid, private_key_pkcs8, public_key, created_at) VALUES ($1, $2, $3, $4)")
        .bind(kid)
        .bind(private_key_pkcs8)
        .bind(public_key)
        .bind(now_ms())
        .execute(db.pool())
        .await
        .context("storing a signing key")?;
    Ok(())
}
