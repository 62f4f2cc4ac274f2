//! The database's metrics (statements, pool, write waits), the audit writer's and the caches'.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::{Histograms, Metrics, latency_histogram, metric_group};
use crate::events::EventType;

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

metric_group! {
    pub struct DbMetrics {
        /// Database statement duration by operation (select, insert, update, delete, begin, commit, …) and table
        "db_query_duration_seconds" query_duration: Histograms<QueryLabels> = Family::new_with_constructor(latency_histogram),
        /// Database statements that failed, by operation and table
        "db_query_errors" query_errors: Family<QueryLabels, Counter> = Family::default(),
        /// Pool connections checked out
        "db_pool_connections_in_use" connections_in_use: Gauge = Gauge::default(),
        /// Pool connections open and idle
        "db_pool_connections_idle" connections_idle: Gauge = Gauge::default(),
        /// Pool size limit
        "db_pool_connections_max" connections_max: Gauge = Gauge::default(),
        /// Time a write transaction waited to start: a free pool connection (on SQLite also the single writer's turn) and the BEGIN round trip
        "db_pool_acquire_duration_seconds" acquire_duration: Histogram = latency_histogram(),
        /// Round trips that ended without their whole answer (a deadline, a caller gone, a lost connection) and write transactions dropped unfinished; connections released in the next 10 s are pinged, with a deadline, before reuse
        "db_interruptions" interruptions: Counter = Counter::default(),
    }
}

metric_group! {
    pub struct CacheMetrics {
        /// Reference-data cache lookups by cache (practitioners, users) and outcome (hit, miss)
        "cache_requests" requests: Family<CacheLabels, Counter> = Family::default(),
        /// Entries leaving a cache, by cause (expired, size, explicit: invalidated by a write, replaced)
        "cache_evictions" evictions: Family<CacheEvictionLabels, Counter> = Family::default(),
    }
}

metric_group! {
    pub struct AuditMetrics {
        /// Audit records of reads committed by the group-commit writer
        "audit_group_commit_records" records_written: Counter = Counter::default(),
        /// Records per group commit
        "audit_group_commit_batch_size" batch_size: Histogram = Histogram::new(exponential_buckets(1.0, 2.0, 12)),
        /// Time to commit one group of audit records
        "audit_group_commit_duration_seconds" write_duration: Histogram = latency_histogram(),
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
        crate::telemetry::traces::record_query(system, labels.operation, labels.table, elapsed, failed);
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

    fn round_trip_interrupted(&self) {
        self.db.interruptions.inc();
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
