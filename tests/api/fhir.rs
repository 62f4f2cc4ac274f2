//! The FHIR R4 interface: reads, searches, booking and cancelling through the REST API's use
//! cases, AuditEvents, OperationOutcomes. Every FHIR body a test receives is validated at
//! `TestApp::stop` by an independent implementation (`tests/fhir/validate.py`, fhir.resources).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, Reply, TestApp};
use crate::on_both_backends;

const MRN_SYSTEM: &str = "https://healthcore.dev/fhir/sid/mrn";
const FHIR_JSON: (&str, &str) = ("content-type", "application/fhir+json");
const JSON_PATCH: (&str, &str) = ("content-type", "application/json-patch+json");

/// Every FHIR body this test process has received and not yet validated.
static RECEIVED: Mutex<Vec<Value>> = Mutex::new(Vec::new());

pub fn received(body: &Value) {
    RECEIVED.lock().unwrap().push(body.clone());
}

/// Validates every FHIR body received so far with fhir.resources' strict R4B models.
pub fn assert_received_resources_are_valid() {
    let bodies = std::mem::take(&mut *RECEIVED.lock().unwrap());
    if bodies.is_empty() {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fhir/validate.py");
    let mut child = Command::new("contract-python")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("contract-python is installed (run scripts/test, or ensure_fuzzers): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    for body in &bodies {
        writeln!(stdin, "{body}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "FHIR resources the server sent are not valid R4B:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

async fn fhir(app: &TestApp, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let headers: &[(&str, &str)] = match method {
        Method::PATCH => &[JSON_PATCH],
        _ => &[FHIR_JSON],
    };
    let reply = app.call_with(method, &format!("/fhir/R4{path}"), token, body, headers).await;
    assert_eq!(reply.header("content-type"), Some("application/fhir+json"), "{:#}", reply.body);
    reply
}

async fn search(app: &TestApp, query: &str, token: &str) -> Value {
    let bundle = fhir(app, Method::GET, query, Some(token), None).await.expect(200).body;
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    bundle
}

fn ids(bundle: &Value) -> Vec<String> {
    // A Bundle of no matches has no `entry` (FHIR JSON has no empty arrays).
    let entries = bundle["entry"].as_array().map_or(&[][..], Vec::as_slice);
    entries.iter().map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect()
}

fn link<'a>(bundle: &'a Value, relation: &str) -> Option<&'a str> {
    bundle["link"].as_array().unwrap().iter().find(|l| l["relation"] == relation).and_then(|l| l["url"].as_str())
}

/// Asserts an OperationOutcome of this status and issue code; returns its issues.
#[track_caller]
fn outcome(reply: Reply, status: u16, code: &str) -> Vec<Value> {
    let reply = reply.expect(status);
    assert_eq!(reply.body["resourceType"], "OperationOutcome", "{:#}", reply.body);
    let issues = reply.body["issue"].as_array().unwrap().clone();
    assert!(issues.iter().all(|i| i["code"] == code && i["severity"] == "error"), "{:#}", reply.body);
    let correlation = reply.body["extension"][0]["valueString"].as_str();
    assert_eq!(correlation, reply.header("x-correlation-id"));
    issues
}

fn appointment_resource(patient: Uuid, practitioner: Uuid, start: &str, end: &str) -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "booked",
        "start": start,
        "end": end,
        "reasonCode": [{"text": "annual check-up"}],
        "participant": [
            {"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
            {"actor": {"reference": format!("Practitioner/{practitioner}")}, "status": "accepted"},
        ],
    })
}

/// A slot `days` from now at 09:00 UTC, as (start, end, day).
fn slot(days: i64) -> (String, String, String) {
    let day = (chrono::Utc::now() + chrono::Duration::days(days)).format("%Y-%m-%d").to_string();
    (format!("{day}T09:00:00Z"), format!("{day}T09:30:00Z"), day)
}

on_both_backends!(
    a_patient_found_by_mrn_is_booked_cancelled_and_audited_through_fhir,
    searches_page_and_treat_unknown_parameters_as_fhir_says,
    errors_are_operation_outcomes_and_refusals_are_audited,
    an_update_reschedules_or_cancels_through_the_rest_use_cases,
    lists_count_their_matches_a_hundred_past_the_page,
);

