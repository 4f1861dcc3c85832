//! Where catalog's changes that take away what buyers may do are enforced before they are
//! acknowledged: ticketing sells, so ticketing must stop selling first. Today that is an
//! event's cancellation: its sales are closed in ticketing (`Ticketing.CloseSales`, bounded by
//! a deadline) before catalog commits the cancellation. Domain events inform the rest later.

use std::time::Duration;

use eventhive_domain::EventId;
use eventhive_platform::grpc;
use eventhive_platform::grpc::Channel;
use eventhive_proto::ticketing::{CloseSalesRequest, ticketing_client::TicketingClient};

use crate::error::CatalogError;

/// Ticketing, as the enforcer of what is on sale.
#[derive(Clone)]
pub struct Sales {
    ticketing: TicketingClient<Channel>,
    /// Shorter than the gateway's own deadline on the cancel, so the organizer gets catalog's
    /// 503 rather than the gateway's timeout.
    deadline: Duration,
}

impl Sales {
    pub fn new(ticketing: TicketingClient<Channel>, deadline: Duration) -> Self {
        Self { ticketing, deadline }
    }

    /// Closes the event's sales in ticketing; repeating it is harmless. Any failure is
    /// `Unavailable`: the caller changes nothing and the organizer retries.
    #[tracing::instrument(skip(self, reason, request_id), fields(%event_id))]
    pub async fn close(
        &self,
        event_id: EventId,
        reason: &str,
        revision: i64,
        request_id: Option<&str>,
    ) -> Result<(), CatalogError> {
        let message = CloseSalesRequest { event_id: event_id.to_string(), reason: reason.to_owned(), revision };
        let mut request = grpc::request(message, request_id);
        request.set_timeout(self.deadline);
        match self.ticketing.clone().close_sales(request).await {
            Ok(_) => Ok(()),
            Err(status) => {
                tracing::warn!(%event_id, code = ?status.code(), message = status.message(), "ticketing could not close the sales");
                Err(CatalogError::Unavailable("ticketing could not close the event's sales; try again".into()))
            }
        }
    }
}
