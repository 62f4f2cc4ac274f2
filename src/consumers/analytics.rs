//! The analytics consumer: daily counts of registered patients and of booked, cancelled, completed
//! and no-show appointments per practitioner, served at `/api/v1/analytics/…`.
//!
//! A day is the UTC date on which the event happened (a booking counts on the day it was made,
//! not on the day of the appointment).

use super::{HandleError, data};
use crate::events::{AppointmentData, Envelope, EventType};
use crate::store::WriteTx;
use crate::store::analytics::{self, AppointmentCounter};

pub const EVENT_TYPES: [EventType; 5] = [
    EventType::PatientCreated,
    EventType::AppointmentBooked,
    EventType::AppointmentCancelled,
    EventType::AppointmentCompleted,
    EventType::AppointmentNoShow,
];

pub async fn apply(tx: &WriteTx, envelope: &Envelope) -> Result<(), HandleError> {
    let day = envelope.timestamp.date_naive();
    let counter = match envelope.event_type {
        EventType::PatientCreated => {
            analytics::count_patient_registered(tx, day).await?;
            return Ok(());
        }
        EventType::AppointmentBooked => AppointmentCounter::Booked,
        EventType::AppointmentCancelled => AppointmentCounter::Cancelled,
        EventType::AppointmentCompleted => AppointmentCounter::Completed,
        EventType::AppointmentNoShow => AppointmentCounter::NoShow,
        _ => return Ok(()),
    };
    let facts: AppointmentData = data(envelope)?;
    analytics::count_appointment(tx, day, facts.practitioner_id, counter).await?;
    Ok(())
}
