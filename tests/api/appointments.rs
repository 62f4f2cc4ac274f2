use chrono::{Duration, DurationRound, Utc};
use healthcore::testing::events::EventType;
use healthcore::testing::store::outbox;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{APPOINTMENT_INSERT, Backend, RUNS, TableReads, TestApp, booking, stored_appointment, uuid_array};
use crate::on_both_backends;

struct Scene {
    app: TestApp,
    patient: Uuid,
    practitioner: Uuid,
}

async fn scene(backend: Backend) -> Scene {
    let app = TestApp::spawn(backend).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let practitioner = app.create_practitioner("MD-1").await;
    Scene { app, patient, practitioner }
}

async fn started_appointment(scene: &Scene) -> Uuid {
    scene.app.started_appointment(scene.patient, scene.practitioner, 1).await
}

async fn a_booking_carries_its_times_and_starts_booked(backend: Backend) {
    let s = scene(backend).await;
    let body = booking(s.patient, s.practitioner, 24, 30);
    let reply = s.app.post("/api/v1/appointments", &s.app.admin_token, body.clone()).await.expect(201);
    assert_eq!(reply.body["status"], "booked");
    let start: chrono::DateTime<Utc> = reply.body["start"].as_str().unwrap().parse().unwrap();
    let sent: chrono::DateTime<Utc> = body["start"].as_str().unwrap().parse().unwrap();
    assert_eq!(start, sent);
    let read = s.app.get(&format!("/api/v1/appointments/{}", reply.id()), &s.app.admin_token).await.expect(200);
    assert_eq!(read.body, reply.body);
    s.app.stop().await;
}

async fn overlapping_bookings_of_a_practitioner_or_a_patient_are_409(backend: Backend) {
    let s = scene(backend).await;
    let token = &s.app.admin_token;
    s.app.post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 24, 60)).await.expect(201);
    // Same practitioner, another patient, overlapping.
    let other_patient = s.app.create_patient("Alan", "Turing").await;
    let mut clash = booking(other_patient, s.practitioner, 24, 30);
    s.app.post("/api/v1/appointments", token, clash.clone()).await.expect_problem(409, "double-booking");
    // Same patient, another practitioner, overlapping.
    let other_practitioner = s.app.create_practitioner("MD-2").await;
    clash = booking(s.patient, other_practitioner, 24, 30);
    let refused = s.app.post("/api/v1/appointments", token, clash).await.expect_problem(409, "double-booking");
    assert!(refused.body["detail"].as_str().unwrap().starts_with("the patient"), "{:?}", refused.body);
    // Both, overlapping: the practitioner is named, as the check under locks names them.
    clash = booking(s.patient, s.practitioner, 24, 30);
    let refused = s.app.post("/api/v1/appointments", token, clash).await.expect_problem(409, "double-booking");
    assert!(refused.body["detail"].as_str().unwrap().starts_with("the practitioner"), "{:?}", refused.body);
    // Back to back is fine.
    s.app.post("/api/v1/appointments", token, booking(other_patient, s.practitioner, 25, 30)).await.expect(201);
    let all = s.app.get("/api/v1/appointments", token).await.expect(200);
    assert_eq!(all.body["page"]["total"], 2);
    // A booking's record and event are written in the statement that inserts it unless it clashes
    // (`UnitOfWork::insert_last`): the refused ones are rolled back with it.
    let booked = s.app.audit_events("action=appointment.book&outcome=success").await;
    assert_eq!(booked.len(), 2, "only the two bookings made are recorded as made: {booked:?}");
    let events = outbox::after(s.app.store.db(), 0, 100).await.unwrap();
    let bookings = events.iter().filter(|e| e.envelope.event_type == EventType::AppointmentBooked);
    assert_eq!(bookings.count(), 2, "only the two bookings made have events");
    s.app.stop().await;
}

