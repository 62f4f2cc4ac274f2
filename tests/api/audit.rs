use healthcore::testing::domain::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, RUNS, TableReads, TestApp, booking};
use crate::on_both_backends;

async fn a_read_is_audited_with_actor_patient_correlation_and_origin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let nurse = app.user_token(Role::Nurse, None).await;
    let reply = app
        .call_with(
            Method::GET,
            &format!("/api/v1/patients/{patient}"),
            Some(&nurse),
            None,
            &[("x-correlation-id", "trace-read-1"), ("user-agent", "ward-tablet/2.1")],
        )
        .await
        .expect(200);
    assert_eq!(reply.header("x-correlation-id"), Some("trace-read-1"));
    let events = app.audit_events(&format!("patient_id={patient}&action=patient.read")).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["actor_role"], "nurse");
    assert_eq!(event["resource_type"], "patient");
    assert_eq!(event["resource_id"], patient.to_string());
    assert_eq!(event["correlation_id"], "trace-read-1");
    assert_eq!(event["client_addr"], "127.0.0.1");
    assert_eq!(event["user_agent"], "ward-tablet/2.1");
    let me = app.get("/api/v1/auth/me", &nurse).await.expect(200);
    assert_eq!(event["actor_id"], me.body["user_id"]);
    app.stop().await;
}

/// What a client sends is recorded as sent, whatever it holds: quotes, backslashes, tabs and text
/// that looks like `COPY`'s `\N` or like JSON must arrive as they were, however the group commit
/// sends its batch to PostgreSQL.
async fn client_text_is_recorded_as_sent_even_with_control_characters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let agents =
        ["\\N", "ward\ttablet \\N \\\\ end\\", "\\.", "kiosk/1.0 (\\t; \\r)", "app \"x\" {\"id\": null} \\u0000"];
    for agent in agents {
        app.call_with(
            Method::GET,
            &format!("/api/v1/patients/{patient}"),
            Some(&app.admin_token),
            None,
            &[("user-agent", agent)],
        )
        .await
        .expect(200);
    }
    let events = app.audit_events(&format!("patient_id={patient}&action=patient.read")).await;
    let mut recorded: Vec<&str> = events.iter().map(|e| e["user_agent"].as_str().unwrap_or("<null>")).collect();
    recorded.reverse();
    assert_eq!(recorded, agents);
    app.stop().await;
}

async fn every_write_and_every_listed_patient_is_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_patient("Ada", "Lovelace").await;
    let b = app.create_patient("Alan", "Turing").await;
    let practitioner = app.create_practitioner("MD-1").await;
    app.patch(&format!("/api/v1/patients/{a}"), &app.admin_token, json!({"phone": "+44 20 7946 0958"}))
        .await
        .expect(200);
    let appointment =
        app.post("/api/v1/appointments", &app.admin_token, booking(a, practitioner, 24, 30)).await.expect(201).id();
    app.post(&format!("/api/v1/appointments/{appointment}/cancel"), &app.admin_token, json!({"reason": "r"}))
        .await
        .expect(200);
    app.get("/api/v1/patients", &app.admin_token).await.expect(200);
    let for_a: Vec<String> = app
        .audit_events(&format!("patient_id={a}"))
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(for_a, ["patient.list", "appointment.cancel", "appointment.book", "patient.update", "patient.create"]);
    let for_b: Vec<String> = app
        .audit_events(&format!("patient_id={b}"))
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(for_b, ["patient.list", "patient.create"]);
    app.stop().await;
}

async fn a_denied_attempt_is_audited_as_denied(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let auditor = app.user_token(Role::Auditor, None).await;
    app.get(&format!("/api/v1/patients/{patient}"), &auditor).await.expect_problem(403, "forbidden");
    let events = app.audit_events(&format!("patient_id={patient}&outcome=denied")).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["action"], "patient.read");
    assert_eq!(events[0]["actor_role"], "auditor");
    app.stop().await;
}

async fn the_audit_trail_filters_by_actor_action_and_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    app.create_patient("Ada", "Lovelace").await;
    let after = chrono::Utc::now() + chrono::Duration::seconds(1);
    let admin = app.get("/api/v1/auth/me", &app.admin_token).await.expect(200);
    let by_actor =
        app.audit_events(&format!("actor_id={}&action=patient.create", admin.body["user_id"].as_str().unwrap())).await;
    assert_eq!(by_actor.len(), 1);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let window = app.audit_events(&format!("action=patient.create&from={}&to={}", fmt(before), fmt(after))).await;
    assert_eq!(window.len(), 1);
    let later = app.audit_events(&format!("action=patient.create&from={}", fmt(after))).await;
    assert!(later.is_empty());
    app.stop().await;
}

