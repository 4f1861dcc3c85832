//! Organizations and their members.

use axum::{Json, extract::State, http::StatusCode};
use eventhive_domain::OrganizationId;
use eventhive_platform::{Problem, grpc::request};
use eventhive_proto::{
    catalog::ListOrganizationEventsRequest,
    identity::{self, AddMemberRequest, CreateOrganizationRequest, ListMembersRequest},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    RequestId, answers,
    events::{EventPage, with_availabilities},
    orders::PageParams,
    shared::page_size,
};
use crate::{
    auth::AuthUser,
    extract::{ApiJson, ApiQuery, PathId},
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

/// The organization's members, oldest first (the owner first). Members of the organization
/// only; an organization the caller is not in answers 404.
#[utoipa::path(get, path = "/v1/organizations/{id}/members", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "organization id")),
    responses((status = 200, body = MemberList), answers::Always, answers::SignedIn,
              (status = 404, description = "not-found: no such organization, or the caller is not in it", body = Problem, content_type = "application/problem+json")))]
pub async fn members(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(organization_id): PathId<OrganizationId>,
) -> Result<Json<MemberList>, Problem> {
    let message = ListMembersRequest { actor_user_id: user.to_string(), organization_id: organization_id.to_string() };
    let members = state.identity.clone().list_members(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(MemberList { items: members.into_inner().members.into_iter().map(MemberDto::from).collect() }))
}

/// Every event of the organization, drafts and cancelled ones too, soonest first, a page at a
/// time (as `GET /v1/events` pages). Members of the organization only; an organization the
/// caller is not in answers 404.
#[utoipa::path(get, path = "/v1/organizations/{id}/events", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "organization id"), PageParams),
    responses((status = 200, body = EventPage), answers::Always, answers::SignedIn,
              (status = 404, description = "not-found: no such organization, or the caller is not in it", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "validation: `page_size` out of range, or not a page token this API gave out", body = Problem, content_type = "application/problem+json")))]
pub async fn events(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(organization_id): PathId<OrganizationId>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<EventPage>, Problem> {
    let page_size = page_size(params.page_size)?;
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = ListOrganizationEventsRequest {
        actor: Some(actor),
        organization_id: organization_id.to_string(),
        page_size: page_size.get(),
        page_token: params.page_token.unwrap_or_default(),
    };
    let page = state
        .catalog
        .clone()
        .list_organization_events(request(message, rid.as_deref()))
        .await
        .map_err(Problem::from)?
        .into_inner();
    let items = with_availabilities(&state, &rid, page.items).await?;
    Ok(Json(EventPage { items, next_page_token: page.next_page_token }))
}

// Wire types.

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<MemberDto>,
}

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
    pub display_name: String,
    /// `owner`, `admin` or `staff`.
    #[schema(example = "staff")]
    pub role: String,
}

impl From<identity::Member> for MemberDto {
    fn from(member: identity::Member) -> Self {
        Self {
            organization_id: member.organization_id,
            user_id: member.user_id,
            email: member.email,
            display_name: member.display_name,
            role: member.role,
        }
    }
}
