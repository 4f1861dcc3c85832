//! The ticketing gRPC service: glue from the contract to the engine. It parses each request
//! into domain types at the edge (ids, quantities, page sizes, idempotency keys), calls the
//! operation, and answers in the contract's types; errors become a `Status` in [`crate::error`].
//! It also times the purchase calls (placing and paying) into [`PurchaseWindow`], which
//! `GetAvailability` reports to the waiting room.

use std::{collections::BTreeMap, time::Instant};

use eventhive_domain::{
    EventId, OrderId, TicketTypeId, UserId,
    rules::{IdempotencyKey, Quantity},
};
use eventhive_platform::{FieldError, grpc, storage::ms_to_rfc3339};
use eventhive_proto::ticketing::{
    Availability, CancelOrderRequest, CheckInRequest, CheckInResponse, CheckinKey, CloseSalesRequest,
    CloseSalesResponse, GetAvailabilitiesRequest, GetAvailabilitiesResponse, GetAvailabilityRequest,
    GetCheckinKeyRequest, GetOrderRequest, ListEventOrdersRequest, ListEventTicketsRequest, ListOrdersRequest,
    ListOrdersResponse, ListTicketsRequest, ListTicketsResponse, Order, PayOrderRequest, PlaceOrderRequest,
    RequireAdmissionRequest, RequireAdmissionResponse, RestrictSalesRequest, RestrictSalesResponse,
    TicketTypeAvailability, ticketing_server,
};
use tonic::{Request, Response, Status};

use crate::{
    engine::Engine,
    error::TicketingError,
    inventory::Stock,
    orders::{Line, NewOrder},
    paging::Page,
    purchase::Payment,
    purchase_latency::PurchaseWindow,
    repository::catalog::Restriction,
};

pub struct TicketingService {
    engine: Engine,
    /// How long this replica's recent purchases took, for the waiting room's automatic rate.
    purchases: PurchaseWindow,
}

impl TicketingService {
    pub fn new(engine: Engine) -> Self {
        Self { engine, purchases: PurchaseWindow::new() }
    }
}

type Answer<T> = Result<Response<T>, Status>;

/// Events one availability call may name: a page of search results.
const MAX_EVENTS_PER_CALL: usize = 100;

/// The caller's user id, which the gateway takes from a verified token.
fn buyer_id(text: &str) -> Result<UserId, TicketingError> {
    UserId::parse(text).map_err(|_| FieldError::new("buyer_id", "is not a user id").into())
}

/// An order id; one that cannot exist is simply not found.
fn order_id(text: &str) -> Result<OrderId, TicketingError> {
    OrderId::parse(text).map_err(|_| TicketingError::NotFound("no such order".into()))
}

/// The event of a door or export request; one that cannot exist is simply not found.
fn door_event_id(text: &str) -> Result<EventId, TicketingError> {
    EventId::parse(text).map_err(|_| TicketingError::NotFound("no such event".into()))
}

/// An order's content, with every field error at once.
fn new_order(request: &PlaceOrderRequest) -> Result<NewOrder, TicketingError> {
    let mut errors = Vec::new();
    let event_id = EventId::parse(&request.event_id)
        .map_err(|_| errors.push(FieldError::new("event_id", "must be the id of an event on sale")))
        .ok();
    if request.items.is_empty() {
        errors.push(FieldError::new("items", "must name at least one ticket type"));
    }
    if let Err(error) = Quantity::lines(request.items.len()) {
        return Err(TicketingError::Invalid(vec![FieldError::new(error.field, error.message)]));
    }
    let mut lines = BTreeMap::new();
    for (index, item) in request.items.iter().enumerate() {
        let field = format!("items[{index}].ticket_type_id");
        let ticket_type_id = match TicketTypeId::parse(&item.ticket_type_id) {
            Err(_) => {
                errors.push(FieldError::new(field, "must be the id of a ticket type of the event"));
                None
            }
            Ok(id) if lines.contains_key(&id) => {
                errors.push(FieldError::new(field, "appears twice; use one item per ticket type"));
                None
            }
            Ok(id) => Some(id),
        };
        let quantity = Quantity::parse(format!("items[{index}].quantity"), item.quantity)
            .map_err(|e| errors.push(FieldError::new(e.field, e.message)))
            .ok();
        if let (Some(id), Some(quantity)) = (ticket_type_id, quantity) {
            lines.insert(id, Line { index, quantity });
        }
    }
    let (Some(event_id), true) = (event_id, errors.is_empty()) else {
        return Err(TicketingError::Invalid(errors));
    };
    let quantity = Quantity::total(lines.values().map(|line| line.quantity))?;
    Ok(NewOrder { event_id, lines, quantity })
}

