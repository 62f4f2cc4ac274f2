//! The Grafana provisioning: six dashboards whose every panel has a unit and a description and
//! whose every query runs on a real Prometheus scraping a real HealthCore that has served a
//! booking flow, consumed its events, delivered webhooks and run every job. A query must return at
//! least one series unless its panel says it is empty while nothing fails. Every metric HealthCore
//! exposes is used by a panel or a rule.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};

use healthcore::testing::consumers::ConsumerGroup;
use healthcore::testing::jobs::{Job, Scheduler};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, booking, eventually, healthcore_command, test_config};
use crate::prometheus::{RealPrometheus, rules, yaml};
use crate::webhook_receiver::WebhookReceiver;

const DASHBOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/dashboards");
const DATASOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/provisioning/datasources/prometheus.yml");
const PROVIDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/provisioning/dashboards/healthcore.yml");
/// A panel whose description says this returns series only when something goes wrong.
const ERROR_ONLY: &str = "Empty while";

fn dashboards() -> Vec<Value> {
    let mut all: Vec<Value> = std::fs::read_dir(DASHBOARDS)
        .unwrap()
        .map(|entry| serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap())
        .collect();
    all.sort_by_key(|d| d["uid"].as_str().unwrap().to_owned());
    all
}

/// The metric and recorded-series names an expression reads.
fn series_names(expr: &str) -> std::collections::BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("healthcore_") || word.starts_with("healthcore:") || *word == "up")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_alert_links_the_panel_that_shows_what_it_watches() {
    let dashboards = dashboards();
    for (name, expr, rule) in crate::prometheus::rules().into_iter().filter(|(_, _, rule)| rule.get("alert").is_some())
    {
        let link = rule["annotations"]["dashboard"].as_str().unwrap_or_else(|| panic!("{name} has no dashboard"));
        let (uid, panel) = link
            .strip_prefix("/d/")
            .and_then(|rest| rest.split_once("?viewPanel="))
            .unwrap_or_else(|| panic!("{name}: {link} is not /d/<uid>?viewPanel=<id>"));
        let dashboard =
            dashboards.iter().find(|d| d["uid"] == uid).unwrap_or_else(|| panic!("{name}: no dashboard {uid}"));
        let panel = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"].as_u64() == panel.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {uid} has no panel {panel}"));
        let shown: std::collections::BTreeSet<String> = panel["targets"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| series_names(t["expr"].as_str().unwrap()))
            .collect();
        let watched = series_names(&expr);
        assert!(!watched.is_disjoint(&shown), "{name} watches {watched:?}; its panel {link} shows {shown:?}");
    }
}

