//! Persistence: one `Store` over SeaORM that runs on SQLite (the embedded default) or PostgreSQL.
//!
//! Repositories are free functions over `&impl ConnectionTrait`, so the same function runs inside a
//! write transaction or on the pool. Backend-specific SQL appears only where a backend feature is
//! the point (row locks on PostgreSQL, the single-writer gate on SQLite, append-only triggers).

pub mod analytics;
pub mod appointments;
pub mod audit;
pub mod consumers;
mod db;
pub mod entities;
pub mod idempotency;
mod ids;
pub mod jobs;
mod lease;
mod migrations;
pub mod notifications;
mod observer;
pub mod outbox;
pub mod patients;
pub mod practitioners;
pub mod retention;
mod row_counts;
mod rows;
pub mod subscriptions;
pub mod users;
pub mod webhooks;

use std::{path::Path, sync::Arc};

use rows::ReadRow;
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, SqliteTransactionMode, Statement, TransactionOptions,
};

use tokio::sync::{Mutex, OwnedMutexGuard, watch};

pub use db::{Db, DbLimits, with_server_limits};
pub use migrations::migrate;
pub use observer::{PoolSize, StoreObserver, Unobserved};

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
    db: Db,
    backend: Backend,
    url: Arc<str>,
    /// SQLite has one writer at a time. Queuing writers here, in order, instead of letting them
    /// collide on the file lock and spin in `busy_timeout`, keeps write latency flat and fair.
    write_gate: Option<Arc<Mutex<()>>>,
    /// Counts commits of transactions that recorded events: wakes this process's relay and the
    /// notifier that tells relays in other processes (a watch, so every waiter sees each change).
    events_committed: Arc<watch::Sender<u64>>,
    observer: Arc<dyn StoreObserver>,
}

/// How a pool is opened: on its own, with the observer given, or beside an open store (sharing its
/// observer and its fault counter).
enum Opened<'a> {
    Alone(Arc<dyn StoreObserver>),
    Beside(&'a Store),
}

/// A write transaction; every statement in it is bounded like one on the pool. On SQLite it also
/// holds the writer's place in the queue until it ends.
pub struct WriteTx {
    tx: db::Transaction,
    db: Db,
    /// Dropped without a commit, the transaction's connection goes back with a rollback queued.
    unfinished: db::UnlessFinished,
    _gate: Option<OwnedMutexGuard<()>>,
    recorded_events: std::sync::Mutex<Vec<crate::events::EventType>>,
    events_committed: Arc<watch::Sender<u64>>,
    observer: Arc<dyn StoreObserver>,
}

/// `ConnectionTrait` for a transaction type with fields `tx` (the transaction) and `db` (its pool):
/// each statement bounded like one on the pool.
macro_rules! bounded_like_the_pool {
    ($transaction:ty) => {
        #[async_trait::async_trait]
        impl ConnectionTrait for $transaction {
            fn get_database_backend(&self) -> DbBackend {
                self.tx.get_database_backend()
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                self.db.bounded(self.tx.execute_raw(stmt)).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                self.db.bounded(self.tx.execute_unprepared(sql)).await
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                self.db.bounded(self.tx.query_one_raw(stmt)).await
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                self.db.bounded(self.tx.query_all_raw(stmt)).await
            }
        }
    };
}

bounded_like_the_pool!(WriteTx);
bounded_like_the_pool!(ReadTx);

impl WriteTx {
    pub async fn commit(self) -> Result<(), DbErr> {
        let WriteTx { tx, db, unfinished, _gate, recorded_events, events_committed, observer } = self;
        db.bounded(tx.commit()).await?;
        unfinished.finished();
        drop(_gate);
        let recorded = recorded_events.into_inner().unwrap_or_else(|e| e.into_inner());
        announce_committed(&*observer, &events_committed, &recorded);
        Ok(())
    }

    /// Ends the transaction keeping nothing, for a caller that found nothing to do: ended, not
    /// dropped, because a dropped transaction counts as an interruption (`db::Interruptions`) and
    /// has every connection released in the next seconds pinged once more.
    pub async fn rollback(self) -> Result<(), DbErr> {
        let WriteTx { tx, db, unfinished, .. } = self;
        db.bounded(tx.rollback()).await?;
        unfinished.finished();
        Ok(())
    }

    /// Ends a transaction whose change was refused or failed: rolled back, keeping nothing. The
    /// refusal is what the caller reports, so a rollback that fails as well is only logged; its
    /// connection then counts as interrupted, which is all it needs.
    pub async fn abandon(self) {
        if let Err(err) = self.rollback().await {
            tracing::debug!(error = %err, "rolling back an abandoned transaction failed");
        }
    }

    /// Ends the transaction with what its statements gave: committed when they succeeded,
    /// abandoned when one failed, whose error is then returned as it was.
    pub async fn end<T, E: From<DbErr>>(self, outcome: Result<T, E>) -> Result<T, E> {
        match outcome {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(err) => {
                self.abandon().await;
                Err(err)
            }
        }
    }

    /// Notes that this transaction appended outbox events of these types, so its commit counts them
    /// and wakes the relay.
    pub fn note_events_recorded(&self, event_types: impl IntoIterator<Item = crate::events::EventType>) {
        self.recorded_events.lock().unwrap_or_else(|e| e.into_inner()).extend(event_types);
    }
}

