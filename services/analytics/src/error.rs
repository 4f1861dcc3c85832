//! Everything that can go wrong in analytics, and how each answers over gRPC.

use std::collections::HashMap;

use eventhive_platform::{
    ErrorKind,
    problem::{internal_status, status, status_with},
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// Also for an id that is no event id: it names no event either.
    #[error("no such event")]
    EventNotFound,
    /// The event is public (it was announced on sale), so its existence is no secret.
    #[error("only the organization's owner, admins and staff see an event's analytics")]
    NotAllowed,
    /// A cap on open live streams (per user or per event, on this replica) is reached.
    #[error("too many live streams open per {per} (at most {limit})")]
    TooManyStreams { per: &'static str, limit: usize },
    /// An open stream's reader could not be re-checked for a while (identity unreachable).
    #[error("cannot confirm that the reader may still see the figures")]
    MembershipsUnavailable,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AnalyticsError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unexpected(error.into())
    }
}

impl From<AnalyticsError> for Status {
    fn from(error: AnalyticsError) -> Self {
        let message = error.to_string();
        match error {
            AnalyticsError::EventNotFound => status(ErrorKind::NotFound, message, &[]),
            AnalyticsError::NotAllowed => status(ErrorKind::Forbidden, message, &[]),
            AnalyticsError::TooManyStreams { per, limit } => {
                let extensions =
                    HashMap::from([("per".to_owned(), per.to_owned()), ("limit".to_owned(), limit.to_string())]);
                status_with(ErrorKind::RateLimited, message, &[], extensions)
            }
            AnalyticsError::MembershipsUnavailable => status(ErrorKind::Unavailable, message, &[]),
            AnalyticsError::Unexpected(error) => internal_status(&error),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn errors_answer_with_their_kind() {
        assert_eq!(Status::from(AnalyticsError::EventNotFound).code(), Code::NotFound);
        assert_eq!(Status::from(AnalyticsError::NotAllowed).code(), Code::PermissionDenied);
        let capped = Status::from(AnalyticsError::TooManyStreams { per: "user", limit: 2 });
        assert_eq!(capped.code(), Code::ResourceExhausted);
        assert_eq!(eventhive_platform::Problem::from_status(&capped).slug(), "rate-limited");
        let internal = Status::from(AnalyticsError::Unexpected(anyhow::anyhow!("disk on fire")));
        assert_eq!(internal.code(), Code::Internal);
        assert!(!internal.message().contains("fire"));
    }
}
