//! Every attempt on patient data leaves an audit record, whatever its outcome. The use cases record
//! what succeeds (a write inside its transaction, a read before it is answered) and what the
//! policy refuses (403, `service::authorize`); this middleware records everything else that ends a
//! request to a patient-data route: 401, 400, 404, 408, 409, 412, 413, 422, 5xx — outcome `denied`
//! for a caller who did not authenticate, `error` otherwise, with the problem type as the reason.
//! The subject is what the use case learnt before it failed (a booking's patient, an appointment's)
//! or else what the path names. The record is committed before the response leaves, like any other.
//!
//! A request without a valid token is audited once per client address per minute: each record is a
//! database write, and an unauthenticated flood must not be able to fill the disk with them (the
//! rest are counted in `healthcore_http_requests_total{status="401"}`).

use std::sync::Arc;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::Response,
};
use uuid::Uuid;

use super::access_log::CallerSlot;
use super::problem::ProblemType;
use crate::audit::{AuditAction, AuditLog, AuditOutcome, AuditRecord, Subject};
use crate::clock::Clock;
use crate::context::Attempt;
use crate::domain::PatientId;

/// What the `{id}` of a route's path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathId {
    None,
    Patient,
    Appointment,
}

/// The routes that touch patient data or the audit trail: method, route template, the action
/// attempted (as the use case audits it), the resource type, and what the path id names.
const ROUTES: &[(Method, &str, AuditAction, &str, PathId)] = &[
    (Method::POST, "/api/v1/patients", AuditAction::PatientCreate, "patient", PathId::None),
    (Method::GET, "/api/v1/patients", AuditAction::PatientList, "patient", PathId::None),
    (Method::GET, "/api/v1/patients/{id}", AuditAction::PatientRead, "patient", PathId::Patient),
    (Method::PATCH, "/api/v1/patients/{id}", AuditAction::PatientUpdate, "patient", PathId::Patient),
    (Method::DELETE, "/api/v1/patients/{id}", AuditAction::PatientDeactivate, "patient", PathId::Patient),
    (Method::POST, "/api/v1/patients/{id}/reactivate", AuditAction::PatientReactivate, "patient", PathId::Patient),
    (Method::POST, "/api/v1/appointments", AuditAction::AppointmentBook, "appointment", PathId::None),
    (Method::GET, "/api/v1/appointments", AuditAction::AppointmentList, "appointment", PathId::None),
    (Method::GET, "/api/v1/appointments/{id}", AuditAction::AppointmentRead, "appointment", PathId::Appointment),
    (
        Method::POST,
        "/api/v1/appointments/{id}/reschedule",
        AuditAction::AppointmentReschedule,
        "appointment",
        PathId::Appointment,
    ),
    (
        Method::POST,
        "/api/v1/appointments/{id}/cancel",
        AuditAction::AppointmentCancel,
        "appointment",
        PathId::Appointment,
    ),
    (
        Method::POST,
        "/api/v1/appointments/{id}/complete",
        AuditAction::AppointmentComplete,
        "appointment",
        PathId::Appointment,
    ),
    (
        Method::POST,
        "/api/v1/appointments/{id}/no-show",
        AuditAction::AppointmentNoShow,
        "appointment",
        PathId::Appointment,
    ),
    (Method::GET, "/api/v1/audit-events", AuditAction::AuditList, "audit_event", PathId::None),
    (Method::GET, "/api/v1/notifications", AuditAction::NotificationList, "notification", PathId::None),
    // The FHIR twins of the routes above.
    (Method::GET, "/fhir/R4/Patient", AuditAction::PatientList, "patient", PathId::None),
    (Method::GET, "/fhir/R4/Patient/{id}", AuditAction::PatientRead, "patient", PathId::Patient),
    (Method::POST, "/fhir/R4/Appointment", AuditAction::AppointmentBook, "appointment", PathId::None),
    (Method::GET, "/fhir/R4/Appointment", AuditAction::AppointmentList, "appointment", PathId::None),
    (Method::GET, "/fhir/R4/Appointment/{id}", AuditAction::AppointmentRead, "appointment", PathId::Appointment),
    // A patch cancels, fulfils or marks a no-show: a refused one is recorded as the cancellation
    // attempt (the one a patient may make).
    (Method::PATCH, "/fhir/R4/Appointment/{id}", AuditAction::AppointmentCancel, "appointment", PathId::Appointment),
    // An update moves the slot or changes the status: a failed one is recorded as a reschedule.
    (Method::PUT, "/fhir/R4/Appointment/{id}", AuditAction::AppointmentReschedule, "appointment", PathId::Appointment),
    (Method::GET, "/fhir/R4/AuditEvent", AuditAction::AuditList, "audit_event", PathId::None),
    (Method::GET, "/fhir/R4/AuditEvent/{id}", AuditAction::AuditList, "audit_event", PathId::None),
];

/// The id in the path, where the route template has `{id}`.
fn path_id(template: &str, path: &str) -> Option<Uuid> {
    let position = template.split('/').position(|segment| segment == "{id}")?;
    path.split('/').nth(position)?.parse().ok()
}

