//! Versioned schema migrations, written once with sea-query and rendered for either backend.
//!
//! Each migration runs in its own transaction and is recorded in `schema_migrations`; on PostgreSQL
//! an advisory lock makes instances that start together apply each migration exactly once.

use sea_orm::sea_query::{
    ColumnDef, ConditionalStatement, Expr, ExprTrait, ForeignKey, ForeignKeyAction, Index, Table,
};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::{Store, execute_on};

type Step = fn() -> Vec<Ddl>;

/// A schema statement: portable, or raw SQL for one backend only.
#[expect(clippy::large_enum_variant, reason = "built once per migration run: the size of the variants does not matter")]
enum Ddl {
    Table(sea_orm::sea_query::TableCreateStatement),
    Index(sea_orm::sea_query::IndexCreateStatement),
    Only(DbBackend, &'static str),
    /// Raw SQL for one backend, composed from the code's own conditions.
    Composed(DbBackend, String),
    /// Raw SQL both backends understand as written.
    Sql(&'static str),
    /// Rows rewritten by code, for what SQL cannot compute the same way on both backends.
    Backfill(Backfill),
}

#[derive(Debug, Clone, Copy)]
enum Backfill {
    /// The case-folded name search keys of patients and practitioners (`validation::search_key`).
    NameSearchKeys,
}

const MIGRATIONS: &[(i64, &str, Step)] = &[
    (1, "initial schema", initial_schema),
    (2, "transactional outbox", outbox),
    (3, "event consumers", consumers),
    (4, "background jobs", background_jobs),
    (5, "trust: audit reasons, token versions, name search keys, no truncating the audit trail", trust),
    (6, "retention: indexes the retention jobs delete by", retention),
    (7, "audit trail partitioned by month on PostgreSQL", audit_partitions),
    (8, "FHIR notifications for integration subscriptions", fhir_notifications),
    (9, "row counts kept for the totals of whole-table lists", row_counts),
    (10, "patient name-prefix indexes that carry the list's columns", covering_name_indexes),
    (11, "outbox: pending events indexed apart from published ones", outbox_pending_index),
    (12, "how far the sweeping jobs have got", job_sweeps),
    (13, "failed job runs indexed for readiness", failed_job_runs_index),
    (14, "appointments indexed by status and start time", appointments_by_status),
    (15, "a practitioner's appointments indexed by status and start time", practitioner_appointments_by_status),
    (16, "audit records that did not succeed indexed apart", unsuccessful_audit_records),
    (17, "audit records of actions other than disclosures indexed by action", audit_records_by_action),
    (18, "audit partitions vacuumed as they fill", audit_partitions_vacuumed_as_they_fill),
    (19, "booked appointments indexed by participant and start time", booked_appointments_by_participant),
    (20, "patients indexed for searches by MRN, birth date, registration and deactivation", patient_searches),
    (21, "booked appointments of one participant never overlap", booked_appointments_never_overlap),
    (
        22,
        "name search keys compared byte by byte, indexed in the order of a name search's pages",
        name_search_in_index_order,
    ),
];

/// An arbitrary constant that names "the migration lock" among PostgreSQL advisory locks.
const MIGRATION_LOCK_KEY: i64 = 0x4843_4d49_4752; // "HCMIGR"

/// Applies pending migrations; returns how many were applied.
pub async fn migrate(store: &Store) -> Result<usize, DbErr> {
    // Building an index on a large table rightly takes longer than any request's statement.
    let store = &store.unbounded();
    let db = store.db();
    db.execute_unprepared(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .await?;
    let mut applied = 0;
    for (version, name, step) in MIGRATIONS {
        let tx = store.begin_write().await?;
        execute_on(&tx, DbBackend::Postgres, "SET LOCAL statement_timeout = 0").await?;
        execute_on(&tx, DbBackend::Postgres, &format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")).await?;
        let done = tx
            .query_one_raw(Statement::from_sql_and_values(
                tx.get_database_backend(),
                match tx.get_database_backend() {
                    DbBackend::Postgres => "SELECT version FROM schema_migrations WHERE version = $1",
                    _ => "SELECT version FROM schema_migrations WHERE version = ?",
                },
                [(*version).into()],
            ))
            .await?
            .is_some();
        if done {
            tx.rollback().await?;
            continue;
        }
        for ddl in step() {
            match ddl {
                Ddl::Table(statement) => {
                    tx.execute(&statement).await?;
                }
                Ddl::Index(statement) => {
                    tx.execute(&statement).await?;
                }
                Ddl::Only(backend, sql) => execute_on(&tx, backend, sql).await?,
                Ddl::Composed(backend, sql) => execute_on(&tx, backend, &sql).await?,
                Ddl::Sql(sql) => {
                    tx.execute_unprepared(sql).await?;
                }
                Ddl::Backfill(Backfill::NameSearchKeys) => {
                    for table in ["patients", "practitioners"] {
                        fill_name_search_keys(&tx, table).await?;
                    }
                }
            }
        }
        let backend = tx.get_database_backend();
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                _ => "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            },
            [(*version).into(), (*name).into(), chrono::Utc::now().to_rfc3339().into()],
        ))
        .await?;
        tx.commit().await?;
        applied += 1;
    }
    Ok(applied)
}

/// Writes the search keys of every row of a table with `family_name` and `given_name`.
async fn fill_name_search_keys(tx: &super::WriteTx, table: &str) -> Result<(), DbErr> {
    use crate::domain::validation::search_key;
    let backend = tx.get_database_backend();
    let select = format!("SELECT id, family_name, given_name FROM {table}");
    let update = match backend {
        DbBackend::Postgres => format!("UPDATE {table} SET family_name_key = $1, given_name_key = $2 WHERE id = $3"),
        _ => format!("UPDATE {table} SET family_name_key = ?, given_name_key = ? WHERE id = ?"),
    };
    for row in tx.query_all_raw(Statement::from_string(backend, select)).await? {
        let id: uuid::Uuid = row.try_get("", "id")?;
        let family: String = row.try_get("", "family_name")?;
        let given: String = row.try_get("", "given_name")?;
        let values = [search_key(&family).into(), search_key(&given).into(), id.into()];
        tx.execute_raw(Statement::from_sql_and_values(backend, &update, values)).await?;
    }
    Ok(())
}

fn id() -> ColumnDef {
    ColumnDef::new("id").uuid().not_null().primary_key().take()
}

fn timestamp(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().take()
}

fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().not_null().take()
}

fn optional_text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().take()
}

