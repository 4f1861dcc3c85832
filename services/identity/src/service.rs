//! The identity gRPC service: registration, sessions, organizations and memberships.

use std::sync::Arc;

use eventhive_domain::{OrganizationId, UserId};
use eventhive_platform::{
    Database, FieldError,
    storage::{is_unique_violation, now_ms},
};
use eventhive_proto::identity::{
    AddMemberRequest, CreateOrganizationRequest, FindUserByEmailRequest, GetJwksRequest, GetUserRequest, Jwks,
    ListMembershipsRequest, ListMembershipsResponse, LoginRequest, LogoutRequest, LogoutResponse, Member, Organization,
    OrganizationMembership, RefreshRequest, RegisterRequest, TokenPair, User, UserProfile, identity_server,
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{DisplayName, Email, NewPassword, OrganizationName, Role},
    error::IdentityError,
    passwords::PasswordHashing,
    tokens::{TokenIssuer, hash_refresh_token, new_refresh_token},
};

pub struct IdentityService {
    db: Database,
    passwords: PasswordHashing,
    tokens: Arc<TokenIssuer>,
    refresh_ttl_ms: i64,
}

type Result<T> = std::result::Result<T, IdentityError>;

impl IdentityService {
    pub fn new(db: Database, passwords: PasswordHashing, tokens: Arc<TokenIssuer>, refresh_ttl_secs: u64) -> Self {
        let refresh_ttl_ms = i64::try_from(refresh_ttl_secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
        Self { db, passwords, tokens, refresh_ttl_ms }
    }

    #[tracing::instrument(skip_all)]
    async fn register(&self, request: RegisterRequest) -> Result<User> {
        let mut errors = Vec::new();
        let email = Email::parse(&request.email).map_err(|e| errors.push(e)).ok();
        let password = NewPassword::parse(&request.password).map_err(|e| errors.push(e)).ok();
        let name = DisplayName::parse(&request.display_name).map_err(|e| errors.push(e)).ok();
        let (Some(email), Some(password), Some(name)) = (email, password, name) else {
            return Err(IdentityError::Invalid(errors));
        };
        let hash = self.passwords.hash(password.expose().to_owned()).await?;
        let id = UserId::new();
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, email_lower, display_name, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.to_string())
        .bind(email.as_str())
        .bind(email.normalized())
        .bind(name.as_str())
        .bind(hash)
        .bind(now_ms())
        .execute(self.db.pool())
        .await;
        match inserted {
            Ok(_) => Ok(User {
                id: id.to_string(),
                email: email.as_str().to_owned(),
                display_name: name.as_str().to_owned(),
            }),
            Err(error) if is_unique_violation(&error) => Err(IdentityError::EmailTaken),
            Err(error) => Err(error.into()),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn login(&self, request: LoginRequest) -> Result<TokenPair> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT id, password_hash FROM users WHERE email_lower = $1")
                .bind(request.email.trim().to_lowercase())
                .fetch_optional(self.db.pool())
                .await?;
        let (user_id, hash) = row.map_or((None, None), |(id, hash)| (Some(id), Some(hash)));
        if !self.passwords.verify(request.password, hash).await? {
            return Err(IdentityError::InvalidCredentials);
        }
        let user_id = user_id.ok_or(IdentityError::InvalidCredentials)?;
        let mut tx = self.db.pool().begin().await?;
        let refresh_token = self.insert_refresh_token(&mut tx, &user_id, &uuid::Uuid::now_v7().to_string()).await?;
        tx.commit().await?;
        self.token_pair(&user_id, refresh_token)
    }

    async fn insert_refresh_token(
        &self,
        tx: &mut sqlx::AnyConnection,
        user_id: &str,
        family_id: &str,
    ) -> Result<String> {
        let token = new_refresh_token()?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(family_id)
        .bind(user_id)
        .bind(hash_refresh_token(&token))
        .bind(now)
        .bind(now.saturating_add(self.refresh_ttl_ms))
        .execute(&mut *tx)
        .await?;
        Ok(token)
    }

    fn token_pair(&self, user_id: &str, refresh_token: String) -> Result<TokenPair> {
        Ok(TokenPair {
            access_token: self.tokens.issue_access_token(user_id)?,
            token_type: "Bearer".into(),
            expires_in: self.tokens.access_ttl_secs(),
            refresh_token,
        })
    }

    /// Rotation: a refresh token works once. Presenting one that was already used means it was
    /// copied, so the whole family (this login's chain) is revoked.
    #[tracing::instrument(skip_all)]
    async fn refresh(&self, request: RefreshRequest) -> Result<TokenPair> {
        let mut tx = self.db.pool().begin().await?;
        let row: Option<RefreshTokenRow> = sqlx::query_as(
            "SELECT id, family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(hash_refresh_token(&request.refresh_token))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(RefreshTokenRow { id, family_id, user_id, expires_at, used_at, revoked_at }) = row else {
            return Err(IdentityError::InvalidRefreshToken);
        };
        let now = now_ms();
        if revoked_at.is_some() || expires_at <= now {
            return Err(IdentityError::InvalidRefreshToken);
        }
        let claimed = if used_at.is_none() {
            sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1
        } else {
            false
        };
        if !claimed {
            tracing::warn!(%family_id, "refresh token reused; revoking its family");
            revoke_family(&mut tx, &family_id, now).await?;
            tx.commit().await?;
            return Err(IdentityError::InvalidRefreshToken);
        }
        let refresh_token = self.insert_refresh_token(&mut tx, &user_id, &family_id).await?;
        tx.commit().await?;
        self.token_pair(&user_id, refresh_token)
    }

    #[tracing::instrument(skip_all)]
    async fn logout(&self, request: LogoutRequest) -> Result<()> {
        let mut tx = self.db.pool().begin().await?;
        let family: Option<String> = sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(hash_refresh_token(&request.refresh_token))
            .fetch_optional(&mut *tx)
            .await?;
        // An unknown token is already as logged out as it can be.
        if let Some(family_id) = family {
            revoke_family(&mut tx, &family_id, now_ms()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, user_id: &str) -> Result<User> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT id, email, display_name FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(self.db.pool())
                .await?;
        let (id, email, display_name) = row.ok_or(IdentityError::UserNotFound)?;
        Ok(User { id, email, display_name })
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<OrganizationMembership>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT o.id, o.name, m.role FROM memberships m JOIN organizations o ON o.id = m.organization_id \
             WHERE m.user_id = $1 ORDER BY m.created_at, o.id",
        )
        .bind(user_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(organization_id, name, role)| OrganizationMembership { organization_id, name, role })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(user_id = %request.owner_user_id))]
    async fn create_organization(&self, request: CreateOrganizationRequest) -> Result<Organization> {
        let name = OrganizationName::parse(&request.name)?;
        let owner = self.user(&request.owner_user_id).await?;
        let id = OrganizationId::new();
        let now = now_ms();
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(name.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id.to_string())
            .bind(&owner.id)
            .bind(Role::Owner.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Organization { id: id.to_string(), name: name.as_str().to_owned() })
    }

