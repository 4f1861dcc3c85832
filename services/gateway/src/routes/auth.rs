//! Registration, sessions and the caller's profile.

use axum::{Extension, Json, extract::State, http::StatusCode};
use eventhive_platform::{Problem, grpc::request};
use eventhive_proto::identity::{self, GetUserRequest, LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::RequestId;
use crate::{auth::AuthUser, extract::ApiJson, middleware::ClientIp, state::AppState};

/// Creates an account. Everyone starts as a buyer; roles come from organizations.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = UserDto), (status = 409, description = "email taken", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn register(
    State(state): State<AppState>,
    rid: RequestId,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<UserDto>), Problem> {
    let message = RegisterRequest { email: body.email, password: body.password, display_name: body.display_name };
    let user = state.identity.clone().register(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok((StatusCode::CREATED, Json(user.into_inner().into())))
}

/// Exchanges email and password for an access token and a refresh token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = TokenDto), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "rate-limited: too many requests from this address, or too many failed logins to this account from clients it never logged in from (wait `Retry-After` seconds)", body = Problem, content_type = "application/problem+json")))]
pub async fn login(
    State(state): State<AppState>,
    rid: RequestId,
    Extension(ClientIp(client)): Extension<ClientIp>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<TokenDto>, Problem> {
    let message = LoginRequest { email: body.email, password: body.password, client };
    let pair = state.identity.clone().login(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(pair.into_inner().into()))
}

/// Exchanges a refresh token for new tokens. A refresh token works once; presenting a used one
/// again revokes every token of that login.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, body = TokenDto), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn refresh(
    State(state): State<AppState>,
    rid: RequestId,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<TokenDto>, Problem> {
    let message = RefreshRequest { refresh_token: body.refresh_token };
    let pair = state.identity.clone().refresh(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(pair.into_inner().into()))
}

/// Revokes the refresh token (and every token rotated from the same login).
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshBody,
    responses((status = 204, description = "logged out")))]
pub async fn logout(
    State(state): State<AppState>,
    rid: RequestId,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<StatusCode, Problem> {
    let message = LogoutRequest { refresh_token: body.refresh_token };
    state.identity.clone().logout(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller and the organizations they belong to.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeDto), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn me(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
) -> Result<Json<MeDto>, Problem> {
    let profile = state
        .identity
        .clone()
        .get_user(request(GetUserRequest { user_id: user.to_string() }, rid.as_deref()))
        .await
        .map_err(|status| {
            let problem = Problem::from_status(&status);
            // A valid token for an account that no longer exists.
            if problem.status == 404 {
                Problem::new(eventhive_platform::ErrorKind::Unauthorized, "the account no longer exists")
            } else {
                problem
            }
        })?
        .into_inner();
    let account = profile.user.unwrap_or_default();
    Ok(Json(MeDto {
        id: account.id,
        email: account.email,
        display_name: account.display_name,
        organizations: profile
            .organizations
            .into_iter()
            .map(|m| MembershipDto { id: m.organization_id, name: m.name, role: m.role })
            .collect(),
    }))
}

// Wire types.

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterBody {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// 10 to 128 characters.
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// 1 to 100 characters.
    #[schema(example = "Ada Lovelace")]
    pub display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: String,
    pub email: String,
    pub display_name: String,
}

impl From<identity::User> for UserDto {
    fn from(user: identity::User) -> Self {
        Self { id: user.id, email: user.email, display_name: user.display_name }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenDto {
    /// A JWT (EdDSA) to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Works once: each refresh returns a new one.
    pub refresh_token: String,
}

impl From<identity::TokenPair> for TokenDto {
    fn from(pair: identity::TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            token_type: pair.token_type,
            expires_in: pair.expires_in,
            refresh_token: pair.refresh_token,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipDto {
    pub id: String,
    pub name: String,
    /// `owner`, `admin` or `staff`.
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeDto {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub organizations: Vec<MembershipDto>,
}
