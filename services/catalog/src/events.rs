//! What organizers and buyers do with events: create, update, publish and cancel them, add
//! ticket types, read one and search. Every change that others must hear of commits in one
//! transaction with its domain event in the outbox.

use eventhive_domain::{
    EventId, OrganizationId, TicketTypeId,
    events::{
        DomainEvent, EventCancelled, EventChanged, EventPublished, EventSnapshot, TicketTypeSnapshot, VenueSnapshot,
    },
};
use eventhive_platform::{
    FieldError, outbox,
    outbox::OutboxRelay,
    storage::{from_ms, now_ms},
};
use eventhive_proto::common::Actor;
use sqlx::AnyConnection;

use crate::{
    SERVICE,
    domain::{Access, Checks, EventPatch, EventStatus, NewEvent, NewTicketType, ends_after_start},
    error::CatalogError,
    repository::{EventRow, Repository, TicketTypeRow},
    sales::Sales,
};

mod listing;
mod ticket_types;

type Result<T> = std::result::Result<T, CatalogError>;

/// An event with its ticket types: what answers show and domain events carry.
#[derive(Debug, Clone)]
pub struct EventWithTypes {
    pub event: EventRow,
    pub ticket_types: Vec<TicketTypeRow>,
}

/// One page of events: of a search, or of an organization.
pub struct SearchPage {
    pub items: Vec<EventWithTypes>,
    /// Where the next page starts; none on the last page.
    pub next_page_token: Option<String>,
}

/// A ticket type just added, with the currency of its price (its event's).
pub struct AddedTicketType {
    pub ticket_type: TicketTypeRow,
    pub currency: String,
}

/// The catalog's operations, over its repository and its outbox relay.
pub struct Events {
    repository: Repository,
    /// Woken after a commit that wrote to the outbox, so the event leaves without waiting for a poll.
    relay: OutboxRelay,
    /// Ticketing, which stops selling before a cancellation commits.
    sales: Sales,
}

impl Events {
    pub fn new(repository: Repository, relay: OutboxRelay, sales: Sales) -> Self {
        Self { repository, relay, sales }
    }

    /// A new draft. `details` are checked after the access check, so that a member who may not
    /// create events learns only that, and an outsider only that the organization is not there
    /// for them (404, as for any organization one is not in: API.md).
    #[tracing::instrument(skip_all, fields(organization_id = ?organization_id))]
    pub async fn create(
        &self,
        actor: Option<&Actor>,
        organization_id: Option<OrganizationId>,
        details: std::result::Result<NewEvent, Vec<FieldError>>,
    ) -> Result<EventWithTypes> {
        let organization = match organization_id.map(|id| (id, Access::of(actor, &id.to_string()))) {
            Some((id, Access::Manager)) => Ok(id),
            Some((_, Access::Member)) => return Err(CatalogError::NotAllowed),
            Some((_, Access::Outsider)) => return Err(CatalogError::OrganizationNotFound),
            None => Err(FieldError::new("organization_id", "must be the id of an organization you belong to")),
        };
        let (organization_id, details) = match (organization, details) {
            (Ok(organization_id), Ok(details)) => (organization_id, details),
            (organization, details) => {
                let mut errors: Vec<FieldError> = organization.err().into_iter().collect();
                errors.extend(details.err().unwrap_or_default());
                return Err(CatalogError::Invalid(errors));
            }
        };
        let event = draft(organization_id, details);
        let mut tx = self.repository.begin().await?;
        self.repository.insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(EventWithTypes { event, ticket_types: Vec::new() })
    }