async fn audit_records_cannot_be_changed_or_removed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_patient("Ada", "Lovelace").await;
    // Each read of the trail adds its own `audit.list` record: compare what was there before.
    let before = app.audit_events("").await.iter().filter(|e| e["action"] != "audit.list").count();
    assert!(app.store.db_execute("UPDATE audit_events SET outcome = 'error'").await.is_err());
    assert!(app.store.db_execute("DELETE FROM audit_events").await.is_err());
    if backend == Backend::Postgres {
        // TRUNCATE fires no row trigger; a statement trigger refuses it.
        assert!(app.store.db_execute("TRUNCATE audit_events").await.is_err());
        assert!(app.store.db_execute("TRUNCATE audit_events CASCADE").await.is_err());
    }
    assert_eq!(app.audit_events("").await.iter().filter(|e| e["action"] != "audit.list").count(), before);
    app.call(Method::DELETE, "/api/v1/audit-events", Some(&app.admin_token), None)
        .await
        .expect_problem(405, "method-not-allowed");
    app.stop().await;
}

async fn no_audit_record_is_lost_when_the_server_stops(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    for _ in 0..20 {
        app.get(&format!("/api/v1/patients/{patient}"), &app.admin_token).await.expect(200);
    }
    let store = app.store.clone();
    let _database = app.stop().await;
    // Count with the store after shutdown: every answered read had committed its record.
    let reopened = healthcore::testing::store::Store::connect(&reconnect_url(&store), 1).await.unwrap();
    let reads = healthcore::testing::store::audit::list(
        &reopened,
        &healthcore::testing::store::audit::AuditFilter { action: Some("patient.read".into()), ..Default::default() },
        healthcore::testing::store::PageRequest { limit: 1, offset: 0 },
    )
    .await
    .unwrap();
    assert_eq!(reads.total, 20);
    reopened.close().await;
}

fn reconnect_url(store: &healthcore::testing::store::Store) -> String {
    store.url().to_owned()
}

/// The one record with this action and reason (checked as the only one).
async fn the_record(app: &TestApp, query: &str) -> serde_json::Value {
    let events = app.audit_events(query).await;
    assert_eq!(events.len(), 1, "{query}: {events:#?}");
    events[0].clone()
}

async fn failed_attempts_on_patient_data_are_audited_with_their_outcome(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let practitioner = app.create_practitioner("MD-1").await;
    let nurse = app.user_token(Role::Nurse, None).await;
    let path = format!("/api/v1/patients/{patient}");

    // 422: a registration with invalid fields.
    app.post("/api/v1/patients", &nurse, json!({"given_name": "Ada"})).await.expect(422);
    let record = the_record(&app, "action=patient.create&outcome=error").await;
    assert_eq!(record["reason"], "validation");
    assert_eq!(record["actor_role"], "nurse");
    // 404: a patient that does not exist, recorded against the id asked for.
    let missing = uuid::Uuid::now_v7();
    app.get(&format!("/api/v1/patients/{missing}"), &nurse).await.expect(404);
    let record = the_record(&app, &format!("patient_id={missing}")).await;
    assert_eq!(
        (record["action"].as_str(), record["outcome"].as_str(), record["reason"].as_str()),
        (Some("patient.read"), Some("error"), Some("not-found"))
    );
    // 412: a stale If-Match.
    app.call_with(
        Method::PATCH,
        &path,
        Some(&nurse),
        Some(json!({"phone": "+44 20 7946 0958"})),
        &[("if-match", "\"7\"")],
    )
    .await
    .expect(412);
    let record = the_record(&app, &format!("patient_id={patient}&action=patient.update&outcome=error")).await;
    assert_eq!(record["reason"], "stale-version");
    // 409: a double booking, recorded against the booking's patient.
    app.post("/api/v1/appointments", &nurse, booking(patient, practitioner, 24, 30)).await.expect(201);
    app.post("/api/v1/appointments", &nurse, booking(patient, practitioner, 24, 30)).await.expect(409);
    let record = the_record(&app, &format!("patient_id={patient}&action=appointment.book&outcome=error")).await;
    assert_eq!(record["reason"], "double-booking");
    // 400: a path id that is not a UUID.
    app.get("/api/v1/patients/not-a-uuid", &nurse).await.expect(400);
    let errors = app.audit_events("action=patient.read&outcome=error").await;
    let reasons: Vec<&str> = errors.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert_eq!(reasons, ["invalid-id", "not-found"], "newest first");
    // 401: no token at all; nobody to name, but the attempt and its origin are recorded — once a
    // minute per client address, so that an unauthenticated flood cannot fill the disk.
    app.call(Method::GET, &path, None, None).await.expect(401);
    app.call(Method::GET, &path, None, None).await.expect(401);
    app.call(Method::GET, &path, Some("not-a-token"), None).await.expect(401);
    let record = the_record(&app, &format!("patient_id={patient}&action=patient.read&outcome=denied")).await;
    assert_eq!(record["actor_id"], serde_json::Value::Null);
    assert_eq!(record["reason"], "unauthorized");
    assert_eq!(record["client_addr"], "127.0.0.1");
    // Reading the audit trail is itself recorded, with the patient whose trail was read.
    let reads = app.audit_events(&format!("patient_id={patient}&action=audit.list")).await;
    assert!(!reads.is_empty(), "the reads of this patient's trail are in it");
    assert_eq!(reads[0]["outcome"], "success");
    app.stop().await;
}

