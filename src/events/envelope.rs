//! The message value every event is published as: the seed's `BaseEvent` fields (`event_type`,
//! `event_id`, `timestamp`, `data`, `metadata`). The id is assigned once, when the event is
//! recorded, so every redelivery carries the same `event_id` and consumers can de-duplicate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{EventType, NewEvent};
use crate::context::RequestContext;
use crate::domain::UserId;

pub const SOURCE: &str = "healthcore";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub source: String,
    pub schema_version: u32,
    pub correlation_id: String,
    pub actor_id: Option<UserId>,
    pub actor_role: Option<String>,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_type: EventType,
    pub event_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub data: serde_json::Value,
    pub metadata: Metadata,
}

impl Envelope {
    /// An event caused by a request: its caller is the actor.
    pub fn new(event: NewEvent, ctx: &RequestContext, now: DateTime<Utc>) -> Envelope {
        let actor = (ctx.principal.user_id, ctx.principal.role.as_str().to_owned());
        Envelope::build(event, &ctx.correlation_id, Some(actor), now)
    }

    /// An event HealthCore causes by itself (a background job): no actor.
    pub fn system(event: NewEvent, correlation_id: &str, now: DateTime<Utc>) -> Envelope {
        Envelope::build(event, correlation_id, None, now)
    }

    fn build(event: NewEvent, correlation_id: &str, actor: Option<(UserId, String)>, now: DateTime<Utc>) -> Envelope {
        let (actor_id, actor_role) = actor.unzip();
        Envelope {
            event_type: event.event_type,
            event_id: Uuid::now_v7(),
            timestamp: now,
            metadata: Metadata {
                source: SOURCE.to_owned(),
                schema_version: event.event_type.schema_version(),
                correlation_id: correlation_id.to_owned(),
                actor_id,
                actor_role,
                aggregate_type: event.event_type.aggregate_type().to_owned(),
                aggregate_id: event.aggregate_id,
                aggregate_version: event.aggregate_version,
            },
            data: event.data,
        }
    }
}
