//! Errors as the outside world sees them. One [`ErrorKind`] list is shared by every service:
//! a service turns its error into a gRPC [`Status`] carrying the kind's stable slug (in an
//! `ErrorInfo` detail) and field errors (in a `BadRequest` detail); the gateway turns that
//! status back into an RFC 9457 problem+json answer. The slug is the last path segment of the
//! problem `type`, so clients can rely on it.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://eventhive.dev/problems/";
/// The gRPC `ErrorInfo.domain` EventHive errors carry.
const ERROR_DOMAIN: &str = "eventhive";

/// Every kind of error a client can get, with its HTTP status and stable slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Validation,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    SoldOut,
    HoldExpired,
    PayloadTooLarge,
    UnsupportedMediaType,
    IdempotencyKeyReused,
    PaymentDeclined,
    /// An order for an event with a waiting room, without the buyer's valid admission.
    AdmissionRequired,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorKind {
    const ALL: [ErrorKind; 17] = [
        Self::BadRequest,
        Self::Validation,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::SoldOut,
        Self::HoldExpired,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::IdempotencyKeyReused,
        Self::PaymentDeclined,
        Self::AdmissionRequired,
        Self::RateLimited,
        Self::Unavailable,
        Self::Internal,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Validation => "validation",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict => "conflict",
            Self::SoldOut => "sold-out",
            Self::HoldExpired => "hold-expired",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::PaymentDeclined => "payment-declined",
            Self::AdmissionRequired => "admission-required",
            Self::RateLimited => "rate-limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.slug() == slug)
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Validation | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::AdmissionRequired => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::SoldOut | Self::HoldExpired => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PaymentDeclined => StatusCode::PAYMENT_REQUIRED,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad request",
            Self::Validation => "Validation failed",
            Self::Unauthorized => "Authentication required",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict",
            Self::SoldOut => "Sold out",
            Self::HoldExpired => "Hold expired",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::IdempotencyKeyReused => "Idempotency key reused",
            Self::PaymentDeclined => "Payment declined",
            Self::AdmissionRequired => "Admission required",
            Self::RateLimited => "Too many requests",
            Self::Unavailable => "Service unavailable",
            Self::Internal => "Internal error",
        }
    }

    fn grpc_code(self) -> Code {
        match self {
            Self::BadRequest | Self::Validation | Self::IdempotencyKeyReused => Code::InvalidArgument,
            Self::Unauthorized => Code::Unauthenticated,
            Self::Forbidden | Self::AdmissionRequired => Code::PermissionDenied,
            Self::NotFound => Code::NotFound,
            Self::Conflict | Self::SoldOut | Self::HoldExpired | Self::PaymentDeclined => Code::FailedPrecondition,
            Self::MethodNotAllowed | Self::UnsupportedMediaType => Code::Unimplemented,
            Self::PayloadTooLarge | Self::RateLimited => Code::ResourceExhausted,
            Self::Unavailable => Code::Unavailable,
            Self::Internal => Code::Internal,
        }
    }

    /// The kind for a status that carries no EventHive detail (a transport error, a deadline).
    fn from_grpc_code(code: Code) -> Self {
        match code {
            Code::InvalidArgument | Code::OutOfRange => Self::Validation,
            Code::Unauthenticated => Self::Unauthorized,
            Code::PermissionDenied => Self::Forbidden,
            Code::NotFound => Self::NotFound,
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => Self::Conflict,
            Code::ResourceExhausted => Self::RateLimited,
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Self::Unavailable,
            // No service of ours answers UNKNOWN (each answers with its error's kind); tonic
            // does when the connection breaks before the answer, as when the callee dies
            // mid-call. The caller may try again, so 503 with Retry-After, not 500.
            Code::Unknown => Self::Unavailable,
            _ => Self::Internal,
        }
    }
}

/// One invalid field of a request, `field` a path such as `items[0].quantity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// The RFC 9457 body every error answer carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Members a kind of problem adds (RFC 9457 extensions), e.g. `checked_in_at`.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extensions: std::collections::BTreeMap<String, String>,
    /// Seconds to wait before trying again (429, 503); sent as the `Retry-After` header too.
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after_secs: Option<u64>,
}

