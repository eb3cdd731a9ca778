//! The one error type of the HTTP API. Every error is answered as
//! `{"error": {"code", "message"}}` with a fitting status; failures of the service are
//! logged with their cause and answered with a generic 500 that reveals nothing.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use commands::CommandError;
use commands::error::Rejection;
use commands::throttle::ThrottleError;
use projections::ProjectionError;
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable, e.g. `invalid_credentials`.
    pub code: String,
    /// For people.
    pub message: String,
}

/// An error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is not well-formed (e.g. malformed JSON).
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// 401: no valid credentials.
    #[error("{1}")]
    Unauthorized(&'static str, String),
    /// 403: authenticated but not allowed.
    #[error("{1}")]
    Forbidden(&'static str, String),
    /// 404.
    #[error("{1}")]
    NotFound(&'static str, String),
    /// 409: conflicts with the current state.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// 412: the version the client read is stale.
    #[error("{1}")]
    PreconditionFailed(&'static str, String),
    /// 428: the request must say which version it read.
    #[error("{1}")]
    PreconditionRequired(&'static str, String),
    /// 410: no longer available.
    #[error("{1}")]
    Gone(&'static str, String),
    /// 502: an upstream service failed.
    #[error("{1}")]
    BadGateway(&'static str, String),
    /// 413.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 413, with a specific code.
    #[error("{1}")]
    TooLarge(&'static str, String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid.
    #[error("{1}")]
    Unprocessable(&'static str, String),
    /// 429, with `Retry-After`.
    #[error("too many attempts; retry after {} seconds", retry_after_secs(.0))]
    TooManyRequests(Duration),
    /// 429 with a specific code, and `Retry-After`.
    #[error("{message}; retry after {seconds} seconds", message = .1, seconds = retry_after_secs(.2))]
    RateLimited(&'static str, String, Duration),
    /// 503 `busy` with `Retry-After`: too much work of this kind runs now.
    #[error("{0}")]
    Busy(String),
    /// 503: the change was made but is not visible yet, or a dependency is down.
    #[error("{1}")]
    Unavailable(&'static str, String),
    /// 500: logged, never detailed to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

fn retry_after_secs(wait: &Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl ApiError {
    /// A 422 about one field.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> Self {
        Self::Unprocessable("validation_failed", format!("{field}: {message}"))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(code, _) => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized(code, _) => (StatusCode::UNAUTHORIZED, code),
            Self::Forbidden(code, _) => (StatusCode::FORBIDDEN, code),
            Self::NotFound(code, _) => (StatusCode::NOT_FOUND, code),
            Self::PreconditionFailed(code, _) => (StatusCode::PRECONDITION_FAILED, code),
            Self::PreconditionRequired(code, _) => (StatusCode::PRECONDITION_REQUIRED, code),
            Self::Conflict(code, _) => (StatusCode::CONFLICT, code),
            Self::Gone(code, _) => (StatusCode::GONE, code),
            Self::BadGateway(code, _) => (StatusCode::BAD_GATEWAY, code),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::TooLarge(code, _) => (StatusCode::PAYLOAD_TOO_LARGE, code),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Unprocessable(code, _) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            Self::RateLimited(code, ..) => (StatusCode::TOO_MANY_REQUESTS, code),
            Self::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::Unavailable(code, _) => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

/// An error response with `code` and `message`.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.into(),
        },
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "an internal error occurred".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = error_response(status, code, message);
        match &self {
            Self::TooManyRequests(wait) | Self::RateLimited(_, _, wait) => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(wait).max(1)),
                );
            }
            Self::Busy(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            Self::Unauthorized(..) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<ThrottleError> for ApiError {
    fn from(error: ThrottleError) -> Self {
        match error {
            ThrottleError::Wait(wait) => Self::TooManyRequests(wait),
            ThrottleError::Database(cause) => Self::Internal(cause.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Invalid { field, message } => Self::invalid(field, message),
            CommandError::WeakPassword(problems) => Self::Unprocessable(
                "weak_password",
                format!(
                    "the password {}",
                    problems
                        .iter()
                        .map(|p| p.message())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ),
            CommandError::EmailTaken => Self::Conflict(
                "email_taken",
                "this e-mail address is already registered".into(),
            ),
            CommandError::InvalidCredentials => {
                Self::Unauthorized("invalid_credentials", "invalid e-mail or password".into())
            }
            CommandError::WrongPassword => Self::Forbidden(
                "invalid_current_password",
                "the current password is wrong".into(),
            ),
            CommandError::SecondFactorRequired => Self::Unauthorized(
                "totp_required",
                "two-factor authentication is on: send totp_code or recovery_code".into(),
            ),
            CommandError::InvalidSecondFactor => Self::Unauthorized(
                "invalid_second_factor",
                "the two-factor code is wrong, expired or already used".into(),
            ),
            CommandError::ReauthenticationRequired => Self::Forbidden(
                "reauthentication_required",
                "confirm your password (and code) with POST /auth/reauthenticate first".into(),
            ),
            CommandError::SessionNotFound => {
                Self::NotFound("session_not_found", "no such session".into())
            }
            CommandError::AccountNotFound => {
                Self::NotFound("account_not_found", "no such account".into())
            }
            CommandError::InsufficientCredits {
                available,
                requested,
            } => Self::Conflict(
                "insufficient_credits",
                format!("{requested} credits needed, {available} available"),
            ),
            CommandError::Rejected {
                kind,
                code,
                message,
            } => match kind {
                // Refused because of the hold (the state), not the request: like the
                // balance of `insufficient_credits`, a conflict.
                Rejection::Invalid if code == "exceeds_hold" => Self::Conflict(code, message),
                Rejection::NotFound => Self::NotFound(code, message),
                Rejection::Forbidden => Self::Forbidden(code, message),
                Rejection::PreconditionFailed => Self::PreconditionFailed(code, message),
                Rejection::Conflict => Self::Conflict(code, message),
                Rejection::Invalid => Self::Unprocessable(code, message),
                Rejection::Gone => Self::Gone(code, message),
                Rejection::TooLarge => Self::TooLarge(code, message),
                Rejection::Unsupported => Self::UnsupportedMediaType(message),
                // Work of this kind is saturated: the client may retry shortly.
                Rejection::Unavailable if code == "busy" => Self::Busy(message),
                Rejection::Unavailable => Self::Unavailable(code, message),
            },
            CommandError::TooSoon {
                code,
                message,
                retry_after,
            } => Self::RateLimited(code, message, retry_after),
            CommandError::PaymentProvider(cause) => {
                tracing::error!(%cause, "payment provider failed");
                Self::BadGateway(
                    "payment_provider_unavailable",
                    "the payment provider did not answer; try again".into(),
                )
            }
            CommandError::Contention => Self::Conflict(
                "concurrent_modification",
                "the account is being changed by another request; try again".into(),
            ),
            other @ (CommandError::Store(_)
            | CommandError::Codec(_)
            | CommandError::Crypto(_)
            | CommandError::Password(_)
            | CommandError::Internal(_)) => Self::Internal(other.to_string()),
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(error: ProjectionError) -> Self {
        match error {
            ProjectionError::Lagging { .. } => Self::Unavailable(
                "projection_lag",
                "the change was saved but is not visible yet; retry in a moment".into(),
            ),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<commands::idempotency::IdempotencyError> for ApiError {
    fn from(error: commands::idempotency::IdempotencyError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<projections::credits::CardError> for ApiError {
    fn from(error: projections::credits::CardError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(format!("database: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_reach_the_client() {
        let response =
            ApiError::Internal("password=hunter2 at db.internal:5432".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = futures_body(response);
        assert!(!body.contains("hunter2"));
        assert!(body.contains("internal_error"));
    }

    #[test]
    fn retry_after_rounds_up() {
        let response = ApiError::TooManyRequests(Duration::from_millis(1500)).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    fn futures_body(response: Response) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