/// Booked appointments of one participant never overlap, however they are written: the database
/// refuses a row written past the API that overlaps another of its practitioner's or patient's
/// (migration 21), on insert and on update, naming the participant, and takes one that starts as
/// the other ends, or one that is not booked.
async fn the_database_refuses_overlapping_bookings_written_past_the_api(backend: Backend) {
    use healthcore::testing::domain::{AppointmentStatus, TimeSlot};
    use healthcore::testing::store::appointments::{BookingRefused, Clash, booking_refused, insert, update};
    let s = scene(backend).await;
    let other_patient = s.app.create_patient("Grace", "Hopper").await;
    let other_practitioner = s.app.create_practitioner("MD-2").await;
    let db = s.app.store.db();
    let start = (Utc::now() + Duration::hours(48)).duration_trunc(Duration::hours(1)).unwrap();
    let minutes = Duration::minutes;
    let write = |patient, practitioner, from, status| stored_appointment(patient, practitioner, from, 30, status);
    insert(db, &write(s.patient, s.practitioner, start, AppointmentStatus::Booked)).await.unwrap();
    let refused = |err: sea_orm::DbErr| booking_refused(&err);
    let overlapping = write(other_patient, s.practitioner, start + minutes(15), AppointmentStatus::Booked);
    let err = insert(db, &overlapping).await.unwrap_err();
    assert_eq!(refused(err), Some(BookingRefused::Overlap(Clash::Practitioner)));
    let overlapping = write(s.patient, other_practitioner, start - minutes(15), AppointmentStatus::Booked);
    let err = insert(db, &overlapping).await.unwrap_err();
    assert_eq!(refused(err), Some(BookingRefused::Overlap(Clash::Patient)));
    // One that starts as the other ends, and one over it that is not booked.
    let mut next = write(other_patient, s.practitioner, start + minutes(30), AppointmentStatus::Booked);
    insert(db, &next).await.unwrap();
    insert(db, &write(s.patient, s.practitioner, start, AppointmentStatus::Completed)).await.unwrap();
    // Moved over the first: refused as well.
    next.reschedule(TimeSlot::new(start + minutes(20), start + minutes(50)).unwrap(), Utc::now()).unwrap();
    let err = update(db, &next).await.unwrap_err();
    assert_eq!(refused(err), Some(BookingRefused::Overlap(Clash::Practitioner)));
    let booked = s.app.get("/api/v1/appointments?status=booked", &s.app.admin_token).await.expect(200);
    assert_eq!(booked.body["page"]["total"], 2, "the first and the one after it");
    s.app.stop().await;
}

/// A booking the database refuses for its participant says which key, never the row: PostgreSQL
/// writes a refusal's detail into its own log, and a row refused by a `NOT NULL` column (how a
/// refused participant was first written) was given whole there, the visit's reason and notes
/// among it.
async fn a_refused_booking_tells_the_database_log_no_reason_or_notes(backend: Backend) {
    use healthcore::testing::domain::TimeSlot;
    use healthcore::testing::domain::appointment::StoredAppointment;
    use healthcore::testing::domain::{Appointment, AppointmentId, AppointmentStatus, PatientId, PractitionerId};
    use healthcore::testing::store::appointments::{BookingRefused, booking, booking_refused};
    use sea_orm::ConnectionTrait;
    let s = scene(backend).await;
    s.app.delete(&format!("/api/v1/patients/{}", s.patient), &s.app.admin_token).await.expect(200);
    let start = Utc::now() + Duration::hours(48);
    let (reason, notes) = ("REASON-FOR-THE-VISIT", "NOTES-ABOUT-THE-PATIENT");
    let appointment = Appointment::restore(StoredAppointment {
        id: AppointmentId::generate(),
        patient_id: PatientId::from_uuid(s.patient),
        practitioner_id: PractitionerId::from_uuid(s.practitioner),
        slot: TimeSlot::new(start, start + Duration::minutes(30)).unwrap(),
        reason: reason.into(),
        notes: Some(notes.into()),
        status: AppointmentStatus::Booked,
        cancellation_reason: None,
        version: 1,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    });
    let err = s.app.store.db().execute(&booking(&appointment).unwrap()).await.unwrap_err();
    assert_eq!(booking_refused(&err), Some(BookingRefused::Participant), "{err:?}");
    let told = format!("{err:?}");
    assert!(!told.contains(reason) && !told.contains(notes), "the refusal carries the row: {told}");
    s.app.stop().await;
}

async fn booking_rules_on_times_are_field_errors(backend: Backend) {
    let s = scene(backend).await;
    let token = &s.app.admin_token;
    let past = booking(s.patient, s.practitioner, -2, 30);
    let reply = s.app.post("/api/v1/appointments", token, past).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("start".to_owned(), "in_future".to_owned())]);
    let too_long = booking(s.patient, s.practitioner, 24, 8 * 60 + 1);
    let reply = s.app.post("/api/v1/appointments", token, too_long).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("end".to_owned(), "max_duration".to_owned())]);
    let backwards = booking(s.patient, s.practitioner, 24, -30);
    let reply = s.app.post("/api/v1/appointments", token, backwards).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("end".to_owned(), "after_start".to_owned())]);
    let mut unknown = booking(Uuid::now_v7(), s.practitioner, 24, 30);
    let reply = s.app.post("/api/v1/appointments", token, unknown.clone()).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("patient_id".to_owned(), "exists".to_owned())]);
    unknown["reason"] = json!("");
    s.app.post("/api/v1/appointments", token, unknown).await.expect_problem(422, "validation");
    s.app.stop().await;
}

