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
    let page = store::audit::list(&state.store, &filter, page).await?;
    // Who read whose access history is itself part of the trail.
    state.audit.record(vec![AuditRecord::new(ctx, AuditAction::AuditList, subject, AuditOutcome::Success)]).await?;
    Ok(page)
}

/// One record of the trail (FHIR's AuditEvent read); its reading is recorded like a listing of it.
pub async fn get(state: &AppState, ctx: &RequestContext, id: uuid::Uuid) -> AppResult<AuditEvent> {
    let unknown = Subject { resource_type: "audit_event", resource_id: Some(id), patient_id: None };
    authorize(state, ctx, Action::AuditRead, AuditAction::AuditList, unknown).await?;
    let event =
        store::audit::find(state.store.db(), id).await?.ok_or(crate::error::AppError::NotFound("audit event"))?;
    let patient_id = event.patient_id.map(crate::domain::PatientId::from_uuid);
    ctx.concerns(Some(id), patient_id);
    let subject = Subject { patient_id, ..unknown };
    state.audit.record(vec![AuditRecord::new(ctx, AuditAction::AuditList, subject, AuditOutcome::Success)]).await?;
    Ok(event)
}
