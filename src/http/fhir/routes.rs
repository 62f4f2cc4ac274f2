//! The FHIR handlers: read the request in FHIR's terms, call the REST API's use case, answer in
//! FHIR's representation. Errors leave as problems, which `outcome::middleware` rewrites.

use std::str::FromStr;

use axum::{
    body::Bytes,
    extract::{FromRequest, Path, RawQuery, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use uuid::Uuid;

use super::capability::{self, support};
use super::resources::{self, Update};
use super::search::{NO_MATCH, Search, refused};
use super::{LICENCE_SYSTEM, MRN_SYSTEM, base_url, respond, versioned};
use crate::domain::{AppointmentId, FieldErrors, NAME_FILTER_MAX, PatientId, PractitionerId};
use crate::error::{AppError, ProblemCode};
use crate::http::extract::{Caller, IfMatch, JsonBody};
use crate::http::problem::Problem;
use crate::service::{appointments, audit_events, patients, practitioners};
use crate::state::AppState;
use crate::store::appointments::AppointmentFilter;
use crate::store::audit::AuditFilter;
use crate::store::patients::PatientFilter;
use crate::store::practitioners::PractitionerFilter;

type Answer = Result<Response, Response>;

fn failed(err: AppError) -> Response {
    err.into_response()
}

/// The use case's field errors, renamed to the FHIR elements they came from.
fn in_fhir_terms(err: AppError, path: impl Fn(&str) -> String) -> Response {
    match err {
        AppError::Validation(FieldErrors(errors)) => {
            let renamed = errors.into_iter().map(|mut e| {
                e.field = path(&e.field);
                e
            });
            AppError::Validation(FieldErrors(renamed.collect())).into_response()
        }
        other => other.into_response(),
    }
}

/// The id in the path. No resource has an id that is not a UUID, so anything else is 404.
fn resource_id<Id: FromStr>(raw: &str, what: &'static str) -> Result<Id, AppError> {
    raw.parse().map_err(|_| AppError::NotFound(what))
}

/// `GET /fhir/R4/metadata`: what this server supports (no token needed, as FHIR clients expect).
pub async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let published = resources::instant(state.clock.now());
    respond(StatusCode::OK, &capability::statement(&base_url(&headers), &published))
}

/// Anything under `/fhir/R4` that is not a supported type or interaction.
pub async fn unsupported() -> Response {
    let detail = "this server supports no such FHIR resource type or interaction (GET /fhir/R4/metadata lists them)";
    Problem::new(StatusCode::NOT_FOUND, ProblemCode::NotFound, detail).into_response()
}

/// A JSON Patch body (`application/json-patch+json`): an array, which `JsonBody` (objects only)
/// refuses.
pub struct JsonPatch(Value);

impl<S: Send + Sync> FromRequest<S> for JsonPatch {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let media_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let media_type = media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media_type != "application/json-patch+json" {
            let detail = "the body must be a JSON Patch (Content-Type: application/json-patch+json)";
            return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, ProblemCode::UnsupportedMediaType, detail)
                .into_response());
        }
        // Within the body limit, as every body (`http::body` refuses a larger one first).
        let body = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        serde_json::from_slice(&body).map(JsonPatch).map_err(|err| {
            let detail = format!("the body is not valid JSON (line {}, column {})", err.line(), err.column());
            Problem::new(StatusCode::BAD_REQUEST, ProblemCode::MalformedJson, detail).into_response()
        })
    }
}

pub async fn read_patient(State(state): State<AppState>, Caller(ctx): Caller, Path(id): Path<String>) -> Answer {
    let id: PatientId = resource_id(&id, "patient").map_err(failed)?;
    let patient = patients::get(&state, &ctx, id).await.map_err(failed)?;
    Ok(versioned(StatusCode::OK, &resources::patient(&patient), patient.version))
}

pub async fn search_patients(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let mut search = Search::parse(support("Patient"), query.as_deref(), &headers).map_err(refused)?;
    let mut filter = PatientFilter { id: search.id().map(PatientId::from_uuid), ..PatientFilter::default() };
    if let Some(token) = search.token("identifier") {
        match token.code_in(MRN_SYSTEM) {
            Some(mrn) => filter.mrn = Some(mrn.to_owned()),
            None => filter.id = Some(PatientId::from_uuid(NO_MATCH)),
        }
    }
    filter.name_prefix = search.string("name", NAME_FILTER_MAX);
    filter.family_prefix = search.string("family", NAME_FILTER_MAX);
    filter.given_prefix = search.string("given", NAME_FILTER_MAX);
    (filter.born_from, filter.born_before) = search.dates("birthdate", true).days();
    filter.active = search.boolean("active");
    let page = search.page();
    search.finish().map_err(refused)?;
    let page = patients::list(&state, &ctx, filter, page).await.map_err(failed)?;
    let entries = page.items.iter().map(|p| (format!("Patient/{}", p.id), resources::patient(p))).collect();
    Ok(respond(StatusCode::OK, &search.bundle(&base_url(&headers), &page, entries)))
}

