//! Every SQL statement on `rooms`. Portable SQL (ADR 0002): the same statements run on
//! PostgreSQL and SQLite. A transition the admission loop makes (opened, sold out, resumed) is
//! a conditional update, so when several replicas make it at once exactly one of them wins and
//! announces it.
//!
//! The buyers' polls read a room through [`Rooms::kept`]: the row kept in this replica for
//! [`ROOM_TTL`], one load at a time per room. Every change made here forgets it at once (after
//! its transaction commits, for the changes the caller commits: the caller then calls
//! [`Rooms::forget`]); another replica's change is seen at most [`ROOM_TTL`] late.

use std::{sync::Arc, time::Duration};

use eventhive_domain::EventId;
use eventhive_kept::Kept;
use eventhive_platform::{Database, storage::now_ms};
use sqlx::AnyConnection;

const COLUMNS: &str = "event_id, organization_id, opens_at, admit_per_minute, admission_ttl_secs, signing_key, \
    draw_seed, early_arrivals, opened_at, sold_out_at";

/// A room as stored; times are Unix milliseconds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoomRow {
    pub event_id: String,
    pub organization_id: String,
    pub opens_at: i64,
    /// `None`: automatic.
    pub admit_per_minute: Option<i64>,
    pub admission_ttl_secs: i64,
    /// PKCS#8, base64url.
    pub signing_key: String,
    pub draw_seed: Option<String>,
    pub early_arrivals: Option<i64>,
    pub opened_at: Option<i64>,
    pub sold_out_at: Option<i64>,
}

/// How old the room a poll sees may be: a sold-out room, or another replica's change to the
/// rate, reaches a waiting buyer at most this late (API.md: "within seconds").
pub const ROOM_TTL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Rooms {
    db: Database,
    /// The rooms as the polls read them, by event id; shared by every clone.
    kept: Arc<Kept<Option<RoomRow>>>,
}

impl Rooms {
    pub fn new(db: Database) -> Self {
        Self { db, kept: Arc::new(Kept::new(ROOM_TTL)) }
    }

    /// The room, as kept for the polls: at most [`ROOM_TTL`] old. An event without a room is
    /// not kept: its room may be created the next moment.
    /// The kept row itself is handed out, not a copy: every poll reads it.
    pub async fn kept(&self, event: EventId) -> anyhow::Result<Arc<Option<RoomRow>>> {
        let load = async || self.get(event).await;
        let (room, _) = self.kept.get(&event.to_string(), load, Option::is_some).await?;
        Ok(room)
    }

    /// Drops the kept room of `event`, after it changed: the next poll reads it.
    pub fn forget(&self, event: EventId) {
        self.kept.forget(&event.to_string());
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    #[tracing::instrument(skip(self), fields(event_id = %event))]
    pub async fn get(&self, event: EventId) -> anyhow::Result<Option<RoomRow>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM rooms WHERE event_id = $1"))
            .bind(event.to_string())
            .fetch_optional(self.db.pool())
            .await?)
    }

    /// The rooms whose opening has come, for the admission loop.
    pub async fn due(&self, now_ms: i64) -> anyhow::Result<Vec<RoomRow>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM rooms WHERE opens_at <= $1 ORDER BY opens_at"))
            .bind(now_ms)
            .fetch_all(self.db.pool())
            .await?)
    }

    /// A new room. `false` if the event has one already (another request won the race).
    pub async fn insert(&self, room: &RoomRow) -> anyhow::Result<bool> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO rooms (event_id, organization_id, opens_at, admit_per_minute, admission_ttl_secs, \
             signing_key, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&room.event_id)
        .bind(&room.organization_id)
        .bind(room.opens_at)
        .bind(room.admit_per_minute)
        .bind(room.admission_ttl_secs)
        .bind(&room.signing_key)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        self.kept.forget(&room.event_id);
        Ok(inserted.rows_affected() == 1)
    }

    /// Changes a room's settings: all of them before its opening, the rate alone after it (the
    /// condition on `opened_at` makes the update fail if the room opened in the meantime).
    pub async fn update(&self, room: &RoomRow, before_opening: bool) -> anyhow::Result<bool> {
        let condition = if before_opening { " AND opened_at IS NULL" } else { "" };
        let updated = sqlx::query(&format!(
            "UPDATE rooms SET opens_at = $2, admit_per_minute = $3, admission_ttl_secs = $4, updated_at = $5 \
             WHERE event_id = $1{condition}"
        ))
        .bind(&room.event_id)
        .bind(room.opens_at)
        .bind(room.admit_per_minute)
        .bind(room.admission_ttl_secs)
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        self.kept.forget(&room.event_id);
        Ok(updated.rows_affected() == 1)
    }

    /// Every room's sealed signing key, for `eventhive keys rotate`.
    pub async fn signing_keys(&self) -> anyhow::Result<Vec<(String, String)>> {
        Ok(sqlx::query_as("SELECT event_id, signing_key FROM rooms").fetch_all(self.db.pool()).await?)
    }

    pub async fn reseal_signing_key(&self, event_id: &str, sealed: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE rooms SET signing_key = $2 WHERE event_id = $1")
            .bind(event_id)
            .bind(sealed)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Records `seed` as the draw's seed unless one is recorded already; returns the recorded
    /// one, so that every replica draws with the same seed.
    pub async fn record_seed(&self, event: EventId, seed: &str) -> anyhow::Result<String> {
        sqlx::query("UPDATE rooms SET draw_seed = $2 WHERE event_id = $1 AND draw_seed IS NULL")
            .bind(event.to_string())
            .bind(seed)
            .execute(self.db.pool())
            .await?;
        self.forget(event);
        let recorded: Option<String> = sqlx::query_scalar("SELECT draw_seed FROM rooms WHERE event_id = $1")
            .bind(event.to_string())
            .fetch_one(self.db.pool())
            .await?;
        recorded.ok_or_else(|| anyhow::anyhow!("the draw seed of {event} was not recorded"))
    }

    /// Marks the room opened, once; `true` for the caller that did.
    pub async fn mark_opened(
        &self,
        conn: &mut AnyConnection,
        event: EventId,
        early_arrivals: i64,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        let updated = sqlx::query(
            "UPDATE rooms SET opened_at = $2, early_arrivals = $3, updated_at = $2 \
             WHERE event_id = $1 AND opened_at IS NULL",
        )
        .bind(event.to_string())
        .bind(now_ms)
        .bind(early_arrivals)
        .execute(&mut *conn)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Sets (`sold_out`) or clears the sold-out mark, once; `true` for the caller that did.
    pub async fn mark_sold_out(
        &self,
        conn: &mut AnyConnection,
        event: EventId,
        sold_out: bool,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        let statement = if sold_out {
            "UPDATE rooms SET sold_out_at = $2, updated_at = $2 WHERE event_id = $1 AND sold_out_at IS NULL"
        } else {
            "UPDATE rooms SET sold_out_at = NULL, updated_at = $2 WHERE event_id = $1 AND sold_out_at IS NOT NULL"
        };
        let updated = sqlx::query(statement).bind(event.to_string()).bind(now_ms).execute(&mut *conn).await?;
        Ok(updated.rows_affected() == 1)
    }
}
