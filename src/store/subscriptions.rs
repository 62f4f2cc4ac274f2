//! The `integration_subscriptions` table: external systems' callbacks and the event types they want.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Select, Set};
use uuid::Uuid;

use super::entities::integration_subscription::{self, Column, Entity};
use super::{Page, PageRequest, Selection, fetch_page};

/// What a subscription's deliveries carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub enum Payload {
    /// The event envelope, as published on Kafka.
    #[serde(rename = "envelope")]
    Envelope,
    /// A FHIR R4B subscription-notification Bundle naming the changed resource (id only), as the
    /// Subscriptions R5 Backport IG's `id-only` content.
    #[serde(rename = "fhir-id-only")]
    FhirIdOnly,
}

impl Payload {
    pub const ALL: [Self; 2] = [Payload::Envelope, Payload::FhirIdOnly];
    /// The wire names, in the order of `ALL`.
    pub const NAMES: [&'static str; 2] = ["envelope", "fhir-id-only"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// A subscription as stored and as the API shows it; the secret is here for signing, and is never
/// serialized.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: Uuid,
    /// Event type names; `*` matches every type.
    pub event_types: Vec<String>,
    pub callback_url: String,
    #[serde(skip)]
    pub secret: String,
    pub active: bool,
    /// Failed delivery attempts in a row; at the configured limit the subscription is disabled.
    pub consecutive_failures: i32,
    pub disabled_reason: Option<String>,
    pub payload: Payload,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == "*" || t == event_type)
    }
}

fn to_subscription(row: integration_subscription::Model) -> Result<Subscription, DbErr> {
    let event_types = serde_json::from_str(&row.event_types)
        .map_err(|e| DbErr::Type(format!("integration_subscriptions.event_types of {}: {e}", row.id)))?;
    Ok(Subscription {
        id: row.id,
        event_types,
        callback_url: row.callback_url,
        secret: row.secret,
        active: row.active,
        consecutive_failures: row.consecutive_failures,
        disabled_reason: row.disabled_reason,
        payload: Payload::parse(&row.payload).ok_or_else(|| {
            DbErr::Type(format!("integration_subscriptions.payload of {} holds '{}'", row.id, row.payload))
        })?,
        created_by: row.created_by,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

pub async fn insert(conn: &impl ConnectionTrait, subscription: &Subscription) -> Result<(), DbErr> {
    let row = integration_subscription::ActiveModel {
        id: Set(subscription.id),
        event_types: Set(serde_json::to_string(&subscription.event_types).expect("strings serialize")),
        callback_url: Set(subscription.callback_url.clone()),
        secret: Set(subscription.secret.clone()),
        active: Set(subscription.active),
        consecutive_failures: Set(subscription.consecutive_failures),
        disabled_reason: Set(subscription.disabled_reason.clone()),
        payload: Set(subscription.payload.as_str().to_owned()),
        events_notified: Set(0),
        created_by: Set(subscription.created_by),
        created_at: Set(subscription.created_at),
        updated_at: Set(subscription.updated_at),
    };
    Entity::insert(row).exec_without_returning(conn).await?;
    Ok(())
}

pub async fn find(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Subscription>, DbErr> {
    Entity::find_by_id(id).one(conn).await?.map(to_subscription).transpose()
}

/// Active subscriptions (the consumer filters them by event type; there are few).
pub async fn active(conn: &impl ConnectionTrait) -> Result<Vec<Subscription>, DbErr> {
    let rows = Entity::find().filter(Column::Active.eq(true)).order_by_asc(Column::CreatedAt).all(conn).await?;
    rows.into_iter().map(to_subscription).collect()
}

pub async fn list(conn: &impl ConnectionTrait, page: PageRequest) -> Result<Page<Subscription>, DbErr> {
    let order = |query: Select<Entity>| query.order_by_desc(Column::CreatedAt).order_by_desc(Column::Id);
    fetch_page(conn, Entity::find(), Selection::Filtered, order, page, to_subscription).await
}

pub async fn delete(conn: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    Ok(Entity::delete_by_id(id).exec(conn).await?.rows_affected == 1)
}

/// Turns a subscription on (clearing its failure count) or off with a reason.
pub async fn set_active(
    conn: &impl ConnectionTrait,
    id: Uuid,
    active: bool,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let mut update = Entity::update_many()
        .col_expr(Column::Active, Expr::value(active))
        .col_expr(Column::DisabledReason, Expr::value(reason.map(str::to_owned)))
        .col_expr(Column::UpdatedAt, Expr::value(now));
    if active {
        update = update.col_expr(Column::ConsecutiveFailures, Expr::value(0));
    }
    Ok(update.filter(Column::Id.eq(id)).exec(conn).await?.rows_affected == 1)
}

/// Counts one more event notified to the subscription; returns its number (1 for the first).
pub async fn next_event_number(conn: &impl ConnectionTrait, id: Uuid) -> Result<i64, DbErr> {
    Entity::update_many()
        .col_expr(Column::EventsNotified, Expr::col(Column::EventsNotified).add(1))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await?;
    let row = Entity::find_by_id(id).one(conn).await?;
    Ok(row.map_or(0, |row| row.events_notified))
}

/// Counts a failed attempt; returns the failures in a row so far.
pub async fn record_failure(conn: &impl ConnectionTrait, id: Uuid) -> Result<i32, DbErr> {
    Entity::update_many()
        .col_expr(Column::ConsecutiveFailures, Expr::col(Column::ConsecutiveFailures).add(1))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(find(conn, id).await?.map_or(0, |s| s.consecutive_failures))
}

pub async fn record_success(conn: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::ConsecutiveFailures, Expr::value(0))
        .filter(Column::Id.eq(id))
        .filter(Column::ConsecutiveFailures.ne(0))
        .exec(conn)
        .await?;
    Ok(())
}
