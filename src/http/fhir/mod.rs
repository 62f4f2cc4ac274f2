//! The FHIR R4 interface at `/fhir/R4`: the same use cases as the REST API (`service`), in FHIR's
//! representation. Patients, practitioners and appointments are read and searched, appointments
//! are booked (`POST`) and rescheduled, cancelled or concluded (`PUT`, `PATCH`), and the audit trail is read as
//! `AuditEvent`s. Authorization, audit records, events and locks are the use cases', so a FHIR
//! request and its REST twin leave the same trail.
//!
//! `capability.rs` declares what is supported (the CapabilityStatement is built from it, and so is
//! the list of search parameters each search accepts); `resources.rs` maps domain values to FHIR
//! resources and an incoming Appointment to a booking; `search.rs` reads search parameters and
//! writes the Bundle; `outcome.rs` turns every problem response under `/fhir/` into an
//! OperationOutcome; `routes.rs` has the handlers. `docs/FHIR.md` is the field-by-field mapping.

pub mod capability;
pub mod outcome;
pub mod resources;
pub mod routes;
pub mod search;

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::Value;

use crate::state::AppState;

/// Where the FHIR interface is served.
pub const BASE: &str = "/fhir/R4";

/// The media type of every FHIR response.
pub const CONTENT_TYPE: &str = "application/fhir+json";

/// The identifier systems of the identifiers HealthCore assigns.
pub const MRN_SYSTEM: &str = "https://healthcore.dev/fhir/sid/mrn";
pub const LICENCE_SYSTEM: &str = "https://healthcore.dev/fhir/sid/licence";
pub const USER_SYSTEM: &str = "https://healthcore.dev/fhir/sid/user";

/// The FHIR routes; `http::router` adds them beside the REST API, under the same middleware.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/R4/metadata", get(routes::metadata))
        .route("/fhir/R4/Patient", get(routes::search_patients))
        .route("/fhir/R4/Patient/{id}", get(routes::read_patient))
        .route("/fhir/R4/Practitioner", get(routes::search_practitioners))
        .route("/fhir/R4/Practitioner/{id}", get(routes::read_practitioner))
        .route("/fhir/R4/Appointment", get(routes::search_appointments).post(routes::book_appointment))
        .route(
            "/fhir/R4/Appointment/{id}",
            get(routes::read_appointment).put(routes::update_appointment).patch(routes::patch_appointment),
        )
        .route("/fhir/R4/AuditEvent", get(routes::search_audit_events))
        .route("/fhir/R4/AuditEvent/{id}", get(routes::read_audit_event))
        .route("/fhir/R4", get(routes::unsupported))
        .route("/fhir/R4/{*rest}", get(routes::unsupported).post(routes::unsupported))
}

/// The address clients reach this interface at, for `fullUrl`, `Location` and Bundle links: the
/// request's `Host`, over HTTPS when the proxy in front says so (`X-Forwarded-Proto`). Both come
/// from the client, and the links go back only to it.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let https = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "https");
    format!("{}://{host}{BASE}", if https { "https" } else { "http" })
}

/// A FHIR JSON response.
pub fn respond(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A FHIR JSON response carrying one resource's version as its weak ETag (`W/"3"`).
pub fn versioned(status: StatusCode, body: &Value, version: i64) -> Response {
    let mut response = respond(status, body);
    if let Ok(value) = HeaderValue::from_str(&format!("W/\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
