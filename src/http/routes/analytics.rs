use axum::{Json, extract::State};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AppResult;
use crate::http::extract::{Caller, QueryParams};
use crate::http::params::{Params, Query, Rule, query_parameters};
use crate::http::problem::Problem;
use crate::service::analytics as service;
use crate::state::AppState;
use crate::store::analytics::{DailyAppointments, DailyPatients};

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientAnalytics {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Days with at least one registration, oldest first.
    pub days: Vec<DailyPatients>,
    pub total_registered: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentTotals {
    pub booked: i64,
    pub cancelled: i64,
    pub completed: i64,
    pub no_show: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentAnalytics {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// One row per day and practitioner with any activity, oldest first.
    pub days: Vec<DailyAppointments>,
    pub totals: AppointmentTotals,
}

const FROM: Query = Query::of("from", Rule::Date, "first day (default: 29 days before `to`); not after `to`");
const TO: Query =
    Query::of("to", Rule::Date, "last day (default: today, UTC); at most 366 days after `from`, counting both");
const PRACTITIONER: Query = Query::of("practitioner_id", Rule::Uuid, "only this practitioner's appointments");

query_parameters!(PatientAnalyticsQuery: FROM, TO);
query_parameters!(AppointmentAnalyticsQuery: FROM, TO, PRACTITIONER);

/// Patients registered per day (UTC), from the analytics consumer (admins).
#[utoipa::path(get, path = "/api/v1/analytics/patients", tag = "analytics",
    params(PatientAnalyticsQuery),
    responses((status = 200, body = PatientAnalytics), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn patient_analytics(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<PatientAnalytics>> {
    let mut params = Params::new(&query);
    let (from, to) = (params.date(&FROM), params.date(&TO));
    params.finish()?;
    let (from, to) = service::range(from, to, ctx.clock.now().date_naive())?;
    let days = service::patients(&state, &ctx, from, to).await?;
    let total_registered = days.iter().map(|d| d.registered).sum();
    Ok(Json(PatientAnalytics { from, to, days, total_registered }))
}

/// Appointments booked, cancelled, completed and no-show per day (UTC) and practitioner, from
/// the analytics consumer (admins). A day is the day the event happened.
#[utoipa::path(get, path = "/api/v1/analytics/appointments", tag = "analytics",
    params(AppointmentAnalyticsQuery),
    responses((status = 200, body = AppointmentAnalytics), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn appointment_analytics(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<AppointmentAnalytics>> {
    let mut params = Params::new(&query);
    let (from, to) = (params.date(&FROM), params.date(&TO));
    let practitioner_id = params.uuid(&PRACTITIONER);
    params.finish()?;
    let (from, to) = service::range(from, to, ctx.clock.now().date_naive())?;
    let days = service::appointments(&state, &ctx, from, to, practitioner_id).await?;
    let totals = AppointmentTotals {
        booked: days.iter().map(|d| d.booked).sum(),
        cancelled: days.iter().map(|d| d.cancelled).sum(),
        completed: days.iter().map(|d| d.completed).sum(),
        no_show: days.iter().map(|d| d.no_show).sum(),
    };
    Ok(Json(AppointmentAnalytics { from, to, days, totals }))
}
