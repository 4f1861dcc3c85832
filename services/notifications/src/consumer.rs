//! The consumer of domain events: it keeps the read models (events, holders) and queues the
//! emails the events call for. Each domain event is applied once: the inbox claim, the read
//! model change and the queued deliveries commit in one transaction, so a redelivered event
//! queues nothing more. Lookups in other services (a buyer's email, an unknown event) happen
//! before that transaction, never inside it; sending is the [`Sender`]'s job.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use eventhive_domain::{
    EventId, MessageId, UserId,
    events::{
        DomainEvent, Envelope, EventCancelled, EventChanged, EventPublished, OrderCancelled, OrderExpired,
        OrderRefunded, TicketsIssued,
    },
};
use eventhive_platform::{Database, bus::MessageHandler, inbox, storage::now_ms};
use sqlx::AnyConnection;

use crate::{
    directory::{EventDirectory, RecipientDirectory},
    render::{Email, Kind, Templates},
    sender::Sender,
    store::{self, EVENT_CANCELLED_REASON, EventInfo, NewDelivery},
};

/// The inbox name of this consumer.
pub const CONSUMER: &str = "notifications.email";

/// The routing keys the consumer is subscribed to.
pub fn routing_keys() -> Vec<String> {
    vec![
        EventPublished::routing_key(),
        EventChanged::routing_key(),
        EventCancelled::routing_key(),
        TicketsIssued::routing_key(),
        OrderRefunded::routing_key(),
        OrderCancelled::routing_key(),
        OrderExpired::routing_key(),
    ]
}

#[derive(Clone)]
pub struct EmailConsumer {
    db: Database,
    templates: Arc<Templates>,
    recipients: Arc<dyn RecipientDirectory>,
    events: Arc<dyn EventDirectory>,
    /// Woken after new deliveries commit, so mail leaves now rather than at the next tick.
    sender: Sender,
}

impl EmailConsumer {
    pub fn new(
        db: Database,
        templates: Arc<Templates>,
        recipients: Arc<dyn RecipientDirectory>,
        events: Arc<dyn EventDirectory>,
        sender: Sender,
    ) -> Self {
        Self { db, templates, recipients, events, sender }
    }

    /// Whether the message was applied before: a cheap check that spares a redelivery the
    /// lookups in other services. The claim in the transaction remains the real guard.
    async fn applied_before(&self, message_id: MessageId) -> anyhow::Result<bool> {
        store::applied_before(&self.db, CONSUMER, message_id).await
    }

    /// A buyer's email: cached from an earlier order, else from the directory. `Err` when the
    /// directory cannot answer now: the bus delivers the message again later.
    async fn email_of(&self, buyer_id: &UserId) -> anyhow::Result<Option<String>> {
        let mut conn = self.db.pool().acquire().await?;
        let cached = store::cached_email(&mut conn, &buyer_id.to_string()).await?;
        drop(conn);
        if cached.is_some() {
            return Ok(cached);
        }
        let email = self.recipients.email_of(buyer_id).await.context("looking up a buyer's email")?;
        if email.is_none() {
            tracing::warn!(%buyer_id, "the buyer is unknown to identity; they get no email");
        }
        Ok(email)
    }

    /// What we know of an event, asking catalog when we have not heard of it. Emails go out
    /// without the event's details rather than not at all, so a failure here is only logged.
    async fn event_info(&self, event_id: &EventId) -> anyhow::Result<Option<EventInfo>> {
        let mut conn = self.db.pool().acquire().await?;
        let known = store::event(&mut conn, &event_id.to_string()).await?;
        drop(conn);
        if known.is_some() {
            return Ok(known);
        }
        match self.events.event(event_id).await {
            Ok(Some(info)) => {
                let mut tx = self.db.pool().begin().await?;
                store::apply_event(&mut tx, &info).await?;
                tx.commit().await?;
                Ok(Some(info))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                tracing::warn!(%event_id, error = format!("{error:#}"), "cannot look up the event; emailing without it");
                Ok(None)
            }
        }
    }

