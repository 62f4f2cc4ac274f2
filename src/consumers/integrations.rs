//! The integrations consumer: every event that matches an active subscription's filter becomes a
//! signed delivery of the event envelope (ids only, as published) to the subscriber's callback.

use chrono::{DateTime, Utc};

use super::HandleError;
use crate::events::Envelope;
use crate::store::WriteTx;
use crate::store::subscriptions;
use crate::store::webhooks::{self, NewDelivery, Target};

/// Records a delivery per matching subscription; returns whether it recorded any.
pub async fn apply(tx: &WriteTx, envelope: &Envelope, now: DateTime<Utc>) -> Result<bool, HandleError> {
    let event_type = envelope.event_type.as_str();
    let mut recorded = false;
    let mut payload = None;
    for subscription in subscriptions::active(tx).await? {
        if !subscription.wants(event_type) {
            continue;
        }
        let body = payload.get_or_insert_with(|| serde_json::to_string(envelope).expect("an envelope serializes"));
        let delivery = NewDelivery {
            target: Target::Subscription(subscription.id),
            event_id: envelope.event_id,
            event_type: event_type.to_owned(),
            payload: body.clone(),
            correlation_id: envelope.metadata.correlation_id.clone(),
        };
        webhooks::enqueue(tx, delivery, now).await?;
        recorded = true;
    }
    Ok(recorded)
}
