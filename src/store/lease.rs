//! PostgreSQL connections kept checked out of sqlx's pool between uses.
//!
//! sqlx tests every connection as it goes back to its pool: a `Sync`, then a wait for
//! `ReadyForQuery` — a round trip, and a PostgreSQL backend woken, after every statement on the
//! pool and every transaction, with no setting to skip it. Measured without it (BENCHMARKS.md,
//! 2026-12-06), get patient served about a fifth more requests and list patients a quarter more.
//! So a connection, once sqlx handed it out, stays out: a use `lease`s one, and a release whose
//! last round trip answered in full puts it back on a stack here, without a round trip. sqlx still
//! opens connections (bounded, with the server limits) and gets back those that must be tested:
//!
//! - a release after a round trip cut off (a deadline, a caller gone) or inside a transaction is
//!   settled first, in the background and within the ping deadline: a `ROLLBACK` (which first reads
//!   what is left of any answer) or a ping; one that does not answer is closed;
//! - a connection idle longer than `PING_IF_IDLE_FOR` is pinged, within the deadline, before use;
//! - after `RECYCLE_AFTER` a connection goes back to sqlx, whose lifetime and idle limits apply.
//!
//! Waiting for a lease is bounded like waiting for a pooled connection. A lease holds one of
//! `max_connections` permits until its connection is back, so every lease that finds the stack
//! empty can be given a connection by sqlx at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::{PgArguments, PgPool, Postgres};
use sea_orm::sqlx::{self, Connection, Executor};
use sea_orm::{ConnAcquireErr, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Backend, StoreObserver};

/// How long a connection is kept out of sqlx's pool before it goes back (and is handed out again,
/// or closed, by sqlx's own rules).
const RECYCLE_AFTER: Duration = Duration::from_secs(15 * 60);

/// The request pool's leased connections: the idle ones, and the permits of those in use.
pub(super) struct Leases {
    pool: PgPool,
    permits: Arc<Semaphore>,
    idle: std::sync::Mutex<Vec<Idle>>,
    /// Set when the pool is replaced or closed: releases then go back to sqlx.
    retired: AtomicBool,
    acquire: Duration,
    ping: Duration,
    ping_if_idle_for: Duration,
    faults: Arc<AtomicU64>,
    observer: Arc<dyn StoreObserver>,
}

struct Idle {
    connection: PoolConnection<Postgres>,
    since: Instant,
    leased_first: Instant,
}

/// The settings of a pool's leases.
pub(super) struct LeaseLimits {
    pub max_connections: u32,
    /// Waiting for a lease (and for sqlx's connection, if the stack is empty).
    pub acquire: Duration,
    /// Settling a connection released unclean, or pinging one idle for long.
    pub ping: Duration,
    pub ping_if_idle_for: Duration,
}

impl Leases {
    pub(super) fn new(
        pool: PgPool,
        limits: LeaseLimits,
        faults: Arc<AtomicU64>,
        observer: Arc<dyn StoreObserver>,
    ) -> Leases {
        Leases {
            pool,
            permits: Arc::new(Semaphore::new(limits.max_connections as usize)),
            idle: std::sync::Mutex::new(Vec::new()),
            retired: AtomicBool::new(false),
            acquire: limits.acquire,
            ping: limits.ping,
            ping_if_idle_for: limits.ping_if_idle_for,
            faults,
            observer,
        }
    }

    /// A connection for this caller alone until the lease is dropped.
    pub(super) async fn lease(self: &Arc<Self>) -> Result<Lease, DbErr> {
        let permit = tokio::time::timeout(self.acquire, self.permits.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))?;
        let lease = |connection, leased_first| Lease {
            connection: Some(connection),
            leased_first,
            answered: true,
            in_transaction: false,
            leases: self.clone(),
            permit: Some(permit),
        };
        while let Some(idle) = self.take_idle() {
            if idle.leased_first.elapsed() >= RECYCLE_AFTER {
                drop(idle.connection);
                continue;
            }
            let mut connection = idle.connection;
            if idle.since.elapsed() >= self.ping_if_idle_for {
                let pinged = tokio::time::timeout(self.ping, connection.ping()).await;
                if !matches!(pinged, Ok(Ok(()))) {
                    self.faults.fetch_add(1, Ordering::Relaxed);
                    connection.close_on_drop();
                    continue;
                }
            }
            return Ok(lease(connection, idle.leased_first));
        }
        let connection = self.pool.acquire().await.map_err(acquire_error)?;
        Ok(lease(connection, Instant::now()))
    }

    fn take_idle(&self) -> Option<Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put_back(&self, connection: PoolConnection<Postgres>, leased_first: Instant) {
        if self.retired.load(Ordering::Relaxed) {
            return;
        }
        let idle = Idle { connection, since: Instant::now(), leased_first };
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(idle);
    }

    /// How many connections wait on the stack, for the pool gauges.
    pub(super) fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// From now on releases go back to sqlx; the idle connections go back now (so that closing the
    /// pool, which waits for every connection, can finish).
    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        drop(idle);
    }
}

