//! RFC 9457 problem details: every 4xx and 5xx the API sends has this shape.
//!
//! `type` URIs are stable identifiers (`https://healthcore.dev/problems/<slug>`), documented in
//! `docs/ERRORS.md`; clients switch on them, not on `detail`, which is for humans.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::correlation;
use crate::domain::FieldError;
use crate::error::{AppError, ProblemCode};

pub const CONTENT_TYPE: &str = "application/problem+json";
const TYPE_BASE: &str = "https://healthcore.dev/problems/";

#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({
    "type": "https://healthcore.dev/problems/validation",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "the request has invalid fields: birth_date",
    "correlation_id": "0b6c2f4e-7a51-4e0f-9d3c-1f2a3b4c5d6e",
    "errors": [{"field": "birth_date", "rule": "not_in_future", "message": "must not be in the future"}]
})))]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request's correlation ID (also in the `X-Correlation-ID` header), for support and logs.
    pub correlation_id: Option<String>,
    /// For validation problems: every invalid field and the rule it broke.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// What `problem_type` names, for the middleware that audits the response.
    #[serde(skip)]
    code: ProblemCode,
}

impl Problem {
    pub fn new(status: StatusCode, code: ProblemCode, detail: impl Into<String>) -> Self {
        Problem {
            problem_type: format!("{TYPE_BASE}{}", code.as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            correlation_id: correlation::current(),
            errors: Vec::new(),
            code,
        }
    }
}

/// The `type` of a problem response, kept in its extensions for the middleware that audits it.
#[derive(Debug, Clone, Copy)]
pub struct ProblemType(pub ProblemCode);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.extensions_mut().insert(ProblemType(self.code));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Adds `Retry-After` (seconds) to a response.
pub fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            AppError::TooManyAttempts { retry_after_seconds } => Some(*retry_after_seconds),
            AppError::Overloaded { retry_after_seconds, .. } => Some(*retry_after_seconds),
            AppError::Unavailable(_) => Some(1),
            _ => None,
        };
        let problem = match self {
            AppError::Validation(errors) => {
                let mut problem =
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::Validation, describe_fields(&errors.0));
                problem.errors = errors.0;
                problem
            }
            AppError::BadRequest(detail) => Problem::new(StatusCode::BAD_REQUEST, ProblemCode::BadRequest, detail),
            AppError::NotFound(what) => {
                Problem::new(StatusCode::NOT_FOUND, ProblemCode::NotFound, format!("no {what} with this id"))
            }
            AppError::Conflict { code, detail } => Problem::new(StatusCode::CONFLICT, code, detail),
            err @ AppError::PreconditionFailed { .. } => {
                Problem::new(StatusCode::PRECONDITION_FAILED, ProblemCode::StaleVersion, err.to_string())
            }
            err @ AppError::IdempotencyKeyInUse => {
                Problem::new(StatusCode::CONFLICT, ProblemCode::IdempotencyKeyInUse, err.to_string())
            }
            AppError::IdempotencyMismatch(detail) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::IdempotencyKeyReused, detail)
            }
            AppError::Unauthorized(detail) => Problem::new(StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized, detail),
            err @ AppError::Forbidden(_) => {
                Problem::new(StatusCode::FORBIDDEN, ProblemCode::Forbidden, err.to_string())
            }
            err @ AppError::TooManyAttempts { .. } => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, ProblemCode::TooManyAttempts, err.to_string())
            }
            AppError::Overloaded { detail, .. } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, ProblemCode::Overloaded, detail)
            }
            AppError::Unavailable(err) => {
                tracing::error!(error = format!("{err:#}"), "database unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::Unavailable,
                    "the service is temporarily unavailable; retry later",
                )
            }
            AppError::Internal(err) => {
                // Logged once, here, with the correlation ID from the request span; the client
                // gets the ID and nothing of the internals.
                tracing::error!(error = format!("{err:#}"), "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ProblemCode::Internal,
                    "an internal error occurred; quote the correlation ID when reporting it",
                )
            }
        };
        match retry_after {
            Some(seconds) => with_retry_after(problem.into_response(), seconds),
            None => problem.into_response(),
        }
    }
}

fn describe_fields(errors: &[FieldError]) -> String {
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    format!("the request has invalid fields: {}", fields.join(", "))
}
