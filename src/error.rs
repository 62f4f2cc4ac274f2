//! The one error type of the application layer. Each variant maps to exactly one HTTP status and
//! problem `type` (see `http::problem`); constructors keep call sites short and uniform.

use sea_orm::DbErr;

use crate::domain::{FieldErrors, TransitionError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request body or query parsed but broke a rule: 422 with every invalid field.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// The request could not be parsed at all (malformed JSON, bad header): 400.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A rule that depends on other data: double booking, duplicate licence, invalid transition.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// `If-Match` named a version that is no longer current.
    #[error("the resource has changed since version {expected} was read")]
    PreconditionFailed { expected: i64 },
    /// An idempotency key was reused for a different request.
    #[error("{0}")]
    IdempotencyMismatch(String),
    /// This request's claim on its idempotency key was taken over (it outlived its lease): 409.
    #[error("another request with this Idempotency-Key took it over; retry it")]
    IdempotencyKeyInUse,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("you are not allowed to {0}")]
    Forbidden(&'static str),
    /// Too many attempts from this account or address (login throttling): 429 with `Retry-After`.
    #[error("too many attempts; retry in {retry_after_seconds} s")]
    TooManyAttempts { retry_after_seconds: u64 },
    /// The server sheds work it cannot take now without exceeding a bound (concurrent password
    /// hashes, connections): 503 with `Retry-After`; nothing was done.
    #[error("{detail}")]
    Overloaded { detail: &'static str, retry_after_seconds: u64 },
    /// The database could not be reached: 503, the client may retry.
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::Conflict { code, detail: detail.into() }
    }

    pub fn invalid(field: &str, rule: &str, message: impl Into<String>) -> Self {
        AppError::Validation(FieldErrors::single(field, rule, message))
    }
}

impl From<FieldErrors> for AppError {
    fn from(errors: FieldErrors) -> Self {
        AppError::Validation(errors)
    }
}

impl From<TransitionError> for AppError {
    fn from(err: TransitionError) -> Self {
        AppError::conflict("invalid-transition", err.to_string())
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        if crate::store::is_unavailable(&err) {
            AppError::Unavailable(err.into())
        } else {
            AppError::Internal(err.into())
        }
    }
}
