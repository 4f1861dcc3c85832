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
    throttle::{self, LoginThrottle},
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
    throttle: LoginThrottle,
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
        let throttle = LoginThrottle::new(repository.database());
        Self { repository, throttle, passwords, tokens, refresh_ttl_ms }
    }

    /// A new session for the right password. An unknown email costs as much time as a wrong
    /// password and answers the same, and is throttled alike. Failed logins to one account
    /// delay its next try (see `throttle`), except from a client it logged in from before;
    /// a delayed try is refused before its password costs a hash.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, email: &str, password: String, client: &str) -> Result<Session> {
        let email = Email::normalize(email);
        let client = throttle::client_key(client);
        let credentials = self.repository.credentials(&email).await?;
        let (user_id, hash) = credentials.map_or((None, None), |(id, hash)| (Some(id), Some(hash)));
        let known_client = match (user_id, &client) {
            (Some(user_id), Some(client)) => self.throttle.is_known(&user_id.to_string(), client).await?,
            _ => false,
        };
        let now = now_ms();
        if !known_client
            && let Some(until) = self.throttle.blocked_until(&email).await?
            && until > now
        {
            metrics::counter!("eventhive_logins_delayed_total").increment(1);
            return Err(IdentityError::LoginDelayed { retry_after_ms: until - now });
        }
        let user_id = match (self.passwords.verify(password, hash).await?, user_id) {
            (true, Some(user_id)) => user_id,
            _ => {
                metrics::counter!("eventhive_logins_failed_total").increment(1);
                self.throttle.failed(&email, now_ms()).await?;
                return Err(IdentityError::InvalidCredentials);
            }
        };
        self.throttle.succeeded(&email, &user_id.to_string(), client.as_deref(), now_ms()).await?;
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

    /// Forgets what no login needs any more: refresh tokens past their expiry, failures idle
    /// for a day, clients unused for 90 days. Run by the service now and then.
    pub async fn prune(&self) -> Result<u64> {
        let now = now_ms();
        let tokens = self.repository.delete_expired_refresh_tokens(now).await?;
        Ok(tokens + self.throttle.prune(now).await?)
    }

    fn session(&self, user_id: UserId, refresh_token: String) -> Result<Session> {
        Ok(Session {
            access_token: self.tokens.issue_access_token(user_id)?,
            expires_in: self.tokens.access_ttl_secs(),
            refresh_token,
        })
    }
}
