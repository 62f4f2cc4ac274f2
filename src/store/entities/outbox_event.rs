use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_events")]
pub struct Model {
    /// Assigned at insert; the relay publishes pending rows in this order.
    #[sea_orm(primary_key)]
    pub sequence: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub occurred_at: DateTimeUtc,
    /// The message value: the JSON envelope exactly as it is published.
    pub payload: String,
    pub correlation_id: String,
    /// W3C trace context of the request that caused the event, for the message header.
    pub traceparent: Option<String>,
    pub published_at: Option<DateTimeUtc>,
    pub kafka_partition: Option<i32>,
    pub kafka_offset: Option<i64>,
    /// Put back in the queue by `healthcore events replay`: published again, marked as a replay.
    pub replay: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
