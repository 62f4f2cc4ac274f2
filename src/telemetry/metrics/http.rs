//! The HTTP server's metrics: requests, their duration and sizes, connections.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::{Histograms, latency_histogram, metric_group};

/// The route label of requests that matched no route: one value, whatever the path.
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `header` (the request head came too slowly) or `idle` (nothing came).
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: u16,
}

fn size_histogram() -> Histogram {
    // 64 B … 1 MiB.
    Histogram::new(exponential_buckets(64.0, 4.0, 8))
}

metric_group! {
    pub struct HttpMetrics {
        /// HTTP requests by method, route template and status
        "http_requests" requests: Family<RequestLabels, Counter> = Family::default(),
        /// HTTP request duration by method, route template and status
        "http_request_duration_seconds" duration: Histograms<RequestLabels> = Family::new_with_constructor(latency_histogram),
        /// API request duration by method and route template (the ADR's api_request_duration_seconds)
        "api_request_duration_seconds" api_duration: Histograms<RouteLabels> = Family::new_with_constructor(latency_histogram),
        /// HTTP requests being served
        "http_requests_in_flight" in_flight: Gauge = Gauge::default(),
        /// Open client connections
        "http_connections" connections: Gauge = Gauge::default(),
        /// Connections refused because HEALTHCORE_HTTP_MAX_CONNECTIONS were open
        "http_connections_refused" connections_refused: Counter = Counter::default(),
        /// Connections closed for sending a request head too slowly (phase header) or nothing at all (phase idle)
        "http_connection_timeouts" connection_timeouts: Family<PhaseLabels, Counter> = Family::default(),
        /// Requests the HTTP parser refused before routing, by status
        "http_malformed_requests" malformed_requests: Family<StatusLabels, Counter> = Family::default(),
        /// HTTP request body size (Content-Length) by method and route template
        "http_request_size_bytes" request_size: Histograms<RouteLabels> = Family::new_with_constructor(size_histogram),
        /// HTTP response body size by method and route template, when known
        "http_response_size_bytes" response_size: Histograms<RouteLabels> = Family::new_with_constructor(size_histogram),
    }
}
