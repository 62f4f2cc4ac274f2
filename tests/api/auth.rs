use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN_PASSWORD, Backend, TestApp};
use crate::on_both_backends;

async fn a_valid_login_returns_a_bearer_token_for_me(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = app
        .call(Method::POST, "/api/v1/auth/token", None, Some(json!({"username": "admin", "password": ADMIN_PASSWORD})))
        .await;
    let reply = reply.expect(200);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 3600);
    let token = reply.body["access_token"].as_str().unwrap();
    let me = app.get("/api/v1/auth/me", token).await.expect(200);
    assert_eq!(me.body["username"], "admin");
    assert_eq!(me.body["role"], "admin");
    app.stop().await;
}

async fn wrong_password_and_unknown_user_get_the_same_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wrong = app
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "admin", "password": "wrong-password"})),
        )
        .await;
    let unknown = app
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "nobody", "password": "wrong-password"})),
        )
        .await;
    let wrong = wrong.expect_problem(401, "unauthorized");
    let unknown = unknown.expect_problem(401, "unauthorized");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    app.stop().await;
}

async fn logins_are_audited_with_their_outcome(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.call(
        Method::POST,
        "/api/v1/auth/token",
        None,
        Some(json!({"username": "admin", "password": "not-the-password"})),
    )
    .await
    .expect(401);
    let events = app.audit_events("action=auth.login").await;
    let outcomes: Vec<&str> = events.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    // Newest first: the failed attempt, then the harness's successful admin login.
    assert_eq!(outcomes, ["denied", "success"]);
    assert_eq!(events[0]["actor_role"], "admin");
    app.stop().await;
}

async fn missing_malformed_and_foreign_tokens_get_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let none = app.call(Method::GET, "/api/v1/patients", None, None).await.expect_problem(401, "unauthorized");
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    app.get("/api/v1/patients", "not-a-jwt").await.expect_problem(401, "unauthorized");
    // A structurally valid token signed with another key.
    let foreign = healthcore::auth::TokenIssuer::new(b"another-key-another-key-another-key!!", 60).issue(
        &healthcore::auth::Principal {
            user_id: uuid::Uuid::now_v7(),
            role: healthcore::domain::Role::Admin,
            patient_id: None,
        },
    );
    app.get("/api/v1/patients", &foreign.token).await.expect_problem(401, "unauthorized");
    app.stop().await;
}

async fn login_requires_both_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply =
        app.call(Method::POST, "/api/v1/auth/token", None, Some(json!({}))).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("username".into(), "required".into()), ("password".into(), "required".into())]);
    app.stop().await;
}

on_both_backends!(
    a_valid_login_returns_a_bearer_token_for_me,
    wrong_password_and_unknown_user_get_the_same_401,
    logins_are_audited_with_their_outcome,
    missing_malformed_and_foreign_tokens_get_401,
    login_requires_both_fields,
);
