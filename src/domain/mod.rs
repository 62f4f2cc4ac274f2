//! Pure domain types and rules: no I/O, no clocks read implicitly, no database.
//!
//! Every input from the outside world is *parsed* into these types (see `PatientDraft::parse`);
//! once a value exists it is valid, so the layers above never re-check it.

pub mod appointment;
pub mod audit;
pub mod contract;
pub mod ids;
pub mod patient;
pub mod practitioner;
pub mod role;
pub mod timestamp;
pub mod validation;
pub mod values;

pub use appointment::{Appointment, AppointmentStatus, TimeSlot, TransitionError};
pub use ids::{AppointmentId, PatientId, PractitionerId, UserId};
pub use patient::{Patient, PatientDraft, PatientPatch, Sex};
pub use practitioner::{Practitioner, PractitionerDraft, PractitionerPatch, PractitionerRole};
pub use role::Role;
pub use validation::{FieldError, FieldErrors};
pub use values::{Email, Mrn, PersonName, Phone};

/// Longest accepted name or number prefix in list filters.
pub const NAME_FILTER_MAX: usize = 100;

/// Sets `field` to `value` when a value is given and differs, recording `name` as changed: the
/// step every partial update repeats per field.
fn assign<T: PartialEq>(field: &mut T, value: Option<T>, name: &'static str, changed: &mut Vec<&'static str>) {
    if let Some(value) = value
        && *field != value
    {
        *field = value;
        changed.push(name);
    }
}
