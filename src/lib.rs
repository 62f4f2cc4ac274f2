//! HealthCore: a healthcare records-and-scheduling API. See `docs/ARCHITECTURE.md` for the map.

pub mod app;
pub mod audit;
pub mod auth;
pub mod backoff;
pub mod cache;
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
pub mod seed;
pub mod service;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod telemetry;
