//! One log line per request — method, route template, status, duration, user and role — inside a
//! span that carries the correlation ID (and the trace) into every log line written while serving
//! it. Never the raw path, query string or body: they may hold PHI.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::correlation::CorrelationId;
use crate::auth::Principal;
use crate::telemetry::metrics::UNMATCHED_ROUTE;
use crate::telemetry::traces;

/// Filled in by the authentication extractor so the access log can name the caller.
#[derive(Clone, Default)]
pub struct CallerSlot(pub Arc<OnceLock<Principal>>);

/// The route label for logs (and metrics): the matched template, or one constant for unmatched
/// paths so random URLs cannot create unbounded label values.
pub fn route_of(request: &Request) -> String {
    request.extensions().get::<MatchedPath>().map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned())
}

/// The request's span — the root of its trace, continuing the caller's `traceparent` if it sent a
/// well-formed one — and, unless `HEALTHCORE_ACCESS_LOG=false`, its access-log line.
pub async fn middleware(State(log_requests): State<bool>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = route_of(&request);
    let correlation_id = request.extensions().get::<CorrelationId>().map(|c| c.0.clone()).unwrap_or_default();
    let caller = CallerSlot::default();
    request.extensions_mut().insert(caller.clone());
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        correlation_id = %correlation_id,
        method = %method,
        route = %route,
    );
    traces::continue_trace(&span, request.headers().get("traceparent").and_then(|v| v.to_str().ok()));
    let recorded = traces::is_recorded(&span);
    if recorded {
        span.set_attribute("http.request.method", method.to_string());
        span.set_attribute("http.route", route.clone());
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    if recorded {
        span.set_attribute("http.response.status_code", i64::from(status));
        if status >= 500 {
            traces::mark_error(&span, "server error");
        }
    }
    if !log_requests {
        return response;
    }
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let principal = caller.0.get();
    let _entered = span.enter();
    tracing::info!(
        target: "healthcore::access",
        method = %method,
        route = %route,
        status,
        duration_ms = (duration_ms * 1000.0).round() / 1000.0,
        user_id = principal.map(|p| p.user_id.to_string()),
        role = principal.map(|p| p.role.as_str()),
        "request"
    );
    response
}
