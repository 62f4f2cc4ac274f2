use axum::{Json, extract::State};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AppResult;
use crate::http::extract::{Caller, QueryParams};
use crate::http::params::Params;
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

/// Patients registered per day (UTC), from the analytics consumer (admins).
#[utoipa::path(get, path = "/api/v1/analytics/patients", tag = "analytics",
    params(
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD (default: 29 days before `to`)"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD (default: today, UTC); at most 366 days in all"),
    ),
    responses((status = 200, body = PatientAnalytics), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn patient_analytics(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<PatientAnalytics>> {
    let mut params = Params::new(&query);
    let (from, to) = (params.date("from"), params.date("to"));
    params.finish()?;
    let (from, to) = service::range(from, to, ctx.clock.now().date_naive())?;
    let days = service::patients(&state, &ctx, from, to).await?;
    let total_registered = days.iter().map(|d| d.registered).sum();
    Ok(Json(PatientAnalytics { from, to, days, total_registered }))
}

/// Appointments booked, cancelled, completed and no-show per day (UTC) and practitioner, from
/// the analytics consumer (admins). A day is the day the event happened.
#[utoipa::path(get, path = "/api/v1/analytics/appointments", tag = "analytics",
    params(
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD (default: 29 days before `to`)"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD (default: today, UTC); at most 366 days in all"),
        ("practitioner_id" = Option<uuid::Uuid>, Query),
    ),
    responses((status = 200, body = AppointmentAnalytics), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn appointment_analytics(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<AppointmentAnalytics>> {
    let mut params = Params::new(&query);
    let (from, to) = (params.date("from"), params.date("to"));
    let practitioner_id = params.uuid("practitioner_id");
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
