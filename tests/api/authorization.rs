//! The role × endpoint matrix of `docs/SECURITY.md`, checked cell by cell against the server:
//! an allowed cell must succeed (2xx), a denied one must be 403 and leave an audit record.

use std::sync::atomic::{AtomicI64, Ordering};

use healthcore::testing::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, Reply, TestApp, booking, patient_body};
use crate::on_both_backends;

/// Roles in the column order of the matrix.
const ROLES: [Role; 6] = [Role::Admin, Role::Physician, Role::Nurse, Role::Receptionist, Role::Auditor, Role::Patient];

/// (operation, one letter per role above: Y allowed, N denied). Keep in step with SECURITY.md.
const MATRIX: &[(&str, &str)] = &[
    ("POST /patients", "YYYYNN"),
    ("GET /patients", "YYYYNY"),
    ("GET /patients/{own}", "YYYYNY"),
    ("GET /patients/{other}", "YYYYNN"),
    ("PATCH /patients/{own}", "YYYYNN"),
    ("DELETE /patients/{id}", "YNNYNN"),
    ("POST /patients/{id}/reactivate", "YNNYNN"),
    ("POST /practitioners", "YNNNNN"),
    ("GET /practitioners", "YYYYYY"),
    ("GET /practitioners/{id}", "YYYYYY"),
    ("PATCH /practitioners/{id}", "YNNNNN"),
    ("DELETE /practitioners/{id}", "YNNNNN"),
    ("POST /appointments {own}", "YYYYNY"),
    ("POST /appointments {other}", "YYYYNN"),
    ("GET /appointments", "YYYYNY"),
    ("GET /appointments/{own}", "YYYYNY"),
    ("GET /appointments/{other}", "YYYYNN"),
    ("POST /appointments/{own}/reschedule", "YYYYNN"),
    ("POST /appointments/{own}/cancel", "YYYYNY"),
    ("POST /appointments/{other}/cancel", "YYYYNN"),
    ("POST /appointments/{id}/complete", "YYYNNN"),
    ("POST /appointments/{id}/no-show", "YYYNNN"),
    ("GET /audit-events", "YNNNYN"),
    ("GET /auth/me", "YYYYYY"),
    ("GET /analytics/patients", "YNNNNN"),
    ("GET /analytics/appointments", "YNNNNN"),
    ("GET /notifications", "YNNYNN"),
    ("POST /integrations/subscriptions", "YNNNNN"),
    ("GET /integrations/subscriptions", "YNNNNN"),
    ("DELETE /integrations/subscriptions/{id}", "YNNNNN"),
    ("GET /users", "YNNNNN"),
    ("POST /users", "YNNNNN"),
    ("GET /users/{id}", "YNNNNN"),
    ("PATCH /users/{id}", "YNNNNN"),
    ("POST /users/{id}/password", "YNNNNN"),
    // The FHIR interface: the same use cases, so the same cells.
    ("GET /fhir/metadata", "YYYYYY"),
    ("GET /fhir/Patient", "YYYYNY"),
    ("GET /fhir/Patient/{own}", "YYYYNY"),
    ("GET /fhir/Patient/{other}", "YYYYNN"),
    ("GET /fhir/Practitioner", "YYYYYY"),
    ("GET /fhir/Practitioner/{id}", "YYYYYY"),
    ("POST /fhir/Appointment {own}", "YYYYNY"),
    ("POST /fhir/Appointment {other}", "YYYYNN"),
    ("GET /fhir/Appointment", "YYYYNY"),
    ("GET /fhir/Appointment/{own}", "YYYYNY"),
    ("GET /fhir/Appointment/{other}", "YYYYNN"),
    ("PATCH /fhir/Appointment/{own} cancelled", "YYYYNY"),
    ("PATCH /fhir/Appointment/{other} cancelled", "YYYYNN"),
    ("PATCH /fhir/Appointment/{id} fulfilled", "YYYNNN"),
    ("PUT /fhir/Appointment/{own} cancelled", "YYYYNY"),
    ("PUT /fhir/Appointment/{own} moved", "YYYYNN"),
    ("GET /fhir/AuditEvent", "YNNNYN"),
    ("GET /fhir/AuditEvent/{id}", "YNNNYN"),
    // Last: it ends the token that made it.
    ("POST /auth/password", "YYYYYY"),
];

