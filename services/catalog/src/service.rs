//! The catalog gRPC service: glue only. Each call decodes its request into domain types (ids
//! and checked fields), runs one operation of `events`, and encodes the answer.

use eventhive_domain::{EventId, OrganizationId, TicketTypeId};
use eventhive_platform::{Database, grpc, outbox::OutboxRelay, storage::ms_to_rfc3339};
use eventhive_proto::{
    catalog::{
        AddTicketTypeRequest, CancelEventRequest, CreateEventRequest, Event, GetEventRequest,
        ListOrganizationEventsRequest, ListOrganizationEventsResponse, PublishEventRequest, SearchEventsRequest,
        SearchEventsResponse, TicketType, UpdateEventRequest, UpdateTicketTypeRequest, Venue, catalog_server,
    },
    common::Money,
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{EventPatch, NewEvent, NewTicketType, OrganizationQuery, SearchQuery, cancel_reason},
    error::CatalogError,
    events::{EventWithTypes, Events},
    repository::{Repository, TicketTypeRow},
    sales::Sales,
};

pub struct CatalogService {
    events: Events,
}

impl CatalogService {
    pub fn new(db: Database, relay: OutboxRelay, sales: Sales) -> Self {
        Self { events: Events::new(Repository::new(db), relay, sales) }
    }
}

type Answer<T> = Result<Response<T>, Status>;

/// An id that is not one of ours names no event.
fn event_id(raw: &str) -> Result<EventId, CatalogError> {
    EventId::parse(raw).map_err(|_| CatalogError::EventNotFound)
}

#[tonic::async_trait]
impl catalog_server::Catalog for CatalogService {
    async fn create_event(&self, request: Request<CreateEventRequest>) -> Answer<Event> {
        let request = request.into_inner();
        let organization_id = OrganizationId::parse(&request.organization_id).ok();
        let details = NewEvent::try_from(&request);
        let created = self.events.create(request.actor.as_ref(), organization_id, details).await?;
        Ok(Response::new(event_to_proto(&created)))
    }

    async fn update_event(&self, request: Request<UpdateEventRequest>) -> Answer<Event> {
        let request_id = grpc::request_id(&request);
        let request = request.into_inner();
        let id = event_id(&request.event_id)?;
        let patch = EventPatch::from(&request);
        let updated = self.events.update(request.actor.as_ref(), id, patch, request_id).await?;
        Ok(Response::new(event_to_proto(&updated)))
    }

    async fn publish_event(&self, request: Request<PublishEventRequest>) -> Answer<Event> {
        let request_id = grpc::request_id(&request);
        let request = request.into_inner();
        let id = event_id(&request.event_id)?;
        let published = self.events.publish(request.actor.as_ref(), id, request_id).await?;
        Ok(Response::new(event_to_proto(&published)))
    }

    async fn cancel_event(&self, request: Request<CancelEventRequest>) -> Answer<Event> {
        let request_id = grpc::request_id(&request);
        let request = request.into_inner();
        // A missing reason is answered before an unknown event.
        let reason = cancel_reason(&request.reason).map_err(CatalogError::from)?;
        let id = event_id(&request.event_id)?;
        let cancelled = self.events.cancel(request.actor.as_ref(), id, reason, request_id).await?;
        Ok(Response::new(event_to_proto(&cancelled)))
    }

    async fn add_ticket_type(&self, request: Request<AddTicketTypeRequest>) -> Answer<TicketType> {
        let request_id = grpc::request_id(&request);
        let request = request.into_inner();
        let id = event_id(&request.event_id)?;
        let ticket_type = NewTicketType::try_from(&request);
        let added = self.events.add_ticket_type(request.actor.as_ref(), id, ticket_type, request_id).await?;
        Ok(Response::new(ticket_type_to_proto(&added.ticket_type, &added.currency)))
    }

    async fn update_ticket_type(&self, request: Request<UpdateTicketTypeRequest>) -> Answer<TicketType> {
        let request = request.into_inner();
        let id = event_id(&request.event_id)?;
        let ticket_type_id =
            TicketTypeId::parse(&request.ticket_type_id).map_err(|_| CatalogError::TicketTypeNotFound)?;
        let ticket_type = NewTicketType::try_from(&request);
        let changed = self.events.update_ticket_type(request.actor.as_ref(), id, ticket_type_id, ticket_type).await?;
        Ok(Response::new(ticket_type_to_proto(&changed.ticket_type, &changed.currency)))
    }

    async fn get_event(&self, request: Request<GetEventRequest>) -> Answer<Event> {
        let request = request.into_inner();
        let id = event_id(&request.event_id)?;
        let event = self.events.get(request.actor.as_ref(), id).await?;
        Ok(Response::new(event_to_proto(&event)))
    }

    async fn search_events(&self, request: Request<SearchEventsRequest>) -> Answer<SearchEventsResponse> {
        let query = SearchQuery::try_from(&request.into_inner()).map_err(CatalogError::Invalid)?;
        let page = self.events.search(query).await?;
        Ok(Response::new(SearchEventsResponse {
            items: page.items.iter().map(event_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn list_organization_events(
        &self,
        request: Request<ListOrganizationEventsRequest>,
    ) -> Answer<ListOrganizationEventsResponse> {
        let request = request.into_inner();
        let query = OrganizationQuery::try_from(&request).map_err(CatalogError::Invalid)?;
        let page = self.events.of_organization(request.actor.as_ref(), query).await?;
        Ok(Response::new(ListOrganizationEventsResponse {
            items: page.items.iter().map(event_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}

fn ticket_type_to_proto(row: &TicketTypeRow, currency: &str) -> TicketType {
    TicketType {
        id: row.id.clone(),
        event_id: row.event_id.clone(),
        name: row.name.clone(),
        price: Some(Money { amount_minor: row.price_minor, currency: currency.to_owned() }),
        capacity: row.capacity,
    }
}

fn event_to_proto(current: &EventWithTypes) -> Event {
    let event = &current.event;
    Event {
        id: event.id.clone(),
        organization_id: event.organization_id.clone(),
        title: event.title.clone(),
        description: event.description.clone(),
        venue: Some(Venue {
            name: event.venue_name.clone(),
            city: event.venue_city.clone(),
            country: event.venue_country.clone(),
        }),
        starts_at: ms_to_rfc3339(event.starts_at),
        ends_at: ms_to_rfc3339(event.ends_at),
        currency: event.currency.clone(),
        max_tickets_per_order: event.max_tickets_per_order,
        max_tickets_per_buyer: event.max_tickets_per_buyer,
        status: event.status.clone(),
        ticket_types: current.ticket_types.iter().map(|t| ticket_type_to_proto(t, &event.currency)).collect(),
        created_at: ms_to_rfc3339(event.created_at),
        updated_at: ms_to_rfc3339(event.updated_at),
        cancel_reason: event.cancel_reason.clone(),
    }
}
