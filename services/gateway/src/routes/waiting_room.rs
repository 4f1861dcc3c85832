//! The waiting room: API.md's "Waiting room" table, the OpenAPI tag `waiting-room`. Organizers
//! put an event's room; buyers join its queue and poll their place, as often as
//! `poll_after_secs` tells them, until they are admitted with a token for `POST /v1/orders`.

use axum::{Json, extract::State, http::StatusCode};
use eventhive_domain::EventId;
use eventhive_platform::{Problem, grpc::request};
use eventhive_proto::waiting_room::{self, GetPlaceRequest, GetRoomRequest, JoinQueueRequest, PutRoomRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{RequestId, answers};
use crate::{
    auth::{AuthUser, MaybeUser},
    extract::{ApiJson, PathId},
    state::AppState,
};

/// Creates or changes the event's waiting room. The organization's owner and admins only.
#[utoipa::path(put, path = "/v1/events/{id}/waiting-room", tag = "waiting-room", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")), request_body = WaitingRoomBody,
    responses((status = 200, body = WaitingRoomDto), answers::Always, answers::SignedIn, answers::JsonBody,
              (status = 403, description = "forbidden: only the organization's owner and admins set up its waiting room", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: no such event for the caller", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "the room has opened: only admit_per_minute may change", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
    ApiJson(body): ApiJson<WaitingRoomBody>,
) -> Result<Json<WaitingRoomDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = PutRoomRequest {
        actor: Some(actor),
        event_id: event_id.to_string(),
        opens_at: body.opens_at,
        admit_per_minute: body.admit_per_minute,
        admission_ttl_secs: body.admission_ttl_secs,
    };
    let room = state.waiting_room.clone().put_room(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(room.into_inner().into()))
}

/// The event's waiting room. No auth for an on-sale event.
#[utoipa::path(get, path = "/v1/events/{id}/waiting-room", tag = "waiting-room",
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = WaitingRoomDto), answers::Always,
              (status = 401, description = "unauthorized: a bearer token was sent and is invalid or expired", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "the event has no waiting room", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    rid: RequestId,
    MaybeUser(user): MaybeUser,
    PathId(event_id): PathId<EventId>,
) -> Result<Json<WaitingRoomDto>, Problem> {
    let actor = match user {
        Some(user) => Some(state.actor(user, rid.as_deref()).await?),
        None => None,
    };
    let message = GetRoomRequest { actor, event_id: event_id.to_string() };
    let room = state.waiting_room.clone().get_room(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(room.into_inner().into()))
}

/// Joins the event's queue: 201 with the new place, or 200 with the place the caller has.
#[utoipa::path(post, path = "/v1/events/{id}/queue", tag = "waiting-room", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 201, description = "joined", body = PlaceDto), (status = 200, description = "had joined already; the place is unchanged", body = PlaceDto),
              answers::Always, answers::SignedIn,
              (status = 404, description = "the event has no waiting room", body = Problem, content_type = "application/problem+json")))]
pub async fn join(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
) -> Result<(StatusCode, Json<PlaceDto>), Problem> {
    let message = JoinQueueRequest { buyer_id: user.to_string(), event_id: event_id.to_string() };
    let joined =
        state.waiting_room.clone().join_queue(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    let joined = joined.into_inner();
    let status = if joined.joined { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(joined.place.unwrap_or_default().into())))
}

/// The caller's place in the event's queue: a read. Poll again after `poll_after_secs`.
#[utoipa::path(get, path = "/v1/events/{id}/queue", tag = "waiting-room", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = PlaceDto), answers::Always, answers::SignedIn,
              (status = 404, description = "the caller never joined", body = Problem, content_type = "application/problem+json")))]
pub async fn place(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
) -> Result<Json<PlaceDto>, Problem> {
    let message = GetPlaceRequest { buyer_id: user.to_string(), event_id: event_id.to_string() };
    let place = state.waiting_room.clone().get_place(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(place.into_inner().into()))
}

// Wire types.

#[derive(Debug, Deserialize, ToSchema)]
pub struct WaitingRoomBody {
    /// When the sale opens to the queue (RFC 3339).
    #[schema(format = DateTime)]
    pub opens_at: String,
    /// 1 to 1,000,000; absent: automatic, as many as the sale can serve.
    pub admit_per_minute: Option<i64>,
    /// 60 to 3600; default 600.
    pub admission_ttl_secs: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingRoomDto {
    pub event_id: String,
    #[schema(format = DateTime)]
    pub opens_at: String,
    /// `scheduled`, `open` or `sold_out`.
    #[schema(example = "scheduled")]
    pub status: String,
    /// `null`: automatic.
    pub admit_per_minute: Option<i64>,
    pub admission_ttl_secs: i64,
    /// Buyers waiting now.
    pub queued: i64,
    /// Buyers admitted so far.
    pub admitted: i64,
    /// Extension: admissions that ran out unused (no order placed with them), counted 10 s
    /// after they did.
    pub expired: i64,
}

impl From<waiting_room::Room> for WaitingRoomDto {
    fn from(room: waiting_room::Room) -> Self {
        Self {
            event_id: room.event_id,
            opens_at: room.opens_at,
            status: room.status,
            admit_per_minute: room.admit_per_minute,
            admission_ttl_secs: room.admission_ttl_secs,
            queued: room.queued,
            admitted: room.admitted,
            expired: room.expired,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlaceDto {
    /// `waiting`, `admitted`, `expired` or `sold_out`.
    #[schema(example = "waiting")]
    pub status: String,
    /// From 1; `null` before the room opens. Never grows for a waiting buyer.
    pub position: Option<i64>,
    /// Waiting buyers in front; `null` before the room opens.
    pub ahead: Option<i64>,
    pub estimated_wait_secs: Option<i64>,
    /// When to ask again.
    pub poll_after_secs: i64,
    /// Present while admitted: send `token` as the `Admission-Token` header of `POST /v1/orders`.
    pub admission: Option<AdmissionDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdmissionDto {
    pub token: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

impl From<waiting_room::Place> for PlaceDto {
    fn from(place: waiting_room::Place) -> Self {
        Self {
            status: place.status,
            position: place.position,
            ahead: place.ahead,
            estimated_wait_secs: place.estimated_wait_secs,
            poll_after_secs: place.poll_after_secs,
            admission: place.admission.map(|a| AdmissionDto { token: a.token, expires_at: a.expires_at }),
        }
    }
}
