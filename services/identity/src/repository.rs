//! Identity's storage: every SQL statement on `users`, `refresh_tokens`, `organizations` and
//! `memberships` (the signing keys have their own, `signing_keys`, and the login throttle
//! its own, `throttle`). Single statements run on
//! the pool; the ones an operation groups take its transaction's connection.

use anyhow::Context;
use eventhive_domain::{OrganizationId, UserId};
use eventhive_platform::{Database, storage::is_unique_violation};
use sqlx::{Any, AnyConnection, Transaction, pool::PoolConnection};

use crate::{
    domain::{DisplayName, Email, OrganizationName, Role},
    error::IdentityError,
};

type Result<T> = std::result::Result<T, IdentityError>;

/// A user as others may see them: never the password hash.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
}

/// A user's place in an organization, with the organization's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub organization_id: String,
    pub name: String,
    pub role: String,
}

/// A member of an organization, with their account's email and name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub role: String,
}

/// A stored refresh token, found by its hash.
#[derive(Debug, Clone)]
pub struct RefreshTokenRow {
    pub id: String,
    /// The login this token descends from by rotation.
    pub family_id: String,
    pub user_id: UserId,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Reads and writes users, their sessions and their organizations.
#[derive(Clone)]
pub struct Repository {
    db: Database,
}

impl Repository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.db.pool().begin().await?)
    }

    pub async fn connection(&self) -> Result<PoolConnection<Any>> {
        Ok(self.db.pool().acquire().await?)
    }

    /// Inserts a user; `false` when the email has an account already.
    pub async fn insert_user(
        &self,
        id: UserId,
        email: &Email,
        name: &DisplayName,
        password_hash: &str,
        now: i64,
    ) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, email_lower, display_name, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.to_string())
        .bind(email.as_str())
        .bind(email.normalized())
        .bind(name.as_str())
        .bind(password_hash)
        .bind(now)
        .execute(self.db.pool())
        .await;
        inserted_unless_duplicate(inserted)
    }

    /// The id and password hash of the account with this (normalized) email.
    pub async fn credentials(&self, email_lower: &str) -> Result<Option<(UserId, String)>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT id, password_hash FROM users WHERE email_lower = $1")
                .bind(email_lower)
                .fetch_optional(self.db.pool())
                .await?;
        row.map(|(id, hash)| Ok((stored_user_id(&id)?, hash))).transpose()
    }

    pub async fn user(&self, id: UserId) -> Result<Option<UserRow>> {
        self.user_where("id", &id.to_string()).await
    }

    pub async fn user_by_email(&self, email_lower: &str) -> Result<Option<UserRow>> {
        self.user_where("email_lower", email_lower).await
    }

    /// The user whose `column` (a unique one) is `value`.
    async fn user_where(&self, column: &str, value: &str) -> Result<Option<UserRow>> {
        let row: Option<(String, String, String)> =
            sqlx::query_as(&format!("SELECT id, email, display_name FROM users WHERE {column} = $1"))
                .bind(value)
                .fetch_optional(self.db.pool())
                .await?;
        row.map(|(id, email, display_name)| Ok(UserRow { id: stored_user_id(&id)?, email, display_name })).transpose()
    }

    /// The database, for the modules that keep their own SQL (`throttle`).
    pub fn database(&self) -> Database {
        self.db.clone()
    }

    /// Deletes refresh tokens that expired: none of them can be used or reused any more, and a
    /// family's reuse detection needs only its live tokens. Returns how many went.
    pub async fn delete_expired_refresh_tokens(&self, now: i64) -> Result<u64> {
        let deleted =
            sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1").bind(now).execute(self.db.pool()).await?;
        Ok(deleted.rows_affected())
    }

    pub async fn insert_refresh_token(
        &self,
        conn: &mut AnyConnection,
        family_id: &str,
        user_id: UserId,
        token_hash: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(family_id)
        .bind(user_id.to_string())
        .bind(token_hash)
        .bind(created_at)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn refresh_token(&self, conn: &mut AnyConnection, token_hash: &str) -> Result<Option<RefreshTokenRow>> {
        type Row = (String, String, String, i64, Option<i64>, Option<i64>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|(id, family_id, user_id, expires_at, used_at, revoked_at)| {
            Ok(RefreshTokenRow { id, family_id, user_id: stored_user_id(&user_id)?, expires_at, used_at, revoked_at })
        })
        .transpose()
    }

    /// Marks the token used; `false` when it was used already (by a concurrent refresh).
    pub async fn claim_refresh_token(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
        let updated = sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(updated.rows_affected() == 1)
    }

    pub async fn refresh_token_family(&self, conn: &mut AnyConnection, token_hash: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&mut *conn)
            .await?)
    }

    pub async fn revoke_family(&self, conn: &mut AnyConnection, family_id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(family_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub async fn insert_organization(
        &self,
        conn: &mut AnyConnection,
        id: OrganizationId,
        name: &OrganizationName,
        now: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(name.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Inserts a membership; `false` when the user is a member already.
    pub async fn insert_membership(
        &self,
        conn: &mut AnyConnection,
        organization_id: OrganizationId,
        user_id: UserId,
        role: Role,
        now: i64,
    ) -> Result<bool> {
        let inserted =
            sqlx::query("INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                .bind(organization_id.to_string())
                .bind(user_id.to_string())
                .bind(role.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await;
        inserted_unless_duplicate(inserted)
    }

    /// The user's role in the organization; none when they are not in it.
    pub async fn role_in(&self, organization_id: OrganizationId, user_id: UserId) -> Result<Option<Role>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2")
                .bind(organization_id.to_string())
                .bind(user_id.to_string())
                .fetch_optional(self.db.pool())
                .await?;
        Ok(role.as_deref().and_then(Role::from_stored))
    }

    /// The user's memberships, oldest first.
    pub async fn memberships_of(&self, user_id: UserId) -> Result<Vec<MembershipRow>> {
        Ok(sqlx::query_as(
            "SELECT o.id AS organization_id, o.name, m.role FROM memberships m \
             JOIN organizations o ON o.id = m.organization_id WHERE m.user_id = $1 ORDER BY m.created_at, o.id",
        )
        .bind(user_id.to_string())
        .fetch_all(self.db.pool())
        .await?)
    }

    /// The organization's members, oldest first.
    pub async fn members_of(&self, organization_id: OrganizationId) -> Result<Vec<MemberRow>> {
        Ok(sqlx::query_as(
            "SELECT u.id AS user_id, u.email, u.display_name, m.role FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.organization_id = $1 ORDER BY m.created_at, u.id",
        )
        .bind(organization_id.to_string())
        .fetch_all(self.db.pool())
        .await?)
    }
}

/// Whether an insert wrote its row: a unique violation is an answer, not a failure.
fn inserted_unless_duplicate(result: std::result::Result<sqlx::any::AnyQueryResult, sqlx::Error>) -> Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(error) if is_unique_violation(&error) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Ids are written by this service, so one that does not parse is corruption.
fn stored_user_id(stored: &str) -> Result<UserId> {
    Ok(UserId::parse(stored).with_context(|| format!("stored user id {stored:?} is not a UUID"))?)
}
