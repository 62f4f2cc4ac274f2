use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, patient_body};
use crate::on_both_backends;

async fn post_with_key(app: &TestApp, token: &str, key: &str, body: serde_json::Value) -> crate::helpers::Reply {
    app.call_with(Method::POST, "/api/v1/patients", Some(token), Some(body), &[("idempotency-key", key)]).await
}

async fn the_same_key_and_body_replays_the_first_response(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = post_with_key(&app, &app.admin_token, "key-1", patient_body("Ada", "Lovelace")).await.expect(201);
    let second = post_with_key(&app, &app.admin_token, "key-1", patient_body("Ada", "Lovelace")).await.expect(201);
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("location"), first.header("location"));
    assert_eq!(second.header("etag"), first.header("etag"));
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    // The replay showed the patient again: audited as a read.
    let reads = app.audit_events(&format!("patient_id={}&action=patient.read", first.id())).await;
    assert_eq!(reads.len(), 1, "{reads:#?}");
    assert_eq!(reads[0]["reason"], "idempotent_replay");
    let list = app.get("/api/v1/patients", &app.admin_token).await.expect(200);
    assert_eq!(list.body["page"]["total"], 1);
    app.stop().await;
}

async fn the_same_key_with_another_body_is_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    post_with_key(&app, &app.admin_token, "key-1", patient_body("Ada", "Lovelace")).await.expect(201);
    post_with_key(&app, &app.admin_token, "key-1", patient_body("Alan", "Turing"))
        .await
        .expect_problem(422, "idempotency-key-reused");
    app.stop().await;
}

async fn keys_belong_to_their_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let nurse = app.user_token(healthcore::testing::domain::Role::Nurse, None).await;
    let a = post_with_key(&app, &app.admin_token, "shared", patient_body("Ada", "Lovelace")).await.expect(201);
    let b = post_with_key(&app, &nurse, "shared", patient_body("Ada", "Lovelace")).await.expect(201);
    assert_ne!(a.id(), b.id());
    assert_eq!(b.header("idempotent-replayed"), None);
    app.stop().await;
}

async fn a_failed_request_does_not_consume_its_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    post_with_key(&app, &app.admin_token, "key-1", json!({"given_name": "Ada"})).await.expect(422);
    post_with_key(&app, &app.admin_token, "key-1", patient_body("Ada", "Lovelace")).await.expect(201);
    app.stop().await;
}

async fn booking_and_practitioner_creation_honour_keys_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({"licence_number": "MD-7", "given_name": "A", "family_name": "B", "role": "nurse"});
    let headers = [("idempotency-key", "p-1")];
    let first = app
        .call_with(Method::POST, "/api/v1/practitioners", Some(&app.admin_token), Some(body.clone()), &headers)
        .await
        .expect(201);
    // Without the key this would be a duplicate licence number (409); with it, a replay.
    let again = app
        .call_with(Method::POST, "/api/v1/practitioners", Some(&app.admin_token), Some(body), &headers)
        .await
        .expect(201);
    assert_eq!(first.id(), again.id());
    let patient = app.create_patient("Ada", "Lovelace").await;
    let booking = crate::helpers::booking(patient, first.id(), 24, 30);
    let headers = [("idempotency-key", "b-1")];
    let one = app
        .call_with(Method::POST, "/api/v1/appointments", Some(&app.admin_token), Some(booking.clone()), &headers)
        .await
        .expect(201);
    let two = app
        .call_with(Method::POST, "/api/v1/appointments", Some(&app.admin_token), Some(booking), &headers)
        .await
        .expect(201);
    assert_eq!(one.id(), two.id(), "a retried booking is not a double booking");
    app.stop().await;
}

async fn an_expired_key_may_be_used_for_a_new_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.get("/api/v1/auth/me", &app.admin_token).await.expect(200);
    let user_id: healthcore::testing::domain::UserId = me.body["user_id"].as_str().unwrap().parse().unwrap();
    let long_ago = chrono::Utc::now() - chrono::Duration::days(2);
    let stored = healthcore::testing::store::idempotency::StoredResource {
        fingerprint: "a different request".into(),
        body: "{}".into(),
    };
    let db = app.store.db();
    let expired = long_ago + chrono::Duration::days(1);
    assert!(
        healthcore::testing::store::idempotency::claim(db, user_id, "old-key", &stored.fingerprint, long_ago, expired)
            .await
            .unwrap()
    );
    assert!(healthcore::testing::store::idempotency::complete(db, user_id, "old-key", &stored, expired).await.unwrap());
    // A claim whose holder never finished (its process died) is given up when its lease ends.
    assert!(
        healthcore::testing::store::idempotency::claim(db, user_id, "abandoned", "another", long_ago, expired)
            .await
            .unwrap()
    );
    post_with_key(&app, &app.admin_token, "abandoned", patient_body("Alan", "Turing")).await.expect(201);
    let reply = post_with_key(&app, &app.admin_token, "old-key", patient_body("Ada", "Lovelace")).await.expect(201);
    assert_eq!(reply.header("idempotent-replayed"), None);
    let again = post_with_key(&app, &app.admin_token, "old-key", patient_body("Ada", "Lovelace")).await.expect(201);
    assert_eq!(again.id(), reply.id());
    app.stop().await;
}

async fn concurrent_retries_of_one_booking_all_get_the_stored_201(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let practitioner = app.create_practitioner("MD-1").await;
    let body = crate::helpers::booking(patient, practitioner, 48, 30);
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, url, token, body) =
            (app.client.clone(), app.url("/api/v1/appointments"), app.admin_token.clone(), body.clone());
        retries.spawn(async move {
            let sent = client.post(url).bearer_auth(token).header("idempotency-key", "booking-retry-1").json(&body);
            crate::helpers::Reply::from(sent.send().await.unwrap()).await
        });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(reply) = retries.join_next().await {
        let reply = reply.unwrap().expect(201);
        ids.insert(reply.id());
    }
    assert_eq!(ids.len(), 1, "every retry answers with the one appointment: {ids:?}");
    let listed = app.get(&format!("/api/v1/appointments?patient_id={patient}"), &app.admin_token).await.expect(200);
    assert_eq!(listed.body["page"]["total"], 1);
    app.stop().await;
}

on_both_backends!(
    concurrent_retries_of_one_booking_all_get_the_stored_201,
    the_same_key_and_body_replays_the_first_response,
    the_same_key_with_another_body_is_422,
    keys_belong_to_their_user,
    a_failed_request_does_not_consume_its_key,
    booking_and_practitioner_creation_honour_keys_too,
    an_expired_key_may_be_used_for_a_new_request,
);
