//! Everything that can go wrong in notifications' gRPC API, and how each answers.

use eventhive_platform::{
    ErrorKind, FieldError,
    problem::{internal_status, status, validation_status},
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("mail goes to an SMTP server (EVENTHIVE_SMTP_URL), so there is no dev inbox")]
    NoDevInbox,
    #[error("the dev inbox has no message with this id")]
    NoSuchMail,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for NotificationsError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unexpected(error.into())
    }
}

impl From<NotificationsError> for Status {
    fn from(error: NotificationsError) -> Self {
        let message = error.to_string();
        match error {
            NotificationsError::Invalid(fields) => validation_status(fields),
            // FAILED_PRECONDITION: the request is fine, the configuration is not for it.
            NotificationsError::NoDevInbox => status(ErrorKind::Conflict, message, &[]),
            NotificationsError::NoSuchMail => status(ErrorKind::NotFound, message, &[]),
            NotificationsError::Unexpected(error) => internal_status(&error),
        }
    }
}
