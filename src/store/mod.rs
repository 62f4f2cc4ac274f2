//! Persistence: one `Store` over SeaORM that runs on SQLite (the embedded default) or PostgreSQL.
//!
//! Repositories are free functions over `&impl ConnectionTrait`, so the same function runs inside a
//! write transaction or on the pool. Backend-specific SQL appears only where a backend feature is
//! the point (row locks on PostgreSQL, the single-writer gate on SQLite, append-only triggers).

pub mod analytics;
pub mod appointments;
pub mod audit;
pub mod consumers;
pub mod entities;
pub mod idempotency;
pub mod jobs;
mod migrations;
pub mod notifications;
pub mod outbox;
pub mod patients;
pub mod practitioners;
pub mod subscriptions;
pub mod users;
pub mod webhooks;

use std::{ops::Deref, path::Path, sync::Arc, time::Duration};

use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::telemetry::metrics::Metrics;

pub use migrations::migrate;

/// Which database the URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    backend: Backend,
    url: Arc<str>,
    /// SQLite has one writer at a time. Queuing writers here, in order, instead of letting them
    /// collide on the file lock and spin in `busy_timeout`, keeps write latency flat and fair.
    write_gate: Option<Arc<Mutex<()>>>,
    /// Counts commits of transactions that recorded events: wakes this process's relay and the
    /// notifier that tells relays in other processes (a watch, so every waiter sees each change).
    events_committed: Arc<watch::Sender<u64>>,
    metrics: Arc<Metrics>,
}

/// A write transaction. On SQLite it also holds the writer's place in the queue until it ends.
pub struct WriteTx {
    tx: DatabaseTransaction,
    _gate: Option<OwnedMutexGuard<()>>,
    recorded_events: std::sync::Mutex<Vec<crate::events::EventType>>,
    events_committed: Arc<watch::Sender<u64>>,
    metrics: Arc<Metrics>,
}

impl Deref for WriteTx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.tx
    }
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.tx.commit().await?;
        let recorded = std::mem::take(&mut *self.recorded_events.lock().unwrap_or_else(|e| e.into_inner()));
        if !recorded.is_empty() {
            self.metrics.events_committed(&recorded);
            self.events_committed.send_modify(|commits| *commits = commits.wrapping_add(1));
        }
        Ok(())
    }

    /// Notes that this transaction appended outbox events of these types, so its commit counts them
    /// and wakes the relay.
    pub fn note_events_recorded(&self, event_types: impl IntoIterator<Item = crate::events::EventType>) {
        self.recorded_events.lock().unwrap_or_else(|e| e.into_inner()).extend(event_types);
    }
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, DbErr> {
        Store::connect_with(url, max_connections, false, None).await
    }

    /// `ping_on_checkout` tests every connection before use: one round trip more per checkout, and
    /// no statement ever runs on a connection that was cut while idle.
    async fn connect_with(
        url: &str,
        max_connections: u32,
        ping_on_checkout: bool,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Store, DbErr> {
        let backend = Backend::from_url(url)
            .ok_or_else(|| DbErr::Custom(format!("unsupported database URL scheme in '{}'", redact_url(url))))?;
        if backend == Backend::Sqlite {
            ensure_sqlite_folder(url)?;
        }
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false);
        if ping_on_checkout {
            options.test_before_acquire(true);
        } else {
            // A ping before every checkout would double the round trips of a one-query request;
            // only connections that sat idle long enough to have been cut are tested.
            options.test_before_acquire_if_idle_for(Duration::from_secs(30));
        }
        options.map_sqlx_sqlite_opts(|opts| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            // WAL lets readers proceed while the single writer commits; NORMAL is durable
            // across application crashes and loses at most the last commits on power loss.
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
        });
        let mut db = Database::connect(options).await?;
        // A pool of its own (the audit writer's) is timed into the same registry, but the pool
        // gauges describe the request pool.
        let metrics = match metrics {
            Some(shared) => shared,
            None => {
                let metrics = Arc::new(Metrics::new());
                metrics.set_pool_probe(max_connections, pool_probe(&db, backend));
                metrics
            }
        };
        let timed = metrics.clone();
        let system = match backend {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
        };
        db.set_metric_callback(move |info| {
            let labels = crate::telemetry::metrics::classify_sql(&info.statement.sql);
            timed.observe_query(&labels, info.elapsed, info.failed);
            crate::telemetry::traces::record_query(system, labels.operation, labels.table, info.elapsed, info.failed);
        });
        Ok(Store {
            db,
            backend,
            url: url.into(),
            write_gate: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
            events_committed: Arc::new(watch::Sender::new(0)),
            metrics,
        })
    }

    /// A second pool on the same database (sharing the SQLite writer queue) for a background
    /// writer, so its large batched statements grow the buffers of its own connection only
    /// instead of every connection of the request pool.
    /// Its connections are tested before each use: a background writer batches many requests'
    /// work into one statement, so the extra round trip is cheap, and a batch never fails on a
    /// connection cut during a database restart.
    pub async fn dedicated(&self, max_connections: u32) -> Result<Store, DbErr> {
        let mut store = Store::connect_with(&self.url, max_connections, true, Some(self.metrics.clone())).await?;
        store.write_gate = self.write_gate.clone();
        store.events_committed = self.events_committed.clone();
        Ok(store)
    }

    /// Changes each time a transaction that recorded events commits in this process.
    pub fn events_committed(&self) -> watch::Receiver<u64> {
        self.events_committed.subscribe()
    }

    /// The metrics of everything built on this store (one registry per process).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The URL this store was opened with (it may hold a password: never log it unredacted).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a read-write transaction: `BEGIN IMMEDIATE` on SQLite so the write lock is taken up
    /// front (no deadlock-prone upgrade from a read lock), plain `BEGIN` on PostgreSQL where row
    /// locks (`SELECT … FOR UPDATE`) serialize what must not change concurrently.
    pub async fn begin_write(&self) -> Result<WriteTx, DbErr> {
        let waiting = std::time::Instant::now();
        let gate = match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        };
        let tx = self
            .db
            .begin_with_options(TransactionOptions {
                isolation_level: None,
                access_mode: (self.backend == Backend::Postgres).then_some(AccessMode::ReadWrite),
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            })
            .await?;
        self.metrics.db.acquire_duration.observe(waiting.elapsed().as_secs_f64());
        Ok(WriteTx {
            tx,
            _gate: gate,
            recorded_events: Default::default(),
            events_committed: self.events_committed.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// Runs one SQL statement outside any transaction (administrative use: tests, tooling).
    pub async fn db_execute(&self, sql: &str) -> Result<u64, DbErr> {
        Ok(self.db.execute_unprepared(sql).await?.rows_affected())
    }

    /// Cheap round trip used by the readiness probe.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.execute_unprepared("SELECT 1").await.map(|_| ())
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}

/// Creates the folder of a `sqlite://path/to/file.db` URL so a first start needs no set-up.
/// Reads the pool's open and idle connection counts, for the pool gauges.
fn pool_probe(db: &DatabaseConnection, backend: Backend) -> crate::telemetry::metrics::PoolProbe {
    match backend {
        Backend::Postgres => {
            let pool = db.get_postgres_connection_pool().clone();
            Box::new(move || (pool.size(), pool.num_idle()))
        }
        Backend::Sqlite => {
            let pool = db.get_sqlite_connection_pool().clone();
            Box::new(move || (pool.size(), pool.num_idle()))
        }
    }
}

fn ensure_sqlite_folder(url: &str) -> Result<(), DbErr> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", parent.display())))?;
    }
    Ok(())
}