async fn inactive_participants_cannot_be_booked(backend: Backend) {
    let s = scene(backend).await;
    let token = &s.app.admin_token;
    s.app.delete(&format!("/api/v1/practitioners/{}", s.practitioner), token).await.expect(200);
    s.app
        .post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 24, 30))
        .await
        .expect_problem(409, "inactive-practitioner");
    let practitioner = s.app.create_practitioner("MD-9").await;
    s.app.delete(&format!("/api/v1/patients/{}", s.patient), token).await.expect(200);
    s.app
        .post("/api/v1/appointments", token, booking(s.patient, practitioner, 24, 30))
        .await
        .expect_problem(409, "inactive-patient");
    s.app.stop().await;
}

async fn deactivating_a_patient_cancels_only_future_booked_appointments(backend: Backend) {
    let s = scene(backend).await;
    let token = &s.app.admin_token;
    let future =
        s.app.post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 48, 30)).await.expect(201).id();
    let started = started_appointment(&s).await;
    s.app.delete(&format!("/api/v1/patients/{}", s.patient), token).await.expect(200);
    let future = s.app.get(&format!("/api/v1/appointments/{future}"), token).await.expect(200);
    assert_eq!(future.body["status"], "cancelled");
    assert_eq!(future.body["cancellation_reason"], "patient deactivated");
    let started = s.app.get(&format!("/api/v1/appointments/{started}"), token).await.expect(200);
    assert_eq!(started.body["status"], "booked");
    s.app.stop().await;
}

async fn deactivating_a_practitioner_cancels_their_future_booked_appointments(backend: Backend) {
    let s = scene(backend).await;
    let token = &s.app.admin_token;
    let other = s.app.create_patient("Alan", "Turing").await;
    let first =
        s.app.post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 24, 30)).await.expect(201).id();
    let second =
        s.app.post("/api/v1/appointments", token, booking(other, s.practitioner, 48, 30)).await.expect(201).id();
    s.app.delete(&format!("/api/v1/practitioners/{}", s.practitioner), token).await.expect(200);
    for id in [first, second] {
        let read = s.app.get(&format!("/api/v1/appointments/{id}"), token).await.expect(200);
        assert_eq!(read.body["status"], "cancelled");
        assert_eq!(read.body["cancellation_reason"], "practitioner deactivated");
    }
    let cancels = s.app.audit_events("action=appointment.cancel").await;
    assert_eq!(cancels.len(), 2, "each cancellation is audited");
    s.app.stop().await;
}

async fn cancelling_needs_a_reason_and_is_final(backend: Backend) {
    let s = scene(backend).await;
    let token = &s.app.admin_token;
    let id =
        s.app.post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 24, 30)).await.expect(201).id();
    let path = format!("/api/v1/appointments/{id}/cancel");
    let reply = s.app.post(&path, token, json!({})).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("reason".to_owned(), "required".to_owned())]);
    let cancelled = s.app.post(&path, token, json!({"reason": "patient is travelling"})).await.expect(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["version"], 2);
    s.app.post(&path, token, json!({"reason": "again"})).await.expect_problem(409, "invalid-transition");
    s.app
        .post(&format!("/api/v1/appointments/{id}/complete"), token, json!({}))
        .await
        .expect_problem(409, "invalid-transition");
    // The slot is free again.
    s.app.post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 24, 30)).await.expect(201);
    s.app.stop().await;
}

async fn completion_and_no_show_wait_for_the_start_time(backend: Backend) {
    let s = scene(backend).await;
    let token = &s.app.admin_token;
    let future =
        s.app.post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 24, 30)).await.expect(201).id();
    s.app
        .post(&format!("/api/v1/appointments/{future}/complete"), token, json!({}))
        .await
        .expect_problem(409, "invalid-transition");
    s.app
        .post(&format!("/api/v1/appointments/{future}/no-show"), token, json!({}))
        .await
        .expect_problem(409, "invalid-transition");
    let started = started_appointment(&s).await;
    let done = s.app.post(&format!("/api/v1/appointments/{started}/complete"), token, json!({})).await.expect(200);
    assert_eq!(done.body["status"], "completed");
    s.app
        .post(&format!("/api/v1/appointments/{started}/no-show"), token, json!({}))
        .await
        .expect_problem(409, "invalid-transition");
    s.app.stop().await;
}

async fn once_the_clock_passes_its_start_an_appointment_can_be_completed(backend: Backend) {
    let s = scene(backend).await;
    let token = &s.app.admin_token;
    let id =
        s.app.post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 24, 30)).await.expect(201).id();
    let complete = format!("/api/v1/appointments/{id}/complete");
    s.app.post(&complete, token, json!({})).await.expect_problem(409, "invalid-transition");
    s.app.clock.advance(chrono::Duration::hours(25));
    let done = s.app.post(&complete, token, json!({})).await.expect(200);
    assert_eq!(done.body["status"], "completed");
    // The audit record and the event of the completion are stamped by the same clock.
    let records = s.app.audit_events(&format!("action=appointment.complete&patient_id={}", s.patient)).await;
    let stamped: chrono::DateTime<Utc> = records[0]["occurred_at"].as_str().unwrap().parse().unwrap();
    assert!(stamped > Utc::now() + chrono::Duration::hours(24), "{stamped}");
    s.app.stop().await;
}

