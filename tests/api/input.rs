//! Hostile text, wherever a client can put it: control characters (NUL reached PostgreSQL and came
//! back as a 500), invisible formatting characters, values echoed back in error messages, trailing
//! data after a JSON body, dates without an upper bound.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, booking, patient_body};
use crate::on_both_backends;

async fn a_nul_in_the_login_username_is_a_401_and_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for username in ["admin\u{0}", "\u{0}", "ad\u{0}min"] {
        app.call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": username, "password": "whatever-it-is"})),
        )
        .await
        .expect_problem(401, "unauthorized");
    }
    let denied = app.audit_events("action=auth.login&outcome=denied").await;
    assert_eq!(denied.len(), 3, "every attempt is audited: {denied:#?}");
    app.stop().await;
}

async fn control_characters_in_list_filters_are_422_naming_the_parameter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        ("/api/v1/patients?name=Ada%00", "name"),
        ("/api/v1/patients?mrn=%00HC", "mrn"),
        ("/api/v1/practitioners?name=%00", "name"),
        ("/api/v1/audit-events?action=patient.read%00", "action"),
        ("/api/v1/appointments?status=booked%00", "status"),
        ("/api/v1/patients?name=%E2%80%AEada", "name"),
        ("/api/v1/patients?limit=1%00", "limit"),
    ];
    for (path, parameter) in cases {
        let reply = app.get(path, &app.admin_token).await.expect_problem(422, "validation");
        let errors = reply.field_errors();
        assert_eq!(errors.len(), 1, "{path}: {errors:?}");
        assert_eq!(errors[0].0, parameter, "{path}");
        assert!(
            ["no_control_characters", "no_invisible_characters"].contains(&errors[0].1.as_str()),
            "{path}: {errors:?}"
        );
    }
    app.stop().await;
}

async fn control_characters_in_subscriptions_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let valid = json!({"event_types": ["appointment.booked"], "callback_url": "https://example.org/hook", "secret": "a-secret-of-sixteen+"});
    for (field, value) in [
        ("callback_url", json!("https://example.org/ho\u{0}ok")),
        ("secret", json!("a-secret-of-\u{0}sixteen+")),
        ("event_types", json!(["appointment.booked\u{0}"])),
    ] {
        let mut body = valid.clone();
        body[field] = value;
        let reply = app
            .post("/api/v1/integrations/subscriptions", &app.admin_token, body)
            .await
            .expect_problem(422, "validation");
        assert_eq!(reply.field_errors()[0].0, field);
    }
    let listed = app.get("/api/v1/integrations/subscriptions", &app.admin_token).await.expect(200);
    assert_eq!(listed.body["page"]["total"], 0);
    app.stop().await;
}

async fn invisible_and_control_characters_in_names_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (given, rule) in [
        ("Ada\u{0}", "no_control_characters"),
        ("\u{202E}adA", "no_invisible_characters"),
        ("A\u{200B}da", "no_invisible_characters"),
        ("\u{FEFF}Ada", "no_invisible_characters"),
        ("Ada\nLovelace", "single_line"),
    ] {
        let reply = app.post("/api/v1/patients", &app.admin_token, patient_body(given, "Lovelace")).await;
        let reply = reply.expect_problem(422, "validation");
        assert_eq!(reply.field_errors(), [("given_name".to_owned(), rule.to_owned())], "{given:?}");
    }
    let listed = app.get("/api/v1/patients", &app.admin_token).await.expect(200);
    assert_eq!(listed.body["page"]["total"], 0, "nothing was stored");
    // A decomposed accent is stored composed (NFC).
    let created =
        app.post("/api/v1/patients", &app.admin_token, patient_body("E\u{301}lodie", "Durand")).await.expect(201);
    assert_eq!(created.body["given_name"], "\u{C9}lodie");
    app.stop().await;
}

async fn error_messages_never_repeat_the_value_sent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let marker = "Secret-Lovelace-1815";
    let practitioner = app.create_practitioner("MD-1").await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let bodies = [
        (
            "/api/v1/patients",
            json!({"given_name": "Ada", "family_name": "Lovelace", "birth_date": marker, "sex": marker}),
        ),
        ("/api/v1/patients", json!({"given_name": ["Ada", marker], "family_name": 7})),
        (
            "/api/v1/appointments",
            json!({"patient_id": marker, "practitioner_id": practitioner, "start": marker, "end": marker, "reason": "r"}),
        ),
        (
            "/api/v1/practitioners",
            json!({"licence_number": "MD-2", "given_name": "G", "family_name": "H", "role": marker}),
        ),
        (
            "/api/v1/integrations/subscriptions",
            json!({"event_types": [marker], "callback_url": marker, "secret": "a-secret-of-sixteen+"}),
        ),
        (
            "/api/v1/patients",
            json!({"given_name": "Ada", "family_name": "Lovelace", "birth_date": "1990-01-01", "sex": "female", marker: 1}),
        ),
    ];
    for (path, body) in bodies {
        let reply = app.post(path, &app.admin_token, body).await;
        assert_eq!(reply.status, 422, "{path}: {:#}", reply.body);
        assert!(!reply.body.to_string().contains(marker), "{path} echoes the value: {:#}", reply.body);
    }
    let query = app.get(&format!("/api/v1/appointments?patient_id={marker}&from={marker}"), &app.admin_token).await;
    assert_eq!(query.status, 422);
    assert!(!query.body.to_string().contains(marker), "{:#}", query.body);
    let _ = patient;
    app.stop().await;
}

