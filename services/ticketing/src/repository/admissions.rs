//! Every SQL statement on `admission_keys`: the events whose orders need an admission, and the
//! public key that verifies it.

use eventhive_domain::EventId;
use eventhive_platform::Database;

/// Requires admissions for `event`, verified with `public_key`; the newest key wins.
pub(crate) async fn require(db: &Database, event: EventId, public_key: &str, now_ms: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO admission_keys (event_id, public_key, required_at) VALUES ($1, $2, $3) \
         ON CONFLICT (event_id) DO UPDATE SET public_key = excluded.public_key",
    )
    .bind(event.to_string())
    .bind(public_key)
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The key that verifies the event's admissions, if its orders need one.
pub(crate) async fn key(db: &Database, event: EventId) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT public_key FROM admission_keys WHERE event_id = $1")
        .bind(event.to_string())
        .fetch_optional(db.pool())
        .await?)
}