/// Counts the committed events of these types and wakes the relay (nothing, if there are none).
fn announce_committed(
    observer: &dyn StoreObserver,
    events_committed: &watch::Sender<u64>,
    event_types: &[crate::events::EventType],
) {
    if !event_types.is_empty() {
        observer.events_committed(event_types);
        events_committed.send_modify(|commits| *commits = commits.wrapping_add(1));
    }
}

/// A transaction that only reads: for statements that need planner settings of their own, which
/// `SET LOCAL` gives them until it ends. Every statement in it is bounded like one on the pool.
pub struct ReadTx {
    tx: db::Transaction,
    db: Db,
    /// Dropped without `end` (or ended by a round trip cut off mid-answer), the transaction's
    /// connection goes back with a rollback queued.
    unfinished: db::UnlessFinished,
}

impl ReadTx {
    /// Ends the transaction with what its statements gave. A statement the database refused and
    /// answered in full (a cancellation by `statement_timeout`, a lock not granted) left the
    /// connection ready, so the transaction ends with a rollback, not a drop: a dropped one counts
    /// as an interruption and has every connection released in the next seconds pinged once
    /// more, which an overloaded database would pay for most. One cut off mid-answer is dropped,
    /// and settled before its connection is used again.
    pub async fn end<T>(self, outcome: Result<T, DbErr>) -> Result<T, DbErr> {
        let ReadTx { tx, db, unfinished } = self;
        match outcome {
            Ok(value) => {
                db.bounded(tx.commit()).await?;
                unfinished.finished();
                Ok(value)
            }
            Err(err) if is_refused_by_database(&err) => {
                if db.bounded(tx.rollback()).await.is_ok() {
                    unfinished.finished();
                }
                Err(err)
            }
            Err(err) => Err(err),
        }
    }
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, DbErr> {
        Store::connect_with_limits(url, max_connections, DbLimits::default()).await
    }

    pub async fn connect_with_limits(url: &str, max_connections: u32, limits: DbLimits) -> Result<Store, DbErr> {
        Store::connect_observed(url, max_connections, limits, Arc::new(Unobserved)).await
    }

    /// A store whose statements, transactions and pool `observer` watches.
    pub async fn connect_observed(
        url: &str,
        max_connections: u32,
        limits: DbLimits,
        observer: Arc<dyn StoreObserver>,
    ) -> Result<Store, DbErr> {
        Store::open(url, max_connections, limits, false, Opened::Alone(observer)).await
    }

    /// `test_every_checkout` pings every connection before use: one round trip more per checkout,
    /// and no statement ever runs on a connection that was cut while idle.
    async fn open(
        url: &str,
        max_connections: u32,
        limits: DbLimits,
        test_every_checkout: bool,
        opened: Opened<'_>,
    ) -> Result<Store, DbErr> {
        let backend = Backend::from_url(url)
            .ok_or_else(|| DbErr::Custom(format!("unsupported database URL scheme in '{}'", redact_url(url))))?;
        if backend == Backend::Sqlite {
            ensure_sqlite_folder(url)?;
        }
        // A pool of its own (the audit writer's) is watched by the same observer, but the pool
        // gauges describe the request pool.
        let (observer, beside) = match opened {
            Opened::Alone(observer) => (observer, None),
            Opened::Beside(store) => (store.observer.clone(), Some(store)),
        };
        let recipe = db::PoolRecipe {
            faults: beside.map_or_else(Default::default, |store| store.db.faults()),
            interruptions: beside.map_or_else(
                || Arc::new(db::Interruptions::observed_by(observer.clone())),
                |store| store.db.interruptions(),
            ),
            url: url.to_owned(),
            backend,
            max_connections,
            limits,
            test_every_checkout,
            observer: observer.clone(),
        };
        let db = Db::open(recipe).await?;
        if beside.is_none() {
            let probed = db.clone();
            observer.request_pool(max_connections, Box::new(move || probed.pool_size()));
        }
        Ok(Store {
            db,
            backend,
            url: url.into(),
            write_gate: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
            events_committed: Arc::new(watch::Sender::new(0)),
            observer,
        })
    }

    /// A second pool on the same database (sharing the SQLite writer queue) for a background
    /// writer, so its large batched statements grow the buffers of its own connection only
    /// instead of every connection of the request pool.
    /// Its connections are tested before each use: a background writer batches many requests'
    /// work into one statement, so the extra round trip is cheap, and a batch never fails on a
    /// connection cut during a database restart.
    pub async fn dedicated(&self, max_connections: u32) -> Result<Store, DbErr> {
        let mut store = Store::open(&self.url, max_connections, self.db.limits(), true, Opened::Beside(self)).await?;
        store.write_gate = self.write_gate.clone();
        store.events_committed = self.events_committed.clone();
        Ok(store)
    }

    /// This store without client-side deadlines, for work that may rightly run long (migrations).
    pub fn unbounded(&self) -> Store {
        Store { db: self.db.unbounded(), ..self.clone() }
    }