    /// Applies `patch`; announces the change unless the event is a draft or nothing changed.
    /// An update of a public event that takes something away from buyers (an earlier start,
    /// lower caps) is applied in ticketing first (`RestrictSales`), as a cancellation is, then
    /// committed: once the organizer is told, no order breaks the new limits. If ticketing
    /// cannot be reached, nothing changes and the answer is `Unavailable`.
    #[tracing::instrument(skip_all, fields(%event_id))]
    pub async fn update(
        &self,
        actor: Option<&Actor>,
        event_id: EventId,
        patch: EventPatch,
        request_id: Option<String>,
    ) -> Result<EventWithTypes> {
        // The limits ticketing holds already, with the revision they were sent for.
        let mut restricted: Option<(EventRow, i64)> = None;
        // Twice at most: the event may change between the look and the commit; then the new
        // result is restricted again.
        for _ in 0..2 {
            // No lock and no transaction across the call to ticketing, which may read this
            // event back from catalog (on SQLite, through catalog's only connection).
            let seen = {
                let mut conn = self.repository.connection().await?;
                self.load_managed(&mut conn, actor, event_id).await?
            };
            if seen.status() == EventStatus::Cancelled {
                return Err(CatalogError::Conflict("a cancelled event cannot be changed".into()));
            }
            let intended = patched(&seen, patch.clone())?;
            if seen.status().is_public()
                && takes_away(&seen, &intended)
                && !restricted.as_ref().is_some_and(|(sent, _)| covers(sent, &intended))
            {
                let revision = next_revision(seen.updated_at);
                self.sales.restrict(&intended, revision, request_id.as_deref()).await?;
                restricted = Some((intended, revision));
            }
            let mut tx = self.repository.begin().await?;
            let before = self.load_managed(&mut tx, actor, event_id).await?;
            if before.status() == EventStatus::Cancelled {
                return Err(CatalogError::Conflict("a cancelled event cannot be changed".into()));
            }
            let mut event = patched(&before, patch.clone())?;
            if before.status().is_public()
                && takes_away(&before, &event)
                && !restricted.as_ref().is_some_and(|(sent, _)| covers(sent, &event))
            {
                tx.rollback().await?;
                continue;
            }
            let changed = changed_fields(&before, &event);
            if !changed.is_empty() {
                // Never below the revision the restriction was sent for: its snapshot, when it
                // arrives, is what lifts the restriction in ticketing.
                let floor = restricted.as_ref().map_or(0, |(_, revision)| *revision);
                event.updated_at = next_revision(event.updated_at).max(floor);
                self.repository.update_details(&mut tx, &event).await?;
            }
            let event = self.with_ticket_types(&mut tx, event).await?;
            // Drafts are nobody else's business yet.
            let announced = !changed.is_empty() && event.event.status() != EventStatus::Draft;
            if announced {
                let time_changed = changed.iter().any(|f| f == "starts_at" || f == "ends_at");
                let venue_changed = changed.iter().any(|f| f == "venue");
                let change =
                    EventChanged { event: snapshot(&event), changed_fields: changed, time_changed, venue_changed };
                announce(&mut tx, &change, request_id).await?;
            }
            tx.commit().await?;
            if announced {
                self.relay.wake();
            }
            return Ok(event);
        }
        Err(CatalogError::Unavailable("the event kept changing; try again".into()))
    }

    /// Puts a draft on sale. Publishing twice changes nothing.
    #[tracing::instrument(skip_all, fields(%event_id))]
    pub async fn publish(
        &self,
        actor: Option<&Actor>,
        event_id: EventId,
        request_id: Option<String>,
    ) -> Result<EventWithTypes> {
        let mut tx = self.repository.begin().await?;
        let mut event = self.load_managed(&mut tx, actor, event_id).await?;
        match event.status() {
            EventStatus::OnSale => return self.with_ticket_types(&mut tx, event).await,
            EventStatus::Cancelled => return Err(CatalogError::Conflict("a cancelled event cannot go on sale".into())),
            EventStatus::Draft => {}
        }
        event.status = EventStatus::OnSale.as_str().to_owned();
        event.updated_at = next_revision(event.updated_at);
        self.repository.update_status(&mut tx, &event).await?;
        let event = self.with_ticket_types(&mut tx, event).await?;
        announce(&mut tx, &EventPublished { event: snapshot(&event) }, request_id).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(event)
    }

