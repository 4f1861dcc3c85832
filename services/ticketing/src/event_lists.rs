//! An event's orders and tickets, for its organization's owner and admins: what the exports
//! of the organizer's console are made of. Newest first, a keyset page at a time, like a
//! buyer's own lists.

use eventhive_domain::EventId;
use eventhive_proto::{
    common::Actor,
    ticketing::{ListOrdersResponse, ListTicketsResponse},
};

use crate::{
    engine::Engine,
    error::TicketingError,
    paging::Page,
    repository::{catalog::EventRecord, orders, tickets},
    views,
};

type Result<T> = std::result::Result<T, TicketingError>;

/// Whether the actor manages the event's organization (owner or admin): who its buyers are
/// is theirs to know, not the door staff's.
fn manages(actor: Option<&Actor>, event: &EventRecord) -> bool {
    let organization_id = event.organization_id.to_string();
    actor.is_some_and(|actor| {
        actor
            .memberships
            .iter()
            .any(|m| m.organization_id == organization_id && matches!(m.role.as_str(), "owner" | "admin"))
    })
}

impl Engine {
    /// The event, for one who manages it: unknown is 404, not theirs is 403.
    async fn managed_event(&self, actor: Option<&Actor>, event_id: EventId) -> Result<EventRecord> {
        let event = self.known_event(event_id).await?;
        if !manages(actor, &event) {
            return Err(TicketingError::Forbidden("only the organization's owner and admins see its orders".into()));
        }
        Ok(event)
    }

    /// The event's orders, every status, newest first.
    #[tracing::instrument(skip_all, fields(%event_id))]
    pub(crate) async fn list_event_orders(
        &self,
        actor: Option<&Actor>,
        event_id: EventId,
        page: Page,
    ) -> Result<ListOrdersResponse> {
        let event = self.managed_event(actor, event_id).await?;
        let mut conn = self.db.pool().acquire().await?;
        let rows = orders::page_of_event(&mut conn, event.id, &page.after, page.probe()).await?;
        let (rows, next_page_token) = page.split(rows, |o| o.id.to_string());
        Ok(ListOrdersResponse { items: views::orders(&mut conn, &rows).await?, next_page_token })
    }

    /// The event's tickets, every status, newest first.
    #[tracing::instrument(skip_all, fields(%event_id))]
    pub(crate) async fn list_event_tickets(
        &self,
        actor: Option<&Actor>,
        event_id: EventId,
        page: Page,
    ) -> Result<ListTicketsResponse> {
        let event = self.managed_event(actor, event_id).await?;
        let mut conn = self.db.pool().acquire().await?;
        let rows = tickets::page_of_event(&mut conn, event.id, &page.after, page.probe()).await?;
        let (rows, next_page_token) = page.split(rows, |t| t.id.to_string());
        Ok(ListTicketsResponse { items: rows.iter().map(views::ticket).collect(), next_page_token })
    }
}
