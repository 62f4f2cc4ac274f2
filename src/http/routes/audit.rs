use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;

use super::PageInfo;
use crate::audit::AuditOutcome;
use crate::error::AppResult;
use crate::http::extract::{Caller, QueryParams};
use crate::http::params::Params;
use crate::http::problem::Problem;
use crate::state::AppState;
use crate::store::audit::{AuditEvent, AuditFilter};

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventList {
    pub items: Vec<AuditEvent>,
    pub page: PageInfo,
}

/// The audit trail, newest first (admins and auditors). Read-only: nothing modifies or deletes it.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit",
    params(
        ("patient_id" = Option<uuid::Uuid>, Query), ("actor_id" = Option<uuid::Uuid>, Query),
        ("action" = Option<String>, Query, description = "e.g. patient.read, appointment.book, auth.login"),
        ("outcome" = Option<String>, Query, description = "success, denied or error"),
        ("from" = Option<String>, Query, description = "RFC 3339, inclusive"), ("to" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("limit" = Option<u64>, Query), ("offset" = Option<u64>, Query),
    ),
    responses((status = 200, body = AuditEventList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<AuditEventList>> {
    let mut params = Params::new(&query);
    let filter = AuditFilter {
        patient_id: params.uuid("patient_id"),
        actor_id: params.uuid("actor_id"),
        action: params.text("action", 64),
        outcome: params
            .one_of("outcome", |v| AuditOutcome::parse(v).ok_or(("one_of", "must be success, denied or error".into()))),
        from: params.time("from"),
        to: params.time("to"),
    };
    let page = params.page();
    params.finish()?;
    let page = crate::service::audit_events::list(&state, &ctx, filter, page).await?;
    Ok(Json(AuditEventList { page: PageInfo::from(&page), items: page.items }))
}
