//! Integration subscriptions (admins): external systems register a callback URL, a secret and the
//! event types they want; the integrations consumer delivers matching events to them.

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::authorize;
use super::unit_of_work::UnitOfWork;
use crate::audit::{AuditAction, Subject};
use crate::auth::Action;
use crate::config::check_webhook_url;
use crate::context::RequestContext;
use crate::domain::validation::{self, FieldErrors, Lines};
use crate::error::{AppError, AppResult};
use crate::events::EventType;
use crate::state::AppState;
use crate::store::subscriptions::{self, Subscription};
use crate::store::webhooks::{self, Delivery, DeliveryStatus};
use crate::store::{Page, PageRequest};

const SECRET_MIN: usize = 16;
const SECRET_MAX: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    /// Event type names (`appointment.booked`, …), or `["*"]` for every type.
    pub event_types: Vec<String>,
    /// Where deliveries are POSTed: an absolute http(s) URL.
    pub callback_url: String,
    /// The HMAC-SHA256 key deliveries are signed with (16–256 characters). It is not shown again.
    pub secret: String,
}

fn validate(input: SubscriptionInput) -> Result<(Vec<String>, String, String), FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut event_types: Vec<String> = Vec::new();
    if input.event_types.is_empty() || input.event_types.len() > EventType::ALL.len() + 1 {
        errors.add("event_types", "length", "must name between 1 and 14 event types, or be [\"*\"]");
    }
    for name in &input.event_types {
        if name != "*" && EventType::parse(name).is_none() {
            errors.add("event_types", "one_of", "names an event type that does not exist (see docs/EVENTS.md)");
        } else if !event_types.contains(name) {
            event_types.push(name.clone());
        }
    }
    let callback_url = input.callback_url.trim().to_owned();
    if let Err((rule, message)) = validation::check_characters(&callback_url, Lines::One) {
        errors.add("callback_url", rule, message);
    } else if let Err(rule) = check_webhook_url(&callback_url) {
        errors.add("callback_url", "url", rule);
    }
    let secret_length = input.secret.chars().count();
    if !(SECRET_MIN..=SECRET_MAX).contains(&secret_length) {
        errors.add("secret", "length", format!("must be {SECRET_MIN}–{SECRET_MAX} characters"));
    } else if let Err((rule, message)) = validation::check_characters(&input.secret, Lines::One) {
        errors.add("secret", rule, message);
    }
    errors.into_result(|| (event_types, callback_url, input.secret))
}

fn subject(id: Option<Uuid>) -> Subject {
    Subject { resource_type: "integration_subscription", resource_id: id, patient_id: None }
}

async fn allow(state: &AppState, ctx: &RequestContext, audit_action: AuditAction, id: Option<Uuid>) -> AppResult<()> {
    authorize(state, ctx, Action::IntegrationManage, audit_action, subject(id)).await
}

pub async fn create(state: &AppState, ctx: &RequestContext, input: SubscriptionInput) -> AppResult<Subscription> {
    allow(state, ctx, AuditAction::IntegrationCreate, None).await?;
    let (event_types, callback_url, secret) = validate(input)?;
    let now = state.clock.now();
    let subscription = Subscription {
        id: Uuid::now_v7(),
        event_types,
        callback_url,
        secret,
        active: true,
        consecutive_failures: 0,
        disabled_reason: None,
        created_by: Some(ctx.principal.user_id.into()),
        created_at: now,
        updated_at: now,
    };
    subscriptions::insert(state.store.db(), &subscription).await?;
    tracing::info!(subscription_id = %subscription.id, "integration subscription created");
    Ok(subscription)
}

pub async fn list(state: &AppState, ctx: &RequestContext, page: PageRequest) -> AppResult<Page<Subscription>> {
    allow(state, ctx, AuditAction::IntegrationList, None).await?;
    Ok(subscriptions::list(state.store.db(), page).await?)
}

pub async fn get(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<Subscription> {
    allow(state, ctx, AuditAction::IntegrationRead, Some(id)).await?;
    subscriptions::find(state.store.db(), id).await?.ok_or(AppError::NotFound("subscription"))
}

pub async fn delete(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<()> {
    allow(state, ctx, AuditAction::IntegrationDelete, Some(id)).await?;
    if subscriptions::delete(state.store.db(), id).await? { Ok(()) } else { Err(AppError::NotFound("subscription")) }
}

/// Turns a (possibly auto-disabled) subscription back on; its held deliveries become due.
pub async fn enable(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<Subscription> {
    allow(state, ctx, AuditAction::IntegrationEnable, Some(id)).await?;
    let now = state.clock.now();
    let work = UnitOfWork::begin(&state.store).await?;
    if !subscriptions::set_active(work.tx(), id, true, None, now).await? {
        return Err(AppError::NotFound("subscription"));
    }
    webhooks::resume_subscription(work.tx(), id, now).await?;
    let subscription = subscriptions::find(work.tx(), id).await?.ok_or(AppError::NotFound("subscription"))?;
    work.commit().await?;
    Ok(subscription)
}

pub async fn deliveries(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
    status: Option<DeliveryStatus>,
    page: PageRequest,
) -> AppResult<Page<Delivery>> {
    allow(state, ctx, AuditAction::IntegrationDeliveries, Some(id)).await?;
    let db = state.store.db();
    if subscriptions::find(db, id).await?.is_none() {
        return Err(AppError::NotFound("subscription"));
    }
    Ok(webhooks::list_for_subscription(db, id, status, page).await?)
}
