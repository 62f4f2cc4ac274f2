//! Reading the audit trail: admins and auditors only.

use super::authorize;
use crate::audit::Subject;
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
    authorize(
        state,
        ctx,
        Action::AuditRead,
        "audit.list",
        Subject { resource_type: "audit_event", resource_id: None, patient_id: filter.patient_id },
    )
    .await?;
    Ok(store::audit::list(state.store.db(), &filter, page).await?)
}
