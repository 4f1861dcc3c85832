//! Events and ticket types: organizers manage them, everyone finds them.

use axum::{Json, extract::State, http::StatusCode};
use eventhive_platform::{Problem, grpc::request};
use eventhive_proto::{
    catalog::{
        AddTicketTypeRequest, CancelEventRequest, CreateEventRequest, GetEventRequest, PublishEventRequest,
        SearchEventsRequest, UpdateEventRequest, Venue,
    },
    ticketing::{Availability, GetAvailabilitiesRequest, GetAvailabilityRequest},
};

use super::RequestId;
use crate::{
    auth::{AuthUser, MaybeUser},
    dto::{
        CancelEventBody, CreateEventBody, CreateTicketTypeBody, EventDto, EventPage, SearchParams, TicketTypeDto,
        UpdateEventBody,
    },
    extract::{ApiJson, ApiQuery, PathId},
    state::AppState,
};

/// Fills in what is still for sale, from ticketing (catalog knows only capacities).
async fn with_availability(state: &AppState, rid: &RequestId, mut event: EventDto) -> Result<EventDto, Problem> {
    if event.ticket_types.is_empty() {
        return Ok(event);
    }
    let message = GetAvailabilityRequest { event_id: event.id.clone() };
    let availability = state
        .ticketing
        .clone()
        .get_availability(request(message, rid.as_deref()))
        .await
        .map_err(Problem::from)?
        .into_inner();
    fill_availability(&mut event, &availability);
    Ok(event)
}

fn fill_availability(event: &mut EventDto, availability: &Availability) {
    for ticket_type in &mut event.ticket_types {
        // Ticketing learns of a ticket type when it goes on sale; until then nothing is sold.
        if let Some(stock) = availability.ticket_types.iter().find(|s| s.ticket_type_id == ticket_type.id) {
            ticket_type.available = stock.available;
        }
    }
}

/// Creates a draft event in an organization the caller owns or administers.
#[utoipa::path(post, path = "/v1/events", tag = "events", security(("bearer" = [])), request_body = CreateEventBody,
    responses((status = 201, body = EventDto), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "staff cannot create events", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<CreateEventBody>,
) -> Result<(StatusCode, Json<EventDto>), Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = CreateEventRequest {
        actor: Some(actor),
        organization_id: body.organization_id,
        title: body.title,
        description: body.description,
        venue: Some(Venue { name: body.venue.name, city: body.venue.city, country: body.venue.country }),
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        currency: body.currency,
        max_tickets_per_order: body.max_tickets_per_order,
        max_tickets_per_buyer: body.max_tickets_per_buyer,
    };
    let event = state.catalog.clone().create_event(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok((StatusCode::CREATED, Json(event.into_inner().into())))
}

/// Adds a ticket type (name, price, capacity) to an event.
#[utoipa::path(post, path = "/v1/events/{id}/ticket-types", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, description = "event id")), request_body = CreateTicketTypeBody,
    responses((status = 201, body = TicketTypeDto), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn add_ticket_type(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId,
    ApiJson(body): ApiJson<CreateTicketTypeBody>,
) -> Result<(StatusCode, Json<TicketTypeDto>), Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = AddTicketTypeRequest {
        actor: Some(actor),
        event_id,
        name: body.name,
        price_minor: body.price_minor,
        capacity: body.capacity,
    };
    let ticket_type =
        state.catalog.clone().add_ticket_type(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok((StatusCode::CREATED, Json(ticket_type.into_inner().into())))
}

/// Changes any of an event's fields. Ticket holders hear of a new time or venue.
#[utoipa::path(patch, path = "/v1/events/{id}", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, description = "event id")), request_body = UpdateEventBody,
    responses((status = 200, body = EventDto), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId,
    ApiJson(body): ApiJson<UpdateEventBody>,
) -> Result<Json<EventDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let venue = body.venue.unwrap_or_default();
    let message = UpdateEventRequest {
        actor: Some(actor),
        event_id,
        title: body.title,
        description: body.description,
        venue_name: venue.name,
        venue_city: venue.city,
        venue_country: venue.country,
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        currency: body.currency,
        max_tickets_per_order: body.max_tickets_per_order,
        max_tickets_per_buyer: body.max_tickets_per_buyer,
    };
    let event = state.catalog.clone().update_event(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(event.into_inner().into()))
}

/// Puts a draft on sale: it becomes public and purchasable.
#[utoipa::path(post, path = "/v1/events/{id}/publish", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, description = "event id")),
    responses((status = 200, body = EventDto), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn publish(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId,
) -> Result<Json<EventDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = PublishEventRequest { actor: Some(actor), event_id };
    let event = state.catalog.clone().publish_event(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(event.into_inner().into()))
}

/// Cancels an event for good; paid orders are refunded and holders told.
#[utoipa::path(post, path = "/v1/events/{id}/cancel", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, description = "event id")), request_body = CancelEventBody,
    responses((status = 200, body = EventDto), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId,
    ApiJson(body): ApiJson<CancelEventBody>,
) -> Result<Json<EventDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = CancelEventRequest { actor: Some(actor), event_id, reason: body.reason };
    let event = state.catalog.clone().cancel_event(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(event.into_inner().into()))
}

/// Finds on-sale events, soonest first, a page at a time.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(SearchParams),
    responses((status = 200, body = EventPage), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn search(
    State(state): State<AppState>,
    rid: RequestId,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<EventPage>, Problem> {
    if let Some(size) = params.page_size
        && !(1..=100).contains(&size)
    {
        return Err(Problem::validation("page_size", "must be between 1 and 100"));
    }
    let message = SearchEventsRequest {
        q: params.q.unwrap_or_default(),
        city: params.city.unwrap_or_default(),
        from: params.from.unwrap_or_default(),
        to: params.to.unwrap_or_default(),
        page_size: params.page_size.unwrap_or(20),
        page_token: params.page_token.unwrap_or_default(),
    };
    let page = state
        .catalog
        .clone()
        .search_events(request(message, rid.as_deref()))
        .await
        .map_err(Problem::from)?
        .into_inner();
    let mut items: Vec<EventDto> = page.items.into_iter().map(EventDto::from).collect();
    if !items.is_empty() {
        // One call for the whole page.
        let message = GetAvailabilitiesRequest { event_ids: items.iter().map(|e| e.id.clone()).collect() };
        let stock = state
            .ticketing
            .clone()
            .get_availabilities(request(message, rid.as_deref()))
            .await
            .map_err(Problem::from)?
            .into_inner();
        for (event, availability) in items.iter_mut().zip(&stock.events) {
            fill_availability(event, availability);
        }
    }
    Ok(Json(EventPage { items, next_page_token: page.next_page_token }))
}

/// One event with its ticket types. Drafts are visible to their organization's members only.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path, description = "event id")),
    responses((status = 200, body = EventDto), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    rid: RequestId,
    MaybeUser(user): MaybeUser,
    PathId(event_id): PathId,
) -> Result<Json<EventDto>, Problem> {
    let actor = match user {
        Some(user) => Some(state.actor(user, rid.as_deref()).await?),
        None => None,
    };
    let message = GetEventRequest { actor, event_id };
    let event = state.catalog.clone().get_event(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    Ok(Json(with_availability(&state, &rid, event.into_inner().into()).await?))
}
