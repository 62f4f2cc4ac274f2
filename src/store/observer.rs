//! What the store reports about its own work, to whoever watches it. The store defines this narrow
//! interface and `telemetry::metrics::Metrics` implements it (`app` passes it in), so persistence
//! does not depend on how metrics and traces are kept.

use std::time::Duration;

use super::Backend;
use crate::events::EventType;

/// The size of the request pool and how many of its connections are idle, read at scrape time.
pub type PoolSize = Box<dyn Fn() -> (u32, usize) + Send + Sync>;

pub trait StoreObserver: Send + Sync {
    /// A statement ran (its SQL text is for classifying it; it must never be recorded whole).
    fn statement(&self, backend: Backend, sql: &str, elapsed: Duration, failed: bool);

    /// A write transaction waited this long for its connection (on SQLite: and the writer's turn).
    fn write_acquired(&self, waited: Duration);

    /// A transaction that recorded events of these types committed.
    fn events_committed(&self, event_types: &[EventType]);

    /// The request pool opened, with at most `max_connections`; `size` reads its current size.
    fn request_pool(&self, max_connections: u32, size: PoolSize);

    /// A round trip ended without its whole answer (a deadline, a caller gone, a connection
    /// failure) or a write transaction was dropped unfinished (`db::Interruptions`).
    fn round_trip_interrupted(&self);
}

/// Watches nothing: a store opened by a tool or a test for its own use.
pub struct Unobserved;

impl StoreObserver for Unobserved {
    fn statement(&self, _: Backend, _: &str, _: Duration, _: bool) {}
    fn write_acquired(&self, _: Duration) {}
    fn events_committed(&self, _: &[EventType]) {}
    fn request_pool(&self, _: u32, _: PoolSize) {}
    fn round_trip_interrupted(&self) {}
}