/// A list counts its matches up to a hundred past its page's end (at least 1,000) and then says
/// "at least": counting millions of matches (5.6 M audit records of bookings) took longer than the
/// statement timeout, and counting 10,001 of them, the bound before, still made a list's cost grow
/// with the trail, while its first page is a few index pages. Pages past the bound are still
/// served, and counted past their end, through REST and FHIR.
async fn lists_count_their_matches_a_hundred_past_the_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin_token;
    for n in 0..100 {
        app.create_patient("Ada", &format!("Counted{n:03}")).await;
    }
    // Each patient listed is recorded as disclosed: 12 lists of the hundred, 1,200 records.
    for _ in 0..12 {
        app.get("/api/v1/patients?limit=100", token).await.expect(200);
    }
    let counted = |page: &Reply| (page.body["page"]["total"].clone(), page.body["page"]["total_is_exact"].clone());
    let many = app.get("/api/v1/audit-events?action=patient.list&limit=5", token).await.expect(200);
    assert_eq!(counted(&many), (json!(1_000), json!(false)), "{:#}", many.body["page"]);
    assert_eq!(many.body["items"].as_array().unwrap().len(), 5);
    let further = app.get("/api/v1/audit-events?action=patient.list&limit=5&offset=1000", token).await.expect(200);
    assert_eq!(counted(&further), (json!(1_105), json!(false)), "a hundred past the page's end");
    let last = app.get("/api/v1/audit-events?action=patient.list&limit=10&offset=1195", token).await.expect(200);
    assert_eq!(last.body["items"].as_array().unwrap().len(), 5, "the last five of 1,200");
    assert_eq!(counted(&last), (json!(1_200), json!(true)));
    let few = app.get("/api/v1/audit-events?action=patient.create&limit=5", token).await.expect(200);
    assert_eq!(counted(&few), (json!(100), json!(true)));

    // FHIR: a Bundle's `total` is the number of matches, so a lower bound is left out; `next`
    // follows while more were counted.
    let reads = search(&app, "/AuditEvent?action=R&_count=5&_offset=1090", token).await;
    assert!(reads.get("total").is_none(), "{reads:#}");
    assert!(link(&reads, "next").is_some(), "{reads:#}");
    let creations = search(&app, "/AuditEvent?action=C&_count=5", token).await;
    let total = creations["total"].as_u64().expect("an exact total");
    assert!((100..1_000).contains(&total), "the hundred registrations, and the admin's: {total}");
    let last_page = format!("/AuditEvent?action=C&_count=5&_offset={}", total - 5);
    let last = search(&app, &last_page, token).await;
    assert!(link(&last, "next").is_none(), "{last:#}");
    app.stop().await;
}