on_both_backends!(
    failed_attempts_on_patient_data_are_audited_with_their_outcome,
    a_read_is_audited_with_actor_patient_correlation_and_origin,
    client_text_is_recorded_as_sent_even_with_control_characters,
    every_write_and_every_listed_patient_is_audited,
    a_denied_attempt_is_audited_as_denied,
    the_audit_trail_filters_by_actor_action_and_time,
    audit_records_cannot_be_changed_or_removed,
    no_audit_record_is_lost_when_the_server_stops,
);

/// A request that runs out of time (503) on patient data is recorded too: a PATCH waits on a row
/// another transaction holds until the request deadline answers for it. PostgreSQL: row locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_times_out_on_patient_data_is_audited_as_an_error() {
    let app = TestApp::spawn_with(Backend::Postgres, &[("HEALTHCORE_REQUEST_TIMEOUT_MS", "500")]).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let holder = healthcore::testing::store::Store::connect(&app.database_url(), 1).await.unwrap();
    let tx = holder.begin_write().await.unwrap();
    healthcore::testing::store::patients::find_for_update(
        &tx,
        healthcore::testing::domain::PatientId::from_uuid(patient),
    )
    .await
    .unwrap();
    app.patch(&format!("/api/v1/patients/{patient}"), &app.admin_token, json!({"phone": "+44 20 7946 0958"}))
        .await
        .expect_problem(503, "timeout");
    drop(tx);
    let events = app.audit_events(&format!("patient_id={patient}&action=patient.update")).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!((events[0]["outcome"].as_str(), events[0]["reason"].as_str()), (Some("error"), Some("timeout")));
    holder.close().await;
    app.stop().await;
}

/// An hour of a ward's reads on the trail (21,000 records, 150 ms apart), and among them three
/// denied attempts and three deactivations of patients (the newest record five minutes back);
/// returns what `table_reads` reports of the partitions once they hold it.
async fn a_trail_with_three_of_each_rarity(app: &TestApp) -> TableReads {
    let rows = "SELECT gen_random_uuid(), now() - interval '150 milliseconds' * g, NULL, 'clinician', \
                CASE WHEN g % 7000 = 3500 THEN 'patient.deactivate' ELSE 'patient.read' END, 'patient', NULL, NULL, \
                CASE WHEN g % 7000 = 0 THEN 'denied' ELSE 'success' END, 'trail-' || g, '127.0.0.1', 'trail', NULL \
                FROM generate_series(2000, 22999) g";
    a_trail_of(app, rows, 21_000, "ANALYZE audit_events").await
}