    /// Changes each time a transaction that recorded events commits in this process.
    pub fn events_committed(&self) -> watch::Receiver<u64> {
        self.events_committed.subscribe()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The URL this store was opened with (it may hold a password: never log it unredacted).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Inserts rows into several tables as one atomic write and, once it is written, counts the
    /// events of `event_types` it appended and wakes the relay, as a commit does. On PostgreSQL it is
    /// one statement on the pool (`insert_together`), a transaction of its own: one round trip where
    /// `BEGIN`, the inserts and `COMMIT` take three or more. On SQLite the inserts run in one write
    /// transaction.
    pub async fn insert_atomically(
        &self,
        inserts: Vec<sea_orm::sea_query::InsertStatement>,
        event_types: Vec<crate::events::EventType>,
    ) -> Result<(), DbErr> {
        match self.backend {
            Backend::Postgres => {
                insert_together(&self.db, inserts).await?;
                announce_committed(&*self.observer, &self.events_committed, &event_types);
                Ok(())
            }
            Backend::Sqlite => {
                let tx = self.begin_write().await?;
                let inserted = insert_together(&tx, inserts).await.map(drop);
                tx.note_events_recorded(event_types);
                tx.end(inserted).await
            }
        }
    }

    /// Starts a read-write transaction: `BEGIN IMMEDIATE` on SQLite so the write lock is taken up
    /// front (no deadlock-prone upgrade from a read lock), plain `BEGIN` on PostgreSQL where row
    /// locks (`SELECT … FOR UPDATE`) serialize what must not change concurrently. Waiting for the
    /// SQLite writer's turn is bounded like waiting for a pooled connection.
    pub async fn begin_write(&self) -> Result<WriteTx, DbErr> {
        let waiting = std::time::Instant::now();
        let gate = match &self.write_gate {
            Some(gate) => Some(
                tokio::time::timeout(self.db.limits().acquire, gate.clone().lock_owned())
                    .await
                    .map_err(|_| DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout))?,
            ),
            None => None,
        };
        let options = TransactionOptions {
            isolation_level: None,
            // A PostgreSQL transaction is read-write by default; stating it costs a round trip of
            // its own (`SET TRANSACTION READ WRITE`) on every write.
            access_mode: None,
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        };
        let tx = self.db.begin(options).await?;
        self.observer.write_acquired(waiting.elapsed());
        Ok(WriteTx {
            tx,
            unfinished: self.db.unless_finished(),
            db: self.db.clone(),
            _gate: gate,
            recorded_events: Default::default(),
            events_committed: self.events_committed.clone(),
            observer: self.observer.clone(),
        })
    }

    /// A transaction for reads alone. It takes no place in SQLite's queue of writers.
    pub async fn begin_read(&self) -> Result<ReadTx, DbErr> {
        let options = TransactionOptions {
            isolation_level: None,
            // Stating READ ONLY would cost a round trip of its own, as READ WRITE would for writes.
            access_mode: None,
            sqlite_transaction_mode: None,
        };
        let tx = self.db.begin(options).await?;
        Ok(ReadTx { tx, unfinished: self.db.unless_finished(), db: self.db.clone() })
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
        self.db.close().await;
    }
}

/// Creates a folder (and its missing parents) readable by its owner only: the embedded database
/// holds all patient data, password hashes and integration secrets.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Creates the folder of a `sqlite://path/to/file.db` URL so a first start needs no set-up, and
/// the database file, owner-only (SQLite gives its write-ahead log and index the mode of the
/// database file); a database file left readable by others is made private.
fn ensure_sqlite_folder(url: &str) -> Result<(), DbErr> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let path = Path::new(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent).map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", path.display())))?;
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(metadata) = std::fs::metadata(&file)
            && metadata.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| DbErr::Custom(format!("cannot make {} private: {e}", file.display())))?;
            tracing::warn!(file = %file.display(), "the database file was readable by others; it is now owner-only");
        }
    }
    Ok(())
}

/// A query parameter whose name (decoded, any case) says its value is a secret: libpq's and sqlx's
/// `password` and `sslpassword`, and the usual names of tokens and keys in webhook URLs.
fn is_secret_parameter(name: &str) -> bool {
    let name = percent_decode(name).to_ascii_lowercase();
    ["pass", "secret", "token", "key", "auth", "signature", "sig", "credential"].iter().any(|word| name.contains(word))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of a URL that are secrets: the password of its user info, and the values of its
/// secret query parameters (as written, for masking them in text).
fn url_secrets(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else { return Vec::new() };
    let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut secrets = Vec::new();
    // The user info ends at the last `@` before the query: a password may itself hold an `@`.
    if let Some((credentials, _)) = address.rsplit_once('@')
        && let Some((_, password)) = credentials.split_once(':')
        && !password.is_empty()
    {
        secrets.push(password.to_owned());
    }
    for pair in query.split(['&', '#']) {
        if let Some((name, value)) = pair.split_once('=')
            && is_secret_parameter(name)
            && !value.is_empty()
        {
            secrets.push(value.to_owned());
        }
    }
    secrets
}

/// Hides every secret a URL can carry — the user info's password and secret query parameters
/// (`?password=`, `sslpassword`, percent-encoded names…) — for `healthcore config` and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (address, query) = match rest.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (rest, None),
    };
    let address = match address.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{user}:****@{host}"),
            None => address.to_owned(),
        },
        None => address.to_owned(),
    };
    let Some(query) = query else { return redact_secrets_in(&format!("{scheme}://{address}"), url) };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_parameter(name) => format!("{name}=****"),
            _ => pair.to_owned(),
        })
        .collect();
    // A secret's value given a second time, under a name that does not say so, is masked too.
    redact_secrets_in(&format!("{scheme}://{address}?{}", query.join("&")), url)
}