pub async fn read_practitioner(State(state): State<AppState>, Caller(ctx): Caller, Path(id): Path<String>) -> Answer {
    let id: PractitionerId = resource_id(&id, "practitioner").map_err(failed)?;
    let practitioner = practitioners::get(&state, &ctx, id).await.map_err(failed)?;
    Ok(versioned(StatusCode::OK, &resources::practitioner(&practitioner), practitioner.version))
}

pub async fn search_practitioners(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let mut search = Search::parse(support("Practitioner"), query.as_deref(), &headers).map_err(refused)?;
    let mut filter =
        PractitionerFilter { id: search.id().map(PractitionerId::from_uuid), ..PractitionerFilter::default() };
    if let Some(token) = search.token("identifier") {
        match token.code_in(LICENCE_SYSTEM) {
            Some(licence) => filter.licence = Some(licence.to_owned()),
            None => filter.id = Some(PractitionerId::from_uuid(NO_MATCH)),
        }
    }
    filter.name_prefix = search.string("name", NAME_FILTER_MAX);
    filter.active = search.boolean("active");
    let page = search.page();
    search.finish().map_err(refused)?;
    let page = practitioners::list(&state, &ctx, filter, page).await.map_err(failed)?;
    let entries = page.items.iter().map(|p| (format!("Practitioner/{}", p.id), resources::practitioner(p))).collect();
    Ok(respond(StatusCode::OK, &search.bundle(&base_url(&headers), &page, entries)))
}

pub async fn read_appointment(State(state): State<AppState>, Caller(ctx): Caller, Path(id): Path<String>) -> Answer {
    let id: AppointmentId = resource_id(&id, "appointment").map_err(failed)?;
    let appointment = appointments::get(&state, &ctx, id).await.map_err(failed)?;
    Ok(versioned(StatusCode::OK, &resources::appointment(&appointment), appointment.version()))
}

pub async fn search_appointments(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let mut search = Search::parse(support("Appointment"), query.as_deref(), &headers).map_err(refused)?;
    let mut filter = AppointmentFilter { id: search.id().map(AppointmentId::from_uuid), ..Default::default() };
    filter.patient_id = search.reference("patient", &["Patient"]).map(|(_, id)| PatientId::from_uuid(id));
    filter.practitioner_id =
        search.reference("practitioner", &["Practitioner"]).map(|(_, id)| PractitionerId::from_uuid(id));
    match search.reference("actor", &["Patient", "Practitioner"]) {
        // An actor that names a participant already named must be that one.
        Some(("Patient", id)) if filter.patient_id.is_some_and(|p| p.as_uuid() != id) => {
            filter.id = Some(AppointmentId::from_uuid(NO_MATCH))
        }
        Some(("Patient", id)) => filter.patient_id = Some(PatientId::from_uuid(id)),
        Some((_, id)) if filter.practitioner_id.is_some_and(|p| p.as_uuid() != id) => {
            filter.id = Some(AppointmentId::from_uuid(NO_MATCH))
        }
        Some((_, id)) => filter.practitioner_id = Some(PractitionerId::from_uuid(id)),
        None => {}
    }
    let range = search.dates("date", false);
    (filter.from, filter.to) = (range.from, range.to);
    if let Some(token) = search.token("status") {
        match resources::status_of(&token.code) {
            Ok(Some(status)) => filter.status = Some(status),
            Ok(None) => filter.id = Some(AppointmentId::from_uuid(NO_MATCH)),
            Err(()) => search.refuse("status", "one_of", "must be a FHIR appointment status, such as booked"),
        }
    }
    let page = search.page();
    search.finish().map_err(refused)?;
    let page = appointments::list(&state, &ctx, filter, page).await.map_err(failed)?;
    let entries = page.items.iter().map(|a| (format!("Appointment/{}", a.id()), resources::appointment(a))).collect();
    Ok(respond(StatusCode::OK, &search.bundle(&base_url(&headers), &page, entries)))
}

