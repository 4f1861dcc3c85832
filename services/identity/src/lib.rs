//! identity: who people are and what they may do. Users sign up with an email and a password
//! (Argon2id); logging in yields a short-lived Ed25519-signed JWT and a rotating refresh
//! token; organizations have members with the roles owner, admin and staff, and nobody grants
//! themselves a role.
//!
//! # Layout
//! - `service`: the gRPC glue: decodes a request, runs an operation, encodes the answer.
//! - The operations:
//!   - `users`: sign up, a user with their organizations, find by email;
//!   - `sessions`: log in, refresh (rotation, reuse detection), log out, prune;
//!   - `organizations`: create one, add members, list a user's memberships.
//! - `domain`: parsed input (email, password, names, roles, new users and members).
//! - `passwords`: Argon2id hashing off the async workers, as many at once as there are cores.
//! - `throttle`: the growing delay after failed logins to an account, and its SQL.
//! - `tokens`: access tokens, the JWKS, refresh tokens and their hashes.
//! - `repository`: every SQL statement on users, refresh tokens, organizations and memberships;
//!   `signing_keys`: the SQL of the signing keys.
//! - `error`: identity's errors and their gRPC statuses.
//!
//! Only [`Application`], its settings section, [`SERVICE`] and [`MIGRATIONS`] are public: the platform starts the
//! service through them, and nothing else reaches inside.

mod domain;
mod error;
mod organizations;
mod passwords;
mod repository;
mod service;
mod sessions;
mod signing_keys;
mod throttle;
mod tokens;
mod users;

use std::sync::Arc;

use eventhive_platform::{
    Context, Section, Service, async_trait::async_trait, config::ConfigError, grpc, shutdown::CancellationToken,
};
use eventhive_proto::identity::identity_server::IdentityServer;
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

/// The name of this service: its database, its logs, its gRPC health entry.
pub const SERVICE: &str = "identity";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// `eventhive keys rotate`, identity's part: a new key signs, the old ones verify until their
/// tokens expire, keys retired long enough are deleted, and every private key is sealed with
/// the current secret key. Runs against the database, beside the running replicas.
pub async fn rotate_keys(settings: &eventhive_platform::Settings) -> anyhow::Result<String> {
    let section: IdentitySettings = settings.section()?;
    let secrets = eventhive_platform::Secrets::load(settings)?;
    let db = eventhive_platform::service::open_database(settings, SERVICE, Some(&MIGRATIONS))
        .await?
        .ok_or_else(|| anyhow::anyhow!("identity has a database"))?;
    let rotation = tokens::rotate(&db, &secrets, section.access_token_ttl_secs).await;
    db.close().await;
    let rotation = rotation?;
    Ok(format!(
        "identity: a new token-signing key; {} retired (they verify until their tokens expire), {} deleted",
        rotation.retired, rotation.deleted
    ))
}

/// Seals every token-signing key with the current secret key, changing no key.
pub async fn reseal_keys(settings: &eventhive_platform::Settings) -> anyhow::Result<String> {
    let secrets = eventhive_platform::Secrets::load(settings)?;
    let db = eventhive_platform::service::open_database(settings, SERVICE, Some(&MIGRATIONS))
        .await?
        .ok_or_else(|| anyhow::anyhow!("identity has a database"))?;
    let resealed = tokens::reseal(&db, &secrets).await;
    db.close().await;
    Ok(format!("identity: {} token-signing keys sealed with the current secret key", resealed?))
}

/// Identity's settings section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentitySettings {
    /// Lifetime of an access token (JWT).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token; each use rotates it.
    pub refresh_token_ttl_secs: u64,
    /// Argon2id memory cost in KiB (OWASP: at least 19 MiB with 2 iterations).
    pub password_hash_memory_kib: u32,
    pub password_hash_iterations: u32,
    /// How often expired refresh tokens and idle failed-login records are deleted.
    pub session_prune_interval_secs: u64,
    /// How often each replica reads the token-signing keys again, to pick up a rotation.
    pub signing_key_reload_secs: u64,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            password_hash_memory_kib: 19 * 1024,
            password_hash_iterations: 2,
            session_prune_interval_secs: 3600,
            signing_key_reload_secs: 30,
        }
    }
}

