//! The database going away: requests get 503 (never 500), readiness says so, and both recover by
//! themselves when the database is back. PostgreSQL only: it is the database that can be cut off
//! from a running server (`ALLOW_CONNECTIONS false` plus terminating the sessions).

use reqwest::Method;

use crate::helpers::{Backend, TestApp};

/// Lets (or stops) every session reach the app's database, cutting those open when it stops them.
pub async fn set_reachable(app: &TestApp, reachable: bool) {
    let name = app.store.url().rsplit('/').next().unwrap().to_owned();
    let admin = crate::helpers::admin_store().await;
    admin.db_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {reachable}")).await.unwrap();
    if !reachable {
        admin
            .db_execute(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"))
            .await
            .unwrap();
    }
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_gives_503_and_service_resumes_when_it_returns() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    let path = format!("/api/v1/patients/{patient}");
    app.get(&path, &app.admin_token).await.expect(200);

    set_reachable(&app, false).await;
    // Every request fails cleanly: first on the cut connections, then on refused reconnections.
    for _ in 0..3 {
        app.get(&path, &app.admin_token).await.expect_problem(503, "unavailable");
    }
    let ready = app.call(Method::GET, "/health/ready", None, None).await.expect(503);
    assert_eq!(ready.body["database"]["status"], "unhealthy");
    app.call(Method::GET, "/health/live", None, None).await.expect(200);

    set_reachable(&app, true).await;
    // Connections cut during the outage are discarded as they are next used; within a bounded
    // number of probes the instance is ready again without any operator action.
    let mut probes = Vec::new();
    for _ in 0..40 {
        let ready = app.call(Method::GET, "/health/ready", None, None).await;
        probes.push(ready.status.as_u16());
        if ready.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    eprintln!("readiness probes after recovery: {probes:?}");
    assert_eq!(probes.last(), Some(&200), "not ready again after {} probes", probes.len());
    // A request that lands on a pooled connection cut during the outage gets one 503 (the
    // connection is then discarded); there are at most as many such connections as the pool holds.
    let mut statuses = Vec::new();
    for _ in 0..=8 {
        let read = app.get(&path, &app.admin_token).await;
        statuses.push(read.status.as_u16());
        if read.status == 200 {
            assert_eq!(read.body["id"], patient.to_string());
            break;
        }
        read.expect_problem(503, "unavailable");
    }
    assert_eq!(statuses.last(), Some(&200), "reads after recovery: {statuses:?}");
    app.stop().await;
}

/// The request pool's PostgreSQL connections stay checked out of sqlx's pool between uses
/// (`store/lease.rs`). One released inside a transaction (dropped unfinished) is rolled back
/// before it is used again, and one released while its answer was still coming (its caller gave
/// up) answers the next statement with that statement's own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_released_unfinished_is_settled_before_it_is_used_again() {
    use healthcore::testing::store::Store;
    use sea_orm::{ConnectionTrait, Statement};
    let database = crate::helpers::TestDatabase::postgres().await;
    // One connection: whatever the next statement runs on is the one released before.
    let store = Store::connect(&database.url, 1).await.unwrap();
    store.db_execute("CREATE TABLE settled (k int)").await.unwrap();
    let tx = store.begin_write().await.unwrap();
    tx.execute_unprepared("INSERT INTO settled VALUES (1)").await.unwrap();
    drop(tx);
    // Had the connection come back inside the dropped transaction, this would join it, and
    // another session would not see it.
    store.db_execute("INSERT INTO settled VALUES (2)").await.unwrap();
    let gave_up = tokio::time::timeout(std::time::Duration::from_millis(100), store.db_execute("SELECT pg_sleep(0.3)"));
    assert!(gave_up.await.is_err(), "the caller gave up before the answer");
    let answer = |sql: &str| Statement::from_string(sea_orm::DbBackend::Postgres, sql.to_owned());
    let row = store.db().query_one_raw(answer("SELECT 42 AS answer")).await.unwrap().unwrap();
    assert_eq!(row.try_get::<i32>("", "answer").unwrap(), 42);
    let other = Store::connect(&database.url, 1).await.unwrap();
    let rows = other.db().query_all_raw(answer("SELECT k FROM settled ORDER BY k")).await.unwrap();
    let kept: Vec<i32> = rows.iter().map(|row| row.try_get("", "k").unwrap()).collect();
    assert_eq!(kept, vec![2]);
    other.close().await;
    store.close().await;
}
