//! Everything that can go wrong in payments, and how each answers over gRPC. A declined card is
//! not here: it is an answer (a payment with status "declined"), not an error.

use eventhive_platform::{
    ErrorKind, FieldError,
    problem::{internal_status, status, validation_status},
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Another charge of the order is in flight with a different card, or could not be settled.
    #[error("a charge for this order is in progress")]
    ChargeInProgress,
    #[error("this idempotency key was used for a different charge")]
    IdempotencyKeyReused,
    #[error("this order was never charged")]
    NeverCharged,
    #[error("this order has no captured payment to refund")]
    NothingToRefund,
    /// Transient failures outlasted the retries. What happened at the processor is unknown, so
    /// the payment stays pending until the next charge of the order settles it, or
    /// `GetPaymentForOrder` does by a lookup at the processor once the settle delay has passed.
    #[error("the card processor is unavailable, try again later")]
    ProcessorUnavailable,
    /// The processor refused the call outright; the charge is declined with `processing_error`.
    #[error("the card processor could not process this payment")]
    ProcessorRefused,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<Vec<FieldError>> for PaymentsError {
    fn from(errors: Vec<FieldError>) -> Self {
        Self::Invalid(errors)
    }
}

impl From<FieldError> for PaymentsError {
    fn from(error: FieldError) -> Self {
        Self::Invalid(vec![error])
    }
}

impl From<sqlx::Error> for PaymentsError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unexpected(error.into())
    }
}

impl From<PaymentsError> for Status {
    fn from(error: PaymentsError) -> Self {
        let message = error.to_string();
        match error {
            PaymentsError::Invalid(fields) => validation_status(fields),
            PaymentsError::ChargeInProgress => status(ErrorKind::Conflict, message, &[]),
            PaymentsError::IdempotencyKeyReused => status(ErrorKind::IdempotencyKeyReused, message, &[]),
            PaymentsError::NeverCharged | PaymentsError::NothingToRefund => status(ErrorKind::NotFound, message, &[]),
            PaymentsError::ProcessorUnavailable | PaymentsError::ProcessorRefused => {
                status(ErrorKind::Unavailable, message, &[])
            }
            PaymentsError::Unexpected(error) => internal_status(&error),
        }
    }
}
