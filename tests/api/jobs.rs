//! The background jobs, run the way the scheduler runs them: reminders once per appointment and
//! start, overdue appointments marked no-show with their events and audit records, each run once
//! across instances, and a failing run retried, recorded and counted.

use std::sync::Arc;

use healthcore::testing::jobs::{Job, RunOutcome, Scheduler};
use healthcore::testing::shutdown;
use healthcore::testing::store::outbox;
use serde_json::json;

use crate::helpers::{Backend, TestApp, booking, test_config};
use crate::on_both_backends;

/// The app without its own scheduler, so only the test's runs happen.
async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, &[("HEALTHCORE_JOB_RETRY_MS", "5")]).await
}

fn scheduler(app: &TestApp) -> Scheduler {
    let config = test_config(&app.database_url(), &[("HEALTHCORE_JOB_RETRY_MS", "5")]);
    Scheduler::new(app.store.clone(), Arc::new(config), app.metrics.clone())
}

async fn run(scheduler: &Scheduler, job: Job) -> RunOutcome {
    let (_stop, mut stopping) = shutdown::channel();
    scheduler.run_once(job, healthcore::testing::clock::now(), &mut stopping).await
}

async fn events_of(app: &TestApp, event_type: &str) -> Vec<healthcore::testing::events::Envelope> {
    outbox::after(app.store.db(), 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.envelope)
        .filter(|e| e.event_type.as_str() == event_type)
        .collect()
}

async fn reminders_go_out_once_per_appointment_and_start_time(backend: Backend) {
    let app = spawn(backend).await;
    let token = app.admin_token.clone();
    let practitioner = app.create_practitioner("LIC-REMIND").await;
    let patient = app.create_patient("Remind", "Me").await;
    let soon = app.post("/api/v1/appointments", &token, booking(patient, practitioner, 2, 30)).await.expect(201).id();
    app.post("/api/v1/appointments", &token, booking(patient, practitioner, 48, 30)).await.expect(201);
    let jobs = scheduler(&app);

    assert_eq!(run(&jobs, Job::AppointmentReminders).await, RunOutcome::Succeeded("1 reminders".into()));
    let reminders = events_of(&app, "appointment.reminder_due").await;
    assert_eq!(reminders.len(), 1);
    assert_eq!(reminders[0].data["appointment_id"], soon.to_string());
    assert_eq!((reminders[0].metadata.actor_id, reminders[0].metadata.actor_role.clone()), (None, None));
    assert!(reminders[0].metadata.correlation_id.starts_with("job-appointment_reminders-"));
    assert_eq!(run(&jobs, Job::AppointmentReminders).await, RunOutcome::Succeeded("0 reminders".into()));

    // Moved: the new start time gets its own reminder.
    let moved = booking(patient, practitioner, 3, 30);
    app.post(
        &format!("/api/v1/appointments/{soon}/reschedule"),
        &token,
        json!({"start": moved["start"], "end": moved["end"]}),
    )
    .await
    .expect(200);
    assert_eq!(run(&jobs, Job::AppointmentReminders).await, RunOutcome::Succeeded("1 reminders".into()));
    app.events_settled().await;
    let listed = app.get(&format!("/api/v1/notifications?appointment_id={soon}"), &token).await.expect(200);
    let kinds: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "appointment_reminder_due").count(), 2, "{kinds:?}");
    app.stop().await;
}

async fn overdue_booked_appointments_are_marked_no_show_with_event_and_audit(backend: Backend) {
    let app = spawn(backend).await;
    let practitioner = app.create_practitioner("LIC-NOSHOW").await;
    let patient = app.create_patient("No", "Show").await;
    let overdue = app.started_appointment(patient, practitioner, 30).await;
    let recent = app.started_appointment(patient, practitioner, 2).await;
    let jobs = scheduler(&app);

    assert_eq!(run(&jobs, Job::NoShowPastAppointments).await, RunOutcome::Succeeded("1 marked no_show".into()));
    let token = &app.admin_token;
    let marked = app.get(&format!("/api/v1/appointments/{overdue}"), token).await.expect(200);
    assert_eq!((marked.body["status"].as_str(), marked.body["version"].as_i64()), (Some("no_show"), Some(2)));
    let untouched = app.get(&format!("/api/v1/appointments/{recent}"), token).await.expect(200);
    assert_eq!(untouched.body["status"], "booked");
    let events = events_of(&app, "appointment.no_show").await;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].metadata.aggregate_id, events[0].metadata.actor_id), (overdue, None));
    let audited = app.audit_events(&format!("action=appointment.no_show&patient_id={patient}")).await;
    assert_eq!(audited.len(), 1);
    assert!(audited[0]["actor_id"].is_null() && audited[0]["correlation_id"].as_str().unwrap().starts_with("job-"));
    assert_eq!(run(&jobs, Job::NoShowPastAppointments).await, RunOutcome::Succeeded("0 marked no_show".into()));
    app.stop().await;
}

