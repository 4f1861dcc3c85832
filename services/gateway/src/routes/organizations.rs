//! Organizations and their members.

use axum::{Json, extract::State, http::StatusCode};
use eventhive_domain::OrganizationId;
use eventhive_platform::{Problem, grpc::request};
use eventhive_proto::identity::{self, AddMemberRequest, CreateOrganizationRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{RequestId, answers};
use crate::{
    auth::AuthUser,
    extract::{ApiJson, PathId},
    state::AppState,
};

/// Creates an organization; the caller becomes its owner.
#[utoipa::path(post, path = "/v1/organizations", tag = "organizations", security(("bearer" = [])),
    request_body = CreateOrganizationBody,
    responses((status = 201, body = OrganizationDto), answers::Always, answers::SignedIn, answers::JsonBody))]
pub async fn create(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<CreateOrganizationBody>,
) -> Result<(StatusCode, Json<OrganizationDto>), Problem> {
    let message = CreateOrganizationRequest { owner_user_id: user.to_string(), name: body.name };
    let organization = state
        .identity
        .clone()
        .create_organization(request(message, rid.as_deref()))
        .await
        .map_err(Problem::from)?
        .into_inner();
    Ok((StatusCode::CREATED, Json(OrganizationDto { id: organization.id, name: organization.name })))
}

/// Adds a registered user as `admin` or `staff`. Owners and admins only; an organization the
/// caller is not in answers 404.
#[utoipa::path(post, path = "/v1/organizations/{id}/members", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "organization id")), request_body = AddMemberBody,
    responses((status = 201, body = MemberDto), answers::Always, answers::SignedIn, answers::JsonBody,
              (status = 403, description = "forbidden: staff do not manage members", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: no such organization, or the caller is not in it", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "conflict: already a member", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "validation: invalid fields, or no account has this email", body = Problem, content_type = "application/problem+json")))]
pub async fn add_member(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(organization_id): PathId<OrganizationId>,
    ApiJson(body): ApiJson<AddMemberBody>,
) -> Result<(StatusCode, Json<MemberDto>), Problem> {
    let message = AddMemberRequest {
        actor_user_id: user.to_string(),
        organization_id: organization_id.to_string(),
        email: body.email,
        role: body.role.as_str().to_owned(),
    };
    let member =
        state.identity.clone().add_member(request(message, rid.as_deref())).await.map_err(Problem::from)?.into_inner();
    Ok((StatusCode::CREATED, Json(member.into())))
}

// Wire types.

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrganizationBody {
    /// 1 to 200 characters after trimming, no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        example = "Concertgebouw Presents"
    )]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationDto {
    pub id: String,
    pub name: String,
}

/// A role that can be granted; `owner` belongs to whoever created the organization.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantableRole {
    Admin,
    Staff,
}

impl GrantableRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Staff => "staff",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMemberBody {
    /// The email of a registered user.
    #[schema(format = Email, max_length = 254, pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$",
        example = "grace@example.com")]
    pub email: String,
    pub role: GrantableRole,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    pub organization_id: String,
    pub user_id: String,
    pub email: String,
    #[schema(value_type = GrantableRole)]
    pub role: String,
}

impl From<identity::Member> for MemberDto {
    fn from(member: identity::Member) -> Self {
        Self {
            organization_id: member.organization_id,
            user_id: member.user_id,
            email: member.email,
            role: member.role,
        }
    }
}