fn unique(table: &'static str, column: &'static str) -> Ddl {
    Ddl::Index(Index::create().name(format!("ux_{table}_{column}")).table(table).col(column).unique().take())
}

fn index(name: &'static str, table: &'static str, columns: &[&'static str]) -> Ddl {
    Ddl::Index(index_on(name, table, columns))
}

/// The statement of `index`, for a partial index to add its condition to.
fn index_on(
    name: &'static str,
    table: &'static str,
    columns: &[&'static str],
) -> sea_orm::sea_query::IndexCreateStatement {
    let mut statement = Index::create().name(name).table(table).take();
    for column in columns {
        statement.col(*column);
    }
    statement
}

fn initial_schema() -> Vec<Ddl> {
    vec![
        Ddl::Table(
            Table::create()
                .table("patients")
                .col(id())
                .col(text("mrn"))
                .col(text("given_name"))
                .col(text("family_name"))
                .col(ColumnDef::new("birth_date").date().not_null())
                .col(text("sex"))
                .col(optional_text("email"))
                .col(optional_text("phone"))
                .col(optional_text("address"))
                .col(ColumnDef::new("active").boolean().not_null())
                .col(ColumnDef::new("version").big_integer().not_null())
                .col(timestamp("created_at"))
                .col(timestamp("updated_at"))
                .take(),
        ),
        unique("patients", "mrn"),
        index("ix_patients_family_name", "patients", &["family_name", "given_name", "id"]),
        Ddl::Table(
            Table::create()
                .table("practitioners")
                .col(id())
                .col(text("licence_number"))
                .col(text("given_name"))
                .col(text("family_name"))
                .col(text("role"))
                .col(optional_text("specialty"))
                .col(ColumnDef::new("active").boolean().not_null())
                .col(ColumnDef::new("version").big_integer().not_null())
                .col(timestamp("created_at"))
                .col(timestamp("updated_at"))
                .take(),
        ),
        unique("practitioners", "licence_number"),
        index("ix_practitioners_family_name", "practitioners", &["family_name", "given_name", "id"]),
        Ddl::Table(
            Table::create()
                .table("appointments")
                .col(id())
                .col(ColumnDef::new("patient_id").uuid().not_null())
                .col(ColumnDef::new("practitioner_id").uuid().not_null())
                .col(timestamp("starts_at"))
                .col(timestamp("ends_at"))
                .col(text("reason"))
                .col(optional_text("notes"))
                .col(text("status"))
                .col(optional_text("cancellation_reason"))
                .col(ColumnDef::new("version").big_integer().not_null())
                .col(timestamp("created_at"))
                .col(timestamp("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("appointments", "patient_id")
                        .to("patients", "id")
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from("appointments", "practitioner_id")
                        .to("practitioners", "id")
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .take(),
        ),
        index("ix_appointments_practitioner_start", "appointments", &["practitioner_id", "starts_at"]),
        index("ix_appointments_patient_start", "appointments", &["patient_id", "starts_at"]),
        index("ix_appointments_start", "appointments", &["starts_at", "id"]),
        Ddl::Table(
            Table::create()
                .table("users")
                .col(id())
                .col(text("username"))
                .col(text("password_hash"))
                .col(text("role"))
                .col(ColumnDef::new("patient_id").uuid().null())
                .col(ColumnDef::new("active").boolean().not_null())
                .col(timestamp("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("users", "patient_id")
                        .to("patients", "id")
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .take(),
        ),
        unique("users", "username"),
        Ddl::Table(
            Table::create()
                .table("audit_events")
                .col(id())
                .col(timestamp("occurred_at"))
                .col(ColumnDef::new("actor_id").uuid().null())
                .col(optional_text("actor_role"))
                .col(text("action"))
                .col(text("resource_type"))
                .col(ColumnDef::new("resource_id").uuid().null())
                .col(ColumnDef::new("patient_id").uuid().null())
                .col(text("outcome"))
                .col(text("correlation_id"))
                .col(optional_text("client_addr"))
                .col(optional_text("user_agent"))
                .take(),
        ),
        index("ix_audit_events_patient", "audit_events", &["patient_id", "occurred_at"]),
        index("ix_audit_events_actor", "audit_events", &["actor_id", "occurred_at"]),
        index("ix_audit_events_occurred_at", "audit_events", &["occurred_at"]),
        // The audit trail is append-only: the database itself refuses to change or remove a record,
        // whatever code (or operator with SQL access but not DDL rights) asks it to.
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$",
        ),
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
        ),
        Ddl::Only(
            DbBackend::Sqlite,
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
        ),
        Ddl::Only(
            DbBackend::Sqlite,
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
        ),
        Ddl::Table(
            Table::create()
                .table("idempotency_keys")
                .col(ColumnDef::new("user_id").uuid().not_null())
                .col(text("key"))
                .col(text("fingerprint"))
                .col(ColumnDef::new("status").integer().not_null())
                .col(optional_text("location"))
                .col(optional_text("etag"))
                .col(text("body"))
                .col(timestamp("created_at"))
                .col(timestamp("expires_at"))
                .primary_key(Index::create().col("user_id").col("key"))
                .take(),
        ),
        index("ix_idempotency_keys_expires_at", "idempotency_keys", &["expires_at"]),
    ]
}

fn outbox() -> Vec<Ddl> {
    vec![
        Ddl::Table(
            Table::create()
                .table("outbox_events")
                .col(ColumnDef::new("sequence").big_integer().not_null().auto_increment().primary_key())
                .col(ColumnDef::new("event_id").uuid().not_null())
                .col(text("event_type"))
                .col(text("aggregate_type"))
                .col(ColumnDef::new("aggregate_id").uuid().not_null())
                .col(ColumnDef::new("aggregate_version").big_integer().not_null())
                .col(timestamp("occurred_at"))
                .col(text("payload"))
                .col(text("correlation_id"))
                .col(optional_text("traceparent"))
                .col(ColumnDef::new("published_at").timestamp_with_time_zone().null())
                .col(ColumnDef::new("kafka_partition").integer().null())
                .col(ColumnDef::new("kafka_offset").big_integer().null())
                .take(),
        ),
        unique("outbox_events", "event_id"),
        index("ix_outbox_events_pending", "outbox_events", &["published_at", "sequence"]),
        index("ix_outbox_events_aggregate", "outbox_events", &["aggregate_id", "aggregate_version"]),
    ]
}

fn counter(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().default(0).take()
}

fn consumers() -> Vec<Ddl> {
    vec![
        // `healthcore events replay` sets this on events it puts back in the queue; the relay
        // marks their messages as replays.
        Ddl::Sql("ALTER TABLE outbox_events ADD COLUMN replay BOOLEAN NOT NULL DEFAULT FALSE"),
        // No query reads the outbox by aggregate, and every index is paid for on the write path of
        // every request (BENCHMARKS.md, the outbox's cost).
        Ddl::Sql("DROP INDEX IF EXISTS ix_outbox_events_aggregate"),
        // Exactly-once effect: a consumer records (group, event id) in the transaction of its effect.
        Ddl::Table(
            Table::create()
                .table("consumer_inbox")
                .col(text("consumer_group"))
                .col(ColumnDef::new("event_id").uuid().not_null())
                .col(timestamp("processed_at"))
                .primary_key(Index::create().col("consumer_group").col("event_id"))
                .take(),
        ),
        index("ix_consumer_inbox_processed_at", "consumer_inbox", &["processed_at"]),
        // In-process delivery's dead letters (with Kafka they go to `{prefix}.dlq.{group}`).
        Ddl::Table(
            Table::create()
                .table("consumer_dead_letters")
                .col(id())
                .col(text("consumer_group"))
                .col(ColumnDef::new("event_id").uuid().null())
                .col(optional_text("event_type"))
                .col(text("payload"))
                .col(text("error"))
                .col(timestamp("failed_at"))
                .take(),
        ),
        index("ix_consumer_dead_letters_failed_at", "consumer_dead_letters", &["failed_at"]),
        Ddl::Table(
            Table::create()
                .table("analytics_daily_patients")
                .col(ColumnDef::new("day").date().not_null().primary_key())
                .col(counter("registered"))
                .take(),
        ),
        Ddl::Table(
            Table::create()
                .table("analytics_daily_appointments")
                .col(ColumnDef::new("day").date().not_null())
                .col(ColumnDef::new("practitioner_id").uuid().not_null())
                .col(counter("booked"))
                .col(counter("cancelled"))
                .col(counter("completed"))
                .col(counter("no_show"))
                .primary_key(Index::create().col("day").col("practitioner_id"))
                .take(),
        ),
        Ddl::Table(
            Table::create()
                .table("integration_subscriptions")
                .col(id())
                .col(text("event_types"))
                .col(text("callback_url"))
                .col(text("secret"))
                .col(ColumnDef::new("active").boolean().not_null())
                .col(ColumnDef::new("consecutive_failures").integer().not_null().default(0))
                .col(optional_text("disabled_reason"))
                .col(ColumnDef::new("created_by").uuid().null())
                .col(timestamp("created_at"))
                .col(timestamp("updated_at"))
                .take(),
        ),
        // Every outgoing webhook: notifications and integration deliveries, with their attempts.
        Ddl::Table(
            Table::create()
                .table("webhook_deliveries")
                .col(id())
                .col(text("target"))
                .col(ColumnDef::new("subscription_id").uuid().null())
                .col(ColumnDef::new("event_id").uuid().not_null())
                .col(text("event_type"))
                .col(text("payload"))
                .col(text("correlation_id"))
                .col(text("status"))
                .col(ColumnDef::new("attempts").integer().not_null().default(0))
                .col(ColumnDef::new("last_status_code").integer().null())
                .col(optional_text("last_error"))
                .col(ColumnDef::new("next_attempt_at").timestamp_with_time_zone().null())
                .col(timestamp("created_at"))
                .col(ColumnDef::new("delivered_at").timestamp_with_time_zone().null())
                .take(),
        ),
        index("ix_webhook_deliveries_due", "webhook_deliveries", &["status", "next_attempt_at"]),
        index("ix_webhook_deliveries_subscription", "webhook_deliveries", &["subscription_id", "created_at"]),
        Ddl::Table(
            Table::create()
                .table("notifications")
                .col(id())
                .col(ColumnDef::new("event_id").uuid().not_null())
                .col(text("kind"))
                .col(ColumnDef::new("appointment_id").uuid().not_null())
                .col(ColumnDef::new("patient_id").uuid().not_null())
                .col(ColumnDef::new("practitioner_id").uuid().not_null())
                .col(timestamp("starts_at"))
                .col(timestamp("ends_at"))
                .col(text("correlation_id"))
                .col(ColumnDef::new("delivery_id").uuid().null())
                .col(timestamp("created_at"))
                .take(),
        ),
        unique("notifications", "event_id"),
        index("ix_notifications_patient", "notifications", &["patient_id", "created_at"]),
        index("ix_notifications_created_at", "notifications", &["created_at"]),
    ]
}

fn background_jobs() -> Vec<Ddl> {
    vec![
        // One row per scheduled run of a job: the instance that inserts it runs it, so with several
        // instances each run happens once. It also keeps the outcome for `healthcore jobs list`.
        Ddl::Table(
            Table::create()
                .table("job_runs")
                .col(text("job"))
                .col(timestamp("scheduled_for"))
                .col(text("status"))
                .col(ColumnDef::new("attempts").integer().not_null().default(0))
                .col(timestamp("started_at"))
                .col(ColumnDef::new("finished_at").timestamp_with_time_zone().null())
                .col(optional_text("error"))
                .col(optional_text("summary"))
                .primary_key(Index::create().col("job").col("scheduled_for"))
                .take(),
        ),
        index("ix_job_runs_started_at", "job_runs", &["job", "started_at"]),
        // Which appointment start times have had their reminder (a rescheduled one gets another).
        Ddl::Table(
            Table::create()
                .table("appointment_reminders")
                .col(ColumnDef::new("appointment_id").uuid().not_null())
                .col(timestamp("starts_at"))
                .col(ColumnDef::new("event_id").uuid().not_null())
                .col(timestamp("created_at"))
                .primary_key(Index::create().col("appointment_id").col("starts_at"))
                .take(),
        ),
    ]
}

/// On PostgreSQL the audit trail becomes a table partitioned by month (`occurred_at`, UTC), so a
/// closed month can be exported and detached whole (`healthcore audit export`) instead of ever
/// deleting a record. The existing records are copied once into the new table; every partition
/// refuses changes and `TRUNCATE` as the table did. `healthcore_ensure_audit_partition` creates a
/// month's partition with the owner's rights (the `audit_partitions` job calls it as the service,
/// which does not own the tables); rows of a month without one land in `audit_events_default`.
/// SQLite keeps one table: export works there by date range.
fn audit_partitions() -> Vec<Ddl> {
    let postgres = |sql: &'static str| Ddl::Only(DbBackend::Postgres, sql);
    vec![
        postgres("ALTER TABLE audit_events RENAME TO audit_events_before_partitioning"),
        postgres("ALTER INDEX ix_audit_events_patient RENAME TO ix_audit_events_before_partitioning_patient"),
        postgres("ALTER INDEX ix_audit_events_actor RENAME TO ix_audit_events_before_partitioning_actor"),
        postgres("ALTER INDEX ix_audit_events_occurred_at RENAME TO ix_audit_events_before_partitioning_occurred_at"),
        postgres(
            "ALTER TABLE audit_events_before_partitioning RENAME CONSTRAINT audit_events_pkey \
             TO audit_events_before_partitioning_pkey",
        ),
        postgres(
            "CREATE TABLE audit_events (LIKE audit_events_before_partitioning INCLUDING DEFAULTS) \
             PARTITION BY RANGE (occurred_at)",
        ),
        // A partitioned table's unique keys include its partition key.
        postgres("ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id, occurred_at)"),
        postgres("CREATE INDEX ix_audit_events_patient ON audit_events (patient_id, occurred_at)"),
        postgres("CREATE INDEX ix_audit_events_actor ON audit_events (actor_id, occurred_at)"),
        postgres("CREATE INDEX ix_audit_events_occurred_at ON audit_events (occurred_at)"),
        postgres(
            "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
        ),
        postgres(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events \
             FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
        ),
        // A partition's own TRUNCATE fires no trigger of its parent: each gets its own.
        postgres(
            "CREATE FUNCTION healthcore_ensure_audit_partition(month date) RETURNS text LANGUAGE plpgsql \
             SECURITY DEFINER SET search_path FROM CURRENT AS $$ \
             DECLARE first date := date_trunc('month', month)::date; \
                     name text := 'audit_events_' || to_char(first, 'YYYY_MM'); \
             BEGIN \
               IF to_regclass(name) IS NULL THEN \
                 EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)', name, \
                   first::timestamp AT TIME ZONE 'UTC', (first + interval '1 month')::timestamp AT TIME ZONE 'UTC'); \
                 EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I \
                   FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()', name); \
               END IF; \
               RETURN name; \
             END $$",
        ),
        postgres("CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT"),
        postgres(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events_default \
             FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
        ),
        // A partition for every month from the oldest record to two months ahead.
        postgres(
            "SELECT healthcore_ensure_audit_partition(month::date) FROM generate_series( \
             date_trunc('month', coalesce((SELECT min(occurred_at) FROM audit_events_before_partitioning), now()) \
             AT TIME ZONE 'UTC'), date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months', \
             interval '1 month') AS month",
        ),
        postgres("INSERT INTO audit_events SELECT * FROM audit_events_before_partitioning"),
        postgres("DROP TABLE audit_events_before_partitioning"),
    ]
}

/// What `store::retention` finds rows by, where no index had it first.
fn retention() -> Vec<Ddl> {
    vec![
        index("ix_webhook_deliveries_finished", "webhook_deliveries", &["status", "created_at"]),
        index("ix_job_runs_scheduled_for", "job_runs", &["scheduled_for"]),
        index("ix_appointment_reminders_starts_at", "appointment_reminders", &["starts_at"]),
    ]
}

fn trust() -> Vec<Ddl> {
    vec![
        // Why an attempt ended as it did (`invalid_credentials`, `throttled`, a problem type…).
        Ddl::Sql("ALTER TABLE audit_events ADD COLUMN reason TEXT"),
        // Incremented by every change to an account (role, activation, password): a token carries
        // the version it was issued at, so the change takes effect on the next request.
        Ddl::Sql("ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0"),
        // Names as they are searched: case-folded and in NFC, the same on both databases.
        Ddl::Sql("ALTER TABLE patients ADD COLUMN family_name_key TEXT NOT NULL DEFAULT ''"),
        Ddl::Sql("ALTER TABLE patients ADD COLUMN given_name_key TEXT NOT NULL DEFAULT ''"),
        Ddl::Sql("ALTER TABLE practitioners ADD COLUMN family_name_key TEXT NOT NULL DEFAULT ''"),
        Ddl::Sql("ALTER TABLE practitioners ADD COLUMN given_name_key TEXT NOT NULL DEFAULT ''"),
        Ddl::Backfill(Backfill::NameSearchKeys),
        // A prefix `LIKE` uses a B-tree index on PostgreSQL only with the pattern operator class.
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE INDEX ix_patients_family_name_key ON patients (family_name_key text_pattern_ops)",
        ),
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE INDEX ix_patients_given_name_key ON patients (given_name_key text_pattern_ops)",
        ),
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE INDEX ix_practitioners_family_name_key ON practitioners (family_name_key text_pattern_ops)",
        ),
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE INDEX ix_practitioners_given_name_key ON practitioners (given_name_key text_pattern_ops)",
        ),
        Ddl::Only(DbBackend::Sqlite, "CREATE INDEX ix_patients_family_name_key ON patients (family_name_key)"),
        Ddl::Only(DbBackend::Sqlite, "CREATE INDEX ix_patients_given_name_key ON patients (given_name_key)"),
        Ddl::Only(
            DbBackend::Sqlite,
            "CREATE INDEX ix_practitioners_family_name_key ON practitioners (family_name_key)",
        ),
        Ddl::Only(DbBackend::Sqlite, "CREATE INDEX ix_practitioners_given_name_key ON practitioners (given_name_key)"),
        // Every change to an account, by any path (the API, the command line, SQL), tells every
        // instance at commit, so that a cached account never authenticates a request after it.
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE FUNCTION users_changed() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_notify('healthcore_users', OLD.id::text); RETURN NULL; END $$",
        ),
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE TRIGGER users_changed AFTER UPDATE OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION users_changed()",
        ),
        // TRUNCATE fires no row triggers: without this, it emptied the append-only audit trail.
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events \
             FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
        ),
    ]
}

