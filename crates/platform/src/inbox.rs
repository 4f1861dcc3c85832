//! The inbox: how a consumer applies each message once however often it is delivered. The
//! consumer claims the message id inside the transaction that applies it; a second delivery
//! finds the claim and skips.

use anyhow::Context;
use eventhive_domain::MessageId;
use sqlx::AnyConnection;

use crate::storage::now_ms;

/// Claims `message_id` for `consumer` on `tx`. `false`: it was applied before, skip it.
pub async fn claim(tx: &mut AnyConnection, consumer: &str, message_id: MessageId) -> anyhow::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO inbox_messages (consumer, message_id, received_at) VALUES ($1, $2, $3) \
         ON CONFLICT (consumer, message_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(message_id.to_string())
    .bind(now_ms())
    .execute(&mut *tx)
    .await
    .context("claiming an inbox message")?;
    Ok(result.rows_affected() == 1)
}
