//! The audit record: who did what to which patient's data, when, from where, and how it ended.
//! The types only; `crate::audit` builds records from a request and writes them.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AppointmentId, PatientId, Role, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    Denied,
    Error,
}

impl AuditOutcome {
    pub const ALL: [Self; 3] = [AuditOutcome::Success, AuditOutcome::Denied, AuditOutcome::Error];
    /// The wire names, in the order of `ALL` (and of the variants, which serde renames alike).
    pub const NAMES: [&'static str; 3] = ["success", "denied", "error"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == value)
    }
}

/// What was done or attempted, from a closed set; `as_str` is its name in the audit trail (the
/// `action` column and the API's `action` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    PatientCreate,
    PatientList,
    PatientRead,
    PatientUpdate,
    PatientDeactivate,
    PatientReactivate,
    PractitionerCreate,
    PractitionerList,
    PractitionerRead,
    PractitionerUpdate,
    PractitionerDeactivate,
    PractitionerReactivate,
    AppointmentBook,
    AppointmentList,
    AppointmentRead,
    AppointmentReschedule,
    AppointmentCancel,
    AppointmentComplete,
    AppointmentNoShow,
    NotificationList,
    AnalyticsRead,
    AuditList,
    IntegrationCreate,
    IntegrationList,
    IntegrationRead,
    IntegrationEnable,
    IntegrationDelete,
    IntegrationDeliveries,
    UserCreate,
    UserList,
    UserRead,
    UserActivate,
    UserDeactivate,
    UserRoleChange,
    UserPasswordReset,
    UserPasswordChange,
    AuthLogin,
}

impl AuditAction {
    /// Every action, in declaration order.
    pub const ALL: [AuditAction; 37] = [
        AuditAction::PatientCreate,
        AuditAction::PatientList,
        AuditAction::PatientRead,
        AuditAction::PatientUpdate,
        AuditAction::PatientDeactivate,
        AuditAction::PatientReactivate,
        AuditAction::PractitionerCreate,
        AuditAction::PractitionerList,
        AuditAction::PractitionerRead,
        AuditAction::PractitionerUpdate,
        AuditAction::PractitionerDeactivate,
        AuditAction::PractitionerReactivate,
        AuditAction::AppointmentBook,
        AuditAction::AppointmentList,
        AuditAction::AppointmentRead,
        AuditAction::AppointmentReschedule,
        AuditAction::AppointmentCancel,
        AuditAction::AppointmentComplete,
        AuditAction::AppointmentNoShow,
        AuditAction::NotificationList,
        AuditAction::AnalyticsRead,
        AuditAction::AuditList,
        AuditAction::IntegrationCreate,
        AuditAction::IntegrationList,
        AuditAction::IntegrationRead,
        AuditAction::IntegrationEnable,
        AuditAction::IntegrationDelete,
        AuditAction::IntegrationDeliveries,
        AuditAction::UserCreate,
        AuditAction::UserList,
        AuditAction::UserRead,
        AuditAction::UserActivate,
        AuditAction::UserDeactivate,
        AuditAction::UserRoleChange,
        AuditAction::UserPasswordReset,
        AuditAction::UserPasswordChange,
        AuditAction::AuthLogin,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::PatientCreate => "patient.create",
            AuditAction::PatientList => "patient.list",
            AuditAction::PatientRead => "patient.read",
            AuditAction::PatientUpdate => "patient.update",
            AuditAction::PatientDeactivate => "patient.deactivate",
            AuditAction::PatientReactivate => "patient.reactivate",
            AuditAction::PractitionerCreate => "practitioner.create",
            AuditAction::PractitionerList => "practitioner.list",
            AuditAction::PractitionerRead => "practitioner.read",
            AuditAction::PractitionerUpdate => "practitioner.update",
            AuditAction::PractitionerDeactivate => "practitioner.deactivate",
            AuditAction::PractitionerReactivate => "practitioner.reactivate",
            AuditAction::AppointmentBook => "appointment.book",
            AuditAction::AppointmentList => "appointment.list",
            AuditAction::AppointmentRead => "appointment.read",
            AuditAction::AppointmentReschedule => "appointment.reschedule",
            AuditAction::AppointmentCancel => "appointment.cancel",
            AuditAction::AppointmentComplete => "appointment.complete",
            AuditAction::AppointmentNoShow => "appointment.no_show",
            AuditAction::NotificationList => "notification.list",
            AuditAction::AnalyticsRead => "analytics.read",
            AuditAction::AuditList => "audit.list",
            AuditAction::IntegrationCreate => "integration.create",
            AuditAction::IntegrationList => "integration.list",
            AuditAction::IntegrationRead => "integration.read",
            AuditAction::IntegrationEnable => "integration.enable",
            AuditAction::IntegrationDelete => "integration.delete",
            AuditAction::IntegrationDeliveries => "integration.deliveries",
            AuditAction::UserCreate => "user.create",
            AuditAction::UserList => "user.list",
            AuditAction::UserRead => "user.read",
            AuditAction::UserActivate => "user.activate",
            AuditAction::UserDeactivate => "user.deactivate",
            AuditAction::UserRoleChange => "user.role_change",
            AuditAction::UserPasswordReset => "user.password_reset",
            AuditAction::UserPasswordChange => "user.password_change",
            AuditAction::AuthLogin => "auth.login",
        }
    }
}