/// An integration subscription may receive FHIR subscription notifications instead of the event
/// envelope; those number the events each subscription was notified of.
fn fhir_notifications() -> Vec<Ddl> {
    vec![
        Ddl::Sql("ALTER TABLE integration_subscriptions ADD COLUMN payload TEXT NOT NULL DEFAULT 'envelope'"),
        Ddl::Sql("ALTER TABLE integration_subscriptions ADD COLUMN events_notified BIGINT NOT NULL DEFAULT 0"),
    ]
}

/// The whole-table counts `store::row_counts` reads: triggers add the rows each statement inserts
/// and subtract those it deletes, in its transaction. On PostgreSQL a statement's count goes to one
/// of 64 rows per table picked by its connection, so concurrent inserts do not queue on one row lock,
/// and the functions run with the tables' owner's rights, so the service role cannot change a count.
fn row_counts() -> Vec<Ddl> {
    macro_rules! counted {
        ($table:literal) => {
            [
                Ddl::Only(
                    DbBackend::Postgres,
                    concat!(
                        "CREATE TRIGGER ",
                        $table,
                        "_counted_insert AFTER INSERT ON ",
                        $table,
                        " REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION row_counts_add()"
                    ),
                ),
                Ddl::Only(
                    DbBackend::Postgres,
                    concat!(
                        "CREATE TRIGGER ",
                        $table,
                        "_counted_delete AFTER DELETE ON ",
                        $table,
                        " REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION row_counts_subtract()"
                    ),
                ),
                Ddl::Only(
                    DbBackend::Sqlite,
                    concat!(
                        "CREATE TRIGGER ",
                        $table,
                        "_counted_insert AFTER INSERT ON ",
                        $table,
                        " BEGIN UPDATE row_counts SET n = n + 1 WHERE table_name = '",
                        $table,
                        "'; END"
                    ),
                ),
                Ddl::Only(
                    DbBackend::Sqlite,
                    concat!(
                        "CREATE TRIGGER ",
                        $table,
                        "_counted_delete AFTER DELETE ON ",
                        $table,
                        " BEGIN UPDATE row_counts SET n = n - 1 WHERE table_name = '",
                        $table,
                        "'; END"
                    ),
                ),
                // After the triggers: on PostgreSQL creating them locks out writers until the
                // migration commits, so no row is counted twice or missed.
                Ddl::Sql(concat!(
                    "INSERT INTO row_counts (table_name, shard, n) SELECT '",
                    $table,
                    "', 0, count(*) FROM ",
                    $table
                )),
            ]
        };
    }
    let mut steps = vec![
        Ddl::Sql(
            "CREATE TABLE row_counts (table_name TEXT NOT NULL, shard INTEGER NOT NULL, n BIGINT NOT NULL, \
             PRIMARY KEY (table_name, shard))",
        ),
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE FUNCTION row_counts_add() RETURNS trigger LANGUAGE plpgsql \
             SECURITY DEFINER SET search_path FROM CURRENT AS $$ BEGIN \
               INSERT INTO row_counts AS kept (table_name, shard, n) \
                 SELECT TG_TABLE_NAME, pg_backend_pid() % 64, count(*) FROM changed HAVING count(*) > 0 \
                 ON CONFLICT (table_name, shard) DO UPDATE SET n = kept.n + excluded.n; \
               RETURN NULL; \
             END $$",
        ),
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE FUNCTION row_counts_subtract() RETURNS trigger LANGUAGE plpgsql \
             SECURITY DEFINER SET search_path FROM CURRENT AS $$ BEGIN \
               INSERT INTO row_counts AS kept (table_name, shard, n) \
                 SELECT TG_TABLE_NAME, pg_backend_pid() % 64, -count(*) FROM changed HAVING count(*) > 0 \
                 ON CONFLICT (table_name, shard) DO UPDATE SET n = kept.n + excluded.n; \
               RETURN NULL; \
             END $$",
        ),
    ];
    steps.extend(counted!("patients"));
    steps.extend(counted!("appointments"));
    steps
}

