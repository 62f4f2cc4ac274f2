//! HealthCore: a healthcare records-and-scheduling API. See `docs/ARCHITECTURE.md` for the map.
//!
//! The public modules are the crate's interface: what the binary (`main.rs`, `cli`) and the test
//! suite use. The others are private, so that what nothing uses is reported as dead code.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consumers;
pub mod context;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod jobs;
pub mod relay;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod telemetry;

/// Audit records of requests, operators and jobs, and the group-commit writer of reads' records.
mod audit;
/// The retry pause policy shared by the relay, the consumers, the webhook worker and the jobs.
mod backoff;
/// The reference-data caches (practitioners, users) and the account-change listener.
mod cache;
/// `healthcore seed`: demo data through the same use cases as the API.
mod seed;
/// The application state the handlers share.
mod state;