/// `message` with every secret of `url` in it masked: for errors from the database driver, which
/// may quote a value of the URL it could not use.
pub fn redact_secrets_in(message: &str, url: &str) -> String {
    let mut message = message.to_owned();
    for secret in url_secrets(url) {
        for form in [secret.clone(), percent_decode(&secret)] {
            if form.len() >= 2 {
                message = message.replace(&form, "****");
            }
        }
    }
    message
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

/// Errors that mean the database is unreachable, overloaded or too slow rather than that a query is
/// wrong: no connection could be had in time, the one in use was cut or stopped answering, or the
/// server cancelled a statement that ran past `statement_timeout`.
pub fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error};
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Query(RuntimeErr::SqlxError(inner)) | DbErr::Exec(RuntimeErr::SqlxError(inner)) => {
            matches!(inner.as_ref(), Error::PoolTimedOut | Error::PoolClosed)
                || is_connection_lost(err)
                || sqlstate(inner.as_ref()).is_some_and(|code| code == "57014")
                || is_sqlite_busy(inner.as_ref())
        }
        _ => false,
    }
}

/// Errors that mean the connection itself is gone or stuck (not merely that no connection was
/// free): it did not answer within its deadline, its socket failed, or the server ended the
/// session (class 57P: administrator command, crash, shutdown).
pub(crate) fn is_connection_lost(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error};
    match err {
        DbErr::Conn(RuntimeErr::Internal(_)) => true,
        DbErr::Conn(RuntimeErr::SqlxError(inner))
        | DbErr::Query(RuntimeErr::SqlxError(inner))
        | DbErr::Exec(RuntimeErr::SqlxError(inner)) => {
            matches!(inner.as_ref(), Error::Io(_) | Error::WorkerCrashed | Error::Tls(_))
                || sqlstate(inner.as_ref()).is_some_and(|code| code.starts_with("57P"))
        }
        _ => false,
    }
}

/// The database answered the statement with an error of its own (a key or check violated, a
/// statement cancelled by `statement_timeout`, an aborted transaction): the answer arrived whole,
/// and the connection is ready for the next statement. Not a session the server is ending.
pub(crate) fn is_refused_by_database(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error};
    match err {
        DbErr::Query(RuntimeErr::SqlxError(inner)) | DbErr::Exec(RuntimeErr::SqlxError(inner)) => {
            matches!(inner.as_ref(), Error::Database(_)) && !is_connection_lost(err)
        }
        _ => false,
    }
}

fn sqlstate(err: &sea_orm::sqlx::Error) -> Option<String> {
    err.as_database_error().and_then(|e| e.code()).map(|code| code.into_owned())
}

/// No pooled connection could be had in time.
pub(crate) fn is_acquire_timeout(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error};
    match err {
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout) => true,
        DbErr::Conn(RuntimeErr::SqlxError(inner))
        | DbErr::Query(RuntimeErr::SqlxError(inner))
        | DbErr::Exec(RuntimeErr::SqlxError(inner)) => matches!(inner.as_ref(), Error::PoolTimedOut),
        _ => false,
    }
}

/// SQLite's "database is locked" after the busy timeout: another process held the write lock.
fn is_sqlite_busy(err: &sea_orm::sqlx::Error) -> bool {
    sqlstate(err).is_some_and(|code| code == "5" || code == "517")
}

/// Runs inserts into different tables as one statement on PostgreSQL, all but the last as
/// data-modifying `WITH` queries (one round trip instead of one each; on the pool, a transaction
/// of its own: `Store::insert_atomically`); one after another on SQLite, which has no network
/// between it and the process.
/// Returns the rows the last insert wrote.
pub(crate) async fn insert_together(
    conn: &impl ConnectionTrait,
    mut inserts: Vec<sea_orm::sea_query::InsertStatement>,
) -> Result<u64, DbErr> {
    use sea_orm::sea_query::{Alias, CommonTableExpression, WithClause};
    if inserts.len() < 2 || conn.get_database_backend() != DbBackend::Postgres {
        let mut written = 0;
        for insert in inserts {
            written = conn.execute(&insert).await?.rows_affected();
        }
        return Ok(written);
    }
    let last = inserts.pop().expect("two or more inserts");
    let mut with = WithClause::new();
    for (n, insert) in inserts.into_iter().enumerate() {
        with.cte(CommonTableExpression::new().query(insert).table_name(Alias::new(format!("written_{n}"))).to_owned());
    }
    Ok(conn.execute(&last.with(with)).await?.rows_affected())
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
    /// How many rows match, or as many as were counted when more do (`total_is_exact` false; see
    /// `counted_up_to`).
    pub total: u64,
    pub total_is_exact: bool,
    pub limit: u64,
    pub offset: u64,
}

/// How far past the page's end a filtered list counts its matches; beyond, the page says
/// `total_is_exact: false`, as search engines do.
pub const MATCHES_COUNTED_PAST_THE_PAGE: u64 = 100;