/// The no-show job runs twice an hour; nearly every appointment a hospital ever had has ended, so
/// asking for "booked and ended before the cutoff" with no lower bound read the whole table each
/// time (5 million appointments: 1.3 s with a warm cache, and past the statement timeout with a
/// cold one, so every run failed). A run now looks back only to where the last successful one
/// stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_no_show_job_reads_what_ended_since_its_last_run_not_the_history() {
    let app = spawn(Backend::Postgres).await;
    let (patient, practitioner) =
        (app.create_patient("Often", "Seen").await, app.create_practitioner("LIC-HIST").await);
    let booked = app.post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 2, 30)).await;
    let id = booked.expect(201).id();
    let jobs = scheduler(&app).with_clock(app.clock.clone());
    assert_eq!(run(&jobs, Job::NoShowPastAppointments).await, RunOutcome::Succeeded("0 marked no_show".into()));
    // The history the job has been through (written after its run here, so that what the run
    // read is not still being reported while the next one is measured).
    app.appointment_history(&[patient], &[practitioner], 20_000).await;
    let before = app.table_reads("appointments").await;

    // A day and a half later the booking has ended more than a day ago.
    app.clock.advance(chrono::Duration::hours(36));
    assert_eq!(run(&jobs, Job::NoShowPastAppointments).await, RunOutcome::Succeeded("1 marked no_show".into()));
    // Reported once the update and the run's scans are: the search, the row lock, the update.
    let what = "the run's reads to be reported";
    let after = app
        .table_reads_once(what, "appointments", |now| now.updated > before.updated && now.scans >= before.scans + 3)
        .await;
    let read = after.rows - before.rows;
    assert!(read < 1_000, "the run read {read} appointments of a history of 20,000");
    let marked = app.get(&format!("/api/v1/appointments/{id}"), &app.admin_token).await.expect(200);
    assert_eq!(marked.body["status"], "no_show");
    app.stop().await;
}

/// Readiness asks which jobs' latest run failed, every few seconds on every instance; a month of
/// runs (`HEALTHCORE_JOB_RUN_RETENTION_DAYS`) is about 60,000 rows, which it read whole each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reads_the_failed_job_runs_not_the_month_of_runs() {
    let app = spawn(Backend::Postgres).await;
    app.store
        .db_execute(
            "INSERT INTO job_runs (job, scheduled_for, status, attempts, started_at, finished_at) \
             SELECT 'outbox_retention', t, CASE WHEN g % 5000 = 0 THEN 'failed' ELSE 'succeeded' END, 1, t, t \
             FROM generate_series(1, 20000) g, LATERAL (SELECT now() - interval '1 minute' * g AS t) run; \
             ANALYZE job_runs",
        )
        .await
        .unwrap();
    let start = app.table_reads("job_runs").await;
    for _ in 0..3 {
        let ready = app.call(reqwest::Method::GET, "/health/ready", None, None).await.expect(200);
        assert_ne!(ready.body["jobs"]["status"], "degraded", "the latest run succeeded: {}", ready.body);
    }
    // Each probe scans the runs at least five times (the failed ones, then each one's job's latest
    // run); waiting for two probes' worth leaves no room for scans reported from before.
    let what = "the probes' reads of the job runs to be reported";
    let after = app.table_reads_once(what, "job_runs", |now| now.scans >= start.scans + 10).await;
    let read = after.rows - start.rows;
    assert!(read < 1_000, "readiness read {read} job runs of 20,000 to find the failed ones");
    app.stop().await;
}

