//! The notifications gRPC service: the dev inbox and the dead letters, for the gateway's
//! `GET /dev/mail` and for operators.

use std::collections::HashMap;

use eventhive_platform::{
    Database, FieldError,
    storage::{ms_to_rfc3339, now_ms},
};
use eventhive_proto::notifications::{
    Attachment, DeadLetter, DevMail, GetDevMailRequest, ListDeadLettersRequest, ListDeadLettersResponse,
    ListDevMailRequest, ListDevMailResponse, ReplayDeadLettersRequest, ReplayDeadLettersResponse, notifications_server,
};
use tonic::{Request, Response, Status};

use crate::{
    error::NotificationsError,
    sender::Sender,
    store::{self, DeliveryRow},
};

/// Mail listed when the request names no limit.
const DEFAULT_LIMIT: i64 = 100;
/// The most one answer lists.
const MAX_LIMIT: i64 = 1000;

type Result<T, E = NotificationsError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct NotificationsService {
    db: Database,
    /// Tells whether there is a dev inbox, and is woken when dead letters are queued again.
    sender: Sender,
}

impl NotificationsService {
    pub fn new(db: Database, sender: Sender) -> Self {
        Self { db, sender }
    }

    /// Mail the dev inbox kept, newest first.
    #[tracing::instrument(skip(self))]
    pub async fn dev_mail(&self, to: &str, limit: i64) -> Result<Vec<DevMail>> {
        if self.sender.uses_smtp() {
            return Err(NotificationsError::NoDevInbox);
        }
        let limit = if limit <= 0 { DEFAULT_LIMIT } else { limit.min(MAX_LIMIT) };
        let to = to.trim();
        // No address has control characters, and PostgreSQL refuses a NUL in text outright.
        if to.chars().any(char::is_control) {
            return Err(NotificationsError::Invalid(vec![FieldError::new(
                "to",
                "must not contain control characters",
            )]));
        }
        let mut conn = self.db.pool().acquire().await?;
        let rows = store::dev_inbox(&mut conn, to, limit).await?;
        let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
        let mut attachments: HashMap<String, Vec<Attachment>> = HashMap::new();
        for meta in store::attachment_metas(&mut conn, &ids).await? {
            attachments.entry(meta.delivery_id).or_default().push(Attachment {
                filename: meta.filename,
                content_type: meta.content_type,
                content_id: meta.content_id,
                size: meta.size,
                content: Vec::new(),
            });
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let attached = attachments.remove(&row.id).unwrap_or_default();
                dev_mail(row, attached)
            })
            .collect())
    }

    /// One message of the dev inbox, with its attachments' bytes (to show its QR codes).
    #[tracing::instrument(skip(self))]
    pub async fn dev_mail_message(&self, id: &str) -> Result<DevMail> {
        if self.sender.uses_smtp() {
            return Err(NotificationsError::NoDevInbox);
        }
        let mut conn = self.db.pool().acquire().await?;
        let row = store::dev_inbox_message(&mut conn, id).await?;
        let row = row.ok_or(NotificationsError::NoSuchMail)?;
        let attachments = store::attachments(&mut conn, &row.id)
            .await?
            .into_iter()
            .map(|a| Attachment {
                size: i64::try_from(a.data.len()).unwrap_or(i64::MAX),
                filename: a.filename,
                content_type: a.content_type,
                content_id: a.content_id,
                content: a.data,
            })
            .collect();
        Ok(dev_mail(row, attachments))
    }

    /// Deliveries that failed every attempt, oldest first.
    #[tracing::instrument(skip(self))]
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let rows = store::dead_letters(&self.db, MAX_LIMIT).await?;
        Ok(rows
            .into_iter()
            .map(|row| DeadLetter {
                delivery_id: row.id,
                to: row.recipient,
                subject: row.subject,
                kind: row.kind,
                attempts: row.attempts,
                last_error: row.last_error.unwrap_or_default(),
                created_at: ms_to_rfc3339(row.created_at),
            })
            .collect())
    }

    /// Queues dead deliveries again with a fresh set of attempts: all, or those named.
    #[tracing::instrument(skip(self))]
    pub async fn replay(&self, delivery_ids: &[String]) -> Result<u64> {
        let errors: Vec<FieldError> = delivery_ids
            .iter()
            .enumerate()
            .filter(|(_, id)| uuid::Uuid::parse_str(id).is_err())
            .map(|(index, _)| FieldError::new(format!("delivery_ids[{index}]"), "must be a delivery id (a UUID)"))
            .collect();
        if !errors.is_empty() {
            return Err(NotificationsError::Invalid(errors));
        }
        let replayed = store::replay_dead(&self.db, delivery_ids, now_ms()).await?;
        if replayed > 0 {
            tracing::info!(replayed, "dead letters queued again");
            self.sender.wake();
        }
        Ok(replayed)
    }
}

type Answer<T> = std::result::Result<Response<T>, Status>;

/// A delivery as the dev inbox shows it.
fn dev_mail(row: DeliveryRow, attachments: Vec<Attachment>) -> DevMail {
    DevMail {
        attachments,
        id: row.id,
        to: row.recipient,
        subject: row.subject,
        body: row.body_text,
        html: row.body_html,
        kind: row.kind,
        created_at: ms_to_rfc3339(row.created_at),
    }
}

#[tonic::async_trait]
impl notifications_server::Notifications for NotificationsService {
    async fn get_dev_mail(&self, request: Request<GetDevMailRequest>) -> Answer<DevMail> {
        Ok(Response::new(self.dev_mail_message(&request.into_inner().id).await?))
    }

    async fn list_dev_mail(&self, request: Request<ListDevMailRequest>) -> Answer<ListDevMailResponse> {
        let request = request.into_inner();
        Ok(Response::new(ListDevMailResponse { messages: self.dev_mail(&request.to, request.limit).await? }))
    }

    async fn list_dead_letters(&self, _request: Request<ListDeadLettersRequest>) -> Answer<ListDeadLettersResponse> {
        Ok(Response::new(ListDeadLettersResponse { dead_letters: self.dead_letters().await? }))
    }

    async fn replay_dead_letters(
        &self,
        request: Request<ReplayDeadLettersRequest>,
    ) -> Answer<ReplayDeadLettersResponse> {
        let replayed = self.replay(&request.into_inner().delivery_ids).await?;
        Ok(Response::new(ReplayDeadLettersResponse { replayed: i64::try_from(replayed).unwrap_or(i64::MAX) }))
    }
}
