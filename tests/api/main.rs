//! The API suite: every test runs against a real server on a loopback port, once on SQLite and
//! once on PostgreSQL (see `helpers::on_both_backends!`).

mod helpers;

mod alertmanager;
mod appointments;
mod architecture;
mod asyncapi;
mod audit;
mod audit_archive;
mod auth;
mod authorization;
mod chaos;
mod cli;
mod concurrency;
mod consumers;
mod contract;
mod dashboards;
mod deployment;
mod errors;
mod events;
mod fhir;
mod fuzz;
mod health;
mod idempotency;
mod input;
mod jobs;
mod kafka;
mod kafka_consumers;
mod limits;
mod logs;
mod metrics;
mod openapi;
mod outage;
mod patients;
mod practitioners;
mod prometheus;
mod relay;
mod retention;
mod schemas;
mod topics;
mod traces;
mod webhook_receiver;