/// One leased connection. Dropped, it goes back to the stack if its last round trip answered in
/// full outside a transaction, and is settled first otherwise.
pub(super) struct Lease {
    connection: Option<PoolConnection<Postgres>>,
    leased_first: Instant,
    /// False while a round trip is under way, and after one that failed without the database's
    /// whole answer.
    answered: bool,
    in_transaction: bool,
    leases: Arc<Leases>,
    /// Held until the connection is back on the stack or closed.
    permit: Option<OwnedSemaphorePermit>,
}

impl Lease {
    fn connection(&mut self) -> &mut PoolConnection<Postgres> {
        self.answered = false;
        self.connection.as_mut().expect("a lease holds its connection until it is dropped")
    }

    /// Notes whether the round trip answered in full: a success, or a refusal the database sent.
    fn note_answer<T>(&mut self, outcome: &Result<T, DbErr>) {
        self.answered = outcome.as_ref().err().is_none_or(super::is_refused_by_database);
    }

    /// `note_answer`, and reports the statement to the observer.
    fn finished<T>(&mut self, sql: &str, started: Instant, outcome: Result<T, DbErr>) -> Result<T, DbErr> {
        self.note_answer(&outcome);
        self.leases.observer.statement(Backend::Postgres, sql, started.elapsed(), outcome.is_err());
        outcome
    }

    pub(super) async fn execute_raw(&mut self, statement: &Statement) -> Result<ExecResult, DbErr> {
        let started = Instant::now();
        let done = query(statement).execute(&mut **self.connection()).await;
        let outcome = done.map(ExecResult::from).map_err(exec_error);
        self.finished(&statement.sql, started, outcome)
    }

    /// A statement whose parameters sqlx encodes directly (`Db::execute_with`).
    pub(super) async fn execute_with(
        &mut self,
        sql: &'static str,
        arguments: PgArguments,
    ) -> Result<ExecResult, DbErr> {
        let started = Instant::now();
        let done = sqlx::query_with(sql, arguments).execute(&mut **self.connection()).await;
        let outcome = done.map(ExecResult::from).map_err(exec_error);
        self.finished(sql, started, outcome)
    }

    pub(super) async fn query_one_raw(&mut self, statement: &Statement) -> Result<Option<QueryResult>, DbErr> {
        let started = Instant::now();
        let done = query(statement).fetch_optional(&mut **self.connection()).await;
        let outcome = done.map(|row| row.map(QueryResult::from)).map_err(query_error);
        self.finished(&statement.sql, started, outcome)
    }

    pub(super) async fn query_all_raw(&mut self, statement: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        let started = Instant::now();
        let done = query(statement).fetch_all(&mut **self.connection()).await;
        let outcome = done.map(|rows| rows.into_iter().map(QueryResult::from).collect()).map_err(query_error);
        self.finished(&statement.sql, started, outcome)
    }

    /// SQL without parameters, in the simple protocol (several statements allowed); not reported
    /// to the observer, as sea-orm does not report it either.
    pub(super) async fn execute_unprepared(&mut self, sql: &str) -> Result<ExecResult, DbErr> {
        let done = self.connection().execute(sqlx::AssertSqlSafe(sql.to_owned())).await;
        let outcome = done.map(ExecResult::from).map_err(exec_error);
        self.note_answer(&outcome);
        outcome
    }

    pub(super) async fn begin(&mut self) -> Result<(), DbErr> {
        // Marked first: a BEGIN cut off may or may not have started the transaction.
        self.in_transaction = true;
        self.execute_unprepared("BEGIN").await.map(drop)
    }

    pub(super) async fn commit(&mut self) -> Result<(), DbErr> {
        self.execute_unprepared("COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }

    pub(super) async fn rollback(&mut self) -> Result<(), DbErr> {
        self.execute_unprepared("ROLLBACK").await?;
        self.in_transaction = false;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else { return };
        let permit = self.permit.take();
        let leases = self.leases.clone();
        let leased_first = self.leased_first;
        if self.answered && !self.in_transaction {
            leases.put_back(connection, leased_first);
            drop(permit);
            return;
        }
        let in_transaction = self.in_transaction;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            connection.close_on_drop();
            return;
        };
        runtime.spawn(async move {
            // A ROLLBACK first reads whatever is left of the answer it was cut off from.
            let settle = async {
                if in_transaction { connection.execute("ROLLBACK").await.map(drop) } else { connection.ping().await }
            };
            let settled = tokio::time::timeout(leases.ping, settle).await;
            if matches!(settled, Ok(Ok(()))) {
                leases.put_back(connection, leased_first);
            } else {
                leases.faults.fetch_add(1, Ordering::Relaxed);
                connection.close_on_drop();
            }
            drop(permit);
        });
    }
}

/// A sea-orm statement as an sqlx query with its parameters bound.
fn query(statement: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    debug_assert_eq!(statement.db_backend, DbBackend::Postgres);
    let values = statement.values.clone().unwrap_or_else(|| sea_orm::sea_query::Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(statement.sql.as_str()), SqlxValues(values))
}

// sqlx's errors as sea-orm reports them, so that `store::is_unavailable` and the rest read both
// paths' errors alike.
fn exec_error(err: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(err.into()))
}

fn query_error(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(err.into()))
}

fn acquire_error(err: sqlx::Error) -> DbErr {
    match err {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        other => DbErr::Conn(RuntimeErr::SqlxError(other.into())),
    }
}
