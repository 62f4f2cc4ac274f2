//! The OpenAPI document as tools no one here wrote read it (PyPI, installed by `scripts/test`):
//! openapi-spec-validator checks that it is valid OpenAPI 3.1, and openapi-python-client generates
//! a client from it, through which `tests/contract/booking_flow.py` runs the README's booking flow
//! against the real server. The client raises on any status the document does not describe.

use std::path::Path;
use std::process::{Command, Output};

use reqwest::Method;

use crate::helpers::{ADMIN_PASSWORD, Backend, TestApp};
use crate::on_both_backends;

fn run(program: &str, configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(program);
    configure(&mut command);
    let output = command.output().unwrap_or_else(|e| {
        panic!("{program} is installed (run scripts/test, or source scripts/services.sh && ensure_fuzzers): {e}")
    });
    assert!(
        output.status.success(),
        "{program} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

async fn a_client_generated_from_the_document_runs_the_booking_flow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let spec = app.call(Method::GET, "/api/openapi.json", None, None).await.expect(200).body;
    let folder = std::env::temp_dir().join(format!("hc_contract_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&folder).unwrap();
    let document = folder.join("openapi.json");
    std::fs::write(&document, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    // Formatting the generated code is not what is tested; the generator would run ruff.
    std::fs::write(folder.join("config.yaml"), "post_hooks: []\n").unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/booking_flow.py");
    let base_url = app.url("");

    let (validated, flow) = tokio::task::spawn_blocking({
        let folder = folder.clone();
        move || {
            let validated = run("openapi-spec-validator", |c| {
                c.arg(&document);
            });
            run("openapi-python-client", |c| {
                c.args(["generate", "--meta", "none", "--path"]).arg(&document);
                c.arg("--config").arg(folder.join("config.yaml"));
                c.arg("--output-path").arg(folder.join("healthcore_client"));
                c.current_dir(&folder);
            });
            let flow = run("contract-python", |c| {
                c.arg(&script).args([&base_url, ADMIN_PASSWORD]).env("PYTHONPATH", &folder);
            });
            (validated, flow)
        }
    })
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&validated.stdout).contains("OK"), "{validated:?}");

    // What the client did, as the server has it.
    let done: serde_json::Value = serde_json::from_slice(&flow.stdout).unwrap();
    assert_eq!(done["overlap_status"], 409, "{done}");
    assert_eq!(done["overlap_type"], "https://healthcore.dev/problems/double-booking");
    let appointment_id = done["appointment_id"].as_str().unwrap();
    let stored = app.get(&format!("/api/v1/appointments/{appointment_id}"), &app.admin_token).await.expect(200).body;
    assert_eq!(stored["status"], "cancelled");
    assert_eq!(stored["cancellation_reason"], "patient is travelling");
    assert_eq!(stored["patient_id"], done["patient_id"]);
    assert_eq!(stored["practitioner_id"], done["practitioner_id"]);
    assert_eq!(stored["start"], "2030-01-15T09:00:00Z");
    let patients = app.get("/api/v1/patients?name=Lovelace", &app.admin_token).await.expect(200).body;
    assert_eq!(patients["page"]["total"], 1, "the retried registration made no second patient");
    std::fs::remove_dir_all(&folder).unwrap();
    app.stop().await;
}

on_both_backends!(a_client_generated_from_the_document_runs_the_booking_flow);
