//! Events a page at a time: the public search of on-sale events, and an organization's own
//! list of every event it has, for its members. Both walk (starts_at, id) with the same page
//! tokens.

use eventhive_proto::common::Actor;
use sqlx::AnyConnection;

use super::{EventWithTypes, Events, Result, SearchPage};
use crate::{
    domain::{Access, OrganizationQuery, PageToken, SearchQuery},
    error::CatalogError,
    repository::EventRow,
};

impl Events {
    /// One page of on-sale events, by start time.
    #[tracing::instrument(skip_all)]
    pub async fn search(&self, query: SearchQuery) -> Result<SearchPage> {
        let mut conn = self.repository.connection().await?;
        // One more than a page tells whether another page follows.
        let rows = self.repository.search(&mut conn, &query, query.page_size + 1).await?;
        self.page(&mut conn, rows, query.page_size).await
    }

    /// One page of the organization's events of every status, by start time; an organization
    /// the actor is not in is not there for them.
    #[tracing::instrument(skip_all, fields(organization_id = %query.organization_id))]
    pub async fn of_organization(&self, actor: Option<&Actor>, query: OrganizationQuery) -> Result<SearchPage> {
        if Access::of(actor, &query.organization_id) == Access::Outsider {
            return Err(CatalogError::OrganizationNotFound);
        }
        let mut conn = self.repository.connection().await?;
        let rows = self.repository.of_organization(&mut conn, &query, query.page_size + 1).await?;
        self.page(&mut conn, rows, query.page_size).await
    }

    /// The page of `rows` (read one beyond `page_size`), with their ticket types and the token
    /// of the next page when there is one.
    async fn page(&self, conn: &mut AnyConnection, mut rows: Vec<EventRow>, page_size: i64) -> Result<SearchPage> {
        let next_page_token = if rows.len() as i64 > page_size {
            rows.truncate(usize::try_from(page_size).unwrap_or(0));
            rows.last().map(|last| PageToken { starts_at: last.starts_at, id: last.id.clone() }.encode())
        } else {
            None
        };
        let types = self.repository.ticket_types_of(conn, &rows).await?;
        let items = rows
            .into_iter()
            .map(|event| {
                let ticket_types = types.iter().filter(|t| t.event_id == event.id).cloned().collect();
                EventWithTypes { event, ticket_types }
            })
            .collect();
        Ok(SearchPage { items, next_page_token })
    }
}