async fn rescheduling_moves_the_slot_under_the_same_overlap_rules(backend: Backend) {
    let s = scene(backend).await;
    let token = &s.app.admin_token;
    let first =
        s.app.post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 24, 30)).await.expect(201).id();
    let other = s.app.create_patient("Alan", "Turing").await;
    s.app.post("/api/v1/appointments", token, booking(other, s.practitioner, 30, 60)).await.expect(201);
    let path = format!("/api/v1/appointments/{first}/reschedule");
    let onto_other = booking(s.patient, s.practitioner, 30, 30);
    let times = json!({"start": onto_other["start"], "end": onto_other["end"]});
    s.app.post(&path, token, times).await.expect_problem(409, "double-booking");
    // Moving within its own slot does not clash with itself.
    let later = booking(s.patient, s.practitioner, 24, 45);
    let moved = s.app.post(&path, token, json!({"start": later["start"], "end": later["end"]})).await.expect(200);
    assert_eq!(moved.body["version"], 2);
    assert_eq!(
        moved.body["end"].as_str().unwrap().parse::<chrono::DateTime<Utc>>().unwrap(),
        later["end"].as_str().unwrap().parse::<chrono::DateTime<Utc>>().unwrap()
    );
    s.app.stop().await;
}

async fn appointment_lists_filter_by_status_participant_and_time(backend: Backend) {
    let s = scene(backend).await;
    let token = &s.app.admin_token;
    let a =
        s.app.post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 24, 30)).await.expect(201).id();
    s.app.post("/api/v1/appointments", token, booking(s.patient, s.practitioner, 72, 30)).await.expect(201);
    s.app.post(&format!("/api/v1/appointments/{a}/cancel"), token, json!({"reason": "x"})).await.expect(200);
    let booked = s.app.get("/api/v1/appointments?status=booked", token).await.expect(200);
    assert_eq!(booked.body["page"]["total"], 1);
    let soon = (Utc::now() + Duration::hours(48)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let before = s.app.get(&format!("/api/v1/appointments?to={soon}"), token).await.expect(200);
    assert_eq!(before.body["page"]["total"], 1);
    assert_eq!(before.body["items"][0]["id"], a.to_string());
    let mine = s
        .app
        .get(&format!("/api/v1/appointments?patient_id={}&practitioner_id={}", s.patient, s.practitioner), token)
        .await
        .expect(200);
    assert_eq!(mine.body["page"]["total"], 2);
    let reply =
        s.app.get("/api/v1/appointments?from=yesterday&status=done", token).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors().len(), 2);
    s.app.stop().await;
}

on_both_backends!(
    a_booking_carries_its_times_and_starts_booked,
    overlapping_bookings_of_a_practitioner_or_a_patient_are_409,
    the_database_refuses_overlapping_bookings_written_past_the_api,
    a_refused_booking_tells_the_database_log_no_reason_or_notes,
    booking_rules_on_times_are_field_errors,
    inactive_participants_cannot_be_booked,
    deactivating_a_patient_cancels_only_future_booked_appointments,
    deactivating_a_practitioner_cancels_their_future_booked_appointments,
    cancelling_needs_a_reason_and_is_final,
    completion_and_no_show_wait_for_the_start_time,
    once_the_clock_passes_its_start_an_appointment_can_be_completed,
    rescheduling_moves_the_slot_under_the_same_overlap_rules,
    appointment_lists_filter_by_status_participant_and_time,
);

/// Ten patients and ten practitioners: the sixth of each books in the overlap tests below, the
/// others crowd around their slot (`crowd_around`).
async fn ten_of_each(app: &TestApp) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut patients = Vec::new();
    let mut practitioners = Vec::new();
    for n in 0..10 {
        patients.push(app.create_patient("Ada", &format!("Lovelace{n}")).await);
        practitioners.push(app.create_practitioner(&format!("MD-{n}")).await);
    }
    (patients, practitioners)
}

/// The nine of `ten_of_each` who do not book in the overlap tests.
fn the_other_nine(ids: &[Uuid]) -> Vec<Uuid> {
    [&ids[..5], &ids[6..]].concat()
}

