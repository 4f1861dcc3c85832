//! Changing a ticket type. Only a draft's: once an event is on sale its ticket types stay as
//! they are — buyers hold and have paid for them at their price, and ticketing counts their
//! capacity from the snapshot it was sent at publishing. A published event can still get a new
//! ticket type (`Events::add_ticket_type`).

use eventhive_domain::{EventId, TicketTypeId};
use eventhive_platform::FieldError;
use eventhive_proto::common::Actor;

use super::{AddedTicketType, Events, Result};
use crate::{
    domain::{EventStatus, NewTicketType},
    error::CatalogError,
    repository::{Stored, TicketTypeRow},
};

impl Events {
    /// Sets the draft's ticket type `ticket_type_id` to `ticket_type` as a whole.
    #[tracing::instrument(skip_all, fields(%event_id, %ticket_type_id))]
    pub async fn update_ticket_type(
        &self,
        actor: Option<&Actor>,
        event_id: EventId,
        ticket_type_id: TicketTypeId,
        ticket_type: std::result::Result<NewTicketType, Vec<FieldError>>,
    ) -> Result<AddedTicketType> {
        let mut tx = self.repository.begin().await?;
        let event = self.load_managed(&mut tx, actor, event_id).await?;
        let NewTicketType { name, price_minor, capacity } = ticket_type.map_err(CatalogError::Invalid)?;
        match event.status() {
            EventStatus::Draft => {}
            EventStatus::OnSale => {
                return Err(CatalogError::Conflict(
                    "the event is on sale: its ticket types stay as they are (a new one can be added)".into(),
                ));
            }
            EventStatus::Cancelled => {
                return Err(CatalogError::Conflict("a cancelled event's ticket types do not change".into()));
            }
        }
        let row =
            TicketTypeRow { id: ticket_type_id.to_string(), event_id: event.id.clone(), name, price_minor, capacity };
        match self.repository.update_ticket_type(&mut tx, &row).await? {
            Stored::Done => {}
            Stored::Missing => return Err(CatalogError::TicketTypeNotFound),
            Stored::NameTaken => {
                return Err(CatalogError::Conflict(format!(
                    "the event has a ticket type named {:?} already",
                    row.name
                )));
            }
        }
        tx.commit().await?;
        Ok(AddedTicketType { ticket_type: row, currency: event.currency })
    }
}