    #[tracing::instrument(skip_all, fields(message_id = %envelope.id, event_id = %event.event.event_id))]
    async fn on_event_published(&self, envelope: &Envelope, event: EventPublished) -> anyhow::Result<()> {
        let mut tx = self.db.pool().begin().await?;
        if inbox::claim(&mut tx, CONSUMER, envelope.id).await? {
            store::apply_event(&mut tx, &EventInfo::from_snapshot(&event.event)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(message_id = %envelope.id, event_id = %event.event.event_id))]
    async fn on_event_changed(&self, envelope: &Envelope, event: EventChanged) -> anyhow::Result<()> {
        let event_id = event.event.event_id.to_string();
        let mut tx = self.db.pool().begin().await?;
        let mut queued = 0;
        if inbox::claim(&mut tx, CONSUMER, envelope.id).await? {
            let replaced = store::apply_event(&mut tx, &EventInfo::from_snapshot(&event.event)).await?;
            if event.time_changed || event.venue_changed {
                // The newest we hold: a change delivered late must not announce old details.
                let current = store::event(&mut tx, &event_id).await?.context("the event was just stored")?;
                let previous = replaced.flatten();
                let email = self.templates.event_changed(
                    &current,
                    previous.as_ref(),
                    event.time_changed,
                    event.venue_changed,
                )?;
                for recipient in store::holders_to_tell_of_change(&mut tx, &event_id).await? {
                    queued +=
                        queue(&mut tx, envelope, &recipient, Kind::EventChanged, &email, Some(&event_id), None).await?;
                }
            }
        }
        tx.commit().await?;
        self.wake_if(queued);
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(message_id = %envelope.id, event_id = %event.event.event_id))]
    async fn on_event_cancelled(&self, envelope: &Envelope, event: EventCancelled) -> anyhow::Result<()> {
        let event_id = event.event.event_id.to_string();
        let mut tx = self.db.pool().begin().await?;
        let mut queued = 0;
        if inbox::claim(&mut tx, CONSUMER, envelope.id).await? {
            let info = EventInfo::from_snapshot(&event.event).with_cancel_reason(&event.reason);
            store::apply_event(&mut tx, &info).await?;
            let email = self.templates.event_cancelled(&info, Some(&event.reason))?;
            for recipient in store::holders_to_tell_of_cancellation(&mut tx, &event_id).await? {
                queued +=
                    queue(&mut tx, envelope, &recipient, Kind::EventCancelled, &email, Some(&event_id), None).await?;
            }
        }
        tx.commit().await?;
        self.wake_if(queued);
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(message_id = %envelope.id, order_id = %event.order_id))]
    async fn on_tickets_issued(&self, envelope: &Envelope, event: TicketsIssued) -> anyhow::Result<()> {
        if self.applied_before(envelope.id).await? {
            return Ok(());
        }
        let recipient = self.email_of(&event.buyer_id).await?;
        let info = self.event_info(&event.event_id).await?;
        let order_id = event.order_id.to_string();
        let event_id = event.event_id.to_string();
        // QR images are CPU work: done before the transaction, which SQLite serializes.
        let email = match &recipient {
            Some(_) => Some(self.templates.order_confirmation(info.as_ref(), &order_id, &event.tickets)?),
            None => None,
        };
        let mut tx = self.db.pool().begin().await?;
        let mut queued = 0;
        if inbox::claim(&mut tx, CONSUMER, envelope.id).await? {
            let buyer_id = event.buyer_id.to_string();
            store::upsert_holder(
                &mut tx,
                &order_id,
                &event_id,
                &buyer_id,
                recipient.as_deref(),
                &event.tickets,
                now_ms(),
            )
            .await?;
            if let (Some(recipient), Some(email)) = (&recipient, &email) {
                queued += queue(
                    &mut tx,
                    envelope,
                    recipient,
                    Kind::OrderConfirmation,
                    email,
                    Some(&event_id),
                    Some(&order_id),
                )
                .await?;
            }
        }
        tx.commit().await?;
        self.wake_if(queued);
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(message_id = %envelope.id, order_id = %event.order.order_id))]
    async fn on_order_refunded(&self, envelope: &Envelope, event: OrderRefunded) -> anyhow::Result<()> {
        if self.applied_before(envelope.id).await? {
            return Ok(());
        }
        let order = &event.order;
        let order_id = order.order_id.to_string();
        let event_id = order.event_id.to_string();
        let cancelled_event = event.reason == EVENT_CANCELLED_REASON;
        // A refund the buyer asked for is told by its own email; one for a cancelled event is
        // covered by the cancellation email, which needs no lookup here.
        let refund_email = if cancelled_event {
            None
        } else {
            match self.email_of(&order.buyer_id).await? {
                Some(recipient) => {
                    let info = self.event_info(&order.event_id).await?;
                    Some((recipient, self.templates.order_refunded(info.as_ref(), order)?))
                }
                None => None,
            }
        };
        let mut tx = self.db.pool().begin().await?;
        let mut queued = 0;
        if inbox::claim(&mut tx, CONSUMER, envelope.id).await? {
            let holder = store::void_holder(&mut tx, order, &event.reason, now_ms()).await?;
            if let Some((recipient, email)) = &refund_email {
                queued +=
                    queue(&mut tx, envelope, recipient, Kind::OrderRefunded, email, Some(&event_id), Some(&order_id))
                        .await?;
            } else if cancelled_event && let Some(recipient) = holder.and_then(|h| h.buyer_email) {
                queued += self.tell_late_holder_of_cancellation(&mut tx, envelope, &event_id, &recipient).await?;
            }
        }
        tx.commit().await?;
        self.wake_if(queued);
        Ok(())
    }

    /// The cancellation email for a holder whose tickets were issued after the cancellation
    /// was handled (so it did not list them), unless they heard of it already. While the
    /// cancellation is not handled yet, it will tell them itself.
    async fn tell_late_holder_of_cancellation(
        &self,
        tx: &mut AnyConnection,
        envelope: &Envelope,
        event_id: &str,
        recipient: &str,
    ) -> anyhow::Result<u64> {
        let Some(info) = store::event(tx, event_id).await? else {
            return Ok(0);
        };
        if info.status != "cancelled" || store::was_told(tx, event_id, Kind::EventCancelled.as_str(), recipient).await?
        {
            return Ok(0);
        }
        let email = self.templates.event_cancelled(&info, info.cancel_reason.as_deref())?;
        queue(tx, envelope, recipient, Kind::EventCancelled, &email, Some(event_id), None).await
    }

    #[tracing::instrument(skip_all, fields(message_id = %envelope.id, order_id = %event.order.order_id))]
    async fn on_order_cancelled(&self, envelope: &Envelope, event: OrderCancelled) -> anyhow::Result<()> {
        let mut tx = self.db.pool().begin().await?;
        if inbox::claim(&mut tx, CONSUMER, envelope.id).await? {
            store::void_holder(&mut tx, &event.order, &event.reason, now_ms()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(message_id = %envelope.id, order_id = %event.order.order_id))]
    async fn on_order_expired(&self, envelope: &Envelope, event: OrderExpired) -> anyhow::Result<()> {
        if self.applied_before(envelope.id).await? {
            return Ok(());
        }
        let order = &event.order;
        let Some(recipient) = self.email_of(&order.buyer_id).await? else {
            // Claim it all the same, so a redelivery does not look the buyer up again.
            let mut tx = self.db.pool().begin().await?;
            inbox::claim(&mut tx, CONSUMER, envelope.id).await?;
            tx.commit().await?;
            return Ok(());
        };
        let info = self.event_info(&order.event_id).await?;
        let email = self.templates.hold_expired(info.as_ref(), order)?;
        let (order_id, event_id) = (order.order_id.to_string(), order.event_id.to_string());
        let mut tx = self.db.pool().begin().await?;
        let mut queued = 0;
        if inbox::claim(&mut tx, CONSUMER, envelope.id).await? {
            queued += queue(&mut tx, envelope, &recipient, Kind::HoldExpired, &email, Some(&event_id), Some(&order_id))
                .await?;
        }
        tx.commit().await?;
        self.wake_if(queued);
        Ok(())
    }

    fn wake_if(&self, queued: u64) {
        if queued > 0 {
            self.sender.wake();
        }
    }
}