/// A thousand bookings of the other nine of each (`ten_of_each`) in the seven hours up to and
/// around `slot_start`, written with SQL; with `far_one`, one more four years ahead. Each lasts a
/// minute, at a minute of its own for its two participants: the database refuses overlapping
/// bookings of one participant (migration 21).
async fn crowd_around(app: &TestApp, patients: &[Uuid], practitioners: &[Uuid], slot_start: &str, far_one: bool) {
    let first = if far_one { 0 } else { 1 };
    app.store
        .db_execute(&format!(
            "{APPOINTMENT_INSERT} SELECT gen_random_uuid(), ({patients})[1 + g % 9], ({practitioners})[1 + g % 9], s, \
             s + interval '1 minute', 'crowd', NULL, 'booked', NULL, 1, now(), now() \
             FROM generate_series({first}, 1000) g, LATERAL (SELECT CASE WHEN g = 0 THEN now() + interval '4 years' \
             ELSE '{slot_start}'::timestamptz - interval '7 hours' + interval '1 minute' * (g % 440) END AS s) slot",
            patients = uuid_array(&the_other_nine(patients)),
            practitioners = uuid_array(&the_other_nine(practitioners)),
        ))
        .await
        .unwrap();
}

/// Books the slot of `body` (48 hours ahead) and `RUNS - 1` more, an hour apart, of `patient` with
/// `practitioner`; returns the rows of appointments read per booking since `before`, and the reads
/// as they then stand.
async fn overlap_check_reads(
    app: &TestApp,
    patient: Uuid,
    practitioner: Uuid,
    body: serde_json::Value,
    before: &TableReads,
) -> (i64, TableReads) {
    app.post("/api/v1/appointments", &app.admin_token, body).await.expect(201);
    for hours in 49..(48 + RUNS) {
        let later = booking(patient, practitioner, hours, 30);
        app.post("/api/v1/appointments", &app.admin_token, later).await.expect(201);
    }
    let what = "the overlap checks' reads to be reported";
    let after = app.table_reads_once(what, "appointments", |now| now.inserted >= before.inserted + RUNS).await;
    ((after.rows - before.rows) / RUNS, after)
}

/// Lists `practitioner`'s calendar of the eight hours up to `slot_start` and one after (the booked
/// ones, counted) `RUNS` times, where `overlap_check_reads` booked one; returns the rows of
/// appointments read per list since `before`.
async fn calendar_reads(app: &TestApp, practitioner: Uuid, slot_start: &str, before: &TableReads) -> i64 {
    let slot_start: chrono::DateTime<Utc> = slot_start.parse().unwrap();
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (from, to) = (time(slot_start - Duration::hours(7)), time(slot_start + Duration::hours(1)));
    let path = format!("/api/v1/appointments?practitioner_id={practitioner}&status=booked&from={from}&to={to}");
    for _ in 0..RUNS {
        let listed = app.get(&path, &app.admin_token).await.expect(200);
        assert_eq!(listed.body["page"]["total"], 1, "the practitioner's one booking in the window");
    }
    let what = "the calendars' reads (their counts and their pages) to be reported";
    let after = app.table_reads_once(what, "appointments", |now| now.scans >= before.scans + 2 * RUNS).await;
    (after.rows - before.rows) / RUNS
}

/// The scene of the overlap tests: a server with two connections (so that the checks and lists
/// run more than five times on each, planned then for any values), `ten_of_each`, the slot the
/// sixth of each books (48 hours ahead), and the reads of appointments before anything was written.
struct WindowScene {
    app: TestApp,
    patients: Vec<Uuid>,
    practitioners: Vec<Uuid>,
    body: serde_json::Value,
    slot_start: String,
    start: TableReads,
}

impl WindowScene {
    async fn new() -> WindowScene {
        let app = TestApp::spawn_with(Backend::Postgres, &[("HEALTHCORE_DB_MAX_CONNECTIONS", "2")]).await;
        let (patients, practitioners) = ten_of_each(&app).await;
        let body = booking(patients[5], practitioners[5], 48, 30);
        let slot_start = body["start"].as_str().unwrap().to_owned();
        let start = app.table_reads("appointments").await;
        WindowScene { app, patients, practitioners, body, slot_start, start }
    }
}

/// Books the scene's slot, `body` (`overlap_check_reads`) and lists the practitioner's calendar around it
/// (`calendar_reads`) with the reads as they stood at `before`; each must read the two
/// participants' own bookings in the window alone (at most 20 rows), then the server stops.
async fn assert_the_participants_window_alone_is_read(
    app: TestApp,
    patients: &[Uuid],
    practitioners: &[Uuid],
    body: serde_json::Value,
    before: &TableReads,
) {
    let slot_start = body["start"].as_str().unwrap().to_owned();
    let (read, after) = overlap_check_reads(&app, patients[5], practitioners[5], body, before).await;
    assert!(read <= 20, "an overlap check read {read} rows: the window's bookings of others, not the two's own");
    let read = calendar_reads(&app, practitioners[5], &slot_start, &after).await;
    assert!(read <= 20, "a practitioner's calendar read {read} rows: the window's bookings of others");
    app.stop().await;
}