    /// Calls the event off for good; announced if it was public. The sales of a public event
    /// are closed in ticketing first, then the cancellation commits with its domain event, and
    /// only then is it acknowledged. A crash between the two steps leaves the sales closed and
    /// the event not yet cancelled here: repeating the cancel closes again (a no-op) and
    /// commits. Never the other way round — a cancelled event still on sale. If ticketing
    /// cannot be reached, nothing changes here and the answer is `Unavailable`.
    #[tracing::instrument(skip_all, fields(%event_id))]
    pub async fn cancel(
        &self,
        actor: Option<&Actor>,
        event_id: EventId,
        reason: String,
        request_id: Option<String>,
    ) -> Result<EventWithTypes> {
        let mut sales_closed = false;
        // Twice at most: a draft may go on sale between the look and the commit; then its sales
        // must be closed too.
        for _ in 0..2 {
            // No lock and no transaction across the call to ticketing, which may read this event
            // back from catalog (on SQLite, through catalog's only connection).
            let seen = {
                let mut conn = self.repository.connection().await?;
                self.load_managed(&mut conn, actor, event_id).await?
            };
            if seen.status() == EventStatus::Cancelled {
                return Err(CatalogError::Conflict("the event is cancelled already".into()));
            }
            if seen.status().is_public() && !sales_closed {
                self.sales.close(event_id, &reason, seen.updated_at, request_id.as_deref()).await?;
                sales_closed = true;
            }
            let mut tx = self.repository.begin().await?;
            let mut event = self.load_managed(&mut tx, actor, event_id).await?;
            if event.status() == EventStatus::Cancelled {
                return Err(CatalogError::Conflict("the event is cancelled already".into()));
            }
            let was_public = event.status().is_public();
            if was_public && !sales_closed {
                tx.rollback().await?;
                continue;
            }
            event.status = EventStatus::Cancelled.as_str().to_owned();
            event.cancel_reason = Some(reason.clone());
            event.updated_at = next_revision(event.updated_at);
            self.repository.update_status(&mut tx, &event).await?;
            let event = self.with_ticket_types(&mut tx, event).await?;
            if was_public {
                announce(&mut tx, &EventCancelled { event: snapshot(&event), reason }, request_id).await?;
            }
            tx.commit().await?;
            self.relay.wake();
            return Ok(event);
        }
        Err(CatalogError::Conflict("the event changed while it was being cancelled; try again".into()))
    }

    /// Adds a ticket type; on an event on sale, announced as a change. `ticket_type` is checked
    /// after the access check, so that a caller who may not change the event learns only that.
    #[tracing::instrument(skip_all, fields(%event_id))]
    pub async fn add_ticket_type(
        &self,
        actor: Option<&Actor>,
        event_id: EventId,
        ticket_type: std::result::Result<NewTicketType, Vec<FieldError>>,
        request_id: Option<String>,
    ) -> Result<AddedTicketType> {
        let mut tx = self.repository.begin().await?;
        let event = self.load_managed(&mut tx, actor, event_id).await?;
        let NewTicketType { name, price_minor, capacity } = ticket_type.map_err(CatalogError::Invalid)?;
        if event.status() == EventStatus::Cancelled {
            return Err(CatalogError::Conflict("a cancelled event takes no new ticket types".into()));
        }
        let row = TicketTypeRow {
            id: TicketTypeId::new().to_string(),
            event_id: event.id.clone(),
            name,
            price_minor,
            capacity,
        };
        if !self.repository.insert_ticket_type(&mut tx, &row).await? {
            return Err(CatalogError::Conflict(format!("the event has a ticket type named {:?} already", row.name)));
        }
        let currency = event.currency.clone();
        let announced = event.status() == EventStatus::OnSale;
        if announced {
            let mut event = event;
            event.updated_at = next_revision(event.updated_at);
            self.repository.update_revision(&mut tx, &event).await?;
            let event = self.with_ticket_types(&mut tx, event).await?;
            let change = EventChanged {
                event: snapshot(&event),
                changed_fields: vec!["ticket_types".into()],
                time_changed: false,
                venue_changed: false,
            };
            announce(&mut tx, &change, request_id).await?;
        }
        tx.commit().await?;
        if announced {
            self.relay.wake();
        }
        Ok(AddedTicketType { ticket_type: row, currency })
    }

