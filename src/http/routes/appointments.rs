use axum::{Json, extract::State, response::Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::PageInfo;
use crate::domain::appointment::{BookingInput, CancelInput, RescheduleInput};
use crate::domain::{Appointment, AppointmentId, AppointmentStatus};
use crate::error::AppResult;
use crate::http::extract::{Caller, IdPath, IdempotencyKey, IfMatch, JsonBody, QueryParams};
use crate::http::params::{LIMIT, OFFSET, Params, Query, Rule, query_parameters};
use crate::http::problem::Problem;
use crate::http::response::{create_idempotently, resource};
use crate::service::appointments::{self as service, Transition};
use crate::service::idempotency::Disclosure;
use crate::state::AppState;
use crate::store::appointments::AppointmentFilter;

#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentList {
    pub items: Vec<Appointment>,
    pub page: PageInfo,
}

/// Book an appointment. Refused with 409 if the practitioner or the patient already has a booked
/// appointment overlapping the slot, or either is inactive.
#[utoipa::path(post, path = "/api/v1/appointments", tag = "appointments", request_body = BookingInput,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = Appointment, headers(("Location" = String), ("ETag" = String))),
        (status = 409, description = "double booking or inactive participant", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn book_appointment(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<BookingInput>,
) -> AppResult<Response> {
    create_idempotently(&state, &ctx, key, "/api/v1/appointments", &body.raw, Disclosure::Appointment, |ticket| {
        service::book(&state, &ctx, body.value, ticket)
    })
    .await
}

const PATIENT: Query = Query::of("patient_id", Rule::Uuid, "only this patient's appointments");
const PRACTITIONER: Query = Query::of("practitioner_id", Rule::Uuid, "only this practitioner's appointments");
const STATUS: Query = Query::of("status", Rule::OneOf(&AppointmentStatus::NAMES), "only appointments in this state");
const FROM: Query = Query::of("from", Rule::Time, "appointments starting at or after this instant");
const TO: Query = Query::of("to", Rule::Time, "appointments starting before this instant");

query_parameters!(AppointmentQuery: PATIENT, PRACTITIONER, STATUS, FROM, TO, LIMIT, OFFSET);

#[utoipa::path(get, path = "/api/v1/appointments", tag = "appointments",
    params(AppointmentQuery),
    responses((status = 200, body = AppointmentList), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_appointments(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<AppointmentList>> {
    let mut params = Params::new(&query);
    let filter = AppointmentFilter {
        patient_id: params.uuid(&PATIENT),
        practitioner_id: params.uuid(&PRACTITIONER),
        status: params.one_of(&STATUS, AppointmentStatus::parse),
        from: params.time(&FROM),
        to: params.time(&TO),
        ..AppointmentFilter::default()
    };
    let page = params.page();
    params.finish()?;
    let page = service::list(&state, &ctx, filter, page).await?;
    Ok(Json(AppointmentList { page: PageInfo::from(&page), items: page.items }))
}

#[utoipa::path(get, path = "/api/v1/appointments/{id}", tag = "appointments", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Appointment), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_appointment(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<AppointmentId>,
) -> AppResult<Response> {
    Ok(resource(service::get(&state, &ctx, id).await?))
}

/// Move a booked appointment to a new slot, under the same overlap rules as booking.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/reschedule", tag = "appointments", request_body = RescheduleInput,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Appointment), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 412, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn reschedule_appointment(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<AppointmentId>,
    IfMatch(version): IfMatch,
    body: JsonBody<RescheduleInput>,
) -> AppResult<Response> {
    Ok(resource(service::reschedule(&state, &ctx, id, body.value, version).await?))
}

/// Cancel a booked appointment; a reason is required.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/cancel", tag = "appointments", request_body = CancelInput,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Appointment), (status = 409, description = "not booked any more", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn cancel_appointment(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<AppointmentId>,
    IfMatch(version): IfMatch,
    body: JsonBody<CancelInput>,
) -> AppResult<Response> {
    Ok(resource(service::transition(&state, &ctx, id, Transition::Cancel(body.value), version).await?))
}

/// Mark a booked appointment completed; only once its start time has passed.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/complete", tag = "appointments",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Appointment), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn complete_appointment(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<AppointmentId>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    Ok(resource(service::transition(&state, &ctx, id, Transition::Complete, version).await?))
}

/// Mark a booked appointment as a no-show; only once its start time has passed.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/no-show", tag = "appointments",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Appointment), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn no_show_appointment(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<AppointmentId>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    Ok(resource(service::transition(&state, &ctx, id, Transition::NoShow, version).await?))
}
