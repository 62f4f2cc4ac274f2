//! Correlation IDs: accepted from `X-Correlation-ID` when well-formed (at most 128 characters of
//! `[A-Za-z0-9._-]`), generated otherwise, echoed on every response, and available to all code
//! running for the request through a task-local (error responses and audit records use it).

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use uuid::Uuid;

pub static HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

tokio::task_local! {
    static CURRENT: String;
}

/// The correlation ID of the request being served, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

pub fn is_well_formed(value: &str) -> bool {
    !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The request's correlation ID, stored in the request extensions by `middleware`.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_well_formed(v))
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let mut response = CURRENT.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER.clone(), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids_are_short_and_use_a_safe_alphabet() {
        assert!(is_well_formed("550e8400-e29b-41d4-a716-446655440000"));
        assert!(is_well_formed("req_1.2"));
        assert!(!is_well_formed(""));
        assert!(!is_well_formed(&"a".repeat(129)));
        assert!(!is_well_formed("bad id"));
        assert!(!is_well_formed("x\ny"));
    }
}
