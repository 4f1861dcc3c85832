//! Everything that can go wrong in catalog, and how each answers over gRPC.

use eventhive_platform::{
    ErrorKind, FieldError,
    problem::{internal_status, status, validation_status},
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Absent, or a draft of an organization the caller is not in.
    #[error("no such event")]
    EventNotFound,
    /// An organization the caller is not in, named as a new event's (API.md: 404, not 422).
    #[error("no such organization")]
    OrganizationNotFound,
    /// Not a ticket type of the event named with it.
    #[error("no such ticket type")]
    TicketTypeNotFound,
    #[error("only the organization's owner and admins manage its events")]
    NotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// A service the change must reach first (ticketing) did not answer; nothing changed.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<FieldError> for CatalogError {
    fn from(error: FieldError) -> Self {
        Self::Invalid(vec![error])
    }
}

impl From<sqlx::Error> for CatalogError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unexpected(error.into())
    }
}

impl From<CatalogError> for Status {
    fn from(error: CatalogError) -> Self {
        let message = error.to_string();
        match error {
            CatalogError::Invalid(fields) => validation_status(fields),
            CatalogError::EventNotFound | CatalogError::OrganizationNotFound | CatalogError::TicketTypeNotFound => {
                status(ErrorKind::NotFound, message, &[])
            }
            CatalogError::NotAllowed => status(ErrorKind::Forbidden, message, &[]),
            CatalogError::Conflict(_) => status(ErrorKind::Conflict, message, &[]),
            CatalogError::Unavailable(_) => status(ErrorKind::Unavailable, message, &[]),
            CatalogError::Unexpected(error) => internal_status(&error),
        }
    }
}
