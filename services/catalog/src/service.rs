//! The catalog gRPC service and its storage. Every change that others must hear of commits
//! together with its domain event in the outbox.

use eventhive_domain::{
    EventId, OrganizationId, TicketTypeId,
    events::{
        DomainEvent, EventCancelled, EventChanged, EventPublished, EventSnapshot, TicketTypeSnapshot, VenueSnapshot,
    },
};
use eventhive_platform::{
    Database, FieldError, grpc, outbox,
    outbox::OutboxRelay,
    storage::{from_ms, is_unique_violation, ms_to_rfc3339, now_ms},
};
use eventhive_proto::{
    catalog::{
        AddTicketTypeRequest, CancelEventRequest, CreateEventRequest, Event, GetEventRequest, PublishEventRequest,
        SearchEventsRequest, SearchEventsResponse, TicketType, UpdateEventRequest, Venue, catalog_server,
    },
    common::{Actor, Money},
};
use sqlx::AnyConnection;
use tonic::{Request, Response, Status};

use crate::{
    SERVICE,
    domain::{Access, Checks, EventStatus, PageToken, contains_pattern, country, currency, in_range, instant, text},
    error::CatalogError,
};

type Result<T> = std::result::Result<T, CatalogError>;

/// Bounds of what an organizer may set.
const MAX_TICKETS_PER_ORDER: i64 = 100;
const MAX_TICKETS_PER_BUYER: i64 = 1_000;
const DEFAULT_TICKETS_PER_ORDER: i64 = 10;
const DEFAULT_TICKETS_PER_BUYER: i64 = 10;
const MAX_CAPACITY: i64 = 1_000_000;
const MAX_PRICE_MINOR: i64 = 100_000_000;
pub const MAX_PAGE_SIZE: i64 = 100;
pub const DEFAULT_PAGE_SIZE: i64 = 20;

const EVENT_COLUMNS: &str = "id, organization_id, title, description, venue_name, venue_city, venue_country, \
    starts_at, ends_at, currency, max_tickets_per_order, max_tickets_per_buyer, status, cancel_reason, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
