use reqwest::Method;
use serde_json::json;

use healthcore::testing::domain::Role;

use crate::helpers::{ADMIN_PASSWORD, Backend, Reply, TestApp, USER_PASSWORD, healthcore_command};
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
    let foreign = healthcore::testing::auth::TokenIssuer::new(b"another-key-another-key-another-key!!", 60).issue(
        &healthcore::testing::auth::Principal {
            user_id: healthcore::testing::domain::UserId::generate(),
            role: healthcore::testing::domain::Role::Admin,
            patient_id: None,
        },
        0,
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

/// An admin, a nurse account and the nurse's token.
async fn with_a_nurse(app: &TestApp) -> (uuid::Uuid, String) {
    let user = healthcore::testing::service::users::create(&app.store, "night-nurse", Role::Nurse, None, USER_PASSWORD)
        .await
        .unwrap();
    (user.id.as_uuid(), app.login("night-nurse", USER_PASSWORD).await)
}

#[track_caller]
fn refused(reply: Reply) {
    reply.expect_problem(401, "unauthorized");
}

async fn a_change_to_an_account_ends_its_tokens_on_the_next_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (nurse, token) = with_a_nurse(&app).await;
    let user_path = format!("/api/v1/users/{nurse}");
    assert_eq!(app.get("/api/v1/auth/me", &token).await.expect(200).body["role"], "nurse");

    // Demoted: the old token (which says nurse) stops working; a new one says receptionist, as does /auth/me.
    app.patch(&user_path, &app.admin_token, json!({"role": "receptionist"})).await.expect(200);
    refused(app.get("/api/v1/auth/me", &token).await);
    refused(app.get("/api/v1/patients", &token).await);
    let token = app.login("night-nurse", USER_PASSWORD).await;
    assert_eq!(app.get("/api/v1/auth/me", &token).await.expect(200).body["role"], "receptionist");

    // Deactivated: the token stops working and signing in is refused; reactivated, it signs in again.
    app.patch(&user_path, &app.admin_token, json!({"active": false})).await.expect(200);
    refused(app.get("/api/v1/patients", &token).await);
    let login = json!({"username": "night-nurse", "password": USER_PASSWORD});
    refused(app.call(Method::POST, "/api/v1/auth/token", None, Some(login.clone())).await);
    app.patch(&user_path, &app.admin_token, json!({"active": true})).await.expect(200);
    let token = app.login("night-nurse", USER_PASSWORD).await;

    // A new password from an admin: the old token and the old password stop working.
    let reset = json!({"password": "a-brand-new-password"});
    app.post(&format!("{user_path}/password"), &app.admin_token, reset).await.expect(200);
    refused(app.get("/api/v1/patients", &token).await);
    refused(app.call(Method::POST, "/api/v1/auth/token", None, Some(login)).await);
    let token = app.login("night-nurse", "a-brand-new-password").await;

    // Changing one's own password ends one's other tokens too.
    let other_device = app.login("night-nurse", "a-brand-new-password").await;
    let change = json!({"current_password": "a-brand-new-password", "new_password": "my-own-new-password"});
    app.call(Method::POST, "/api/v1/auth/password", Some(&token), Some(change)).await.expect(204);
    refused(app.get("/api/v1/patients", &other_device).await);
    let token = app.login("night-nurse", "my-own-new-password").await;

    // Deleted outright, by SQL behind HealthCore's back: the token is refused, not served from a
    // cache (on PostgreSQL a trigger tells every instance as the delete commits).
    use sea_orm::EntityTrait;
    healthcore::testing::store::entities::user::Entity::delete_by_id(nurse).exec(app.store.db()).await.unwrap();
    crate::helpers::eventually("the deleted user's token to be refused", || async {
        (app.get("/api/v1/patients", &token).await.status == 401).then_some(())
    })
    .await;

    let actions: Vec<String> = app
        .audit_events(&format!(
            "actor_id={}&limit=100",
            app.get("/api/v1/auth/me", &app.admin_token).await.body["user_id"].as_str().unwrap()
        ))
        .await
        .iter()
        .filter(|e| e["resource_type"] == "user")
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        ["user.password_reset", "user.activate", "user.deactivate", "user.role_change"],
        "newest first"
    );
    app.stop().await;
}

async fn the_last_active_admin_cannot_be_removed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.get("/api/v1/auth/me", &app.admin_token).await.expect(200);
    let admin = format!("/api/v1/users/{}", me.body["user_id"].as_str().unwrap());
    app.patch(&admin, &app.admin_token, json!({"active": false})).await.expect_problem(409, "last-admin");
    app.patch(&admin, &app.admin_token, json!({"role": "auditor"})).await.expect_problem(409, "last-admin");
    app.get("/api/v1/auth/me", &app.admin_token).await.expect(200);
    let listed = app.get("/api/v1/users", &app.admin_token).await.expect(200);
    assert_eq!(listed.body["items"][0]["username"], "admin");
    assert!(listed.body["items"][0].get("password_hash").is_none());
    app.stop().await;
}

