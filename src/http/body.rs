//! Request bodies: refused at once when their declared length is over the limit (413, before a
//! byte of them is read), and read in full, within `HEALTHCORE_HTTP_BODY_TIMEOUT_MS`, before any
//! handler runs (408 for a client that sends too slowly). Every body this API takes is a small JSON
//! document, so holding it whole costs at most the limit per request, and the request deadline
//! then measures the server's work only.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body_util::BodyExt;

use super::problem::Problem;
use crate::error::ProblemCode;

#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub read_within: Duration,
}

/// An error answer after which the connection is closed: the rest of the body is never read.
fn closing(problem: Problem) -> Response {
    let mut response = problem.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn too_large(limit: usize) -> Response {
    closing(Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ProblemCode::PayloadTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    ))
}

pub async fn middleware(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_bytes as u64) {
        return too_large(limits.max_bytes);
    }
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    if declared.unwrap_or(0) == 0 && !chunked {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, limits.max_bytes);
    let read = match tokio::time::timeout(limits.read_within, limited.collect()).await {
        Err(_) => {
            return closing(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                ProblemCode::RequestTimeout,
                format!("the request body did not arrive within {} ms", limits.read_within.as_millis()),
            ));
        }
        Ok(read) => read,
    };
    match read {
        Ok(collected) => next.run(Request::from_parts(parts, Body::from(collected.to_bytes()))).await,
        Err(err) if err.is::<http_body_util::LengthLimitError>() => too_large(limits.max_bytes),
        Err(_) => closing(Problem::new(
            StatusCode::BAD_REQUEST,
            ProblemCode::BadRequest,
            "the request body could not be read",
        )),
    }
}
