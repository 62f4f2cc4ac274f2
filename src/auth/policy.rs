//! The authorization matrix: which role may perform which action, and on whose data.
//! `docs/SECURITY.md` shows the same table; `tests/api/authorization.rs` checks every cell.

use super::Principal;
use crate::domain::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PatientCreate,
    PatientRead,
    PatientUpdate,
    PatientDeactivate,
    PractitionerRead,
    PractitionerWrite,
    AppointmentBook,
    AppointmentRead,
    AppointmentReschedule,
    AppointmentCancel,
    AppointmentConclude,
    AuditRead,
    AnalyticsRead,
    NotificationRead,
    IntegrationManage,
    UserManage,
}

impl Action {
    /// The phrase used in 403 responses: "you are not allowed to …".
    pub fn describe(self) -> &'static str {
        match self {
            Action::PatientCreate => "register patients",
            Action::PatientRead => "read this patient data",
            Action::PatientUpdate => "change patient data",
            Action::PatientDeactivate => "deactivate or reactivate patients",
            Action::PractitionerRead => "read practitioners",
            Action::PractitionerWrite => "manage practitioners",
            Action::AppointmentBook => "book this appointment",
            Action::AppointmentRead => "read this appointment",
            Action::AppointmentReschedule => "reschedule appointments",
            Action::AppointmentCancel => "cancel this appointment",
            Action::AppointmentConclude => "mark appointments completed or no-show",
            Action::AuditRead => "read the audit trail",
            Action::AnalyticsRead => "read analytics",
            Action::NotificationRead => "read patient notifications",
            Action::IntegrationManage => "manage integration subscriptions",
            Action::UserManage => "manage user accounts",
        }
    }
}

/// How far a role's permission reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Denied,
    /// Only data of the patient the user is linked to.
    OwnRecord,
    All,
}

pub fn access(role: Role, action: Action) -> Access {
    use Access::*;
    use Action::*;
    match (role, action) {
        (Role::Admin, _) => All,
        (_, PractitionerRead) => All,
        (Role::Physician | Role::Nurse | Role::Receptionist, PatientCreate | PatientRead | PatientUpdate) => All,
        (Role::Receptionist, PatientDeactivate) => All,
        (
            Role::Physician | Role::Nurse | Role::Receptionist,
            AppointmentBook | AppointmentRead | AppointmentReschedule | AppointmentCancel,
        ) => All,
        (Role::Physician | Role::Nurse, AppointmentConclude) => All,
        (Role::Auditor, AuditRead) => All,
        (Role::Receptionist, NotificationRead) => All,
        (Role::Patient, PatientRead | AppointmentBook | AppointmentRead | AppointmentCancel) => OwnRecord,
        _ => Denied,
    }
}

impl Principal {
    /// Whether the caller may perform `action` on data of `patient_id` (`None`: no specific patient).
    pub fn may(&self, action: Action, patient_id: Option<crate::domain::PatientId>) -> bool {
        match access(self.role, action) {
            Access::All => true,
            Access::OwnRecord => self.patient_id.is_some() && patient_id.is_some() && self.patient_id == patient_id,
            Access::Denied => false,
        }
    }

    /// Whether the caller may perform `action` at all, on some data.
    pub fn may_at_all(&self, action: Action) -> bool {
        access(self.role, action) != Access::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PatientId, UserId};

    #[test]
    fn a_patient_user_reaches_only_its_own_record() {
        let own = PatientId::generate();
        let principal = Principal { user_id: UserId::generate(), role: Role::Patient, patient_id: Some(own) };
        assert!(principal.may(Action::PatientRead, Some(own)));
        assert!(!principal.may(Action::PatientRead, Some(PatientId::generate())));
        assert!(!principal.may(Action::PatientRead, None));
    }

    #[test]
    fn a_patient_user_without_a_linked_record_reaches_nothing() {
        // The Django original matched ownership by e-mail, so an empty e-mail matched every patient
        // with an empty e-mail. Here an unlinked patient user must not match records with no id.
        let principal = Principal { user_id: UserId::generate(), role: Role::Patient, patient_id: None };
        assert!(!principal.may(Action::PatientRead, None));
    }

    #[test]
    fn only_admins_manage_practitioners() {
        for role in Role::ALL {
            assert_eq!(access(role, Action::PractitionerWrite) == Access::All, role == Role::Admin, "{role}");
        }
    }

    #[test]
    fn auditors_read_the_audit_trail_but_no_patient_data() {
        assert_eq!(access(Role::Auditor, Action::AuditRead), Access::All);
        assert_eq!(access(Role::Auditor, Action::PatientRead), Access::Denied);
    }
}
