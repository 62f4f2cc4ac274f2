//! The `outbox_events` table: events written in the transaction of the change they describe, and
//! marked published only once the broker has acknowledged them.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use super::entities::outbox_event::{self, Column, Entity};
use crate::events::Envelope;

/// A recorded event as the relay and the in-process dispatcher read it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub sequence: i64,
    pub envelope: Envelope,
    /// The exact JSON published as the message value.
    pub payload: String,
    pub traceparent: Option<String>,
    /// Partition and offset once the broker acknowledged it.
    pub published: Option<(i32, i64)>,
}

/// Appends events inside the caller's transaction.
pub async fn append(conn: &impl ConnectionTrait, events: &[Envelope], traceparent: Option<&str>) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = events.iter().map(|envelope| {
        let mut row = outbox_event::Model {
            sequence: 0,
            event_id: envelope.event_id,
            event_type: envelope.event_type.as_str().to_owned(),
            aggregate_type: envelope.metadata.aggregate_type.clone(),
            aggregate_id: envelope.metadata.aggregate_id,
            aggregate_version: envelope.metadata.aggregate_version,
            occurred_at: envelope.timestamp,
            payload: serde_json::to_string(envelope).expect("an envelope serializes"),
            correlation_id: envelope.metadata.correlation_id.clone(),
            traceparent: traceparent.map(str::to_owned),
            published_at: None,
            kafka_partition: None,
            kafka_offset: None,
        }
        .into_active_model();
        row.sequence = NotSet;
        row
    });
    Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

/// The PostgreSQL channel on which committed events wake relays in other processes.
pub const NOTIFY_CHANNEL: &str = "healthcore_outbox";

/// On PostgreSQL, `NOTIFY` inside the transaction: delivered to listening relays when (and only if)
/// it commits, once per transaction however many events it recorded.
pub async fn notify_relays(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    super::execute_on(conn, DbBackend::Postgres, &format!("NOTIFY {NOTIFY_CHANNEL}")).await
}

fn to_event(row: outbox_event::Model) -> Result<OutboxEvent, DbErr> {
    let envelope: Envelope = serde_json::from_str(&row.payload)
        .map_err(|e| DbErr::Type(format!("outbox event {} does not parse: {e}", row.sequence)))?;
    let published = row.kafka_partition.zip(row.kafka_offset);
    Ok(OutboxEvent { sequence: row.sequence, envelope, payload: row.payload, traceparent: row.traceparent, published })
}

/// Unpublished events in the order they were recorded, oldest first.
pub async fn pending(conn: &impl ConnectionTrait, limit: u64) -> Result<Vec<OutboxEvent>, DbErr> {
    let rows = Entity::find()
        .filter(Column::PublishedAt.is_null())
        .order_by_asc(Column::Sequence)
        .limit(limit)
        .all(conn)
        .await?;
    rows.into_iter().map(to_event).collect()
}

/// Every recorded event after `sequence`, published or not, oldest first.
pub async fn after(conn: &impl ConnectionTrait, sequence: i64, limit: u64) -> Result<Vec<OutboxEvent>, DbErr> {
    let rows = Entity::find()
        .filter(Column::Sequence.gt(sequence))
        .order_by_asc(Column::Sequence)
        .limit(limit)
        .all(conn)
        .await?;
    rows.into_iter().map(to_event).collect()
}

/// Where the broker stored an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub sequence: i64,
    pub partition: i32,
    pub offset: i64,
}

/// Marks acknowledged events published, in one statement.
pub async fn mark_published(
    conn: &impl ConnectionTrait,
    published: &[Published],
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    if published.is_empty() {
        return Ok(());
    }
    // Integers from our own rows and the broker's acknowledgement, so they are written inline;
    // the timestamp is bound. `WITH … UPDATE … FROM` (a join, not a lookup per row) is understood
    // by both PostgreSQL and SQLite (3.33+).
    let values: Vec<String> =
        published.iter().map(|p| format!("({}, {}, {})", p.sequence, p.partition, p.offset)).collect();
    let placeholder = match conn.get_database_backend() {
        DbBackend::Postgres => "$1",
        _ => "?",
    };
    let sql = format!(
        "WITH acked (seq, part, off) AS (VALUES {values}) \
         UPDATE outbox_events SET published_at = {placeholder}, kafka_partition = acked.part, kafka_offset = acked.off \
         FROM acked WHERE outbox_events.sequence = acked.seq",
        values = values.join(", ")
    );
    conn.execute_raw(Statement::from_sql_and_values(conn.get_database_backend(), sql, [at.into()])).await?;
    Ok(())
}

/// How many events wait to be published and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub pending: u64,
    pub oldest: Option<DateTime<Utc>>,
}

pub async fn backlog(conn: &impl ConnectionTrait) -> Result<Backlog, DbErr> {
    use sea_orm::PaginatorTrait;
    let pending = Entity::find().filter(Column::PublishedAt.is_null()).count(conn).await?;
    let oldest = Entity::find()
        .filter(Column::PublishedAt.is_null())
        .order_by_asc(Column::Sequence)
        .one(conn)
        .await?
        .map(|row| row.occurred_at);
    Ok(Backlog { pending, oldest })
}

/// What `healthcore outbox status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub backlog: Backlog,
    pub total: u64,
    pub last_published: Option<DateTime<Utc>>,
}

pub async fn status(conn: &impl ConnectionTrait) -> Result<Status, DbErr> {
    use sea_orm::PaginatorTrait;
    let backlog = backlog(conn).await?;
    let total = Entity::find().count(conn).await?;
    let last_published = Entity::find()
        .filter(Column::PublishedAt.is_not_null())
        .order_by_desc(Column::Sequence)
        .one(conn)
        .await?
        .and_then(|row| row.published_at);
    Ok(Status { backlog, total, last_published })
}

/// Removes events published before `cutoff`; returns how many. Pending events are never removed.
pub async fn delete_published_before(conn: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = Entity::delete_many().filter(Column::PublishedAt.lt(cutoff)).exec(conn).await?;
    Ok(result.rows_affected)
}
