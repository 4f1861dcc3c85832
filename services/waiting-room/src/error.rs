//! Everything that can go wrong in the waiting room, and how each answers over gRPC.

use eventhive_platform::{
    ErrorKind, FieldError,
    problem::{internal_status, status, validation_status},
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum WaitingRoomError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// No such event, or one the caller may not see (ADR 0004: never 403 for what is unseen).
    #[error("no such event")]
    EventNotFound,
    #[error("the event has no waiting room")]
    NoRoom,
    #[error("you have not joined this event's queue")]
    NotJoined,
    #[error("only the organization's owner and admins manage its waiting room")]
    NotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// A service the answer depends on (catalog, ticketing) or the queue store did not answer.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for WaitingRoomError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unexpected(error.into())
    }
}

impl From<WaitingRoomError> for Status {
    fn from(error: WaitingRoomError) -> Self {
        let message = error.to_string();
        match error {
            WaitingRoomError::Invalid(fields) => validation_status(fields),
            WaitingRoomError::EventNotFound | WaitingRoomError::NoRoom | WaitingRoomError::NotJoined => {
                status(ErrorKind::NotFound, message, &[])
            }
            WaitingRoomError::NotAllowed => status(ErrorKind::Forbidden, message, &[]),
            WaitingRoomError::Conflict(_) => status(ErrorKind::Conflict, message, &[]),
            WaitingRoomError::Unavailable(_) => status(ErrorKind::Unavailable, message, &[]),
            WaitingRoomError::Unexpected(error) => internal_status(&error),
        }
    }
}
