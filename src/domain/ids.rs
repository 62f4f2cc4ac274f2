//! Typed identifiers. Patients, practitioners, appointments and users are all named by UUIDs; giving
//! each its own type means passing a practitioner's id where a patient's is expected no longer
//! compiles. On the wire and in the database they stay plain UUIDs (`serde(transparent)`; the store
//! converts at its boundary), so nothing a client or an operator sees changes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_ids {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id. Version 7 UUIDs start with the time, so new rows land at the end of the
            /// primary-key index instead of at random pages.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Names an existing row: for the store reading it back and for parsed requests.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        /// Towards the untyped UUID only: the store binds it, nothing turns it back silently.
        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(value).map(Self)
            }
        }
    )+};
}

typed_ids! {
    /// A patient's id.
    PatientId;
    /// A practitioner's id.
    PractitionerId;
    /// An appointment's id.
    AppointmentId;
    /// A user account's id (an account may belong to a patient; that is `Principal::patient_id`).
    UserId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_plain_uuid_on_the_wire() {
        let id = PatientId::generate();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.as_uuid()));
        assert_eq!(serde_json::from_str::<PatientId>(&json).unwrap(), id);
        assert_eq!(id.to_string().parse::<PatientId>().unwrap(), id);
    }
}
