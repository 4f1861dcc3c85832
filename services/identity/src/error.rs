//! Everything that can go wrong in identity, and how each answers over gRPC.

use eventhive_platform::{
    ErrorKind, FieldError,
    problem::{internal_status, status, status_retry_after, validation_status},
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("an account with this email exists already")]
    EmailTaken,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("too many failed logins to this account; try again in a moment")]
    LoginDelayed { retry_after_ms: i64 },
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error("no such user")]
    UserNotFound,
    #[error("no such organization")]
    OrganizationNotFound,
    #[error("only the organization's owner and admins manage its members")]
    NotAllowed,
    #[error("{0} is a member of this organization already")]
    AlreadyMember(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<FieldError> for IdentityError {
    fn from(error: FieldError) -> Self {
        Self::Invalid(vec![error])
    }
}

impl From<sqlx::Error> for IdentityError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unexpected(error.into())
    }
}

impl From<IdentityError> for Status {
    fn from(error: IdentityError) -> Self {
        let message = error.to_string();
        match error {
            IdentityError::Invalid(fields) => validation_status(fields),
            IdentityError::EmailTaken | IdentityError::AlreadyMember(_) => status(ErrorKind::Conflict, message, &[]),
            IdentityError::InvalidCredentials | IdentityError::InvalidRefreshToken => {
                status(ErrorKind::Unauthorized, message, &[])
            }
            IdentityError::UserNotFound | IdentityError::OrganizationNotFound => {
                status(ErrorKind::NotFound, message, &[])
            }
            IdentityError::NotAllowed => status(ErrorKind::Forbidden, message, &[]),
            IdentityError::LoginDelayed { retry_after_ms } => status_retry_after(
                ErrorKind::RateLimited,
                message,
                std::time::Duration::from_millis(u64::try_from(retry_after_ms).unwrap_or(0)),
            ),
            IdentityError::Unexpected(error) => internal_status(&error),
        }
    }
}
