//! What the application layer knows about the request it serves: who asks, and where from (the trace travels with the `tracing` span, see `telemetry::traces`).

use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::auth::Principal;
use crate::domain::PatientId;

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub principal: Principal,
    /// The application's clock, which the request's audit records and events are stamped by.
    pub clock: crate::clock::Clock,
    pub correlation_id: String,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// What the request turned out to concern, for the record of an attempt that fails.
    pub attempt: Attempt,
}

impl RequestContext {
    /// Notes the resource and the patient this request acts on, once the use case knows them (a
    /// booking's patient, an appointment's): an attempt that then fails is audited against them.
    pub fn concerns(&self, resource_id: Option<Uuid>, patient_id: Option<PatientId>) {
        *self.attempt.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Concern { resource_id, patient_id });
    }
}

/// The resource and patient a request on patient data concerns, shared between the use case that
/// learns them and the HTTP edge that audits a refusal or an error (`http::attempts`).
#[derive(Debug, Clone, Default)]
pub struct Attempt(Arc<Mutex<Option<Concern>>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concern {
    pub resource_id: Option<Uuid>,
    pub patient_id: Option<PatientId>,
}

impl Attempt {
    pub fn concern(&self) -> Option<Concern> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The context of a request that has not (yet) authenticated: a login attempt.
#[derive(Debug, Clone)]
pub struct AnonymousContext {
    pub correlation_id: String,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}