async fn a_command_line_change_takes_effect_on_the_running_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, token) = with_a_nurse(&app).await;
    app.get("/api/v1/patients", &token).await.expect(200);
    let url = app.database_url();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut command = healthcore_command();
        command.args(args).env("DATABASE_URL", &url).stdin(std::process::Stdio::piped());
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(run(&["user", "list"], None).contains("night-nurse\tnurse\tactive"));
    run(&["user", "deactivate", "--username", "night-nurse"], None);
    // Another process changed it: on PostgreSQL this instance hears it (NOTIFY) within moments; on
    // SQLite accounts are never served from the cache.
    crate::helpers::eventually("the token to be refused", || async {
        (app.get("/api/v1/patients", &token).await.status == 401).then_some(())
    })
    .await;
    run(&["user", "activate", "--username", "night-nurse"], None);
    run(
        &["user", "reset-password", "--username", "night-nurse", "--password-stdin"],
        Some("reset-on-the-command-line\n"),
    );
    let token = app.login("night-nurse", "reset-on-the-command-line").await;
    run(&["user", "set-role", "--username", "night-nurse", "--role", "auditor"], None);
    crate::helpers::eventually("the demoted token to be refused", || async {
        (app.get("/api/v1/audit-events", &token).await.status == 401).then_some(())
    })
    .await;
    let operators = app.audit_events("action=user.deactivate").await;
    assert_eq!(operators[0]["user_agent"], "healthcore cli");
    app.stop().await;
}

async fn sign_in(app: &TestApp, username: &str, password: &str, forwarded_for: Option<&str>) -> Reply {
    let body = json!({"username": username, "password": password});
    let headers: Vec<(&str, &str)> = forwarded_for.map(|f| ("x-forwarded-for", f)).into_iter().collect();
    app.call_with(Method::POST, "/api/v1/auth/token", None, Some(body), &headers).await
}

async fn repeated_wrong_passwords_lock_the_account_out_briefly(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("HEALTHCORE_LOGIN_LOCKOUT_MAX_SECONDS", "2")]).await;
    let (_, _) = with_a_nurse(&app).await;
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..50 {
        *statuses.entry(sign_in(&app, "night-nurse", "not-the-password", None).await.status.as_u16()).or_insert(0) += 1;
    }
    // The five free attempts and the one that starts the lockout are checked; from then on they are
    // refused unchecked (a slow machine may see a lockout end and one more check start the next).
    let (checked, unchecked) = (statuses.get(&401).copied().unwrap_or(0), statuses.get(&429).copied().unwrap_or(0));
    assert!((6..=8).contains(&checked) && checked + unchecked == 50, "{statuses:?}");
    // The right password during the lockout is refused too, with when to come back.
    let refused = sign_in(&app, "night-nurse", USER_PASSWORD, None).await.expect_problem(429, "too-many-attempts");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // The lockout is short: the real user gets in once it ends.
    crate::helpers::eventually("the lockout to end", || async {
        (sign_in(&app, "night-nurse", USER_PASSWORD, None).await.status == 200).then_some(())
    })
    .await;
    // The refusals are audited once per lockout, not once per attempt; lockouts are counted.
    let throttled = app.audit_events("action=auth.login&outcome=denied").await;
    let reasons: Vec<&str> = throttled.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.iter().filter(|r| **r == "throttled_account").count() <= 3, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| **r == "invalid_credentials").count(), checked, "{reasons:?}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("healthcore_login_lockouts_total{scope=\"account\"}"), "lockouts are counted");
    let throttled: usize = metrics
        .lines()
        .find_map(|line| line.strip_prefix("healthcore_logins_total{outcome=\"throttled\"} "))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    // The unchecked wrong ones, the right one during the lockout, and any tried while waiting.
    assert!(throttled > unchecked, "{throttled} throttled sign-ins counted");
    app.stop().await;
}

async fn a_client_address_trying_many_names_is_locked_out(backend: Backend) {
    let settings = [("HEALTHCORE_LOGIN_ADDRESS_FREE_ATTEMPTS", "10"), ("HEALTHCORE_TRUSTED_PROXIES", "127.0.0.1/32")];
    let app = TestApp::spawn_with(backend, &settings).await;
    for n in 0..10 {
        sign_in(&app, &format!("guess-{n}"), "not-the-password", Some("203.0.113.5")).await.expect(401);
    }
    sign_in(&app, "guess-10", "not-the-password", Some("203.0.113.5")).await.expect(401);
    // The address is locked, whatever name it tries next, the admin's included...
    sign_in(&app, "admin", crate::helpers::ADMIN_PASSWORD, Some("203.0.113.5"))
        .await
        .expect_problem(429, "too-many-attempts");
    // ...while the same admin from another address (as the trusted proxy reports it) signs in.
    sign_in(&app, "admin", crate::helpers::ADMIN_PASSWORD, Some("198.51.100.7")).await.expect(200);
    let events = app.audit_events("action=auth.login&outcome=success").await;
    assert_eq!(events[0]["client_addr"], "198.51.100.7", "audit records name the forwarded client");
    // An untrusted peer cannot choose its own address: without the setting the peer counts.
    app.stop().await;
    let app = TestApp::spawn(backend).await;
    sign_in(&app, "admin", crate::helpers::ADMIN_PASSWORD, Some("198.51.100.7")).await.expect(200);
    let events = app.audit_events("action=auth.login&outcome=success").await;
    assert_eq!(events[0]["client_addr"], "127.0.0.1");
    app.stop().await;
}

on_both_backends!(
    repeated_wrong_passwords_lock_the_account_out_briefly,
    a_client_address_trying_many_names_is_locked_out,
    a_change_to_an_account_ends_its_tokens_on_the_next_request,
    the_last_active_admin_cannot_be_removed,
    a_command_line_change_takes_effect_on_the_running_server,
    a_valid_login_returns_a_bearer_token_for_me,
    wrong_password_and_unknown_user_get_the_same_401,
    logins_are_audited_with_their_outcome,
    missing_malformed_and_foreign_tokens_get_401,
    login_requires_both_fields,
);