/// A name-prefix list gathers its matches' ids and sort columns from these indexes alone
/// (`store::fetch_page_of_matches`): at a million patients a prefix matches thousands, and a heap
/// page read for each cost 350 ms a list at the 99th percentile. Each carries the other name's key
/// (the given-name branch leaves out the family name's matches) and `active`, the list's other
/// common condition. SQLite has no `INCLUDE`; its lists stay small enough without.
fn covering_name_indexes() -> Vec<Ddl> {
    vec![
        Ddl::Only(DbBackend::Postgres, "DROP INDEX ix_patients_family_name_key"),
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE INDEX ix_patients_family_name_key ON patients (family_name_key text_pattern_ops) \
             INCLUDE (given_name_key, family_name, given_name, created_at, active, id)",
        ),
        Ddl::Only(DbBackend::Postgres, "DROP INDEX ix_patients_given_name_key"),
        Ddl::Only(
            DbBackend::Postgres,
            "CREATE INDEX ix_patients_given_name_key ON patients (given_name_key text_pattern_ops) \
             INCLUDE (family_name_key, family_name, given_name, created_at, active, id)",
        ),
    ]
}

/// The relay reads the pending events in sequence order at every round. In one index of
/// `(published_at, sequence)`, every event's first version stayed under "pending" until a vacuum
/// removed it, and PostgreSQL's bitmap scans, which never mark index entries dead, visited each of
/// those rows again at every round: 2.5 ms a round after 15 s of the mixed benchmark, the second
/// costliest statement of the run. Now pending events have an index of their own, which stays a
/// few pages (BENCHMARKS.md, the production shape), and retention finds published ones by time in
/// another.
fn outbox_pending_index() -> Vec<Ddl> {
    vec![
        Ddl::Sql("DROP INDEX ix_outbox_events_pending"),
        Ddl::Sql("CREATE INDEX ix_outbox_events_unpublished ON outbox_events (sequence) WHERE published_at IS NULL"),
        Ddl::Sql(
            "CREATE INDEX ix_outbox_events_published_at ON outbox_events (published_at) WHERE published_at IS NOT NULL",
        ),
    ]
}

