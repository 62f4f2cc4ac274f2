//! Reading the audit trail: admins and auditors only.

use super::authorize;
use crate::audit::{AuditAction, AuditOutcome, AuditRecord, Subject};
use crate::auth::Action;
use crate::context::RequestContext;
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::audit::{AuditEvent, AuditFilter};
use crate::store::{self, Page, PageRequest};

pub async fn list(
    state: &AppState,
    ctx: &RequestContext,
    filter: AuditFilter,
    page: PageRequest,
) -> AppResult<Page<AuditEvent>> {
    let subject = Subject { resource_type: "audit_event", resource_id: None, patient_id: filter.patient_id };
    ctx.concerns(None, filter.patient_id);
    authorize(state, ctx, Action::AuditRead, AuditAction::AuditList, subject).await?;
    let page = store::audit::list(state.store.db(), &filter, page).await?;
    // Who read whose access history is itself part of the trail.
    state.audit.record(vec![AuditRecord::new(ctx, AuditAction::AuditList, subject, AuditOutcome::Success)]).await?;
    Ok(page)
}
