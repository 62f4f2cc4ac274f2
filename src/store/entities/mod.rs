//! SeaORM entities: the rows as the database holds them. Conversion to and from domain types lives
//! in the repository module of each table, so the domain never depends on the ORM.

pub mod analytics_daily_appointments;
pub mod analytics_daily_patients;
pub mod appointment;
pub mod appointment_reminder;
pub mod audit_event;
pub mod consumer_inbox;
pub mod dead_letter;
pub mod idempotency_key;
pub mod integration_subscription;
pub mod job_run;
pub mod job_sweep;
pub mod notification;
pub mod outbox_event;
pub mod patient;
pub mod practitioner;
pub mod user;
pub mod webhook_delivery;