    async fn role_in(&self, organization_id: &str, user_id: &str) -> Result<Option<Role>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2")
                .bind(organization_id)
                .bind(user_id)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(role.as_deref().and_then(Role::from_stored))
    }

    #[tracing::instrument(skip_all, fields(organization_id = %request.organization_id))]
    async fn add_member(&self, request: AddMemberRequest) -> Result<Member> {
        // An organization one is not in is invisible: 404, not 403.
        let actor_role = self
            .role_in(&request.organization_id, &request.actor_user_id)
            .await?
            .ok_or(IdentityError::OrganizationNotFound)?;
        if !actor_role.manages_members() {
            return Err(IdentityError::NotAllowed);
        }
        let mut errors = Vec::new();
        let role = Role::parse_grantable(&request.role).map_err(|e| errors.push(e)).ok();
        let email = Email::parse(&request.email).map_err(|e| errors.push(e)).ok();
        let (Some(role), Some(email)) = (role, email) else {
            return Err(IdentityError::Invalid(errors));
        };
        let user: Option<(String, String)> = sqlx::query_as("SELECT id, email FROM users WHERE email_lower = $1")
            .bind(email.normalized())
            .fetch_optional(self.db.pool())
            .await?;
        let (user_id, user_email) =
            user.ok_or_else(|| IdentityError::from(FieldError::new("email", "no account has this email")))?;
        let inserted =
            sqlx::query("INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&request.organization_id)
                .bind(&user_id)
                .bind(role.as_str())
                .bind(now_ms())
                .execute(self.db.pool())
                .await;
        match inserted {
            Ok(_) => Ok(Member {
                organization_id: request.organization_id,
                user_id,
                email: user_email,
                role: role.as_str().to_owned(),
            }),
            Err(error) if is_unique_violation(&error) => Err(IdentityError::AlreadyMember(user_email)),
            Err(error) => Err(error.into()),
        }
    }
}