/// The overlap check and a practitioner's calendar read the two participants' bookings in the
/// window, never their histories, and no one else's, with statistics that lag behind the future
/// (as old as the last `ANALYZE`, and bookings keep landing beyond it) — the state of a hospital's
/// database between two of autovacuum's. A window of the future then looks all but empty, and the
/// planner read it through an index on start time, every practitioner's bookings in those eight
/// hours (a thousand here; 1,700 a booking at `scripts/bench-scale`'s size). Written as pairs of
/// (participant, start), which PostgreSQL estimates by the participant alone, the check scanned the
/// whole table at five million appointments, and from a statement's sixth run on a connection
/// (planned then for any values) at any size. Two connections, so that the checks and lists below
/// run that often on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overlap_check_reads_the_participants_window_with_statistics_older_than_it() {
    let WindowScene { app, patients, practitioners, body, slot_start, start } = WindowScene::new().await;
    // A past the statistics know: twenty thousand appointments of the ten, all before today, and
    // as many again of the two who book (in the middle of the ids, which are time-ordered).
    app.appointment_history(&patients, &practitioners, 20_000).await;
    app.appointment_history(&patients[5..6], &practitioners[5..6], 20_000).await;
    // A future they do not: a thousand bookings of the other nine around the slot, and one four
    // years ahead. The planner spreads what it does not know evenly up to the latest start it
    // finds in the index, so with one far booking any eight hours look all but empty.
    crowd_around(&app, &patients, &practitioners, &slot_start, true).await;
    let what = "the history and the crowd to be reported";
    let before = app.table_reads_once(what, "appointments", |now| now.inserted >= start.inserted + 41_001).await;
    assert_the_participants_window_alone_is_read(app, &patients, &practitioners, body, &before).await;
}

/// The same before PostgreSQL has any statistics of the table (a new database, one just loaded,
/// or one without autovacuum, as `scripts/bench` runs): every index able to read the window looks
/// like a row's read, and the planner chose by an index's height alone — for the check the index
/// on status and start time (850 rows a booking in the benchmark), for a calendar the same (2,002
/// rows among 21,000 bookings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overlap_check_reads_the_participants_window_before_any_statistics() {
    let WindowScene { app, patients, practitioners, body, slot_start, start } = WindowScene::new().await;
    // A thousand bookings of the other nine around the slot, twenty thousand more of theirs in the
    // weeks after it (enough to make an index on the status one level shallower than one led by
    // the status and the participant; a minute each, none overlapping another of its participants'),
    // and no statistics of them.
    crowd_around(&app, &patients, &practitioners, &slot_start, false).await;
    app.store
        .db_execute(&format!(
            "{APPOINTMENT_INSERT} SELECT gen_random_uuid(), ({patients})[1 + g % 9], ({practitioners})[1 + g % 9], s, \
             s + interval '1 minute', 'later', NULL, 'booked', NULL, 1, now(), now() \
             FROM generate_series(1, 20000) g, \
             LATERAL (SELECT '{slot_start}'::timestamptz + interval '1 day' + interval '1 minute' * g AS s) slot",
            patients = uuid_array(&the_other_nine(&patients)),
            practitioners = uuid_array(&the_other_nine(&practitioners)),
        ))
        .await
        .unwrap();
    let never_analyzed = "SELECT count(*) FROM pg_stats WHERE tablename = 'appointments'";
    assert_eq!(app.postgres_number(never_analyzed).await, 0, "the table has no statistics yet");
    let what = "the crowd to be reported";
    let before = app.table_reads_once(what, "appointments", |now| now.inserted >= start.inserted + 21_000).await;
    assert_the_participants_window_alone_is_read(app, &patients, &practitioners, body, &before).await;
}

/// The same once the statistics know the window's crowd (`ANALYZE` after it, as autovacuum would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overlap_check_reads_the_participants_window_with_current_statistics() {
    let WindowScene { app, patients, practitioners, body, slot_start, start } = WindowScene::new().await;
    crowd_around(&app, &patients, &practitioners, &slot_start, true).await;
    app.store.db_execute("ANALYZE appointments").await.unwrap();
    let what = "the crowd to be reported";
    let before = app.table_reads_once(what, "appointments", |now| now.inserted >= start.inserted + 1_001).await;
    assert_the_participants_window_alone_is_read(app, &patients, &practitioners, body, &before).await;
}

