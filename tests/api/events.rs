//! The transactional outbox: every committed change has its events, in order, with the envelope
//! the contract promises and no personal data; a rolled-back change has none.

use healthcore::testing::store::outbox::{self, OutboxEvent};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, booking, patient_body};
use crate::on_both_backends;

async fn all_events(app: &TestApp) -> Vec<OutboxEvent> {
    outbox::after(app.store.db(), 0, 10_000).await.unwrap()
}

fn types(events: &[OutboxEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.envelope.event_type.as_str()).collect()
}

async fn every_change_of_a_booking_flow_is_recorded_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin_token;
    let practitioner = app.create_practitioner("MD-1").await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    app.patch(&format!("/api/v1/patients/{patient}"), token, json!({"phone": "+44 20 7946 0958", "given_name": "Ada"}))
        .await
        .expect(200);
    let id = app.post("/api/v1/appointments", token, booking(patient, practitioner, 24, 30)).await.expect(201).id();
    let moved = booking(patient, practitioner, 26, 30);
    app.post(
        &format!("/api/v1/appointments/{id}/reschedule"),
        token,
        json!({"start": moved["start"], "end": moved["end"]}),
    )
    .await
    .expect(200);
    app.post(&format!("/api/v1/appointments/{id}/cancel"), token, json!({"reason": "travelling"})).await.expect(200);
    app.delete(&format!("/api/v1/patients/{patient}"), token).await.expect(200);
    app.post(&format!("/api/v1/patients/{patient}/reactivate"), token, json!({})).await.expect(200);
    // Reads, refusals and no-op updates record nothing.
    app.get(&format!("/api/v1/patients/{patient}"), token).await.expect(200);
    app.post("/api/v1/appointments", token, booking(patient, practitioner, -1, 30)).await.expect(422);
    app.patch(&format!("/api/v1/patients/{patient}"), token, json!({"given_name": "Ada"})).await.expect(200);

    let events = all_events(&app).await;
    assert_eq!(
        types(&events),
        [
            "practitioner.created",
            "patient.created",
            "patient.updated",
            "appointment.booked",
            "appointment.rescheduled",
            "appointment.cancelled",
            "patient.deleted",
            "patient.reactivated",
        ]
    );
    let patient_versions: Vec<i64> = events
        .iter()
        .filter(|e| e.envelope.metadata.aggregate_id == patient)
        .map(|e| e.envelope.metadata.aggregate_version)
        .collect();
    assert_eq!(patient_versions, [1, 2, 3, 4], "each patient event carries the version it produced");
    let appointment_versions: Vec<i64> = events
        .iter()
        .filter(|e| e.envelope.metadata.aggregate_id == id)
        .map(|e| e.envelope.metadata.aggregate_version)
        .collect();
    assert_eq!(appointment_versions, [1, 2, 3]);
    assert_eq!(events[2].envelope.data["changed_fields"], json!(["phone"]));
    assert_eq!(events[5].envelope.data["cancellation_cause"], "requested");
    app.stop().await;
}

async fn conclusions_and_deactivation_cascades_are_recorded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin_token;
    let practitioner = app.create_practitioner("MD-1").await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let done = app.started_appointment(patient, practitioner, 2).await;
    let missed = app.started_appointment(patient, practitioner, 4).await;
    let future = app.post("/api/v1/appointments", token, booking(patient, practitioner, 24, 30)).await.expect(201).id();
    app.post(&format!("/api/v1/appointments/{done}/complete"), token, json!({})).await.expect(200);
    app.post(&format!("/api/v1/appointments/{missed}/no-show"), token, json!({})).await.expect(200);
    app.delete(&format!("/api/v1/practitioners/{practitioner}"), token).await.expect(200);
    let events = all_events(&app).await;
    assert_eq!(
        types(&events)[2..],
        [
            "appointment.booked",
            "appointment.completed",
            "appointment.no_show",
            "practitioner.deleted",
            "appointment.cancelled"
        ]
    );
    let cancelled = events.last().unwrap();
    assert_eq!(cancelled.envelope.metadata.aggregate_id, future);
    assert_eq!(cancelled.envelope.metadata.aggregate_version, 2);
    assert_eq!(cancelled.envelope.data["cancellation_cause"], "practitioner_deactivated");
    assert_eq!(events[3].envelope.data["status"], "completed");
    app.stop().await;
}