async fn a_patient_found_by_mrn_is_booked_cancelled_and_audited_through_fhir(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_token(healthcore::testing::domain::Role::Receptionist, None).await;
    let capability = fhir(&app, Method::GET, "/metadata", None, None).await.expect(200).body;
    assert_eq!(capability["resourceType"], "CapabilityStatement");
    let types: Vec<&str> =
        capability["rest"][0]["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Patient", "Practitioner", "Appointment", "AuditEvent"]);

    let practitioner = app.create_practitioner("MD-FHIR-1").await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let mrn = app.get(&format!("/api/v1/patients/{patient}"), &token).await.expect(200).body["mrn"].clone();
    let mrn = mrn.as_str().unwrap();

    // Search by MRN, then read: FHIR's shape of the REST record, versioned.
    let found = search(&app, &format!("/Patient?identifier={MRN_SYSTEM}|{mrn}"), &token).await;
    assert_eq!(found["total"], 1);
    assert_eq!(ids(&found), [patient.to_string()]);
    assert!(found["entry"][0]["fullUrl"].as_str().unwrap().ends_with(&format!("/fhir/R4/Patient/{patient}")));
    assert!(link(&found, "self").unwrap().contains("identifier="));
    let elsewhere = search(&app, &format!("/Patient?identifier=https://example.org/mrn|{mrn}"), &token).await;
    assert_eq!(elsewhere["total"], 0, "an MRN of another system is another identifier");
    assert!(elsewhere.get("entry").is_none(), "no empty arrays in FHIR JSON");
    let read = fhir(&app, Method::GET, &format!("/Patient/{patient}"), Some(&token), None).await.expect(200);
    assert_eq!(read.header("etag"), Some("W/\"1\""));
    assert_eq!(read.body["meta"]["versionId"], "1");
    assert_eq!(read.body["name"][0], json!({"use": "official", "family": "Lovelace", "given": ["Ada"]}));
    assert_eq!((read.body["gender"].as_str(), read.body["birthDate"].as_str()), (Some("female"), Some("1985-04-12")));
    assert_eq!(read.body["identifier"][0]["value"], mrn);

    // The same audit records as the REST twins: the REST read above and the FHIR read, and one
    // listing of this patient (the search that found it).
    for (action, count) in [("patient.read", 2), ("patient.list", 1)] {
        let records = app.audit_events(&format!("action={action}&patient_id={patient}")).await;
        assert_eq!(records.len(), count, "{action}: {records:#?}");
        assert!(records.iter().all(|r| r["outcome"] == "success"));
    }

    // Book through FHIR: the REST rules hold (an overlap is 409), and REST sees the booking.
    let (start, end, day) = slot(3);
    let booked = fhir(
        &app,
        Method::POST,
        "/Appointment",
        Some(&token),
        Some(appointment_resource(patient, practitioner, &start, &end)),
    )
    .await
    .expect(201);
    let appointment = booked.id();
    assert_eq!(booked.body["status"], "booked");
    assert_eq!(booked.header("etag"), Some("W/\"1\""));
    assert!(booked.header("location").unwrap().ends_with(&format!("/fhir/R4/Appointment/{appointment}/_history/1")));
    let overlapping = appointment_resource(patient, practitioner, &start.replace("09:00", "09:15"), &end);
    let clash = fhir(&app, Method::POST, "/Appointment", Some(&token), Some(overlapping)).await;
    let issues = outcome(clash, 409, "conflict");
    assert!(issues[0]["diagnostics"].as_str().unwrap().contains("overlaps"));
    let rest = app.get(&format!("/api/v1/appointments/{appointment}"), &token).await.expect(200);
    assert_eq!((rest.body["status"].as_str(), rest.body["reason"].as_str()), (Some("booked"), Some("annual check-up")));

    // Search by participant, day and status.
    let query =
        format!("/Appointment?actor=Practitioner/{practitioner}&date=ge{day}&date=lt{day}T23:59:59Z&status=booked");
    assert_eq!(ids(&search(&app, &query, &token).await), [appointment.to_string()]);
    let next_day = search(&app, &format!("/Appointment?patient={patient}&date=gt{day}"), &token).await;
    assert_eq!(next_day["total"], 0);

    // Cancel with a JSON Patch under If-Match; a second patch from the old version is stale.
    let cancel = json!([
        {"op": "replace", "path": "/status", "value": "cancelled"},
        {"op": "add", "path": "/cancelationReason", "value": {"text": "patient is travelling"}},
    ]);
    let path = format!("/fhir/R4/Appointment/{appointment}");
    let cancelled = app
        .call_with(Method::PATCH, &path, Some(&token), Some(cancel.clone()), &[JSON_PATCH, ("if-match", "W/\"1\"")])
        .await
        .expect(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["cancelationReason"]["text"], "patient is travelling");
    assert_eq!(cancelled.header("etag"), Some("W/\"2\""));
    let stale =
        app.call_with(Method::PATCH, &path, Some(&token), Some(cancel), &[JSON_PATCH, ("if-match", "W/\"1\"")]).await;
    outcome(stale, 412, "conflict");
    let cancelled_search = format!("/Appointment?patient=Patient/{patient}&status=cancelled");
    assert_eq!(search(&app, &cancelled_search, &token).await["total"], 1);

    // The events went out as for REST: the notifications consumer prepared both messages.
    app.events_settled().await;
    let notifications = format!("/api/v1/notifications?appointment_id={appointment}");
    let kinds: Vec<String> = app.get(&notifications, &app.admin_token).await.expect(200).body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds.contains(&"appointment_booked".to_owned()) && kinds.contains(&"appointment_cancelled".to_owned()));

    // The trail as AuditEvents (admins and auditors): the cancellation, then one read by id.
    let auditor = app.user_token(healthcore::testing::domain::Role::Auditor, None).await;
    let updates = search(&app, &format!("/AuditEvent?patient=Patient/{patient}&action=U"), &auditor).await;
    // Newest first: the stale patch (a serious failure, with its reason), then the cancellation.
    let outcomes: Vec<&Value> =
        updates["entry"].as_array().unwrap().iter().map(|e| &e["resource"]["outcome"]).collect();
    assert_eq!(outcomes, ["8", "0"], "{updates:#}");
    assert_eq!(updates["entry"][0]["resource"]["outcomeDesc"], "stale-version");
    let first = &updates["entry"][1]["resource"];
    assert_eq!(first["subtype"][1]["code"], "appointment.cancel");
    let entities: Vec<&Value> = first["entity"].as_array().unwrap().iter().map(|e| &e["what"]).collect();
    assert_eq!(entities[0]["reference"], format!("Patient/{patient}"));
    assert_eq!(entities[1]["reference"], format!("Appointment/{appointment}"));
    assert_eq!(entities[2]["identifier"]["value"], cancelled.header("x-correlation-id").unwrap());
    let id = first["id"].as_str().unwrap();
    let one = fhir(&app, Method::GET, &format!("/AuditEvent/{id}"), Some(&auditor), None).await.expect(200);
    assert_eq!(&one.body, first);
    let creations = search(&app, &format!("/AuditEvent?patient={patient}&action=C"), &auditor).await;
    let created: Vec<&str> = creations["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["subtype"][1]["code"].as_str().unwrap())
        .collect();
    // Newest first: the refused overlap (recorded as an error), the booking, the registration.
    assert_eq!(created, ["appointment.book", "appointment.book", "patient.create"]);
    assert_eq!(creations["entry"][0]["resource"]["outcomeDesc"], "double-booking");
    let last_century = search(&app, &format!("/AuditEvent?patient={patient}&date=lt2000"), &auditor).await;
    assert_eq!(last_century["total"], 0);
    app.stop().await;
}