impl Problem {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{PROBLEM_BASE}{}", kind.slug()),
            title: kind.title().to_owned(),
            status: kind.status().as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            extensions: std::collections::BTreeMap::new(),
            retry_after_secs: match kind {
                ErrorKind::Unavailable => Some(1),
                _ => None,
            },
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// One invalid field.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let error = FieldError::new(field, message);
        Self::new(ErrorKind::Validation, format!("{}: {}", error.field, error.message)).with_errors(vec![error])
    }

    /// The slug of `type`.
    pub fn slug(&self) -> &str {
        self.type_uri.rsplit('/').next().unwrap_or_default()
    }

    pub fn kind(&self) -> ErrorKind {
        ErrorKind::from_slug(self.slug()).unwrap_or(ErrorKind::Internal)
    }

    /// Translates a service's gRPC answer back into what the public API promises.
    pub fn from_status(status: &Status) -> Self {
        let details = status.get_error_details();
        let info = details.error_info().filter(|info| info.domain == ERROR_DOMAIN);
        let kind = info
            .and_then(|info| ErrorKind::from_slug(&info.reason))
            .unwrap_or_else(|| ErrorKind::from_grpc_code(status.code()));
        let extensions = info.map(|info| info.metadata.clone().into_iter().collect()).unwrap_or_default();
        let errors = details
            .bad_request()
            .map(|bad| {
                bad.field_violations.iter().map(|v| FieldError::new(v.field.clone(), v.description.clone())).collect()
            })
            .unwrap_or_default();
        let detail = match kind {
            // Never leak internals of a failed service to the public.
            ErrorKind::Internal => "something went wrong on our side".to_owned(),
            ErrorKind::Unavailable if status.message().is_empty() => "a service is unavailable".to_owned(),
            ErrorKind::Unavailable => format!("a service is unavailable: {}", status.message()),
            _ => status.message().to_owned(),
        };
        if kind == ErrorKind::Internal || kind == ErrorKind::Unavailable {
            tracing::error!(code = ?status.code(), message = status.message(), "upstream service failed");
        }
        let mut problem = Problem::new(kind, detail).with_errors(errors);
        problem.extensions = extensions;
        if let Some(delay) = details.retry_info().and_then(|info| info.retry_delay) {
            problem = problem.with_retry_after(delay.as_secs_f64().ceil().max(1.0) as u64);
        }
        problem
    }
}

impl From<Status> for Problem {
    fn from(status: Status) -> Self {
        Problem::from_status(&status)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after_secs;
        let mut response = (status, axum::Json(&self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Builds the status a service answers for an error of `kind`.
pub fn status(kind: ErrorKind, message: impl Into<String>, field_errors: &[FieldError]) -> Status {
    status_with(kind, message, field_errors, std::collections::HashMap::new())
}

/// Like [`status`], with extension members for the problem answer.
pub fn status_with(
    kind: ErrorKind,
    message: impl Into<String>,
    field_errors: &[FieldError],
    extensions: std::collections::HashMap<String, String>,
) -> Status {
    let mut details = ErrorDetails::with_error_info(kind.slug(), ERROR_DOMAIN, extensions);
    for error in field_errors {
        details.add_bad_request_violation(error.field.clone(), error.message.clone());
    }
    Status::with_error_details(kind.grpc_code(), message, details)
}

/// A status that tells the caller when to try again; the gateway's answer carries it as
/// `Retry-After`.
pub fn status_retry_after(kind: ErrorKind, message: impl Into<String>, retry_after: std::time::Duration) -> Status {
    let mut details = ErrorDetails::with_error_info(kind.slug(), ERROR_DOMAIN, std::collections::HashMap::new());
    details.set_retry_info(Some(retry_after));
    Status::with_error_details(kind.grpc_code(), message, details)
}

/// The status for an unexpected failure: the cause chain is logged here, never sent.
pub fn internal_status(error: &anyhow::Error) -> Status {
    tracing::error!(error = format!("{error:#}"), "unexpected error");
    status(ErrorKind::Internal, "internal error", &[])
}

/// A status for invalid fields.
pub fn validation_status(field_errors: Vec<FieldError>) -> Status {
    let message = field_errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
    status(ErrorKind::Validation, message, &field_errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slug_maps_back_to_its_kind() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_slug(kind.slug()), Some(kind));
        }
    }

    #[test]
    fn a_status_round_trips_into_the_same_problem() {
        let status = status(ErrorKind::SoldOut, "only 2 left", &[FieldError::new("items[0].quantity", "too many")]);
        let problem = Problem::from_status(&status);
        assert_eq!(problem.slug(), "sold-out");
        assert_eq!(problem.status, 409);
        assert_eq!(problem.detail, "only 2 left");
        assert_eq!(problem.errors, vec![FieldError::new("items[0].quantity", "too many")]);
    }

    #[test]
    fn extensions_travel_from_the_service_to_the_problem() {
        let mut extensions = std::collections::HashMap::new();
        extensions.insert("checked_in_at".to_owned(), "2027-06-01T19:31:00Z".to_owned());
        let problem = Problem::from_status(&status_with(ErrorKind::Conflict, "in already", &[], extensions));
        assert_eq!(problem.extensions["checked_in_at"], "2027-06-01T19:31:00Z");
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(json["checked_in_at"], "2027-06-01T19:31:00Z");
    }

    #[test]
    fn internal_details_never_leak() {
        let problem = Problem::from_status(&Status::internal("password of db is hunter2"));
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("hunter2"));
    }

    /// What tonic reports when the connection breaks before the answer (the callee killed
    /// mid-call, found by `eventhive chaos`): the buyer should be told to try again, not 500.
    #[test]
    fn a_call_cut_mid_way_is_503_with_retry_after() {
        let problem = Problem::from_status(&Status::unknown("transport error"));
        assert_eq!(problem.status, 503);
        assert_eq!(problem.retry_after_secs, Some(1));
        // A service's own answer keeps its kind, whatever its code.
        let answered = Problem::from_status(&status(ErrorKind::Internal, "bug", &[]));
        assert_eq!(answered.status, 500);
    }

    #[test]
    fn transport_failures_are_503_with_retry_after() {
        let problem = Problem::from_status(&Status::unavailable("connection refused"));
        assert_eq!(problem.status, 503);
        assert_eq!(problem.retry_after_secs, Some(1));
    }
}