fn availability(stock: &Stock) -> TicketTypeAvailability {
    TicketTypeAvailability {
        ticket_type_id: stock.ticket_type_id.clone(),
        capacity: stock.capacity,
        sold: stock.sold,
        held: stock.held,
        available: stock.available,
    }
}

impl TicketingService {
    /// The availability of each event named, in the order named; an id that cannot be an
    /// event's has no ticket types.
    async fn availabilities(&self, event_ids: Vec<String>) -> Result<Vec<Availability>, TicketingError> {
        let parsed: Vec<Option<EventId>> = event_ids.iter().map(|id| EventId::parse(id).ok()).collect();
        let known: Vec<EventId> = parsed.iter().flatten().copied().collect();
        let stock = self.engine.stock_of_events(&known).await?;
        Ok(event_ids
            .into_iter()
            .zip(parsed)
            .map(|(event_id, parsed)| {
                let ticket_types =
                    stock.iter().filter(|(of, _)| Some(*of) == parsed).map(|(_, stock)| availability(stock)).collect();
                Availability { event_id, ticket_types, purchases: None }
            })
            .collect())
    }
}

#[tonic::async_trait]
impl ticketing_server::Ticketing for TicketingService {
    async fn place_order(&self, request: Request<PlaceOrderRequest>) -> Answer<Order> {
        let request_id = grpc::request_id(&request);
        let request = request.into_inner();
        let order = new_order(&request)?;
        let key = IdempotencyKey::parse(&request.idempotency_key).map_err(TicketingError::from)?;
        let buyer_id = buyer_id(&request.buyer_id)?;
        let token = Some(request.admission_token.as_str()).filter(|t| !t.is_empty());
        let started = Instant::now();
        let placed = self.engine.place_order(buyer_id, order, key, token, request_id.as_deref()).await;
        self.purchases.record(started.elapsed(), false);
        Ok(Response::new(placed?))
    }

    async fn pay_order(&self, request: Request<PayOrderRequest>) -> Answer<Order> {
        let request_id = grpc::request_id(&request);
        let request = request.into_inner();
        let payment = Payment {
            key: IdempotencyKey::parse(&request.idempotency_key).map_err(TicketingError::from)?,
            buyer_id: buyer_id(&request.buyer_id)?,
            order_id: order_id(&request.order_id)?,
            card: request.card,
        };
        let started = Instant::now();
        let paid = self.engine.pay_order(payment, request_id.as_deref()).await;
        self.purchases.record(started.elapsed(), paid.as_ref().is_ok_and(|order| order.status == "paid"));
        Ok(Response::new(paid?))
    }

    async fn get_order(&self, request: Request<GetOrderRequest>) -> Answer<Order> {
        let request = request.into_inner();
        let (buyer_id, order_id) = (buyer_id(&request.buyer_id)?, order_id(&request.order_id)?);
        Ok(Response::new(self.engine.get_order(buyer_id, order_id).await?))
    }

    async fn cancel_order(&self, request: Request<CancelOrderRequest>) -> Answer<Order> {
        let request_id = grpc::request_id(&request);
        let request = request.into_inner();
        let (buyer_id, order_id) = (buyer_id(&request.buyer_id)?, order_id(&request.order_id)?);
        Ok(Response::new(self.engine.cancel_order(buyer_id, order_id, request_id.as_deref()).await?))
    }

    async fn list_orders(&self, request: Request<ListOrdersRequest>) -> Answer<ListOrdersResponse> {
        let request = request.into_inner();
        let page = Page::from_wire(request.page_size, &request.page_token)?;
        Ok(Response::new(self.engine.list_orders(buyer_id(&request.buyer_id)?, page).await?))
    }

    async fn list_tickets(&self, request: Request<ListTicketsRequest>) -> Answer<ListTicketsResponse> {
        let request = request.into_inner();
        let page = Page::from_wire(request.page_size, &request.page_token)?;
        Ok(Response::new(self.engine.list_tickets(buyer_id(&request.buyer_id)?, page).await?))
    }

    async fn list_event_orders(&self, request: Request<ListEventOrdersRequest>) -> Answer<ListOrdersResponse> {
        let request = request.into_inner();
        let page = Page::from_wire(request.page_size, &request.page_token)?;
        let event_id = door_event_id(&request.event_id)?;
        Ok(Response::new(self.engine.list_event_orders(request.actor.as_ref(), event_id, page).await?))
    }