async fn searches_page_and_treat_unknown_parameters_as_fhir_says(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin_token;
    let mut registered = Vec::new();
    for given in ["Anna", "Bert", "Cleo"] {
        registered.push(app.create_patient(given, "Pager").await.to_string());
    }
    let first = search(&app, "/Patient?family=pag&_count=2", token).await;
    assert_eq!(first["total"], 3);
    assert_eq!(ids(&first), registered[..2]);
    let next = link(&first, "next").unwrap();
    let next = next.split_once("/fhir/R4").unwrap().1;
    let second = search(&app, next, token).await;
    assert_eq!(ids(&second), registered[2..]);
    assert_eq!(link(&second, "next"), None);

    for (query, total) in [
        ("given=cle&family=pager", 1),
        ("name=ann", 1),
        ("birthdate=1985-04-12&family=pager", 3),
        ("birthdate=ge1985-04&birthdate=lt1985-05&family=pager", 3),
        ("birthdate=lt1985&family=pager", 0),
        ("active=true&family=pager", 3),
        (&format!("_id={}", registered[1]), 1),
        ("_id=not-a-uuid", 0),
    ] {
        let bundle = search(&app, &format!("/Patient?{query}"), token).await;
        assert_eq!(bundle["total"], total, "{query}: {bundle:#}");
    }

    // Lenient by default: an unknown parameter (or modifier) is ignored and left out of `self`.
    let lenient = search(&app, "/Patient?family=pager&colour=blue&name:exact=Anna", token).await;
    assert_eq!(lenient["total"], 3);
    let own = link(&lenient, "self").unwrap();
    assert!(own.contains("family=pager") && !own.contains("colour") && !own.contains("exact"), "{own}");
    let strict = app
        .call_with(
            Method::GET,
            "/fhir/R4/Patient?family=pager&colour=blue",
            Some(token),
            None,
            &[("prefer", "handling=strict")],
        )
        .await;
    let issues = outcome(strict, 400, "invalid");
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["expression"], json!(["colour"]));

    // Invalid values are 400, each named.
    let bad = fhir(&app, Method::GET, "/Appointment?date=tomorrow&status=maybe&_count=ten", Some(token), None).await;
    let mut named: Vec<String> =
        outcome(bad, 400, "invalid").iter().map(|i| i["expression"][0].as_str().unwrap().to_owned()).collect();
    named.sort();
    assert_eq!(named, ["_count", "date", "status"]);
    let capped = search(&app, "/Patient?family=pager&_count=500", token).await;
    assert!(link(&capped, "self").unwrap().ends_with("_count=100&_offset=0"), "a larger count is capped");
    let proposed = search(&app, "/Appointment?status=proposed", token).await;
    assert_eq!(proposed["total"], 0, "a FHIR status no appointment here has");
    app.stop().await;
}

