//! Events and ticket types: organizers manage them, everyone finds them.

use axum::{
    Extension, Json,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use eventhive_domain::EventId;
use eventhive_kept::ReadLive;
use eventhive_platform::{Problem, grpc::request};
use eventhive_proto::{
    catalog::{
        self, CancelEventRequest, CreateEventRequest, GetEventRequest, PublishEventRequest, SearchEventsRequest,
        UpdateEventRequest, Venue,
    },
    common::Actor,
    ticketing::{Availability, GetAvailabilitiesRequest, GetAvailabilityRequest},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    RequestId, answers,
    shared::{CountryCode, CurrencyCode, MoneyDto, page_size},
};
use crate::{
    auth::{AuthUser, MaybeUser},
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
    responses((status = 201, body = EventDto), answers::Always, answers::SignedIn, answers::JsonBody,
              (status = 403, description = "forbidden: staff of the organization cannot create events", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: `organization_id` is not an organization the caller is in", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "validation: invalid fields (`ends_at` must be after `starts_at`, `organization_id` not an id)", body = Problem, content_type = "application/problem+json")))]
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

/// Changes any of an event's fields. Ticket holders hear of a new time or venue.
#[utoipa::path(patch, path = "/v1/events/{id}", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")), request_body = UpdateEventBody,
    responses((status = 200, body = EventDto), answers::Always, answers::SignedIn, answers::JsonBody, answers::ManagedEvent,
              (status = 409, description = "conflict: the event is cancelled, or its currency would change after it went on sale", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "validation: invalid fields, or `ends_at` would not be after `starts_at`", body = Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
    ApiJson(body): ApiJson<UpdateEventBody>,
) -> Result<Json<EventDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let venue = body.venue.unwrap_or_default();
    let message = UpdateEventRequest {
        actor: Some(actor),
        event_id: event_id.to_string(),
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
    let event = state.catalog.clone().update_event(request(message, rid.as_deref())).await;
    state.public.forget_event(&event_id.to_string());
    Ok(Json(event.map_err(Problem::from)?.into_inner().into()))
}

/// Puts a draft on sale: it becomes public and purchasable.
#[utoipa::path(post, path = "/v1/events/{id}/publish", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventDto), answers::Always, answers::SignedIn, answers::ManagedEvent,
              (status = 409, description = "conflict: the event is cancelled", body = Problem, content_type = "application/problem+json")))]
pub async fn publish(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
) -> Result<Json<EventDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = PublishEventRequest { actor: Some(actor), event_id: event_id.to_string() };
    let event = state.catalog.clone().publish_event(request(message, rid.as_deref())).await;
    state.public.forget_event(&event_id.to_string());
    Ok(Json(event.map_err(Problem::from)?.into_inner().into()))
}

/// Cancels an event for good; paid orders are refunded and holders told.
#[utoipa::path(post, path = "/v1/events/{id}/cancel", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")), request_body = CancelEventBody,
    responses((status = 200, body = EventDto), answers::Always, answers::SignedIn, answers::JsonBody, answers::ManagedEvent,
              (status = 409, description = "conflict: the event is cancelled already", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
    ApiJson(body): ApiJson<CancelEventBody>,
) -> Result<Json<EventDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = CancelEventRequest { actor: Some(actor), event_id: event_id.to_string(), reason: body.reason };
    let event = state.catalog.clone().cancel_event(request(message, rid.as_deref())).await;
    state.public.forget_event(&event_id.to_string());
    Ok(Json(event.map_err(Problem::from)?.into_inner().into()))
}

/// Finds on-sale events, soonest first, a page at a time.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(SearchParams),
    responses((status = 200, body = EventPage), answers::Always,
              (status = 422, description = "validation: a query parameter out of range, not a time, not a page token this API gave out, or given twice", body = Problem, content_type = "application/problem+json")))]
