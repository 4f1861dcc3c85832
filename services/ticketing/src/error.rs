//! Everything that can go wrong in ticketing, and how each answers over gRPC.

use std::collections::HashMap;

use eventhive_domain::rules::RuleError;
use eventhive_platform::{
    ErrorKind, FieldError,
    problem::{internal_status, status, validation_status},
};
use tonic::Status;

use crate::{faults::InjectedFault, saga::InvalidTransition};

#[derive(Debug, thiserror::Error)]
pub enum TicketingError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// Already checked in; carries the time of the first scan.
    #[error("the ticket was checked in at {0}")]
    AlreadyCheckedIn(String),
    #[error("{0}")]
    SoldOut(String),
    #[error("the hold on this order has expired")]
    HoldExpired,
    #[error("the payment was declined: {0}")]
    PaymentDeclined(String),
    /// An order for an event with a waiting room, without the buyer's valid admission.
    #[error("this event has a waiting room: {0}; join its queue and order once admitted")]
    AdmissionRequired(eventhive_domain::admission::Refusal),
    #[error("this idempotency key was used with another request")]
    IdempotencyKeyReused,
    #[error("{0}")]
    Unavailable(String),
    /// A payment attempt of the order runs, or ran with an outcome not known yet. A conflict
    /// for the caller, but never kept as an Idempotency-Key's answer: the retry of the request
    /// that started the attempt must get its outcome.
    #[error("a payment for this order is in progress; retry with the same Idempotency-Key for its outcome")]
    PaymentInFlight,
    /// A service we call answered with an error we pass on as it is.
    #[error("{}", .0.message())]
    Upstream(Status),
    #[error(transparent)]
    Fault(#[from] InjectedFault),
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<FieldError> for TicketingError {
    fn from(error: FieldError) -> Self {
        Self::Invalid(vec![error])
    }
}

/// A broken rule of the public contract is a field error like any other.
impl From<RuleError> for TicketingError {
    fn from(error: RuleError) -> Self {
        Self::Invalid(vec![FieldError::new(error.field, error.message)])
    }
}

impl From<sqlx::Error> for TicketingError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unexpected(error.into())
    }
}

impl TicketingError {
    /// The public kind, which also decides whether an idempotent answer is kept: everything
    /// but temporary failures is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::Validation,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Forbidden(_) => ErrorKind::Forbidden,
            Self::Conflict(_) | Self::AlreadyCheckedIn(_) | Self::Transition(_) | Self::PaymentInFlight => {
                ErrorKind::Conflict
            }
            Self::SoldOut(_) => ErrorKind::SoldOut,
            Self::HoldExpired => ErrorKind::HoldExpired,
            Self::PaymentDeclined(_) => ErrorKind::PaymentDeclined,
            Self::IdempotencyKeyReused => ErrorKind::IdempotencyKeyReused,
            Self::AdmissionRequired(_) => ErrorKind::AdmissionRequired,
            Self::Unavailable(_) | Self::Fault(_) => ErrorKind::Unavailable,
            Self::Upstream(status) => eventhive_platform::Problem::from_status(status).kind(),
            // The database down or restarting: try again (found by eventhive chaos,
            // database-restart, where purchases answered 500 for it).
            Self::Unexpected(error) if eventhive_platform::storage::is_unavailable_in(error) => ErrorKind::Unavailable,
            Self::Unexpected(_) => ErrorKind::Internal,
        }
    }
}

impl From<TicketingError> for Status {
    fn from(error: TicketingError) -> Self {
        let message = error.to_string();
        match error {
            TicketingError::Invalid(fields) => validation_status(fields),
            TicketingError::AlreadyCheckedIn(at) => {
                let mut extensions = HashMap::new();
                extensions.insert("checked_in_at".to_owned(), at);
                eventhive_platform::problem::status_with(ErrorKind::Conflict, message, &[], extensions)
            }
            TicketingError::Upstream(status) => status,
            TicketingError::Unexpected(error) if eventhive_platform::storage::is_unavailable_in(&error) => {
                tracing::warn!(error = format!("{error:#}"), "the database is unavailable");
                status(ErrorKind::Unavailable, "the database is unavailable; try again", &[])
            }
            TicketingError::Unexpected(error) => internal_status(&error),
            other => status(other.kind(), message, &[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_cannot_be_reached_is_unavailable_not_internal() {
        let error = TicketingError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert_eq!(Status::from(error).code(), tonic::Code::Unavailable);
        let wrapped = TicketingError::Unexpected(anyhow::Error::new(sqlx::Error::PoolClosed).context("holding"));
        assert_eq!(wrapped.kind(), ErrorKind::Unavailable);
        assert_eq!(TicketingError::from(sqlx::Error::RowNotFound).kind(), ErrorKind::Internal);
    }
}
