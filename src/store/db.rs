//! The connection pool, with every round trip bounded and a stuck pool replaced, not waited on.
//!
//! sqlx bounds waiting for a pooled connection (and connecting), but nothing else: a statement on a
//! connection whose network stopped answering waits forever, and so does the ping sqlx sends when a
//! connection goes back to the pool. A pool of one connection (the audit writer's) was wedged that
//! way for good by one database partition. So:
//!
//! - every round trip through `Db` (and `WriteTx`) has a client-side deadline: the server's own
//!   `statement_timeout` plus a margin, so a slow statement ends with the server's clean
//!   cancellation and only a database that does not answer at all trips it;
//! - on PostgreSQL, statements and transactions run on connections leased from the pool and kept
//!   between uses (`lease.rs`: sqlx would ping each one it gets back); a connection released after
//!   a cancelled round trip or inside a transaction is rolled back or pinged within a short
//!   deadline or closed, and so is every connection going back to sqlx's pool soon after an
//!   interruption, so a cancelled round trip can never hold a pool slot;
//! - on PostgreSQL, a round trip that trips its deadline or finds its connection dead replaces the
//!   whole pool with a new, empty one (at most once a second): connections that sat idle through
//!   the fault are not handed out again, new ones are opened as they are needed, and the old pool
//!   is closed in the background. A pool that lived through a fault and then cannot hand out a
//!   connection in time is replaced too (see `Db::bounded`);
//! - the server is told to give up too (session startup options, no extra round trip):
//!   `statement_timeout`, `idle_in_transaction_session_timeout` (a transaction whose client vanished
//!   releases its row locks) and TCP keepalives on the server's side of the connection (a vanished
//!   relay leader releases its advisory lock);
//! - a connection idle for a while is pinged, with a short deadline, before it is handed out.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, Statement, TransactionOptions, TransactionTrait,
};

use super::Backend;
use super::StoreObserver;
use super::lease::{Lease, LeaseLimits, Leases};

/// The time limits of the database round trips (`HEALTHCORE_DB_ACQUIRE_TIMEOUT_MS`,
/// `HEALTHCORE_DB_STATEMENT_TIMEOUT_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbLimits {
    /// Waiting for a pooled connection, connecting included; on SQLite also for the writer's turn.
    pub acquire: Duration,
    /// PostgreSQL's `statement_timeout`; SQLite's busy timeout.
    pub statement: Duration,
}

impl Default for DbLimits {
    fn default() -> Self {
        DbLimits { acquire: Duration::from_secs(2), statement: Duration::from_secs(2) }
    }
}

impl DbLimits {
    /// How long the client waits for one round trip before it gives up on the connection.
    pub fn round_trip(&self) -> Duration {
        self.statement + (self.statement / 2).min(Duration::from_secs(1))
    }

    /// How long a ping of an idle connection may take before the connection is discarded.
    fn ping(&self) -> Duration {
        (self.acquire / 4).clamp(Duration::from_millis(50), Duration::from_millis(500))
    }
}

/// A connection sitting idle longer than this is pinged before use: network devices drop idle
/// connections silently. A ping before every checkout would double the round trips of a
/// one-statement request.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);
/// Replacing the pool again sooner than this would only churn connections during one fault.
const REPLACE_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// After a round trip ended without its answer, connections released within this long are pinged
/// with a deadline before they go back to the pool (see `Interruptions`).
const PING_RELEASES_AFTER_INTERRUPTION_FOR: Duration = Duration::from_secs(10);

/// When a round trip last ended without its whole answer (cancelled by a deadline or a client that
/// went away, or failed), or a write transaction was dropped without commit. Only then can a
/// connection go back to the pool with a reply half read or a rollback queued, which sqlx's own
/// release check (a ping, without a deadline) would wait on forever if the network had stopped
/// answering. A connection released soon after such an event is therefore pinged first within a
/// deadline and closed if it does not answer; the release of a round trip that simply completed
/// costs no second ping.
pub struct Interruptions {
    /// Milliseconds since `epoch` of the last interruption plus one; 0 for none yet.
    last: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
    /// Counts them (`healthcore_db_interruptions_total`).
    observer: Arc<dyn StoreObserver>,
}

impl Interruptions {
    pub fn observed_by(observer: Arc<dyn StoreObserver>) -> Interruptions {
        Interruptions { last: AtomicU64::new(0), epoch: std::sync::OnceLock::new(), observer }
    }

