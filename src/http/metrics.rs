//! Request metrics (counts, durations, sizes, in flight) by method, route template and status,
//! and the `/metrics` endpoint. Unmatched paths share one route label, so random URLs cannot
//! create series.

use std::sync::Arc;
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::telemetry::metrics::{Metrics, RequestLabels, RouteLabels, method_label};

/// Decrements the in-flight gauge however the request ends (a panic or a dropped connection too).
struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.http.in_flight.dec();
    }
}

pub async fn middleware(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = super::access_log::route_of(&request);
    let request_size =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
    metrics.http.in_flight.inc();
    let in_flight = InFlight(&metrics);
    let response = next.run(request).await;
    drop(in_flight);
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    let http = &metrics.http;
    let labels = RequestLabels { method, route: route.clone(), status };
    http.requests.get_or_create(&labels).inc();
    http.duration.get_or_create(&labels).observe(elapsed);
    let route_labels = RouteLabels { method, route };
    if route_labels.route.starts_with("/api/") {
        http.api_duration.get_or_create(&route_labels).observe(elapsed);
    }
    if let Some(size) = request_size {
        http.request_size.get_or_create(&route_labels).observe(size);
    }
    if let Some(size) = response.body().size_hint().exact() {
        http.response_size.get_or_create(&route_labels).observe(size as f64);
    }
    response
}

/// `GET /metrics`: the OpenMetrics text exposition.
pub async fn render(State(metrics): State<Arc<Metrics>>) -> Response {
    let mut response = metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