/// How far a list of `page` counts its matches before saying "at least": a hundred past the page's
/// end, so that a client always sees whether more pages follow. Counting is what a page costs once
/// the matches are many, and it grew with the data where the page did not: the first page of 5.6
/// million audit records of bookings, or of half a million cancelled appointments, is a few index
/// pages, but counting them took 0.9 s and 0.5 s (BENCHMARKS.md, "Growth"), and counting 10,001 of
/// them, the bound before, still halved the throughput of a security review's lists at twenty
/// million records.
fn counted_up_to(page: PageRequest) -> u64 {
    page.offset + page.limit + MATCHES_COUNTED_PAST_THE_PAGE
}

/// What a list selects, which says how its total is found.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Selection {
    /// Some rows: the matches are counted up to `counted_up_to` the page, and at least past
    /// `FEW_MATCHES`.
    Filtered,
    /// Every row of a table whose count the database keeps: read, not counted.
    WholeTable(row_counts::CountedTable),
}

/// Finds the total of `filtered` (see [`Selection`]), then reads one page of it in the order
/// `order` gives (which must end on a unique column for pages to be stable).
pub(crate) async fn fetch_page<E, T>(
    conn: &impl ConnectionTrait,
    filtered: sea_orm::Select<E>,
    selection: Selection,
    order: impl FnOnce(sea_orm::Select<E>) -> sea_orm::Select<E>,
    page: PageRequest,
    to_domain: fn(E::Model) -> Result<T, DbErr>,
) -> Result<Page<T>, DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: ReadRow,
{
    use sea_orm::{QuerySelect, QueryTrait};
    match selection {
        Selection::Filtered => {
            // Counted at least past `FEW_MATCHES`: the count also chooses how the page is read.
            let bound = counted_up_to(page).max(FEW_MATCHES);
            let counted = count_up_to(conn, filtered.clone(), bound + 1).await?;
            let page_of_rows = if counted <= FEW_MATCHES {
                few_matches_in_order(filtered, order, page)
            } else {
                order(filtered).limit(page.limit).offset(page.offset).into_query()
            };
            let rows = models::<E>(&conn.query_all_raw(conn.get_database_backend().build(&page_of_rows)).await?)?;
            page_of(rows, counted.min(bound), counted <= bound, page, to_domain)
        }
        Selection::WholeTable(table) => {
            // The kept total rides along with the page: one round trip, one snapshot. A page past
            // the end has no row to carry it, and asks for it alone.
            //
            // The page's bounds are written into the statement, not passed as parameters, which
            // leaves it none: PostgreSQL then plans it once per connection and bounds. With a
            // parameter in `LIMIT`, a plan made for any values must guess a tenth of the table,
            // always looks dearer than one made for the values given, and so the statement was
            // planned again on every run (about a sixth of PostgreSQL's time under list patients,
            // BENCHMARKS.md). A crawl through many offsets makes a statement for each, which the
            // connection's statement cache holds a bounded number of.
            const TOTAL: &str = "kept_total_rows";
            let backend = conn.get_database_backend();
            let mut statement = order(filtered)
                .column_as(sea_orm::sea_query::Expr::cust(row_counts::rows_in_sql(table, backend)), TOTAL)
                .build(backend);
            statement.sql = format!("{} LIMIT {} OFFSET {}", statement.sql, page.limit, page.offset);
            let rows = conn.query_all_raw(statement).await?;
            let total = match rows.first() {
                Some(row) => row_counts::counted(table, row.try_get("", TOTAL)?)?,
                None => row_counts::rows_in(conn, table).await?,
            };
            let rows = models::<E>(&rows)?;
            page_of(rows, total, true, page, to_domain)
        }
    }
}

/// At most this many matches, counted, are read whole and sorted for a page, never found by
/// walking an index in the page's order. PostgreSQL walks such an index, testing each row, when it
/// expects the matches to be many enough to fill a page early; its estimate of a prefix or a range
/// comes from a sample, and an MRN prefix with 10 of 40,000 patients was sometimes estimated at a
/// few hundred: the page then walked the whole name index (40,000 rows a page, in one test run of
/// three). Sorting a thousand rows costs about a millisecond; beyond that, the matches are many and
/// the walk finds a page among the first rows it reads.
const FEW_MATCHES: u64 = 1_000;

/// A `LIMIT` of no effect (the largest one both databases take) on a subquery, which PostgreSQL
/// then plans on its own: never merged into the outer query, whose order it cannot then see, and so
/// never walks an index in that order testing every row instead of reading the matches.
const PLANNED_APART: u64 = i64::MAX.unsigned_abs();

/// A page of `filtered` in the order `order` gives, read from its matches alone: they are selected
/// in a subquery planned apart (`PLANNED_APART`) and sorted after. The subquery takes the table's
/// name, so that the order's columns, qualified by it, name the subquery's.
fn few_matches_in_order<E: sea_orm::EntityTrait>(
    filtered: sea_orm::Select<E>,
    order: impl FnOnce(sea_orm::Select<E>) -> sea_orm::Select<E>,
    page: PageRequest,
) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::Alias;
    use sea_orm::{QuerySelect, QueryTrait};
    let table = E::default().table_name().to_owned();
    let matches = filtered.limit(PLANNED_APART).into_query();
    let mut in_order = order(E::find()).limit(page.limit).offset(page.offset).into_query();
    in_order.from_clear().from_subquery(matches, Alias::new(table));
    in_order
}