fn job_sweeps() -> Vec<Ddl> {
    vec![
        // One row per job that sweeps the past (the no-show job): everything due before
        // `swept_before` has been handled, so the next run starts there instead of at the beginning
        // of the table.
        Ddl::Table(
            Table::create()
                .table("job_sweeps")
                .col(ColumnDef::new("job").text().not_null().primary_key())
                .col(timestamp("swept_before"))
                .col(timestamp("updated_at"))
                .take(),
        ),
    ]
}

fn failed_job_runs_index() -> Vec<Ddl> {
    // Readiness asks every few seconds which jobs' latest run failed; a month of runs is tens of
    // thousands of rows, of which the failed are a handful.
    vec![Ddl::Sql("CREATE INDEX ix_job_runs_failed ON job_runs (job, started_at) WHERE status = 'failed'")]
}

fn appointments_by_status() -> Vec<Ddl> {
    // A list by status alone (`?status=booked`) in start-time order: without it PostgreSQL walked
    // the start-time index from the oldest appointment, testing each, and booked ones lie at the
    // far end (5 million appointments: past the statement timeout). Participant-bound queries
    // are kept off it (`store::appointments::ParticipantAppointments`).
    vec![index("ix_appointments_status_start", "appointments", &["status", "starts_at", "id"])]
}

