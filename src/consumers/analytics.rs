//! The analytics consumer: daily counts of registered patients and of booked, cancelled, completed
//! and no-show appointments per practitioner, served at `/api/v1/analytics/…`.
//!
//! A day is the UTC date on which the event happened (a booking counts on the day it was made,
//! not on the day of the appointment).

use tracing::Span;

use super::effects::Effects;
use super::{HandleError, data};
use crate::events::{AppointmentData, Envelope, EventType};
use crate::store::analytics::AppointmentCounter;

pub const EVENT_TYPES: [EventType; 5] = [
    EventType::PatientCreated,
    EventType::AppointmentBooked,
    EventType::AppointmentCancelled,
    EventType::AppointmentCompleted,
    EventType::AppointmentNoShow,
];

/// Counts the event in `effects` (for the event whose handling is `span`).
pub fn apply(envelope: &Envelope, span: &Span, effects: &mut Effects) -> Result<(), HandleError> {
    let day = envelope.timestamp.date_naive();
    let counter = match envelope.event_type {
        EventType::PatientCreated => {
            effects.registrations.by(span).count(day);
            return Ok(());
        }
        EventType::AppointmentBooked => AppointmentCounter::Booked,
        EventType::AppointmentCancelled => AppointmentCounter::Cancelled,
        EventType::AppointmentCompleted => AppointmentCounter::Completed,
        EventType::AppointmentNoShow => AppointmentCounter::NoShow,
        _ => return Ok(()),
    };
    let facts: AppointmentData = data(envelope)?;
    effects.appointments.by(span).count(day, facts.practitioner_id, counter);
    Ok(())
}