async fn the_scheduler_reads_the_application_clock(backend: Backend) {
    let app = spawn(backend).await;
    let practitioner = app.create_practitioner("LIC-LATER").await;
    let patient = app.create_patient("Later", "Than").await;
    let booked = app.post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 2, 30)).await;
    let id = booked.expect(201).id();
    let jobs = scheduler(&app).with_clock(app.clock.clone());
    assert_eq!(run(&jobs, Job::NoShowPastAppointments).await, RunOutcome::Succeeded("0 marked no_show".into()));
    // A day and a half later by the application's clock, the appointment ended more than the
    // default 24 hours ago: the job sees the same time the requests do.
    app.clock.advance(chrono::Duration::hours(36));
    assert_eq!(run(&jobs, Job::NoShowPastAppointments).await, RunOutcome::Succeeded("1 marked no_show".into()));
    let marked = app.get(&format!("/api/v1/appointments/{id}"), &app.admin_token).await.expect(200);
    assert_eq!(marked.body["status"], "no_show");
    let stamped: chrono::DateTime<chrono::Utc> = marked.body["updated_at"].as_str().unwrap().parse().unwrap();
    assert!(stamped > chrono::Utc::now() + chrono::Duration::hours(35), "{stamped}");
    // The job's audit record is stamped by the same clock.
    let audited = app.audit_events(&format!("action=appointment.no_show&patient_id={patient}")).await;
    let recorded: chrono::DateTime<chrono::Utc> = audited[0]["occurred_at"].as_str().unwrap().parse().unwrap();
    assert!(recorded > chrono::Utc::now() + chrono::Duration::hours(35), "{recorded}");
    app.stop().await;
}

async fn each_run_happens_once_across_instances(backend: Backend) {
    let app = spawn(backend).await;
    // A second instance: its own pool on the same database.
    let other_store = healthcore::testing::store::Store::connect(&app.database_url(), 2).await.unwrap();
    let config = Arc::new(test_config(&app.database_url(), &[]));
    let (one, two) = (scheduler(&app), Scheduler::new(other_store.clone(), config, Default::default()));
    let at = healthcore::testing::clock::now();
    let (_stop, stopping) = shutdown::channel();
    let (mut a, mut b) = (stopping.clone(), stopping.clone());
    let (first, second) =
        tokio::join!(one.run_once(Job::OutboxRetention, at, &mut a), two.run_once(Job::OutboxRetention, at, &mut b));
    let outcomes = [first, second];
    assert_eq!(outcomes.iter().filter(|o| matches!(o, RunOutcome::Succeeded(_))).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == RunOutcome::AlreadyClaimed).count(), 1, "{outcomes:?}");
    other_store.close().await;
    app.stop().await;
}

async fn a_failing_run_is_retried_then_recorded_as_failed_and_counted(backend: Backend) {
    let app = spawn(backend).await;
    app.store.db_execute("ALTER TABLE idempotency_keys RENAME TO idempotency_keys_away").await.unwrap();
    let outcome = run(&scheduler(&app), Job::IdempotencyKeyExpiry).await;
    app.store.db_execute("ALTER TABLE idempotency_keys_away RENAME TO idempotency_keys").await.unwrap();
    assert!(matches!(outcome, RunOutcome::Failed(_)), "{outcome:?}");
    let last =
        healthcore::testing::store::jobs::last_run(app.store.db(), "idempotency_key_expiry").await.unwrap().unwrap();
    assert_eq!((last.status.as_str(), last.attempts), ("failed", 3));
    assert!(last.error.is_some_and(|e| e.contains("idempotency_keys")));
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"healthcore_job_runs_total{job_name="idempotency_key_expiry",outcome="failed"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"healthcore_job_runs_total{job_name="idempotency_key_expiry",outcome="retried"} 2"#));
    let ready = app.call(reqwest::Method::GET, "/health/ready", None, None).await.expect(200);
    assert_eq!(ready.body["jobs"]["status"], "degraded");
    assert!(ready.body["jobs"]["reason"].as_str().unwrap().contains("idempotency_key_expiry"));
    // The next run succeeds and says so.
    assert!(matches!(run(&scheduler(&app), Job::IdempotencyKeyExpiry).await, RunOutcome::Succeeded(_)));
    app.stop().await;
}

on_both_backends!(
    reminders_go_out_once_per_appointment_and_start_time,
    overdue_booked_appointments_are_marked_no_show_with_event_and_audit,
    the_scheduler_reads_the_application_clock,
    each_run_happens_once_across_instances,
    a_failing_run_is_retried_then_recorded_as_failed_and_counted,
);