/// Hides the password of a database URL for logs and `healthcore config`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_owned(),
    }
}

/// Whether a database error is a violation of a unique constraint on `column` of `table`.
/// PostgreSQL names the constraint (we name them `ux_<table>_<column>`), SQLite names `table.column`.
pub fn is_unique_violation(err: &DbErr, table: &str, column: &str) -> bool {
    match err.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(message)) => {
            message.contains(&format!("ux_{table}_{column}")) || message.contains(&format!("{table}.{column}"))
        }
        _ => false,
    }
}

/// Errors that mean the database is unreachable or overloaded rather than that a query is wrong:
/// no connection could be had, or the one in use was cut while the statement ran.
pub fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error};
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Query(RuntimeErr::SqlxError(inner)) | DbErr::Exec(RuntimeErr::SqlxError(inner)) => {
            matches!(
                inner.as_ref(),
                Error::Io(_) | Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed | Error::Tls(_)
            ) || is_admin_shutdown(inner.as_ref())
        }
        _ => false,
    }
}

/// PostgreSQL's "terminating connection due to administrator command" family (class 57P).
fn is_admin_shutdown(err: &sea_orm::sqlx::Error) -> bool {
    err.as_database_error().and_then(|e| e.code()).is_some_and(|code| code.starts_with("57P"))
}

/// Runs `sql` only on the given backend; used for the few backend-specific statements.
pub(crate) async fn execute_on(conn: &impl ConnectionTrait, backend: DbBackend, sql: &str) -> Result<(), DbErr> {
    if conn.get_database_backend() == backend {
        conn.execute_unprepared(sql).await?;
    }
    Ok(())
}

/// Offset pagination with a bounded page size; every list is sorted on a unique key last, so
/// pages neither repeat nor skip rows while the data is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u64,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

/// Counts every match of `filtered`, then reads one page of it in the order `order` gives
/// (which must end on a unique column for pages to be stable).
pub(crate) async fn fetch_page<E, T>(
    conn: &impl ConnectionTrait,
    filtered: sea_orm::Select<E>,
    order: impl FnOnce(sea_orm::Select<E>) -> sea_orm::Select<E>,
    page: PageRequest,
    to_domain: fn(E::Model) -> Result<T, DbErr>,
) -> Result<Page<T>, DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: Sync,
{
    use sea_orm::{PaginatorTrait, QuerySelect};
    let total = filtered.clone().count(conn).await?;
    let rows = order(filtered).limit(page.limit).offset(page.offset).all(conn).await?;
    let items = rows.into_iter().map(to_domain).collect::<Result<_, _>>()?;
    Ok(Page { items, total, limit: page.limit, offset: page.offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/hc"), "postgres://app:****@db:5432/hc");
        assert_eq!(redact_url("postgres://app@db/hc"), "postgres://app@db/hc");
        assert_eq!(redact_url("sqlite://./data/healthcore.db"), "sqlite://./data/healthcore.db");
    }

    #[test]
    fn backend_is_chosen_by_url_scheme() {
        assert_eq!(Backend::from_url("sqlite://x.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("postgresql://h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::from_url("mysql://h/db"), None);
    }
}
