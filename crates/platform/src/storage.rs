//! Storage: each service owns one database, on PostgreSQL in production or an embedded SQLite
//! file in dev mode, reached through one `sqlx::AnyPool` so a service's SQL is written once.
//!
//! The schema is kept portable on purpose: ids are UUID text, times are Unix milliseconds in
//! `BIGINT`, money is `BIGINT` minor units, flags are nullable timestamps. Placeholders are
//! `$1`, which both backends understand. Where the backends really differ (row locking), the
//! [`Backend`] says which one is in use.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    AnyPool, ConnectOptions, Connection, Executor,
    any::AnyPoolOptions,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgConnection},
};

use crate::config::Settings;

/// The platform's own tables (outbox, inbox), created in every service's database.
static PLATFORM_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A service's database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    /// The database name (PostgreSQL) or file path (SQLite), for logs and operators.
    location: String,
}

impl Database {
    /// Connects to the database of `service`, creating it if it does not exist yet.
    pub async fn connect(settings: &Settings, service: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let name = format!("{}_{}", settings.database_prefix, service);
        match &settings.database_url {
            Some(server_url) => Self::connect_postgres(server_url, &name, settings.database_max_connections).await,
            None => {
                std::fs::create_dir_all(&settings.data_dir)
                    .with_context(|| format!("cannot create the data directory {}", settings.data_dir.display()))?;
                let path = settings.data_dir.join(format!("{name}.db"));
                Self::connect_sqlite(&path.to_string_lossy()).await
            }
        }
    }

    async fn connect_postgres(server_url: &str, name: &str, max_connections: u32) -> anyhow::Result<Self> {
        let server = PgConnectOptions::from_str(server_url).context("EVENTHIVE_DATABASE_URL is not a valid URL")?;
        create_postgres_database_if_missing(&server, name).await?;
        let url = server.database(name).to_url_lossy().to_string();
        let pool = tested_when_idle(AnyPoolOptions::new())
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL database {name}"))?;
        Ok(Self { pool, backend: Backend::Postgres, location: name.to_owned() })
    }

    /// A private SQLite database in memory, gone with the value: for tests, and for a process
    /// whose bus carries nothing.
    pub async fn in_memory() -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        // One connection that is never recycled: closing it would drop the database.
        let pool = sqlite_pool_options().min_connections(1).idle_timeout(None).max_lifetime(None);
        let pool = pool.connect("sqlite::memory:").await.context("cannot open an in-memory SQLite database")?;
        Ok(Self { pool, backend: Backend::Sqlite, location: ":memory:".to_owned() })
    }

    async fn connect_sqlite(path: &str) -> anyhow::Result<Self> {
        let url = format!("sqlite://{path}?mode=rwc");
        let pool =
            sqlite_pool_options().connect(&url).await.with_context(|| format!("cannot open SQLite database {path}"))?;
        Ok(Self { pool, backend: Backend::Sqlite, location: path.to_owned() })
    }

    /// Applies the platform's tables and then the service's own migrations.
    pub async fn migrate(&self, service_migrations: &Migrator) -> anyhow::Result<()> {
        // Two migrators share one history table; each must ignore the other's entries.
        for (what, source) in [("platform tables", &PLATFORM_MIGRATIONS), ("service tables", service_migrations)] {
            let migrator = Migrator {
                migrations: source.migrations.clone(),
                ignore_missing: true,
                locking: source.locking,
                no_tx: source.no_tx,
            };
            migrator.run(&self.pool).await.with_context(|| format!("migrating {} ({what})", self.location))?;
        }
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// `FOR UPDATE SKIP LOCKED` where the backend has it; SQLite's single writer makes it moot.
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// `FOR UPDATE` where the backend has row locks; SQLite serializes writers anyway.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Checks the database answers, for readiness probes.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.context("database ping")?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A connection idle longer than this is pinged before it is handed out.
const TEST_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Pings a pooled connection before handing it out only if it sat idle a while. sqlx 0.8 pings
/// every connection as it comes back to the pool (that one cannot be turned off) and, by
/// default, again as it is handed out: a round trip on PostgreSQL and two thread switches on
/// SQLite, twice for each of the eight or so transactions of a purchase. A connection that came
/// back a moment ago has just answered; one that sat idle may have been cut since (a database
/// restart, a proxy's timeout) and is replaced if the ping fails.
fn tested_when_idle(options: AnyPoolOptions) -> AnyPoolOptions {
    options.test_before_acquire(false).before_acquire(|conn, meta| {
        Box::pin(async move {
            if meta.idle_for > TEST_IF_IDLE_FOR {
                conn.ping().await?;
            }
            Ok(true)
        })
    })
}

/// SQLite has one writer at a time. One connection per database serializes writers in the pool
/// instead of failing them with SQLITE_BUSY when a read transaction upgrades; dev mode needs
/// correctness far more than parallel writes.
fn sqlite_pool_options() -> AnyPoolOptions {
    tested_when_idle(AnyPoolOptions::new()).max_connections(1).acquire_timeout(Duration::from_secs(30)).after_connect(
        |conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                Ok(())
            })
        },
    )
}