/// A practitioner's list over years (`?practitioner_id=…&to=…`): with the time bounds written as
/// pairs of (participant, start) (since withdrawn), PostgreSQL fetched and sorted every match for a
/// page (a practitioner's 91,000 past appointments: 1.5 to 7 seconds). With the equality and plain
/// bounds the page is read in the index's order and stops after its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participants_list_over_years_reads_its_page_not_every_match() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let patient = app.create_patient("Ada", "Years").await;
    let practitioner = app.create_practitioner("MD-YEARS").await;
    let start = app.table_reads("appointments").await;
    app.appointment_history(&[patient], &[practitioner], 20_000).await;
    let what = "the history to be reported";
    let before = app.table_reads_once(what, "appointments", |now| now.inserted >= start.inserted + 20_000).await;

    let to = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let path = format!("/api/v1/appointments?practitioner_id={practitioner}&to={to}&limit=20");
    let listed = app.get(&path, &app.admin_token).await.expect(200);
    assert_eq!((&listed.body["page"]["total"], &listed.body["page"]["total_is_exact"]), (&json!(1_000), &json!(false)));
    let what = "the list's reads (its count and its page) to be reported";
    let after = app.table_reads_once(what, "appointments", |now| now.scans >= before.scans + 2).await;
    // The count stops at its bound (1,001 rows at most: it counted 10,001 before, and the list's
    // cost grew with the history up to there); the page must add its twenty, not every match.
    let read = after.rows - before.rows;
    assert!(read < 1_100, "counting and a page of the practitioner's 20,000 appointments fetched {read} rows");
    app.stop().await;
}

/// A practitioner's day in the past (`?practitioner_id=…&from=…&to=…`), among other practitioners'
/// histories. The day's bounds are pairs of (practitioner, start), which PostgreSQL estimates by
/// the practitioner alone; ids are time-ordered (UUIDv7), so for a practitioner in the middle a day
/// looked like a quarter of the table, and with the page ordered by start time alone the planner
/// walked the index on start time from the oldest appointment expecting twenty soon — five million
/// appointments read for a day at `scripts/bench-scale`'s size (503). The page is now in the order
/// of the practitioner's index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practitioners_day_reads_the_day_not_everyones_history_before_it() {
    // Two connections, so that the list runs more than five times on each (planned then for any
    // values).
    let app = TestApp::spawn_with(Backend::Postgres, &[("HEALTHCORE_DB_MAX_CONNECTIONS", "2")]).await;
    let mut patients = Vec::new();
    let mut practitioners = Vec::new();
    for n in 0..10 {
        patients.push(app.create_patient("Ada", &format!("Day{n}")).await);
        practitioners.push(app.create_practitioner(&format!("MD-DAY-{n}")).await);
    }
    let start = app.table_reads("appointments").await;
    app.appointment_history(&patients, &practitioners, 20_000).await;
    let what = "the history to be reported";
    let before = app.table_reads_once(what, "appointments", |now| now.inserted >= start.inserted + 20_000).await;

    let day = Utc::now() - Duration::days(3);
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (from, to) = (time(day), time(day + Duration::days(1)));
    let path = format!("/api/v1/appointments?practitioner_id={}&from={from}&to={to}", practitioners[5]);
    let mut total = 0;
    for _ in 0..RUNS {
        let listed = app.get(&path, &app.admin_token).await.expect(200);
        total = listed.body["page"]["total"].as_u64().unwrap();
        assert!((4..=6).contains(&total), "a practitioner's day of the history holds about five: {total}");
    }
    let what = "the days' reads (their counts and their pages) to be reported";
    let after = app.table_reads_once(what, "appointments", |now| now.scans >= before.scans + 2 * RUNS).await;
    let read = (after.rows - before.rows) / RUNS;
    assert!(read < 1_000, "a practitioner's day of {total} appointments read {read} of 20,000 rows");
    app.stop().await;
}

/// A practitioner's bookings (`?practitioner_id=…&status=booked`, with no window or from now on)
/// in start-time order: PostgreSQL walked the practitioner's index from their first appointment,
/// fetching each to test its status, and the booked ones lie at its far end — with 100,000
/// appointments of one practitioner the list ran past the statement timeout and answered 503.
/// They are now a range of the practitioner's booked index (migration 19); and not a range of the
/// index on status alone, which holds every practitioner's bookings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practitioners_bookings_read_the_bookings_not_the_history_before_them() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let mut patients = Vec::new();
    let mut practitioners = Vec::new();
    for n in 0..4 {
        patients.push(app.create_patient("Ada", &format!("Upcoming{n}")).await);
        practitioners.push(app.create_practitioner(&format!("MD-UPCOMING-{n}")).await);
    }
    let start = app.table_reads("appointments").await;
    app.appointment_history(&patients[..1], &practitioners[..1], 20_000).await;
    // Three upcoming bookings of the practitioner, and a crowd of the others' (one four years
    // ahead, which makes any window of the future look all but empty to the statistics; a minute
    // each, none overlapping another of its participants').
    app.upcoming_bookings(patients[0], practitioners[0], 3).await;
    app.store
        .db_execute(&format!(
            "{APPOINTMENT_INSERT} SELECT gen_random_uuid(), ({patients})[1 + g % 3], ({practitioners})[1 + g % 3], s, \
             s + interval '1 minute', 'crowd', NULL, 'booked', NULL, 1, now(), now() \
             FROM generate_series(0, 3000) g, LATERAL (SELECT CASE WHEN g = 0 THEN now() + interval '4 years' \
             ELSE now() + interval '1 hour' + interval '1 minute' * g END AS s) slot",
            patients = uuid_array(&patients[1..]),
            practitioners = uuid_array(&practitioners[1..]),
        ))
        .await
        .unwrap();
    let what = "the history and the bookings to be reported";
    let mut before = app.table_reads_once(what, "appointments", |now| now.inserted >= start.inserted + 23_004).await;

    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for window in [String::new(), format!("&from={now}")] {
        let path = format!("/api/v1/appointments?practitioner_id={}&status=booked&limit=2{window}", practitioners[0]);
        let listed = app.get(&path, &app.admin_token).await.expect(200);
        assert_eq!(listed.body["page"]["total"], 3, "{path}");
        assert_eq!(listed.body["items"].as_array().unwrap().len(), 2, "{path}");
        let what = "the list's reads (its count and its page) to be reported";
        let after = app.table_reads_once(what, "appointments", |now| now.scans >= before.scans + 2).await;
        let read = after.rows - before.rows;
        assert!(read < 500, "{path} read {read} rows for the practitioner's three bookings");
        before = after;
    }
    app.stop().await;
}

