//! identity: who people are and what they may do. Users sign up with an email and a password
//! (Argon2id); logging in yields a short-lived Ed25519-signed JWT and a rotating refresh
//! token; organizations have members with the roles owner, admin and staff, and nobody grants
//! themselves a role.
//!
//! # Layout
//! - `service`: the gRPC glue: decodes a request, runs an operation, encodes the answer.
//! - The operations:
//!   - `users`: sign up, a user with their organizations, find by email;
//!   - `sessions`: log in, refresh (rotation, reuse detection), log out;
//!   - `organizations`: create one, add members, list a user's memberships.
//! - `domain`: parsed input (email, password, names, roles, new users and members).
//! - `passwords`: Argon2id hashing off the async workers.
//! - `tokens`: access tokens, the JWKS, refresh tokens and their hashes.
//! - `repository`: every SQL statement on users, refresh tokens, organizations and memberships;
//!   `signing_keys`: the SQL of the signing keys.
//! - `error`: identity's errors and their gRPC statuses.
//!
//! Only [`Application`], [`SERVICE`] and [`MIGRATIONS`] are public: the platform starts the
//! service through them, and nothing else reaches inside.

mod domain;
mod error;
mod organizations;
mod passwords;
mod repository;
mod service;
mod sessions;
mod signing_keys;
mod tokens;
mod users;

use std::sync::Arc;

use eventhive_platform::{Database, Settings, grpc, shutdown::CancellationToken};
use eventhive_proto::identity::identity_server::IdentityServer;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

/// The name of this service: its database, its logs, its gRPC health entry.
pub const SERVICE: &str = "identity";

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// A built identity service, bound to its listener, ready to run.
pub struct Application {
    listener: TcpListener,
    service: service::IdentityService,
    db: Database,
}

impl Application {
    /// Connects and migrates the database, loads the signing keys. `listener` may be on port 0.
    pub async fn build(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let db = Database::connect(settings, SERVICE).await?;
        db.migrate(&MIGRATIONS).await?;
        let tokens = Arc::new(tokens::TokenIssuer::load(&db, settings.access_token_ttl_secs).await?);
        let passwords =
            passwords::PasswordHashing::new(settings.password_hash_memory_kib, settings.password_hash_iterations)?;
        let service = service::IdentityService::new(db.clone(), passwords, tokens, settings.refresh_token_ttl_secs);
        Ok(Self { listener, service, db })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let health = tonic_health::server::health_reporter();
        let result = grpc::serve(SERVICE, self.listener, IdentityServer::new(self.service), health, shutdown).await;
        self.db.close().await;
        result
    }
}
