use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

async fn live_and_ready_answer_without_a_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
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

on_both_backends!(live_and_ready_answer_without_a_token, a_well_formed_correlation_id_is_echoed_and_a_bad_one_replaced);
