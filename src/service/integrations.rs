//! Integration subscriptions (admins): external systems register a callback URL, a secret and the
//! event types they want; the integrations consumer delivers matching events to them.

use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder};
use uuid::Uuid;

use super::authorize;
use super::unit_of_work::UnitOfWork;
use crate::audit::{AuditAction, Subject};
use crate::auth::Action;
use crate::config::{WEBHOOK_URL_MAX, check_webhook_url};
use crate::context::RequestContext;
use crate::domain::contract;
use crate::domain::validation::{self, FieldErrors, Lines};
use crate::error::{AppError, AppResult};
use crate::events::EventType;
use crate::state::AppState;
use crate::store::subscriptions::{self, Payload, Subscription};
use crate::store::webhooks::{self, Delivery, DeliveryStatus};
use crate::store::{Page, PageRequest};

const SECRET_MIN: usize = 16;
const SECRET_MAX: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"event_types": ["appointment.booked", "appointment.cancelled"], "callback_url": "https://partner.example.org/healthcore", "secret": "a-shared-secret-of-16+-characters"})))]
pub struct SubscriptionInput {
    #[schema(required = true, schema_with = event_types_schema)]
    pub event_types: Option<Vec<String>>,
    #[schema(required = true, schema_with = callback_url_schema)]
    pub callback_url: Option<String>,
    #[schema(required = true, schema_with = secret_schema)]
    pub secret: Option<String>,
    /// Absent means `envelope`; `null` is refused, as the schema says.
    #[serde(default, deserialize_with = "validation::given")]
    #[schema(schema_with = payload_schema)]
    pub payload: Option<String>,
}

fn payload_schema() -> ObjectBuilder {
    contract::one_of(&Payload::NAMES).description(Some(
        "what each delivery carries: `envelope` (the default: the event as published) or `fhir-id-only` (a FHIR R4B \
         subscription-notification Bundle naming the changed resource, docs/FHIR.md)",
    ))
}

/// At most one of each event type and the wildcard.
const EVENT_TYPES_MAX: usize = EventType::ALL.len() + 1;

fn event_types_schema() -> ArrayBuilder {
    let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).chain(["*"]).collect();
    ArrayBuilder::new()
        .items(contract::one_of(&names))
        .min_items(Some(1))
        .max_items(Some(EVENT_TYPES_MAX))
        .description(Some("event type names (`appointment.booked`, …), or `*` for every type; repeats count once"))
}

fn callback_url_schema() -> ObjectBuilder {
    contract::url(WEBHOOK_URL_MAX).description(Some("where deliveries are POSTed: an absolute http(s) URL"))
}

fn secret_schema() -> ObjectBuilder {
    contract::text_as_sent(SECRET_MIN, SECRET_MAX, Lines::One)
        .description(Some("the HMAC-SHA256 key deliveries are signed with; it is not shown again"))
}

/// What a valid subscription request asks for.
struct Request {
    event_types: Vec<String>,
    callback_url: String,
    secret: String,
    payload: Payload,
}

fn validate(input: SubscriptionInput) -> Result<Request, FieldErrors> {
    let mut errors = FieldErrors::new();
    let payload = match input.payload.as_deref() {
        None => Payload::Envelope,
        Some(name) => Payload::parse(name).unwrap_or_else(|| {
            errors.add("payload", "one_of", format!("must be one of {}", Payload::NAMES.join(", ")));
            Payload::Envelope
        }),
    };
    let names = errors.check("event_types", validation::present(input.event_types));
    let callback_url = errors.check("callback_url", validation::present(input.callback_url));
    let secret = errors.check("secret", validation::present(input.secret));
    let (Some(names), Some(callback_url), Some(secret)) = (names, callback_url, secret) else {
        return Err(errors);
    };
    let mut event_types: Vec<String> = Vec::new();
    if names.is_empty() || names.len() > EVENT_TYPES_MAX {
        errors.add("event_types", "length", format!("must name between 1 and {EVENT_TYPES_MAX} event types"));
    }
    for name in &names {
        if name != "*" && EventType::parse(name).is_none() {
            errors.add("event_types", "one_of", "names an event type that does not exist (see docs/EVENTS.md)");
        } else if !event_types.contains(name) {
            event_types.push(name.clone());
        }
    }
    let as_sent = callback_url;
    let callback_url = as_sent.trim().to_owned();
    if let Err((rule, message)) = validation::within_length(&as_sent, WEBHOOK_URL_MAX) {
        errors.add("callback_url", rule, message);
    } else if let Err((rule, message)) = validation::check_characters(&callback_url, Lines::One) {
        errors.add("callback_url", rule, message);
    } else if let Err(rule) = check_webhook_url(&callback_url) {
        errors.add("callback_url", "url", rule);
    }
    let secret_length = secret.chars().count();
    if !(SECRET_MIN..=SECRET_MAX).contains(&secret_length) {
        errors.add("secret", "length", format!("must be {SECRET_MIN}–{SECRET_MAX} characters"));
    } else if let Err((rule, message)) = validation::check_characters(&secret, Lines::One) {
        errors.add("secret", rule, message);
    }
    errors.into_result(|| Request { event_types, callback_url, secret, payload })
}

fn subject(id: Option<Uuid>) -> Subject {
    Subject { resource_type: "integration_subscription", resource_id: id, patient_id: None }
}

async fn allow(state: &AppState, ctx: &RequestContext, audit_action: AuditAction, id: Option<Uuid>) -> AppResult<()> {
    authorize(state, ctx, Action::IntegrationManage, audit_action, subject(id)).await
}

pub async fn create(state: &AppState, ctx: &RequestContext, input: SubscriptionInput) -> AppResult<Subscription> {
    allow(state, ctx, AuditAction::IntegrationCreate, None).await?;
    let Request { event_types, callback_url, secret, payload } = validate(input)?;
    let now = state.clock.now();
    let subscription = Subscription {
        id: Uuid::now_v7(),
        event_types,
        callback_url,
        secret,
        active: true,
        consecutive_failures: 0,
        disabled_reason: None,
        payload,
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
    let changed: AppResult<Subscription> = async {
        if !subscriptions::set_active(work.tx(), id, true, None, now).await? {
            return Err(AppError::NotFound("subscription"));
        }
        webhooks::resume_subscription(work.tx(), id, now).await?;
        subscriptions::find(work.tx(), id).await?.ok_or(AppError::NotFound("subscription"))
    }
    .await;
    work.end(changed).await
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
