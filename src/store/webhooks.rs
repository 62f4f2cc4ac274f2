//! The `webhook_deliveries` table: every outgoing webhook (notifications and integration
//! subscriptions) with its attempts. Rows are created by consumers inside the transaction of the
//! event they handle, and sent afterwards by the delivery worker, so a slow or failing receiver
//! never holds a consumer back.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::entities::webhook_delivery::{self, Column, Entity};
use super::{Page, PageRequest, Selection, fetch_page};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [Self; 3] = [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed];
    /// The wire names, in the order of `ALL` (and of the variants, which serde renames alike).
    pub const NAMES: [&'static str; 3] = ["pending", "delivered", "failed"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(value: &str) -> Option<DeliveryStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// Where a delivery goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The notification webhook from the configuration.
    Notifications,
    Subscription(Uuid),
}

/// A delivery to make.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Chosen by the caller, which may name it elsewhere in the same transaction (a notification's
    /// `delivery_id`).
    pub id: Uuid,
    pub target: Target,
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: String,
    pub correlation_id: String,
}

/// Most deliveries in one insert statement (fourteen parameters a row).
const MAX_ROWS_PER_INSERT: usize = 500;

/// Records deliveries, due now: one statement per `MAX_ROWS_PER_INSERT` of them.
pub async fn enqueue_all(
    conn: &impl ConnectionTrait,
    deliveries: &[NewDelivery],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in deliveries.chunks(MAX_ROWS_PER_INSERT) {
        let rows = chunk.iter().map(|delivery| {
            let (target, subscription_id) = match delivery.target {
                Target::Notifications => ("notifications", None),
                Target::Subscription(id) => ("subscription", Some(id)),
            };
            webhook_delivery::ActiveModel {
                id: Set(delivery.id),
                target: Set(target.to_owned()),
                subscription_id: Set(subscription_id),
                event_id: Set(delivery.event_id),
                event_type: Set(delivery.event_type.clone()),
                payload: Set(delivery.payload.clone()),
                correlation_id: Set(delivery.correlation_id.clone()),
                status: Set(DeliveryStatus::Pending.as_str().to_owned()),
                attempts: Set(0),
                last_status_code: Set(None),
                last_error: Set(None),
                next_attempt_at: Set(Some(now)),
                created_at: Set(now),
                delivered_at: Set(None),
            }
        });
        Entity::insert_many(rows).exec_without_returning(conn).await?;
    }
    Ok(())
}

/// A delivery as the worker sends it and the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    #[serde(skip)]
    pub target: Option<Target>,
    pub event_id: Uuid,
    pub event_type: String,
    #[serde(skip)]
    pub payload: String,
    #[serde(skip)]
    pub correlation_id: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// The HTTP status of the last attempt, if the receiver answered.
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

fn to_delivery(row: webhook_delivery::Model) -> Result<Delivery, DbErr> {
    let target = match (row.target.as_str(), row.subscription_id) {
        ("notifications", _) => Some(Target::Notifications),
        ("subscription", Some(id)) => Some(Target::Subscription(id)),
        _ => None,
    };
    Ok(Delivery {
        status: DeliveryStatus::parse(&row.status)
            .ok_or_else(|| DbErr::Type(format!("webhook_deliveries.status holds '{}'", row.status)))?,
        id: row.id,
        target,
        event_id: row.event_id,
        event_type: row.event_type,
        payload: row.payload,
        correlation_id: row.correlation_id,
        attempts: row.attempts,
        last_status_code: row.last_status_code,
        last_error: row.last_error,
        next_attempt_at: row.next_attempt_at,
        created_at: row.created_at,
        delivered_at: row.delivered_at,
    })
}

/// Pending deliveries whose next attempt is due, oldest first, each claimed for `lease` so that
/// another worker (another process of the same group) does not send it at the same time.
pub async fn claim_due(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Delivery>, DbErr> {
    let due = Entity::find()
        .filter(Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(Column::NextAttemptAt.lte(now))
        .order_by_asc(Column::NextAttemptAt)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(conn)
        .await?;
    let mut claimed = Vec::with_capacity(due.len());
    for row in due {
        // Compare-and-set on the due time: of two workers that read the same row, one wins.
        let won = Entity::update_many()
            .col_expr(Column::NextAttemptAt, Expr::value(lease_until))
            .filter(Column::Id.eq(row.id))
            .filter(Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(Column::NextAttemptAt.eq(row.next_attempt_at))
            .exec(conn)
            .await?
            .rows_affected
            == 1;
        if won {
            claimed.push(to_delivery(row)?);
        }
    }
    Ok(claimed)
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// `Delivered`, `Failed` (gave up), or `Pending` with the time of the next attempt.
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

pub async fn record_attempt(
    conn: &impl ConnectionTrait,
    id: Uuid,
    attempt: &Attempt,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let delivered_at = (attempt.status == DeliveryStatus::Delivered).then_some(now);
    Entity::update_many()
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::Status, Expr::value(attempt.status.as_str()))
        .col_expr(Column::LastStatusCode, Expr::value(attempt.status_code))
        .col_expr(Column::LastError, Expr::value(attempt.error.clone()))
        .col_expr(Column::NextAttemptAt, Expr::value(attempt.next_attempt_at))
        .col_expr(Column::DeliveredAt, Expr::value(delivered_at))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Puts a claimed delivery back, unattempted, for later (its subscription is disabled, say).
pub async fn postpone(conn: &impl ConnectionTrait, id: Uuid, until: Option<DateTime<Utc>>) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::NextAttemptAt, Expr::value(until))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Makes the pending deliveries of a re-enabled subscription due now.
pub async fn resume_subscription(
    conn: &impl ConnectionTrait,
    subscription_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::NextAttemptAt, Expr::value(now))
        .filter(Column::SubscriptionId.eq(subscription_id))
        .filter(Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn find_many(conn: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<Delivery>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = Entity::find().filter(Column::Id.is_in(ids.iter().copied())).all(conn).await?;
    rows.into_iter().map(to_delivery).collect()
}

fn of_subscription(subscription_id: Uuid, status: Option<DeliveryStatus>) -> Select<Entity> {
    let mut query = Entity::find().filter(Column::SubscriptionId.eq(subscription_id));
    if let Some(status) = status {
        query = query.filter(Column::Status.eq(status.as_str()));
    }
    query
}

/// A subscription's delivery history, newest first.
pub async fn list_for_subscription(
    conn: &impl ConnectionTrait,
    subscription_id: Uuid,
    status: Option<DeliveryStatus>,
    page: PageRequest,
) -> Result<Page<Delivery>, DbErr> {
    let order = |query: Select<Entity>| query.order_by_desc(Column::CreatedAt).order_by_desc(Column::Id);
    fetch_page(conn, of_subscription(subscription_id, status), Selection::Filtered, order, page, to_delivery).await
}