async fn the_envelope_carries_ids_times_and_context_but_no_personal_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practitioner = app.create_practitioner("MD-1").await;
    let mut body = patient_body("Zebedee", "Quixotic-Surname");
    body["email"] = json!("zebedee.private@example.org");
    body["phone"] = json!("+1 555 867 5309");
    body["address"] = json!("42 Secret Lane");
    let patient = app.post("/api/v1/patients", &app.admin_token, body).await.expect(201).id();
    let mut request = booking(patient, practitioner, 24, 30);
    request["reason"] = json!("confidential symptom description");
    request["notes"] = json!("private clinical note");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let booked = app
        .call_with(
            Method::POST,
            "/api/v1/appointments",
            Some(&app.admin_token),
            Some(request.clone()),
            &[("x-correlation-id", "booking-42"), ("traceparent", traceparent)],
        )
        .await
        .expect(201);

    let events = all_events(&app).await;
    let event = events.iter().find(|e| e.envelope.event_type.as_str() == "appointment.booked").unwrap();
    let value: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
    for field in ["event_type", "event_id", "timestamp", "data", "metadata"] {
        assert!(value.get(field).is_some(), "envelope lacks {field}: {value:#}");
    }
    assert_eq!(value["event_type"], "appointment.booked");
    assert_eq!(value["data"]["appointment_id"], booked.body["id"]);
    assert_eq!(value["data"]["patient_id"], patient.to_string());
    assert_eq!(value["data"]["practitioner_id"], practitioner.to_string());
    // The original always sent `scheduled_time: null`; here the times are the booked ones.
    assert_eq!(value["data"]["start"], booked.body["start"]);
    assert_eq!(value["data"]["end"], booked.body["end"]);
    let metadata = &value["metadata"];
    assert_eq!(metadata["correlation_id"], "booking-42");
    assert_eq!(metadata["aggregate_type"], "appointment");
    assert_eq!(metadata["aggregate_version"], 1);
    assert_eq!(metadata["schema_version"], 1);
    assert_eq!(metadata["source"], "healthcore");
    assert_eq!(metadata["actor_role"], "admin");
    // The stored traceparent continues the caller's trace from the outbox write's own span.
    let stored = event.traceparent.as_deref().expect("the event remembers its trace");
    assert!(stored.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && stored.ends_with("-01"), "{stored}");
    assert_ne!(stored, traceparent, "the parent is the outbox write, not the caller's span");

    let everything: String = events.iter().map(|e| e.payload.as_str()).collect();
    for secret in [
        "Zebedee",
        "Quixotic",
        "zebedee.private",
        "867 5309",
        "Secret Lane",
        "1985-04-12",
        "confidential",
        "clinical note",
    ] {
        assert!(!everything.contains(secret), "an event payload contains personal data: {secret}");
    }
    app.stop().await;
}

async fn a_transaction_that_rolls_back_leaves_no_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = all_events(&app).await.len();
    // A refused double booking and a duplicate licence both fail inside their transaction.
    let practitioner = app.create_practitioner("MD-1").await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    app.post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 24, 60)).await.expect(201);
    let recorded = all_events(&app).await.len();
    assert_eq!(recorded, before + 3);
    app.post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 24, 30)).await.expect(409);
    app.post(
        "/api/v1/practitioners",
        &app.admin_token,
        json!({"licence_number": "MD-1", "given_name": "A", "family_name": "B", "role": "nurse"}),
    )
    .await
    .expect(409);
    assert_eq!(all_events(&app).await.len(), recorded);

    // Directly: events written, then the transaction is dropped without commit.
    let tx = app.store.begin_write().await.unwrap();
    let patient_row =
        healthcore::testing::store::patients::find(&tx, healthcore::testing::domain::PatientId::from_uuid(patient))
            .await
            .unwrap()
            .unwrap();
    let envelope = healthcore::testing::events::Envelope::new(
        healthcore::testing::events::patient(healthcore::testing::events::EventType::PatientUpdated, &patient_row),
        &system_context(),
        chrono::Utc::now(),
    );
    outbox::append(&tx, &[envelope], None).await.unwrap();
    assert_eq!(outbox::after(&tx, 0, 10_000).await.unwrap().len(), recorded + 1, "visible inside the transaction");
    drop(tx);
    assert_eq!(all_events(&app).await.len(), recorded, "gone with the rollback");
    app.stop().await;
}

