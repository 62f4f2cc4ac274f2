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
    Conflict { code: ProblemCode, detail: String },
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

macro_rules! problem_codes {
    ($($(#[$doc:meta])* $variant:ident = $slug:literal,)*) => {
        /// The closed set of problem `type`s the API answers with: one place names their wire
        /// slugs (`https://healthcore.dev/problems/<slug>`, listed in `docs/ERRORS.md`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemCode {
            $($(#[$doc])* $variant,)*
        }

        impl ProblemCode {
            pub const ALL: &[ProblemCode] = &[$(ProblemCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProblemCode::$variant => $slug,)*
                }
            }
        }
    };
}

problem_codes! {
    MalformedJson = "malformed-json",
    InvalidId = "invalid-id",
    BadRequest = "bad-request",
    Unauthorized = "unauthorized",
    Forbidden = "forbidden",
    NotFound = "not-found",
    MethodNotAllowed = "method-not-allowed",
    /// The practitioner or the patient already has an overlapping booked appointment.
    DoubleBooking = "double-booking",
    InactivePatient = "inactive-patient",
    InactivePractitioner = "inactive-practitioner",
    /// A patient user already holds the most future self-booked appointments allowed.
    BookingLimit = "booking-limit",
    LastAdmin = "last-admin",
    DuplicateUsername = "duplicate-username",
    InvalidTransition = "invalid-transition",
    DuplicateLicenceNumber = "duplicate-licence-number",
    IdempotencyKeyInUse = "idempotency-key-in-use",
    StaleVersion = "stale-version",
    RequestTimeout = "request-timeout",
    PayloadTooLarge = "payload-too-large",
    UriTooLong = "uri-too-long",
    HeadersTooLarge = "headers-too-large",
    UnsupportedMediaType = "unsupported-media-type",
    Validation = "validation",
    IdempotencyKeyReused = "idempotency-key-reused",
    TooManyAttempts = "too-many-attempts",
    Internal = "internal",
    Unavailable = "unavailable",
    Timeout = "timeout",
    Overloaded = "overloaded",
}

impl AppError {
    pub fn conflict(code: ProblemCode, detail: impl Into<String>) -> Self {
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
        AppError::conflict(ProblemCode::InvalidTransition, err.to_string())
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
