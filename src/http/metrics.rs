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

use crate::shutdown::Shutdown;
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

/// What `/metrics` serves and whom: the registry, and the bearer token it requires, if any.
#[derive(Clone)]
pub struct Exposition {
    pub metrics: Arc<Metrics>,
    pub token: Option<Arc<str>>,
}

/// Whether the request carries the configured token (compared in constant time).
fn authorized(token: Option<&str>, headers: &axum::http::HeaderMap) -> bool {
    let Some(expected) = token else { return true };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    presented.len() == expected.len()
        && presented.bytes().zip(expected.bytes()).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// `GET /metrics`: OpenMetrics text (what Prometheus asks for), or the classic Prometheus text
/// format for clients that do not accept OpenMetrics (`promtool check metrics`, older scrapers).
pub async fn render(State(exposition): State<Exposition>, headers: axum::http::HeaderMap) -> Response {
    if !authorized(exposition.token.as_deref(), &headers) {
        return crate::http::problem::Problem::new(
            axum::http::StatusCode::UNAUTHORIZED,
            crate::error::ProblemCode::Unauthorized,
            "/metrics requires the configured bearer token",
        )
        .into_response();
    }
    let metrics = exposition.metrics;
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|accept| accept.contains("application/openmetrics-text") || accept.contains("*/*"));
    let text = metrics.render();
    let (body, content_type) = if openmetrics {
        (text, "application/openmetrics-text; version=1.0.0; charset=utf-8")
    } else {
        (classic_text(&text), "text/plain; version=0.0.4; charset=utf-8")
    };
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// OpenMetrics text as the classic Prometheus text format: a counter family is named with its
/// `_total` suffix in `HELP` and `TYPE`, and there is no `# EOF` or `# UNIT`.
pub fn classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line.starts_with("# HELP ") {
            help = Some(line);
            continue;
        }
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let name = if kind == "counter" { format!("{name}_total") } else { name.to_owned() };
            if let Some(help_line) = help.take() {
                let text = help_line.splitn(4, ' ').nth(3).unwrap_or_default();
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A listener of its own that serves only `/metrics` (`HEALTHCORE_METRICS_ADDR`), until `shutdown`,
/// with the API's connection limits.
pub async fn serve_separately(
    listener: tokio::net::TcpListener,
    exposition: Exposition,
    limits: super::server::ConnectionLimits,
    mut shutdown: Shutdown,
) {
    let metrics = exposition.metrics.clone();
    let app = axum::Router::new().route("/metrics", axum::routing::get(render)).with_state(exposition);
    let stopped = async move {
        shutdown.recv().await;
    };
    super::server::serve(listener, app, limits, metrics, stopped).await;
}