    fn elapsed_ms(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    pub fn mark(&self) {
        self.last.store(self.elapsed_ms() + 1, Ordering::Relaxed);
        self.observer.round_trip_interrupted();
    }

    pub(super) fn recent(&self) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        last != 0 && self.elapsed_ms() + 1 - last <= PING_RELEASES_AFTER_INTERRUPTION_FOR.as_millis() as u64
    }
}

/// Marks an interruption unless disarmed: held across a round trip, or by a write transaction
/// until it commits.
pub struct UnlessFinished(Option<Arc<Interruptions>>);

impl UnlessFinished {
    pub fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for UnlessFinished {
    fn drop(&mut self) {
        if let Some(interruptions) = self.0.take() {
            interruptions.mark();
        }
    }
}

/// How to open a pool: kept, so that a replacement is opened the same way.
pub(super) struct PoolRecipe {
    /// Connection faults seen by this pool and the pools opened beside it (the audit writer's):
    /// counted by the hooks and the round trips that meet a dead or silent connection.
    pub faults: Arc<AtomicU64>,
    /// Shared the same way: a pool's releases ping after an interruption in either.
    pub interruptions: Arc<Interruptions>,
    pub url: String,
    pub backend: Backend,
    pub max_connections: u32,
    pub limits: DbLimits,
    /// Ping every connection before use (the audit writer: a batch is worth the round trip).
    pub test_every_checkout: bool,
    pub observer: Arc<dyn StoreObserver>,
}

impl PoolRecipe {
    async fn open(&self, lazy: bool) -> Result<Pool, DbErr> {
        let limits = self.limits;
        let mut options = ConnectOptions::new(with_socket_placeholder_host(&self.url));
        options
            .max_connections(self.max_connections)
            // No background connecting: sqlx keeps `min_connections` by connecting with a deadline of
            // five minutes, holding a pool slot all the while.
            .min_connections(0)
            .connect_timeout(limits.acquire)
            .acquire_timeout(limits.acquire)
            .connect_lazy(lazy)
            .sqlx_logging(false)
            .test_before_acquire(false);
        let ping_after = if self.test_every_checkout { Duration::ZERO } else { PING_IF_IDLE_FOR };
        options.map_sqlx_postgres_opts(move |opts| with_server_limits(opts, limits));
        let faults = self.faults.clone();
        options.map_sqlx_postgres_before_acquire(move |conn, meta| {
            let faults = faults.clone();
            Box::pin(async move {
                if meta.idle_for < ping_after {
                    return Ok(true);
                }
                let pinged = tokio::time::timeout(limits.ping(), sea_orm::sqlx::Connection::ping(conn)).await;
                let alive = matches!(pinged, Ok(Ok(())));
                if !alive {
                    faults.fetch_add(1, Ordering::Relaxed);
                }
                Ok(alive)
            })
        });
        // A connection going back to the pool soon after an interruption is pinged first, within a
        // deadline. sqlx pings it too, but without one: after a statement was cancelled (by its own
        // deadline, the request's, a readiness probe's, a client that went away) on a network that
        // stopped answering, that ping would hold the connection's pool slot forever. Releases with
        // no interruption near them (every request that completed) skip this second ping.
        let faults = self.faults.clone();
        let interruptions = self.interruptions.clone();
        options.map_sqlx_postgres_pool_opts(move |pool| {
            let faults = faults.clone();
            let interruptions = interruptions.clone();
            pool.after_release(move |conn, _meta| {
                let faults = faults.clone();
                let check = interruptions.recent();
                Box::pin(async move {
                    if !check {
                        return Ok(true);
                    }
                    let pinged = tokio::time::timeout(limits.ping(), sea_orm::sqlx::Connection::ping(conn)).await;
                    if !matches!(pinged, Ok(Ok(()))) {
                        faults.fetch_add(1, Ordering::Relaxed);
                    }
                    match pinged {
                        Ok(Ok(())) => Ok(true),
                        Ok(Err(_)) => Ok(false),
                        // Closed without a goodbye: nothing more is written to a socket that does
                        // not answer.
                        Err(_) => Err(sea_orm::sqlx::Error::PoolTimedOut),
                    }
                })
            })
        });
        options.map_sqlx_sqlite_opts(move |opts| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            // WAL lets readers proceed while the single writer commits; NORMAL is durable
            // across application crashes and loses at most the last commits on power loss.
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(limits.statement)
        });
        let mut db = Database::connect(options).await?;
        let observer = self.observer.clone();
        let backend = self.backend;
        db.set_metric_callback(move |info| observer.statement(backend, &info.statement.sql, info.elapsed, info.failed));
        let leases = (backend == Backend::Postgres).then(|| {
            let limits = LeaseLimits {
                max_connections: self.max_connections,
                acquire: limits.acquire,
                ping: limits.ping(),
                ping_if_idle_for: ping_after,
            };
            let pool = db.get_postgres_connection_pool().clone();
            Arc::new(Leases::new(pool, limits, self.faults.clone(), self.observer.clone()))
        });
        Ok(Pool { connection: db, leases })
    }
}

