//! How long `/metrics` takes to render with 100 routes' worth of series (goal: ≤ 10 ms).
//! `cargo bench --bench metrics_render`; prints one Markdown row for BENCHMARKS.md.
//!
//! The registry is filled as a busy instance's would be: 100 route templates, each answered with
//! three method/status pairs (every HTTP family), every table × operation of the statement
//! histograms, every event type through the consumer families.

use std::time::{Duration, Instant};

use healthcore::testing::events::EventType;
use healthcore::testing::telemetry::metrics::{
    ConsumerLabels, EventTypeLabels, Metrics, QueryLabels, RequestLabels, RouteLabels, classify_sql,
};

const ROUTES: usize = 100;
const RENDERS: usize = 200;

fn filled() -> Metrics {
    let metrics = Metrics::new();
    let http = &metrics.http;
    for route in 0..ROUTES {
        let route = format!("/api/v1/resource{route}/{{id}}");
        for (method, status) in [("GET", 200), ("GET", 404), ("POST", 201)] {
            let labels = RequestLabels { method, route: route.clone(), status };
            http.requests.get_or_create(&labels).inc();
            http.duration.get_or_create(&labels).observe(0.004);
            let route_labels = RouteLabels { method, route: route.clone() };
            http.api_duration.get_or_create(&route_labels).observe(0.004);
            http.request_size.get_or_create(&route_labels).observe(512.0);
            http.response_size.get_or_create(&route_labels).observe(2048.0);
        }
    }
    for table in ["patients", "practitioners", "appointments", "users", "audit_events", "outbox_events"] {
        for operation in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            let labels: QueryLabels = classify_sql(&format!("{operation} x FROM \"{table}\""));
            metrics.observe_query(&labels, Duration::from_micros(300), false);
        }
    }
    for event_type in EventType::ALL {
        metrics.events.outbox_written.get_or_create(&EventTypeLabels { event_type: event_type.as_str() }).inc();
        for group in ["analytics", "notifications", "integrations"] {
            let labels = ConsumerLabels { group, event_type: event_type.as_str(), outcome: "applied" };
            metrics.consumers.processed.get_or_create(&labels).inc();
        }
    }
    metrics
}

fn main() {
    let metrics = filled();
    let text = metrics.render();
    let series = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
    let mut times: Vec<Duration> = (0..RENDERS)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(metrics.render());
            started.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| series | bytes | renders | p50 ms | p99 ms | max ms |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {series} | {} | {RENDERS} | {:.2} | {:.2} | {:.2} |",
        text.len(),
        ms(times[RENDERS / 2]),
        ms(times[RENDERS * 99 / 100]),
        ms(times[RENDERS - 1])
    );
}