async fn errors_are_operation_outcomes_and_refusals_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin_token;
    let patient = app.create_patient("Own", "Record").await;
    let other = app.create_patient("Some", "Body").await;
    outcome(fhir(&app, Method::GET, "/Patient", None, None).await, 401, "login");
    let physician = app.user_token(healthcore::testing::domain::Role::Physician, None).await;
    outcome(fhir(&app, Method::GET, "/AuditEvent", Some(&physician), None).await, 403, "forbidden");
    outcome(
        fhir(&app, Method::GET, &format!("/Patient/{}", Uuid::now_v7()), Some(token), None).await,
        404,
        "not-found",
    );
    outcome(fhir(&app, Method::GET, "/Patient/not-an-id", Some(token), None).await, 404, "not-found");
    outcome(fhir(&app, Method::GET, "/Observation", Some(token), None).await, 404, "not-found");
    outcome(fhir(&app, Method::GET, "/Patient?_format=xml", Some(token), None).await, 406, "not-supported");
    let xml = app.call_with(Method::GET, "/fhir/R4/metadata", None, None, &[("accept", "application/fhir+xml")]).await;
    outcome(xml, 406, "not-supported");

    // A booking names each element it cannot take by its FHIRPath.
    let empty = json!({"resourceType": "Appointment", "status": "proposed", "minutesDuration": 30});
    let issues = outcome(fhir(&app, Method::POST, "/Appointment", Some(token), Some(empty)).await, 422, "invalid");
    let paths: Vec<&str> = issues.iter().map(|i| i["expression"][0].as_str().unwrap()).collect();
    assert_eq!(paths, ["Appointment.minutesDuration", "Appointment.status"]);
    let practitioner = app.create_practitioner("MD-FHIR-2").await;
    let (start, end, _) = slot(2);
    let mut no_reason = appointment_resource(patient, practitioner, &start, &end);
    no_reason.as_object_mut().unwrap().remove("reasonCode");
    let issues = outcome(fhir(&app, Method::POST, "/Appointment", Some(token), Some(no_reason)).await, 422, "invalid");
    assert_eq!(issues[0]["expression"], json!(["Appointment.reasonCode.text"]));

    // A patch that is not JSON Patch, or changes what FHIR may not change here.
    let booked = fhir(
        &app,
        Method::POST,
        "/Appointment",
        Some(token),
        Some(appointment_resource(patient, practitioner, &start, &end)),
    )
    .await
    .expect(201)
    .id();
    let path = format!("/fhir/R4/Appointment/{booked}");
    let as_json = app
        .call_with(Method::PATCH, &path, Some(token), Some(json!([])), &[("content-type", "application/json")])
        .await;
    outcome(as_json, 415, "not-supported");
    let move_it = json!([{"op": "replace", "path": "/start", "value": start}]);
    outcome(
        fhir(&app, Method::PATCH, &format!("/Appointment/{booked}"), Some(token), Some(move_it)).await,
        422,
        "invalid",
    );
    let no_reason = json!([{"op": "replace", "path": "/status", "value": "cancelled"}]);
    let issues = outcome(
        fhir(&app, Method::PATCH, &format!("/Appointment/{booked}"), Some(token), Some(no_reason)).await,
        422,
        "invalid",
    );
    assert_eq!(issues[0]["expression"], json!(["Appointment.cancelationReason.text"]));

    // A patient user reads its own record through FHIR, not another's; the refusal is audited.
    let own = app.user_token(healthcore::testing::domain::Role::Patient, Some(patient)).await;
    fhir(&app, Method::GET, &format!("/Patient/{patient}"), Some(&own), None).await.expect(200);
    outcome(fhir(&app, Method::GET, &format!("/Patient/{other}"), Some(&own), None).await, 403, "forbidden");
    let mine = search(&app, "/Patient", &own).await;
    assert_eq!(ids(&mine), [patient.to_string()]);
    let denied = app.audit_events(&format!("action=patient.read&patient_id={other}&outcome=denied")).await;
    assert_eq!(denied.len(), 1);
    let failed = app.audit_events("action=patient.read&outcome=error").await;
    assert_eq!(failed.len(), 2, "the reads of an unknown id and of a malformed one: {failed:#?}");
    assert!(failed.iter().all(|record| record["reason"] == "not-found"));
    app.stop().await;
}