fn practitioner_appointments_by_status() -> Vec<Ddl> {
    // A practitioner's bookings (`?practitioner_id=…&status=booked`) in start-time order: without
    // it every appointment of the practitioner was fetched to test its status, and booked ones lie
    // at the far end of the history (100,000 of one practitioner: past the statement timeout). The
    // status leads so that a practitioner's list without a status finds no prefix of it to scan
    // by and keeps to `ix_appointments_practitioner_start`, which has their start times in order.
    // A patient's appointments are few enough to test each. Booked ones have since an index of
    // their own (migration 19); this one serves the other statuses.
    vec![index(
        "ix_appointments_status_practitioner_start",
        "appointments",
        &["status", "practitioner_id", "starts_at", "id"],
    )]
}

fn unsuccessful_audit_records() -> Vec<Ddl> {
    // The denied and failed attempts (`?outcome=denied`), newest first: without it the trail was
    // walked by time from the newest record, testing each, and they are a handful among millions
    // of successes (past the statement timeout). Partial, so that the records of every successful
    // request, the trail's bulk, cost it nothing to write. On PostgreSQL it is created on every
    // partition, as the trail's other indexes are. A query states the predicate as written
    // (`store::audit::UNSUCCESSFUL`) to be read by it.
    vec![Ddl::Sql(
        "CREATE INDEX ix_audit_events_unsuccessful ON audit_events (outcome, occurred_at, id) \
         WHERE outcome <> 'success'",
    )]
}

fn audit_records_by_action() -> Vec<Ddl> {
    // A list of one action (`?action=patient.deactivate`), newest first: without it the trail was
    // walked by time from the newest record, testing each, and most actions are rare among the
    // records of reads (past the statement timeout at tens of millions of records). Partial: the
    // records of the disclosures of patient data, the trail's bulk, cost it nothing to write, and a
    // list of one of them finds its page among the newest records. The predicate is the code's
    // (`store::audit::not_a_bulk_action`): changing that list needs a migration that builds the
    // index again.
    vec![Ddl::Index(
        Index::create()
            .name("ix_audit_events_by_action")
            .table("audit_events")
            .col("action")
            .col("occurred_at")
            .col("id")
            .cond_where(Expr::cust(super::audit::not_a_bulk_action()))
            .take(),
    )]
}

/// The storage parameters of migration 18, as SQL text (a macro, so that both of its statements
/// can be `'static` strings built with `concat!`).
macro_rules! vacuumed_every_10_000_records {
    () => {
        "autovacuum_vacuum_insert_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0"
    };
}