    async fn list_event_tickets(&self, request: Request<ListEventTicketsRequest>) -> Answer<ListTicketsResponse> {
        let request = request.into_inner();
        let page = Page::from_wire(request.page_size, &request.page_token)?;
        let event_id = door_event_id(&request.event_id)?;
        Ok(Response::new(self.engine.list_event_tickets(request.actor.as_ref(), event_id, page).await?))
    }

    async fn check_in(&self, request: Request<CheckInRequest>) -> Answer<CheckInResponse> {
        let request = request.into_inner();
        let event_id = door_event_id(&request.event_id)?;
        Ok(Response::new(self.engine.check_in(request.actor.as_ref(), event_id, &request.code).await?))
    }

    async fn get_checkin_key(&self, request: Request<GetCheckinKeyRequest>) -> Answer<CheckinKey> {
        let request = request.into_inner();
        let event_id = door_event_id(&request.event_id)?;
        Ok(Response::new(self.engine.checkin_key(request.actor.as_ref(), event_id).await?))
    }

    async fn get_availabilities(
        &self,
        request: Request<GetAvailabilitiesRequest>,
    ) -> Answer<GetAvailabilitiesResponse> {
        let event_ids = request.into_inner().event_ids;
        if event_ids.len() > MAX_EVENTS_PER_CALL {
            let error = FieldError::new("event_ids", format!("at most {MAX_EVENTS_PER_CALL} per call"));
            return Err(TicketingError::from(error).into());
        }
        Ok(Response::new(GetAvailabilitiesResponse { events: self.availabilities(event_ids).await? }))
    }

    async fn get_availability(&self, request: Request<GetAvailabilityRequest>) -> Answer<Availability> {
        let event_id = request.into_inner().event_id;
        let mut events = self.availabilities(vec![event_id.clone()]).await?;
        let mut availability =
            events.pop().unwrap_or(Availability { event_id, ticket_types: Vec::new(), purchases: None });
        availability.purchases = Some(self.purchases.report());
        Ok(Response::new(availability))
    }

    async fn close_sales(&self, request: Request<CloseSalesRequest>) -> Answer<CloseSalesResponse> {
        let request_id = grpc::request_id(&request);
        let request = request.into_inner();
        let event_id = EventId::parse(&request.event_id)
            .map_err(|_| TicketingError::from(FieldError::new("event_id", "is not an event id")))?;
        let closed_at =
            self.engine.close_sales(event_id, &request.reason, request.revision, request_id.as_deref()).await?;
        Ok(Response::new(CloseSalesResponse { event_id: event_id.to_string(), closed_at: ms_to_rfc3339(closed_at) }))
    }

    async fn restrict_sales(&self, request: Request<RestrictSalesRequest>) -> Answer<RestrictSalesResponse> {
        let request_id = grpc::request_id(&request);
        let request = request.into_inner();
        let event_id = EventId::parse(&request.event_id)
            .map_err(|_| TicketingError::from(FieldError::new("event_id", "is not an event id")))?;
        let starts_at = time::OffsetDateTime::parse(&request.starts_at, &time::format_description::well_known::Rfc3339)
            .map(eventhive_platform::storage::to_ms)
            .map_err(|_| TicketingError::from(FieldError::new("starts_at", "is not an RFC 3339 time")))?;
        let limits = Restriction {
            revision: request.revision,
            starts_at,
            max_tickets_per_order: request.max_tickets_per_order,
            max_tickets_per_buyer: request.max_tickets_per_buyer,
        };
        self.engine.restrict_sales(event_id, limits, request_id.as_deref()).await?;
        Ok(Response::new(RestrictSalesResponse { event_id: event_id.to_string() }))
    }

    async fn require_admission(&self, request: Request<RequireAdmissionRequest>) -> Answer<RequireAdmissionResponse> {
        let request = request.into_inner();
        let event_id = EventId::parse(&request.event_id)
            .map_err(|_| TicketingError::from(FieldError::new("event_id", "is not an event id")))?;
        if request.public_key.is_empty() {
            return Err(TicketingError::from(FieldError::new("public_key", "must not be empty")).into());
        }
        self.engine.require_admission(event_id, &request.public_key).await?;
        Ok(Response::new(RequireAdmissionResponse {}))
    }
}
