//! The notifications consumer: for each booked, rescheduled or cancelled appointment, and each
//! reminder the reminders job sends, it prepares a
//! patient notification and, when a notification webhook is configured, a signed delivery of it.
//!
//! The notification names the appointment, patient and practitioner by id and carries the times;
//! no name or contact detail leaves HealthCore in it. The receiving service looks up how to reach
//! the patient.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Span;
use uuid::Uuid;

use super::effects::Effects;
use super::{HandleError, data};
use crate::config::WebhookConfig;
use crate::domain::{AppointmentId, PatientId, PractitionerId};
use crate::events::{AppointmentData, Envelope, EventType};
use crate::store::notifications::Notification;
use crate::store::webhooks::{NewDelivery, Target};

pub const EVENT_TYPES: [EventType; 4] = [
    EventType::AppointmentBooked,
    EventType::AppointmentRescheduled,
    EventType::AppointmentCancelled,
    EventType::AppointmentReminderDue,
];

/// The body POSTed to the notification webhook.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct NotificationMessage {
    pub notification_id: Uuid,
    /// `appointment_booked`, `appointment_rescheduled`, `appointment_cancelled` or
    /// `appointment_reminder_due`.
    pub kind: String,
    pub event_id: Uuid,
    pub appointment_id: AppointmentId,
    /// Orders notifications of one appointment (a retried one may arrive after a later one).
    pub appointment_version: i64,
    pub patient_id: PatientId,
    pub practitioner_id: PractitionerId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// Prepares the notification, and its webhook delivery if one is configured, in `effects` (for
/// the event whose handling is `span`).
pub fn apply(
    envelope: &Envelope,
    webhook: &WebhookConfig,
    now: DateTime<Utc>,
    span: &Span,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let facts: AppointmentData = data(envelope)?;
    let kind = envelope.event_type.as_str().replace('.', "_");
    let mut notification = Notification {
        id: Uuid::now_v7(),
        event_id: envelope.event_id,
        kind,
        appointment_id: facts.appointment_id,
        patient_id: facts.patient_id,
        practitioner_id: facts.practitioner_id,
        starts_at: facts.start,
        ends_at: facts.end,
        correlation_id: envelope.metadata.correlation_id.clone(),
        delivery_id: None,
        created_at: now,
    };
    if webhook.notifications.is_some() {
        let message = NotificationMessage {
            notification_id: notification.id,
            kind: notification.kind.clone(),
            event_id: envelope.event_id,
            appointment_id: facts.appointment_id,
            appointment_version: envelope.metadata.aggregate_version,
            patient_id: facts.patient_id,
            practitioner_id: facts.practitioner_id,
            start: facts.start,
            end: facts.end,
            created_at: now,
        };
        let delivery = NewDelivery {
            id: Uuid::now_v7(),
            target: Target::Notifications,
            event_id: envelope.event_id,
            event_type: envelope.event_type.as_str().to_owned(),
            payload: serde_json::to_string(&message).expect("a notification serializes"),
            correlation_id: envelope.metadata.correlation_id.clone(),
        };
        notification.delivery_id = Some(delivery.id);
        effects.deliveries.by(span).push(delivery);
    }
    effects.notifications.by(span).push(notification);
    Ok(())
}
