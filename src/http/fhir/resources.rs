//! HealthCore's records as FHIR R4 resources, and an incoming Appointment or JSON Patch as the
//! input of a use case. `docs/FHIR.md` is this file's mapping in a table.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::{LICENCE_SYSTEM, MRN_SYSTEM, USER_SYSTEM};
use crate::audit::{AuditAction, AuditOutcome};
use crate::domain::appointment::{BookingInput, CancelInput, RescheduleInput};
use crate::domain::{Appointment, AppointmentStatus, FieldErrors, Patient, Practitioner};
use crate::service::appointments::Transition;
use crate::store::audit::AuditEvent;

/// An instant as FHIR writes one: seconds always, fractions only when there are any, `Z`.
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn meta(version: i64, updated_at: DateTime<Utc>) -> Value {
    json!({"versionId": version.to_string(), "lastUpdated": instant(updated_at)})
}

fn name(family: &str, given: &str) -> Value {
    json!([{"use": "official", "family": family, "given": [given]}])
}

pub fn patient(p: &Patient) -> Value {
    let mut resource = json!({
        "resourceType": "Patient",
        "id": p.id.to_string(),
        "meta": meta(p.version, p.updated_at),
        "identifier": [{
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical record number"}]},
            "system": MRN_SYSTEM,
            "value": p.mrn.as_str(),
        }],
        "active": p.active,
        "name": name(p.family_name.as_str(), p.given_name.as_str()),
        "gender": p.sex.as_str(),
        "birthDate": p.birth_date.format("%Y-%m-%d").to_string(),
    });
    let mut telecom = Vec::new();
    if let Some(phone) = &p.phone {
        telecom.push(json!({"system": "phone", "value": phone.as_str()}));
    }
    if let Some(email) = &p.email {
        telecom.push(json!({"system": "email", "value": email.as_str()}));
    }
    if !telecom.is_empty() {
        resource["telecom"] = Value::Array(telecom);
    }
    if let Some(address) = &p.address {
        resource["address"] = json!([{"text": address}]);
    }
    resource
}

pub fn practitioner(p: &Practitioner) -> Value {
    let mut qualifications = vec![json!({"code": {"text": p.role.as_str()}})];
    if let Some(specialty) = &p.specialty {
        qualifications.push(json!({"code": {"text": specialty}}));
    }
    json!({
        "resourceType": "Practitioner",
        "id": p.id.to_string(),
        "meta": meta(p.version, p.updated_at),
        "identifier": [{"system": LICENCE_SYSTEM, "value": p.licence_number}],
        "active": p.active,
        "name": name(p.family_name.as_str(), p.given_name.as_str()),
        "qualification": qualifications,
    })
}

/// FHIR's appointment status for ours.
pub fn status_code(status: AppointmentStatus) -> &'static str {
    match status {
        AppointmentStatus::Booked => "booked",
        AppointmentStatus::Cancelled => "cancelled",
        AppointmentStatus::Completed => "fulfilled",
        AppointmentStatus::NoShow => "noshow",
    }
}

/// Our status for FHIR's code: `Ok(None)` for FHIR codes no appointment here ever has.
pub fn status_of(code: &str) -> Result<Option<AppointmentStatus>, ()> {
    match code {
        "booked" => Ok(Some(AppointmentStatus::Booked)),
        "cancelled" => Ok(Some(AppointmentStatus::Cancelled)),
        "fulfilled" => Ok(Some(AppointmentStatus::Completed)),
        "noshow" => Ok(Some(AppointmentStatus::NoShow)),
        "proposed" | "pending" | "arrived" | "entered-in-error" | "checked-in" | "waitlist" => Ok(None),
        _ => Err(()),
    }
}

