//! Who is calling: passwords, tokens and the authenticated principal. What they may do is `policy`.

pub mod password;
pub mod policy;
pub mod throttle;
pub mod token;

use crate::domain::{PatientId, Role, UserId};
use serde::{Deserialize, Serialize};

pub use policy::Action;
pub use token::TokenIssuer;

/// The authenticated caller, as carried in a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: UserId,
    pub role: Role,
    /// For `patient` users: the one patient record they are.
    pub patient_id: Option<PatientId>,
}