#[derive(sqlx::FromRow)]
struct RefreshTokenRow {
    id: String,
    family_id: String,
    user_id: String,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

async fn revoke_family(tx: &mut sqlx::AnyConnection, family_id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(family_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[tonic::async_trait]
impl identity_server::Identity for IdentityService {
    async fn register(&self, request: Request<RegisterRequest>) -> std::result::Result<Response<User>, Status> {
        Ok(Response::new(IdentityService::register(self, request.into_inner()).await?))
    }

    async fn login(&self, request: Request<LoginRequest>) -> std::result::Result<Response<TokenPair>, Status> {
        Ok(Response::new(IdentityService::login(self, request.into_inner()).await?))
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> std::result::Result<Response<TokenPair>, Status> {
        Ok(Response::new(IdentityService::refresh(self, request.into_inner()).await?))
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> std::result::Result<Response<LogoutResponse>, Status> {
        IdentityService::logout(self, request.into_inner()).await?;
        Ok(Response::new(LogoutResponse {}))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> std::result::Result<Response<UserProfile>, Status> {
        let user_id = request.into_inner().user_id;
        let user = self.user(&user_id).await?;
        let organizations = self.memberships(&user_id).await?;
        Ok(Response::new(UserProfile { user: Some(user), organizations }))
    }

    async fn find_user_by_email(
        &self,
        request: Request<FindUserByEmailRequest>,
    ) -> std::result::Result<Response<User>, Status> {
        let email = request.into_inner().email.trim().to_lowercase();
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE email_lower = $1")
            .bind(email)
            .fetch_optional(self.db.pool())
            .await
            .map_err(IdentityError::from)?;
        let id = id.ok_or(IdentityError::UserNotFound)?;
        Ok(Response::new(self.user(&id).await?))
    }

    async fn list_memberships(
        &self,
        request: Request<ListMembershipsRequest>,
    ) -> std::result::Result<Response<ListMembershipsResponse>, Status> {
        let memberships = self.memberships(&request.into_inner().user_id).await?;
        Ok(Response::new(ListMembershipsResponse { memberships }))
    }

    async fn create_organization(
        &self,
        request: Request<CreateOrganizationRequest>,
    ) -> std::result::Result<Response<Organization>, Status> {
        Ok(Response::new(IdentityService::create_organization(self, request.into_inner()).await?))
    }

    async fn add_member(&self, request: Request<AddMemberRequest>) -> std::result::Result<Response<Member>, Status> {
        Ok(Response::new(IdentityService::add_member(self, request.into_inner()).await?))
    }

    async fn get_jwks(&self, _request: Request<GetJwksRequest>) -> std::result::Result<Response<Jwks>, Status> {
        Ok(Response::new(Jwks { json: self.tokens.jwks_json().to_owned() }))
    }
}