/// How many rows `matching` selects, counting no further than `bound`: the database stops
/// reading at the bound's row. The bound is written into the statement, not passed as a
/// parameter: a plan made for any values would have to guess it.
async fn count_up_to<E: sea_orm::EntityTrait>(
    conn: &impl ConnectionTrait,
    matching: sea_orm::Select<E>,
    bound: u64,
) -> Result<u64, DbErr> {
    use sea_orm::sea_query::Expr;
    use sea_orm::{QuerySelect, QueryTrait};
    let backend = conn.get_database_backend();
    let matches = backend.build(&matching.select_only().expr(Expr::cust("1")).into_query());
    let sql = format!("SELECT COUNT(*) AS counted FROM ({} LIMIT {bound}) AS first_matches", matches.sql);
    let values = matches.values.map(|values| values.0).unwrap_or_default();
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("a count".into()))?;
    Ok(u64::try_from(row.try_get::<i64>("", "counted")?).unwrap_or(0))
}

/// The entity's rows among raw results, whose columns are the entity's in the order of its
/// `Column` enum (extra columns after them, such as a total, are left out).
fn models<E>(rows: &[QueryResult]) -> Result<Vec<E::Model>, DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: ReadRow,
{
    rows.iter().map(E::Model::read_row).collect()
}

/// The first row `select` finds, if any; for lookups by a key.
pub(crate) async fn fetch_one<E>(
    conn: &impl ConnectionTrait,
    select: sea_orm::Select<E>,
) -> Result<Option<E::Model>, DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: ReadRow,
{
    use sea_orm::QueryTrait;
    let row = conn.query_one_raw(select.build(conn.get_database_backend())).await?;
    row.as_ref().map(E::Model::read_row).transpose()
}

fn page_of<M, T>(
    rows: Vec<M>,
    total: u64,
    total_is_exact: bool,
    page: PageRequest,
    to_domain: fn(M) -> Result<T, DbErr>,
) -> Result<Page<T>, DbErr> {
    let items = rows.into_iter().map(to_domain).collect::<Result<_, _>>()?;
    Ok(Page { items, total, total_is_exact, limit: page.limit, offset: page.offset })
}

/// How the matches of a list gathered by `fetch_page_of_matches` are ordered. Each order ends on
/// the primary key.
pub(crate) enum MatchOrder<C: 'static> {
    /// The matches of each alternative in turn, each in its own order (one per alternative): a
    /// page is then read from the front of each alternative's index, whatever the matches.
    ByAlternative(Vec<&'static [C]>),
    /// Every match in one order: each alternative's matches are all read to find their first.
    Together(&'static [C]),
}

/// Like `fetch_page`, for lists whose condition is the start of a name: the rows of `matching`
/// that meet any of `alternatives` (the family name's start; the given name's), or all its rows when
/// there are none. Alternatives must never be NULL (a branch negates the earlier ones).
///
/// Why not `fetch_page`: PostgreSQL's planner cannot judge a prefix's matches. Given `ORDER BY
/// family_name … LIMIT 20` it walks the name index testing every row, hoping to find twenty early;
/// for a prefix whose matches sort late ("v…", or given names) that read most of a million-row table,
/// two seconds a page. So each alternative is a branch of its own, which leaves out what an
/// earlier one matched (the branches are disjoint, and joined with `UNION ALL`), and reads its
/// prefix's index alone. In `MatchOrder::ByAlternative` a branch's order is its index's, so it
/// stops after the page's end: a page costs the same at a million patients as at a thousand
/// (gathering and sorting every match cost 2.4 ms a search at a million, where a three-letter
/// prefix matches 2,222: BENCHMARKS.md). The matches are counted `counted_up_to` the page, for the
/// same reason. Only the page's rows are read whole. One statement: the count and the page come from the same snapshot in one round
/// trip.
///
/// The bounds are written into the statement, not passed as parameters, and a prefix is a range of
/// keys (`store::patients::key_starts_with`), not a `LIKE`: with neither, PostgreSQL can make one
/// plan of the statement for any prefix and keep it (from the sixth run on a connection). Planned
/// on every run, as it was, planning took twice the time of running it (1.5 ms against 0.8, at a
/// million patients; 0.3 ms a run with the kept plan).
pub(crate) async fn fetch_page_of_matches<E, T>(
    conn: &impl ConnectionTrait,
    matching: sea_orm::Select<E>,
    alternatives: Vec<sea_orm::sea_query::Expr>,
    order: MatchOrder<E::Column>,
    page: PageRequest,
    to_domain: fn(E::Model) -> Result<T, DbErr>,
) -> Result<Page<T>, DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: ReadRow,
{
    use sea_orm::{IdenStatic, Iterable};
    let branches = disjoint_branches(matching, &alternatives);
    let reach = page.offset + page.limit;
    let bound = counted_up_to(page);
    let table = E::default().table_name().to_owned();
    let key = order.of_branch(0).last().expect("an order ends on the primary key").as_str();
    let sort_columns: Vec<String> =
        std::iter::once("match_rank".to_owned()).chain((0..order.of_branch(0).len()).map(sorted_on)).collect();
    let sort_columns = sort_columns.join(", ");
    // The entity's columns in the order of its `Column` enum, as `models` reads them.
    let columns = E::Column::iter().map(|column| format!("listed.{}", column.as_str())).collect::<Vec<_>>().join(", ");
    // The count's one row, joined to the page's rows: still one row (of NULLs) when the page is
    // empty, so that the total always arrives.
    let mut statement = ComposedStatement::new(conn.get_database_backend());
    statement.text(&format!(
        "SELECT {columns}, counted.total_matches FROM (SELECT count(*) AS total_matches FROM \
         (SELECT matched FROM ("
    ));
    statement.union_all(&branches, |statement, _, rows| {
        statement.select(&matched(rows));
        statement.text(&format!(" LIMIT {}", bound + 1));
    });
    statement.text(&format!(
        ") AS matches LIMIT {}) AS first_matches) AS counted \
         LEFT JOIN (SELECT {table}.*, in_order.position FROM \
         (SELECT match_key, row_number() OVER (ORDER BY {sort_columns}) AS position FROM (",
        bound + 1
    ));
    statement.union_all(&branches, |statement, n, rows| first_matches_in_order(statement, rows, &order, n, reach));
    statement.text(&format!(
        ") AS candidates ORDER BY {sort_columns} LIMIT {limit} OFFSET {offset}) AS in_order \
         JOIN {table} ON {table}.{key} = in_order.match_key) AS listed ON true ORDER BY listed.position",
        limit = page.limit,
        offset = page.offset,
    ));
    let rows = conn.query_all_raw(statement.finish()).await?;
    let counted = match rows.first() {
        Some(row) => u64::try_from(row.try_get::<i64>("", "total_matches")?).unwrap_or(0),
        None => 0,
    };
    let on_the_page = std::cmp::min(counted.saturating_sub(page.offset), page.limit);
    let rows = if on_the_page == 0 { Vec::new() } else { rows };
    let rows = models::<E>(&rows)?;
    page_of(rows, std::cmp::min(counted, bound), counted <= bound, page, to_domain)
}

impl<C: sea_orm::ColumnTrait> MatchOrder<C> {
    /// The order of the `n`th branch's matches.
    fn of_branch(&self, n: usize) -> &'static [C] {
        match self {
            MatchOrder::ByAlternative(orders) => orders[n],
            MatchOrder::Together(columns) => columns,
        }
    }

    /// Where the `n`th branch's matches come in the list: all together, or after the earlier
    /// branches' matches.
    fn rank_of_branch(&self, n: usize) -> usize {
        match self {
            MatchOrder::ByAlternative(_) => n,
            MatchOrder::Together(_) => 0,
        }
    }
}

