//! The application layer: one function per use case. Each authorizes the caller, applies the
//! domain rules, and performs its writes — state change, audit record, events — in one
//! `UnitOfWork`. Services speak the domain: no status code, header or stored response here.

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
pub mod unit_of_work;
pub mod users;

use crate::audit::{AuditAction, AuditOutcome, AuditRecord, Subject};
use crate::auth::Action;
use crate::context::RequestContext;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

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

/// `If-Match` handling: a stale version is refused before anything changes.
pub fn check_version(expected: Option<i64>, current: i64) -> AppResult<()> {
    match expected {
        Some(expected) if expected != current => Err(AppError::PreconditionFailed { expected }),
        _ => Ok(()),
    }
}