/// PostgreSQL session settings sent with the startup message: the server cancels a statement that
/// runs too long, ends a session left idle inside a transaction, and probes the client's side of
/// the connection so a vanished client's locks are released within about half a minute. JIT
/// compilation is off: it pays only for long analytical statements, and HealthCore runs short
/// ones; where PostgreSQL overestimated one (the overlap check, when its time bounds were pairs, at
/// five million appointments) it compiled for 10 ms a statement that ran for 0.1.
pub fn with_server_limits(
    options: sea_orm::sqlx::postgres::PgConnectOptions,
    limits: DbLimits,
) -> sea_orm::sqlx::postgres::PgConnectOptions {
    let idle_in_transaction = (limits.round_trip() * 4).max(Duration::from_secs(10));
    options.options([
        ("statement_timeout", limits.statement.as_millis().to_string()),
        ("idle_in_transaction_session_timeout", idle_in_transaction.as_millis().to_string()),
        ("tcp_keepalives_idle", "15".to_owned()),
        ("tcp_keepalives_interval", "5".to_owned()),
        ("tcp_keepalives_count", "3".to_owned()),
        ("jit", "off".to_owned()),
    ])
}

/// The pool in use: sqlx's, under sea-orm, and on PostgreSQL the connections leased from it
/// (`lease.rs`), which every statement and transaction of `Db` runs on.
#[derive(Clone)]
struct Pool {
    connection: DatabaseConnection,
    leases: Option<Arc<Leases>>,
}

struct Shared {
    current: RwLock<Pool>,
    /// `recipe.faults` when the pool in use was opened.
    faults_at_open: AtomicU64,
    recipe: PoolRecipe,
    last_replaced: Mutex<Option<Instant>>,
    /// Incremented with every replacement: holders of connections of their own (the relay's
    /// leader and listener) reconnect when it changes.
    generation: AtomicU64,
}

/// The pool every repository function runs on (it implements `ConnectionTrait`). Cheap to clone.
#[derive(Clone)]
pub struct Db {
    shared: Arc<Shared>,
    /// The client-side deadline of each round trip; `None` for maintenance (migrations).
    round_trip: Option<Duration>,
}

impl Db {
    pub(super) async fn open(recipe: PoolRecipe) -> Result<Db, DbErr> {
        let round_trip = Some(recipe.limits.round_trip());
        let connection = recipe.open(false).await?;
        let shared = Shared {
            current: RwLock::new(connection),
            faults_at_open: AtomicU64::new(recipe.faults.load(Ordering::Relaxed)),
            recipe,
            last_replaced: Mutex::new(None),
            generation: AtomicU64::new(0),
        };
        Ok(Db { shared: Arc::new(shared), round_trip })
    }

    /// The same pool without client-side deadlines, for statements that may rightly run long.
    pub(super) fn unbounded(&self) -> Db {
        Db { shared: self.shared.clone(), round_trip: None }
    }

