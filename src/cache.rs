//! In-memory caches of hot reference data: practitioners by id and users by id (the `/auth/me`
//! lookup). Patients are never cached: every patient read goes to the database and is audited.
//!
//! A write through this instance invalidates the entry when its transaction commits; another
//! instance's write is seen once the entry expires (`HEALTHCORE_CACHE_TTL_SECONDS`, 30 s by
//! default). A read that races a write can also put the old row back until it expires. That bound
//! is the price of not sharing a cache between instances; anything that must not be stale (booking
//! checks, updates with `If-Match`) reads the row inside its transaction, never from here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::notification::RemovalCause;
use sea_orm::DbErr;

use crate::domain::practitioner::Practitioner;
use crate::domain::{PractitionerId, UserId};
use crate::shutdown::Shutdown;
use crate::store::users::User;
use crate::telemetry::metrics::{CacheEvictionLabels, CacheLabels, Metrics};

/// Entries per cache: far more than a hospital's practitioners or active users, small in memory.
const MAX_ENTRIES: u64 = 50_000;

/// One named cache of values by id, counting hits, misses and removals by cause.
#[derive(Clone)]
pub struct NamedCache<Id: CacheKey, V: Clone + Send + Sync + 'static> {
    name: &'static str,
    entries: moka::sync::Cache<Id, V>,
    metrics: Arc<Metrics>,
}

/// What a cache key needs (the domain's typed ids, `PractitionerId` and `UserId` here, have it).
pub trait CacheKey: Copy + Eq + std::hash::Hash + Send + Sync + 'static {}
impl<T: Copy + Eq + std::hash::Hash + Send + Sync + 'static> CacheKey for T {}

impl<Id: CacheKey, V: Clone + Send + Sync + 'static> NamedCache<Id, V> {
    fn new(name: &'static str, ttl: Duration, metrics: Arc<Metrics>) -> NamedCache<Id, V> {
        let counted = metrics.clone();
        let entries = moka::sync::Cache::builder()
            .name(name)
            .max_capacity(MAX_ENTRIES)
            .time_to_live(ttl)
            .eviction_listener(move |_id, _value, cause| {
                let cause = match cause {
                    RemovalCause::Expired => "expired",
                    RemovalCause::Explicit => "explicit",
                    RemovalCause::Replaced => "replaced",
                    RemovalCause::Size => "size",
                };
                counted.cache.evictions.get_or_create(&CacheEvictionLabels { cache: name, cause }).inc();
            })
            .build();
        NamedCache { name, entries, metrics }
    }

    /// The cached value, or what `load` reads (kept when found; a miss is not remembered, so a row
    /// created a moment later is found at once).
    pub async fn get_or_load<F, Fut>(&self, id: Id, load: F) -> Result<Option<V>, DbErr>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, DbErr>>,
    {
        if let Some(value) = self.entries.get(&id) {
            self.count("hit");
            return Ok(Some(value));
        }
        self.count("miss");
        let loaded = load().await?;
        if let Some(value) = &loaded {
            self.entries.insert(id, value.clone());
        }
        Ok(loaded)
    }

    /// Drops the entry (call after the transaction that changed the row committed).
    pub fn invalidate(&self, id: Id) {
        self.entries.invalidate(&id);
    }

    fn count(&self, outcome: &'static str) {
        self.metrics.cache.requests.get_or_create(&CacheLabels { cache: self.name, outcome }).inc();
    }
}

/// The caches a process keeps, shared by every request it serves.
#[derive(Clone)]
pub struct ReferenceCache {
    pub practitioners: NamedCache<PractitionerId, Practitioner>,
    pub users: NamedCache<UserId, User>,
}

impl ReferenceCache {
    pub fn new(ttl: Duration, metrics: Arc<Metrics>) -> ReferenceCache {
        ReferenceCache {
            practitioners: NamedCache::new("practitioners", ttl, metrics.clone()),
            users: NamedCache::new("users", ttl, metrics),
        }
    }
}

/// Whether this instance hears of every change to user accounts, made by any process (another
/// instance, `healthcore user …`): on PostgreSQL while its `LISTEN` connection is up (each change
/// `NOTIFY`s the account's id). Only then may a cached account authenticate a request; otherwise
/// accounts are read for each request (always on SQLite, whose commands run in other processes
/// with no channel to this one — and where the read is a local one).
#[derive(Clone, Default)]
pub struct AccountChanges {
    heard: Arc<std::sync::atomic::AtomicBool>,
}

impl AccountChanges {
    pub fn heard(&self) -> bool {
        self.heard.load(std::sync::atomic::Ordering::Acquire)
    }

    fn set(&self, heard: bool) {
        self.heard.store(heard, std::sync::atomic::Ordering::Release);
    }
}

/// How often the listener checks that its connection is still the one to trust: after the
/// database pool was replaced (a fault), a listener connection may be silently dead.
const RECHECK_LISTENER: Duration = Duration::from_secs(5);

/// Follows account changes until `shutdown` (PostgreSQL only): invalidates the changed account's
/// cache entry at once, and forgets every entry whenever it (re)starts listening, since changes
/// made while it was not listening were not heard.
pub async fn follow_account_changes(
    store: crate::store::Store,
    users: NamedCache<UserId, User>,
    changes: AccountChanges,
    mut shutdown: Shutdown,
) {
    use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
    if store.backend() != crate::store::Backend::Postgres {
        return;
    }
    let Ok(options) = store.url().parse::<sea_orm::sqlx::postgres::PgConnectOptions>() else { return };
    let limits = store.db().limits();
    let options = crate::store::with_server_limits(options, limits);
    while !shutdown.is_shutdown() {
        let generation = store.db().generation();
        let pool =
            PgPoolOptions::new().max_connections(1).acquire_timeout(limits.acquire).connect_lazy_with(options.clone());
        let connect = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(crate::store::users::CHANGES_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        if let Ok(Ok(mut listener)) = tokio::time::timeout(limits.acquire + limits.round_trip(), connect).await {
            users.entries.invalidate_all();
            changes.set(true);
            loop {
                tokio::select! {
                    notification = listener.recv() => match notification {
                        Ok(notification) => {
                            if let Ok(id) = notification.payload().parse::<UserId>() {
                                users.invalidate(id);
                            }
                        }
                        Err(_) => break,
                    },
                    () = tokio::time::sleep(RECHECK_LISTENER) => {
                        if store.db().generation() != generation {
                            break;
                        }
                    }
                    _ = shutdown.recv() => break,
                }
            }
            changes.set(false);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.recv() => {}
        }
    }
}
