//! An event's ticket types: added by its organization's owner and admins, and changed as a
//! whole while the event is a draft. They are listed with the event (`events`).

use axum::{Json, extract::State, http::StatusCode};
use eventhive_domain::{EventId, TicketTypeId};
use eventhive_platform::{Problem, grpc::request};
use eventhive_proto::catalog::{AddTicketTypeRequest, UpdateTicketTypeRequest};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{RequestId, answers, events::TicketTypeDto};
use crate::{
    auth::AuthUser,
    extract::{ApiJson, PathId, PathIds},
    state::AppState,
};

/// Adds a ticket type (name, price, capacity) to an event.
#[utoipa::path(post, path = "/v1/events/{id}/ticket-types", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")), request_body = CreateTicketTypeBody,
    responses((status = 201, body = TicketTypeDto), answers::Always, answers::SignedIn, answers::JsonBody, answers::ManagedEvent,
              (status = 409, description = "conflict: the event is cancelled, or has a ticket type of this name already", body = Problem, content_type = "application/problem+json")))]
pub async fn add_ticket_type(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
    ApiJson(body): ApiJson<CreateTicketTypeBody>,
) -> Result<(StatusCode, Json<TicketTypeDto>), Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = AddTicketTypeRequest {
        actor: Some(actor),
        event_id: event_id.to_string(),
        name: body.name,
        price_minor: body.price_minor,
        capacity: body.capacity,
    };
    let ticket_type = state.catalog.clone().add_ticket_type(request(message, rid.as_deref())).await;
    state.public.forget_event(&event_id.to_string());
    let ticket_type = ticket_type.map_err(Problem::from)?;
    Ok((StatusCode::CREATED, Json(ticket_type.into_inner().into())))
}

/// Changes a draft's ticket type as a whole: name, price and capacity. Once the event is on sale
/// its ticket types stay as they are (409); a new one can still be added.
#[utoipa::path(put, path = "/v1/events/{id}/ticket-types/{ticket_type_id}", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id"),
           ("ticket_type_id" = String, Path, format = Uuid, description = "ticket type id")),
    request_body = CreateTicketTypeBody,
    responses((status = 200, body = TicketTypeDto), answers::Always, answers::SignedIn, answers::JsonBody, answers::ManagedEvent,
              (status = 409, description = "conflict: the event is on sale or cancelled, or has another ticket type of this name", body = Problem, content_type = "application/problem+json")))]
pub async fn update_ticket_type(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathIds(event_id, ticket_type_id): PathIds<EventId, TicketTypeId>,
    ApiJson(body): ApiJson<CreateTicketTypeBody>,
) -> Result<Json<TicketTypeDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = UpdateTicketTypeRequest {
        actor: Some(actor),
        event_id: event_id.to_string(),
        ticket_type_id: ticket_type_id.to_string(),
        name: body.name,
        price_minor: body.price_minor,
        capacity: body.capacity,
    };
    let ticket_type = state.catalog.clone().update_ticket_type(request(message, rid.as_deref())).await;
    state.public.forget_event(&event_id.to_string());
    let ticket_type = ticket_type.map_err(Problem::from)?;
    Ok(Json(ticket_type.into_inner().into()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTicketTypeBody {
    /// 1 to 100 characters after trimming, no control characters; unique within the event.
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        example = "Early bird"
    )]
    pub name: String,
    /// In minor units of the event's currency; 0 is a free ticket.
    #[schema(minimum = 0, maximum = 100_000_000, example = 4500)]
    pub price_minor: i64,
    #[schema(minimum = 1, maximum = 1_000_000, example = 500)]
    pub capacity: i64,
}
