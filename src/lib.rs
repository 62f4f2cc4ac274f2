//! HealthCore: a healthcare records-and-scheduling API. See `docs/ARCHITECTURE.md` for the map.
//!
//! The crate's interface is what the binary uses: `cli` and `config`. Every other module is
//! private, so that what nothing uses is reported as dead code; the integration suite reaches
//! below HTTP through `testing`, which names each piece it uses.

mod app;
mod auth;
pub mod cli;
mod clock;
pub mod config;
mod consumers;
mod context;
mod domain;
mod error;
mod events;
mod http;
mod jobs;
mod relay;
mod service;
mod shutdown;
mod store;
mod telemetry;
#[doc(hidden)]
pub mod testing;

/// Audit records of requests, operators and jobs, and the group-commit writer of reads' records.
mod audit;
/// The retry pause policy shared by the relay, the consumers, the webhook worker and the jobs.
mod backoff;
/// The reference-data caches (practitioners, users) and the account-change listener.
mod cache;
/// The application state the handlers share.
mod state;