    fn pool(&self) -> Pool {
        self.shared.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The pool in use now (sea-orm's).
    pub fn connection(&self) -> DatabaseConnection {
        self.pool().connection
    }

    pub fn limits(&self) -> DbLimits {
        self.shared.recipe.limits
    }

    pub(super) fn faults(&self) -> Arc<AtomicU64> {
        self.shared.recipe.faults.clone()
    }

    pub(super) fn interruptions(&self) -> Arc<Interruptions> {
        self.shared.recipe.interruptions.clone()
    }

    /// A mark of an interruption, for a holder of a connection (a write transaction) to disarm once
    /// it finished cleanly.
    pub(super) fn unless_finished(&self) -> UnlessFinished {
        UnlessFinished(Some(self.interruptions()))
    }

    /// Changes whenever the pool was replaced after a fault.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Relaxed)
    }

    /// Open and idle connections of the pool in use now, for the pool gauges.
    pub(super) fn pool_size(&self) -> (u32, usize) {
        let Pool { connection, leases } = self.pool();
        match self.shared.recipe.backend {
            Backend::Postgres => {
                let pool = connection.get_postgres_connection_pool();
                let leased_idle = leases.map_or(0, |leases| leases.idle_count());
                (pool.size(), pool.num_idle() + leased_idle)
            }
            Backend::Sqlite => {
                let pool = connection.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        }
    }

    /// Runs one round trip within the deadline. A connection found stuck or dead replaces the pool;
    /// so does a pool that lived through such a fault and now cannot hand out a connection: one of
    /// its connections may be held by sqlx's own release ping, which has no deadline and can have
    /// been caught by the fault in the instant after the bounded one answered. (Without a fault
    /// seen, a pool that cannot hand out a connection is merely busy, and is kept.)
    pub(super) async fn bounded<T>(&self, round_trip: impl Future<Output = Result<T, DbErr>>) -> Result<T, DbErr> {
        // Dropped here before the answer (the caller was cancelled) or after a failure that may
        // have left the answer unread: marked. A refusal the database answered (a unique key, a
        // check, a cancelled statement) leaves the connection ready for the next statement.
        let interrupted = self.unless_finished();
        let outcome = match self.round_trip {
            Some(limit) => tokio::time::timeout(limit, round_trip).await.unwrap_or_else(|_| Err(timed_out(limit))),
            None => round_trip.await,
        };
        match &outcome {
            Err(err) if !super::is_refused_by_database(err) => drop(interrupted),
            _ => interrupted.finished(),
        }
        if let Err(err) = &outcome {
            let faults = &self.shared.recipe.faults;
            if super::is_connection_lost(err) {
                faults.fetch_add(1, Ordering::Relaxed);
                self.replace_pool().await;
            } else if super::is_acquire_timeout(err)
                && faults.load(Ordering::Relaxed) > self.shared.faults_at_open.load(Ordering::Relaxed)
            {
                self.replace_pool().await;
            }
        }
        outcome
    }

    async fn replace_pool(&self) {
        if self.shared.recipe.backend != Backend::Postgres {
            return;
        }
        {
            let mut last = self.shared.last_replaced.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < REPLACE_AT_MOST_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        // Lazy: opening it does no I/O, so it cannot fail on the network it replaces a pool for.
        let fresh = match self.shared.recipe.open(true).await {
            Ok(fresh) => fresh,
            Err(err) => {
                tracing::error!(error = %err, "could not open a replacement database pool");
                return;
            }
        };
        let faults_now = self.shared.recipe.faults.load(Ordering::Relaxed);
        let old = std::mem::replace(&mut *self.shared.current.write().unwrap_or_else(|e| e.into_inner()), fresh);
        if let Some(leases) = &old.leases {
            leases.retire();
        }
        let old = old.connection;
        self.shared.faults_at_open.store(faults_now, Ordering::Relaxed);
        self.shared.generation.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("a database connection stopped answering; the pool was replaced");
        // Connections still checked out of the old pool are returned (or fail) within their own
        // deadlines; the close is bounded anyway so that nothing waits on a dead socket.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(30), old.close()).await;
        });
    }

    pub async fn close(&self) {
        let Pool { connection, leases } = self.pool();
        if let Some(leases) = leases {
            leases.retire();
        }
        let _ = connection.close().await;
    }

    /// Begins a transaction: on PostgreSQL a plain `BEGIN` on a leased connection, on SQLite
    /// sea-orm's with `options` (`BEGIN IMMEDIATE` for a writer). Bounded like a round trip.
    pub(super) async fn begin(&self, options: TransactionOptions) -> Result<Transaction, DbErr> {
        let Pool { connection, leases } = self.pool();
        match leases {
            Some(leases) => {
                let begun = async {
                    let mut lease = leases.lease().await?;
                    lease.begin().await?;
                    Ok(Transaction::Leased(tokio::sync::Mutex::new(lease)))
                };
                self.bounded(begun).await
            }
            None => self.bounded(connection.begin_with_options(options)).await.map(Transaction::SeaOrm),
        }
    }

    /// Runs a PostgreSQL statement whose parameters sea-query cannot carry (arrays with NULL
    /// elements: `store::audit::append_batch`), encoded by sqlx itself.
    pub(super) async fn execute_with(
        &self,
        sql: &'static str,
        arguments: sea_orm::sqlx::postgres::PgArguments,
    ) -> Result<ExecResult, DbErr> {
        match self.pool() {
            Pool { leases: Some(leases), .. } => {
                self.bounded(async { leases.lease().await?.execute_with(sql, arguments).await }).await
            }
            Pool { leases: None, .. } => Err(DbErr::Custom("sqlx-encoded parameters need PostgreSQL".into())),
        }
    }
}

/// The error of a round trip that did not answer within its deadline: the database is unavailable.
fn timed_out(limit: Duration) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(format!("the database did not answer within {} ms", limit.as_millis())))
}

