//! The request deadline (`HEALTHCORE_REQUEST_TIMEOUT_MS`): a request that has not produced its
//! response in time is answered 503 `timeout`, and the work behind it is dropped. Every database
//! round trip has a deadline of its own; this one bounds their sum, the waits for the audit writer
//! and for a password-hashing slot, and anything a future change forgets to bound. Work dropped
//! mid-transaction rolls back; a commit cut off before its answer may have happened (the client
//! retries with the same `Idempotency-Key`).

use std::time::Duration;

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::problem::{Problem, with_retry_after};
use crate::error::ProblemCode;

pub async fn middleware(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit_ms = limit.as_millis() as u64, "request did not complete in time");
            let detail = format!("the request did not complete within {} ms; retry later", limit.as_millis());
            with_retry_after(
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, ProblemCode::Timeout, detail).into_response(),
                1,
            )
        }
    }
}