impl Section for IdentitySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.access_token_ttl_secs == 0 || self.access_token_ttl_secs > 24 * 3600 {
            return Err(ConfigError::new("access_token_ttl_secs", "must be between 1 and 86400"));
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            return Err(ConfigError::new("refresh_token_ttl_secs", "must not be shorter than the access token's"));
        }
        if self.password_hash_memory_kib < 8 {
            return Err(ConfigError::new("password_hash_memory_kib", "must be at least 8"));
        }
        if self.signing_key_reload_secs == 0 || self.signing_key_reload_secs > 300 {
            // A retired key verifies five minutes past its tokens' lifetime (tokens.rs): a
            // replica must have reloaded by then.
            return Err(ConfigError::new("signing_key_reload_secs", "must be between 1 and 300"));
        }
        if self.session_prune_interval_secs == 0 {
            return Err(ConfigError::new("session_prune_interval_secs", "must be at least 1"));
        }
        if self.password_hash_iterations == 0 {
            return Err(ConfigError::new("password_hash_iterations", "must be at least 1"));
        }
        Ok(())
    }
}

/// A built identity service, bound to its listener, ready to run.
pub struct Application {
    listener: TcpListener,
    /// The deployment's secret key: the service token its gRPC server asks of callers.
    secrets: eventhive_platform::Secrets,
    service: service::IdentityService,
    db: eventhive_platform::Database,
    prune_every: std::time::Duration,
    /// Reloaded now and then: keys rotated by `eventhive keys rotate` reach every replica.
    tokens: Arc<tokens::TokenIssuer>,
    reload_every: std::time::Duration,
}

#[async_trait]
impl Service for Application {
    const NAME: &'static str = SERVICE;
    const DEFAULT_PORT: u16 = 50051;
    type Settings = IdentitySettings;

    fn migrations() -> Option<&'static Migrator> {
        Some(&MIGRATIONS)
    }

    /// Loads the signing keys and sets up password hashing.
    async fn build(context: Context) -> anyhow::Result<Self> {
        let secrets = context.secrets()?;
        let settings: IdentitySettings = context.section()?;
        let db = context.database()?;
        let tokens = Arc::new(tokens::TokenIssuer::load(&db, &secrets, settings.access_token_ttl_secs).await?);
        let passwords =
            passwords::PasswordHashing::new(settings.password_hash_memory_kib, settings.password_hash_iterations)?;
        let service =
            service::IdentityService::new(db.clone(), passwords, tokens.clone(), settings.refresh_token_ttl_secs);
        let prune_every = std::time::Duration::from_secs(settings.session_prune_interval_secs);
        let reload_every = std::time::Duration::from_secs(settings.signing_key_reload_secs);
        Ok(Self { listener: context.listener, secrets, service, db, prune_every, tokens, reload_every })
    }

    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let sessions = self.service.sessions();
        let (housekeeping, prune_every) = (shutdown.clone(), self.prune_every);
        tokio::spawn(async move {
            loop {
                match sessions.prune().await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "forgot expired sessions and idle login records"),
                    Err(error) => tracing::warn!(error = %error, "pruning sessions failed; trying again later"),
                }
                tokio::select! {
                    () = housekeeping.cancelled() => return,
                    () = tokio::time::sleep(prune_every) => {}
                }
            }
        });
        let (tokens, reloading, reload_every) = (self.tokens.clone(), shutdown.clone(), self.reload_every);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = reloading.cancelled() => return,
                    () = tokio::time::sleep(reload_every) => {}
                }
                if let Err(error) = tokens.reload().await {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "reloading signing keys failed; keeping the ones loaded"
                    );
                }
            }
        });
        let health = tonic_health::server::health_reporter();
        let result =
            grpc::serve(SERVICE, self.listener, IdentityServer::new(self.service), health, shutdown, &self.secrets)
                .await;
        self.db.close().await;
        result
    }
}
