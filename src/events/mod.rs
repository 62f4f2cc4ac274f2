//! Domain events: what happened, described without personal data, for other systems to react to.
//!
//! Every use case that changes state builds its events here and appends them to the transactional
//! outbox (`store::outbox`) in the same transaction as the change: an event exists if and only if
//! its change committed. The relay then publishes them in order per aggregate.

pub mod catalogue;
pub mod envelope;
pub mod kafka;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use catalogue::EventType;
pub use envelope::Envelope;

use crate::domain::{Appointment, Patient, Practitioner, PractitionerRole};

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

#[derive(Debug, Serialize)]
struct PatientData<'a> {
    patient_id: Uuid,
    active: bool,
    /// For `patient.updated`: which fields changed (names only, never values).
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_fields: Option<&'a [&'static str]>,
}

/// `patient.created`, `patient.deleted` (deactivated), `patient.reactivated`: ids and state only.
pub fn patient(event_type: EventType, patient: &Patient) -> NewEvent {
    NewEvent {
        event_type,
        aggregate_id: patient.id,
        aggregate_version: patient.version,
        data: data(PatientData { patient_id: patient.id, active: patient.active, changed_fields: None }),
    }
}

pub fn patient_updated(patient: &Patient, changed_fields: &[&'static str]) -> NewEvent {
    NewEvent {
        event_type: EventType::PatientUpdated,
        aggregate_id: patient.id,
        aggregate_version: patient.version,
        data: data(PatientData {
            patient_id: patient.id,
            active: patient.active,
            changed_fields: Some(changed_fields),
        }),
    }
}

#[derive(Debug, Serialize)]
struct PractitionerData<'a> {
    practitioner_id: Uuid,
    role: PractitionerRole,
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_fields: Option<&'a [&'static str]>,
}

pub fn practitioner(
    event_type: EventType,
    practitioner: &Practitioner,
    changed_fields: Option<&[&'static str]>,
) -> NewEvent {
    NewEvent {
        event_type,
        aggregate_id: practitioner.id,
        aggregate_version: practitioner.version,
        data: data(PractitionerData {
            practitioner_id: practitioner.id,
            role: practitioner.role,
            active: practitioner.active,
            changed_fields,
        }),
    }
}

/// Why an appointment was cancelled, as a closed set (the free-text reason stays in the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationCause {
    Requested,
    PatientDeactivated,
    PractitionerDeactivated,
}

#[derive(Debug, Serialize)]
struct AppointmentData {
    appointment_id: Uuid,
    patient_id: Uuid,
    practitioner_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    status: crate::domain::AppointmentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_start: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_end: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancellation_cause: Option<CancellationCause>,
}

fn appointment_data(appointment: &Appointment) -> AppointmentData {
    AppointmentData {
        appointment_id: appointment.id,
        patient_id: appointment.patient_id,
        practitioner_id: appointment.practitioner_id,
        start: appointment.start,
        end: appointment.end,
        status: appointment.status,
        previous_start: None,
        previous_end: None,
        cancellation_cause: None,
    }
}

fn appointment_event(event_type: EventType, appointment: &Appointment, data_: AppointmentData) -> NewEvent {
    NewEvent { event_type, aggregate_id: appointment.id, aggregate_version: appointment.version, data: data(data_) }
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
