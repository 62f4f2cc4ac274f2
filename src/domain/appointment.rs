//! Appointments and their life cycle.
//!
//! ```text
//!            cancel(reason)            (any time while booked)
//!   booked ───────────────▶ cancelled
//!     │  complete / no_show            (only once the start time has passed)
//!     └───────────────────▶ completed | no_show
//! ```
//! `cancelled`, `completed` and `no_show` are final. Rescheduling changes the slot of a booked
//! appointment; the overlap rules are enforced by the store, which sees the other appointments.

use super::{AppointmentId, PatientId, PractitionerId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::contract::{self, Blank};
use super::validation::{self, FieldErrors, Lines, RuleResult, present, required};
use utoipa::openapi::schema::ObjectBuilder;

pub const MAX_DURATION_HOURS: i64 = 8;
pub const REASON_MAX: usize = 500;
pub const NOTES_MAX: usize = 4000;
/// When a new or moved appointment may start: after `now`, and at most `horizon_days` ahead
/// (`HEALTHCORE_BOOKING_HORIZON_DAYS`). Beyond it a date is a typing error: year 262142 was
/// accepted, and on SQLite years past 9999 sort wrongly, which let an overlap through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingWindow {
    pub now: DateTime<Utc>,
    pub horizon_days: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    Cancelled,
    Completed,
    NoShow,
}

impl AppointmentStatus {
    pub const ALL: [Self; 4] = [Self::Booked, Self::Cancelled, Self::Completed, Self::NoShow];
    /// The wire names, in the order of `ALL` (and of the variants, which serde renames alike).
    pub const NAMES: [&'static str; 4] = ["booked", "cancelled", "completed", "no_show"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }
}

/// A half-open interval `[start, end)`, at most eight hours long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSlot {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TimeSlot {
    /// Checks the slot's own rules; which field is at fault is reported as `end`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> RuleResult<Self> {
        if end <= start {
            return Err(("after_start", "must be after start".into()));
        }
        if end - start > Duration::hours(MAX_DURATION_HOURS) {
            return Err(("max_duration", format!("must be at most {MAX_DURATION_HOURS} hours after start")));
        }
        Ok(Self { start, end })
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// Back-to-back slots (one ends when the next starts) do not overlap.
    pub fn overlaps(&self, other: &TimeSlot) -> bool {
        self.start < other.end && other.start < self.end
    }
}

