//! Bad input of every kind gets the right 4xx as problem+json: never a 500, never a partial write.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, Reply, TestApp, patient_body};
use crate::on_both_backends;

async fn raw(app: &TestApp, method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(&app.admin_token).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    Reply::from(request.send().await.unwrap()).await
}

async fn malformed_json_is_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    raw(&app, Method::POST, "/api/v1/patients", Some("application/json"), b"{\"given_name\": ".to_vec())
        .await
        .expect_problem(400, "malformed-json");
    raw(&app, Method::POST, "/api/v1/patients", Some("application/json"), Vec::new())
        .await
        .expect_problem(400, "malformed-json");
    app.stop().await;
}

async fn a_body_that_is_not_json_is_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    raw(&app, Method::POST, "/api/v1/patients", Some("text/plain"), b"{}".to_vec())
        .await
        .expect_problem(415, "unsupported-media-type");
    raw(&app, Method::POST, "/api/v1/patients", None, b"{}".to_vec())
        .await
        .expect_problem(415, "unsupported-media-type");
    app.stop().await;
}

async fn a_body_over_the_limit_is_413(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HEALTHCORE_BODY_LIMIT_BYTES", "2048")]).await;
    let mut body = patient_body("Ada", "Lovelace");
    body["address"] = json!("x".repeat(4096));
    raw(&app, Method::POST, "/api/v1/patients", Some("application/json"), serde_json::to_vec(&body).unwrap())
        .await
        .expect_problem(413, "payload-too-large");
    app.stop().await;
}

async fn unknown_routes_are_404_and_wrong_methods_405(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.get("/api/v1/nothing-here", &app.admin_token).await.expect_problem(404, "not-found");
    app.call(Method::GET, "/definitely/not/a/route", None, None).await.expect_problem(404, "not-found");
    app.call(Method::PUT, "/api/v1/patients", Some(&app.admin_token), Some(json!({})))
        .await
        .expect_problem(405, "method-not-allowed");
    app.call(Method::DELETE, "/api/v1/appointments", Some(&app.admin_token), None)
        .await
        .expect_problem(405, "method-not-allowed");
    app.stop().await;
}

async fn an_id_that_is_not_a_uuid_is_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/api/v1/patients/123", "/api/v1/practitioners/not-a-uuid", "/api/v1/appointments/%00"] {
        app.get(path, &app.admin_token).await.expect_problem(400, "invalid-id");
    }
    app.post("/api/v1/appointments/xyz/cancel", &app.admin_token, json!({"reason": "r"}))
        .await
        .expect_problem(400, "invalid-id");
    app.stop().await;
}

async fn wrong_types_and_unknown_fields_are_422_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = app
        .post("/api/v1/patients", &app.admin_token, json!({"given_name": 42}))
        .await
        .expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("given_name".to_owned(), "type".to_owned())]);
    let mut body = patient_body("Ada", "Lovelace");
    body["ssn"] = json!("123-45-6789");
    let reply = app.post("/api/v1/patients", &app.admin_token, body).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("ssn".to_owned(), "unknown_field".to_owned())]);
    let reply = app.post("/api/v1/patients", &app.admin_token, json!([1, 2])).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("body".to_owned(), "object".to_owned())]);
    let reply = app
        .post(
            "/api/v1/appointments",
            &app.admin_token,
            json!({"patient_id": "nope", "practitioner_id": uuid::Uuid::nil(), "reason": "r"}),
        )
        .await
        .expect_problem(422, "validation");
    assert_eq!(reply.field_errors()[0].0, "patient_id");
    let list = app.get("/api/v1/patients", &app.admin_token).await.expect(200);
    assert_eq!(list.body["page"]["total"], 0, "no partial write");
    app.stop().await;
}

async fn error_bodies_never_echo_the_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = "Ada-Secret-Name-9f1c";
    let reply = app.post("/api/v1/patients", &app.admin_token, json!({"given_name": [secret]})).await.expect(422);
    assert!(!reply.body.to_string().contains(secret), "{}", reply.body);
    let reply = app.post("/api/v1/patients", &app.admin_token, json!({"sex": secret})).await.expect(422);
    assert!(!reply.body.to_string().contains(secret), "{}", reply.body);
    app.stop().await;
}

#[test]
fn every_problem_type_is_documented_in_errors_md() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ERRORS.md")).unwrap();
    let missing: Vec<&str> = healthcore::testing::error::ProblemCode::ALL
        .iter()
        .map(|code| code.as_str())
        .filter(|slug| !doc.contains(&format!("`{slug}`")))
        .collect();
    assert!(missing.is_empty(), "docs/ERRORS.md does not list {missing:?}");
}

on_both_backends!(
    malformed_json_is_400,
    a_body_that_is_not_json_is_415,
    a_body_over_the_limit_is_413,
    unknown_routes_are_404_and_wrong_methods_405,
    an_id_that_is_not_a_uuid_is_400,
    wrong_types_and_unknown_fields_are_422_naming_the_field,
    error_bodies_never_echo_the_input,
);
