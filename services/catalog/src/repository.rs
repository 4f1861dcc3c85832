//! Catalog's storage: every SQL statement on `events` and `ticket_types`. The operations in
//! `events` read rows, change them and hand them back here to be written, inside the
//! transaction they began here too.

use eventhive_domain::EventId;
use eventhive_platform::{
    Database,
    storage::{is_unique_violation, now_ms},
};
use sqlx::{Any, AnyConnection, Transaction, any::AnyArguments, pool::PoolConnection, query::Query};

use crate::{
    domain::{EventStatus, OrganizationQuery, SearchQuery, contains_pattern},
    error::CatalogError,
};

type Result<T> = std::result::Result<T, CatalogError>;

const EVENT_COLUMNS: &str = "id, organization_id, title, description, venue_name, venue_city, venue_country, \
    starts_at, ends_at, currency, max_tickets_per_order, max_tickets_per_buyer, status, cancel_reason, created_at, updated_at";

/// An event as stored; times are Unix milliseconds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub organization_id: String,
    pub title: String,
    pub description: String,
    pub venue_name: String,
    pub venue_city: String,
    pub venue_country: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub currency: String,
    pub max_tickets_per_order: i64,
    pub max_tickets_per_buyer: i64,
    pub status: String,
    pub cancel_reason: Option<String>,
    pub created_at: i64,
    /// Also the revision of the event's domain events: it grows with every change.
    pub updated_at: i64,
}

impl EventRow {
    pub fn status(&self) -> EventStatus {
        EventStatus::from_stored(&self.status)
    }

    /// What search matches words against: lower-cased here because SQLite's `lower()` knows
    /// only ASCII.
    fn search_text(&self) -> String {
        format!("{}\n{}", self.title, self.description).to_lowercase()
    }

    fn city_key(&self) -> String {
        self.venue_city.to_lowercase()
    }
}

/// What became of a change to a stored row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Done,
    /// No such row.
    Missing,
    /// Another row of the event has the name already.
    NameTaken,
}

/// A ticket type as stored; its price is in its event's currency.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketTypeRow {
    pub id: String,
    pub event_id: String,
    pub name: String,
    pub price_minor: i64,
    pub capacity: i64,
}

/// Reads and writes events and their ticket types.
pub struct Repository {
    db: Database,
}

