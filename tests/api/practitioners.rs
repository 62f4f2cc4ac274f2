use healthcore::testing::events::EventType;
use healthcore::testing::store::outbox;
use serde_json::json;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

/// A creation is written with its audit record and its event as one statement on PostgreSQL
/// (`Store::insert_atomically`): a refused row takes them with it.
async fn a_duplicate_licence_number_is_a_409_whatever_its_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_practitioner("md-42").await;
    let reply = app
        .post(
            "/api/v1/practitioners",
            &app.admin_token,
            json!({"licence_number": "MD-42", "given_name": "A", "family_name": "B", "role": "nurse"}),
        )
        .await
        .expect_problem(409, "duplicate-licence-number");
    assert!(reply.body["detail"].as_str().unwrap().contains("licence"));
    let list = app.get("/api/v1/practitioners", &app.admin_token).await.expect(200);
    assert_eq!(list.body["page"]["total"], 1);
    let created = app.audit_events("action=practitioner.create&outcome=success").await;
    assert_eq!(created.len(), 1, "the refused creation left no record of success: {created:?}");
    let events = outbox::after(app.store.db(), 0, 100).await.unwrap();
    let practitioner_events = events.iter().filter(|e| e.envelope.event_type == EventType::PractitionerCreated);
    assert_eq!(practitioner_events.count(), 1, "the refused creation left no event");
    app.stop().await;
}

async fn practitioners_are_listed_filtered_by_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_practitioner("L-1").await;
    app.post("/api/v1/practitioners", &app.admin_token, json!({"licence_number": "L-2", "given_name": "N", "family_name": "Ightingale", "role": "nurse", "specialty": "wards"}))
        .await
        .expect(201);
    let nurses = app.get("/api/v1/practitioners?role=nurse", &app.admin_token).await.expect(200);
    assert_eq!(nurses.body["page"]["total"], 1);
    assert_eq!(nurses.body["items"][0]["specialty"], "wards");
    app.get("/api/v1/practitioners?role=wizard", &app.admin_token).await.expect_problem(422, "validation");
    app.stop().await;
}

async fn updating_to_a_taken_licence_number_is_a_409(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_practitioner("L-1").await;
    let second = app.create_practitioner("L-2").await;
    app.patch(&format!("/api/v1/practitioners/{second}"), &app.admin_token, json!({"licence_number": "l-1"}))
        .await
        .expect_problem(409, "duplicate-licence-number");
    let read = app.get(&format!("/api/v1/practitioners/{second}"), &app.admin_token).await.expect(200);
    assert_eq!(read.body["licence_number"], "L-2");
    app.stop().await;
}

on_both_backends!(
    a_duplicate_licence_number_is_a_409_whatever_its_case,
    practitioners_are_listed_filtered_by_role,
    updating_to_a_taken_licence_number_is_a_409,
);