/// The rows of `matching` that meet each alternative and none before it, or `matching` alone when
/// there are no alternatives.
fn disjoint_branches<E: sea_orm::EntityTrait>(
    matching: sea_orm::Select<E>,
    alternatives: &[sea_orm::sea_query::Expr],
) -> Vec<sea_orm::Select<E>> {
    use sea_orm::QueryFilter;
    if alternatives.is_empty() {
        return vec![matching];
    }
    let branch = |n: usize| {
        let earlier = alternatives[..n].iter().cloned().map(sea_orm::sea_query::ExprTrait::not);
        earlier.fold(matching.clone().filter(alternatives[n].clone()), |rows, unmatched| rows.filter(unmatched))
    };
    (0..alternatives.len()).map(branch).collect()
}

/// The name of the `k`th column a page of matches is sorted on.
fn sorted_on(k: usize) -> String {
    format!("sort_{k}")
}

/// A branch's rows as the count reads them: `1 AS matched`, one per match.
fn matched<E: sea_orm::EntityTrait>(rows: &sea_orm::Select<E>) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::{QuerySelect, QueryTrait};
    rows.clone().select_only().expr_as(sea_orm::sea_query::Expr::cust("1"), "matched").into_query()
}

/// Writes the `n`th branch's first matches up to `reach`, in its order, with where they come
/// (`match_rank`), what they are sorted on (`sort_0`…) and their key (`match_key`). In one order
/// for every branch (`MatchOrder::Together`), the branch's matches are selected in a subquery
/// planned apart (`PLANNED_APART`) and sorted after, so that PostgreSQL reads them from the
/// prefix's index.
fn first_matches_in_order<E: sea_orm::EntityTrait>(
    statement: &mut ComposedStatement,
    rows: &sea_orm::Select<E>,
    order: &MatchOrder<E::Column>,
    n: usize,
    reach: u64,
) {
    use sea_orm::sea_query::Expr;
    use sea_orm::{QueryOrder, QuerySelect, QueryTrait};
    let columns = order.of_branch(n);
    let mut select = rows.clone().select_only().expr_as(Expr::cust(order.rank_of_branch(n).to_string()), "match_rank");
    for (k, column) in columns.iter().enumerate() {
        select = select.expr_as(Expr::col(*column), sorted_on(k));
    }
    select = select.expr_as(Expr::col(*columns.last().expect("an order ends on the primary key")), "match_key");
    let sort_keys = (0..columns.len()).map(sorted_on).collect::<Vec<_>>().join(", ");
    match order {
        MatchOrder::ByAlternative(_) => {
            let in_order = columns.iter().fold(select, |select, column| select.order_by_asc(*column));
            statement.select(&in_order.into_query());
            statement.text(&format!(" LIMIT {reach}"));
        }
        MatchOrder::Together(_) => {
            statement.text("SELECT * FROM (");
            statement.select(&select.into_query());
            statement.text(&format!(" LIMIT {PLANNED_APART}) AS matches ORDER BY {sort_keys} LIMIT {reach}"));
        }
    }
}

