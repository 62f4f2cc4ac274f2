//! The application's Prometheus metrics: one registry per `Metrics`, owned by the store (and so
//! shared by everything built on it), never a global one — parallel tests assert exact values.
//! Labels come only from closed sets: route templates (unmatched paths share one value), methods,
//! status codes, event types, topics, consumer groups, outcomes. `docs/OBSERVABILITY.md` lists
//! every metric.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::events::EventType;

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
pub struct EventTypeLabels {
    pub event_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PublishLabels {
    pub topic: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub group: &'static str,
    pub event_type: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub target: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// Not `job`: Prometheus sets that label to the scrape job.
    pub job_name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobOutcomeLabels {
    pub job_name: &'static str,
    pub outcome: &'static str,
}

pub struct JobMetrics {
    pub runs: Family<JobOutcomeLabels, Counter>,
    pub duration: Family<JobLabels, Histogram, fn() -> Histogram>,
    pub last_success: Family<JobLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
}

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

fn job_histogram() -> Histogram {
    // 1 ms … 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn size_histogram() -> Histogram {
    // 64 B … 1 MiB.
    Histogram::new(exponential_buckets(64.0, 4.0, 8))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `header` (the request head came too slowly) or `idle` (nothing came).
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: u16,
}

pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    /// Open client connections, and those refused at the cap or closed for a timeout.
    pub connections: Gauge,
    pub connections_refused: Counter,
    pub connection_timeouts: Family<PhaseLabels, Counter>,
    /// Requests the HTTP parser refused before any route saw them (bad request line, headers too
    /// large, duplicate Content-Length), by the status they were answered with.
    pub malformed_requests: Family<StatusLabels, Counter>,
    pub duration: Histograms<RequestLabels>,
    /// The seed's `api_request_duration_seconds`, for `/api/…` routes.
    pub api_duration: Histograms<RouteLabels>,
    pub in_flight: Gauge,
    pub request_size: Histograms<RouteLabels>,
    pub response_size: Histograms<RouteLabels>,
}

pub struct DomainMetrics {
    pub patients_created: Counter,
    pub appointments_booked: Counter,
    pub appointments_cancelled: Counter,
    pub appointments_completed: Counter,
    pub appointments_no_show: Counter,
    pub logins: Family<OutcomeLabels, Counter>,
    /// Lockouts started by failed sign-ins, by what was locked (`account`, `address`).
    pub login_lockouts: Family<ScopeLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    pub scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    /// `kafka` or `in_process`.
    pub sink: &'static str,
}

pub struct EventMetrics {
    pub outbox_written: Family<EventTypeLabels, Counter>,
    pub published: Family<PublishLabels, Counter>,
    pub relay_leader: Gauge,
    /// From the event's record time to the broker's acknowledgement (or in-process handling).
    pub delivery_latency: Family<SinkLabels, Histogram, fn() -> Histogram>,
    pub producer_queue: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabels {
    pub group: &'static str,
    pub topic: String,
    pub partition: i32,
}

pub struct ConsumerMetrics {
    /// Messages behind the partition's end, per group and partition (Kafka consumers only).
    pub lag: Family<LagLabels, Gauge>,
    pub processed: Family<ConsumerLabels, Counter>,
    pub duration: Family<GroupLabels, Histogram, fn() -> Histogram>,
    pub dead_lettered: Family<GroupLabels, Counter>,
    pub webhook_deliveries: Family<DeliveryLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    pub operation: &'static str,
    pub table: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub cache: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheEvictionLabels {
    pub cache: &'static str,
    pub cause: &'static str,
}

pub struct CacheMetrics {
    pub requests: Family<CacheLabels, Counter>,
    pub evictions: Family<CacheEvictionLabels, Counter>,
}

pub struct DbMetrics {
    pub query_duration: Histograms<QueryLabels>,
    pub query_errors: Family<QueryLabels, Counter>,
    pub acquire_duration: Histogram,
    pub connections_in_use: Gauge,
    pub connections_idle: Gauge,
    pub connections_max: Gauge,
}

pub struct AuditMetrics {
    pub records_written: Counter,
    pub batch_size: Histogram,
    pub write_duration: Histogram,
}

pub struct OutboxMetrics {
    pub pending: Gauge,
    pub oldest_pending_age: Gauge<f64, std::sync::atomic::AtomicU64>,
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
        let http = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            api_duration: Family::new_with_constructor(latency_histogram),
            in_flight: Gauge::default(),
            connections: Gauge::default(),
            connections_refused: Counter::default(),
            connection_timeouts: Family::default(),
            malformed_requests: Family::default(),
            request_size: Family::new_with_constructor(size_histogram),
            response_size: Family::new_with_constructor(size_histogram),
        };
        registry.register("http_requests", "HTTP requests by method, route template and status", http.requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request duration by method, route template and status",
            http.duration.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "API request duration by method and route template (the ADR's api_request_duration_seconds)",
            http.api_duration.clone(),
        );
        registry.register("http_requests_in_flight", "HTTP requests being served", http.in_flight.clone());
        registry.register("http_connections", "Open client connections", http.connections.clone());
        registry.register(
            "http_connections_refused",
            "Connections refused because HEALTHCORE_HTTP_MAX_CONNECTIONS were open",
            http.connections_refused.clone(),
        );
        registry.register(
            "http_connection_timeouts",
            "Connections closed for sending a request head too slowly (phase header) or nothing at all (phase idle)",
            http.connection_timeouts.clone(),
        );
        registry.register(
            "http_malformed_requests",
            "Requests the HTTP parser refused before routing, by status",
            http.malformed_requests.clone(),
        );
        registry.register(
            "http_request_size_bytes",
            "HTTP request body size (Content-Length) by method and route template",
            http.request_size.clone(),
        );
        registry.register(
            "http_response_size_bytes",
            "HTTP response body size by method and route template, when known",
            http.response_size.clone(),
        );
        let domain = DomainMetrics {
            patients_created: Counter::default(),
            appointments_booked: Counter::default(),
            appointments_cancelled: Counter::default(),
            appointments_completed: Counter::default(),
            appointments_no_show: Counter::default(),
            logins: Family::default(),
            login_lockouts: Family::default(),
        };
        registry.register(
            "patients_created",
            "Patients registered (the ADR's patients_created_total)",
            domain.patients_created.clone(),
        );
        registry.register("appointments_booked", "Appointments booked", domain.appointments_booked.clone());
        registry.register("appointments_cancelled", "Appointments cancelled", domain.appointments_cancelled.clone());
        registry.register("appointments_completed", "Appointments completed", domain.appointments_completed.clone());
        registry.register("appointments_no_show", "Appointments marked no-show", domain.appointments_no_show.clone());
        registry.register(
            "logins",
            "Sign-in attempts by outcome (success, failure, throttled, busy)",
            domain.logins.clone(),
        );
        registry.register(
            "login_lockouts",
            "Sign-in lockouts started by repeated failures, by scope (account, address)",
            domain.login_lockouts.clone(),
        );
        let events = EventMetrics {
            outbox_written: Family::default(),
            published: Family::default(),
            relay_leader: Gauge::default(),
            delivery_latency: Family::new_with_constructor(latency_histogram),
            producer_queue: Gauge::default(),
        };
        registry.register(
            "outbox_events_written",
            "Events committed to the outbox, by event type",
            events.outbox_written.clone(),
        );
        registry.register(
            "events_published",
            "Events the relay sent, by topic and outcome (acked, failed; in-process delivery uses topic in_process)",
            events.published.clone(),
        );
        registry.register(
            "relay_leader",
            "1 while this process's relay is the elected publisher",
            events.relay_leader.clone(),
        );
        registry.register(
            "event_delivery_latency_seconds",
            "From an event's record time to the broker's acknowledgement (sink kafka) or its handling by every in-process consumer (sink in_process)",
            events.delivery_latency.clone(),
        );
        registry.register(
            "producer_queue_messages",
            "Messages in the Kafka producer's queue, not yet acknowledged",
            events.producer_queue.clone(),
        );
        let consumers = ConsumerMetrics {
            lag: Family::default(),
            processed: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            dead_lettered: Family::default(),
            webhook_deliveries: Family::default(),
        };
        registry.register(
            "consumer_events",
            "Events handled by consumer group, event type and outcome (applied, duplicate, failed)",
            consumers.processed.clone(),
        );
        registry.register(
            "consumer_lag_messages",
            "Messages between a Kafka consumer group's position and the partition's end, per partition (from librdkafka statistics every 5 s)",
            consumers.lag.clone(),
        );
        registry.register(
            "consumer_handling_duration_seconds",
            "Time to handle one event (one attempt, effect and inbox in one transaction), by consumer group",
            consumers.duration.clone(),
        );
        registry.register(
            "consumer_dead_letters",
            "Messages a consumer group gave up on",
            consumers.dead_lettered.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook attempts by target (notifications, subscription) and outcome (delivered, retry, failed)",
            consumers.webhook_deliveries.clone(),
        );
        let db = DbMetrics {
            query_duration: Family::new_with_constructor(latency_histogram),
            query_errors: Family::default(),
            connections_in_use: Gauge::default(),
            connections_idle: Gauge::default(),
            connections_max: Gauge::default(),
            acquire_duration: latency_histogram(),
        };
        registry.register(
            "db_query_duration_seconds",
            "Database statement duration by operation (select, insert, update, delete, begin, commit, …) and table",
            db.query_duration.clone(),
        );
        registry.register(
            "db_query_errors",
            "Database statements that failed, by operation and table",
            db.query_errors.clone(),
        );
        registry.register("db_pool_connections_in_use", "Pool connections checked out", db.connections_in_use.clone());
        registry.register("db_pool_connections_idle", "Pool connections open and idle", db.connections_idle.clone());
        registry.register("db_pool_connections_max", "Pool size limit", db.connections_max.clone());
        registry.register(
            "db_pool_acquire_duration_seconds",
            "Time a write transaction waited to start: a free pool connection (on SQLite also the single writer's turn) and the BEGIN round trip",
            db.acquire_duration.clone(),
        );
        let cache = CacheMetrics { requests: Family::default(), evictions: Family::default() };
        registry.register(
            "cache_requests",
            "Reference-data cache lookups by cache (practitioners, users) and outcome (hit, miss)",
            cache.requests.clone(),
        );
        registry.register(
            "cache_evictions",
            "Entries leaving a cache, by cause (expired, size, explicit: invalidated by a write, replaced)",
            cache.evictions.clone(),
        );
        let audit = AuditMetrics {
            records_written: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            write_duration: latency_histogram(),
        };
        registry.register(
            "audit_group_commit_records",
            "Audit records of reads committed by the group-commit writer",
            audit.records_written.clone(),
        );
        registry.register("audit_group_commit_batch_size", "Records per group commit", audit.batch_size.clone());
        registry.register(
            "audit_group_commit_duration_seconds",
            "Time to commit one group of audit records",
            audit.write_duration.clone(),
        );
        let outbox = OutboxMetrics { pending: Gauge::default(), oldest_pending_age: Gauge::default() };
        registry.register(
            "outbox_pending_events",
            "Events not yet published (or delivered in-process), as the leading relay last saw",
            outbox.pending.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest unpublished event, as the leading relay last saw (0 when none)",
            outbox.oldest_pending_age.clone(),
        );
        let jobs = JobMetrics {
            runs: Family::default(),
            duration: Family::new_with_constructor(job_histogram),
            last_success: Family::default(),
        };
        registry.register(
            "job_runs",
            "Background job attempts by job and outcome (succeeded, retried, failed, unclaimed)",
            jobs.runs.clone(),
        );
        registry.register("job_duration_seconds", "Duration of one attempt of a background job", jobs.duration.clone());
        registry.register(
            "job_last_success_timestamp_seconds",
            "When each background job last succeeded in this process (Unix time)",
            jobs.last_success.clone(),
        );
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

/// Every table HealthCore has: the closed set of `table` label values (plus `other`).
const TABLES: [&str; 15] = [
    "patients",
    "practitioners",
    "appointments",
    "users",
    "audit_events",
    "idempotency_keys",
    "outbox_events",
    "consumer_inbox",
    "consumer_dead_letters",
    "analytics_daily_patients",
    "analytics_daily_appointments",
    "notifications",
    "integration_subscriptions",
    "webhook_deliveries",
    "schema_migrations",
];

/// The store reports its statements, transactions and pool here (and each statement becomes a span).
impl crate::store::StoreObserver for Metrics {
    fn statement(&self, backend: crate::store::Backend, sql: &str, elapsed: std::time::Duration, failed: bool) {
        let labels = classify_sql(sql);
        self.observe_query(&labels, elapsed, failed);
        let system = match backend {
            crate::store::Backend::Postgres => "postgresql",
            crate::store::Backend::Sqlite => "sqlite",
        };
        super::traces::record_query(system, labels.operation, labels.table, elapsed, failed);
    }

