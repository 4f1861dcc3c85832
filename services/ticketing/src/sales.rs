//! Closing an event's sales, synchronously, for catalog: a change that takes away what buyers
//! may do takes effect here before catalog acknowledges it (docs/architecture.md,
//! Consistency). Catalog calls [`Engine::close_sales`] before it commits an event's
//! cancellation; the cancellation's domain event then arrives later and, through catalog sync
//! and the sweeper, cancels the event's unpaid orders and refunds its paid ones.
//!
//! [`Engine::restrict_sales`] does the same for an update that takes something away (an earlier
//! start, lower caps): the new limits hold here before catalog commits the update.
//!
//! Once closed, an event takes no new hold ([`crate::orders`]) and none of its pending orders
//! starts a payment (`repository::orders::start_payment`); both check under the event's row
//! lock, so a close and a sale never cross. Sales never reopen.

use eventhive_domain::EventId;
use eventhive_platform::storage::now_ms;

use crate::{
    engine::Engine,
    error::TicketingError,
    repository::catalog::{self, Restriction},
};

type Result<T> = std::result::Result<T, TicketingError>;

impl Engine {
    /// Closes the event's sales; returns when they closed (the first time). Idempotent. An
    /// event ticketing has not heard of yet is read from catalog first, so that the close is
    /// recorded on its row and an order that names it later is refused too.
    #[tracing::instrument(skip(self, reason), fields(%event_id))]
    pub(crate) async fn close_sales(
        &self,
        event_id: EventId,
        reason: &str,
        revision: i64,
        request_id: Option<&str>,
    ) -> Result<i64> {
        if let Some(closed_at) = self.try_close_sales(event_id, reason, revision).await? {
            return Ok(closed_at);
        }
        let found = self
            .catalog
            .fetch(event_id, request_id)
            .await
            .map_err(|e| TicketingError::Unavailable(format!("{e:#}")))?;
        if !found {
            return Err(TicketingError::NotFound("no such event".into()));
        }
        self.try_close_sales(event_id, reason, revision)
            .await?
            .ok_or_else(|| TicketingError::NotFound("no such event".into()))
    }

    async fn try_close_sales(&self, event_id: EventId, reason: &str, revision: i64) -> Result<Option<i64>> {
        let mut tx = self.db.pool().begin().await?;
        let closed_at = catalog::close_sales(&mut tx, event_id, reason, revision, now_ms()).await?;
        tx.commit().await?;
        if closed_at.is_some() {
            tracing::info!(%event_id, revision, "sales closed");
        }
        Ok(closed_at)
    }

    /// Applies stricter limits ahead of their snapshot. Idempotent. As for a close, an event
    /// not heard of yet is read from catalog first, so the restriction lands on its row.
    #[tracing::instrument(skip(self), fields(%event_id))]
    pub(crate) async fn restrict_sales(
        &self,
        event_id: EventId,
        limits: Restriction,
        request_id: Option<&str>,
    ) -> Result<()> {
        if self.try_restrict_sales(event_id, &limits).await? {
            return Ok(());
        }
        let found = self
            .catalog
            .fetch(event_id, request_id)
            .await
            .map_err(|e| TicketingError::Unavailable(format!("{e:#}")))?;
        if !found || !self.try_restrict_sales(event_id, &limits).await? {
            return Err(TicketingError::NotFound("no such event".into()));
        }
        Ok(())
    }

    async fn try_restrict_sales(&self, event_id: EventId, limits: &Restriction) -> Result<bool> {
        let mut tx = self.db.pool().begin().await?;
        let known = catalog::restrict_sales(&mut tx, event_id, limits).await?;
        tx.commit().await?;
        if known {
            tracing::info!(%event_id, revision = limits.revision, "sales restricted ahead of catalog's update");
        }
        Ok(known)
    }
}