fn subscription_body() -> Value {
    json!({"event_types": ["*"], "callback_url": "http://127.0.0.1:9/hook", "secret": "matrix-secret-0123456789"})
}

struct Fixture {
    app: TestApp,
    own_patient: Uuid,
    other_patient: Uuid,
    practitioner: Uuid,
    next_hour: AtomicI64,
}

impl Fixture {
    async fn book(&self, patient: Uuid) -> Uuid {
        let hour = self.next_hour.fetch_add(1, Ordering::SeqCst);
        self.app
            .post("/api/v1/appointments", &self.app.admin_token, booking(patient, self.practitioner, hour, 30))
            .await
            .expect(201)
            .id()
    }

    /// A fresh nurse account to look at or change.
    async fn someone(&self) -> Uuid {
        let username = format!("n-{}", &Uuid::new_v4().simple().to_string()[..8]);
        let user = healthcore::testing::service::users::create(
            &self.app.store,
            &username,
            Role::Nurse,
            None,
            "a-long-enough-password",
        );
        user.await.unwrap().id.as_uuid()
    }

    async fn started(&self) -> Uuid {
        let hours_ago = self.next_hour.fetch_add(1, Ordering::SeqCst);
        self.app.started_appointment(self.other_patient, self.practitioner, hours_ago).await
    }