async fn an_update_reschedules_or_cancels_through_the_rest_use_cases(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_token(healthcore::testing::domain::Role::Receptionist, None).await;
    let practitioner = app.create_practitioner("MD-FHIR-PUT").await;
    let patient = app.create_patient("Put", "Through").await;
    let id = app
        .post("/api/v1/appointments", &app.admin_token, crate::helpers::booking(patient, practitioner, 48, 30))
        .await
        .expect(201)
        .id();
    let path = format!("/Appointment/{id}");
    let put = |body: Value, version: &'static str| {
        let app = &app;
        let token = token.clone();
        let path = format!("/fhir/R4/Appointment/{id}");
        async move {
            let headers = [FHIR_JSON, ("if-match", version)];
            app.call_with(Method::PUT, &path, Some(&token), Some(body), &headers).await
        }
    };
    let mut resource = fhir(&app, Method::GET, &path, Some(&token), None).await.expect(200).body;

    // Unchanged: answered as it is.
    let same = put(resource.clone(), "W/\"1\"").await.expect(200);
    assert_eq!(same.body["meta"]["versionId"], "1");

    // A new slot: the REST reschedule, under the same rules.
    let start = chrono::DateTime::parse_from_rfc3339(resource["start"].as_str().unwrap()).unwrap();
    let moved = (start + chrono::Duration::days(1)).with_timezone(&chrono::Utc);
    resource["start"] = json!(moved.to_rfc3339());
    resource["end"] = json!((moved + chrono::Duration::minutes(45)).to_rfc3339());
    let rescheduled = put(resource.clone(), "W/\"1\"").await.expect(200);
    assert_eq!(rescheduled.header("etag"), Some("W/\"2\""));
    let rest = app.get(&format!("/api/v1/appointments/{id}"), &token).await.expect(200);
    assert_eq!(chrono::DateTime::parse_from_rfc3339(rest.body["start"].as_str().unwrap()).unwrap(), moved);
    assert_eq!(app.audit_events(&format!("action=appointment.reschedule&patient_id={patient}")).await.len(), 1);
    outcome(put(resource.clone(), "W/\"1\"").await, 412, "conflict");

    // What an update cannot change, named; and the id must be the URL's.
    let mut other_reason = rescheduled.body.clone();
    other_reason["reasonCode"] = json!([{"text": "something else"}]);
    let issues = outcome(put(other_reason, "W/\"2\"").await, 422, "invalid");
    assert_eq!(issues[0]["expression"], json!(["Appointment.reasonCode"]));
    let mut elsewhere = rescheduled.body.clone();
    elsewhere["id"] = json!(Uuid::now_v7().to_string());
    outcome(put(elsewhere, "W/\"2\"").await, 400, "invalid");

    // Cancelled: the REST cancellation, which needs a reason; then it stays cancelled.
    let mut cancel = rescheduled.body.clone();
    cancel["status"] = json!("cancelled");
    let issues = outcome(put(cancel.clone(), "W/\"2\"").await, 422, "invalid");
    assert_eq!(issues[0]["expression"], json!(["Appointment.cancelationReason.text"]));
    cancel["cancelationReason"] = json!({"text": "clinic closed"});
    let cancelled = put(cancel, "W/\"2\"").await.expect(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["cancelationReason"]["text"], "clinic closed");
    let mut again = cancelled.body.clone();
    again["status"] = json!("booked");
    let issues = outcome(put(again, "W/\"3\"").await, 422, "invalid");
    assert_eq!(issues[0]["expression"], json!(["Appointment.status"]));
    app.stop().await;
}
