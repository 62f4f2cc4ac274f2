//! `/metrics`: what happened is counted exactly (each test has its own registry), and random paths
//! cannot grow the number of series.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, booking, eventually};
use crate::on_both_backends;

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the sample with exactly this name and label set (`name{a="b"}`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

fn series_count(text: &str) -> usize {
    text.lines().filter(|line| !line.starts_with('#') && !line.is_empty()).count()
}

async fn metrics_count_requests_domain_actions_events_and_consumers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.admin_token.clone();
    let practitioner = app.create_practitioner("LIC-METRICS").await;
    let patient = app.create_patient("Metric", "Patient").await;
    let appointment =
        app.post("/api/v1/appointments", &token, booking(patient, practitioner, 12, 30)).await.expect(201).id();
    app.post(&format!("/api/v1/appointments/{appointment}/cancel"), &token, json!({"reason": "r"})).await.expect(200);
    app.call(
        Method::POST,
        "/api/v1/auth/token",
        None,
        Some(json!({"username": "admin", "password": "wrong-password"})),
    )
    .await
    .expect(401);
    app.events_settled().await;
    let text = scrape(&app).await;

    let expect = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    };
    expect("healthcore_patients_created_total", 1.0);
    expect("healthcore_appointments_booked_total", 1.0);
    expect("healthcore_appointments_cancelled_total", 1.0);
    expect("healthcore_appointments_completed_total", 0.0);
    expect(r#"healthcore_logins_total{outcome="success"}"#, 1.0);
    expect(r#"healthcore_logins_total{outcome="failure"}"#, 1.0);
    expect(r#"healthcore_http_requests_total{method="POST",route="/api/v1/patients",status="201"}"#, 1.0);
    expect(r#"healthcore_http_requests_total{method="POST",route="/api/v1/auth/token",status="401"}"#, 1.0);
    expect(r#"healthcore_outbox_events_written_total{event_type="appointment.booked"}"#, 1.0);
    expect(
        r#"healthcore_consumer_events_total{group="analytics",event_type="patient.created",outcome="applied"}"#,
        1.0,
    );
    expect(
        r#"healthcore_consumer_events_total{group="notifications",event_type="appointment.cancelled",outcome="applied"}"#,
        1.0,
    );
    // practitioner.created, patient.created, appointment.booked, appointment.cancelled.
    expect(r#"healthcore_events_published_total{topic="in_process",outcome="delivered"}"#, 4.0);
    expect("healthcore_relay_leader", 1.0);
    expect(
        r#"healthcore_http_request_duration_seconds_count{method="POST",route="/api/v1/appointments",status="201"}"#,
        1.0,
    );
    expect(r#"healthcore_api_request_duration_seconds_count{method="POST",route="/api/v1/appointments"}"#, 1.0);
    assert!(text.contains(r#"healthcore_build_info{version=""#), "{text}");
    // Database statements by operation and table; the pool; the audit group commit; the process.
    // A registration on PostgreSQL is one statement, its row, record and event (`WITH … INSERT`).
    let operation = if backend == Backend::Postgres { "with" } else { "insert" };
    let inserts = format!(r#"healthcore_db_query_duration_seconds_count{{operation="{operation}",table="patients"}}"#);
    assert_eq!(sample(&text, &inserts), Some(1.0), "{text}");
    // So is a booking by staff, the appointment first, with its record and event: no transaction
    // with its participants' rows locked beforehand (`store::appointments::booking`).
    let bookings =
        format!(r#"healthcore_db_query_duration_seconds_count{{operation="{operation}",table="appointments"}}"#);
    assert_eq!(sample(&text, &bookings), Some(1.0), "{text}");
    assert!(
        sample(&text, r#"healthcore_db_query_duration_seconds_count{operation="select",table="users"}"#) >= Some(2.0)
    );
    expect("healthcore_db_pool_connections_max", 8.0);
    assert!(sample(&text, "healthcore_db_pool_connections_idle").is_some());
    // The two sign-ins are audited through the group commit.
    assert!(sample(&text, "healthcore_audit_group_commit_records_total") >= Some(2.0), "{text}");
    assert!(sample(&text, "healthcore_process_resident_memory_bytes").is_some_and(|b| b > 1e6), "{text}");
    assert!(sample(&text, "healthcore_process_cpu_seconds_total").is_some(), "{text}");
    assert!(text.ends_with("# EOF\n"));
    app.stop().await;
}

async fn random_paths_share_one_route_label_and_add_no_series(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.call(Method::GET, "/no/such/path/first", None, None).await.expect(404);
    // The first scrape creates the series of requests to /metrics itself.
    scrape(&app).await;
    let before = series_count(&scrape(&app).await);
    for i in 0..1000 {
        let path = format!("/random/{}/{i}?q={}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        app.call(Method::GET, &path, None, None).await.expect(404);
    }
    let text = scrape(&app).await;
    assert_eq!(series_count(&text), before, "series grew with random paths");
    assert_eq!(
        sample(&text, r#"healthcore_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        Some(1001.0)
    );
    app.stop().await;
}

/// Practitioners and users come from the cache after the first read; a write through this instance
/// invalidates the entry, so the next read is fresh, never the cached old version.
async fn reference_reads_are_cached_counted_and_invalidated_by_writes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.admin_token.clone();
    let practitioner = app.create_practitioner("LIC-CACHE").await;
    let path = format!("/api/v1/practitioners/{practitioner}");
    for _ in 0..3 {
        assert_eq!(app.get(&path, &token).await.expect(200).header("etag"), Some("\"1\""));
    }
    // Accounts authenticate every request: from the cache on PostgreSQL, which hears of every change
    // to them once its `LISTEN` connection is up (it connects beside the server's start, so the
    // first requests may come before it); read each time on SQLite, whose commands change them from
    // other processes.
    let user_hits = r#"healthcore_cache_requests_total{cache="users",outcome="hit"}"#;
    let text = match backend {
        Backend::Postgres => {
            eventually("accounts to authenticate from the cache", || async {
                app.get("/api/v1/auth/me", &token).await.expect(200);
                let text = scrape(&app).await;
                sample(&text, user_hits).is_some_and(|hits| hits >= 2.0).then_some(text)
            })
            .await
        }
        Backend::Sqlite => {
            app.get("/api/v1/auth/me", &token).await.expect(200);
            app.get("/api/v1/auth/me", &token).await.expect(200);
            let text = scrape(&app).await;
            assert_eq!(sample(&text, user_hits), None);
            text
        }
    };
    let hits = r#"healthcore_cache_requests_total{cache="practitioners",outcome="hit"}"#;
    assert_eq!(sample(&text, r#"healthcore_cache_requests_total{cache="practitioners",outcome="miss"}"#), Some(1.0));
    assert_eq!(sample(&text, hits), Some(2.0));

    app.patch(&path, &token, json!({"specialty": "neurology"})).await.expect(200);
    let read = app.get(&path, &token).await.expect(200);
    assert_eq!(read.header("etag"), Some("\"2\""), "the write invalidated the cached version");
    assert_eq!(read.body["specialty"], "neurology");
    app.delete(&path, &token).await.expect(200);
    assert_eq!(app.get(&path, &token).await.expect(200).body["active"], false);
    let text = scrape(&app).await;
    let explicit = r#"healthcore_cache_evictions_total{cache="practitioners",cause="explicit"}"#;
    assert_eq!(sample(&text, explicit), Some(2.0), "one invalidation per write");
    assert_eq!(sample(&text, hits), Some(2.0), "reads after a write went to the database");
    app.stop().await;
}

/// A change refused inside its transaction (a clash found under the locks, a duplicate key the
/// database reports, a stale version, a transition not allowed) ends the transaction with a
/// rollback; none of them is an interruption. Each interruption has every connection released in
/// the next ten seconds pinged once more, so refusals counted as interruptions cost every request.
async fn refused_changes_interrupt_no_round_trip(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.admin_token.clone();
    let practitioner = app.create_practitioner("LIC-REFUSED").await;
    let patient = app.create_patient("Refused", "Change").await;
    let other_patient = app.create_patient("Other", "Patient").await;
    let appointment =
        app.post("/api/v1/appointments", &token, booking(patient, practitioner, 30, 30)).await.expect(201).id();
    app.post("/api/v1/appointments", &token, booking(other_patient, practitioner, 30, 30))
        .await
        .expect_problem(409, "double-booking");
    let duplicate =
        json!({"licence_number": "LIC-REFUSED", "given_name": "Ada", "family_name": "Byron", "role": "nurse"});
    app.post("/api/v1/practitioners", &token, duplicate).await.expect(409);
    app.call_with(
        Method::PATCH,
        &format!("/api/v1/patients/{patient}"),
        Some(&token),
        Some(json!({"phone": "+15550100"})),
        &[("if-match", "\"7\"")],
    )
    .await
    .expect(412);
    let cancel = format!("/api/v1/appointments/{appointment}/cancel");
    app.post(&cancel, &token, json!({"reason": "r"})).await.expect(200);
    app.post(&cancel, &token, json!({"reason": "again"})).await.expect_problem(409, "invalid-transition");
    app.events_settled().await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "healthcore_db_interruptions_total"), Some(0.0), "{text}");
    app.stop().await;
}

/// A statement the database cancels inside a transaction ends it with a rollback: cancelled by
/// `statement_timeout`, it was answered in full and is no interruption. The audit trail's lists
/// run in a read transaction (for their planner settings), an `Idempotency-Key` is claimed in a
/// write transaction of its own; here each waits on a table another session has locked until
/// PostgreSQL cancels it. (The list's own audit record goes to this month's partition, which is
/// not locked.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_the_database_cancels_interrupt_no_round_trip() {
    use healthcore::testing::store::Store;
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn_with(Backend::Postgres, &[("HEALTHCORE_DB_STATEMENT_TIMEOUT_MS", "300")]).await;
    let holder = Store::connect(&app.database_url(), 1).await.unwrap();
    let lock = holder.begin_write().await.unwrap();
    lock.execute_unprepared("LOCK TABLE audit_events_default, idempotency_keys IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let cancelled = app.get("/api/v1/audit-events?outcome=denied", &app.admin_token).await;
    assert_eq!(cancelled.status.as_u16(), 503, "{:?}", cancelled.body);
    let body = crate::helpers::patient_body("Ada", "Lovelace");
    let headers = [("idempotency-key", "claimed-while-locked")];
    let cancelled =
        app.call_with(Method::POST, "/api/v1/patients", Some(&app.admin_token), Some(body.clone()), &headers);
    assert_eq!(cancelled.await.status.as_u16(), 503);
    lock.rollback().await.unwrap();
    app.get("/api/v1/audit-events?outcome=denied", &app.admin_token).await.expect(200);
    app.call_with(Method::POST, "/api/v1/patients", Some(&app.admin_token), Some(body), &headers).await.expect(201);
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "healthcore_db_interruptions_total"), Some(0.0), "{text}");
    holder.close().await;
    app.stop().await;
}

/// The background jobs end their transactions the same way: a reminder or a no-show whose row
/// lock is not granted before `statement_timeout` rolls back, where the job's transaction was
/// dropped (an interruption each, and every connection released in the next seconds pinged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_statement_the_database_cancels_interrupts_no_round_trip() {
    use healthcore::testing::jobs::{Job, RunOutcome, Scheduler};
    use healthcore::testing::store::Store;
    use sea_orm::ConnectionTrait;
    let settings = [("HEALTHCORE_DB_STATEMENT_TIMEOUT_MS", "200"), ("HEALTHCORE_JOB_RETRY_MS", "5")];
    let app = TestApp::spawn_with(Backend::Postgres, &settings).await;
    let practitioner = app.create_practitioner("LIC-LOCKED").await;
    let patient = app.create_patient("Locked", "Out").await;
    let overdue = app.started_appointment(patient, practitioner, 30).await;
    let soon = app
        .post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 2, 30))
        .await
        .expect(201)
        .id();
    let holder = Store::connect(&app.database_url(), 1).await.unwrap();
    let lock = holder.begin_write().await.unwrap();
    lock.execute_unprepared(&format!("SELECT 1 FROM appointments WHERE id IN ('{overdue}', '{soon}') FOR UPDATE"))
        .await
        .unwrap();
    let config = crate::helpers::test_config(&app.database_url(), &settings);
    let jobs = Scheduler::new(app.store.clone(), std::sync::Arc::new(config), app.metrics.clone());
    for job in [Job::AppointmentReminders, Job::NoShowPastAppointments] {
        let (_stop, mut stopping) = healthcore::testing::shutdown::channel();
        let outcome = jobs.run_once(job, healthcore::testing::clock::now(), &mut stopping).await;
        assert!(matches!(outcome, RunOutcome::Failed(_)), "{job:?} waited on the locked row: {outcome:?}");
    }
    lock.rollback().await.unwrap();
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "healthcore_db_interruptions_total"), Some(0.0), "{text}");
    holder.close().await;
    app.stop().await;
}

on_both_backends!(
    metrics_count_requests_domain_actions_events_and_consumers,
    refused_changes_interrupt_no_round_trip,
    random_paths_share_one_route_label_and_add_no_series,
    reference_reads_are_cached_counted_and_invalidated_by_writes,
);

async fn metrics_move_to_their_own_address_when_one_is_configured(backend: Backend) {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = free.local_addr().unwrap().to_string();
    drop(free);
    let app = TestApp::spawn_with(backend, &[("HEALTHCORE_METRICS_ADDR", address.as_str())]).await;
    app.create_patient("Separate", "Metrics").await;
    app.call(Method::GET, "/metrics", None, None).await.expect(404);
    let text = app.client.get(format!("http://{address}/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&text, "healthcore_patients_created_total"), Some(1.0), "{text}");
    app.stop().await;
}

/// Debian's `prometheus` package, installed by `scripts/test`.
fn promtool() -> std::process::Command {
    std::process::Command::new("promtool")
}

async fn promtool_accepts_the_scrape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_patient("Lint", "Me").await;
    app.call(Method::GET, "/no/such/route", None, None).await.expect(404);
    app.events_settled().await;
    let response = app.client.get(app.url("/metrics")).header("accept", "text/plain").send().await.unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let mut child = promtool()
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test installs Debian's prometheus package)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool check metrics:\n{report}\n--- scrape ---\n{text}");
    app.stop().await;
}

mod lint {
    use super::*;
    on_both_backends!(promtool_accepts_the_scrape);
}

mod separate {
    use super::*;
    on_both_backends!(metrics_move_to_their_own_address_when_one_is_configured);
}

async fn a_configured_token_is_required_for_metrics(backend: Backend) {
    let token = "metrics-token-0123456789";
    let app = TestApp::spawn_with(backend, &[("HEALTHCORE_METRICS_TOKEN", token)]).await;
    app.call(Method::GET, "/metrics", None, None).await.expect_problem(401, "unauthorized");
    app.call(Method::GET, "/metrics", Some("metrics-token-9876543210"), None).await.expect(401);
    let text = app.client.get(app.url("/metrics")).bearer_auth(token).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("healthcore_build_info"), "{text}");
    app.stop().await;
}

mod token {
    use super::*;
    on_both_backends!(a_configured_token_is_required_for_metrics);
}
