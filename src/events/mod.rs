//! Domain events: what happened, described without personal data, for other systems to react to.
//!
//! Every use case that changes state builds its events here and appends them to the transactional
//! outbox (`store::outbox`) in the same transaction as the change: an event exists if and only if
//! its change committed. The relay then publishes them in order per aggregate. The `data` of each
//! event is one of the payload types below, which the producer writes and the consumers read.

mod alter_configs;
pub mod catalogue;
pub mod envelope;
pub mod kafka;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use catalogue::EventType;
pub use envelope::Envelope;

use crate::domain::{Appointment, AppointmentId, Patient, PatientId, Practitioner, PractitionerId, PractitionerRole};

/// An event about to be recorded: its type, the aggregate it belongs to (whose version orders the
/// events of that aggregate), and its `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: EventType,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub data: serde_json::Value,
}

fn data(value: impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).expect("event data serializes")
}

/// The `data` of `patient.*` events (`schemas/events/patient.*.v1.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientData {
    pub patient_id: PatientId,
    pub active: bool,
    /// For `patient.updated`: which fields changed (names only, never values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_fields: Option<Vec<String>>,
}

fn field_names(fields: &[&'static str]) -> Vec<String> {
    fields.iter().map(|&field| field.to_owned()).collect()
}

/// `patient.created`, `patient.deleted` (deactivated), `patient.reactivated`: ids and state only.
pub fn patient(event_type: EventType, patient: &Patient) -> NewEvent {
    NewEvent {
        event_type,
        aggregate_id: patient.id.as_uuid(),
        aggregate_version: patient.version,
        data: data(PatientData { patient_id: patient.id, active: patient.active, changed_fields: None }),
    }
}

pub fn patient_updated(patient: &Patient, changed_fields: &[&'static str]) -> NewEvent {
    NewEvent {
        event_type: EventType::PatientUpdated,
        aggregate_id: patient.id.as_uuid(),
        aggregate_version: patient.version,
        data: data(PatientData {
            patient_id: patient.id,
            active: patient.active,
            changed_fields: Some(field_names(changed_fields)),
        }),
    }
}

/// The `data` of `practitioner.*` events (`schemas/events/practitioner.*.v1.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PractitionerData {
    pub practitioner_id: PractitionerId,
    pub role: PractitionerRole,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_fields: Option<Vec<String>>,
}

pub fn practitioner(
    event_type: EventType,
    practitioner: &Practitioner,
    changed_fields: Option<&[&'static str]>,
) -> NewEvent {
    NewEvent {
        event_type,
        aggregate_id: practitioner.id.as_uuid(),
        aggregate_version: practitioner.version,
        data: data(PractitionerData {
            practitioner_id: practitioner.id,
            role: practitioner.role,
            active: practitioner.active,
            changed_fields: changed_fields.map(field_names),
        }),
    }
}

/// Why an appointment was cancelled, as a closed set (the free-text reason stays in the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationCause {
    Requested,
    PatientDeactivated,
    PractitionerDeactivated,
}

/// The `data` of `appointment.*` events (`schemas/events/appointment.*.v1.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentData {
    pub appointment_id: AppointmentId,
    pub patient_id: PatientId,
    pub practitioner_id: PractitionerId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: crate::domain::AppointmentStatus,
    /// For `appointment.rescheduled`: the slot it had before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_end: Option<DateTime<Utc>>,
    /// For `appointment.cancelled`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_cause: Option<CancellationCause>,
}

fn appointment_data(appointment: &Appointment) -> AppointmentData {
    AppointmentData {
        appointment_id: appointment.id(),
        patient_id: appointment.patient_id(),
        practitioner_id: appointment.practitioner_id(),
        start: appointment.slot().start(),
        end: appointment.slot().end(),
        status: appointment.status(),
        previous_start: None,
        previous_end: None,
        cancellation_cause: None,
    }
}

fn appointment_event(event_type: EventType, appointment: &Appointment, data_: AppointmentData) -> NewEvent {
    NewEvent {
        event_type,
        aggregate_id: appointment.id().as_uuid(),
        aggregate_version: appointment.version(),
        data: data(data_),
    }
}

/// `appointment.booked`, `appointment.completed`, `appointment.no_show`: ids, times and status.
pub fn appointment(event_type: EventType, appointment: &Appointment) -> NewEvent {
    appointment_event(event_type, appointment, appointment_data(appointment))
}

pub fn appointment_rescheduled(
    appointment: &Appointment,
    previous_start: DateTime<Utc>,
    previous_end: DateTime<Utc>,
) -> NewEvent {
    let data = AppointmentData {
        previous_start: Some(previous_start),
        previous_end: Some(previous_end),
        ..appointment_data(appointment)
    };
    appointment_event(EventType::AppointmentRescheduled, appointment, data)
}

/// `appointment.reminder_due`: the appointment as it stands; its version is not changed by a reminder.
pub fn appointment_reminder_due(appointment: &Appointment) -> NewEvent {
    appointment_event(EventType::AppointmentReminderDue, appointment, appointment_data(appointment))
}

pub fn appointment_cancelled(appointment: &Appointment, cause: CancellationCause) -> NewEvent {
    let data = AppointmentData { cancellation_cause: Some(cause), ..appointment_data(appointment) };
    appointment_event(EventType::AppointmentCancelled, appointment, data)
}
