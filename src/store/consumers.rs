//! Consumer bookkeeping: the inbox that makes an effect happen once per (group, event), and the
//! dead letters of in-process delivery.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use uuid::Uuid;

use super::entities::{consumer_inbox, dead_letter};

/// Records that `group` handled each of `event_ids` (in one statement, whatever their number);
/// returns those it had not handled before: the caller applies their effects in the same
/// transaction and skips the others as redeliveries. An id given twice is claimed once.
pub async fn claim_all(
    conn: &impl ConnectionTrait,
    group: &str,
    event_ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<HashSet<Uuid>, DbErr> {
    if event_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = event_ids.iter().map(|event_id| consumer_inbox::ActiveModel {
        consumer_group: Set(group.to_owned()),
        event_id: Set(*event_id),
        processed_at: Set(now),
    });
    let claimed = consumer_inbox::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([consumer_inbox::Column::ConsumerGroup, consumer_inbox::Column::EventId])
                .do_nothing()
                .to_owned(),
        )
        .exec_with_returning(conn)
        .await?;
    Ok(claimed.into_iter().map(|row| row.event_id).collect())
}

/// Forgets which events `group` handled, so a replay rebuilds its effects.
pub async fn forget(conn: &impl ConnectionTrait, group: &str) -> Result<u64, DbErr> {
    let result = consumer_inbox::Entity::delete_many()
        .filter(consumer_inbox::Column::ConsumerGroup.eq(group))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// A message a consumer gave up on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    pub consumer_group: String,
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub payload: String,
    pub error: String,
    pub failed_at: DateTime<Utc>,
}

pub async fn add_dead_letter(conn: &impl ConnectionTrait, letter: &DeadLetter) -> Result<(), DbErr> {
    let row = dead_letter::ActiveModel {
        id: Set(Uuid::now_v7()),
        consumer_group: Set(letter.consumer_group.clone()),
        event_id: Set(letter.event_id),
        event_type: Set(letter.event_type.clone()),
        payload: Set(letter.payload.clone()),
        error: Set(letter.error.clone()),
        failed_at: Set(letter.failed_at),
    };
    dead_letter::Entity::insert(row).exec_without_returning(conn).await?;
    Ok(())
}

pub async fn dead_letters(conn: &impl ConnectionTrait, group: &str, limit: u64) -> Result<Vec<DeadLetter>, DbErr> {
    let rows = dead_letter::Entity::find()
        .filter(dead_letter::Column::ConsumerGroup.eq(group))
        .order_by_asc(dead_letter::Column::FailedAt)
        .limit(limit)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| DeadLetter {
            consumer_group: row.consumer_group,
            event_id: row.event_id,
            event_type: row.event_type,
            payload: row.payload,
            error: row.error,
            failed_at: row.failed_at,
        })
        .collect())
}

/// How many messages were dead-lettered in-process since `since`.
pub async fn dead_letters_since(conn: &impl ConnectionTrait, since: DateTime<Utc>) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    dead_letter::Entity::find().filter(dead_letter::Column::FailedAt.gte(since)).count(conn).await
}