pub fn appointment(a: &Appointment) -> Value {
    let slot = a.slot();
    let participant =
        |reference: String| json!({"actor": {"reference": reference}, "required": "required", "status": "accepted"});
    let mut resource = json!({
        "resourceType": "Appointment",
        "id": a.id().to_string(),
        "meta": meta(a.version(), a.updated_at()),
        "status": status_code(a.status()),
        "reasonCode": [{"text": a.reason()}],
        "start": instant(slot.start()),
        "end": instant(slot.end()),
        "created": instant(a.created_at()),
        "participant": [
            participant(format!("Patient/{}", a.patient_id())),
            participant(format!("Practitioner/{}", a.practitioner_id())),
        ],
    });
    if let Some(notes) = a.notes() {
        resource["comment"] = json!(notes);
    }
    if let Some(reason) = a.cancellation_reason() {
        resource["cancelationReason"] = json!({"text": reason});
    }
    resource
}

/// FHIR's `AuditEvent.action` for an action: Create, Read, Update, Delete or Execute.
pub fn action_code(action: AuditAction) -> &'static str {
    use AuditAction::*;
    match action {
        PatientCreate | PractitionerCreate | AppointmentBook | IntegrationCreate | UserCreate => "C",
        PatientList
        | PatientRead
        | PractitionerList
        | PractitionerRead
        | AppointmentList
        | AppointmentRead
        | NotificationList
        | AnalyticsRead
        | AuditList
        | IntegrationList
        | IntegrationRead
        | IntegrationDeliveries
        | UserList
        | UserRead => "R",
        PatientUpdate
        | PatientReactivate
        | PractitionerUpdate
        | PractitionerReactivate
        | AppointmentReschedule
        | AppointmentCancel
        | AppointmentComplete
        | AppointmentNoShow
        | IntegrationEnable
        | UserActivate
        | UserDeactivate
        | UserRoleChange
        | UserPasswordReset
        | UserPasswordChange => "U",
        PatientDeactivate | PractitionerDeactivate | IntegrationDelete => "D",
        AuthLogin => "E",
    }
}

/// The actions a FHIR `action` code stands for.
pub fn actions_of(code: &str) -> Vec<&'static str> {
    AuditAction::ALL.into_iter().filter(|a| action_code(*a) == code).map(AuditAction::as_str).collect()
}