/// (dashboard, panel, description, expression) of every query.
fn queries() -> Vec<(String, String, String, String)> {
    let mut all = Vec::new();
    for dashboard in dashboards() {
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                all.push((
                    dashboard["title"].as_str().unwrap().to_owned(),
                    panel["title"].as_str().unwrap().to_owned(),
                    panel["description"].as_str().unwrap_or_default().to_owned(),
                    target["expr"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    all
}

#[test]
fn the_six_dashboards_are_provisioned_with_units_descriptions_and_variables() {
    let titles: BTreeSet<String> = dashboards().iter().map(|d| d["title"].as_str().unwrap().to_owned()).collect();
    for wanted in [
        "Application overview",
        "Database performance",
        "API endpoint performance",
        "Background jobs",
        "System health overview",
        "Event streaming",
    ] {
        assert!(titles.iter().any(|t| t.ends_with(wanted)), "no '{wanted}' dashboard in {titles:?}");
    }
    let datasource = yaml(DATASOURCE);
    let uid = datasource["datasources"][0]["uid"].as_str().unwrap();
    assert_eq!(yaml(PROVIDER)["providers"][0]["options"]["path"], "/var/lib/grafana/dashboards");
    for dashboard in dashboards() {
        let variables = dashboard["templating"]["list"].as_array().unwrap();
        let source = variables.iter().find(|v| v["type"] == "datasource").expect("a datasource variable");
        assert_eq!(source["current"]["value"], uid, "the datasource variable defaults to the provisioned uid");
        assert!(variables.iter().any(|v| v["name"] == "instance"), "an instance variable");
        for panel in dashboard["panels"].as_array().unwrap() {
            let name = format!("{} / {}", dashboard["title"], panel["title"]);
            assert!(panel["description"].as_str().is_some_and(|d| d.len() > 10), "{name}: description");
            assert!(panel["fieldConfig"]["defaults"]["unit"].as_str().is_some_and(|u| !u.is_empty()), "{name}: unit");
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{name}: datasource variable");
        }
    }
    for (dashboard, panel, _, expr) in queries() {
        if expr.contains("rate(") || expr.contains("increase(") {
            assert!(expr.contains("$__rate_interval"), "{dashboard} / {panel}: use $__rate_interval in {expr}");
        }
        if expr.starts_with("healthcore") || expr.contains("{") {
            assert!(expr.contains("$instance") || !expr.contains('{'), "{dashboard} / {panel}: filter on $instance");
        }
    }
}

/// `healthcore consume --group NAME` as its own process, serving `/metrics` on its own address;
/// killed when dropped.
pub struct ConsumerProcess {
    child: Child,
    metrics_addr: String,
}

impl ConsumerProcess {
    pub fn start(app: &TestApp, group: ConsumerGroup, settings: &[(&str, &str)]) -> ConsumerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let child = healthcore_command()
            .args(["consume", "--group", group.as_str()])
            .envs(settings.iter().copied())
            .env("DATABASE_URL", app.database_url())
            .env("HEALTHCORE_METRICS_ADDR", &metrics_addr)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        ConsumerProcess { child, metrics_addr }
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The deployment the dashboards are for: the API (with the relay) publishing to a real
/// Kafka-protocol broker, each consumer group in its own `consume` process, Prometheus scraping all
/// four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_and_rule_query_returns_series_from_a_real_prometheus() {
    let receiver = WebhookReceiver::start().await;
    let webhook = receiver.url("/notify");
    let servers = std::env::var("HEALTHCORE_TEST_KAFKA").expect("./scripts/test starts a broker");
    let prefix = format!("hc{}", uuid::Uuid::new_v4().simple());
    let settings = [
        ("HEALTHCORE_NOTIFICATIONS_WEBHOOK_URL", webhook.as_str()),
        ("HEALTHCORE_NOTIFICATIONS_WEBHOOK_SECRET", "dashboard-test-secret-0123"),
        ("KAFKA_BOOTSTRAP_SERVERS", servers.as_str()),
        ("KAFKA_TOPIC_PREFIX", prefix.as_str()),
        ("HEALTHCORE_RELAY_POLL_MS", "50"),
    ];
    let app = TestApp::spawn_with(Backend::Postgres, &settings).await;
    let consumers: Vec<ConsumerProcess> =
        ConsumerGroup::ALL.into_iter().map(|group| ConsumerProcess::start(&app, group, &settings)).collect();
    let token = app.admin_token.clone();
    // Every kind of traffic the panels show: reads, writes, lists, each appointment transition,
    // a failed sign-in, an unknown route, events, consumers, webhooks and every job.
    let practitioner = app.create_practitioner("LIC-DASH").await;
    let patient = app.create_patient("Dash", "Board").await;
    app.patch(&format!("/api/v1/patients/{patient}"), &token, json!({"phone": "+1 555 0101"})).await.expect(200);
    app.get(&format!("/api/v1/patients/{patient}"), &token).await.expect(200);
    // The reference-data caches: a miss, a hit, an invalidating write; the user lookup twice.
    for _ in 0..2 {
        app.get(&format!("/api/v1/practitioners/{practitioner}"), &token).await.expect(200);
        app.get("/api/v1/auth/me", &token).await.expect(200);
    }
    app.patch(&format!("/api/v1/practitioners/{practitioner}"), &token, json!({"specialty": "cardiology"}))
        .await
        .expect(200);
    app.get("/api/v1/patients", &token).await.expect(200);
    let booked = app.post("/api/v1/appointments", &token, booking(patient, practitioner, 2, 30)).await.expect(201).id();
    app.post(&format!("/api/v1/appointments/{booked}/cancel"), &token, json!({"reason": "r"})).await.expect(200);
    let started = app.started_appointment(patient, practitioner, 3).await;
    app.post(&format!("/api/v1/appointments/{started}/complete"), &token, json!({})).await.expect(200);
    app.started_appointment(patient, practitioner, 40).await;
    app.post("/api/v1/appointments", &token, booking(patient, practitioner, 5, 30)).await.expect(201);
    app.call(
        reqwest::Method::POST,
        "/api/v1/auth/token",
        None,
        Some(json!({"username": "admin", "password": "wrong-password"})),
    )
    .await
    .expect(401);
    app.call(reqwest::Method::GET, "/no/such/route", None, None).await.expect(404);
    let config = std::sync::Arc::new(test_config(&app.database_url(), &settings));
    let jobs = Scheduler::new(app.store.clone(), config, app.metrics.clone());
    let (_stop, mut stopping) = healthcore::testing::shutdown::channel();
    for job in Job::ALL {
        let outcome = jobs.run_once(job, healthcore::testing::clock::now(), &mut stopping).await;
        assert!(matches!(outcome, healthcore::testing::jobs::RunOutcome::Succeeded(_)), "{job:?}: {outcome:?}");
    }
    app.events_settled().await;
    receiver.wait_for("/notify", 3).await;

    let targets: Vec<String> = consumers.iter().map(|c| c.metrics_addr.clone()).collect();
    let prometheus = RealPrometheus::start_scraping(&app, &targets, true);
    // Enough scrapes for rates over the shortest window, the rules evaluated at least once, and
    // every consumer process up and reporting its lag (librdkafka's statistics come every 5 s).
    eventually("five scrapes, an evaluated recording rule and every consumer's lag", || async {
        let scrapes = prometheus.first_value(r#"count_over_time(up{job="healthcore-api"}[1m])"#).await?;
        let evaluated = prometheus.query("healthcore:api_slow_ratio:rate5m").await;
        let consumers_up = prometheus.first_value(r#"sum(up{job="healthcore-consumers"})"#).await?;
        let lag_reported = prometheus.first_value("count(count by (group) (healthcore_consumer_lag_messages))").await?;
        (scrapes.parse::<f64>().ok()? >= 5.0
            && evaluated["data"]["result"].as_array().is_some_and(|r| !r.is_empty())
            && consumers_up == "3"
            && lag_reported == "3")
            .then_some(())
    })
    .await;

    let mut empty = Vec::new();
    for (dashboard, panel, description, expr) in queries() {
        let runnable = expr.replace("$__rate_interval", "5s").replace("$instance", ".*");
        let reply = prometheus.query(&runnable).await;
        assert_eq!(reply["status"], "success", "{dashboard} / {panel}: {expr}: {reply}");
        if reply["data"]["result"].as_array().is_none_or(|r| r.is_empty()) && !description.contains(ERROR_ONLY) {
            empty.push(format!("{dashboard} / {panel}: {expr}"));
        }
    }
    assert!(empty.is_empty(), "queries without series:\n{}", empty.join("\n"));

    // Every metric family HealthCore exposes, in the API or a consumer process, is shown by a panel
    // or watched by a rule.
    let mut scrape = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for consumer in &consumers {
        let url = format!("http://{}/metrics", consumer.metrics_addr);
        scrape.push_str(&app.client.get(url).send().await.unwrap().text().await.unwrap());
    }
    let families: BTreeSet<&str> =
        scrape.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    let used: String =
        queries().into_iter().map(|q| q.3).chain(rules().into_iter().map(|r| r.1)).collect::<Vec<_>>().join("\n");
    let unused: Vec<&&str> = families.iter().filter(|family| !used.contains(**family)).collect();
    assert!(unused.is_empty(), "metrics no panel or rule uses: {unused:?}");
    drop(prometheus);
    drop(consumers);
    app.stop().await;
}