/// `POST /fhir/R4/Appointment`: books, by the REST API's use case (same rules, locks, events,
/// audit); 201 with the resource, its ETag and its versioned Location.
pub async fn book_appointment(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: JsonBody<Value>,
) -> Answer {
    let Value::Object(resource) = &body.value else {
        let errors = FieldErrors::single("body", "object", "must be an Appointment resource");
        return Err(failed(AppError::Validation(errors)));
    };
    let input = resources::booking(resource).map_err(|errors| failed(AppError::Validation(errors)))?;
    let appointment =
        appointments::book(&state, &ctx, input, None).await.map_err(|e| in_fhir_terms(e, resources::booking_path))?;
    let mut response = versioned(StatusCode::CREATED, &resources::appointment(&appointment), appointment.version());
    let location =
        format!("{}/Appointment/{}/_history/{}", base_url(&headers), appointment.id(), appointment.version());
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `PATCH /fhir/R4/Appointment/{id}` with a JSON Patch of `/status`: cancels (with
/// `/cancelationReason`), fulfils or marks a no-show, by the REST API's use case.
pub async fn patch_appointment(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    IfMatch(version): IfMatch,
    JsonPatch(patch): JsonPatch,
) -> Answer {
    let id: AppointmentId = resource_id(&id, "appointment").map_err(failed)?;
    let change = resources::status_change(&patch).map_err(|errors| failed(AppError::Validation(errors)))?;
    let appointment = appointments::transition(&state, &ctx, id, change, version)
        .await
        .map_err(|e| in_fhir_terms(e, resources::change_path))?;
    Ok(versioned(StatusCode::OK, &resources::appointment(&appointment), appointment.version()))
}

/// `PUT /fhir/R4/Appointment/{id}`: the appointment as the client wants it. Compared with the
/// appointment as it is (read first, and audited as a read, as the response shows it), it asks for
/// one of the REST API's actions — reschedule, cancel, complete, no-show — or for nothing.
pub async fn update_appointment(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    IfMatch(version): IfMatch,
    body: JsonBody<Value>,
) -> Answer {
    let id: AppointmentId = resource_id(&id, "appointment").map_err(failed)?;
    let Value::Object(resource) = &body.value else {
        let errors = FieldErrors::single("body", "object", "must be an Appointment resource");
        return Err(failed(AppError::Validation(errors)));
    };
    if resource.get("id").and_then(Value::as_str) != Some(id.to_string().as_str()) {
        return Err(failed(AppError::BadRequest("the resource's id must be the id in the URL".to_owned())));
    }
    let current = appointments::get(&state, &ctx, id).await.map_err(failed)?;
    let appointment = match resources::update(&current, resource).map_err(|e| failed(AppError::Validation(e)))? {
        // Nothing to change, but an If-Match that names another version is still refused.
        Update::Unchanged => match version {
            Some(expected) if expected != current.version() => {
                return Err(failed(AppError::PreconditionFailed { expected }));
            }
            _ => current,
        },
        Update::Reschedule(input) => appointments::reschedule(&state, &ctx, id, input, version)
            .await
            .map_err(|e| in_fhir_terms(e, resources::change_path))?,
        Update::Status(change) => appointments::transition(&state, &ctx, id, change, version)
            .await
            .map_err(|e| in_fhir_terms(e, resources::change_path))?,
    };
    Ok(versioned(StatusCode::OK, &resources::appointment(&appointment), appointment.version()))
}

pub async fn read_audit_event(State(state): State<AppState>, Caller(ctx): Caller, Path(id): Path<String>) -> Answer {
    let id: Uuid = resource_id(&id, "audit event").map_err(failed)?;
    let event = audit_events::get(&state, &ctx, id).await.map_err(failed)?;
    Ok(respond(StatusCode::OK, &resources::audit_event(&event)))
}

pub async fn search_audit_events(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let mut search = Search::parse(support("AuditEvent"), query.as_deref(), &headers).map_err(refused)?;
    let mut filter = AuditFilter { id: search.id(), ..AuditFilter::default() };
    filter.patient_id = search.reference("patient", &["Patient"]).map(|(_, id)| PatientId::from_uuid(id));
    if let Some(agent) = search.single("agent") {
        // A user is identified, not referenced: its id, alone or as the last segment.
        let id = agent.rsplit('/').next().and_then(|id| id.parse().ok()).unwrap_or(NO_MATCH);
        filter.actor_id = Some(crate::domain::UserId::from_uuid(id));
    }
    let range = search.dates("date", false);
    (filter.from, filter.to) = (range.from, range.to);
    if let Some(token) = search.token("action") {
        match token.code.as_str() {
            "C" | "R" | "U" | "D" | "E" => filter.actions = Some(resources::actions_of(&token.code)),
            _ => search.refuse("action", "one_of", "must be C, R, U, D or E"),
        }
    }
    let page = search.page();
    search.finish().map_err(refused)?;
    let page = audit_events::list(&state, &ctx, filter, page).await.map_err(failed)?;
    let entries = page.items.iter().map(|e| (format!("AuditEvent/{}", e.id), resources::audit_event(e))).collect();
    Ok(respond(StatusCode::OK, &search.bundle(&base_url(&headers), &page, entries)))
}
