//! The `outbox_events` table: events written in the transaction of the change they describe, and
//! marked published only once the broker has acknowledged them.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement,
};

use super::entities::outbox_event::{self, Column, Entity};
use crate::events::Envelope;
use sea_orm::sea_query::InsertStatement;

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
    /// Sent again by `healthcore events replay`.
    pub replay: bool,
}

/// Appends events inside the caller's transaction, with the `traceparent` of the span that records
/// them (the request's `outbox.write`, a job's run): the relay and the consumers continue that trace.
pub async fn append(conn: &impl ConnectionTrait, events: &[Envelope], traceparent: Option<&str>) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    conn.execute(&insertion(events, traceparent)).await?;
    Ok(())
}

/// The insert of `events` (at least one), for a caller that writes it together with other rows
/// (`store::insert_together`).
pub fn insertion(events: &[Envelope], traceparent: Option<&str>) -> InsertStatement {
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
            replay: false,
        }
        .into_active_model();
        row.sequence = NotSet;
        row
    });
    Entity::insert_many(rows).into_query()
}

/// The PostgreSQL channel on which committed events wake relays in other processes.
pub const NOTIFY_CHANNEL: &str = "healthcore_outbox";

/// On PostgreSQL, `NOTIFY` the relays listening in other processes (delivered when the surrounding
/// transaction, if any, commits). Request transactions do not call it: see
/// `relay::notify_other_processes`.
pub async fn notify_relays(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    super::execute_on(conn, DbBackend::Postgres, &format!("NOTIFY {NOTIFY_CHANNEL}")).await
}

fn to_event(row: outbox_event::Model) -> Result<OutboxEvent, DbErr> {
    let envelope: Envelope = serde_json::from_str(&row.payload)
        .map_err(|e| DbErr::Type(format!("outbox event {} does not parse: {e}", row.sequence)))?;
    let published = row.kafka_partition.zip(row.kafka_offset);
    Ok(OutboxEvent {
        sequence: row.sequence,
        envelope,
        payload: row.payload,
        traceparent: row.traceparent,
        published,
        replay: row.replay,
    })
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
    let statement = match conn.get_database_backend() {
        // One statement text whatever the number of events, so it is parsed and planned once per
        // connection rather than once per round (and never crowds the statement cache).
        DbBackend::Postgres => {
            let acked = serde_json::Value::Array(
                published
                    .iter()
                    .map(|p| serde_json::json!({"seq": p.sequence, "part": p.partition, "off": p.offset}))
                    .collect(),
            );
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                MARK_PUBLISHED_FROM_JSON,
                [at.into(), acked.to_string().into()],
            )
        }
        // Integers from our own rows and the broker's acknowledgement, so they are written inline;
        // the timestamp is bound. `WITH … UPDATE … FROM` (a join, not a lookup per row) needs
        // SQLite 3.33+.
        backend => {
            let values: Vec<String> =
                published.iter().map(|p| format!("({}, {}, {})", p.sequence, p.partition, p.offset)).collect();
            let sql = format!(
                "WITH acked (seq, part, off) AS (VALUES {values}) \
                 UPDATE outbox_events SET published_at = ?, kafka_partition = acked.part, kafka_offset = acked.off \
                 FROM acked WHERE outbox_events.sequence = acked.seq",
                values = values.join(", ")
            );
            Statement::from_sql_and_values(backend, sql, [at.into()])
        }
    };
    conn.execute_raw(statement).await?;
    Ok(())
}

/// `mark_published` on PostgreSQL: the acknowledged events as one JSON array of
/// `{seq, part, off}`, joined to the outbox.
const MARK_PUBLISHED_FROM_JSON: &str = "UPDATE outbox_events \
     SET published_at = $1, kafka_partition = acked.part, kafka_offset = acked.off \
     FROM json_to_recordset($2::json) AS acked (seq bigint, part integer, off bigint) \
     WHERE outbox_events.sequence = acked.seq";

/// Marks events delivered in-process (no broker, so no partition or offset).
pub async fn mark_delivered(conn: &impl ConnectionTrait, sequences: &[i64], at: DateTime<Utc>) -> Result<(), DbErr> {
    if sequences.is_empty() {
        return Ok(());
    }
    if conn.get_database_backend() == DbBackend::Postgres {
        // One statement text whatever the number of events, as in `mark_published`.
        let sequences = serde_json::Value::from(sequences).to_string();
        let update = Statement::from_sql_and_values(
            DbBackend::Postgres,
            MARK_DELIVERED_FROM_JSON,
            [at.into(), sequences.into()],
        );
        conn.execute_raw(update).await?;
        return Ok(());
    }
    Entity::update_many()
        .col_expr(Column::PublishedAt, sea_orm::sea_query::Expr::value(at))
        .filter(Column::Sequence.is_in(sequences.iter().copied()))
        .exec(conn)
        .await?;
    Ok(())
}

/// `mark_delivered` on PostgreSQL: the delivered sequences as one JSON array.
const MARK_DELIVERED_FROM_JSON: &str = "UPDATE outbox_events SET published_at = $1 \
     WHERE sequence IN (SELECT value::bigint FROM json_array_elements_text($2::json))";

/// Which retained events `healthcore events replay` sends again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaySelection {
    pub since: DateTime<Utc>,
    pub event_type: Option<String>,
}

/// Puts published events that occurred at or after `since` back in the queue, marked as replays;
/// returns how many. The relay sends them again in their original order (consumers de-duplicate on
/// `event_id`, so only a consumer whose inbox was reset applies them again).
pub async fn replay(conn: &impl ConnectionTrait, selection: &ReplaySelection) -> Result<u64, DbErr> {
    use sea_orm::sea_query::Expr;
    let mut update = Entity::update_many()
        .col_expr(Column::PublishedAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(Column::KafkaPartition, Expr::value(Option::<i32>::None))
        .col_expr(Column::KafkaOffset, Expr::value(Option::<i64>::None))
        .col_expr(Column::Replay, Expr::value(true))
        .filter(Column::PublishedAt.is_not_null())
        .filter(Column::OccurredAt.gte(selection.since));
    if let Some(event_type) = &selection.event_type {
        update = update.filter(Column::EventType.eq(event_type.as_str()));
    }
    Ok(update.exec(conn).await?.rows_affected)
}

/// The sequence of the newest recorded event (0 when there is none).
pub async fn last_sequence(conn: &impl ConnectionTrait) -> Result<i64, DbErr> {
    Ok(Entity::find().order_by_desc(Column::Sequence).one(conn).await?.map_or(0, |row| row.sequence))
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

/// Removes events published before `cutoff`, a batch at a time; returns how many. Pending events
/// are never removed.
pub async fn delete_published_before(conn: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    let condition = sea_orm::Condition::all().add(Column::PublishedAt.lt(cutoff));
    super::retention::delete_in_batches::<Entity>(conn, &[Column::Sequence], condition).await
}
