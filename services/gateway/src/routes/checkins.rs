//! Checking tickets in at the door: API.md's check-in rows, the OpenAPI tag `check-in`. Door
//! staff scan codes, and verify them offline with the event's check-in key.

use axum::{Json, extract::State};
use eventhive_domain::EventId;
use eventhive_platform::{Problem, grpc::request};
use eventhive_proto::ticketing::{CheckInRequest, GetCheckinKeyRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{RequestId, answers};
use crate::{
    auth::AuthUser,
    extract::{ApiJson, PathId},
    state::AppState,
};

/// Checks a ticket in at the door. The organization's owner, admins and staff only.
#[utoipa::path(post, path = "/v1/events/{id}/checkins", tag = "check-in", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")), request_body = CheckinBody,
    responses((status = 200, body = CheckinDto), answers::Always, answers::SignedIn, answers::JsonBody,
              (status = 403, description = "forbidden: the caller is not the organization's owner, an admin or staff", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: no such event, or the code is not a valid ticket of this event (forged, of another event, or void)", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "conflict: checked in already; `checked_in_at` says when", body = Problem, content_type = "application/problem+json")))]
pub async fn check_in(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
    ApiJson(body): ApiJson<CheckinBody>,
) -> Result<Json<CheckinDto>, Problem> {
    if body.code.trim().is_empty() {
        return Err(Problem::validation("code", "must not be empty"));
    }
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = CheckInRequest { actor: Some(actor), event_id: event_id.to_string(), code: body.code };
    let checked =
        state.ticketing.clone().check_in(request(message, rid.as_deref())).await.map_err(Problem::from)?.into_inner();
    Ok(Json(CheckinDto { ticket_id: checked.ticket_id, status: checked.status, checked_in_at: checked.checked_in_at }))
}

/// The public key that verifies the event's ticket codes offline. Door staff only.
#[utoipa::path(get, path = "/v1/events/{id}/checkin-key", tag = "check-in", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = CheckinKeyDto), answers::Always, answers::SignedIn,
              (status = 403, description = "forbidden: the caller is not the organization's owner, an admin or staff", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: no such event", body = Problem, content_type = "application/problem+json")))]
pub async fn checkin_key(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
) -> Result<Json<CheckinKeyDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = GetCheckinKeyRequest { actor: Some(actor), event_id: event_id.to_string() };
    let key = state
        .ticketing
        .clone()
        .get_checkin_key(request(message, rid.as_deref()))
        .await
        .map_err(Problem::from)?
        .into_inner();
    Ok(Json(CheckinKeyDto {
        event_id: key.event_id,
        algorithm: key.algorithm,
        public_key: key.public_key,
        code_format: key.code_format,
    }))
}

// Wire types.

#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckinBody {
    /// The ticket's code, as scanned: not blank.
    #[schema(pattern = r"\S")]
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinDto {
    pub ticket_id: String,
    #[schema(example = "checked_in")]
    pub status: String,
    #[schema(format = DateTime)]
    pub checked_in_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinKeyDto {
    pub event_id: String,
    #[schema(example = "Ed25519")]
    pub algorithm: String,
    /// Raw 32-byte public key, base64url without padding.
    pub public_key: String,
    pub code_format: String,
}
