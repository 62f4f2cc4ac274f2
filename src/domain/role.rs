//! The roles a user can hold. What each role may do lives in `auth::policy`.

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Physician,
    Nurse,
    Receptionist,
    Auditor,
    Patient,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Admin, Role::Physician, Role::Nurse, Role::Receptionist, Role::Auditor, Role::Patient];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::Receptionist => "receptionist",
            Role::Auditor => "auditor",
            Role::Patient => "patient",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|role| role.as_str() == s).ok_or_else(|| {
            format!("unknown role '{s}' (expected one of admin, physician, nurse, receptionist, auditor, patient)")
        })
    }
}
