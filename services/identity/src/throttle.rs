//! The delay after failed logins to one account. Per-address rate limits (the gateway's) do
//! not stop a credential-stuffing run spread over many addresses; a delay per account does.
//! It grows with each failure (the first few are free, for typos) up to a minute, never
//! further: a lockout would let an attacker keep the owner out for good. And it never holds
//! back a client the account logged in from before, so the owner's own device gets in while an
//! attack runs elsewhere.

use eventhive_platform::Database;
use ring::digest;

/// Failures in a row that cost no delay.
const FREE_FAILURES: i64 = 3;
/// The longest delay, however many failures.
const MAX_DELAY_MS: i64 = 60_000;
/// How long the record of an account's failures (and of a known client) is kept once idle.
const FORGET_FAILURES_AFTER_MS: i64 = 24 * 3600 * 1000;
const FORGET_CLIENTS_AFTER_MS: i64 = 90 * 24 * 3600 * 1000;

/// The delay before the next try after `failures` failed logins in a row: 0 for the first
/// few, then 1 s, 2 s, 4 s ... up to a minute.
pub(crate) fn delay_ms(failures: i64) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let doublings = (failures - FREE_FAILURES).min(16) as u32;
    (1000i64 << doublings).min(MAX_DELAY_MS)
}

/// How a client address is stored: hashed, so the table is no log of where people are.
/// `None` for an unknown address, which is never a known client.
pub(crate) fn client_key(client: &str) -> Option<String> {
    let client = client.trim();
    if client.is_empty() || client == "unknown" {
        return None;
    }
    let hash = digest::digest(&digest::SHA256, client.as_bytes());
    Some(hash.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// The SQL of `login_failures` and `known_clients`.
#[derive(Clone)]
pub(crate) struct LoginThrottle {
    db: Database,
}

impl LoginThrottle {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }

    /// Until when (ms) logins to the account wait, if they do.
    pub(crate) async fn blocked_until(&self, email_lower: &str) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar("SELECT blocked_until FROM login_failures WHERE email_lower = $1")
            .bind(email_lower)
            .fetch_optional(self.db.pool())
            .await
    }

    /// Counts a failure and sets the delay it earns.
    pub(crate) async fn failed(&self, email_lower: &str, now: i64) -> sqlx::Result<()> {
        let mut tx = self.db.pool().begin().await?;
        let failures: i64 = sqlx::query_scalar(
            "INSERT INTO login_failures (email_lower, failures, blocked_until) VALUES ($1, 1, 0) \
             ON CONFLICT (email_lower) DO UPDATE SET failures = login_failures.failures + 1 RETURNING failures",
        )
        .bind(email_lower)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE login_failures SET blocked_until = $1 WHERE email_lower = $2")
            .bind(now.saturating_add(delay_ms(failures)))
            .bind(email_lower)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// A successful login: the failures are forgotten and the client is known from now on.
    pub(crate) async fn succeeded(
        &self,
        email_lower: &str,
        user_id: &str,
        client: Option<&str>,
        now: i64,
    ) -> sqlx::Result<()> {
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("DELETE FROM login_failures WHERE email_lower = $1").bind(email_lower).execute(&mut *tx).await?;
        if let Some(client) = client {
            sqlx::query(
                "INSERT INTO known_clients (user_id, client_hash, last_login_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, client_hash) DO UPDATE SET last_login_at = $3",
            )
            .bind(user_id)
            .bind(client)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Whether the account logged in from this client before.
    pub(crate) async fn is_known(&self, user_id: &str, client: &str) -> sqlx::Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT last_login_at FROM known_clients WHERE user_id = $1 AND client_hash = $2")
                .bind(user_id)
                .bind(client)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(found.is_some())
    }

    /// Forgets failures idle for a day and clients unused for 90 days.
    pub(crate) async fn prune(&self, now: i64) -> sqlx::Result<u64> {
        let failures = sqlx::query("DELETE FROM login_failures WHERE blocked_until < $1")
            .bind(now - FORGET_FAILURES_AFTER_MS)
            .execute(self.db.pool())
            .await?;
        let clients = sqlx::query("DELETE FROM known_clients WHERE last_login_at < $1")
            .bind(now - FORGET_CLIENTS_AFTER_MS)
            .execute(self.db.pool())
            .await?;
        Ok(failures.rows_affected() + clients.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_grows_from_the_fourth_failure_and_stops_at_a_minute() {
        assert_eq!([0, 1, 2].map(delay_ms), [0, 0, 0]);
        assert_eq!([3, 4, 5, 8].map(delay_ms), [1000, 2000, 4000, 32_000]);
        assert_eq!([9, 100, i64::MAX].map(delay_ms), [MAX_DELAY_MS; 3]);
    }

    #[test]
    fn an_unknown_address_has_no_key() {
        assert_eq!(client_key(""), None);
        assert_eq!(client_key("unknown"), None);
        assert_eq!(client_key("10.0.0.1"), client_key(" 10.0.0.1 "));
    }
}