/// Writes `rows` (a query of `count` records, their columns in the order of `INSERT`'s list
/// below) into the trail, then runs `maintenance` (`ANALYZE`, say); returns what `table_reads`
/// reports of the partitions once they hold the records.
async fn a_trail_of(app: &TestApp, rows: &str, count: i64, maintenance: &str) -> TableReads {
    let start = app.table_reads(PARTITIONS).await;
    app.store
        .db_execute(&format!(
            "INSERT INTO audit_events (id, occurred_at, actor_id, actor_role, action, resource_type, resource_id, \
             patient_id, outcome, correlation_id, client_addr, user_agent, reason) {rows}"
        ))
        .await
        .unwrap();
    app.store.db_execute(maintenance).await.unwrap();
    let what = "the trail to be reported";
    app.table_reads_once(what, PARTITIONS, |now| now.inserted >= start.inserted + count).await
}

/// The trail is partitioned by month: its reads are the partitions'.
const PARTITIONS: &str = "audit_events_%";

/// Lists `path` (two records a page, three in all) `RUNS` times on a trail of 21,000 records
/// (`a_trail_with_three_of_each_rarity`), both as PostgreSQL plans and planned for any values, and
/// asserts that a list reads its three records, not the trail.
async fn assert_lists_read_the_three_alone(path: &str) {
    for plans in [Plans::Chosen, Plans::ForAnyValues] {
        let app = spawn_planning(plans).await;
        let before = a_trail_with_three_of_each_rarity(&app).await;
        let read = rows_read_per_list(&app, path, before, Some(3)).await;
        assert!(read < 1_000, "{path} read {read} rows of 21,000 for its three records ({plans:?})");
        app.stop().await;
    }
}

/// Lists `path` (a page of two) `RUNS` times, asserting the list's `total` where one is given;
/// returns the rows each list read on average. The partitions report their counts apart, and the
/// one the audit writer keeps inserting into often later than the empty ones, so this waits for
/// the pages' reads of rows (two each, read whole whatever the plan), not for scans.
async fn rows_read_per_list(app: &TestApp, path: &str, before: TableReads, total: Option<u64>) -> i64 {
    for _ in 0..RUNS {
        let listed = app.get(path, &app.admin_token).await.expect(200);
        if let Some(total) = total {
            assert_eq!(listed.body["page"]["total"], total, "{path}");
        }
        assert_eq!(listed.body["items"].as_array().unwrap().len(), 2, "{path}");
    }
    let what = "the lists' pages to be reported";
    let after = app.table_reads_once(what, PARTITIONS, |now| now.rows >= before.rows + 2 * RUNS).await;
    (after.rows - before.rows) / RUNS
}

/// How PostgreSQL plans the server's prepared statements in a test of a list's reads.
#[derive(Debug, Clone, Copy)]
enum Plans {
    /// As it chooses: for a statement's values at its first five runs on a connection, then
    /// perhaps once for any values. The pool has two connections, and each list runs `RUNS` times.
    Chosen,
    /// For any values, always (`plan_cache_mode`): the plan a statement may settle on. It sees no
    /// value of a parameter, so it can use a partial index only where the query states the
    /// index's predicate as written.
    ForAnyValues,
}

async fn spawn_planning(plans: Plans) -> TestApp {
    let pool = [("HEALTHCORE_DB_MAX_CONNECTIONS", "2")];
    match plans {
        Plans::Chosen => TestApp::spawn_with(Backend::Postgres, &pool).await,
        Plans::ForAnyValues => {
            let planned_for_any_values = |url: &str| format!("{url}?options%5Bplan_cache_mode%5D=force_generic_plan");
            TestApp::spawn_postgres_via(planned_for_any_values, &pool).await
        }
    }
}

/// The denied and failed attempts (`?outcome=denied`), a security review's first question.
/// PostgreSQL walked the trail by time from the newest record, testing each, and denials are a
/// handful among millions of successes — with twenty million records the list would run past the
/// statement timeout and answer 503. They are now a range of a partial index of the records that
/// did not succeed, which holds only those. With the successes named by a parameter, a plan for any
/// values walked the trail again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_denied_attempts_reads_the_denials_not_the_trail() {
    assert_lists_read_the_three_alone("/api/v1/audit-events?outcome=denied&limit=2").await;
}

/// A rare action (`?action=patient.deactivate`: who deactivated patients lately) among the reads
/// that are the trail's bulk: PostgreSQL walked the trail from the newest record testing each, past
/// the statement timeout at tens of millions of records. The actions other than the disclosures
/// of patient data now have a partial index of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_a_rare_action_reads_that_action_not_the_trail() {
    assert_lists_read_the_three_alone("/api/v1/audit-events?action=patient.deactivate&limit=2").await;
}

