//! The closed set of event types, their aggregates and schema versions. Topics are
//! `{KAFKA_TOPIC_PREFIX}.{event_type}`, e.g. `healthcore.patient.created`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "patient.created")]
    PatientCreated,
    #[serde(rename = "patient.updated")]
    PatientUpdated,
    /// The seed's name for what our `DELETE` does: the patient is deactivated, the record kept.
    #[serde(rename = "patient.deleted")]
    PatientDeleted,
    #[serde(rename = "patient.reactivated")]
    PatientReactivated,
    #[serde(rename = "practitioner.created")]
    PractitionerCreated,
    #[serde(rename = "practitioner.updated")]
    PractitionerUpdated,
    #[serde(rename = "practitioner.deleted")]
    PractitionerDeleted,
    #[serde(rename = "practitioner.reactivated")]
    PractitionerReactivated,
    #[serde(rename = "appointment.booked")]
    AppointmentBooked,
    #[serde(rename = "appointment.rescheduled")]
    AppointmentRescheduled,
    #[serde(rename = "appointment.cancelled")]
    AppointmentCancelled,
    #[serde(rename = "appointment.completed")]
    AppointmentCompleted,
    #[serde(rename = "appointment.no_show")]
    AppointmentNoShow,
    /// A booked appointment starts within the reminder window (the reminders job).
    #[serde(rename = "appointment.reminder_due")]
    AppointmentReminderDue,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        EventType::PatientCreated,
        EventType::PatientUpdated,
        EventType::PatientDeleted,
        EventType::PatientReactivated,
        EventType::PractitionerCreated,
        EventType::PractitionerUpdated,
        EventType::PractitionerDeleted,
        EventType::PractitionerReactivated,
        EventType::AppointmentBooked,
        EventType::AppointmentRescheduled,
        EventType::AppointmentCancelled,
        EventType::AppointmentCompleted,
        EventType::AppointmentNoShow,
        EventType::AppointmentReminderDue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PatientCreated => "patient.created",
            EventType::PatientUpdated => "patient.updated",
            EventType::PatientDeleted => "patient.deleted",
            EventType::PatientReactivated => "patient.reactivated",
            EventType::PractitionerCreated => "practitioner.created",
            EventType::PractitionerUpdated => "practitioner.updated",
            EventType::PractitionerDeleted => "practitioner.deleted",
            EventType::PractitionerReactivated => "practitioner.reactivated",
            EventType::AppointmentBooked => "appointment.booked",
            EventType::AppointmentRescheduled => "appointment.rescheduled",
            EventType::AppointmentCancelled => "appointment.cancelled",
            EventType::AppointmentCompleted => "appointment.completed",
            EventType::AppointmentNoShow => "appointment.no_show",
            EventType::AppointmentReminderDue => "appointment.reminder_due",
        }
    }

    pub fn parse(value: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == value)
    }

    /// The aggregate whose id keys the message and whose version orders its events.
    pub fn aggregate_type(self) -> &'static str {
        self.as_str().split('.').next().unwrap_or_default()
    }

    /// The version of this type's `data` schema (`schemas/events/{type}.v{N}.json`).
    pub fn schema_version(self) -> u32 {
        1
    }

    pub fn topic(self, prefix: &str) -> String {
        format!("{prefix}.{}", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_name() {
        for event_type in EventType::ALL {
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
            assert_eq!(serde_json::to_value(event_type).unwrap(), event_type.as_str());
        }
    }

    #[test]
    fn topics_follow_the_seed() {
        assert_eq!(EventType::PatientCreated.topic("healthcore"), "healthcore.patient.created");
        assert_eq!(EventType::AppointmentNoShow.topic("hc"), "hc.appointment.no_show");
        assert_eq!(EventType::AppointmentBooked.aggregate_type(), "appointment");
    }
}