pub async fn search(
    State(state): State<AppState>,
    rid: RequestId,
    live: Option<Extension<ReadLive>>,
    RawQuery(query): RawQuery,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, Problem> {
    // Everyone finds the same events: the list is kept whoever asks.
    let query = query.as_deref().unwrap_or_default();
    state.public.event_list(query, live.is_some(), async || search_live(&state, &rid, params).await).await
}

async fn search_live(state: &AppState, rid: &RequestId, params: SearchParams) -> Result<EventPage, Problem> {
    let page_size = page_size(params.page_size)?;
    let message = SearchEventsRequest {
        q: params.q.unwrap_or_default(),
        city: params.city.unwrap_or_default(),
        from: params.from.unwrap_or_default(),
        to: params.to.unwrap_or_default(),
        page_size: page_size.get(),
        page_token: params.page_token.unwrap_or_default(),
    };
    let page = state
        .catalog
        .clone()
        .search_events(request(message, rid.as_deref()))
        .await
        .map_err(Problem::from)?
        .into_inner();
    let items = with_availabilities(state, rid, page.items).await?;
    Ok(EventPage { items, next_page_token: page.next_page_token })
}

/// A page of events with what is still for sale, from ticketing in one call for the page.
pub(super) async fn with_availabilities(
    state: &AppState,
    rid: &RequestId,
    events: Vec<catalog::Event>,
) -> Result<Vec<EventDto>, Problem> {
    let mut items: Vec<EventDto> = events.into_iter().map(EventDto::from).collect();
    if !items.is_empty() {
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
    Ok(items)
}

/// One event with its ticket types. Drafts are visible to their organization's members only.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventDto), answers::Always,
              (status = 401, description = "unauthorized: a bearer token was sent but is invalid or expired (none is needed)", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: no such event, or a draft of an organization the caller is not in", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    rid: RequestId,
    MaybeUser(user): MaybeUser,
    live: Option<Extension<ReadLive>>,
    PathId(event_id): PathId<EventId>,
) -> Result<Response, Problem> {
    let Some(user) = user else {
        let load = async || event_live(&state, &rid, None, event_id).await;
        return state.public.event_page(&event_id.to_string(), live.is_some(), load).await;
    };
    let actor = state.actor(user, rid.as_deref()).await?;
    Ok(Json(event_live(&state, &rid, Some(actor), event_id).await?).into_response())
}

async fn event_live(
    state: &AppState,
    rid: &RequestId,
    actor: Option<Actor>,
    event_id: EventId,
) -> Result<EventDto, Problem> {
    let message = GetEventRequest { actor, event_id: event_id.to_string() };
    let event = state.catalog.clone().get_event(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    with_availability(state, rid, event.into_inner().into()).await
}

// Wire types.

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VenueDto {
    /// 1 to 200 characters after trimming, no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        example = "Paradiso"
    )]
    pub name: String,
    /// 1 to 100 characters after trimming, no control characters.
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        example = "Amsterdam"
    )]
    pub city: String,
    #[schema(value_type = CountryCode, example = "NL")]
    pub country: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateEventBody {
    /// An organization the caller owns or administers.
    #[schema(format = Uuid)]
    pub organization_id: String,
    /// 1 to 200 characters after trimming, no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        example = "Dutch Rust Meetup"
    )]
    pub title: String,
    /// Up to 10,000 characters after trimming; no control characters but line breaks and tabs.
    #[serde(default)]
    #[schema(max_length = 10000, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    pub description: String,
    pub venue: VenueDto,
    /// RFC 3339.
    #[schema(format = DateTime, example = "2027-06-01T19:30:00Z")]
    pub starts_at: String,
    /// RFC 3339, after `starts_at`.
    #[schema(format = DateTime, example = "2027-06-01T23:00:00Z")]
    pub ends_at: String,
    /// The currency of every price of the event.
    #[schema(value_type = CurrencyCode, example = "EUR")]
    pub currency: String,
    /// Tickets one order may hold; default 10.
    #[schema(minimum = 1, maximum = 100)]
    pub max_tickets_per_order: Option<i64>,
    /// Tickets one buyer may hold across all their orders for this event (against scalpers);
    /// default 10, or `max_tickets_per_order` if that is more.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_tickets_per_buyer: Option<i64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct VenuePatch {
    /// 1 to 200 characters after trimming, no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    /// 1 to 100 characters after trimming, no control characters.
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub city: Option<String>,
    #[schema(value_type = Option<CountryCode>)]
    pub country: Option<String>,
}

/// Only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateEventBody {
    /// 1 to 200 characters after trimming, no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub title: Option<String>,
    /// Up to 10,000 characters after trimming; no control characters but line breaks and tabs.
    #[schema(max_length = 10000, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    pub description: Option<String>,
    pub venue: Option<VenuePatch>,
    /// RFC 3339; the event must still end after it starts.
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// RFC 3339; the event must still end after it starts.
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    /// Only while the event is a draft.
    #[schema(value_type = Option<CurrencyCode>)]
    pub currency: Option<String>,
    #[schema(minimum = 1, maximum = 100)]
    pub max_tickets_per_order: Option<i64>,
    #[schema(minimum = 1, maximum = 1000)]
    pub max_tickets_per_buyer: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CancelEventBody {
    /// Told to ticket holders; 1 to 500 characters after trimming, no control characters but
    /// line breaks and tabs.
    #[schema(
        max_length = 500,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$",
        example = "The venue flooded."
    )]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketTypeDto {
    pub id: String,
    pub name: String,
    pub price: MoneyDto,
    pub capacity: i64,
    /// Tickets still for sale.
    pub available: i64,
}

impl From<catalog::TicketType> for TicketTypeDto {
    fn from(t: catalog::TicketType) -> Self {
        let price = MoneyDto::or_zero(t.price);
        // Nothing can be sold before ticketing exists, so all of the capacity is available.
        Self { id: t.id, name: t.name, price, capacity: t.capacity, available: t.capacity }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatusDto {
    Draft,
    OnSale,
    Cancelled,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDto {
    pub id: String,
    pub organization_id: String,
    pub title: String,
    pub description: String,
    pub venue: VenueDto,
    #[schema(format = DateTime)]
    pub starts_at: String,
    #[schema(format = DateTime)]
    pub ends_at: String,
    pub currency: String,
    pub max_tickets_per_order: i64,
    pub max_tickets_per_buyer: i64,
    pub status: EventStatusDto,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    pub ticket_types: Vec<TicketTypeDto>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<catalog::Event> for EventDto {
    fn from(e: catalog::Event) -> Self {
        let venue = e.venue.unwrap_or_default();
        Self {
            id: e.id,
            organization_id: e.organization_id,
            title: e.title,
            description: e.description,
            venue: VenueDto { name: venue.name, city: venue.city, country: venue.country },
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            currency: e.currency,
            max_tickets_per_order: e.max_tickets_per_order,
            max_tickets_per_buyer: e.max_tickets_per_buyer,
            status: match e.status.as_str() {
                "on_sale" => EventStatusDto::OnSale,
                "cancelled" => EventStatusDto::Cancelled,
                _ => EventStatusDto::Draft,
            },
            cancel_reason: e.cancel_reason,
            ticket_types: e.ticket_types.into_iter().map(TicketTypeDto::from).collect(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventDto>,
    /// Pass as `page_token` for the next page; `null` on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Case-insensitive text in title or description.
    pub q: Option<String>,
    /// The venue's city, case-insensitive.
    pub city: Option<String>,
    /// Events starting at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Events starting at or before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Default 20.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
    /// From the previous page's `next_page_token`.
    pub page_token: Option<String>,
}