async fn retention_removes_old_published_events_and_never_pending_ones(backend: Backend) {
    // No relay: the test decides what is published.
    let app = TestApp::spawn_with(backend, &[("HEALTHCORE_RELAY_ENABLED", "false")]).await;
    for i in 0..4 {
        app.create_patient("Ada", &format!("Lovelace{i}")).await;
    }
    let events = all_events(&app).await;
    let long_ago = chrono::Utc::now() - chrono::Duration::days(30);
    let old: Vec<outbox::Published> = events[..2]
        .iter()
        .map(|e| outbox::Published { sequence: e.sequence, partition: 0, offset: e.sequence })
        .collect();
    outbox::mark_published(app.store.db(), &old, long_ago).await.unwrap();
    let recent = outbox::Published { sequence: events[2].sequence, partition: 1, offset: 7 };
    outbox::mark_published(app.store.db(), &[recent], chrono::Utc::now()).await.unwrap();
    let status = outbox::status(app.store.db()).await.unwrap();
    assert_eq!((status.total, status.backlog.pending), (4, 1));
    let removed =
        outbox::delete_published_before(app.store.db(), chrono::Utc::now() - chrono::Duration::days(7)).await.unwrap();
    assert_eq!(removed, 2);
    let left: Vec<i64> = all_events(&app).await.iter().map(|e| e.sequence).collect();
    assert_eq!(left, [events[2].sequence, events[3].sequence]);
    assert_eq!(all_events(&app).await[0].published, Some((1, 7)));
    app.stop().await;
}

fn system_context() -> healthcore::testing::context::RequestContext {
    healthcore::testing::context::RequestContext {
        clock: Default::default(),
        principal: healthcore::testing::auth::Principal {
            user_id: healthcore::testing::domain::UserId::from_uuid(uuid::Uuid::nil()),
            role: healthcore::testing::domain::Role::Admin,
            patient_id: None,
        },
        correlation_id: "test".into(),
        client_addr: None,
        user_agent: None,
        attempt: Default::default(),
    }
}

async fn concurrent_retries_with_one_idempotency_key_record_one_event(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                app.call_with(
                    Method::POST,
                    "/api/v1/patients",
                    Some(&app.admin_token),
                    Some(patient_body("Ada", "Lovelace")),
                    &[("idempotency-key", "same-key")],
                )
                .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for request in requests {
        let reply = request.await.unwrap();
        if reply.status == 201 {
            ids.push(reply.id());
        } else {
            // A retry that raced the first request before it committed is told to retry.
            reply.expect_problem(409, "idempotency-key-in-use");
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every successful answer names the same patient");
    let created =
        all_events(&app).await.into_iter().filter(|e| e.envelope.event_type.as_str() == "patient.created").count();
    assert_eq!(created, 1);
    std::sync::Arc::into_inner(app).unwrap().stop().await;
}

on_both_backends!(
    every_change_of_a_booking_flow_is_recorded_in_order,
    conclusions_and_deactivation_cascades_are_recorded,
    the_envelope_carries_ids_times_and_context_but_no_personal_data,
    a_transaction_that_rolls_back_leaves_no_event,
    concurrent_retries_with_one_idempotency_key_record_one_event,
    retention_removes_old_published_events_and_never_pending_ones,
);