/// Queues one email caused by `envelope`; 1 if it is new, 0 if it was queued before.
async fn queue(
    tx: &mut AnyConnection,
    envelope: &Envelope,
    recipient: &str,
    kind: Kind,
    email: &Email,
    event_id: Option<&str>,
    order_id: Option<&str>,
) -> anyhow::Result<u64> {
    let message_id = envelope.id.to_string();
    let delivery = NewDelivery { message_id: &message_id, recipient, kind: kind.as_str(), email, event_id, order_id };
    let queued = store::queue(tx, delivery, now_ms()).await?;
    if queued {
        tracing::info!(recipient, kind = kind.as_str(), "email queued");
    }
    Ok(u64::from(queued))
}

#[async_trait]
impl MessageHandler for EmailConsumer {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        if envelope.is::<TicketsIssued>() {
            self.on_tickets_issued(envelope, envelope.decode()?).await
        } else if envelope.is::<EventChanged>() {
            self.on_event_changed(envelope, envelope.decode()?).await
        } else if envelope.is::<EventCancelled>() {
            self.on_event_cancelled(envelope, envelope.decode()?).await
        } else if envelope.is::<OrderRefunded>() {
            self.on_order_refunded(envelope, envelope.decode()?).await
        } else if envelope.is::<OrderExpired>() {
            self.on_order_expired(envelope, envelope.decode()?).await
        } else if envelope.is::<OrderCancelled>() {
            self.on_order_cancelled(envelope, envelope.decode()?).await
        } else if envelope.is::<EventPublished>() {
            self.on_event_published(envelope, envelope.decode()?).await
        } else {
            Ok(())
        }
    }
}
