use axum::{Json, extract::State, response::Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::PageInfo;
use crate::domain::practitioner::{PractitionerInput, PractitionerPatchInput};
use crate::domain::{NAME_FILTER_MAX, Practitioner, PractitionerId, PractitionerRole};
use crate::error::AppResult;
use crate::http::extract::{Caller, IdPath, IdempotencyKey, IfMatch, JsonBody, QueryParams};
use crate::http::params::{LIMIT, OFFSET, Params, Query, Rule, query_parameters};
use crate::http::problem::Problem;
use crate::http::response::{create_idempotently, resource};
use crate::service::idempotency::Disclosure;
use crate::service::practitioners as service;
use crate::state::AppState;
use crate::store::practitioners::PractitionerFilter;

#[derive(Debug, Serialize, ToSchema)]
pub struct PractitionerList {
    pub items: Vec<Practitioner>,
    pub page: PageInfo,
}

/// Add a practitioner (admin only). Licence numbers are unique.
#[utoipa::path(post, path = "/api/v1/practitioners", tag = "practitioners", request_body = PractitionerInput,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = Practitioner, headers(("Location" = String), ("ETag" = String))),
        (status = 409, description = "duplicate licence number", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn create_practitioner(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<PractitionerInput>,
) -> AppResult<Response> {
    create_idempotently(&state, &ctx, key, "/api/v1/practitioners", &body.raw, Disclosure::Nothing, |ticket| {
        service::create(&state, &ctx, body.value, ticket)
    })
    .await
}

const NAME: Query = Query::text("name", NAME_FILTER_MAX, "case-insensitive prefix of the given or family name");
const LICENCE: Query = Query::text("licence_number", NAME_FILTER_MAX, "prefix of the licence number");
const ROLE: Query = Query::of("role", Rule::OneOf(&PractitionerRole::NAMES), "only practitioners of this role");
const ACTIVE: Query = Query::of("active", Rule::Boolean, "only active (or only deactivated) practitioners");

query_parameters!(PractitionerQuery: NAME, LICENCE, ROLE, ACTIVE, LIMIT, OFFSET);

#[utoipa::path(get, path = "/api/v1/practitioners", tag = "practitioners",
    params(PractitionerQuery),
    responses((status = 200, body = PractitionerList), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_practitioners(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<PractitionerList>> {
    let mut params = Params::new(&query);
    let filter = PractitionerFilter {
        name_prefix: params.text(&NAME),
        licence_prefix: params.text(&LICENCE),
        role: params.one_of(&ROLE, |v| PractitionerRole::parse(v).ok()),
        active: params.boolean(&ACTIVE),
        ..PractitionerFilter::default()
    };
    let page = params.page();
    params.finish()?;
    let page = service::list(&state, &ctx, filter, page).await?;
    Ok(Json(PractitionerList { page: PageInfo::from(&page), items: page.items }))
}

#[utoipa::path(get, path = "/api/v1/practitioners/{id}", tag = "practitioners", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Practitioner), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_practitioner(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<PractitionerId>,
) -> AppResult<Response> {
    Ok(resource(service::get(&state, &ctx, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/practitioners/{id}", tag = "practitioners", request_body = PractitionerPatchInput,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Practitioner), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 412, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_practitioner(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<PractitionerId>,
    IfMatch(version): IfMatch,
    body: JsonBody<PractitionerPatchInput>,
) -> AppResult<Response> {
    Ok(resource(service::update(&state, &ctx, id, body.value, version).await?))
}

/// Deactivate a practitioner; their future booked appointments are cancelled.
#[utoipa::path(delete, path = "/api/v1/practitioners/{id}", tag = "practitioners", params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Practitioner), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn deactivate_practitioner(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<PractitionerId>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    Ok(resource(service::set_active(&state, &ctx, id, false, version).await?))
}

#[utoipa::path(post, path = "/api/v1/practitioners/{id}/reactivate", tag = "practitioners", params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Practitioner), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn reactivate_practitioner(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<PractitionerId>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    Ok(resource(service::set_active(&state, &ctx, id, true, version).await?))
}