struct EventRow {
    id: String,
    organization_id: String,
    title: String,
    description: String,
    venue_name: String,
    venue_city: String,
    venue_country: String,
    starts_at: i64,
    ends_at: i64,
    currency: String,
    max_tickets_per_order: i64,
    max_tickets_per_buyer: i64,
    status: String,
    cancel_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl EventRow {
    fn status(&self) -> EventStatus {
        EventStatus::from_stored(&self.status)
    }

    fn search_text(&self) -> String {
        format!("{}\n{}", self.title, self.description).to_lowercase()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct TicketTypeRow {
    id: String,
    event_id: String,
    name: String,
    price_minor: i64,
    capacity: i64,
}

pub struct CatalogService {
    db: Database,
    relay: OutboxRelay,
}

impl CatalogService {
    pub fn new(db: Database, relay: OutboxRelay) -> Self {
        Self { db, relay }
    }

    async fn load_event(&self, tx: &mut AnyConnection, id: &str, for_update: bool) -> Result<EventRow> {
        let lock = if for_update { self.db.for_update() } else { "" };
        sqlx::query_as::<_, EventRow>(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1{lock}"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(CatalogError::EventNotFound)
    }

    /// Loads an event the actor manages, for a change: invisible is 404, visible but not
    /// theirs to change is 403.
    async fn load_managed(&self, tx: &mut AnyConnection, actor: Option<&Actor>, id: &str) -> Result<EventRow> {
        if EventId::parse(id).is_err() {
            return Err(CatalogError::EventNotFound);
        }
        let event = self.load_event(tx, id, true).await?;
        let access = Access::of(actor, &event.organization_id);
        if !access.can_see(event.status()) {
            return Err(CatalogError::EventNotFound);
        }
        if access != Access::Manager {
            return Err(CatalogError::NotAllowed);
        }
        Ok(event)
    }

    async fn ticket_types(&self, tx: &mut AnyConnection, event_ids: &[String]) -> Result<Vec<TicketTypeRow>> {
        let mut rows = Vec::new();
        // A page holds at most MAX_PAGE_SIZE events; one query per chunk keeps the SQL portable.
        for chunk in event_ids.chunks(50) {
            if chunk.is_empty() {
                continue;
            }
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, event_id, name, price_minor, capacity FROM ticket_types WHERE event_id IN ({}) \
                 ORDER BY created_at, id",
                placeholders.join(", ")
            );
            let mut query = sqlx::query_as::<_, TicketTypeRow>(&sql);
            for id in chunk {
                query = query.bind(id);
            }
            rows.extend(query.fetch_all(&mut *tx).await?);
        }
        Ok(rows)
    }

    async fn event_with_types(
        &self,
        tx: &mut AnyConnection,
        event: EventRow,
    ) -> Result<(EventRow, Vec<TicketTypeRow>)> {
        let types = self.ticket_types(tx, std::slice::from_ref(&event.id)).await?;
        Ok((event, types))
    }

    async fn announce<E: DomainEvent>(
        &self,
        tx: &mut AnyConnection,
        event: &E,
        request_id: Option<String>,
    ) -> Result<()> {
        outbox::enqueue(tx, SERVICE, event, request_id).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %request.organization_id))]
    async fn create_event(&self, request: CreateEventRequest) -> Result<Event> {
        let mut checks = Checks::default();
        if OrganizationId::parse(&request.organization_id).is_err() {
            checks.push(FieldError::new("organization_id", "must be the id of an organization you belong to"));
        } else {
            match Access::of(request.actor.as_ref(), &request.organization_id) {
                Access::Manager => {}
                Access::Member => return Err(CatalogError::NotAllowed),
                Access::Outsider => {
                    checks.push(FieldError::new("organization_id", "must be the id of an organization you belong to"))
                }
            }
        }
        let title = checks.check(text("title", &request.title, 1, 200, false));
        let description = checks.check(text("description", &request.description, 0, 10_000, true));
        let venue = request.venue.unwrap_or_default();
        let venue_name = checks.check(text("venue.name", &venue.name, 1, 200, false));
        let venue_city = checks.check(text("venue.city", &venue.city, 1, 100, false));
        let venue_country = checks.check(country("venue.country", &venue.country));
        let starts_at = checks.check(instant("starts_at", &request.starts_at));
        let ends_at = checks.check(instant("ends_at", &request.ends_at));
        if let (Some(start), Some(end)) = (starts_at, ends_at)
            && end <= start
        {
            checks.push(FieldError::new("ends_at", "must be after starts_at"));
        }
        let currency = checks.check(currency("currency", &request.currency));
        let per_order = checks.check(in_range(
            "max_tickets_per_order",
            request.max_tickets_per_order.unwrap_or(DEFAULT_TICKETS_PER_ORDER),
            1,
            MAX_TICKETS_PER_ORDER,
        ));
        let per_buyer = checks.check(in_range(
            "max_tickets_per_buyer",
            request.max_tickets_per_buyer.unwrap_or(DEFAULT_TICKETS_PER_BUYER.max(per_order.unwrap_or(1))),
            1,
            MAX_TICKETS_PER_BUYER,
        ));
        checks.finish().map_err(CatalogError::Invalid)?;
        let (
            Some(title),
            Some(description),
            Some(venue_name),
            Some(venue_city),
            Some(venue_country),
            Some(starts_at),
            Some(ends_at),
            Some(currency),
            Some(max_tickets_per_order),
            Some(max_tickets_per_buyer),
        ) = (
            title,
            description,
            venue_name,
            venue_city,
            venue_country,
            starts_at,
            ends_at,
            currency,
            per_order,
            per_buyer,
        )
        else {
            return Err(CatalogError::Invalid(vec![]));
        };
        let now = now_ms();
        let event = EventRow {
            id: EventId::new().to_string(),
            organization_id: request.organization_id,
            title,
            description,
            venue_name,
            venue_city,
            venue_country,
            starts_at,
            ends_at,
            currency,
            max_tickets_per_order,
            max_tickets_per_buyer,
            status: EventStatus::Draft.as_str().to_owned(),
            cancel_reason: None,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(&format!(
            "INSERT INTO events ({EVENT_COLUMNS}, search_text, city_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ))
        .bind(&event.id)
        .bind(&event.organization_id)
        .bind(&event.title)
        .bind(&event.description)
        .bind(&event.venue_name)
        .bind(&event.venue_city)
        .bind(&event.venue_country)
        .bind(event.starts_at)
        .bind(event.ends_at)
        .bind(&event.currency)
        .bind(event.max_tickets_per_order)
        .bind(event.max_tickets_per_buyer)
        .bind(&event.status)
        .bind(&event.cancel_reason)
        .bind(event.created_at)
        .bind(event.updated_at)
        .bind(event.search_text())
        .bind(event.venue_city.to_lowercase())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(to_proto(&event, &[]))
    }

    #[tracing::instrument(skip_all, fields(event_id = %request.event_id))]
    async fn update_event(&self, request: UpdateEventRequest, request_id: Option<String>) -> Result<Event> {
        let mut tx = self.db.pool().begin().await?;
        let before = self.load_managed(&mut tx, request.actor.as_ref(), &request.event_id).await?;
        if before.status() == EventStatus::Cancelled {
            return Err(CatalogError::Conflict("a cancelled event cannot be changed".into()));
        }
        let mut event = before.clone();
        let mut checks = Checks::default();
        if let Some(v) = &request.title {
            event.title = checks.check(text("title", v, 1, 200, false)).unwrap_or_default();
        }
        if let Some(v) = &request.description {
            event.description = checks.check(text("description", v, 0, 10_000, true)).unwrap_or_default();
        }
        if let Some(v) = &request.venue_name {
            event.venue_name = checks.check(text("venue.name", v, 1, 200, false)).unwrap_or_default();
        }
        if let Some(v) = &request.venue_city {
            event.venue_city = checks.check(text("venue.city", v, 1, 100, false)).unwrap_or_default();
        }
        if let Some(v) = &request.venue_country {
            event.venue_country = checks.check(country("venue.country", v)).unwrap_or_default();
        }
        if let Some(v) = &request.starts_at {
            event.starts_at = checks.check(instant("starts_at", v)).unwrap_or(before.starts_at);
        }
        if let Some(v) = &request.ends_at {
            event.ends_at = checks.check(instant("ends_at", v)).unwrap_or(before.ends_at);
        }
        if event.ends_at <= event.starts_at {
            checks.push(FieldError::new("ends_at", "must be after starts_at"));
        }
        if let Some(v) = &request.currency
            && let Some(code) = checks.check(currency("currency", v))
        {
            if code != before.currency && before.status() != EventStatus::Draft {
                return Err(CatalogError::Conflict("the currency cannot change once the event is on sale".into()));
            }
            event.currency = code;
        }
        if let Some(v) = request.max_tickets_per_order {
            event.max_tickets_per_order =
                checks.check(in_range("max_tickets_per_order", v, 1, MAX_TICKETS_PER_ORDER)).unwrap_or_default();
        }
        if let Some(v) = request.max_tickets_per_buyer {
            event.max_tickets_per_buyer =
                checks.check(in_range("max_tickets_per_buyer", v, 1, MAX_TICKETS_PER_BUYER)).unwrap_or_default();
        }
        checks.finish().map_err(CatalogError::Invalid)?;

        let mut changed = Vec::new();
        for (name, differs) in [
            ("title", event.title != before.title),
            ("description", event.description != before.description),
            (
                "venue",
                (&event.venue_name, &event.venue_city, &event.venue_country)
                    != (&before.venue_name, &before.venue_city, &before.venue_country),
            ),
            ("starts_at", event.starts_at != before.starts_at),
            ("ends_at", event.ends_at != before.ends_at),
            ("currency", event.currency != before.currency),
            ("max_tickets_per_order", event.max_tickets_per_order != before.max_tickets_per_order),
            ("max_tickets_per_buyer", event.max_tickets_per_buyer != before.max_tickets_per_buyer),
        ] {
            if differs {
                changed.push(name.to_owned());
            }
        }
        if !changed.is_empty() {
            event.updated_at = next_revision(event.updated_at);
            sqlx::query(
                "UPDATE events SET title = $1, description = $2, venue_name = $3, venue_city = $4, venue_country = $5, \
                 starts_at = $6, ends_at = $7, currency = $8, max_tickets_per_order = $9, max_tickets_per_buyer = $10, \
                 search_text = $11, city_key = $12, updated_at = $13 WHERE id = $14",
            )
            .bind(&event.title)
            .bind(&event.description)
            .bind(&event.venue_name)
            .bind(&event.venue_city)
            .bind(&event.venue_country)
            .bind(event.starts_at)
            .bind(event.ends_at)
            .bind(&event.currency)
            .bind(event.max_tickets_per_order)
            .bind(event.max_tickets_per_buyer)
            .bind(event.search_text())
            .bind(event.venue_city.to_lowercase())
            .bind(event.updated_at)
            .bind(&event.id)
            .execute(&mut *tx)
            .await?;
        }
        let (event, types) = self.event_with_types(&mut tx, event).await?;
        // Drafts are nobody else's business yet.
        let announced = !changed.is_empty() && event.status() != EventStatus::Draft;
        if announced {
            let time_changed = changed.iter().any(|f| f == "starts_at" || f == "ends_at");
            let venue_changed = changed.iter().any(|f| f == "venue");
            let change =
                EventChanged { event: snapshot(&event, &types), changed_fields: changed, time_changed, venue_changed };
            self.announce(&mut tx, &change, request_id).await?;
        }
        tx.commit().await?;
        if announced {
            self.relay.wake();
        }
        Ok(to_proto(&event, &types))
    }

    #[tracing::instrument(skip_all, fields(event_id = %request.event_id))]
    async fn publish_event(&self, request: PublishEventRequest, request_id: Option<String>) -> Result<Event> {
        let mut tx = self.db.pool().begin().await?;
        let mut event = self.load_managed(&mut tx, request.actor.as_ref(), &request.event_id).await?;
        match event.status() {
            EventStatus::OnSale => {
                // Publishing twice changes nothing.
                let (event, types) = self.event_with_types(&mut tx, event).await?;
                return Ok(to_proto(&event, &types));
            }
            EventStatus::Cancelled => return Err(CatalogError::Conflict("a cancelled event cannot go on sale".into())),
            EventStatus::Draft => {}
        }
        event.status = EventStatus::OnSale.as_str().to_owned();
        event.updated_at = next_revision(event.updated_at);
        sqlx::query("UPDATE events SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(&event.status)
            .bind(event.updated_at)
            .bind(&event.id)
            .execute(&mut *tx)
            .await?;
        let (event, types) = self.event_with_types(&mut tx, event).await?;
        self.announce(&mut tx, &EventPublished { event: snapshot(&event, &types) }, request_id).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(to_proto(&event, &types))
    }

    #[tracing::instrument(skip_all, fields(event_id = %request.event_id))]
    async fn cancel_event(&self, request: CancelEventRequest, request_id: Option<String>) -> Result<Event> {
        let reason = text("reason", &request.reason, 1, 500, true)?;
        let mut tx = self.db.pool().begin().await?;
        let mut event = self.load_managed(&mut tx, request.actor.as_ref(), &request.event_id).await?;
        if event.status() == EventStatus::Cancelled {
            return Err(CatalogError::Conflict("the event is cancelled already".into()));
        }
        let was_public = event.status().is_public();
        event.status = EventStatus::Cancelled.as_str().to_owned();
        event.cancel_reason = Some(reason.clone());
        event.updated_at = next_revision(event.updated_at);
        sqlx::query("UPDATE events SET status = $1, cancel_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(&event.status)
            .bind(&event.cancel_reason)
            .bind(event.updated_at)
            .bind(&event.id)
            .execute(&mut *tx)
            .await?;
        let (event, types) = self.event_with_types(&mut tx, event).await?;
        if was_public {
            self.announce(&mut tx, &EventCancelled { event: snapshot(&event, &types), reason }, request_id).await?;
        }
        tx.commit().await?;
        self.relay.wake();
        Ok(to_proto(&event, &types))
    }

    #[tracing::instrument(skip_all, fields(event_id = %request.event_id))]
    async fn add_ticket_type(&self, request: AddTicketTypeRequest, request_id: Option<String>) -> Result<TicketType> {
        let mut checks = Checks::default();
        let name = checks.check(text("name", &request.name, 1, 100, false));
        let price = checks.check(in_range("price_minor", request.price_minor, 0, MAX_PRICE_MINOR));
        let capacity = checks.check(in_range("capacity", request.capacity, 1, MAX_CAPACITY));
        let mut tx = self.db.pool().begin().await?;
        let event = self.load_managed(&mut tx, request.actor.as_ref(), &request.event_id).await?;
        checks.finish().map_err(CatalogError::Invalid)?;
        let (Some(name), Some(price_minor), Some(capacity)) = (name, price, capacity) else {
            return Err(CatalogError::Invalid(vec![]));
        };
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
        let inserted = sqlx::query(
            "INSERT INTO ticket_types (id, event_id, name, price_minor, capacity, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.id)
        .bind(&row.event_id)
        .bind(&row.name)
        .bind(row.price_minor)
        .bind(row.capacity)
        .bind(now_ms())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                return Err(CatalogError::Conflict(format!(
                    "the event has a ticket type named {:?} already",
                    row.name
                )));
            }
            Err(error) => return Err(error.into()),
        }
        let announced = event.status() == EventStatus::OnSale;
        if announced {
            let mut event = event;
            event.updated_at = next_revision(event.updated_at);
            sqlx::query("UPDATE events SET updated_at = $1 WHERE id = $2")
                .bind(event.updated_at)
                .bind(&event.id)
                .execute(&mut *tx)
                .await?;
            let (event, types) = self.event_with_types(&mut tx, event).await?;
            let change = EventChanged {
                event: snapshot(&event, &types),
                changed_fields: vec!["ticket_types".into()],
                time_changed: false,
                venue_changed: false,
            };
            self.announce(&mut tx, &change, request_id).await?;
            tx.commit().await?;
            self.relay.wake();
            return Ok(ticket_type_to_proto(&row, &event.currency));
        }
        tx.commit().await?;
        Ok(ticket_type_to_proto(&row, &event.currency))
    }

    #[tracing::instrument(skip_all, fields(event_id = %request.event_id))]
    async fn get_event(&self, request: GetEventRequest) -> Result<Event> {
        if EventId::parse(&request.event_id).is_err() {
            return Err(CatalogError::EventNotFound);
        }
        let mut conn = self.db.pool().acquire().await?;
        let event = self.load_event(&mut conn, &request.event_id, false).await?;
        if !Access::of(request.actor.as_ref(), &event.organization_id).can_see(event.status()) {
            return Err(CatalogError::EventNotFound);
        }
        let (event, types) = self.event_with_types(&mut conn, event).await?;
        Ok(to_proto(&event, &types))
    }

    #[tracing::instrument(skip_all)]
    async fn search_events(&self, request: SearchEventsRequest) -> Result<SearchEventsResponse> {
        let mut checks = Checks::default();
        let page_size = if request.page_size == 0 { DEFAULT_PAGE_SIZE } else { request.page_size };
        let page_size = checks.check(in_range("page_size", page_size, 1, MAX_PAGE_SIZE)).unwrap_or(DEFAULT_PAGE_SIZE);
        let from = if request.from.is_empty() { None } else { checks.check(instant("from", &request.from)) };
        let to = if request.to.is_empty() { None } else { checks.check(instant("to", &request.to)) };
        let after =
            if request.page_token.is_empty() { None } else { checks.check(PageToken::decode(&request.page_token)) };
        checks.finish().map_err(CatalogError::Invalid)?;

        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE status = 'on_sale'");
        let mut binds: Vec<Bind> = Vec::new();
        let placeholder = |binds: &mut Vec<Bind>, value: Bind| {
            binds.push(value);
            format!("${}", binds.len())
        };
        let q = request.q.trim().to_lowercase();
        if !q.is_empty() {
            let p = placeholder(&mut binds, Bind::Text(contains_pattern(&q)));
            sql.push_str(&format!(" AND search_text LIKE {p} ESCAPE '\\'"));
        }
        let city = request.city.trim().to_lowercase();
        if !city.is_empty() {
            let p = placeholder(&mut binds, Bind::Text(city));
            sql.push_str(&format!(" AND city_key = {p}"));
        }
        if let Some(from) = from {
            let p = placeholder(&mut binds, Bind::Int(from));
            sql.push_str(&format!(" AND starts_at >= {p}"));
        }
        if let Some(to) = to {
            let p = placeholder(&mut binds, Bind::Int(to));
            sql.push_str(&format!(" AND starts_at <= {p}"));
        }
        if let Some(after) = &after {
            let s1 = placeholder(&mut binds, Bind::Int(after.starts_at));
            let s2 = placeholder(&mut binds, Bind::Int(after.starts_at));
            let i = placeholder(&mut binds, Bind::Text(after.id.clone()));
            sql.push_str(&format!(" AND (starts_at > {s1} OR (starts_at = {s2} AND id > {i}))"));
        }
        let limit = placeholder(&mut binds, Bind::Int(page_size + 1));
        sql.push_str(&format!(" ORDER BY starts_at, id LIMIT {limit}"));

        let mut query = sqlx::query_as::<_, EventRow>(&sql);
        for bind in binds {
            query = match bind {
                Bind::Text(v) => query.bind(v),
                Bind::Int(v) => query.bind(v),
            };
        }
        let mut conn = self.db.pool().acquire().await?;
        let mut rows = query.fetch_all(&mut *conn).await?;
        let next_page_token = if rows.len() as i64 > page_size {
            rows.truncate(usize::try_from(page_size).unwrap_or(0));
            rows.last().map(|last| PageToken { starts_at: last.starts_at, id: last.id.clone() }.encode())
        } else {
            None
        };
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let types = self.ticket_types(&mut conn, &ids).await?;
        let items = rows
            .iter()
            .map(|event| {
                let own: Vec<TicketTypeRow> = types.iter().filter(|t| t.event_id == event.id).cloned().collect();
                to_proto(event, &own)
            })
            .collect();
        Ok(SearchEventsResponse { items, next_page_token })
    }
}

/// `updated_at` doubles as the event's revision in its domain events, so it must grow with every
/// change even when two changes land in the same millisecond.
fn next_revision(previous: i64) -> i64 {
    now_ms().max(previous + 1)
}

enum Bind {
    Text(String),
    Int(i64),
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

fn to_proto(event: &EventRow, types: &[TicketTypeRow]) -> Event {
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
        ticket_types: types.iter().map(|t| ticket_type_to_proto(t, &event.currency)).collect(),
        created_at: ms_to_rfc3339(event.created_at),
        updated_at: ms_to_rfc3339(event.updated_at),
        cancel_reason: event.cancel_reason.clone(),
    }
}

fn snapshot(event: &EventRow, types: &[TicketTypeRow]) -> EventSnapshot {
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
        ticket_types: types
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

#[tonic::async_trait]
impl catalog_server::Catalog for CatalogService {
    async fn create_event(&self, request: Request<CreateEventRequest>) -> std::result::Result<Response<Event>, Status> {
        Ok(Response::new(CatalogService::create_event(self, request.into_inner()).await?))
    }

    async fn update_event(&self, request: Request<UpdateEventRequest>) -> std::result::Result<Response<Event>, Status> {
        let request_id = grpc::request_id(&request);
        Ok(Response::new(CatalogService::update_event(self, request.into_inner(), request_id).await?))
    }

    async fn publish_event(
        &self,
        request: Request<PublishEventRequest>,
    ) -> std::result::Result<Response<Event>, Status> {
        let request_id = grpc::request_id(&request);
        Ok(Response::new(CatalogService::publish_event(self, request.into_inner(), request_id).await?))
    }

    async fn cancel_event(&self, request: Request<CancelEventRequest>) -> std::result::Result<Response<Event>, Status> {
        let request_id = grpc::request_id(&request);
        Ok(Response::new(CatalogService::cancel_event(self, request.into_inner(), request_id).await?))
    }

    async fn add_ticket_type(
        &self,
        request: Request<AddTicketTypeRequest>,
    ) -> std::result::Result<Response<TicketType>, Status> {
        let request_id = grpc::request_id(&request);
        Ok(Response::new(CatalogService::add_ticket_type(self, request.into_inner(), request_id).await?))
    }

    async fn get_event(&self, request: Request<GetEventRequest>) -> std::result::Result<Response<Event>, Status> {
        Ok(Response::new(CatalogService::get_event(self, request.into_inner()).await?))
    }

    async fn search_events(
        &self,
        request: Request<SearchEventsRequest>,
    ) -> std::result::Result<Response<SearchEventsResponse>, Status> {
        Ok(Response::new(CatalogService::search_events(self, request.into_inner()).await?))
    }
}