    /// An event the actor may see; a draft of someone else's organization does not exist.
    #[tracing::instrument(skip_all, fields(%event_id))]
    pub async fn get(&self, actor: Option<&Actor>, event_id: EventId) -> Result<EventWithTypes> {
        let mut conn = self.repository.connection().await?;
        let event = self.repository.load_event(&mut conn, event_id, false).await?;
        if !Access::of(actor, &event.organization_id).can_see(event.status()) {
            return Err(CatalogError::EventNotFound);
        }
        self.with_ticket_types(&mut conn, event).await
    }

    /// Loads an event the actor manages, locked for a change: invisible is 404, visible but not
    /// theirs to change is 403.
    async fn load_managed(&self, tx: &mut AnyConnection, actor: Option<&Actor>, event_id: EventId) -> Result<EventRow> {
        let event = self.repository.load_event(tx, event_id, true).await?;
        let access = Access::of(actor, &event.organization_id);
        if !access.can_see(event.status()) {
            return Err(CatalogError::EventNotFound);
        }
        if access != Access::Manager {
            return Err(CatalogError::NotAllowed);
        }
        Ok(event)
    }

    async fn with_ticket_types(&self, conn: &mut AnyConnection, event: EventRow) -> Result<EventWithTypes> {
        let ticket_types = self.repository.ticket_types_of(conn, std::slice::from_ref(&event)).await?;
        Ok(EventWithTypes { event, ticket_types })
    }
}

/// A new event's first row: a draft, at revision `created_at`.
fn draft(organization_id: OrganizationId, details: NewEvent) -> EventRow {
    let now = now_ms();
    EventRow {
        id: EventId::new().to_string(),
        organization_id: organization_id.to_string(),
        title: details.title,
        description: details.description,
        venue_name: details.venue_name,
        venue_city: details.venue_city,
        venue_country: details.venue_country,
        starts_at: details.starts_at,
        ends_at: details.ends_at,
        currency: details.currency,
        max_tickets_per_order: details.max_tickets_per_order,
        max_tickets_per_buyer: details.max_tickets_per_buyer,
        status: EventStatus::Draft.as_str().to_owned(),
        cancel_reason: None,
        created_at: now,
        updated_at: now,
    }
}

/// `before` with `patch` applied, or every field that is wrong with it. The currency of an
/// event on sale is fixed: buyers may have paid in it.
fn patched(before: &EventRow, patch: EventPatch) -> Result<EventRow> {
    let mut event = before.clone();
    let mut checks = Checks::default();
    if let Some(v) = patch.title {
        event.title = checks.check(v).unwrap_or_default();
    }
    if let Some(v) = patch.description {
        event.description = checks.check(v).unwrap_or_default();
    }
    if let Some(v) = patch.venue_name {
        event.venue_name = checks.check(v).unwrap_or_default();
    }
    if let Some(v) = patch.venue_city {
        event.venue_city = checks.check(v).unwrap_or_default();
    }
    if let Some(v) = patch.venue_country {
        event.venue_country = checks.check(v).unwrap_or_default();
    }
    if let Some(v) = patch.starts_at {
        event.starts_at = checks.check(v).unwrap_or(before.starts_at);
    }
    if let Some(v) = patch.ends_at {
        event.ends_at = checks.check(v).unwrap_or(before.ends_at);
    }
    checks.check(ends_after_start(event.starts_at, event.ends_at));
    if let Some(code) = patch.currency.and_then(|v| checks.check(v)) {
        if code != before.currency && before.status() != EventStatus::Draft {
            return Err(CatalogError::Conflict("the currency cannot change once the event is on sale".into()));
        }
        event.currency = code;
    }
    if let Some(v) = patch.max_tickets_per_order {
        event.max_tickets_per_order = checks.check(v).unwrap_or_default();
    }
    if let Some(v) = patch.max_tickets_per_buyer {
        event.max_tickets_per_buyer = checks.check(v).unwrap_or_default();
    }
    checks.finish().map_err(CatalogError::Invalid)?;
    Ok(event)
}