/// A statement written in pieces: text of the code's own, in which nothing of a caller's is
/// written, and sea-query selects, whose values become parameters numbered across the pieces.
struct ComposedStatement {
    backend: DbBackend,
    sql: sea_orm::sea_query::SqlWriterValues,
}

impl ComposedStatement {
    fn new(backend: DbBackend) -> Self {
        use sea_orm::sea_query::{PostgresQueryBuilder, QueryBuilder, SqliteQueryBuilder};
        let (placeholder, numbered) = match backend {
            DbBackend::Postgres => PostgresQueryBuilder.placeholder(),
            _ => SqliteQueryBuilder.placeholder(),
        };
        ComposedStatement { backend, sql: sea_orm::sea_query::SqlWriterValues::new(placeholder, numbered) }
    }

    fn text(&mut self, text: &str) {
        use std::fmt::Write;
        self.sql.write_str(text).expect("writing to a String cannot fail");
    }

    fn select(&mut self, select: &sea_orm::sea_query::SelectStatement) {
        use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
        match self.backend {
            DbBackend::Postgres => select.build_collect_into(PostgresQueryBuilder, &mut self.sql),
            _ => select.build_collect_into(SqliteQueryBuilder, &mut self.sql),
        }
    }

    /// The rows of every branch as `write` selects them, joined by `UNION ALL`, each branch a
    /// subquery of its own, which keeps its `ORDER BY` and `LIMIT` (SQLite takes neither on a
    /// compound's member).
    fn union_all<B>(&mut self, branches: &[B], mut write: impl FnMut(&mut Self, usize, &B)) {
        for (n, branch) in branches.iter().enumerate() {
            self.text(if n == 0 { "SELECT * FROM (" } else { " UNION ALL SELECT * FROM (" });
            write(self, n, branch);
            self.text(&format!(") AS branch_{n}"));
        }
    }

    fn finish(self) -> Statement {
        let (sql, values) = self.sql.into_parts();
        Statement::from_sql_and_values(self.backend, sql, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/hc"), "postgres://app:****@db:5432/hc");
        assert_eq!(redact_url("postgres://app@db/hc"), "postgres://app@db/hc");
        assert_eq!(redact_url("sqlite://./data/healthcore.db"), "sqlite://./data/healthcore.db");
        assert_eq!(
            redact_url("postgres://app@db/hc?sslmode=require&password=s3cret"),
            "postgres://app@db/hc?sslmode=require&password=****"
        );
        assert_eq!(redact_url("postgres://a:p@ss@db/hc?user=x@y"), "postgres://a:****@db/hc?user=x@y");
        assert_eq!(redact_url("postgres://db/hc?%70assword=s3cret"), "postgres://db/hc?%70assword=****");
    }

    #[test]
    fn secrets_are_masked_in_driver_messages() {
        let url = "postgres://app:p%40ss@db/hc?password=s3cret";
        assert_eq!(redact_secrets_in("bad value s3cret and p@ss", url), "bad value **** and ****");
    }

    /// Counts interruptions, and nothing else.
    #[derive(Default)]
    struct CountsInterruptions(std::sync::atomic::AtomicU32);

    impl StoreObserver for CountsInterruptions {
        fn statement(&self, _: Backend, _: &str, _: std::time::Duration, _: bool) {}
        fn write_acquired(&self, _: std::time::Duration) {}
        fn events_committed(&self, _: &[crate::events::EventType]) {}
        fn request_pool(&self, _: u32, _: PoolSize) {}
        fn round_trip_interrupted(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A refusal the database answered is not an interruption; a write transaction dropped
    /// unfinished is, once, and is counted.
    #[tokio::test]
    async fn interruptions_are_dropped_transactions_not_answered_refusals() {
        let folder = std::env::temp_dir().join(format!("hc_interrupted_{}", uuid::Uuid::new_v4().simple()));
        let observer = Arc::new(CountsInterruptions::default());
        let url = format!("sqlite://{}/hc.db", folder.display());
        let store = Store::connect_observed(&url, 2, DbLimits::default(), observer.clone()).await.unwrap();
        let interruptions = || observer.0.load(std::sync::atomic::Ordering::Relaxed);
        store.db_execute("CREATE TABLE t (k INTEGER PRIMARY KEY)").await.unwrap();
        store.db_execute("INSERT INTO t VALUES (1)").await.unwrap();
        let tx = store.begin_write().await.unwrap();
        let refused = tx.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap_err();
        assert!(is_refused_by_database(&refused), "{refused:?}");
        tx.rollback().await.unwrap();
        assert_eq!(interruptions(), 0, "an answered refusal and a rollback");
        drop(store.begin_write().await.unwrap());
        assert_eq!(interruptions(), 1, "a dropped transaction");
        assert!(store.db().interruptions().recent());
        store.close().await;
        let _ = std::fs::remove_dir_all(folder);
    }

    #[test]
    fn backend_is_chosen_by_url_scheme() {
        assert_eq!(Backend::from_url("sqlite://x.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("postgresql://h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::from_url("mysql://h/db"), None);
    }
}