/// Client addresses whose unauthenticated attempt was audited in the last minute.
pub struct Unauthenticated(moka::sync::Cache<String, ()>);

impl Default for Unauthenticated {
    fn default() -> Self {
        let cache =
            moka::sync::Cache::builder().max_capacity(100_000).time_to_live(std::time::Duration::from_secs(60)).build();
        Unauthenticated(cache)
    }
}

impl Unauthenticated {
    /// Whether this address's unauthenticated attempt is the first in its minute.
    fn first(&self, address: Option<&str>) -> bool {
        let key = address.unwrap_or("unknown").to_owned();
        let entry = self.0.entry(key).or_insert(());
        entry.is_fresh()
    }
}

/// What the middleware records failed attempts with. Shared behind an `Arc`: axum clones a
/// middleware's state for every request, and a clone of the cache alone is several reference
/// counts.
pub struct Recorder {
    pub audit: AuditLog,
    pub unauthenticated: Unauthenticated,
    pub clock: Clock,
}

pub async fn middleware(State(recorder): State<Arc<Recorder>>, mut request: Request, next: Next) -> Response {
    let Some(template) = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()) else {
        return next.run(request).await;
    };
    let Some(&(_, _, action, resource_type, names)) =
        ROUTES.iter().find(|(method, route, ..)| method == request.method() && *route == template)
    else {
        return next.run(request).await;
    };
    let attempt = Attempt::default();
    request.extensions_mut().insert(attempt.clone());
    let id = path_id(&template, request.uri().path());
    let origin = super::origin::origin(request.extensions(), request.headers());
    let caller = request.extensions().get::<CallerSlot>().cloned();
    let response = next.run(request).await;
    let status = response.status();
    // Successes and policy refusals are the use cases' own records.
    if !(status.is_client_error() || status.is_server_error()) || status == StatusCode::FORBIDDEN {
        return response;
    }
    let (resource_id, patient_id) = match attempt.concern() {
        Some(concern) => (concern.resource_id, concern.patient_id),
        None => match names {
            PathId::Patient => (id, id.map(PatientId::from_uuid)),
            PathId::Appointment => (id, None),
            PathId::None => (None, None),
        },
    };
    let principal = caller.and_then(|slot| slot.0.get().copied());
    if principal.is_none() && !recorder.unauthenticated.first(origin.client_addr.as_deref()) {
        return response;
    }
    let outcome = if principal.is_none() { AuditOutcome::Denied } else { AuditOutcome::Error };
    let reason = response
        .extensions()
        .get::<ProblemType>()
        .map_or_else(|| status.as_u16().to_string(), |t| t.0.as_str().to_owned());
    let subject = Subject { resource_type, resource_id, patient_id };
    let record = AuditRecord::attempt(
        &origin,
        principal.map(|p| (p.user_id, p.role)),
        action,
        subject,
        outcome,
        recorder.clock.now(),
    )
    .because(reason);
    if let Err(err) = recorder.audit.record(vec![record]).await {
        // Only when the database itself is unavailable, which is what the response says too.
        tracing::error!(error = %err, action = action.as_str(), "the audit record of a failed attempt could not be written");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_id_is_read_where_the_template_has_it() {
        let id = Uuid::now_v7();
        assert_eq!(path_id("/api/v1/patients/{id}", &format!("/api/v1/patients/{id}")), Some(id));
        let cancel = format!("/api/v1/appointments/{id}/cancel");
        assert_eq!(path_id("/api/v1/appointments/{id}/cancel", &cancel), Some(id));
        assert_eq!(path_id("/api/v1/patients/{id}", "/api/v1/patients/not-a-uuid"), None);
        assert_eq!(path_id("/api/v1/patients", "/api/v1/patients"), None);
    }

    #[test]
    fn every_audited_route_exists() {
        let (_, openapi) = crate::http::api();
        for (method, route, ..) in ROUTES {
            if let Some(fhir) = route.strip_prefix("/fhir/R4/") {
                let (resource_type, instance) = fhir.split_once('/').map_or((fhir, false), |(t, _)| (t, true));
                let interaction = match (method.as_str(), instance) {
                    ("GET", true) => "read",
                    ("GET", false) => "search-type",
                    ("POST", false) => "create",
                    ("PATCH", true) => "patch",
                    ("PUT", true) => "update",
                    _ => panic!("{method} {route} is not a FHIR interaction"),
                };
                let support = crate::http::fhir::capability::support(resource_type);
                assert!(support.interactions.contains(&interaction), "{method} {route} is not declared");
                continue;
            }
            let item = openapi.paths.paths.get(*route).unwrap_or_else(|| panic!("{route} is not a route"));
            let operation = match *method {
                Method::GET => item.get.as_ref(),
                Method::POST => item.post.as_ref(),
                Method::PATCH => item.patch.as_ref(),
                Method::DELETE => item.delete.as_ref(),
                _ => None,
            };
            assert!(operation.is_some(), "{method} {route} is not an operation");
        }
    }
}