async fn create_postgres_database_if_missing(server: &PgConnectOptions, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect_with(&server.clone().database("postgres"))
        .await
        .context("cannot connect to the PostgreSQL server at EVENTHIVE_DATABASE_URL")?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut admin)
        .await
        .context("cannot list databases")?;
    if exists.is_none() {
        // Names are built from validated settings (letters, digits, underscores) only.
        if let Err(error) = admin.execute(format!("CREATE DATABASE \"{name}\"").as_str()).await {
            // Another replica may have created it a moment ago.
            let duplicate =
                error.as_database_error().and_then(|e| e.code()).is_some_and(|c| c == "42P04" || c == "23505");
            if !duplicate {
                return Err(error).with_context(|| format!("cannot create database {name}"));
            }
        }
        tracing::info!(database = name, "created database");
    }
    admin.close().await.ok();
    Ok(())
}

/// Drops a PostgreSQL database, closing its sessions first (test clean-up).
pub async fn drop_postgres_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let server = PgConnectOptions::from_str(server_url)?;
    let mut admin = PgConnection::connect_with(&server.database("postgres")).await?;
    admin.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str()).await?;
    admin.close().await.ok();
    Ok(())
}

/// Whether an error is a unique-constraint violation (a conflict, never a 500).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| e.is_unique_violation())
}

/// Whether `error` says the database could not be reached (down, restarting, refusing
/// connections), rather than what a statement did: the caller should try again later, so a
/// service answers it as unavailable, not as an internal error.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // SQLSTATE class 08 (connection exception), 57P01..57P03 (shutting down, starting up).
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("08") || ["57P01", "57P02", "57P03"].contains(&&*code))
        }
        _ => false,
    }
}

/// Whether anywhere in `error`'s chain is a database that could not be reached.
pub fn is_unavailable_in(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<sqlx::Error>().is_some_and(is_unavailable))
}

/// Milliseconds since the Unix epoch, the portable time column type.
pub fn now_ms() -> i64 {
    to_ms(time::OffsetDateTime::now_utc())
}

pub fn to_ms(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub fn from_ms(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 text of a stored time, as the API shows it.
pub fn ms_to_rfc3339(ms: i64) -> String {
    from_ms(ms).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let ms = 1_790_000_000_123;
        assert_eq!(to_ms(from_ms(ms)), ms);
        assert_eq!(ms_to_rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[tokio::test]
    async fn sqlite_databases_are_created_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings { data_dir: dir.path().to_owned(), ..Settings::default() };
        let db = Database::connect(&settings, "probe").await.unwrap();
        db.migrate(&PLATFORM_MIGRATIONS).await.unwrap();
        // Twice is harmless.
        db.migrate(&PLATFORM_MIGRATIONS).await.unwrap();
        db.ping().await.unwrap();
        assert_eq!(db.backend(), Backend::Sqlite);
    }
}