fn audit_partitions_vacuumed_as_they_fill() -> Vec<Ddl> {
    // A list of the trail counts its matches with the index alone only where the visibility map
    // says a page's records are visible to all; it is set by VACUUM. By default autovacuum
    // vacuums a partition of inserts alone after a fifth of its size again has been added: up to
    // hundreds of thousands of the newest records, each of which a count then reads from the
    // table (an auditor's list of a patient with a thousand disclosures: 766 lists/s, p99 113 ms,
    // against 2,771 and 21 ms once vacuumed). Every 10,000 records instead, whatever the
    // partition's size; a vacuum of records only added reads just the pages added since the last
    // one. `healthcore_ensure_audit_partition` is the function of migration 7 with the settings
    // added to the partitions it creates; the existing partitions are given them here.
    let postgres = |sql: &'static str| Ddl::Only(DbBackend::Postgres, sql);
    vec![
        postgres(concat!(
            "CREATE OR REPLACE FUNCTION healthcore_ensure_audit_partition(month date) RETURNS text LANGUAGE plpgsql \
             SECURITY DEFINER SET search_path FROM CURRENT AS $$ \
             DECLARE first date := date_trunc('month', month)::date; \
                     name text := 'audit_events_' || to_char(first, 'YYYY_MM'); \
             BEGIN \
               IF to_regclass(name) IS NULL THEN \
                 EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L) \
                   WITH (",
            vacuumed_every_10_000_records!(),
            ")', \
                   name, first::timestamp AT TIME ZONE 'UTC', (first + interval '1 month')::timestamp AT TIME ZONE 'UTC'); \
                 EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I \
                   FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()', name); \
               END IF; \
               RETURN name; \
             END $$"
        )),
        postgres(concat!(
            "DO $$ DECLARE partition regclass; BEGIN \
               FOR partition IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'audit_events'::regclass LOOP \
                 EXECUTE format('ALTER TABLE %s SET (",
            vacuumed_every_10_000_records!(),
            ")', partition); \
               END LOOP; \
             END $$"
        )),
    ]
}

fn booked_appointments_by_participant() -> Vec<Ddl> {
    // A participant's booked appointments in a window (the overlap check of every booking and
    // rescheduling, a calendar) and their upcoming ones, in start-time order: with statistics
    // older than the window, or none, the planner read every participant's bookings in the window
    // through an index on start time (`store::appointments::ParticipantAppointments`). Each index
    // holds only booked appointments, so it costs nothing to the appointments of the past, and names
    // its participant column in its predicate, so that only a query about that kind of participant
    // can read it. The status predicate is the code's (`store::appointments::BOOKED`).
    let booked = |name: &'static str, participant: &'static str| {
        Ddl::Index(
            index_on(name, "appointments", &[participant, "starts_at", "id"])
                .cond_where(Expr::cust(super::appointments::BOOKED))
                .and_where(Expr::col(participant).is_not_null())
                .take(),
        )
    };
    vec![
        booked("ix_appointments_booked_practitioner", "practitioner_id"),
        booked("ix_appointments_booked_patient", "patient_id"),
    ]
}

fn patient_searches() -> Vec<Ddl> {
    // Each of these lists read the whole register to count its matches and order its page (half a
    // gigabyte at a million patients): by MRN prefix, by birth date (FHIR's `birthdate`), in
    // registration order (`?sort=created_at`), and of the deactivated patients. The MRN's unique
    // index becomes a `text_pattern_ops` one on PostgreSQL, which answers equality as before and a
    // prefix too (MRNs are stored in capitals, and searched so: `store::patients`), at no extra
    // cost to a registration. Deactivated patients are a few among many, so their indexes are
    // partial and cost an active patient's registration nothing; the condition is the code's
    // (`store::patients::DEACTIVATED`). Registration order and birth dates cost an index each.
    let deactivated = |name: &'static str, columns: &[&'static str]| {
        Ddl::Index(index_on(name, "patients", columns).cond_where(Expr::cust(super::patients::DEACTIVATED)).take())
    };
    vec![
        Ddl::Only(DbBackend::Postgres, "DROP INDEX ux_patients_mrn"),
        Ddl::Only(DbBackend::Postgres, "CREATE UNIQUE INDEX ux_patients_mrn ON patients (mrn text_pattern_ops)"),
        index("ix_patients_created_at", "patients", &["created_at", "id"]),
        index("ix_patients_birth_date", "patients", &["birth_date"]),
        deactivated("ix_patients_deactivated_by_name", &["family_name", "given_name", "id"]),
        deactivated("ix_patients_deactivated_by_registration", &["created_at", "id"]),
    ]
}

fn booked_appointments_never_overlap() -> Vec<Ddl> {
    // The database refuses a booked appointment that overlaps another of the same practitioner or
    // patient, whoever writes it: a booking by staff is then one statement that takes no lock for
    // the check (`store::appointments::booking`). On PostgreSQL an exclusion constraint per
    // participant over the booked appointments; a participant's id compared by equality in a GiST
    // index needs `btree_gist`, a trusted extension since PostgreSQL 13 (any role that may create
    // in the database installs it). Times overlap as half-open ranges, as `TimeSlot`s do: one
    // appointment may start when the last ends. The practitioner's constraint is made first, so
    // that PostgreSQL checks it first and a booking that clashes for both names the practitioner,
    // as `find_clash` does.
    //
    // The constraints' indexes are for the constraints alone: no query can read them for its rows
    // (their ranges are no query's condition), yet a partial index whose predicate a query implies
    // is offered to it, and with statistics older than the window the planner took one — a whole
    // index scanned, every booking of a crowd read for a calendar (with `BOOKED` as the
    // predicate), or all of a practitioner's bookings for a day (with their participant column
    // too). So the predicate states "booked" as no query does: the status equal to it (the same
    // rows as `BOOKED`, which names every other status) and the participant present (which no list
    // by status alone implies).
    //
    // On SQLite, whose write transaction excludes every other writer, a trigger per write asks the
    // same of the booked rows (through migration 19's indexes, whose predicate `BOOKED` is) and
    // raises the constraint's name, the practitioner's first.
    use super::appointments::{BOOKED, PATIENT_OVERLAP, PRACTITIONER_OVERLAP};
    use crate::domain::AppointmentStatus;
    let participants = [(PRACTITIONER_OVERLAP, "practitioner_id"), (PATIENT_OVERLAP, "patient_id")];
    let mut steps = vec![Ddl::Only(DbBackend::Postgres, "CREATE EXTENSION IF NOT EXISTS btree_gist")];
    for (name, participant) in participants {
        steps.push(Ddl::Composed(
            DbBackend::Postgres,
            format!(
                "ALTER TABLE appointments ADD CONSTRAINT {name} EXCLUDE USING gist \
                 ({participant} WITH =, tstzrange(starts_at, ends_at) WITH &&) \
                 WHERE (status = '{booked}' AND {participant} IS NOT NULL)",
                booked = AppointmentStatus::Booked.as_str(),
            ),
        ));
    }
    for (write, on, another) in
        [("insert", "INSERT", ""), ("update", "UPDATE OF starts_at, ends_at, status", " AND booked.id <> NEW.id")]
    {
        let refusals: String = participants
            .iter()
            .map(|(name, participant)| {
                format!(
                    "SELECT RAISE(ABORT, '{name}') WHERE EXISTS (SELECT 1 FROM appointments AS booked \
                       WHERE booked.{participant} = NEW.{participant} AND booked.{BOOKED} \
                       AND booked.starts_at < NEW.ends_at AND booked.ends_at > NEW.starts_at{another}); "
                )
            })
            .collect();
        steps.push(Ddl::Composed(
            DbBackend::Sqlite,
            format!(
                "CREATE TRIGGER appointments_never_overlap_on_{write} BEFORE {on} ON appointments \
                 WHEN NEW.{BOOKED} BEGIN {refusals}END"
            ),
        ));
    }
    steps
}

