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
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self';") && policy.contains("connect-src 'self';"), "{policy}");
    let html = response.text().await.unwrap();
    let script = app.client.get(app.url("/api/docs/docs.js")).send().await.unwrap().text().await.unwrap();
    assert!(script.contains("/api/openapi.json"));
    for page in [&html, &script] {
        assert!(!page.contains("https://") && !page.contains("http://"), "the page must load nothing from elsewhere");
    }
    for asset in ["/api/docs/swagger-ui-bundle.js", "/api/docs/swagger-ui.css"] {
        app.call(Method::GET, asset, None, None).await.expect(200);
    }
    app.stop().await;
}

/// Swagger UI at `/api/docs`, in Debian's headless Chromium (`tests/contract/docs_page.py` drives it
/// over the DevTools protocol): the operations render, a token goes in through "Authorize", and
/// "Try it out" → "Execute" on `GET /api/v1/auth/me` gets this server's answer for that token, with
/// nothing refused by the page's Content-Security-Policy.
async fn a_call_can_be_made_from_the_documentation_page_in_a_browser(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.get("/api/v1/auth/me", &app.admin_token).await.expect(200).body;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/docs_page.py");
    let (base_url, token) = (app.url(""), app.admin_token.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(&script)
            .args([&base_url, &token])
            .output()
            .expect("python3 runs the browser script (chromium: source scripts/services.sh && ensure_browser)")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let page: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(page["operations"], 39, "every documented operation renders: {page}");
    assert_eq!(page["status"], "200", "{page}");
    let shown: serde_json::Value = serde_json::from_str(page["body"].as_str().unwrap()).unwrap();
    assert_eq!(shown, me, "the page called this server with the token it was given");
    assert_eq!(page["errors"], serde_json::json!([]), "the page logged errors");
    app.stop().await;
}

/// The schema a `$ref` names, or the schema itself.
fn resolved<'a>(spec: &'a serde_json::Value, schema: &'a serde_json::Value) -> &'a serde_json::Value {
    match schema["$ref"].as_str() {
        Some(reference) => &spec["components"]["schemas"][reference.rsplit('/').next().unwrap()],
        None => schema,
    }
}

/// Found on `main` (issue 13): the request schemas marked no field required and declared no enum,
/// while the server refused a patient without a name or with a `sex` outside four values. Now every
/// request body of the served document is checked against the running server: an empty body is
/// refused naming exactly the fields the document says are required, each with the rule
/// `required`; and a value outside a declared enum is refused naming its field.
async fn request_schemas_state_the_required_fields_and_enums_the_server_enforces(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let spec = app.call(Method::GET, "/api/openapi.json", None, None).await.expect(200).body;
    // Records that exist, so that a route reaches the body's rules rather than a 404.
    let patient = app.create_patient("Ada", "Lovelace").await;
    let practitioner = app.create_practitioner("GMC-1").await;
    let appointment = app.started_appointment(patient, practitioner, 1).await;
    let admin = app.get("/api/v1/auth/me", &app.admin_token).await.expect(200).body["user_id"].clone();
    let existing = |path: &str| {
        let id = [("/patients/", patient), ("/practitioners/", practitioner), ("/appointments/", appointment)]
            .into_iter()
            .find(|(prefix, _)| path.contains(prefix))
            .map_or_else(|| admin.as_str().unwrap().to_owned(), |(_, id)| id.to_string());
        path.replace("{id}", &id)
    };
    let (mut bodies, mut enums) = (0, 0);
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(body) = operation.get("requestBody") else { continue };
            let schema = resolved(&spec, &body["content"]["application/json"]["schema"]);
            let properties = schema["properties"].as_object().unwrap();
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let path = existing(path);
            let mut required: Vec<&str> =
                schema["required"].as_array().into_iter().flatten().map(|f| f.as_str().unwrap()).collect();
            required.sort_unstable();

            let reply = app.call(method.clone(), &path, Some(&app.admin_token), Some(serde_json::json!({}))).await;
            let errors = reply.body["errors"].as_array().cloned().unwrap_or_default();
            let mut refused_as_missing: Vec<&str> = errors
                .iter()
                .filter(|e| e["rule"] == "required" && properties.contains_key(e["field"].as_str().unwrap()))
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            refused_as_missing.sort_unstable();
            assert_eq!(refused_as_missing, required, "{method} {path}: {{}} got {}: {}", reply.status, reply.body);
            if !required.is_empty() {
                assert_eq!(reply.status.as_u16(), 422, "{method} {path}: {}", reply.body);
            }
            bodies += 1;

            for (field, property) in properties {
                let Some(values) = resolved(&spec, property)["enum"].as_array() else { continue };
                assert!(!values.is_empty());
                let body = serde_json::json!({ field.as_str(): "not-one-of-them" });
                let reply = app.call(method.clone(), &path, Some(&app.admin_token), Some(body)).await;
                let named = reply.body["errors"].as_array().into_iter().flatten().any(|e| e["field"] == *field);
                assert!(reply.status.as_u16() == 422 && named, "{method} {path} {field}: {}", reply.body);
                enums += 1;
            }
        }
    }
    assert!(bodies >= 13 && enums >= 5, "{bodies} bodies, {enums} enums checked");
    app.stop().await;
}

on_both_backends!(
    every_documented_operation_is_served_and_every_route_documented,
    every_operation_declares_its_problem_responses_and_auth,
    the_documentation_page_is_served_without_outside_assets,
    request_schemas_state_the_required_fields_and_enums_the_server_enforces,
    a_call_can_be_made_from_the_documentation_page_in_a_browser,
);