    /// A FHIR Appointment to book for `patient`, `hour` hours from now.
    fn fhir_booking(&self, patient: Uuid, hour: i64) -> Value {
        let slot = booking(patient, self.practitioner, hour, 30);
        json!({
            "resourceType": "Appointment",
            "status": "booked",
            "start": slot["start"],
            "end": slot["end"],
            "reasonCode": [{"text": "check-up"}],
            "participant": [
                {"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
                {"actor": {"reference": format!("Practitioner/{}", self.practitioner)}, "status": "accepted"},
            ],
        })
    }

    async fn patch_status(&self, path: &str, status: &str, token: &str) -> Reply {
        let mut patch = vec![json!({"op": "replace", "path": "/status", "value": status})];
        if status == "cancelled" {
            patch.push(json!({"op": "add", "path": "/cancelationReason", "value": {"text": "r"}}));
        }
        let headers = [("content-type", "application/json-patch+json")];
        self.app.call_with(Method::PATCH, path, Some(token), Some(Value::Array(patch)), &headers).await
    }

    async fn perform(&self, operation: &str, token: &str) -> Reply {
        let app = &self.app;
        let hour = || self.next_hour.fetch_add(1, Ordering::SeqCst);
        let (method, path, body): (Method, String, Option<Value>) = match operation {
            "POST /patients" => (Method::POST, "/api/v1/patients".into(), Some(patient_body("New", "Patient"))),
            "GET /patients" => (Method::GET, "/api/v1/patients".into(), None),
            "GET /patients/{own}" => (Method::GET, format!("/api/v1/patients/{}", self.own_patient), None),
            "GET /patients/{other}" => (Method::GET, format!("/api/v1/patients/{}", self.other_patient), None),
            "PATCH /patients/{own}" => {
                (Method::PATCH, format!("/api/v1/patients/{}", self.own_patient), Some(json!({"phone": "+1 555 0100"})))
            }
            "DELETE /patients/{id}" => {
                (Method::DELETE, format!("/api/v1/patients/{}", app.create_patient("Short", "Lived").await), None)
            }
            "POST /patients/{id}/reactivate" => {
                let id = app.create_patient("Was", "Inactive").await;
                app.delete(&format!("/api/v1/patients/{id}"), &app.admin_token).await.expect(200);
                (Method::POST, format!("/api/v1/patients/{id}/reactivate"), None)
            }
            "POST /practitioners" => (
                Method::POST,
                "/api/v1/practitioners".into(),
                Some(
                    json!({"licence_number": format!("L-{}", Uuid::new_v4().simple()), "given_name": "P", "family_name": "Q", "role": "other"}),
                ),
            ),
            "GET /practitioners" => (Method::GET, "/api/v1/practitioners".into(), None),
            "GET /practitioners/{id}" => (Method::GET, format!("/api/v1/practitioners/{}", self.practitioner), None),
            "PATCH /practitioners/{id}" => (
                Method::PATCH,
                format!("/api/v1/practitioners/{}", self.practitioner),
                Some(json!({"specialty": "triage"})),
            ),
            "DELETE /practitioners/{id}" => {
                let id = app.create_practitioner(&format!("D-{}", Uuid::new_v4().simple())).await;
                (Method::DELETE, format!("/api/v1/practitioners/{id}"), None)
            }
            "POST /appointments {own}" => (
                Method::POST,
                "/api/v1/appointments".into(),
                Some(booking(self.own_patient, self.practitioner, hour(), 30)),
            ),
            "POST /appointments {other}" => (
                Method::POST,
                "/api/v1/appointments".into(),
                Some(booking(self.other_patient, self.practitioner, hour(), 30)),
            ),
            "GET /appointments" => (Method::GET, "/api/v1/appointments".into(), None),
            "GET /appointments/{own}" => {
                (Method::GET, format!("/api/v1/appointments/{}", self.book(self.own_patient).await), None)
            }
            "GET /appointments/{other}" => {
                (Method::GET, format!("/api/v1/appointments/{}", self.book(self.other_patient).await), None)
            }
            "POST /appointments/{own}/reschedule" => {
                let id = self.book(self.own_patient).await;
                let slot = booking(self.own_patient, self.practitioner, hour(), 30);
                (
                    Method::POST,
                    format!("/api/v1/appointments/{id}/reschedule"),
                    Some(json!({"start": slot["start"], "end": slot["end"]})),
                )
            }
            "POST /appointments/{own}/cancel" => (
                Method::POST,
                format!("/api/v1/appointments/{}/cancel", self.book(self.own_patient).await),
                Some(json!({"reason": "r"})),
            ),
            "POST /appointments/{other}/cancel" => (
                Method::POST,
                format!("/api/v1/appointments/{}/cancel", self.book(self.other_patient).await),
                Some(json!({"reason": "r"})),
            ),
            "POST /appointments/{id}/complete" => {
                (Method::POST, format!("/api/v1/appointments/{}/complete", self.started().await), None)
            }
            "POST /appointments/{id}/no-show" => {
                (Method::POST, format!("/api/v1/appointments/{}/no-show", self.started().await), None)
            }
            "GET /audit-events" => (Method::GET, "/api/v1/audit-events".into(), None),
            "GET /auth/me" => (Method::GET, "/api/v1/auth/me".into(), None),
            "GET /analytics/patients" => (Method::GET, "/api/v1/analytics/patients".into(), None),
            "GET /analytics/appointments" => (Method::GET, "/api/v1/analytics/appointments".into(), None),
            "GET /notifications" => (Method::GET, "/api/v1/notifications".into(), None),
            "POST /integrations/subscriptions" => {
                (Method::POST, "/api/v1/integrations/subscriptions".into(), Some(subscription_body()))
            }
            "GET /integrations/subscriptions" => (Method::GET, "/api/v1/integrations/subscriptions".into(), None),
            "DELETE /integrations/subscriptions/{id}" => {
                let id = app
                    .post("/api/v1/integrations/subscriptions", &app.admin_token, subscription_body())
                    .await
                    .expect(201)
                    .id();
                (Method::DELETE, format!("/api/v1/integrations/subscriptions/{id}"), None)
            }
            "GET /users" => (Method::GET, "/api/v1/users".into(), None),
            "POST /users" => (
                Method::POST,
                "/api/v1/users".into(),
                Some(
                    json!({"username": format!("u-{}", &Uuid::new_v4().simple().to_string()[..8]), "role": "nurse", "password": "a-long-enough-password"}),
                ),
            ),
            "GET /users/{id}" => (Method::GET, format!("/api/v1/users/{}", self.someone().await), None),
            "PATCH /users/{id}" => (
                Method::PATCH,
                format!("/api/v1/users/{}", self.someone().await),
                Some(json!({"role": "receptionist"})),
            ),
            "POST /users/{id}/password" => (
                Method::POST,
                format!("/api/v1/users/{}/password", self.someone().await),
                Some(json!({"password": "another-long-password"})),
            ),
            "POST /auth/password" => (
                Method::POST,
                "/api/v1/auth/password".into(),
                Some(json!({"current_password": crate::helpers::USER_PASSWORD, "new_password": "a-new-long-password"})),
            ),
            "GET /fhir/metadata" => (Method::GET, "/fhir/R4/metadata".into(), None),
            "GET /fhir/Patient" => (Method::GET, "/fhir/R4/Patient".into(), None),
            "GET /fhir/Patient/{own}" => (Method::GET, format!("/fhir/R4/Patient/{}", self.own_patient), None),
            "GET /fhir/Patient/{other}" => (Method::GET, format!("/fhir/R4/Patient/{}", self.other_patient), None),
            "GET /fhir/Practitioner" => (Method::GET, "/fhir/R4/Practitioner".into(), None),
            "GET /fhir/Practitioner/{id}" => {
                (Method::GET, format!("/fhir/R4/Practitioner/{}", self.practitioner), None)
            }
            "POST /fhir/Appointment {own}" => {
                (Method::POST, "/fhir/R4/Appointment".into(), Some(self.fhir_booking(self.own_patient, hour())))
            }
            "POST /fhir/Appointment {other}" => {
                (Method::POST, "/fhir/R4/Appointment".into(), Some(self.fhir_booking(self.other_patient, hour())))
            }
            "GET /fhir/Appointment" => (Method::GET, "/fhir/R4/Appointment".into(), None),
            "GET /fhir/Appointment/{own}" => {
                (Method::GET, format!("/fhir/R4/Appointment/{}", self.book(self.own_patient).await), None)
            }
            "GET /fhir/Appointment/{other}" => {
                (Method::GET, format!("/fhir/R4/Appointment/{}", self.book(self.other_patient).await), None)
            }
            "PATCH /fhir/Appointment/{own} cancelled" => {
                let id = self.book(self.own_patient).await;
                return self.patch_status(&format!("/fhir/R4/Appointment/{id}"), "cancelled", token).await;
            }
            "PATCH /fhir/Appointment/{other} cancelled" => {
                let id = self.book(self.other_patient).await;
                return self.patch_status(&format!("/fhir/R4/Appointment/{id}"), "cancelled", token).await;
            }
            "PUT /fhir/Appointment/{own} cancelled" => {
                let id = self.book(self.own_patient).await;
                let path = format!("/fhir/R4/Appointment/{id}");
                let mut resource = app.get(&path, &app.admin_token).await.expect(200).body;
                resource["status"] = json!("cancelled");
                resource["cancelationReason"] = json!({"text": "r"});
                (Method::PUT, path, Some(resource))
            }
            "PUT /fhir/Appointment/{own} moved" => {
                let id = self.book(self.own_patient).await;
                let path = format!("/fhir/R4/Appointment/{id}");
                let mut resource = app.get(&path, &app.admin_token).await.expect(200).body;
                let slot = booking(self.own_patient, self.practitioner, hour(), 30);
                (resource["start"], resource["end"]) = (slot["start"].clone(), slot["end"].clone());
                (Method::PUT, path, Some(resource))
            }
            "PATCH /fhir/Appointment/{id} fulfilled" => {
                let id = self.started().await;
                return self.patch_status(&format!("/fhir/R4/Appointment/{id}"), "fulfilled", token).await;
            }
            "GET /fhir/AuditEvent" => (Method::GET, "/fhir/R4/AuditEvent".into(), None),
            "GET /fhir/AuditEvent/{id}" => {
                let any = app.get("/api/v1/audit-events?limit=1", &app.admin_token).await.expect(200);
                (Method::GET, format!("/fhir/R4/AuditEvent/{}", any.body["items"][0]["id"].as_str().unwrap()), None)
            }
            other => panic!("no request for operation {other}"),
        };
        app.call(method, &path, Some(token), body).await
    }
}

async fn every_cell_of_the_role_matrix_holds(backend: Backend) {
    // The matrix books the linked patient many times over; the limit on a patient's own future
    // bookings is another rule (tests/api/limits.rs), not a cell of the matrix.
    let app = TestApp::spawn_with(backend, &[("HEALTHCORE_PATIENT_FUTURE_BOOKINGS_MAX", "100")]).await;
    let own_patient = app.create_patient("Own", "Record").await;
    let other_patient = app.create_patient("Someone", "Else").await;
    let practitioner = app.create_practitioner("MD-MATRIX").await;
    let fixture = Fixture { own_patient, other_patient, practitioner, next_hour: AtomicI64::new(24), app };
    let mut tokens = Vec::new();
    for role in ROLES {
        let patient_id = (role == Role::Patient).then_some(own_patient);
        tokens.push(fixture.app.user_token(role, patient_id).await);
    }
    let mut failures = Vec::new();
    for (operation, cells) in MATRIX {
        for ((role, token), cell) in ROLES.iter().zip(&tokens).zip(cells.chars()) {
            let reply = fixture.perform(operation, token).await;
            let status = reply.status.as_u16();
            let ok = match cell {
                'Y' => (200..300).contains(&status),
                _ if operation.contains("/fhir/") => {
                    status == 403
                        && reply.header("content-type") == Some("application/fhir+json")
                        && reply.body["issue"][0]["code"] == "forbidden"
                }
                _ => status == 403 && reply.header("content-type") == Some("application/problem+json"),
            };
            if !ok {
                failures.push(format!("{operation} as {role}: expected {cell}, got {status} {}", reply.body));
            }
        }
    }
    assert!(failures.is_empty(), "matrix cells that do not hold:\n{}", failures.join("\n"));
    // Every refusal left exactly one audit record.
    let denied =
        fixture.app.get("/api/v1/audit-events?outcome=denied&limit=1", &fixture.app.admin_token).await.expect(200);
    let expected_denials = MATRIX.iter().map(|(_, cells)| cells.matches('N').count()).sum::<usize>();
    assert_eq!(denied.body["page"]["total"], expected_denials as u64);
    fixture.app.stop().await;
}

async fn a_patient_user_lists_only_its_own_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let own = app.create_patient("Own", "Record").await;
    let other = app.create_patient("Someone", "Else").await;
    let practitioner = app.create_practitioner("MD-1").await;
    app.post("/api/v1/appointments", &app.admin_token, booking(own, practitioner, 24, 30)).await.expect(201);
    app.post("/api/v1/appointments", &app.admin_token, booking(other, practitioner, 25, 30)).await.expect(201);
    let token = app.user_token(Role::Patient, Some(own)).await;
    let patients = app.get("/api/v1/patients", &token).await.expect(200);
    assert_eq!(patients.body["page"]["total"], 1);
    assert_eq!(patients.body["items"][0]["id"], own.to_string());
    let appointments = app.get("/api/v1/appointments", &token).await.expect(200);
    assert_eq!(appointments.body["page"]["total"], 1);
    assert_eq!(appointments.body["items"][0]["patient_id"], own.to_string());
    app.get(&format!("/api/v1/appointments?patient_id={other}"), &token).await.expect_problem(403, "forbidden");
    app.stop().await;
}

on_both_backends!(every_cell_of_the_role_matrix_holds, a_patient_user_lists_only_its_own_data);
