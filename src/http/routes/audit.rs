use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;

use super::PageInfo;
use crate::audit::AuditOutcome;
use crate::error::AppResult;
use crate::http::extract::{Caller, QueryParams};
use crate::http::params::{LIMIT, OFFSET, Params, Query, Rule, query_parameters};
use crate::http::problem::Problem;
use crate::state::AppState;
use crate::store::audit::{AuditEvent, AuditFilter};

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventList {
    pub items: Vec<AuditEvent>,
    pub page: PageInfo,
}

const PATIENT: Query = Query::of("patient_id", Rule::Uuid, "records about this patient");
const ACTOR: Query = Query::of("actor_id", Rule::Uuid, "records of this user's actions");
const ACTION: Query = Query::text("action", 64, "e.g. patient.read, appointment.book, auth.login");
const OUTCOME: Query = Query::of("outcome", Rule::OneOf(&AuditOutcome::NAMES), "success, denied or error");
const FROM: Query = Query::of("from", Rule::Time, "records at or after this instant");
const TO: Query = Query::of("to", Rule::Time, "records before this instant");

query_parameters!(AuditQuery: PATIENT, ACTOR, ACTION, OUTCOME, FROM, TO, LIMIT, OFFSET);

/// The audit trail, newest first (admins and auditors). Read-only: nothing modifies or deletes it.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit",
    params(AuditQuery),
    responses((status = 200, body = AuditEventList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<AuditEventList>> {
    let mut params = Params::new(&query);
    let filter = AuditFilter {
        patient_id: params.uuid(&PATIENT),
        actor_id: params.uuid(&ACTOR),
        action: params.text(&ACTION),
        outcome: params.one_of(&OUTCOME, AuditOutcome::parse),
        from: params.time(&FROM),
        to: params.time(&TO),
        ..AuditFilter::default()
    };
    let page = params.page();
    params.finish()?;
    let page = crate::service::audit_events::list(&state, &ctx, filter, page).await?;
    Ok(Json(AuditEventList { page: PageInfo::from(&page), items: page.items }))
}
