//! The shipped Prometheus configuration is valid, and a real Prometheus (Debian's package, installed
//! by `scripts/test`) scrapes a running HealthCore with it and answers queries on its metrics.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Backend, TestApp, eventually};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/prometheus.yml");
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/rules/healthcore.yml");
const RULE_TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/tests/healthcore_test.yml");
const RUNBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/RUNBOOK.md");

fn promtool(args: &[&str]) {
    let output = Command::new("promtool").args(args).output().expect("promtool is installed");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?}:\n{report}");
}

const SHIPPED_FOR_KUBERNETES: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/prometheus-kubernetes.yml");

#[test]
fn the_shipped_prometheus_configs_are_valid() {
    promtool(&["check", "config", SHIPPED]);
    promtool(&["check", "config", SHIPPED_FOR_KUBERNETES]);
}

#[test]
fn the_rules_are_valid_and_their_unit_tests_pass() {
    promtool(&["check", "rules", RULES]);
    promtool(&["test", "rules", RULE_TESTS]);
}

pub fn yaml(path: &str) -> Value {
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every rule of the rules file: (alert name or recorded name, expression, the rule).
pub fn rules() -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for group in yaml(RULES)["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule.get("alert").or_else(|| rule.get("record")).unwrap().as_str().unwrap().to_owned();
            all.push((name, rule["expr"].as_str().unwrap().to_owned(), rule.clone()));
        }
    }
    all
}

#[test]
fn every_alert_is_documented_in_the_runbook_and_tested_firing_and_quiet() {
    let runbook = std::fs::read_to_string(RUNBOOK).unwrap();
    let tests = yaml(RULE_TESTS);
    let cases: Vec<&Value> =
        tests["tests"].as_array().unwrap().iter().flat_map(|t| t["alert_rule_test"].as_array().unwrap()).collect();
    for (name, _, rule) in rules().into_iter().filter(|(_, _, rule)| rule.get("alert").is_some()) {
        for key in ["summary", "description", "runbook_url"] {
            assert!(rule["annotations"][key].is_string(), "{name} has no {key}");
        }
        let anchor = rule["annotations"]["runbook_url"].as_str().unwrap().rsplit('#').next().unwrap().to_owned();
        assert_eq!(anchor, name.to_lowercase(), "{name}: runbook anchor");
        assert!(runbook.contains(&format!("### {name}")), "docs/RUNBOOK.md has no section for {name}");
        let of_this: Vec<&&Value> = cases.iter().filter(|c| c["alertname"] == name.as_str()).collect();
        assert!(of_this.iter().any(|c| !c["exp_alerts"].as_array().unwrap().is_empty()), "{name}: no firing case");
        assert!(of_this.iter().any(|c| c["exp_alerts"].as_array().unwrap().is_empty()), "{name}: no quiet case");
    }
}

/// A real Prometheus (Debian's package) on a free loopback port, running the shipped configuration
/// with its API job pointed at a test app, scraping and evaluating rules every second; stopped and
/// its folder removed when dropped.
pub struct RealPrometheus {
    _process: ToolProcess,
    port: u16,
    client: reqwest::Client,
}

/// A tool's process and the temporary folder of its configuration and data: stopped and removed
/// when dropped.
pub struct ToolProcess {
    pub child: Child,
    pub folder: std::path::PathBuf,
}

impl Drop for ToolProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

impl RealPrometheus {
    pub fn start(app: &TestApp, with_rules: bool) -> RealPrometheus {
        RealPrometheus::start_scraping(app, &[], with_rules)
    }

    /// As `start`, with the shipped consumers job pointed at `consumer_targets` (host:port of each
    /// `healthcore consume` process's metrics address).
    pub fn start_scraping(app: &TestApp, consumer_targets: &[String], with_rules: bool) -> RealPrometheus {
        let folder = new_folder("prometheus");
        let mut config = yaml(SHIPPED);
        config["global"]["scrape_interval"] = "1s".into();
        config["global"]["evaluation_interval"] = "1s".into();
        // No Alertmanager here: the shipped one's host name does not resolve.
        config.as_object_mut().unwrap().remove("alerting");
        if with_rules {
            std::fs::copy(RULES, folder.join("rules.yml")).unwrap();
            config["rule_files"] = serde_json::json!([folder.join("rules.yml").display().to_string()]);
        } else {
            config.as_object_mut().unwrap().remove("rule_files");
        }
        let jobs = config["scrape_configs"].as_array_mut().unwrap();
        jobs.retain(|job| {
            job["job_name"] == "healthcore-api"
                || (job["job_name"] == "healthcore-consumers" && !consumer_targets.is_empty())
        });
        assert_eq!(jobs.len(), 1 + usize::from(!consumer_targets.is_empty()), "the shipped config has these jobs");
        let api = app.base_url.trim_start_matches("http://").to_owned();
        for job in jobs.iter_mut() {
            let targets =
                if job["job_name"] == "healthcore-api" { vec![api.clone()] } else { consumer_targets.to_vec() };
            job["static_configs"][0]["targets"] = serde_json::json!(targets);
        }
        RealPrometheus::launch(folder, &serde_norway::to_string(&config).unwrap())
    }

    /// The shipped configuration and rules with nothing changed but addresses: each shipped
    /// `host:port` of `addresses` replaced by where that process listens here, and the rules path by
    /// this Prometheus's copy of the rules file.
    pub fn start_as_shipped(addresses: &[(&str, String)]) -> RealPrometheus {
        let folder = new_folder("prometheus");
        let mut config = std::fs::read_to_string(SHIPPED).unwrap();
        for (shipped, here) in addresses {
            assert!(config.contains(shipped), "the shipped configuration names {shipped}");
            config = config.replace(shipped, here);
        }
        std::fs::copy(RULES, folder.join("rules.yml")).unwrap();
        config = config.replace("/etc/prometheus/rules/*.yml", &folder.join("rules.yml").display().to_string());
        RealPrometheus::launch(folder, &config)
    }

    fn launch(folder: std::path::PathBuf, config: &str) -> RealPrometheus {
        let config_path = folder.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", folder.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (scripts/test installs Debian's prometheus package)");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        RealPrometheus { _process: ToolProcess { child, folder }, port, client }
    }

    /// The whole reply of an instant query (`status`, `data.result`, or `error`).
    pub async fn query(&self, expression: &str) -> Value {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        match self.client.get(url).query(&[("query", expression)]).send().await {
            Ok(reply) => reply.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// The value of the first series an expression returns, once it returns one.
    pub async fn first_value(&self, expression: &str) -> Option<String> {
        let reply = self.query(expression).await;
        reply["data"]["result"].as_array()?.first()?["value"][1].as_str().map(str::to_owned)
    }
}

/// A new empty folder for a tool's configuration and data.
pub fn new_folder(tool: &str) -> std::path::PathBuf {
    let folder = std::env::temp_dir().join(format!("hc_{tool}_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_api_with_the_shipped_job() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_patient("Scraped", "Patient").await;
    let prometheus = RealPrometheus::start(&app, false);
    let created = eventually("Prometheus to scrape the patient counter", || {
        prometheus.first_value(r#"healthcore_patients_created_total{job="healthcore-api"}"#)
    })
    .await;
    assert_eq!(created, "1");
    assert_eq!(prometheus.first_value(r#"up{job="healthcore-api"}"#).await.as_deref(), Some("1"));
    // Every recording and alert expression parses and evaluates on the real server.
    for (name, expression, _) in rules() {
        let reply = prometheus.query(&expression).await;
        assert_eq!(reply["status"], "success", "{name}: {reply}");
    }
    drop(prometheus);
    app.stop().await;
}
