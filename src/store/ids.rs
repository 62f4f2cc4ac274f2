//! The domain's typed ids as query values: a filter can compare a column with a `PatientId`
//! directly, and the domain stays free of the database library.

use sea_orm::Value;

use crate::domain::{AppointmentId, PatientId, PractitionerId, UserId};

macro_rules! id_values {
    ($($id:ty),+) => {$(
        impl From<$id> for Value {
            fn from(id: $id) -> Value {
                Value::from(id.as_uuid())
            }
        }
    )+};
}

id_values!(PatientId, PractitionerId, AppointmentId, UserId);