/// One patient's access history (`?patient_id=`) and one clinician's (`?actor_id=`), when that
/// patient or clinician has thousands of records among a trail of people with a handful each: a
/// patient on every ward list all day, or the busiest nurse. Planned for any values, PostgreSQL
/// expects the handful, reads every record of the busy one in the window and sorts them for a page
/// of two — 18,800 records and 37–87 ms a page for the patients a list's first page shows, growing
/// with their history. The list now walks the index in its order and stops at the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_a_busy_patients_or_clinicians_history_reads_the_page_not_the_history() {
    for plans in [Plans::Chosen, Plans::ForAnyValues] {
        let app = spawn_planning(plans).await;
        a_trail_with_a_busy_patient_and_clinician(&app).await;
        let now = chrono::Utc::now();
        let (from, to) =
            ((now - chrono::Duration::days(90)).format("%Y-%m-%dT%H:%M:%SZ"), now.format("%Y-%m-%dT%H:%M:%SZ"));
        for filter in [format!("patient_id={BUSY}"), format!("actor_id={BUSY}")] {
            let path = format!("/api/v1/audit-events?{filter}&from={from}&to={to}&limit=2");
            let before = app.table_reads(PARTITIONS).await;
            let read = rows_read_per_list(&app, &path, before, None).await;
            assert!(read < 300, "{path} read {read} rows for a page of two of 3,000 ({plans:?})");
        }
        app.stop().await;
    }
}

/// The id of the busy patient and of the busy clinician in `a_trail_with_a_busy_patient_and_clinician`.
const BUSY: &str = "00000000-0000-7000-8000-00000000b054";

/// 24,000 records of the last hour: 7,000 patients and as many clinicians with three each, and
/// 3,000 of one patient read by one clinician (`BUSY`); vacuumed and analysed, so that counting
/// reads the index alone and every row a list reads is one of its page's candidates.
async fn a_trail_with_a_busy_patient_and_clinician(app: &TestApp) -> TableReads {
    let someone = "('00000000-0000-7000-8000-' || lpad(to_hex(g % 7000), 12, '0'))::uuid";
    let rows = format!(
        "SELECT gen_random_uuid(), now() - interval '150 milliseconds' * g, who, 'nurse', 'patient.read', \
         'patient', who, who, 'success', 'trail-' || g, '127.0.0.1', 'trail', NULL \
         FROM (SELECT g, CASE WHEN g % 8 = 0 THEN '{BUSY}'::uuid ELSE {someone} END AS who \
               FROM generate_series(1000, 24999) g) trail"
    );
    a_trail_of(app, &rows, 24_000, "VACUUM ANALYZE audit_events").await
}

/// A count of the trail reads a record from its table, not the index alone, until VACUUM has
/// marked the record's page visible to all. By default autovacuum came to a partition of inserts
/// only after a fifth of its size again had been added: on a month of millions of records, the
/// newest hundreds of thousands were read from the table by every count (an auditor's list of a
/// patient with a thousand disclosures: 766 lists/s, p99 113 ms; vacuumed, 2,771 and 21 ms).
/// Every partition, those of the migrations and those made month by month since, is now vacuumed
/// after every 10,000 records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partition_of_the_trail_is_vacuumed_as_it_fills() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.store.db_execute("SELECT healthcore_ensure_audit_partition(date '2031-01-01')").await.unwrap();
    let partitions = "FROM pg_inherits JOIN pg_class ON pg_class.oid = inhrelid \
                      WHERE inhparent = 'audit_events'::regclass";
    let every_10_000 = "reloptions @> ARRAY['autovacuum_vacuum_insert_threshold=10000', \
                        'autovacuum_vacuum_insert_scale_factor=0']";
    let all = app.postgres_number(&format!("SELECT count(*) {partitions}")).await;
    let vacuumed_as_they_fill = app.postgres_number(&format!("SELECT count(*) {partitions} AND {every_10_000}")).await;
    assert!(all >= 5, "the default partition, this month's, two ahead and January 2031: {all}");
    assert_eq!(vacuumed_as_they_fill, all, "partitions vacuumed every 10,000 records, of {all}");
    app.stop().await;
}
