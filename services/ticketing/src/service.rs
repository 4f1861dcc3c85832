//! The ticketing gRPC service: thin glue from the contract to the engine.

use eventhive_platform::grpc;
use eventhive_proto::ticketing::{
    Availability, CancelOrderRequest, CheckInRequest, CheckInResponse, CheckinKey, GetAvailabilitiesRequest,
    GetAvailabilitiesResponse, GetAvailabilityRequest, GetCheckinKeyRequest, GetOrderRequest, ListOrdersRequest,
    ListOrdersResponse, ListTicketsRequest, ListTicketsResponse, Order, PayOrderRequest, PlaceOrderRequest,
    TicketTypeAvailability, ticketing_server,
};
use tonic::{Request, Response, Status};

use crate::{engine::Engine, error::TicketingError, inventory};

pub struct TicketingService {
    engine: Engine,
}

impl TicketingService {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

type Answer<T> = Result<Response<T>, Status>;

/// Events one availability call may name: a page of search results.
const MAX_EVENTS_PER_CALL: usize = 100;

fn availability(stock: &inventory::Stock) -> TicketTypeAvailability {
    TicketTypeAvailability {
        ticket_type_id: stock.ticket_type_id.clone(),
        capacity: stock.capacity,
        sold: stock.sold,
        held: stock.held,
        available: stock.available,
    }
}

#[tonic::async_trait]
impl ticketing_server::Ticketing for TicketingService {
    async fn place_order(&self, request: Request<PlaceOrderRequest>) -> Answer<Order> {
        let request_id = grpc::request_id(&request);
        Ok(Response::new(self.engine.place_order(request.into_inner(), request_id.as_deref()).await?))
    }

    async fn pay_order(&self, request: Request<PayOrderRequest>) -> Answer<Order> {
        let request_id = grpc::request_id(&request);
        Ok(Response::new(self.engine.pay_order(request.into_inner(), request_id.as_deref()).await?))
    }

    async fn get_order(&self, request: Request<GetOrderRequest>) -> Answer<Order> {
        let request = request.into_inner();
        Ok(Response::new(self.engine.get_order(&request.buyer_id, &request.order_id).await?))
    }

    async fn cancel_order(&self, request: Request<CancelOrderRequest>) -> Answer<Order> {
        let request_id = grpc::request_id(&request);
        let request = request.into_inner();
        Ok(Response::new(self.engine.cancel_order(&request.buyer_id, &request.order_id, request_id.as_deref()).await?))
    }

    async fn list_orders(&self, request: Request<ListOrdersRequest>) -> Answer<ListOrdersResponse> {
        let request = request.into_inner();
        Ok(Response::new(self.engine.list_orders(&request.buyer_id, request.page_size, &request.page_token).await?))
    }

    async fn list_tickets(&self, request: Request<ListTicketsRequest>) -> Answer<ListTicketsResponse> {
        let request = request.into_inner();
        Ok(Response::new(self.engine.list_tickets(&request.buyer_id, request.page_size, &request.page_token).await?))
    }

    async fn check_in(&self, request: Request<CheckInRequest>) -> Answer<CheckInResponse> {
        let request = request.into_inner();
        Ok(Response::new(self.engine.check_in(request.actor.as_ref(), &request.event_id, &request.code).await?))
    }

    async fn get_checkin_key(&self, request: Request<GetCheckinKeyRequest>) -> Answer<CheckinKey> {
        let request = request.into_inner();
        Ok(Response::new(self.engine.checkin_key(request.actor.as_ref(), &request.event_id).await?))
    }

    async fn get_availabilities(
        &self,
        request: Request<GetAvailabilitiesRequest>,
    ) -> Answer<GetAvailabilitiesResponse> {
        let event_ids = request.into_inner().event_ids;
        if event_ids.len() > MAX_EVENTS_PER_CALL {
            return Err(TicketingError::Invalid(vec![eventhive_platform::FieldError::new(
                "event_ids",
                format!("at most {MAX_EVENTS_PER_CALL} per call"),
            )])
            .into());
        }
        let mut conn = self.engine.db.pool().acquire().await.map_err(TicketingError::from)?;
        let stock = inventory::stock_of_events(&mut conn, &event_ids).await.map_err(TicketingError::from)?;
        let events = event_ids
            .into_iter()
            .map(|event_id| {
                let ticket_types =
                    stock.iter().filter(|(of, _)| *of == event_id).map(|(_, s)| availability(s)).collect();
                Availability { event_id, ticket_types }
            })
            .collect();
        Ok(Response::new(GetAvailabilitiesResponse { events }))
    }

    async fn get_availability(&self, request: Request<GetAvailabilityRequest>) -> Answer<Availability> {
        let event_id = request.into_inner().event_id;
        let mut conn = self.engine.db.pool().acquire().await.map_err(TicketingError::from)?;
        let stock = inventory::stock(&mut conn, &event_id).await.map_err(TicketingError::from)?;
        Ok(Response::new(Availability { event_id, ticket_types: stock.iter().map(availability).collect() }))
    }
}