#[async_trait::async_trait]
impl ConnectionTrait for Db {
    fn get_database_backend(&self) -> DbBackend {
        match self.shared.recipe.backend {
            Backend::Postgres => DbBackend::Postgres,
            Backend::Sqlite => DbBackend::Sqlite,
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self.pool() {
            Pool { leases: Some(leases), .. } => {
                self.bounded(async { leases.lease().await?.execute_raw(&stmt).await }).await
            }
            Pool { connection, .. } => self.bounded(connection.execute_raw(stmt)).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self.pool() {
            Pool { leases: Some(leases), .. } => {
                self.bounded(async { leases.lease().await?.execute_unprepared(sql).await }).await
            }
            Pool { connection, .. } => self.bounded(connection.execute_unprepared(sql)).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self.pool() {
            Pool { leases: Some(leases), .. } => {
                self.bounded(async { leases.lease().await?.query_one_raw(&stmt).await }).await
            }
            Pool { connection, .. } => self.bounded(connection.query_one_raw(stmt)).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self.pool() {
            Pool { leases: Some(leases), .. } => {
                self.bounded(async { leases.lease().await?.query_all_raw(&stmt).await }).await
            }
            Pool { connection, .. } => self.bounded(connection.query_all_raw(stmt)).await,
        }
    }
}

/// A transaction: on PostgreSQL on a leased connection, on SQLite sea-orm's.
pub enum Transaction {
    Leased(tokio::sync::Mutex<Lease>),
    SeaOrm(DatabaseTransaction),
}

impl Transaction {
    pub async fn commit(self) -> Result<(), DbErr> {
        match self {
            Transaction::Leased(lease) => lease.into_inner().commit().await,
            Transaction::SeaOrm(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        match self {
            Transaction::Leased(lease) => lease.into_inner().rollback().await,
            Transaction::SeaOrm(tx) => tx.rollback().await,
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Transaction {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Transaction::Leased(_) => DbBackend::Postgres,
            Transaction::SeaOrm(tx) => tx.get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Transaction::Leased(lease) => lease.lock().await.execute_raw(&stmt).await,
            Transaction::SeaOrm(tx) => tx.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Transaction::Leased(lease) => lease.lock().await.execute_unprepared(sql).await,
            Transaction::SeaOrm(tx) => tx.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Transaction::Leased(lease) => lease.lock().await.query_one_raw(&stmt).await,
            Transaction::SeaOrm(tx) => tx.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Transaction::Leased(lease) => lease.lock().await.query_all_raw(&stmt).await,
            Transaction::SeaOrm(tx) => tx.query_all_raw(stmt).await,
        }
    }
}

/// libpq's form for PostgreSQL's Unix-domain socket, `postgres://user@/db?host=/var/run/postgresql`,
/// has user information but no host, which the `url` crate — and so sea-orm, before sqlx reads the
/// URL — rejects. Such a URL is given the host `localhost`, which sqlx never uses: the `host`
/// parameter naming a directory wins, as in libpq. Any other URL is returned as it is.
fn with_socket_placeholder_host(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_ends = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_ends);
    match authority.rsplit_once('@') {
        Some((user_info, "")) if scheme.starts_with("postgres") => {
            format!("{scheme}://{user_info}@localhost{path_and_query}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_waits_a_margin_longer_than_the_server() {
        let limits = DbLimits { acquire: Duration::from_secs(2), statement: Duration::from_secs(2) };
        assert_eq!(limits.round_trip(), Duration::from_secs(3));
        let short = DbLimits { acquire: Duration::from_millis(100), statement: Duration::from_millis(200) };
        assert_eq!(short.round_trip(), Duration::from_millis(300));
        assert_eq!(short.ping(), Duration::from_millis(50));
    }

    #[test]
    fn only_a_socket_url_without_a_host_gets_the_placeholder() {
        let socket = "postgres://app:s%40cret@/hc?host=/var/run/postgresql";
        assert_eq!(
            with_socket_placeholder_host(socket),
            "postgres://app:s%40cret@localhost/hc?host=/var/run/postgresql"
        );
        for unchanged in [
            "postgres://app@db:5432/hc",
            "postgres:///hc?host=/var/run/postgresql&user=app",
            "sqlite://data/healthcore.db",
        ] {
            assert_eq!(with_socket_placeholder_host(unchanged), unchanged);
        }
    }
}