/// A name search reads its page from the front of each name's index (`store::fetch_page_of_matches`,
/// `store::patients::BY_FAMILY_NAME_KEY`): the family name's key, then the given name's, then the
/// id, and the reverse, so that a page of a prefix with thousands of matches reads twenty entries,
/// not the thousands (migration 10's indexes gave the prefix's matches in no useful order: 2.4 ms a
/// search at a million patients, BENCHMARKS.md). Each carries what the list's other conditions and
/// the registration order read: `active`, `created_at`.
///
/// On PostgreSQL the search keys, the practitioners' too, take the "C" collation: they then
/// compare byte by byte, as SQLite's do, and a plain index of them answers a prefix as a range of
/// keys (`store::patients::key_starts_with`) and an `ORDER BY` (the pattern operator class
/// answered only a `LIKE`). Changing only a `TEXT` column's collation rewrites its indexes, not the
/// table. SQLite's practitioner indexes are already plain.
fn name_search_in_index_order() -> Vec<Ddl> {
    let postgres = |sql: &'static str| Ddl::Only(DbBackend::Postgres, sql);
    let sqlite = |sql: &'static str| Ddl::Only(DbBackend::Sqlite, sql);
    vec![
        Ddl::Sql("DROP INDEX ix_patients_family_name_key"),
        Ddl::Sql("DROP INDEX ix_patients_given_name_key"),
        postgres("DROP INDEX ix_practitioners_family_name_key"),
        postgres("DROP INDEX ix_practitioners_given_name_key"),
        postgres(
            "ALTER TABLE patients ALTER COLUMN family_name_key TYPE TEXT COLLATE \"C\", \
             ALTER COLUMN given_name_key TYPE TEXT COLLATE \"C\"",
        ),
        postgres(
            "ALTER TABLE practitioners ALTER COLUMN family_name_key TYPE TEXT COLLATE \"C\", \
             ALTER COLUMN given_name_key TYPE TEXT COLLATE \"C\"",
        ),
        postgres(
            "CREATE INDEX ix_patients_family_name_key ON patients (family_name_key, given_name_key, id) \
             INCLUDE (created_at, active)",
        ),
        postgres(
            "CREATE INDEX ix_patients_given_name_key ON patients (given_name_key, family_name_key, id) \
             INCLUDE (created_at, active)",
        ),
        postgres("CREATE INDEX ix_practitioners_family_name_key ON practitioners (family_name_key)"),
        postgres("CREATE INDEX ix_practitioners_given_name_key ON practitioners (given_name_key)"),
        sqlite("CREATE INDEX ix_patients_family_name_key ON patients (family_name_key, given_name_key, id)"),
        sqlite("CREATE INDEX ix_patients_given_name_key ON patients (given_name_key, family_name_key, id)"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migration found applied ends its transaction cleanly: one dropped instead counted as an
    /// interruption, and for ten seconds after every start each connection's release was pinged
    /// once more (BENCHMARKS.md, 2026-12-06).
    #[tokio::test]
    async fn a_start_with_every_migration_applied_leaves_no_interruption_behind() {
        let folder = std::env::temp_dir().join(format!("hc_migrated_{}", uuid::Uuid::new_v4().simple()));
        let store = Store::connect(&format!("sqlite://{}/hc.db", folder.display()), 2).await.unwrap();
        assert_eq!(migrate(&store).await.unwrap(), MIGRATIONS.len());
        assert_eq!(migrate(&store).await.unwrap(), 0);
        assert!(!store.db().interruptions().recent(), "a transaction was dropped, not ended");
        let _ = std::fs::remove_dir_all(folder);
    }

    #[tokio::test]
    async fn the_backfill_writes_case_folded_keys_for_rows_that_predate_them() {
        let folder = std::env::temp_dir().join(format!("hc_backfill_{}", uuid::Uuid::new_v4().simple()));
        let store = Store::connect(&format!("sqlite://{}/hc.db", folder.display()), 2).await.unwrap();
        migrate(&store).await.unwrap();
        // A row as migration 5 found it: names, no keys.
        store
            .db_execute(
                "INSERT INTO practitioners (id, licence_number, given_name, family_name, role, active, version, \
                 created_at, updated_at) VALUES (X'0193ca1e4d9a7bb38d7a1a2b3c4d5e6f', 'L-1', 'Łukasz', 'ÉLODIE', \
                 'nurse', 1, 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            )
            .await
            .unwrap();
        let tx = store.begin_write().await.unwrap();
        fill_name_search_keys(&tx, "practitioners").await.unwrap();
        tx.commit().await.unwrap();
        let row = store
            .db()
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT family_name_key, given_name_key FROM practitioners",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<String>("", "family_name_key").unwrap(), "élodie");
        assert_eq!(row.try_get::<String>("", "given_name_key").unwrap(), "łukasz");
        store.close().await;
        let _ = std::fs::remove_dir_all(folder);
    }
}