    fn write_acquired(&self, waited: std::time::Duration) {
        self.db.acquire_duration.observe(waited.as_secs_f64());
    }

    fn events_committed(&self, event_types: &[EventType]) {
        Metrics::events_committed(self, event_types);
    }

    fn request_pool(&self, max_connections: u32, size: crate::store::PoolSize) {
        self.set_pool_probe(max_connections, size);
    }
}

/// The operation (first keyword) and the first table a statement names, as bounded labels.
pub fn classify_sql(sql: &str) -> QueryLabels {
    let keyword = sql.trim_start().split(|c: char| c.is_whitespace() || c == '(').next().unwrap_or_default();
    let operation = [
        "select",
        "insert",
        "update",
        "delete",
        "with",
        "begin",
        "commit",
        "rollback",
        "savepoint",
        "release",
        "notify",
        "listen",
    ]
    .into_iter()
    .find(|op| keyword.eq_ignore_ascii_case(op))
    .unwrap_or("other");
    QueryLabels { operation, table: first_table(sql) }
}

/// The first of HealthCore's tables a statement names, quoted (`"patients"`) or bare: one pass
/// over the identifiers, no allocation (this runs for every statement, most of whose first
/// identifier is already the table: `SELECT "patients"."id" …`).
fn first_table(sql: &str) -> &'static str {
    let bytes = sql.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        let (start, end) = if byte == b'"' {
            let start = at + 1;
            let end = bytes[start..].iter().position(|&b| b == b'"').map_or(bytes.len(), |n| start + n);
            (start, end)
        } else if byte.is_ascii_alphabetic() || byte == b'_' {
            let end = bytes[at..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .map_or(bytes.len(), |n| at + n);
            (at, end)
        } else {
            at += 1;
            continue;
        };
        if let Some(table) = TABLES.iter().find(|table| table.as_bytes() == &bytes[start..end]) {
            return table;
        }
        at = end + 1;
    }
    "other"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_classified_into_bounded_labels() {
        let labels = classify_sql(r#"SELECT "patients"."id" FROM "patients" WHERE "patients"."mrn" = $1"#);
        assert_eq!((labels.operation, labels.table), ("select", "patients"));
        let labels = classify_sql(r#"INSERT INTO "outbox_events" ("event_id") VALUES ($1)"#);
        assert_eq!((labels.operation, labels.table), ("insert", "outbox_events"));
        let labels = classify_sql("WITH acked (seq) AS (VALUES (1)) UPDATE outbox_events SET x = 1 FROM acked");
        assert_eq!((labels.operation, labels.table), ("with", "outbox_events"));
        let labels = classify_sql("COMMIT");
        assert_eq!((labels.operation, labels.table), ("commit", "other"));
        let labels = classify_sql("VACUUM something_else");
        assert_eq!((labels.operation, labels.table), ("other", "other"));
        // A column or another table's name that merely contains a table's name does not count.
        let labels = classify_sql(r#"DELETE FROM analytics_daily_patients WHERE patients_total = 0"#);
        assert_eq!((labels.operation, labels.table), ("delete", "analytics_daily_patients"));
        let labels = classify_sql(r#"SELECT COUNT(*) FROM "users""#);
        assert_eq!((labels.operation, labels.table), ("select", "users"));
    }
}
