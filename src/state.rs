//! Everything a request handler needs, built once at start-up and shared by reference.

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::auth::TokenIssuer;
use crate::auth::password::PasswordWork;
use crate::cache::ReferenceCache;
use crate::config::Config;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;

/// A handle on what every request shares. axum clones the state for every handler and every
/// middleware that takes it: a clone is one reference count, not a copy of the signing keys, the
/// caches' handles and the pool's (which cost about a twentieth of the server's CPU per read when
/// the fields were cloned one by one).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What `AppState` shares, built once at start-up.
pub struct Shared {
    pub store: Store,
    /// The application's time (tests move it forward).
    pub clock: crate::clock::Clock,
    /// This process's metrics (one registry: the store, the edges and the jobs all count into it).
    pub metrics: Arc<Metrics>,
    pub audit: AuditLog,
    pub tokens: TokenIssuer,
    pub config: Arc<Config>,
    /// A real Argon2 hash of a random password, verified against when a login names an unknown
    /// user, so that the response time does not tell which usernames exist.
    pub decoy_password_hash: Arc<str>,
    /// The bounded Argon2 runs every login and password change goes through.
    pub passwords: PasswordWork,
    /// Failed sign-ins per account name and client address (this instance's).
    pub login_throttle: crate::auth::throttle::LoginThrottle,
    /// Practitioners and users by id (see `cache` for how stale an entry may be).
    pub cache: ReferenceCache,
    /// Whether this instance hears of every change to user accounts, so that cached accounts can
    /// authenticate requests.
    pub account_changes: crate::cache::AccountChanges,
    /// The state of this process's relay, when it runs one.
    pub relay: Option<tokio::sync::watch::Receiver<RelayState>>,
}

/// What this process's relay last saw, as readiness reports it. The relay writes it; it is defined
/// here, with the state that holds it, so the state does not depend on the relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayState {
    pub leader: bool,
    /// The last publishing error, cleared by the next success.
    pub last_error: Option<String>,
}
