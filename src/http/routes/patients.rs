use axum::{Json, extract::State, response::Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::PageInfo;
use crate::domain::patient::{PatientInput, PatientPatchInput};
use crate::domain::{NAME_FILTER_MAX, Patient, PatientId};
use crate::error::AppResult;
use crate::http::extract::{Caller, IdPath, IdempotencyKey, IfMatch, JsonBody, QueryParams};
use crate::http::params::{LIMIT, OFFSET, Params, Query, Rule, query_parameters};
use crate::http::problem::Problem;
use crate::http::response::{create_idempotently, resource};
use crate::service::idempotency::Disclosure;
use crate::service::patients as service;
use crate::state::AppState;
use crate::store::patients::{PatientFilter, PatientSort};

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientList {
    pub items: Vec<Patient>,
    pub page: PageInfo,
}

/// Register a patient. The MRN is generated.
#[utoipa::path(post, path = "/api/v1/patients", tag = "patients", request_body = PatientInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeat-safe creation; same key and body replays the response")),
    responses(
        (status = 201, description = "registered", body = Patient, headers(("Location" = String), ("ETag" = String))),
        (status = 422, description = "invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not allowed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn create_patient(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<PatientInput>,
) -> AppResult<Response> {
    create_idempotently(&state, &ctx, key, "/api/v1/patients", &body.raw, Disclosure::Patient, |ticket| {
        service::register(&state, &ctx, body.value, ticket)
    })
    .await
}

const NAME: Query = Query::text(
    "name",
    NAME_FILTER_MAX,
    "case-insensitive prefix of the given or family name; the family name's matches are listed first",
);
const MRN: Query = Query::text("mrn", NAME_FILTER_MAX, "prefix of the MRN");
const ACTIVE: Query = Query::of("active", Rule::Boolean, "only active (or only deactivated) patients");
const SORT: Query = Query::of("sort", Rule::OneOf(&["name", "created_at"]), "`name` (the default) or `created_at`");

query_parameters!(PatientQuery: NAME, MRN, ACTIVE, SORT, LIMIT, OFFSET);

/// List patients: filter by name or MRN prefix and active flag; sorted by name (or creation time).
#[utoipa::path(get, path = "/api/v1/patients", tag = "patients",
    params(PatientQuery),
    responses((status = 200, body = PatientList), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_patients(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<PatientList>> {
    let mut params = Params::new(&query);
    let filter = PatientFilter {
        name_prefix: params.text(&NAME),
        mrn_prefix: params.text(&MRN),
        active: params.boolean(&ACTIVE),
        only: None,
        sort: params
            .one_of(&SORT, |v| match v {
                "name" => Some(PatientSort::Name),
                "created_at" => Some(PatientSort::CreatedAt),
                _ => None,
            })
            .unwrap_or_default(),
        ..PatientFilter::default()
    };
    let page = params.page();
    params.finish()?;
    let page = service::list(&state, &ctx, filter, page).await?;
    Ok(Json(PatientList { page: PageInfo::from(&page), items: page.items }))
}

#[utoipa::path(get, path = "/api/v1/patients/{id}", tag = "patients", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Patient, headers(("ETag" = String))), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_patient(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<PatientId>,
) -> AppResult<Response> {
    Ok(resource(service::get(&state, &ctx, id).await?))
}

/// Partial update: absent fields are kept, `null` clears an optional field. Send `If-Match` with
/// the ETag you read to be refused (412) if someone else changed the patient meanwhile.
#[utoipa::path(patch, path = "/api/v1/patients/{id}", tag = "patients", request_body = PatientPatchInput,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Patient), (status = 412, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_patient(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<PatientId>,
    IfMatch(version): IfMatch,
    body: JsonBody<PatientPatchInput>,
) -> AppResult<Response> {
    Ok(resource(service::update(&state, &ctx, id, body.value, version).await?))
}

/// Deactivate a patient. The record is kept; future booked appointments are cancelled.
#[utoipa::path(delete, path = "/api/v1/patients/{id}", tag = "patients", params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Patient), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn deactivate_patient(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<PatientId>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    Ok(resource(service::deactivate(&state, &ctx, id, version).await?))
}

#[utoipa::path(post, path = "/api/v1/patients/{id}/reactivate", tag = "patients", params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Patient), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn reactivate_patient(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<PatientId>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    Ok(resource(service::reactivate(&state, &ctx, id, version).await?))
}
