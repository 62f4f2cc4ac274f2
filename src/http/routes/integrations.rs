use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::PageInfo;
use crate::error::AppResult;
use crate::http::extract::{Caller, IdPath, JsonBody, QueryParams};
use crate::http::params::Params;
use crate::http::problem::Problem;
use crate::service::integrations::{self as service, SubscriptionInput};
use crate::state::AppState;
use crate::store::subscriptions::Subscription;
use crate::store::webhooks::{Delivery, DeliveryStatus};

/// A subscription as the API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: Uuid,
    pub event_types: Vec<String>,
    pub callback_url: String,
    pub active: bool,
    /// Failed delivery attempts in a row; at the configured limit the subscription is disabled.
    pub consecutive_failures: i32,
    pub disabled_reason: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Subscription> for SubscriptionView {
    fn from(s: Subscription) -> Self {
        SubscriptionView {
            id: s.id,
            event_types: s.event_types,
            callback_url: s.callback_url,
            active: s.active,
            consecutive_failures: s.consecutive_failures,
            disabled_reason: s.disabled_reason,
            created_by: s.created_by,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<SubscriptionView>,
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
    responses((status = 201, body = SubscriptionView, headers(("Location" = String))),
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
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(SubscriptionView::from(subscription)))
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/integrations/subscriptions", tag = "integrations",
    params(("limit" = Option<u64>, Query), ("offset" = Option<u64>, Query)),
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
    Ok(Json(SubscriptionList { page: PageInfo::from(&page), items: page.items.into_iter().map(Into::into).collect() }))
}

#[utoipa::path(get, path = "/api/v1/integrations/subscriptions/{id}", tag = "integrations", params(("id" = Uuid, Path)),
    responses((status = 200, body = SubscriptionView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_subscription(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath,
) -> AppResult<Json<SubscriptionView>> {
    Ok(Json(service::get(&state, &ctx, id).await?.into()))
}

/// Remove a subscription; its pending deliveries are not sent.
#[utoipa::path(delete, path = "/api/v1/integrations/subscriptions/{id}", tag = "integrations", params(("id" = Uuid, Path)),
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
#[utoipa::path(post, path = "/api/v1/integrations/subscriptions/{id}/enable", tag = "integrations", params(("id" = Uuid, Path)),
    responses((status = 200, body = SubscriptionView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn enable_subscription(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath,
) -> AppResult<Json<SubscriptionView>> {
    Ok(Json(service::enable(&state, &ctx, id).await?.into()))
}

/// A subscription's delivery history, newest first.
#[utoipa::path(get, path = "/api/v1/integrations/subscriptions/{id}/deliveries", tag = "integrations",
    params(("id" = Uuid, Path), ("status" = Option<String>, Query, description = "pending, delivered or failed"),
        ("limit" = Option<u64>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = DeliveryList), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath,
    QueryParams(query): QueryParams,
) -> AppResult<Json<DeliveryList>> {
    let mut params = Params::new(&query);
    let status = params.one_of("status", |v| {
        DeliveryStatus::parse(v).ok_or(("one_of", "must be pending, delivered or failed".into()))
    });
    let page = params.page();
    params.finish()?;
    let page = service::deliveries(&state, &ctx, id, status, page).await?;
    Ok(Json(DeliveryList { page: PageInfo::from(&page), items: page.items }))
}