/// A list by status alone (`?status=booked`, the upcoming appointments) in start-time order:
/// PostgreSQL walked the index on start time from the oldest appointment, testing each, and the
/// booked ones lie at its far end — with five million appointments the list ran past the statement
/// timeout and answered 503. They are now a range of the index on status and start time. And once
/// the lists of a common status (`?status=cancelled`, an eighth of the history here, a tenth at
/// `scripts/bench-scale`'s size) had run on a connection beside them, the count's statement was
/// planned for any status: a sequential scan that stops at the bound's row, which for the few
/// booked ones read the whole table (at five million appointments, p99 1.2 s and a 503). Two
/// connections, so that the lists run more than five times on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_by_status_reads_the_matches_not_the_history_before_them() {
    let app = TestApp::spawn_with(Backend::Postgres, &[("HEALTHCORE_DB_MAX_CONNECTIONS", "2")]).await;
    let patient = app.create_patient("Ada", "Booked").await;
    let practitioner = app.create_practitioner("MD-STATUS").await;
    let start = app.table_reads("appointments").await;
    // A history of 100,000, every eighth half hour of it cancelled (more than the count's bound),
    // before the statistics are taken; then three upcoming bookings.
    app.store
        .db_execute(&format!(
            "{APPOINTMENT_INSERT} SELECT gen_random_uuid(), '{patient}', '{practitioner}', s, s + interval '30 minutes', \
             'history', NULL, CASE WHEN g % 8 = 0 THEN 'cancelled' ELSE 'completed' END, NULL, 1, s, s \
             FROM generate_series(1, 100000) g, LATERAL (SELECT now() - interval '30 minutes' * g AS s) slot"
        ))
        .await
        .unwrap();
    app.store.db_execute("ANALYZE appointments").await.unwrap();
    app.upcoming_bookings(patient, practitioner, 3).await;
    let what = "the history and the bookings to be reported";
    let mut before = app.table_reads_once(what, "appointments", |now| now.inserted >= start.inserted + 100_003).await;

    let booked = "/api/v1/appointments?status=booked&limit=2";
    let listed = app.get(booked, &app.admin_token).await.expect(200);
    assert_eq!(listed.body["page"]["total"], 3);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    // Both statuses' lists, alternately, often enough on each connection for their statements to
    // be planned for any values; then the booked ones' reads alone. A connection reports its reads
    // when it goes idle, and the server's jobs read the table too, so a cancelled list's 1,000
    // rows can still land after the fence: the booked lists are many, and the bound is a tenth of
    // the table, which a plan that reads it whole exceeds eightfold.
    for _ in 0..RUNS / 2 {
        app.get("/api/v1/appointments?status=cancelled&limit=2", &app.admin_token).await.expect(200);
        app.get(booked, &app.admin_token).await.expect(200);
    }
    let what = "the lists' reads to be reported";
    before = app.table_reads_once(what, "appointments", |now| now.scans >= before.scans + 2 * (RUNS + 1)).await;
    let lists = 4 * RUNS;
    for _ in 0..lists {
        let listed = app.get(booked, &app.admin_token).await.expect(200);
        assert_eq!(listed.body["page"]["total"], 3);
    }
    let what = "the booked lists' reads (their counts and their pages) to be reported";
    let after = app.table_reads_once(what, "appointments", |now| now.scans >= before.scans + 2 * lists).await;
    let read = (after.rows - before.rows) / lists;
    assert!(read < 10_000, "listing the three booked appointments read {read} of 100,003 rows");
    app.stop().await;
}
