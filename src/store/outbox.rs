//! The `outbox_events` table: events written in the transaction of the change they describe, and
//! marked published only once the broker has acknowledged them.

use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
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

fn to_event(row: outbox_event::Model) -> Result<OutboxEvent, DbErr> {
    let envelope: Envelope = serde_json::from_str(&row.payload)
        .map_err(|e| DbErr::Type(format!("outbox event {} does not parse: {e}", row.sequence)))?;
    Ok(OutboxEvent { sequence: row.sequence, envelope, payload: row.payload, traceparent: row.traceparent })
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