/// The names of the fields that differ, as `EventChanged` lists them.
fn changed_fields(before: &EventRow, after: &EventRow) -> Vec<String> {
    [
        ("title", after.title != before.title),
        ("description", after.description != before.description),
        (
            "venue",
            (&after.venue_name, &after.venue_city, &after.venue_country)
                != (&before.venue_name, &before.venue_city, &before.venue_country),
        ),
        ("starts_at", after.starts_at != before.starts_at),
        ("ends_at", after.ends_at != before.ends_at),
        ("currency", after.currency != before.currency),
        ("max_tickets_per_order", after.max_tickets_per_order != before.max_tickets_per_order),
        ("max_tickets_per_buyer", after.max_tickets_per_buyer != before.max_tickets_per_buyer),
    ]
    .into_iter()
    .filter(|(_, differs)| *differs)
    .map(|(name, _)| name.to_owned())
    .collect()
}

/// `updated_at` doubles as the event's revision in its domain events, so it must grow with every
/// change even when two changes land in the same millisecond.
/// Whether `after` takes away what buyers could do under `before`: sales end earlier, or an
/// order or a buyer may have fewer tickets.
fn takes_away(before: &EventRow, after: &EventRow) -> bool {
    after.starts_at < before.starts_at
        || after.max_tickets_per_order < before.max_tickets_per_order
        || after.max_tickets_per_buyer < before.max_tickets_per_buyer
}

/// Whether the limits `sent` to ticketing are at least as strict as `event`'s.
fn covers(sent: &EventRow, event: &EventRow) -> bool {
    sent.starts_at <= event.starts_at
        && sent.max_tickets_per_order <= event.max_tickets_per_order
        && sent.max_tickets_per_buyer <= event.max_tickets_per_buyer
}

fn next_revision(previous: i64) -> i64 {
    now_ms().max(previous + 1)
}

async fn announce<E: DomainEvent>(tx: &mut AnyConnection, event: &E, request_id: Option<String>) -> Result<()> {
    outbox::enqueue(tx, SERVICE, event, request_id).await?;
    Ok(())
}

fn snapshot(current: &EventWithTypes) -> EventSnapshot {
    let event = &current.event;
    EventSnapshot {
        event_id: EventId::parse(&event.id).unwrap_or_default(),
        organization_id: OrganizationId::parse(&event.organization_id).unwrap_or_default(),
        title: event.title.clone(),
        venue: VenueSnapshot {
            name: event.venue_name.clone(),
            city: event.venue_city.clone(),
            country: event.venue_country.clone(),
        },
        starts_at: from_ms(event.starts_at),
        ends_at: from_ms(event.ends_at),
        currency: event.currency.clone(),
        max_tickets_per_order: event.max_tickets_per_order,
        max_tickets_per_buyer: event.max_tickets_per_buyer,
        status: event.status.clone(),
        ticket_types: current
            .ticket_types
            .iter()
            .map(|t| TicketTypeSnapshot {
                id: TicketTypeId::parse(&t.id).unwrap_or_default(),
                name: t.name.clone(),
                price_minor: t.price_minor,
                capacity: t.capacity,
            })
            .collect(),
        revision: event.updated_at,
    }
}
