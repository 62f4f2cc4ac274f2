use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::PageInfo;
use crate::error::AppResult;
use crate::http::extract::{Caller, IdPath, JsonBody, QueryParams};
use crate::http::params::{LIMIT, OFFSET, PageQuery, Params, Query, Rule, query_parameters};
use crate::http::problem::Problem;
use crate::service::integrations::{self as service, SubscriptionInput};
use crate::state::AppState;
use crate::store::subscriptions::Subscription;
use crate::store::webhooks::{Delivery, DeliveryStatus};

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<Subscription>,
    pub page: PageInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<Delivery>,
    pub page: PageInfo,
}

/// Register an external system's callback for the event types it wants (admins). Deliveries are
/// POSTs of the event envelope signed with the secret (`X-HealthCore-Signature`, see docs/EVENTS.md).
#[utoipa::path(post, path = "/api/v1/integrations/subscriptions", tag = "integrations", request_body = SubscriptionInput,
    responses((status = 201, body = Subscription, headers(("Location" = String))),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_subscription(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    body: JsonBody<SubscriptionInput>,
) -> AppResult<Response> {
    let subscription = service::create(&state, &ctx, body.value).await?;
    let location = format!("/api/v1/integrations/subscriptions/{}", subscription.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(subscription)).into_response())
}

#[utoipa::path(get, path = "/api/v1/integrations/subscriptions", tag = "integrations",
    params(PageQuery),
    responses((status = 200, body = SubscriptionList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<SubscriptionList>> {
    let mut params = Params::new(&query);
    let page = params.page();
    params.finish()?;
    let page = service::list(&state, &ctx, page).await?;
    Ok(Json(SubscriptionList { page: PageInfo::from(&page), items: page.items }))
}

#[utoipa::path(get, path = "/api/v1/integrations/subscriptions/{id}", tag = "integrations", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Subscription), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_subscription(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath,
) -> AppResult<Json<Subscription>> {
    Ok(Json(service::get(&state, &ctx, id).await?))
}

/// Remove a subscription; its pending deliveries are not sent.
#[utoipa::path(delete, path = "/api/v1/integrations/subscriptions/{id}", tag = "integrations", params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete_subscription(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath,
) -> AppResult<StatusCode> {
    service::delete(&state, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turn a subscription back on (after it was disabled for repeated failures); deliveries held
/// while it was off are sent.
#[utoipa::path(post, path = "/api/v1/integrations/subscriptions/{id}/enable", tag = "integrations", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Subscription), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn enable_subscription(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath,
) -> AppResult<Json<Subscription>> {
    Ok(Json(service::enable(&state, &ctx, id).await?))
}

const STATUS: Query = Query::of("status", Rule::OneOf(&DeliveryStatus::NAMES), "only deliveries in this state");

query_parameters!(DeliveryQuery: STATUS, LIMIT, OFFSET);

/// A subscription's delivery history, newest first.
#[utoipa::path(get, path = "/api/v1/integrations/subscriptions/{id}/deliveries", tag = "integrations",
    params(("id" = uuid::Uuid, Path), DeliveryQuery),
    responses((status = 200, body = DeliveryList), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath,
    QueryParams(query): QueryParams,
) -> AppResult<Json<DeliveryList>> {
    let mut params = Params::new(&query);
    let status = params.one_of(&STATUS, DeliveryStatus::parse);
    let page = params.page();
    params.finish()?;
    let page = service::deliveries(&state, &ctx, id, status, page).await?;
    Ok(Json(DeliveryList { page: PageInfo::from(&page), items: page.items }))
}
