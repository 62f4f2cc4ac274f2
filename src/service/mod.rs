//! The application layer: one function per use case. Each authorizes the caller, applies the
//! domain rules, and performs its writes — state change and audit record — in one transaction.

pub mod analytics;
pub mod appointments;
pub mod audit_events;
pub mod auth;
pub mod health;
pub mod idempotency;
pub mod integrations;
pub mod notifications;
pub mod patients;
pub mod practitioners;
pub mod users;

use tracing::Instrument;

use crate::clock::now;

use crate::audit::{AuditAction, AuditOutcome, AuditRecord, Subject};
use crate::auth::Action;
use crate::context::RequestContext;
use crate::error::{AppError, AppResult};
use crate::events::{Envelope, NewEvent};
use crate::state::AppState;
use crate::store::{self, WriteTx};

/// Records the events of a change in the outbox, inside the change's transaction.
pub async fn record_events(tx: &WriteTx, ctx: &RequestContext, events: Vec<NewEvent>) -> AppResult<()> {
    if cfg!(feature = "bench-without-outbox") {
        return Ok(());
    }
    let now = now();
    let event_types: Vec<_> = events.iter().map(|e| e.event_type).collect();
    let envelopes: Vec<Envelope> = events.into_iter().map(|event| Envelope::new(event, ctx, now)).collect();
    // The events carry this span's traceparent: the relay and the consumers continue from it.
    let span = tracing::info_span!("outbox.write", event_count = envelopes.len());
    let traceparent = crate::telemetry::traces::traceparent(&span);
    store::outbox::append(tx, &envelopes, traceparent.as_deref()).instrument(span).await?;
    // The commit wakes this process's relay, and `relay::notify_other_processes` tells
    // relays elsewhere; a NOTIFY inside this transaction would serialize every commit on
    // PostgreSQL's notification lock (it halved create-patient throughput).
    tx.note_events_recorded(event_types);
    Ok(())
}

/// Checks the policy; a refusal is audited (durably, before the 403 is sent) and returned.
pub async fn authorize(
    state: &AppState,
    ctx: &RequestContext,
    action: Action,
    audit_action: AuditAction,
    subject: Subject,
) -> AppResult<()> {
    if ctx.principal.may(action, subject.patient_id) {
        return Ok(());
    }
    state.audit.record(vec![AuditRecord::new(ctx, audit_action, subject, AuditOutcome::Denied)]).await?;
    Err(AppError::Forbidden(action.describe()))
}

/// A resource's version as the strong ETag the API sends and `If-Match` compares (`"3"`).
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// `If-Match` handling: a stale version is refused before anything changes.
pub fn check_version(expected: Option<i64>, current: i64) -> AppResult<()> {
    match expected {
        Some(expected) if expected != current => Err(AppError::PreconditionFailed { expected }),
        _ => Ok(()),
    }
}
