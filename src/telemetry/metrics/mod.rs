//! The application's Prometheus metrics: one registry per `Metrics`, created by `app` and handed
//! to every part (the store reports into it as its `StoreObserver`), never a global one — parallel
//! tests assert exact values. Labels come only from closed sets: route templates (unmatched paths
//! share one value), methods, status codes, event types, topics, consumer groups, outcomes.
//! `docs/OBSERVABILITY.md` lists every metric.
//!
//! Each metric is declared once, in its concern's file, by `metric_group!`: name, HELP text (the
//! doc comment), type with its labels, and how it is built (its buckets). `http.rs` the server's,
//! `domain.rs` what the use cases did, `events.rs` the outbox, relay and consumers', `store.rs` the
//! database's, the audit writer's and the caches', `jobs.rs` the background jobs'.

mod domain;
mod events;
mod http;
mod jobs;
mod store;

pub use domain::*;
pub use events::*;
pub use http::*;
pub use jobs::*;
pub use store::*;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::events::EventType;

/// Declares a group of metrics once. Each entry is the metric's name (under the `healthcore_`
/// prefix), its HELP text as the doc comment, the field holding it, its type, and how it is built:
///
/// ```text
/// /// HTTP requests by method, route template and status
/// "http_requests" requests: Family<RequestLabels, Counter> = Family::default(),
/// ```
///
/// The group gets a `register` that builds every metric and registers it, in declaration order.
macro_rules! metric_group {
    ($(#[$group_doc:meta])* pub struct $group:ident {
        $($(#[doc = $help:literal])+ $name:literal $field:ident : $ty:ty = $init:expr,)*
    }) => {
        $(#[$group_doc])*
        pub struct $group {
            $($(#[doc = $help])+ pub $field: $ty,)*
        }

        impl $group {
            pub(super) fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
                let group = $group { $($field: $init,)* };
                $(registry.register($name, concat!($($help),+).trim(), group.$field.clone());)*
                group
            }
        }
    };
}
use metric_group;

/// A method as a label: the standard ones by name, anything else as `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … 8 s: a millisecond API, with room to see a stall.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
}

/// Every metric of this process, in one registry that the store, the edges and the jobs share.
pub struct Metrics {
    registry: Registry,
    pool_probe: std::sync::OnceLock<crate::store::PoolSize>,
    pub http: HttpMetrics,
    pub db: DbMetrics,
    pub audit: AuditMetrics,
    pub outbox: OutboxMetrics,
    pub jobs: JobMetrics,
    pub domain: DomainMetrics,
    pub events: EventMetrics,
    pub consumers: ConsumerMetrics,
    pub cache: CacheMetrics,
    /// Off (`HEALTHCORE_METRICS_ENABLED=false`): statements are not timed.
    query_timing: std::sync::atomic::AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("healthcore");
        let http = HttpMetrics::register(&mut registry);
        let domain = DomainMetrics::register(&mut registry);
        let events = EventMetrics::register(&mut registry);
        let consumers = ConsumerMetrics::register(&mut registry);
        let db = DbMetrics::register(&mut registry);
        let cache = CacheMetrics::register(&mut registry);
        let audit = AuditMetrics::register(&mut registry);
        let outbox = OutboxMetrics::register(&mut registry);
        let jobs = JobMetrics::register(&mut registry);
        registry.register_collector(Box::new(super::process::ProcessCollector::default()));
        registry.register_collector(Box::new(super::log_file::DroppedLogLines));
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                revision: option_env!("HEALTHCORE_REVISION").unwrap_or("unknown"),
            })
            .set(1);
        registry.register("build_info", "The running build: version and source revision", build);
        Metrics {
            registry,
            pool_probe: Default::default(),
            http,
            db,
            audit,
            outbox,
            jobs,
            domain,
            events,
            consumers,
            cache,
            query_timing: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Counts committed events and the domain actions they stand for.
    pub fn events_committed(&self, event_types: &[EventType]) {
        for event_type in event_types {
            self.events.outbox_written.get_or_create(&EventTypeLabels { event_type: event_type.as_str() }).inc();
            let domain = &self.domain;
            match event_type {
                EventType::PatientCreated => domain.patients_created.inc(),
                EventType::AppointmentBooked => domain.appointments_booked.inc(),
                EventType::AppointmentCancelled => domain.appointments_cancelled.inc(),
                EventType::AppointmentCompleted => domain.appointments_completed.inc(),
                EventType::AppointmentNoShow => domain.appointments_no_show.inc(),
                _ => 0,
            };
        }
    }

    /// Lets `render` read the connection pool's state (the first probe set wins).
    pub fn set_pool_probe(&self, max: u32, probe: crate::store::PoolSize) {
        self.db.connections_max.set(i64::from(max));
        let _ = self.pool_probe.set(probe);
    }

    /// Times one database statement (called by the store for every statement it runs).
    pub fn observe_query(&self, labels: &QueryLabels, elapsed: std::time::Duration, failed: bool) {
        if !self.query_timing.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        self.db.query_duration.get_or_create(labels).observe(elapsed.as_secs_f64());
        if failed {
            self.db.query_errors.get_or_create(labels).inc();
        }
    }

    /// `HEALTHCORE_METRICS_ENABLED=false`: stops timing statements (only to measure the cost).
    pub fn disable_query_timing(&self) {
        self.query_timing.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        if let Some(probe) = self.pool_probe.get() {
            let (size, idle) = probe();
            self.db.connections_idle.set(idle as i64);
            self.db.connections_in_use.set(i64::from(size) - idle as i64);
        }
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