async fn data_after_the_json_body_is_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = patient_body("Ada", "Lovelace").to_string();
    for raw in [format!("{body} garbage"), format!("{body}{body}"), format!("{body}\n[]")] {
        let reply = app
            .client
            .post(app.url("/api/v1/patients"))
            .bearer_auth(&app.admin_token)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        crate::helpers::Reply::from(reply).await.expect_problem(400, "malformed-json");
    }
    let listed = app.get("/api/v1/patients", &app.admin_token).await.expect(200);
    assert_eq!(listed.body["page"]["total"], 0);
    app.stop().await;
}

async fn dates_beyond_the_booking_horizon_and_year_9999_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let practitioner = app.create_practitioner("MD-1").await;
    for (start, end) in
        [("+262142-01-01T09:00:00Z", "+262142-01-01T09:30:00Z"), ("9999-12-31T09:00:00Z", "9999-12-31T09:30:00Z")]
    {
        let mut body = booking(patient, practitioner, 24, 30);
        body["start"] = json!(start);
        body["end"] = json!(end);
        let reply = app.post("/api/v1/appointments", &app.admin_token, body).await;
        let reply = reply.expect_problem(422, "validation");
        assert!(reply.field_errors().iter().any(|(field, _)| field == "start"), "{start}: {:#}", reply.body);
    }
    let six_years = booking(patient, practitioner, 24 * 365 * 6, 30);
    let reply = app.post("/api/v1/appointments", &app.admin_token, six_years).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("start".to_owned(), "within_horizon".to_owned())]);
    app.post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 24 * 365 * 4, 30))
        .await
        .expect(201);
    app.get("/api/v1/analytics/appointments?from=12345-01-01", &app.admin_token)
        .await
        .expect_problem(422, "validation");
    app.stop().await;
}

async fn names_beyond_ascii_are_found_by_any_case_of_their_prefix(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (given, family) in [("Élodie", "Durand"), ("Łukasz", "Nowak"), ("Øyvind", "Hansen"), ("Мария", "Иванова")]
    {
        app.create_patient(given, family).await;
    }
    app.post(
        "/api/v1/practitioners",
        &app.admin_token,
        json!({"licence_number": "MD-9", "given_name": "Ærøskøbing", "family_name": "Ødegård", "role": "nurse"}),
    )
    .await
    .expect(201);
    for (prefix, expected) in [
        ("élo", "Élodie"),
        ("ÉLO", "Élodie"),
        ("E\u{301}lo", "Élodie"),
        ("łu", "Łukasz"),
        ("ŁUK", "Łukasz"),
        ("øy", "Øyvind"),
        ("иван", "Иванова"),
        ("ИВАН", "Иванова"),
    ] {
        let path = format!("/api/v1/patients?name={}", urlencode(prefix));
        let found = app.get(&path, &app.admin_token).await.expect(200);
        let names = found.listed_names();
        assert_eq!(names.len(), 1, "{prefix}: {names:?}");
        assert!(names[0].contains(expected), "{prefix}: {names:?}");
    }
    let found =
        app.get(&format!("/api/v1/practitioners?name={}", urlencode("øde")), &app.admin_token).await.expect(200);
    assert_eq!(found.body["page"]["total"], 1);
    app.stop().await;
}

async fn a_patient_user_cannot_fill_a_calendar_with_bookings(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HEALTHCORE_PATIENT_FUTURE_BOOKINGS_MAX", "3")]).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let practitioner = app.create_practitioner("MD-1").await;
    let token = app.user_token(healthcore::testing::domain::Role::Patient, Some(patient)).await;
    for hours in [24, 48, 72] {
        app.post("/api/v1/appointments", &token, booking(patient, practitioner, hours, 480)).await.expect(201);
    }
    app.post("/api/v1/appointments", &token, booking(patient, practitioner, 96, 30))
        .await
        .expect_problem(409, "booking-limit");
    // Staff may book a course of appointments ahead for the same patient.
    app.post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 96, 30)).await.expect(201);
    app.stop().await;
}

async fn api_responses_are_never_cached_or_sniffed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    for (path, token) in [
        (format!("/api/v1/patients/{patient}"), Some(app.admin_token.as_str())),
        ("/api/v1/patients?name=ada".to_owned(), Some(app.admin_token.as_str())),
        (format!("/api/v1/patients/{patient}"), None),
        ("/api/v1/no-such-route".to_owned(), None),
    ] {
        let reply = app.call(Method::GET, &path, token, None).await;
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
    }
    app.stop().await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

on_both_backends!(
    a_patient_user_cannot_fill_a_calendar_with_bookings,
    api_responses_are_never_cached_or_sniffed,
    names_beyond_ascii_are_found_by_any_case_of_their_prefix,
    a_nul_in_the_login_username_is_a_401_and_audited,
    control_characters_in_list_filters_are_422_naming_the_parameter,
    control_characters_in_subscriptions_are_refused_and_nothing_is_stored,
    invisible_and_control_characters_in_names_are_refused,
    error_messages_never_repeat_the_value_sent,
    data_after_the_json_body_is_400,
    dates_beyond_the_booking_horizon_and_year_9999_are_refused,
);
