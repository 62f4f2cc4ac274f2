//! Races fought over real sockets: many requests in flight at once against one server.

use futures_like::join_all;
use serde_json::json;

use crate::helpers::{Backend, TestApp, booking};
use crate::on_both_backends;

mod futures_like {
    /// Awaits every future concurrently on the runtime (each as its own task).
    pub async fn join_all<F, T>(futures: Vec<F>) -> Vec<T>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut results = Vec::with_capacity(handles.len());
        for handle in handles {
            results.push(handle.await.expect("the request task does not panic"));
        }
        results
    }
}

const RACERS: usize = 12;

async fn of_simultaneous_overlapping_bookings_exactly_one_wins(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let practitioner = app.create_practitioner("MD-1").await;
    let mut patients = Vec::new();
    for i in 0..RACERS {
        patients.push(app.create_patient("Racer", &format!("Number{i}")).await);
    }
    // Every request wants the same practitioner at overlapping times, for a different patient.
    let requests = patients
        .iter()
        .enumerate()
        .map(|(i, patient)| {
            let app = app.clone();
            let body = booking(*patient, practitioner, 24, 30 + i as i64);
            async move { app.post("/api/v1/appointments", &app.admin_token, body).await.status.as_u16() }
        })
        .collect();
    let mut statuses = join_all(requests).await;
    statuses.sort();
    let mut expected = vec![409; RACERS - 1];
    expected.insert(0, 201);
    assert_eq!(statuses, expected);
    let booked = app.get("/api/v1/appointments?status=booked", &app.admin_token).await.expect(200);
    assert_eq!(booked.body["page"]["total"], 1);
    std::sync::Arc::into_inner(app).expect("all requests finished").stop().await;
}

async fn of_simultaneous_bookings_for_one_patient_exactly_one_wins(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let patient = app.create_patient("Ada", "Lovelace").await;
    let mut practitioners = Vec::new();
    for i in 0..RACERS {
        practitioners.push(app.create_practitioner(&format!("MD-{i}")).await);
    }
    let requests = practitioners
        .iter()
        .map(|practitioner| {
            let app = app.clone();
            let body = booking(patient, *practitioner, 24, 30);
            async move { app.post("/api/v1/appointments", &app.admin_token, body).await.status.as_u16() }
        })
        .collect();
    let statuses = join_all(requests).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), RACERS - 1, "{statuses:?}");
    std::sync::Arc::into_inner(app).expect("all requests finished").stop().await;
}

/// Rounds of `a_booking_racing_a_deactivation_never_outlives_it`.
const DEACTIVATION_ROUNDS: usize = 6;

/// Bookings of a participant racing its deactivation either commit before it (and are cancelled
/// with its other future bookings) or find it inactive (409): no booked appointment of an inactive
/// participant is left behind. A booking by staff is one statement that reads the two rows locked
/// for share; read from the statement's snapshot alone, a deactivation committed while it waited
/// would go unseen. Each round races a new patient and practitioner, deactivating one of them.
async fn a_booking_racing_a_deactivation_never_outlives_it(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    for round in 0..DEACTIVATION_ROUNDS {
        let patient = app.create_patient("Racer", &format!("Round{round}")).await;
        let practitioner = app.create_practitioner(&format!("MD-ROUND-{round}")).await;
        let deactivated = if round % 2 == 0 {
            format!("/api/v1/patients/{patient}")
        } else {
            format!("/api/v1/practitioners/{practitioner}")
        };
        let mut requests: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = u16> + Send>>> = (0..RACERS)
            .map(|i| {
                let app = app.clone();
                let body = booking(patient, practitioner, 24 + i as i64, 30);
                Box::pin(async move { app.post("/api/v1/appointments", &app.admin_token, body).await.status.as_u16() })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = u16> + Send>>
            })
            .collect();
        let deactivation = {
            let app = app.clone();
            Box::pin(async move { app.delete(&deactivated, &app.admin_token).await.status.as_u16() })
        };
        requests.insert(RACERS / 2, deactivation);
        let statuses = join_all(requests).await;
        assert_eq!(statuses[RACERS / 2], 200, "the deactivation: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 201 || *s == 409 || *s == 200), "{statuses:?}");
        let path = format!("/api/v1/appointments?patient_id={patient}&status=booked");
        let left = app.get(&path, &app.admin_token).await.expect(200);
        assert_eq!(left.body["page"]["total"], 0, "round {round}: booked after the deactivation: {statuses:?}");
    }
    std::sync::Arc::into_inner(app).expect("all requests finished").stop().await;
}

async fn of_simultaneous_updates_from_one_version_exactly_one_applies(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let id = app.create_patient("Ada", "Lovelace").await;
    let requests = (0..RACERS)
        .map(|i| {
            let app = app.clone();
            async move {
                app.call_with(
                    reqwest::Method::PATCH,
                    &format!("/api/v1/patients/{id}"),
                    Some(&app.admin_token),
                    Some(json!({"given_name": format!("Writer{i}")})),
                    &[("if-match", "\"1\"")],
                )
                .await
                .status
                .as_u16()
            }
        })
        .collect();
    let statuses = join_all(requests).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 412).count(), RACERS - 1, "{statuses:?}");
    let read = app.get(&format!("/api/v1/patients/{id}"), &app.admin_token).await.expect(200);
    assert_eq!(read.body["version"], 2);
    std::sync::Arc::into_inner(app).expect("all requests finished").stop().await;
}

/// An unfiltered list's total is the count the database keeps (`row_counts`), not a count of
/// rows: it stays equal to a count of the matches through concurrent registrations and removals.
async fn the_total_of_a_whole_list_stays_exact_through_concurrent_writes(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let registrations = (0..RACERS)
        .map(|n| {
            let app = app.clone();
            async move { app.create_patient("Count", &format!("Keeper{n}")).await }
        })
        .collect();
    let patients = join_all(registrations).await;
    let total = |query: &'static str| {
        let app = app.clone();
        async move { app.get(query, &app.admin_token).await.expect(200).body["page"]["total"].clone() }
    };
    assert_eq!(total("/api/v1/patients?limit=1").await, RACERS);
    assert_eq!(total("/api/v1/patients?limit=1&active=true").await, RACERS, "counted, not kept");
    let practitioner = app.create_practitioner("LIC-COUNT-1").await;
    let bookings = patients
        .iter()
        .enumerate()
        .map(|(n, patient)| {
            let app = app.clone();
            let body = booking(*patient, practitioner, 24 + n as i64, 30);
            async move { app.post("/api/v1/appointments", &app.admin_token, body).await.status.as_u16() }
        })
        .collect();
    assert_eq!(join_all(bookings).await, vec![201; RACERS]);
    assert_eq!(total("/api/v1/appointments?limit=1").await, RACERS);
    // HealthCore never deletes these rows itself; an operator's DELETE is counted all the same.
    let removed = app.store.db_execute("DELETE FROM appointments WHERE status = 'booked'").await.unwrap();
    assert_eq!(removed, RACERS as u64);
    assert_eq!(total("/api/v1/appointments?limit=1").await, 0);
    std::sync::Arc::into_inner(app).expect("all requests finished").stop().await;
}

on_both_backends!(
    the_total_of_a_whole_list_stays_exact_through_concurrent_writes,
    of_simultaneous_overlapping_bookings_exactly_one_wins,
    of_simultaneous_bookings_for_one_patient_exactly_one_wins,
    a_booking_racing_a_deactivation_never_outlives_it,
    of_simultaneous_updates_from_one_version_exactly_one_applies,
);