impl Repository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.db.pool().begin().await?)
    }

    /// A connection for reads that need no transaction.
    pub async fn connection(&self) -> Result<PoolConnection<Any>> {
        Ok(self.db.pool().acquire().await?)
    }

    /// The event, locked against other changes until the transaction ends when `for_update`.
    pub async fn load_event(&self, conn: &mut AnyConnection, id: EventId, for_update: bool) -> Result<EventRow> {
        let lock = if for_update { self.db.for_update() } else { "" };
        sqlx::query_as::<_, EventRow>(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1{lock}"))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(CatalogError::EventNotFound)
    }

    /// The ticket types of `events`, oldest first.
    pub async fn ticket_types_of(&self, conn: &mut AnyConnection, events: &[EventRow]) -> Result<Vec<TicketTypeRow>> {
        let mut rows = Vec::new();
        // A page holds at most MAX_PAGE_SIZE events; one query per chunk keeps the SQL portable.
        for chunk in events.chunks(50) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, event_id, name, price_minor, capacity FROM ticket_types WHERE event_id IN ({}) \
                 ORDER BY created_at, id",
                placeholders.join(", ")
            );
            let mut query = sqlx::query_as::<_, TicketTypeRow>(&sql);
            for event in chunk {
                query = query.bind(&event.id);
            }
            rows.extend(query.fetch_all(&mut *conn).await?);
        }
        Ok(rows)
    }

    pub async fn insert_event(&self, conn: &mut AnyConnection, event: &EventRow) -> Result<()> {
        let insert = format!(
            "INSERT INTO events ({EVENT_COLUMNS}, search_text, city_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        );
        bind_details(sqlx::query(&insert).bind(&event.id).bind(&event.organization_id), event)
            .bind(&event.status)
            .bind(&event.cancel_reason)
            .bind(event.created_at)
            .bind(event.updated_at)
            .bind(event.search_text())
            .bind(event.city_key())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Writes what an organizer may change, and the revision.
    pub async fn update_details(&self, conn: &mut AnyConnection, event: &EventRow) -> Result<()> {
        const UPDATE: &str = "UPDATE events SET title = $1, description = $2, venue_name = $3, venue_city = $4, \
             venue_country = $5, starts_at = $6, ends_at = $7, currency = $8, max_tickets_per_order = $9, \
             max_tickets_per_buyer = $10, search_text = $11, city_key = $12, updated_at = $13 WHERE id = $14";
        bind_details(sqlx::query(UPDATE), event)
            .bind(event.search_text())
            .bind(event.city_key())
            .bind(event.updated_at)
            .bind(&event.id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Writes where the event is in its lifecycle (status and cancel reason), and the revision.
    pub async fn update_status(&self, conn: &mut AnyConnection, event: &EventRow) -> Result<()> {
        sqlx::query("UPDATE events SET status = $1, cancel_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(&event.status)
            .bind(&event.cancel_reason)
            .bind(event.updated_at)
            .bind(&event.id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Writes the revision alone, for a change to the event's ticket types.
    pub async fn update_revision(&self, conn: &mut AnyConnection, event: &EventRow) -> Result<()> {
        sqlx::query("UPDATE events SET updated_at = $1 WHERE id = $2")
            .bind(event.updated_at)
            .bind(&event.id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Inserts a ticket type; `false` when its event has one of that name already.
    pub async fn insert_ticket_type(&self, conn: &mut AnyConnection, ticket_type: &TicketTypeRow) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO ticket_types (id, event_id, name, price_minor, capacity, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&ticket_type.id)
        .bind(&ticket_type.event_id)
        .bind(&ticket_type.name)
        .bind(ticket_type.price_minor)
        .bind(ticket_type.capacity)
        .bind(now_ms())
        .execute(&mut *conn)
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(error) if is_unique_violation(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Changes a ticket type of `ticket_type.event_id` to `ticket_type`'s name, price and
    /// capacity.
    pub async fn update_ticket_type(&self, conn: &mut AnyConnection, ticket_type: &TicketTypeRow) -> Result<Stored> {
        let updated = sqlx::query(
            "UPDATE ticket_types SET name = $1, price_minor = $2, capacity = $3 WHERE id = $4 AND event_id = $5",
        )
        .bind(&ticket_type.name)
        .bind(ticket_type.price_minor)
        .bind(ticket_type.capacity)
        .bind(&ticket_type.id)
        .bind(&ticket_type.event_id)
        .execute(&mut *conn)
        .await;
        match updated {
            Ok(done) if done.rows_affected() == 0 => Ok(Stored::Missing),
            Ok(_) => Ok(Stored::Done),
            Err(error) if is_unique_violation(&error) => Ok(Stored::NameTaken),
            Err(error) => Err(error.into()),
        }
    }

    /// On-sale events matching `query`, by (starts_at, id) after its page token, at most `limit`.
    pub async fn search(&self, conn: &mut AnyConnection, query: &SearchQuery, limit: i64) -> Result<Vec<EventRow>> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE status = 'on_sale'");
        let mut binds: Vec<Bind> = Vec::new();
        let placeholder = |binds: &mut Vec<Bind>, value: Bind| {
            binds.push(value);
            format!("${}", binds.len())
        };
        if !query.text.is_empty() {
            let p = placeholder(&mut binds, Bind::Text(contains_pattern(&query.text)));
            sql.push_str(&format!(" AND search_text LIKE {p} ESCAPE '\\'"));
        }
        if !query.city.is_empty() {
            let p = placeholder(&mut binds, Bind::Text(query.city.clone()));
            sql.push_str(&format!(" AND city_key = {p}"));
        }
        if let Some(from) = query.from {
            let p = placeholder(&mut binds, Bind::Int(from));
            sql.push_str(&format!(" AND starts_at >= {p}"));
        }
        if let Some(to) = query.to {
            let p = placeholder(&mut binds, Bind::Int(to));
            sql.push_str(&format!(" AND starts_at <= {p}"));
        }
        if let Some(after) = &query.after {
            let s1 = placeholder(&mut binds, Bind::Int(after.starts_at));
            let s2 = placeholder(&mut binds, Bind::Int(after.starts_at));
            let i = placeholder(&mut binds, Bind::Text(after.id.clone()));
            sql.push_str(&format!(" AND (starts_at > {s1} OR (starts_at = {s2} AND id > {i}))"));
        }
        let p = placeholder(&mut binds, Bind::Int(limit));
        sql.push_str(&format!(" ORDER BY starts_at, id LIMIT {p}"));

        let mut statement = sqlx::query_as::<_, EventRow>(&sql);
        for bind in binds {
            statement = match bind {
                Bind::Text(v) => statement.bind(v),
                Bind::Int(v) => statement.bind(v),
            };
        }
        Ok(statement.fetch_all(&mut *conn).await?)
    }

    /// The organization's events of every status, by (starts_at, id) after the query's page
    /// token, at most `limit`.
    pub async fn of_organization(
        &self,
        conn: &mut AnyConnection,
        query: &OrganizationQuery,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        // The first page starts before every event.
        let (starts_at, id) = query.after.as_ref().map_or((i64::MIN, ""), |after| (after.starts_at, after.id.as_str()));
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE organization_id = $1 \
             AND (starts_at > $2 OR (starts_at = $3 AND id > $4)) ORDER BY starts_at, id LIMIT $5"
        );
        Ok(sqlx::query_as::<_, EventRow>(&sql)
            .bind(&query.organization_id)
            .bind(starts_at)
            .bind(starts_at)
            .bind(id)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?)
    }
}

/// Binds what an organizer may change, in the order of `EVENT_COLUMNS` (title to
/// max_tickets_per_buyer), which both writes of an event share.
fn bind_details<'q>(query: Query<'q, Any, AnyArguments<'q>>, event: &'q EventRow) -> Query<'q, Any, AnyArguments<'q>> {
    query
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
}

/// A value for a placeholder of a query built at run time.
enum Bind {
    Text(String),
    Int(i64),
}
