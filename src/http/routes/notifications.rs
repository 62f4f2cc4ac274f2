use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::PageInfo;
use crate::error::AppResult;
use crate::http::extract::{Caller, QueryParams};
use crate::http::params::{LIMIT, OFFSET, Params, Query, Rule, query_parameters};
use crate::http::problem::Problem;
use crate::service::notifications as service;
use crate::state::AppState;
use crate::store::notifications::NotificationFilter;
use crate::store::webhooks::Delivery;

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    /// `appointment_booked`, `appointment_rescheduled` or `appointment_cancelled`.
    pub kind: String,
    pub event_id: Uuid,
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub correlation_id: String,
    pub created_at: DateTime<Utc>,
    /// `prepared` (no webhook configured), or the delivery's `pending`, `delivered` or `failed`.
    pub status: String,
    pub delivery: Option<Delivery>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    pub items: Vec<NotificationView>,
    pub page: PageInfo,
}

const PATIENT: Query = Query::of("patient_id", Rule::Uuid, "only this patient's notifications");
const APPOINTMENT: Query = Query::of("appointment_id", Rule::Uuid, "only notifications about this appointment");

query_parameters!(NotificationQuery: PATIENT, APPOINTMENT, LIMIT, OFFSET);

/// Patient notifications prepared by the notifications consumer, newest first, with their webhook
/// delivery status (admins and receptionists; audited per patient).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    params(NotificationQuery),
    responses((status = 200, body = NotificationList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_notifications(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<NotificationList>> {
    let mut params = Params::new(&query);
    let filter = NotificationFilter { patient_id: params.uuid(&PATIENT), appointment_id: params.uuid(&APPOINTMENT) };
    let page = params.page();
    params.finish()?;
    let (page, mut deliveries) = service::list(&state, &ctx, filter, page).await?;
    let info = PageInfo::from(&page);
    let items = page
        .items
        .into_iter()
        .map(|n| {
            let delivery = n.delivery_id.and_then(|id| deliveries.remove(&id));
            let status = delivery.as_ref().map_or("prepared", |d| d.status.as_str()).to_owned();
            NotificationView {
                id: n.id,
                kind: n.kind,
                event_id: n.event_id,
                appointment_id: n.appointment_id.into(),
                patient_id: n.patient_id.into(),
                practitioner_id: n.practitioner_id.into(),
                start: n.starts_at,
                end: n.ends_at,
                correlation_id: n.correlation_id,
                created_at: n.created_at,
                status,
                delivery,
            }
        })
        .collect();
    Ok(Json(NotificationList { items, page: info }))
}
