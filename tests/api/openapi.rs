use reqwest::Method;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

/// Fills `{id}` placeholders so the request reaches the route (the id need not exist).
fn concrete(path: &str) -> String {
    path.replace("{id}", &uuid::Uuid::now_v7().to_string())
}

async fn every_documented_operation_is_served_and_every_route_documented(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let spec = app.call(Method::GET, "/api/openapi.json", None, None).await.expect(200).body;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"), "{}", spec["openapi"]);
    assert_eq!(
        spec,
        serde_json::to_value(healthcore::testing::http::openapi()).unwrap(),
        "served spec equals `healthcore openapi`"
    );
    let paths = spec["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        let documented: Vec<&String> = item.as_object().unwrap().keys().collect();
        for method in ["get", "post", "patch", "put", "delete"] {
            let request_method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let reply =
                app.call(request_method, &concrete(path), Some(&app.admin_token), Some(serde_json::json!({}))).await;
            let routed = reply.body["type"] != "https://healthcore.dev/problems/not-found"
                || reply.body["detail"] != "no such route";
            if documented.iter().any(|m| *m == method) {
                operations += 1;
                assert!(routed, "{method} {path} is documented but not routed");
                assert_ne!(
                    reply.status.as_u16(),
                    405,
                    "{method} {path} is documented but the route refuses the method"
                );
                assert_ne!(reply.status.as_u16(), 500, "{method} {path}: {}", reply.body);
            } else {
                assert_eq!(reply.status.as_u16(), 405, "{method} {path} is served but not documented");
            }
        }
    }
    assert_eq!(operations, 39, "the number of documented operations changed; update this test and the docs");
    app.stop().await;
}

async fn every_operation_declares_its_problem_responses_and_auth(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let spec = app.call(Method::GET, "/api/openapi.json", None, None).await.expect(200).body;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let public = path.starts_with("/health") || path == "/api/v1/auth/token";
            assert_eq!(operation.get("security").is_some(), !public, "{method} {path}: security requirement");
            if !path.starts_with("/health") {
                let errors =
                    operation["responses"].as_object().unwrap().keys().filter(|code| code.starts_with('4')).count();
                assert!(errors > 0, "{method} {path} documents no 4xx response");
            }
        }
    }
    app.stop().await;
}

async fn the_documentation_page_is_served_without_outside_assets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.client.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains("/api/openapi.json"));
    assert!(!html.contains("https://") && !html.contains("http://"), "the page must not load anything from elsewhere");
    app.stop().await;
}

on_both_backends!(
    every_documented_operation_is_served_and_every_route_documented,
    every_operation_declares_its_problem_responses_and_auth,
    the_documentation_page_is_served_without_outside_assets,
);
