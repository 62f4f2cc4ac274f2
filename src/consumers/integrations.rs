//! The integrations consumer: every event that matches an active subscription's filter becomes a
//! signed delivery to the subscriber's callback: the event envelope (ids only, as published), or
//! for a subscription that chose `fhir-id-only`, a FHIR R4B subscription-notification Bundle in the
//! shape of the Subscriptions R5 Backport IG's `id-only` content (ids only as well).

use chrono::SecondsFormat;
use serde_json::{Value, json};
use tracing::Span;
use uuid::Uuid;

use super::HandleError;
use super::effects::Effects;
use crate::events::Envelope;
use crate::store::WriteTx;
use crate::store::subscriptions::{self, Payload, Subscription};
use crate::store::webhooks::{NewDelivery, Target};

/// The canonical URL of the topic an event type stands for, in FHIR notifications.
pub const TOPIC_BASE: &str = "https://healthcore.dev/fhir/SubscriptionTopic/";

/// The active subscriptions, read once per transaction and handed to `apply` for each event in it.
pub async fn subscribers(tx: &WriteTx) -> Result<Vec<Subscription>, HandleError> {
    Ok(subscriptions::active(tx).await?)
}

/// Prepares a delivery per matching subscription among `subscribers` in `effects` (for the event
/// whose handling is `span`); a FHIR notification's event number is taken in `tx` at once.
pub async fn apply(
    tx: &WriteTx,
    envelope: &Envelope,
    subscribers: &[Subscription],
    fhir_base_url: &str,
    span: &Span,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let event_type = envelope.event_type.as_str();
    let mut as_published = None;
    for subscription in subscribers {
        if !subscription.wants(event_type) {
            continue;
        }
        let payload = match subscription.payload {
            Payload::Envelope => as_published
                .get_or_insert_with(|| serde_json::to_string(envelope).expect("an envelope serializes"))
                .clone(),
            Payload::FhirIdOnly => {
                let number = subscriptions::next_event_number(tx, subscription.id).await?;
                notification(envelope, subscription, number, fhir_base_url).to_string()
            }
        };
        let delivery = NewDelivery {
            id: Uuid::now_v7(),
            target: Target::Subscription(subscription.id),
            event_id: envelope.event_id,
            event_type: event_type.to_owned(),
            payload,
            correlation_id: envelope.metadata.correlation_id.clone(),
        };
        effects.deliveries.by(span).push(delivery);
    }
    Ok(())
}

/// The FHIR resource type of an event's aggregate.
fn resource_type(aggregate_type: &str) -> &'static str {
    match aggregate_type {
        "patient" => "Patient",
        "practitioner" => "Practitioner",
        _ => "Appointment",
    }
}

/// An `id-only` subscription notification: the SubscriptionStatus of this event (its number
/// among the subscription's, the topic, the focus) and an entry naming the changed resource by
/// its URL, without the resource.
fn notification(envelope: &Envelope, subscription: &Subscription, number: i64, base: &str) -> Value {
    let metadata = &envelope.metadata;
    let focus = format!("{base}/{}/{}", resource_type(&metadata.aggregate_type), metadata.aggregate_id);
    let timestamp = envelope.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let created = metadata.aggregate_version == 1;
    let status = json!({
        "resourceType": "SubscriptionStatus",
        "id": envelope.event_id.to_string(),
        "status": "active",
        "type": "event-notification",
        "eventsSinceSubscriptionStart": number.to_string(),
        "notificationEvent": [{
            "eventNumber": number.to_string(),
            "timestamp": timestamp,
            "focus": {"reference": focus},
        }],
        "subscription": {"reference": format!("{base}/Subscription/{}", subscription.id)},
        "topic": format!("{TOPIC_BASE}{}", envelope.event_type.as_str()),
    });
    json!({
        "resourceType": "Bundle",
        "id": Uuid::now_v7().to_string(),
        "type": "subscription-notification",
        "timestamp": timestamp,
        "entry": [
            {
                "fullUrl": format!("urn:uuid:{}", envelope.event_id),
                "resource": status,
                "request": {"method": "GET", "url": format!("{base}/Subscription/{}/$status", subscription.id)},
                "response": {"status": "200"},
            },
            {
                "fullUrl": focus,
                "request": {
                    "method": if created { "POST" } else { "PUT" },
                    "url": resource_type(&metadata.aggregate_type),
                },
                "response": {"status": if created { "201" } else { "200" }},
            },
        ],
    })
}