/// What was touched: a resource type and, when known, its id and the patient it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub resource_type: &'static str,
    pub resource_id: Option<Uuid>,
    pub patient_id: Option<PatientId>,
}

impl Subject {
    pub fn patient(id: PatientId) -> Self {
        Subject { resource_type: "patient", resource_id: Some(id.as_uuid()), patient_id: Some(id) }
    }

    pub fn appointment(id: AppointmentId, patient_id: PatientId) -> Self {
        Subject { resource_type: "appointment", resource_id: Some(id.as_uuid()), patient_id: Some(patient_id) }
    }

    /// A user account (`None`: one not created, or not found).
    pub fn user(id: Option<UserId>) -> Self {
        Subject { resource_type: "user", resource_id: id.map(UserId::as_uuid), patient_id: None }
    }

    pub fn none(resource_type: &'static str) -> Self {
        Subject { resource_type, resource_id: None, patient_id: None }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<UserId>,
    pub actor_role: Option<Role>,
    pub action: AuditAction,
    pub resource_type: &'static str,
    pub resource_id: Option<Uuid>,
    pub patient_id: Option<PatientId>,
    pub outcome: AuditOutcome,
    pub correlation_id: String,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// Why a refusal or an error happened (see `store::audit::AuditEvent::reason`).
    pub reason: Option<String>,
}

impl AuditRecord {
    /// The same record, with why a refusal or an error happened.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// A calendar month in UTC: the unit in which the audit trail is partitioned (PostgreSQL),
/// exported and archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    first_day: NaiveDate,
}

impl Month {
    /// `YYYY-MM`.
    pub fn parse(text: &str) -> Option<Month> {
        let (year, month) = text.trim().split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        Some(Month { first_day: NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)? })
    }

    /// The month `at` falls in (UTC).
    pub fn of(at: DateTime<Utc>) -> Month {
        Month { first_day: at.date_naive().with_day(1).expect("every month has a first day") }
    }

    pub fn first_day(self) -> NaiveDate {
        self.first_day
    }

    /// Its first instant, the lower bound of its records' `occurred_at`.
    pub fn start(self) -> DateTime<Utc> {
        self.first_day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
    }

    pub fn next(self) -> Month {
        Month {
            first_day: self
                .first_day
                .checked_add_months(chrono::Months::new(1))
                .expect("a month within chrono's range"),
        }
    }

    /// Its first instant is the upper bound (exclusive) of its records.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.first_day.format("%Y-%m"))
    }
}

#[cfg(test)]
mod month_tests {
    use super::Month;

    #[test]
    fn a_month_parses_prints_and_bounds_its_records() {
        let december = Month::parse("2026-12").unwrap();
        assert_eq!(december.to_string(), "2026-12");
        assert_eq!(december.start().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(december.end().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert_eq!(Month::of(december.end()), Month::parse("2027-01").unwrap());
        for bad in ["2026-13", "2026-1", "26-12", "2026/12", "December"] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }
}
