//! The audit record: who did what to which patient's data, when, from where, and how it ended.
//! The types only; `crate::audit` builds records from a request and writes them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{AppointmentId, PatientId, Role, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    Denied,
    Error,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Error => "error",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [AuditOutcome::Success, AuditOutcome::Denied, AuditOutcome::Error].into_iter().find(|o| o.as_str() == value)
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
