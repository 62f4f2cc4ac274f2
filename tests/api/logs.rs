//! The JSON log lines of a whole booking flow, captured from the real subscriber: every line has
//! its keys as real JSON, every line written while serving a request carries that request's
//! correlation ID as a top-level key, and no personal data sent in a request appears anywhere.

use std::io::Write;
use std::sync::{Arc, Mutex};

use healthcore::testing::telemetry::LogFormat;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, booking};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

const CALLER_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn is_hex(value: &Value, len: usize) -> bool {
    value.as_str().is_some_and(|v| v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_flow_logs_correlated_json_lines_without_personal_data() {
    let captured = Captured::default();
    // Tracing as `serve` has it without an exporter: spans exist, so lines carry trace ids.
    let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    healthcore::testing::telemetry::try_init("info", LogFormat::Json, captured.clone(), Some(&tracer_provider))
        .expect("this test process installs the only subscriber");
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.admin_token.clone();
    let call = |method: Method, path: String, body: Option<Value>, correlation: &'static str| {
        let app = &app;
        let token = token.clone();
        async move { app.call_with(method, &path, Some(&token), body, &[("x-correlation-id", correlation)]).await }
    };
    let practitioner = call(
        Method::POST,
        "/api/v1/practitioners".into(),
        Some(json!({"licence_number": "LOG-1", "given_name": "Grace", "family_name": "Hopper", "role": "physician"})),
        "flow-practitioner",
    )
    .await
    .expect(201)
    .id();
    let patient_body = json!({
        "given_name": "Philippa", "family_name": "Phiworthy", "birth_date": "1971-03-04", "sex": "female",
        "email": "philippa.phi@example.org", "phone": "+44 20 7946 0958"
    });
    let patient =
        call(Method::POST, "/api/v1/patients".into(), Some(patient_body), "flow-patient").await.expect(201).id();
    let appointment =
        call(Method::POST, "/api/v1/appointments".into(), Some(booking(patient, practitioner, 30, 30)), "flow-book")
            .await
            .expect(201)
            .id();
    call(
        Method::POST,
        format!("/api/v1/appointments/{appointment}/cancel"),
        Some(json!({"reason": "Phiworthy has a private reason"})),
        "flow-cancel",
    )
    .await
    .expect(200);
    app.call_with(
        Method::GET,
        &format!("/api/v1/patients/{patient}?note=Phiworthy"),
        Some(&token),
        None,
        &[("x-correlation-id", "flow-read"), ("traceparent", CALLER_TRACEPARENT)],
    )
    .await
    .expect(200);
    app.events_settled().await;
    app.stop().await;

    let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect();
    assert!(lines.len() >= 5, "{output}");
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} missing in {line}");
        }
        // A line written inside a request's span carries the request's correlation ID and trace.
        if line.get("route").is_some() {
            assert!(line["correlation_id"].as_str().is_some_and(|c| !c.is_empty()), "{line}");
            assert!(is_hex(&line["trace_id"], 32) && is_hex(&line["span_id"], 16), "{line}");
        }
        assert!(line.as_object().unwrap().keys().all(|k| !k.starts_with("otel.")), "{line}");
    }
    let access: Vec<&Value> = lines.iter().filter(|l| l["target"] == "healthcore::access").collect();
    for correlation in ["flow-practitioner", "flow-patient", "flow-book", "flow-cancel", "flow-read"] {
        let line = access
            .iter()
            .find(|l| l["correlation_id"] == correlation)
            .unwrap_or_else(|| panic!("no access line for {correlation}: {access:?}"));
        assert!(line["status"].is_u64() && line["duration_ms"].is_number(), "{line}");
        assert_eq!(line["role"], "admin");
        assert!(line["user_id"].is_string() && line["method"].is_string(), "{line}");
        assert!(line["route"].as_str().unwrap().starts_with("/api/v1/"), "{line}");
    }
    let read = access.iter().find(|l| l["correlation_id"] == "flow-read").unwrap();
    assert_eq!(read["route"], "/api/v1/patients/{id}", "the template, never the raw path or query");
    assert_eq!(read["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's trace is continued");
    let traces: std::collections::HashSet<&Value> = access.iter().map(|l| &l["trace_id"]).collect();
    assert_eq!(traces.len(), access.len(), "each request without a traceparent starts its own trace");
    for value in ["Philippa", "Phiworthy", "1971-03-04", "philippa.phi", "7946 0958", "private reason"] {
        assert!(!output.contains(value), "'{value}' appears in the logs");
    }
}
