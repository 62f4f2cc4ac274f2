//! The shipped Prometheus configuration is valid, and a real Prometheus (Debian's package, installed
//! by `scripts/test`) scrapes a running HealthCore with it and answers queries on its metrics.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Backend, TestApp, eventually};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/prometheus.yml");

#[test]
fn the_shipped_prometheus_config_is_valid() {
    let output = Command::new("promtool").args(["check", "config", SHIPPED]).output().expect("promtool is installed");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Stops the Prometheus process however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_api_with_the_shipped_job() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_patient("Scraped", "Patient").await;

    // The shipped file, pointed at this app and scraping every second.
    let mut config: Value = serde_norway::from_str(&std::fs::read_to_string(SHIPPED).unwrap()).unwrap();
    config["global"]["scrape_interval"] = "1s".into();
    config.as_object_mut().unwrap().remove("rule_files");
    let jobs = config["scrape_configs"].as_array_mut().unwrap();
    jobs.retain(|job| job["job_name"] == "healthcore-api");
    assert_eq!(jobs.len(), 1, "the shipped config has a job for the API");
    let target = app.base_url.trim_start_matches("http://").to_owned();
    jobs[0]["static_configs"] = serde_json::json!([{"targets": [target]}]);
    let folder = std::env::temp_dir().join(format!("hc_prometheus_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&folder).unwrap();
    let config_path = folder.join("prometheus.yml");
    std::fs::write(&config_path, serde_norway::to_string(&config).unwrap()).unwrap();

    let port = free_port();
    let _prometheus = Running(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", folder.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (scripts/test installs Debian's prometheus package)"),
    );
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let query = |expression: &'static str| {
        let client = client.clone();
        async move {
            let url = format!("http://127.0.0.1:{port}/api/v1/query");
            let reply = client.get(url).query(&[("query", expression)]).send().await.ok()?;
            let body: Value = reply.json().await.ok()?;
            let result = body["data"]["result"].as_array()?.first()?.clone();
            result["value"][1].as_str().map(str::to_owned)
        }
    };
    let created = eventually("Prometheus to scrape the patient counter", || {
        query(r#"healthcore_patients_created_total{job="healthcore-api"}"#)
    })
    .await;
    assert_eq!(created, "1");
    assert_eq!(query(r#"up{job="healthcore-api"}"#).await.as_deref(), Some("1"));
    let _ = std::fs::remove_dir_all(&folder);
    app.stop().await;
}