// The fields are private (see the `impl` below); a doc comment here would become the API schema's
// description.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Appointment {
    #[schema(value_type = uuid::Uuid)]
    id: AppointmentId,
    #[schema(value_type = uuid::Uuid)]
    patient_id: PatientId,
    #[schema(value_type = uuid::Uuid)]
    practitioner_id: PractitionerId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    reason: String,
    notes: Option<String>,
    status: AppointmentStatus,
    cancellation_reason: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An appointment as the store keeps it, for `Appointment::restore`: every field, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAppointment {
    pub id: AppointmentId,
    pub patient_id: PatientId,
    pub practitioner_id: PractitionerId,
    pub slot: TimeSlot,
    pub reason: String,
    pub notes: Option<String>,
    pub status: AppointmentStatus,
    pub cancellation_reason: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the appointment is {0} and can no longer change")]
    Final(&'static str),
    #[error("the appointment has not started yet")]
    NotStarted,
    #[error("the appointment's start time has already passed")]
    AlreadyStarted,
}

/// A booking is made by `book`, read back by `restore`, and changed only by the transitions below,
/// each of which checks the life-cycle rules and moves `version` and `updated_at` on, so no use
/// case can leave a half-changed appointment behind.
impl Appointment {
    /// A new booking of a parsed request, version 1. Whether the slot is free is the store's to
    /// check, under the participants' locks.
    pub fn book(draft: BookingDraft, now: DateTime<Utc>) -> Self {
        Appointment {
            id: AppointmentId::generate(),
            patient_id: draft.patient_id,
            practitioner_id: draft.practitioner_id,
            start: draft.slot.start,
            end: draft.slot.end,
            reason: draft.reason,
            notes: draft.notes,
            status: AppointmentStatus::Booked,
            cancellation_reason: None,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// An appointment read back from the store.
    pub fn restore(stored: StoredAppointment) -> Self {
        Appointment {
            id: stored.id,
            patient_id: stored.patient_id,
            practitioner_id: stored.practitioner_id,
            start: stored.slot.start,
            end: stored.slot.end,
            reason: stored.reason,
            notes: stored.notes,
            status: stored.status,
            cancellation_reason: stored.cancellation_reason,
            version: stored.version,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        }
    }

    pub fn id(&self) -> AppointmentId {
        self.id
    }

    pub fn patient_id(&self) -> PatientId {
        self.patient_id
    }

    pub fn practitioner_id(&self) -> PractitionerId {
        self.practitioner_id
    }

    pub fn slot(&self) -> TimeSlot {
        TimeSlot { start: self.start, end: self.end }
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn notes(&self) -> Option<&str> {
        self.notes.as_deref()
    }

    pub fn status(&self) -> AppointmentStatus {
        self.status
    }

    pub fn cancellation_reason(&self) -> Option<&str> {
        self.cancellation_reason.as_deref()
    }

    /// Incremented by every change; the API exposes it as the ETag.
    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    fn ensure_booked(&self) -> Result<(), TransitionError> {
        match self.status {
            AppointmentStatus::Booked => Ok(()),
            other => Err(TransitionError::Final(other.as_str())),
        }
    }

    /// Every change is a new version.
    fn changed(&mut self, now: DateTime<Utc>) {
        self.version += 1;
        self.updated_at = now;
    }

    pub fn cancel(&mut self, reason: String, now: DateTime<Utc>) -> Result<(), TransitionError> {
        self.ensure_booked()?;
        self.status = AppointmentStatus::Cancelled;
        self.cancellation_reason = Some(reason);
        self.changed(now);
        Ok(())
    }

    /// `completed` and `no_show` describe what happened, so they need the start to have passed.
    pub fn conclude(&mut self, outcome: AppointmentStatus, now: DateTime<Utc>) -> Result<(), TransitionError> {
        debug_assert!(matches!(outcome, AppointmentStatus::Completed | AppointmentStatus::NoShow));
        self.ensure_booked()?;
        if self.start > now {
            return Err(TransitionError::NotStarted);
        }
        self.status = outcome;
        self.changed(now);
        Ok(())
    }

    pub fn reschedule(&mut self, slot: TimeSlot, now: DateTime<Utc>) -> Result<(), TransitionError> {
        self.ensure_booked()?;
        if self.start <= now {
            return Err(TransitionError::AlreadyStarted);
        }
        self.start = slot.start;
        self.end = slot.end;
        self.changed(now);
        Ok(())
    }
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"patient_id": "0193a1f4-6c1e-7d4a-9b8e-3f2a1c0d9e8f", "practitioner_id": "0193a1f4-6c1e-7d4a-9b8e-3f2a1c0d9e90", "start": "2030-01-15T09:00:00Z", "end": "2030-01-15T09:30:00Z", "reason": "annual check-up"})))]
pub struct BookingInput {
    #[schema(required = true, schema_with = patient_schema)]
    pub patient_id: Option<PatientId>,
    #[schema(required = true, schema_with = practitioner_schema)]
    pub practitioner_id: Option<PractitionerId>,
    #[schema(required = true, schema_with = start_schema)]
    pub start: Option<DateTime<Utc>>,
    #[schema(required = true, schema_with = end_schema)]
    pub end: Option<DateTime<Utc>>,
    #[schema(required = true, schema_with = reason_schema)]
    pub reason: Option<String>,
    #[schema(schema_with = notes_schema)]
    pub notes: Option<String>,
}

fn patient_schema() -> ObjectBuilder {
    contract::uuid().description(Some("an active patient"))
}

fn practitioner_schema() -> ObjectBuilder {
    contract::uuid().description(Some("an active practitioner"))
}

fn start_schema() -> ObjectBuilder {
    contract::date_time().description(Some(
        "in the future, within the booking horizon (HEALTHCORE_BOOKING_HORIZON_DAYS, five years by default); \
         kept to the microsecond",
    ))
}

fn end_schema() -> ObjectBuilder {
    contract::date_time().description(Some(format!("after start, at most {MAX_DURATION_HOURS} hours later")))
}

fn reason_schema() -> ObjectBuilder {
    contract::text(REASON_MAX, Lines::Many, Blank::Refused)
}

fn notes_schema() -> ObjectBuilder {
    contract::text(NOTES_MAX, Lines::Many, Blank::MeansNone)
}

/// A valid booking request; whether the slot is free is for the store to decide.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingDraft {
    pub patient_id: PatientId,
    pub practitioner_id: PractitionerId,
    pub slot: TimeSlot,
    pub reason: String,
    pub notes: Option<String>,
}

/// Parses a start/end pair, reporting under `start` and `end`.
pub fn parse_slot(
    errors: &mut FieldErrors,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    window: BookingWindow,
) -> Option<TimeSlot> {
    let (now, horizon_days) = (window.now, window.horizon_days);
    let horizon = now + Duration::days(horizon_days);
    let start = errors.check(
        "start",
        present(start).and_then(|s| {
            if s <= now {
                Err(("in_future", "must be in the future".into()))
            } else if s > horizon {
                Err(("within_horizon", format!("must be at most {horizon_days} days ahead")))
            } else {
                Ok(truncate(s))
            }
        }),
    );
    let end = errors.check("end", present(end).map(truncate));
    match (start, end) {
        (Some(start), Some(end)) => errors.check("end", TimeSlot::new(start, end)),
        _ => None,
    }
}

/// Times are kept to the microsecond, the precision both databases store.
fn truncate(time: DateTime<Utc>) -> DateTime<Utc> {
    let micros = time.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(time)
}

