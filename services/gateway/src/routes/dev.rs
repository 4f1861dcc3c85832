//! Dev mode's conveniences: the inbox of mail EventHive would have sent.

use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use eventhive_platform::{ErrorKind, Problem, grpc::request};
use eventhive_proto::notifications::{DevMail, GetDevMailRequest, ListDevMailRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{RequestId, answers};
use crate::{
    extract::{ApiQuery, PathId},
    state::AppState,
};

/// The inbox holds ticket codes: it exists only in dev mode, and only while mail is not sent
/// to an SMTP server.
fn inbox_available(state: &AppState) -> Result<(), Problem> {
    if state.settings.dev_mode { Ok(()) } else { Err(Problem::new(ErrorKind::NotFound, "no such route")) }
}

fn no_inbox(status: tonic::Status) -> Problem {
    let problem = Problem::from_status(&status);
    if problem.kind() == ErrorKind::Conflict {
        Problem::new(ErrorKind::NotFound, "the dev inbox is off: mail goes to EVENTHIVE_SMTP_URL")
    } else {
        problem
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DevMailParams {
    /// Only mail to this address.
    pub to: Option<String>,
}

/// How many of a recipient's messages the dev inbox lists, newest first.
pub const DEV_INBOX_LISTS: i64 = 200;

/// The dev inbox: mail EventHive would have sent, newest first. Only in dev mode
/// (`eventhive dev`) and without `EVENTHIVE_SMTP_URL`; otherwise 404.
#[utoipa::path(get, path = "/dev/mail", tag = "dev", params(DevMailParams),
    responses((status = 200, body = [DevMailDto]), answers::Always,
              (status = 404, description = "not-found: not in dev mode, or mail goes to an SMTP server", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "validation: a query parameter given twice, or `to` with control characters", body = Problem, content_type = "application/problem+json")))]
pub async fn dev_mail(
    State(state): State<AppState>,
    rid: RequestId,
    ApiQuery(params): ApiQuery<DevMailParams>,
) -> Result<Json<Vec<DevMailDto>>, Problem> {
    inbox_available(&state)?;
    let message = ListDevMailRequest { to: params.to.unwrap_or_default(), limit: DEV_INBOX_LISTS };
    let mail = state.notifications.clone().list_dev_mail(request(message, rid.as_deref())).await.map_err(no_inbox)?;
    Ok(Json(mail.into_inner().messages.into_iter().map(DevMailDto::from).collect()))
}

/// One message of the dev inbox as its HTML body, with its inline images (the tickets' QR
/// codes) embedded, to look at in a browser.
#[utoipa::path(get, path = "/dev/mail/{id}", tag = "dev", params(("id" = String, Path, format = Uuid, description = "message id")),
    responses((status = 200, description = "the message's HTML body", content_type = "text/html"), answers::Always,
              (status = 404, description = "not-found: no such message, not in dev mode, or mail goes to an SMTP server", body = Problem, content_type = "application/problem+json")))]
pub async fn dev_mail_page(
    State(state): State<AppState>,
    rid: RequestId,
    PathId(id): PathId<Uuid>,
) -> Result<Response, Problem> {
    inbox_available(&state)?;
    let message = state
        .notifications
        .clone()
        .get_dev_mail(request(GetDevMailRequest { id: id.to_string() }, rid.as_deref()))
        .await
        .map_err(no_inbox)?
        .into_inner();
    let mut html = message.html;
    for attachment in &message.attachments {
        if !attachment.content_id.is_empty() {
            let data = format!("data:{};base64,{}", attachment.content_type, STANDARD.encode(&attachment.content));
            html = html.replace(&format!("cid:{}", attachment.content_id), &data);
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

// Wire types.

#[derive(Debug, Serialize, ToSchema)]
pub struct DevMailAttachmentDto {
    pub filename: String,
    pub content_type: String,
    pub content_id: String,
    pub size: i64,
}

/// A message the dev inbox kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevMailDto {
    pub id: String,
    pub to: String,
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    pub html: String,
    pub kind: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub attachments: Vec<DevMailAttachmentDto>,
}

impl From<DevMail> for DevMailDto {
    fn from(m: DevMail) -> Self {
        Self {
            id: m.id,
            to: m.to,
            subject: m.subject,
            body: m.body,
            html: m.html,
            kind: m.kind,
            created_at: m.created_at,
            attachments: m
                .attachments
                .into_iter()
                .map(|a| DevMailAttachmentDto {
                    filename: a.filename,
                    content_type: a.content_type,
                    content_id: a.content_id,
                    size: a.size,
                })
                .collect(),
        }
    }
}
