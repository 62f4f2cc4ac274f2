use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

async fn live_and_ready_answer_without_a_token(backend: Backend) {
    // As `serve` runs by default: with the scheduler, whose state readiness reports.
    let app = TestApp::spawn_with(backend, &[("HEALTHCORE_JOBS_ENABLED", "true")]).await;
    let live = app.call(reqwest::Method::GET, "/health/live", None, None).await.expect(200);
    assert_eq!(live.body["status"], "ok");
    let ready = app.call(reqwest::Method::GET, "/health/ready", None, None).await.expect(200);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["database"]["status"], "healthy");
    // No brokers: events go to the consumers in this process, and that is not a fault.
    assert_eq!(ready.body["kafka"]["status"], "disabled");
    assert_eq!(ready.body["outbox"]["status"], "healthy");
    assert_eq!(ready.body["consumers"]["status"], "healthy");
    assert_eq!(ready.body["jobs"]["status"], "healthy");
    app.stop().await;
}

async fn a_well_formed_correlation_id_is_echoed_and_a_bad_one_replaced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply =
        app.call_with(reqwest::Method::GET, "/health/live", None, None, &[("x-correlation-id", "abc.DEF_123-x")]).await;
    assert_eq!(reply.header("x-correlation-id"), Some("abc.DEF_123-x"));
    let reply = app
        .call_with(reqwest::Method::GET, "/health/live", None, None, &[("x-correlation-id", "has space;drop")])
        .await;
    let generated = reply.header("x-correlation-id").unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    let too_long = "a".repeat(129);
    let reply =
        app.call_with(reqwest::Method::GET, "/health/live", None, None, &[("x-correlation-id", &too_long)]).await;
    assert_ne!(reply.header("x-correlation-id"), Some(too_long.as_str()));
    app.stop().await;
}

on_both_backends!(
    a_hung_broker_is_reported_degraded,
    live_and_ready_answer_without_a_token,
    a_well_formed_correlation_id_is_echoed_and_a_bad_one_replaced
);

/// A broker that accepts connections and never answers: events are not acknowledged, so readiness
/// must say degraded once they wait longer than HEALTHCORE_OUTBOX_MAX_AGE_SECONDS — still 200,
/// since requests are served and no event is lost.
async fn a_hung_broker_is_reported_degraded(backend: Backend) {
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker = hung.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = hung.accept().await {
            connections.push(connection);
        }
    });
    let settings = [
        ("KAFKA_BOOTSTRAP_SERVERS", broker.as_str()),
        ("HEALTHCORE_OUTBOX_MAX_AGE_SECONDS", "2"),
        ("HEALTHCORE_KAFKA_MESSAGE_TIMEOUT_MS", "120000"),
    ];
    let app = TestApp::spawn_with(backend, &settings).await;
    app.create_patient("Ada", "Lovelace").await;
    let ready = crate::helpers::eventually("readiness to report the hung broker", || async {
        let ready = app.call(reqwest::Method::GET, "/health/ready", None, None).await;
        (ready.body["outbox"]["status"] == "degraded").then_some(ready)
    })
    .await;
    let ready = ready.expect(200);
    assert_eq!(ready.body["kafka"]["status"], "degraded", "{:#}", ready.body);
    assert!(ready.body["outbox"]["oldest_pending_age_seconds"].as_i64().unwrap() >= 2);
    held.abort();
    // The events are still pending: nothing was lost, the next relay publishes them.
    let backlog = healthcore::testing::store::outbox::backlog(app.store.db()).await.unwrap();
    assert!(backlog.pending >= 1);
    app.shutdown_without_event_checks().await;
}