/// The FHIR RESTful interaction an action is, where it is one.
fn interaction(action: &str) -> Option<&'static str> {
    let (_, verb) = action.split_once('.')?;
    Some(match verb {
        "create" | "book" => "create",
        "read" => "read",
        "list" | "deliveries" => "search-type",
        "deactivate" | "delete" => "delete",
        "login" => return None,
        _ => "update",
    })
}

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// An audit record in the shape of IHE's Basic Audit Log Patterns (BALP): the user, the client
/// (network address, user agent) and this server as agents; the patient, the resource and the
/// correlation ID as entities.
pub fn audit_event(e: &AuditEvent) -> Value {
    let code = AuditAction::parse(&e.action).map_or("E", action_code);
    let mut subtype = vec![json!({"system": "https://healthcore.dev/fhir/CodeSystem/audit-action", "code": e.action})];
    if let Some(interaction) = interaction(&e.action) {
        subtype.insert(0, json!({"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}));
    }
    let user = match e.actor_id {
        Some(id) => json!({"identifier": {"system": USER_SYSTEM, "value": id.to_string()}}),
        None => json!({"display": "a caller who did not authenticate"}),
    };
    let mut human = json!({
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient"}]},
        "who": user,
        "requestor": true,
    });
    if let Some(role) = &e.actor_role {
        human["role"] = json!([{"text": role}]);
    }
    let mut client = json!({
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "requestor": false,
    });
    if let Some(agent) = &e.user_agent {
        client["who"] = json!({"display": agent});
    }
    if let Some(address) = &e.client_addr {
        client["network"] = json!({"address": address, "type": "2"});
    }
    let server = json!({
        "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
        "who": {"display": "HealthCore"},
        "requestor": false,
    });
    let mut entity = Vec::new();
    if let Some(patient) = e.patient_id {
        entity.push(json!({
            "what": {"reference": format!("Patient/{patient}")},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"},
        }));
    }
    if let Some(id) = e.resource_id.filter(|id| Some(*id) != e.patient_id) {
        let what = match e.resource_type.as_str() {
            "appointment" => json!({"reference": format!("Appointment/{id}")}),
            "practitioner" => json!({"reference": format!("Practitioner/{id}")}),
            "audit_event" => json!({"reference": format!("AuditEvent/{id}")}),
            other => {
                json!({"identifier": {"system": format!("https://healthcore.dev/fhir/sid/{other}"), "value": id.to_string()}})
            }
        };
        entity.push(json!({
            "what": what,
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4", "display": "Domain Resource"},
        }));
    }
    entity.push(json!({
        "what": {"identifier": {"value": e.correlation_id}},
        "type": {"system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "code": "XrequestId", "display": "X-Request-Id"},
    }));
    let mut resource = json!({
        "resourceType": "AuditEvent",
        "id": e.id.to_string(),
        "meta": {"versionId": "1", "lastUpdated": instant(e.occurred_at)},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": subtype,
        "action": code,
        "recorded": instant(e.occurred_at),
        "outcome": match e.outcome { AuditOutcome::Success => "0", AuditOutcome::Denied => "4", AuditOutcome::Error => "8" },
        "agent": [human, client, server],
        "source": {
            "observer": {"display": "HealthCore"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}],
        },
        "entity": entity,
    });
    if let Some(reason) = &e.reason {
        resource["outcomeDesc"] = json!(reason);
    }
    resource
}

/// The elements of an Appointment a booking or an update reads; any other is refused rather than
/// dropped. (`id`, `meta`, `text` and `created` are the server's and are ignored.)
const APPOINTMENT_ELEMENTS: [&str; 12] = [
    "resourceType",
    "id",
    "meta",
    "text",
    "created",
    "status",
    "start",
    "end",
    "participant",
    "reasonCode",
    "comment",
    "cancelationReason",
];

fn text_of(value: &Value) -> Option<String> {
    value.get("text").and_then(Value::as_str).map(str::to_owned)
}

/// An incoming Appointment's elements, as the booking input they amount to (field errors name
/// each element by its FHIRPath).
fn read_appointment(resource: &Map<String, Value>, errors: &mut FieldErrors) -> BookingInput {
    if resource.get("resourceType").and_then(Value::as_str) != Some("Appointment") {
        errors.add("Appointment.resourceType", "equals", "must be Appointment");
    }
    for element in resource.keys().filter(|k| !APPOINTMENT_ELEMENTS.contains(&k.as_str())) {
        let plain = element.len() <= 64 && element.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let field = if plain { format!("Appointment.{element}") } else { "Appointment".to_owned() };
        errors.add(&field, "supported", "is not an element this server takes (see docs/FHIR.md)");
    }
    let time = |errors: &mut FieldErrors, element: &str| -> Option<DateTime<Utc>> {
        let value = resource.get(element)?;
        let parsed = value.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
        if parsed.is_none() {
            errors.add(&format!("Appointment.{element}"), "instant", "must be an instant with its time zone");
        }
        parsed
    };
    let start = time(errors, "start");
    let end = time(errors, "end");
    let mut patient_id = None;
    let mut practitioner_id = None;
    let participants = resource.get("participant").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, participant) in participants.iter().enumerate() {
        let reference = participant.pointer("/actor/reference").and_then(Value::as_str).unwrap_or_default();
        let field = format!("Appointment.participant[{i}].actor.reference");
        // `Type/<id>`, or an absolute URL that ends so.
        let mut segments = reference.rsplit('/');
        let (id, resource_type) = (segments.next().unwrap_or_default(), segments.next());
        match resource_type.map(|t| (t, id)) {
            Some(("Patient", id)) if patient_id.is_none() => {
                patient_id = Some(id.parse().map_err(|_| errors.add(&field, "exists", "no patient has this id")).ok())
            }
            Some(("Practitioner", id)) if practitioner_id.is_none() => {
                practitioner_id =
                    Some(id.parse().map_err(|_| errors.add(&field, "exists", "no practitioner has this id")).ok())
            }
            _ => errors.add(&field, "participant", "must be Patient/<id> or Practitioner/<id>, one of each"),
        }
    }
    let reason = resource.get("reasonCode").and_then(Value::as_array).and_then(|codes| codes.first()).and_then(text_of);
    BookingInput {
        patient_id: patient_id.flatten(),
        practitioner_id: practitioner_id.flatten(),
        start,
        end,
        reason,
        notes: resource.get("comment").and_then(Value::as_str).map(str::to_owned),
    }
}

/// A FHIR Appointment to be booked, as the booking use case's input.
pub fn booking(resource: &Map<String, Value>) -> Result<BookingInput, FieldErrors> {
    let mut errors = FieldErrors::new();
    let input = read_appointment(resource, &mut errors);
    if resource.get("status").and_then(Value::as_str) != Some("booked") {
        errors.add("Appointment.status", "equals", "must be booked: an appointment is created booked");
    }
    if resource.contains_key("cancelationReason") {
        errors.add("Appointment.cancelationReason", "supported", "a booking is not cancelled");
    }
    if errors.is_empty() { Ok(input) } else { Err(errors) }
}

/// What an update (PUT) of an Appointment asks for, against the appointment as it is.
#[derive(Debug)]
pub enum Update {
    /// The same appointment: answered as a read.
    Unchanged,
    /// New start and end, still booked.
    Reschedule(RescheduleInput),
    Status(Transition),
}

/// Reads an update of `current`: participants, reason and comment stay as they are; either the
/// slot moves (status still booked) or the status changes (to cancelled with its
/// `cancelationReason`, fulfilled or noshow) — one change at a time, as the REST API's actions.
pub fn update(current: &Appointment, resource: &Map<String, Value>) -> Result<Update, FieldErrors> {
    let mut errors = FieldErrors::new();
    let input = read_appointment(resource, &mut errors);
    if input.patient_id != Some(current.patient_id()) || input.practitioner_id != Some(current.practitioner_id()) {
        errors.add("Appointment.participant", "unchanged", "the participants of an appointment cannot change");
    }
    if input.reason.as_deref() != Some(current.reason()) {
        errors.add("Appointment.reasonCode", "unchanged", "the reason cannot change here (book anew)");
    }
    if input.notes.as_deref() != current.notes() {
        errors.add("Appointment.comment", "unchanged", "the comment cannot change here");
    }
    let slot = current.slot();
    let moved = input.start != Some(slot.start()) || input.end != Some(slot.end());
    let status = resource.get("status").and_then(Value::as_str).unwrap_or_default();
    let change = match (status, status == status_code(current.status())) {
        (_, true) if !moved => Some(Update::Unchanged),
        ("booked", true) => Some(Update::Reschedule(RescheduleInput { start: input.start, end: input.end })),
        (_, false) if moved => {
            errors.add("Appointment.start", "one_change", "change the status or the slot, not both at once");
            None
        }
        ("cancelled", false) => {
            let reason = resource.get("cancelationReason").and_then(text_of);
            Some(Update::Status(Transition::Cancel(CancelInput { reason })))
        }
        ("fulfilled", false) => Some(Update::Status(Transition::Complete)),
        ("noshow", false) => Some(Update::Status(Transition::NoShow)),
        (_, _) => {
            errors.add(
                "Appointment.status",
                "transition",
                format!("may go from {} to cancelled, fulfilled or noshow", status_code(current.status())),
            );
            None
        }
    };
    match change {
        Some(change) if errors.is_empty() => Ok(change),
        _ => Err(errors),
    }
}

/// The FHIRPath of a field the reschedule or a transition reported (a cancellation's `reason`).
pub fn change_path(field: &str) -> String {
    match field {
        "reason" => "Appointment.cancelationReason.text".to_owned(),
        other => format!("Appointment.{other}"),
    }
}

/// The FHIRPath of a booking input's field, for the use case's field errors.
pub fn booking_path(field: &str) -> String {
    match field {
        "patient_id" => "Appointment.participant.actor.reference (Patient)".to_owned(),
        "practitioner_id" => "Appointment.participant.actor.reference (Practitioner)".to_owned(),
        "reason" => "Appointment.reasonCode.text".to_owned(),
        "notes" => "Appointment.comment".to_owned(),
        other => format!("Appointment.{other}"),
    }
}

/// Reads a JSON Patch (RFC 6902) of an Appointment. Only `/status` may change (to cancelled,
/// fulfilled or noshow), with `/cancelationReason` (or its `/text`) for a cancellation; `test`
/// operations are not supported.
pub fn status_change(patch: &Value) -> Result<Transition, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(operations) = patch.as_array() else {
        errors.add("body", "json_patch", "must be a JSON Patch: an array of operations");
        return Err(errors);
    };
    let mut status = None;
    let mut reason = None;
    for (i, operation) in operations.iter().enumerate() {
        let op = operation.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = operation.get("path").and_then(Value::as_str).unwrap_or_default();
        let value = operation.get("value");
        if !matches!(op, "replace" | "add") {
            errors.add(&format!("[{i}].op"), "supported", "must be replace or add");
            continue;
        }
        match path {
            "/status" => status = value.and_then(Value::as_str).map(str::to_owned),
            "/cancelationReason" => reason = value.and_then(text_of),
            "/cancelationReason/text" => reason = value.and_then(Value::as_str).map(str::to_owned),
            _ => errors.add(
                &format!("[{i}].path"),
                "supported",
                "may be /status or /cancelationReason: other changes go through the REST API",
            ),
        }
    }
    let change = match status.as_deref() {
        Some("cancelled") => Some(Transition::Cancel(CancelInput { reason })),
        Some("fulfilled") => Some(Transition::Complete),
        Some("noshow") => Some(Transition::NoShow),
        _ => {
            errors.add("Appointment.status", "one_of", "the patch must set /status to cancelled, fulfilled or noshow");
            None
        }
    };
    match change {
        Some(change) if errors.is_empty() => Ok(change),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_a_code_and_each_code_its_actions() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
            assert!(actions_of(action_code(action)).contains(&action.as_str()));
        }
        assert_eq!(actions_of("E"), ["auth.login"]);
    }

    #[test]
    fn a_booking_takes_relative_or_absolute_references_and_names_what_it_cannot_take() {
        let patient = uuid::Uuid::now_v7();
        let practitioner = uuid::Uuid::now_v7();
        let resource = json!({
            "resourceType": "Appointment",
            "status": "booked",
            "start": "2030-01-15T09:00:00Z",
            "end": "2030-01-15T09:30:00+00:00",
            "reasonCode": [{"text": "check-up"}],
            "participant": [
                {"actor": {"reference": format!("https://fhir.example/fhir/R4/Patient/{patient}")}},
                {"actor": {"reference": format!("Practitioner/{practitioner}")}},
            ],
        });
        let input = booking(resource.as_object().unwrap()).unwrap();
        assert_eq!(input.patient_id.map(|id| id.as_uuid()), Some(patient));
        assert_eq!(input.practitioner_id.map(|id| id.as_uuid()), Some(practitioner));
        assert_eq!(input.reason.as_deref(), Some("check-up"));
        let wrong = json!({"resourceType": "Patient", "status": "booked", "slot": [], "participant": [{"actor": {"reference": "Device/1"}}]});
        let errors = booking(wrong.as_object().unwrap()).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["Appointment.resourceType", "Appointment.slot", "Appointment.participant[0].actor.reference"]
        );
    }

    #[test]
    fn a_patch_sets_a_status_or_is_refused_naming_the_operation() {
        let cancel = json!([{"op": "replace", "path": "/status", "value": "cancelled"},
                            {"op": "add", "path": "/cancelationReason", "value": {"text": "ill"}}]);
        assert!(
            matches!(status_change(&cancel), Ok(Transition::Cancel(CancelInput { reason: Some(r) })) if r == "ill")
        );
        let other = json!([{"op": "replace", "path": "/start", "value": "2030-01-01T09:00:00Z"}]);
        let errors = status_change(&other).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["[0].path", "Appointment.status"]);
        assert!(status_change(&json!({"status": "cancelled"})).is_err());
    }
}
