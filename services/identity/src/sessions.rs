//! Sessions: logging in, refreshing and logging out. A login starts a family of refresh
//! tokens; each refresh uses its token up and hands out the next one of the family.

use std::sync::Arc;

use eventhive_domain::UserId;
use eventhive_platform::storage::now_ms;
use sqlx::AnyConnection;

use crate::{
    domain::Email,
    error::IdentityError,
    passwords::PasswordHashing,
    repository::{RefreshTokenRow, Repository},
    tokens::{TokenIssuer, hash_refresh_token, new_refresh_token},
};

type Result<T> = std::result::Result<T, IdentityError>;

/// What a login or a refresh hands out.
pub struct Session {
    pub access_token: String,
    /// The access token's lifetime, in seconds.
    pub expires_in: i64,
    pub refresh_token: String,
}

pub struct Sessions {
    repository: Repository,
    passwords: PasswordHashing,
    tokens: Arc<TokenIssuer>,
    /// How long a refresh token works, in milliseconds.
    refresh_ttl_ms: i64,
}

impl Sessions {
    pub fn new(
        repository: Repository,
        passwords: PasswordHashing,
        tokens: Arc<TokenIssuer>,
        refresh_ttl_secs: u64,
    ) -> Self {
        let refresh_ttl_ms = i64::try_from(refresh_ttl_secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
        Self { repository, passwords, tokens, refresh_ttl_ms }
    }

    /// A new session for the right password. An unknown email costs as much time as a wrong
    /// password and answers the same.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, email: &str, password: String) -> Result<Session> {
        let credentials = self.repository.credentials(&Email::normalize(email)).await?;
        let (user_id, hash) = credentials.map_or((None, None), |(id, hash)| (Some(id), Some(hash)));
        if !self.passwords.verify(password, hash).await? {
            return Err(IdentityError::InvalidCredentials);
        }
        let user_id = user_id.ok_or(IdentityError::InvalidCredentials)?;
        let mut tx = self.repository.begin().await?;
        let family_id = uuid::Uuid::now_v7().to_string();
        let refresh_token = self.issue_refresh_token(&mut tx, user_id, &family_id).await?;
        tx.commit().await?;
        self.session(user_id, refresh_token)
    }

    /// Rotation: a refresh token works once. Presenting one that was already used means it was
    /// copied, so the whole family (this login's chain) is revoked.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session> {
        let mut tx = self.repository.begin().await?;
        let stored = self.repository.refresh_token(&mut tx, &hash_refresh_token(refresh_token)).await?;
        let Some(RefreshTokenRow { id, family_id, user_id, expires_at, used_at, revoked_at }) = stored else {
            return Err(IdentityError::InvalidRefreshToken);
        };
        let now = now_ms();
        if revoked_at.is_some() || expires_at <= now {
            return Err(IdentityError::InvalidRefreshToken);
        }
        let claimed = used_at.is_none() && self.repository.claim_refresh_token(&mut tx, &id, now).await?;
        if !claimed {
            tracing::warn!(%family_id, "refresh token reused; revoking its family");
            self.repository.revoke_family(&mut tx, &family_id, now).await?;
            tx.commit().await?;
            return Err(IdentityError::InvalidRefreshToken);
        }
        let refresh_token = self.issue_refresh_token(&mut tx, user_id, &family_id).await?;
        tx.commit().await?;
        self.session(user_id, refresh_token)
    }

    /// Ends the session: the token's whole family stops working.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        let mut tx = self.repository.begin().await?;
        let family = self.repository.refresh_token_family(&mut tx, &hash_refresh_token(refresh_token)).await?;
        // An unknown token is already as logged out as it can be.
        if let Some(family_id) = family {
            self.repository.revoke_family(&mut tx, &family_id, now_ms()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn issue_refresh_token(&self, tx: &mut AnyConnection, user_id: UserId, family_id: &str) -> Result<String> {
        let token = new_refresh_token()?;
        let now = now_ms();
        let expires_at = now.saturating_add(self.refresh_ttl_ms);
        self.repository
            .insert_refresh_token(tx, family_id, user_id, &hash_refresh_token(&token), now, expires_at)
            .await?;
        Ok(token)
    }

    fn session(&self, user_id: UserId, refresh_token: String) -> Result<Session> {
        Ok(Session {
            access_token: self.tokens.issue_access_token(user_id)?,
            expires_in: self.tokens.access_ttl_secs(),
            refresh_token,
        })
    }
}
