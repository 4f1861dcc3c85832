//! Live sales figures for organizers.

use std::convert::Infallible;

use axum::{
    Json,
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use eventhive_domain::EventId;
use eventhive_platform::{Problem, grpc::request};
use eventhive_proto::analytics::{EventAnalytics, GetEventAnalyticsRequest, WaitingRoomFigures};
use futures::{Stream, StreamExt};
use serde::Serialize;
use utoipa::ToSchema;

use super::{RequestId, answers, shared::MoneyDto};
use crate::{auth::AuthUser, extract::PathId, state::AppState};

/// Sold, held and available tickets, revenue, paid orders, check-ins, by ticket type and per
/// minute, and the waiting room's queue and admissions (an extension). The organization's
/// members only.
#[utoipa::path(get, path = "/v1/events/{id}/analytics", tag = "analytics", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventAnalyticsDto), answers::Always, answers::SignedIn,
              (status = 403, description = "forbidden: the event is public but the caller is not a member of its organization", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: no such event, or a draft of an organization the caller is not in", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
) -> Result<Json<EventAnalyticsDto>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = GetEventAnalyticsRequest { actor: Some(actor), event_id: event_id.to_string() };
    let figures = state
        .analytics
        .clone()
        .get_event_analytics(request(message, rid.as_deref()))
        .await
        .map_err(Problem::from)?
        .into_inner();
    Ok(Json(figures.into()))
}

/// The same figures as a Server-Sent Events stream: one `analytics` event at once, then one
/// whenever they change (within a second), until the client disconnects.
#[utoipa::path(get, path = "/v1/events/{id}/analytics/stream", tag = "analytics", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, description = "text/event-stream of `analytics` events whose data is an EventAnalyticsDto", content_type = "text/event-stream"),
              answers::Always, answers::SignedIn,
              (status = 403, description = "forbidden: the event is public but the caller is not a member of its organization", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "not-found: no such event, or a draft of an organization the caller is not in", body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "rate-limited: too many requests (wait `Retry-After` seconds), or too many live streams open for this user or event (`per` and `limit` say which)", body = Problem, content_type = "application/problem+json")))]
pub async fn stream(
    State(state): State<AppState>,
    rid: RequestId,
    AuthUser(user): AuthUser,
    PathId(event_id): PathId<EventId>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let actor = state.actor(user, rid.as_deref()).await?;
    let message = GetEventAnalyticsRequest { actor: Some(actor), event_id: event_id.to_string() };
    // Not through the client with the per-call deadline: this call lives as long as the client.
    let mut client =
        eventhive_proto::analytics::analytics_client::AnalyticsClient::new(state.analytics_stream_channel.clone());
    let updates = client.watch_event_analytics(request(message, rid.as_deref())).await.map_err(Problem::from)?;
    // The stream ends at the first error (analytics going away); the client reconnects.
    let events = updates.into_inner().take_while(|update| std::future::ready(update.is_ok())).filter_map(
        |update: Result<EventAnalytics, tonic::Status>| {
            let json = update.ok().and_then(|figures| serde_json::to_string(&EventAnalyticsDto::from(figures)).ok());
            std::future::ready(json.map(|json| Ok(Event::default().event("analytics").data(json))))
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

// Wire types.

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketTypeStatsDto {
    pub ticket_type_id: String,
    pub name: String,
    pub capacity: i64,
    pub sold: i64,
    pub held: i64,
    pub available: i64,
    pub revenue: MoneyDto,
    pub checkins: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MinuteSalesDto {
    /// Start of the minute.
    #[schema(format = DateTime)]
    pub minute: String,
    pub tickets: i64,
    pub revenue: MoneyDto,
}

/// An event's sales figures; `tickets_sold + tickets_held + tickets_available` is the capacity.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventAnalyticsDto {
    pub event_id: String,
    pub tickets_sold: i64,
    pub tickets_held: i64,
    pub tickets_available: i64,
    pub revenue: MoneyDto,
    pub orders_paid: i64,
    pub checkins: i64,
    pub by_ticket_type: Vec<TicketTypeStatsDto>,
    pub sales_per_minute: Vec<MinuteSalesDto>,
    /// When the figures last changed.
    #[schema(format = DateTime)]
    pub as_of: String,
    /// Extension: the event's waiting room; `null` when it has none.
    pub waiting_room: Option<WaitingRoomFiguresDto>,
}

/// An event's waiting room as its organizers watch it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingRoomFiguresDto {
    /// `scheduled`, `open` or `sold_out`.
    #[schema(example = "open")]
    pub status: String,
    /// Buyers waiting, at the newest admission step.
    pub queued: i64,
    /// Buyers admitted since the opening.
    pub admitted: i64,
    /// Buyers admitted in the last minute (to 10 s) up to the newest admission step.
    pub admitted_per_minute: i64,
    /// Admissions that ran out unused.
    pub expired: i64,
    /// `null` before the opening.
    #[schema(format = DateTime)]
    pub opened_at: Option<String>,
    /// Buyers who joined before the opening and were drawn; `null` before it.
    pub early_arrivals: Option<i64>,
}

impl From<WaitingRoomFigures> for WaitingRoomFiguresDto {
    fn from(room: WaitingRoomFigures) -> Self {
        Self {
            status: room.status,
            queued: room.queued,
            admitted: room.admitted,
            admitted_per_minute: room.admitted_per_minute,
            expired: room.expired,
            opened_at: Some(room.opened_at).filter(|at| !at.is_empty()),
            early_arrivals: room.early_arrivals,
        }
    }
}

impl From<EventAnalytics> for EventAnalyticsDto {
    fn from(a: EventAnalytics) -> Self {
        Self {
            event_id: a.event_id,
            tickets_sold: a.tickets_sold,
            tickets_held: a.tickets_held,
            tickets_available: a.tickets_available,
            revenue: MoneyDto::or_zero(a.revenue),
            orders_paid: a.orders_paid,
            checkins: a.checkins,
            by_ticket_type: a
                .by_ticket_type
                .into_iter()
                .map(|t| TicketTypeStatsDto {
                    ticket_type_id: t.ticket_type_id,
                    name: t.name,
                    capacity: t.capacity,
                    sold: t.sold,
                    held: t.held,
                    available: t.available,
                    revenue: MoneyDto::or_zero(t.revenue),
                    checkins: t.checkins,
                })
                .collect(),
            sales_per_minute: a
                .sales_per_minute
                .into_iter()
                .map(|m| MinuteSalesDto { minute: m.minute, tickets: m.tickets, revenue: MoneyDto::or_zero(m.revenue) })
                .collect(),
            as_of: a.as_of,
            waiting_room: a.waiting_room.map(Into::into),
        }
    }
}