impl BookingDraft {
    pub fn parse(input: &BookingInput, window: BookingWindow) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let patient_id = errors.check("patient_id", present(input.patient_id));
        let practitioner_id = errors.check("practitioner_id", present(input.practitioner_id));
        let slot = parse_slot(&mut errors, input.start, input.end, window);
        let reason =
            errors.check("reason", required(&input.reason).and_then(|v| validation::required_text(v, REASON_MAX)));
        let notes = errors.check("notes", validation::optional_text(input.notes.as_deref(), NOTES_MAX));
        errors.into_result(|| BookingDraft {
            patient_id: patient_id.unwrap(),
            practitioner_id: practitioner_id.unwrap(),
            slot: slot.unwrap(),
            reason: reason.unwrap(),
            notes: notes.unwrap(),
        })
    }
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"start": "2030-01-16T14:00:00Z", "end": "2030-01-16T14:30:00Z"})))]
pub struct RescheduleInput {
    #[schema(required = true, schema_with = start_schema)]
    pub start: Option<DateTime<Utc>>,
    #[schema(required = true, schema_with = end_schema)]
    pub end: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"reason": "patient asked to cancel"})))]
pub struct CancelInput {
    #[schema(required = true, schema_with = reason_schema)]
    pub reason: Option<String>,
}

pub fn parse_cancellation_reason(input: &CancelInput) -> Result<String, FieldErrors> {
    let mut errors = FieldErrors::new();
    let reason = errors.check("reason", required(&input.reason).and_then(|v| validation::required_text(v, REASON_MAX)));
    errors.into_result(|| reason.unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, hour, 0, 0).unwrap()
    }

    fn booked(start: u32, end: u32) -> Appointment {
        let draft = BookingDraft {
            patient_id: PatientId::generate(),
            practitioner_id: PractitionerId::generate(),
            slot: TimeSlot::new(at(start), at(end)).unwrap(),
            reason: "check-up".into(),
            notes: None,
        };
        Appointment::book(draft, at(0))
    }

    #[test]
    fn a_slot_must_end_after_it_starts() {
        assert_eq!(TimeSlot::new(at(10), at(10)).unwrap_err().0, "after_start");
    }

    #[test]
    fn a_slot_may_last_eight_hours_but_not_longer() {
        assert!(TimeSlot::new(at(8), at(16)).is_ok());
        assert_eq!(TimeSlot::new(at(8), at(16) + Duration::seconds(1)).unwrap_err().0, "max_duration");
    }

    #[test]
    fn back_to_back_slots_do_not_overlap_but_nested_ones_do() {
        let morning = TimeSlot::new(at(9), at(10)).unwrap();
        assert!(!morning.overlaps(&TimeSlot::new(at(10), at(11)).unwrap()));
        assert!(morning.overlaps(&TimeSlot::new(at(9), at(11)).unwrap()));
        assert!(TimeSlot::new(at(8), at(12)).unwrap().overlaps(&morning));
    }

    #[test]
    fn booking_in_the_past_is_rejected_on_start() {
        let input = BookingInput {
            patient_id: Some(PatientId::generate()),
            practitioner_id: Some(PractitionerId::generate()),
            start: Some(at(9)),
            end: Some(at(10)),
            reason: Some("x".into()),
            notes: None,
        };
        let errors = BookingDraft::parse(&input, BookingWindow { now: at(12), horizon_days: 30 }).unwrap_err();
        assert_eq!(errors.0[0].field, "start");
        assert_eq!(errors.0[0].rule, "in_future");
    }

    #[test]
    fn cancelled_completed_and_no_show_are_final() {
        let mut appointment = booked(9, 10);
        appointment.cancel("ill".into(), at(1)).unwrap();
        assert_eq!((appointment.version(), appointment.updated_at()), (2, at(1)));
        assert_eq!(appointment.cancel("again".into(), at(2)), Err(TransitionError::Final("cancelled")));
        assert_eq!(appointment.version(), 2, "a refused transition changes nothing");
        assert_eq!(
            appointment.conclude(AppointmentStatus::Completed, at(11)),
            Err(TransitionError::Final("cancelled"))
        );
    }

    #[test]
    fn completion_waits_for_the_start_time() {
        let mut appointment = booked(9, 10);
        assert_eq!(appointment.conclude(AppointmentStatus::Completed, at(8)), Err(TransitionError::NotStarted));
        appointment.conclude(AppointmentStatus::NoShow, at(9)).unwrap();
        assert_eq!(appointment.status(), AppointmentStatus::NoShow);
    }

    #[test]
    fn an_appointment_that_has_started_cannot_be_rescheduled() {
        let mut appointment = booked(9, 10);
        let later = TimeSlot::new(at(14), at(15)).unwrap();
        assert_eq!(appointment.reschedule(later, at(9)), Err(TransitionError::AlreadyStarted));
        appointment.reschedule(later, at(8)).unwrap();
        assert_eq!(appointment.slot(), later);
        assert_eq!(appointment.version(), 2);
    }
}
