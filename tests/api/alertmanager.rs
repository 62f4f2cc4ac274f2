//! The shipped Alertmanager configuration is valid (`amtool`, Debian's `prometheus-alertmanager`,
//! installed by `scripts/test`), routes every alert of the rules file by its severity, inhibits
//! only alerts that exist, and carries a real alert from a real HealthCore through a real
//! Prometheus and a real Alertmanager to a webhook, firing and then resolved.

use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};
use crate::prometheus::{RealPrometheus, ToolProcess, free_port, new_folder};
use crate::webhook_receiver::{Received, WebhookReceiver};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/alertmanager/alertmanager.yml");

fn amtool(args: &[&str]) -> String {
    let output = Command::new("amtool").args(args).output().expect("amtool is installed");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "amtool {args:?}:\n{report}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The receiver `amtool` routes an alert with these labels to, by the shipped configuration.
fn receiver_of(labels: &[(&str, &str)]) -> String {
    let config = format!("--config.file={SHIPPED}");
    let mut args = vec!["config", "routes", "test", config.as_str()];
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    args.extend(pairs.iter().map(String::as_str));
    amtool(&args)
}

#[test]
fn amtool_accepts_the_shipped_configuration() {
    amtool(&["check-config", SHIPPED]);
}

#[test]
fn every_alert_is_routed_by_its_severity() {
    let receivers = crate::prometheus::yaml(SHIPPED)["receivers"].clone();
    let names: Vec<&str> = receivers.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for (name, _, rule) in crate::prometheus::rules().into_iter().filter(|(_, _, rule)| rule.get("alert").is_some()) {
        let labels = &rule["labels"];
        let severity = labels["severity"].as_str().unwrap_or_else(|| panic!("{name} has no severity"));
        let service = labels["service"].as_str().unwrap_or_else(|| panic!("{name} has no service"));
        let expected = match severity {
            "page" => "healthcore-pages",
            "ticket" => "healthcore-tickets",
            other => panic!("{name}: severity {other} is neither page nor ticket"),
        };
        assert!(names.contains(&expected), "no receiver {expected}");
        let routed = receiver_of(&[("alertname", &name), ("severity", severity), ("service", service)]);
        assert_eq!(routed, expected, "{name} ({severity})");
    }
}

#[test]
fn an_api_outage_silences_exactly_the_slo_alerts() {
    let config = crate::prometheus::yaml(SHIPPED);
    let alerts: Vec<(String, Value)> = crate::prometheus::rules()
        .into_iter()
        .filter(|(_, _, rule)| rule.get("alert").is_some())
        .map(|(name, _, rule)| (name, rule))
        .collect();
    let labels_of =
        |name: &str| &alerts.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no alert {name}")).1["labels"];
    let rule = &config["inhibit_rules"][0];
    // Matchers are `label="value"` or `label=~"regex"`; Alertmanager anchors the regex.
    let matcher = |text: &Value| -> (String, String, bool) {
        let text = text.as_str().unwrap();
        let (label, rest) = text.split_once('=').unwrap();
        let (regex, value) = match rest.strip_prefix('~') {
            Some(value) => (true, value),
            None => (false, rest),
        };
        (label.to_owned(), value.trim_matches('"').to_owned(), regex)
    };
    let source: Vec<_> = rule["source_matchers"].as_array().unwrap().iter().map(matcher).collect();
    let down = source.iter().find(|(label, _, _)| label == "alertname").expect("the source names an alert");
    let source_labels = labels_of(&down.1);
    let (label, pattern, regex) = matcher(&rule["target_matchers"][0]);
    assert_eq!((label.as_str(), regex), ("alertname", true));
    let pattern = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
    let silenced: Vec<&String> = alerts.iter().map(|(name, _)| name).filter(|name| pattern.is_match(name)).collect();
    // The API's error-rate and latency alerts are the ones measured against an SLO.
    let slo_alerts: Vec<&String> =
        alerts.iter().filter(|(_, alert)| alert["labels"]["slo"].is_string()).map(|(name, _)| name).collect();
    assert_eq!(silenced, slo_alerts);
    assert!(!silenced.is_empty());
    for label in rule["equal"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()) {
        for name in &silenced {
            assert_eq!(labels_of(name)[label], source_labels[label], "{name} and {} share {label}", down.1);
        }
    }
}

/// The receivers' URL in the shipped file, which the Compose file replaces with
/// `ALERTMANAGER_WEBHOOK_URL` when the container starts.
const WEBHOOK_PLACEHOLDER: &str = "http://alert-webhook.invalid/set-ALERTMANAGER_WEBHOOK_URL";

/// A real Alertmanager (Debian's `prometheus-alertmanager`) on a free loopback port, running the
/// shipped configuration with its webhook URL set as the Compose file sets it; stopped and its
/// folder removed when dropped.
struct RealAlertmanager {
    _process: ToolProcess,
    port: u16,
}

impl RealAlertmanager {
    fn start(webhook_url: &str) -> RealAlertmanager {
        let folder = new_folder("alertmanager");
        let shipped = std::fs::read_to_string(SHIPPED).unwrap();
        assert!(shipped.contains(WEBHOOK_PLACEHOLDER));
        let config_path = folder.join("alertmanager.yml");
        std::fs::write(&config_path, shipped.replace(WEBHOOK_PLACEHOLDER, webhook_url)).unwrap();
        let port = free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", folder.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // A single Alertmanager: no gossip port to collide with other tests'.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed (scripts/test installs Debian's package)");
        RealAlertmanager { _process: ToolProcess { child, folder }, port }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// The notifications of one alert in the given state (`firing` or `resolved`) among what the
/// webhook received: Alertmanager's webhook body lists the group's alerts with their labels and
/// annotations.
fn notifications_of(received: Vec<Received>, alertname: &str, status: &str) -> Option<Vec<Value>> {
    let found: Vec<Value> = received
        .iter()
        .map(Received::json)
        .filter(|body| {
            body["alerts"].as_array().is_some_and(|alerts| {
                alerts.iter().any(|a| a["labels"]["alertname"] == alertname && a["status"] == status)
            })
        })
        .collect();
    (!found.is_empty()).then_some(found)
}

/// Drives a real HealthCore into an alerting state and follows the alert to a person: the broker
/// goes away while writes continue, so events wait in the outbox; the shipped Prometheus (rules,
/// `for:` and intervals as shipped; only the addresses are this machine's) fires
/// HealthCoreOutboxBacklogOld after its five minutes, the shipped Alertmanager routes it to the page
/// receiver, and once the broker is back and the outbox drains, the resolved notification follows.
/// The outbox's age is made old by moving the application's clock, which the relay's gauge reads;
/// everything after that runs on the tools' own time, so this test takes about seven minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_outbox_pages_a_person_and_the_page_resolves_when_events_flow_again() {
    let receiver = WebhookReceiver::start().await;
    let alertmanager = RealAlertmanager::start(&receiver.url("/alerts"));
    let cluster = MockCluster::new(1).unwrap();
    let servers = cluster.bootstrap_servers();
    let prefix = format!("hc{}", uuid::Uuid::new_v4().simple());
    let app = TestApp::spawn_with(Backend::Sqlite, &crate::kafka::kafka_settings(&servers, &prefix)).await;
    app.create_patient("Before", "Outage").await;
    crate::kafka::drained(&app, Duration::from_secs(20)).await;

    cluster.broker_down(1).unwrap();
    app.create_patient("During", "Outage").await;
    app.clock.advance(chrono::Duration::minutes(10));
    let api = app.base_url.trim_start_matches("http://").to_owned();
    // The API process runs the relay and the consumers here, so every HealthCore job scrapes it.
    let prometheus = RealPrometheus::start_as_shipped(&[
        ("api:8000", api.clone()),
        ("relay:9464", api.clone()),
        ("consumer-analytics:9464", api.clone()),
        ("consumer-notifications:9464", api.clone()),
        ("consumer-integrations:9464", api.clone()),
        ("alertmanager:9093", alertmanager.address()),
    ]);

    let alert = "HealthCoreOutboxBacklogOld";
    let (_, _, rule) = crate::prometheus::rules().into_iter().find(|(name, _, _)| name == alert).unwrap();
    let firing = receiver
        .wait_until("the outbox alert, firing", Duration::from_secs(540), |received| {
            notifications_of(received, alert, "firing")
        })
        .await;
    let body = &firing[0];
    assert_eq!(body["receiver"], "healthcore-pages", "{body:#}");
    assert_eq!(body["groupLabels"], serde_json::json!({"alertname": alert, "service": "healthcore"}), "{body:#}");
    let fired = body["alerts"].as_array().unwrap().iter().find(|a| a["labels"]["alertname"] == alert).unwrap();
    for (label, value) in rule["labels"].as_object().unwrap() {
        assert_eq!(&fired["labels"][label], value, "label {label}: {fired:#}");
    }
    assert_eq!(fired["annotations"], rule["annotations"], "every annotation as the rule states it");

    cluster.broker_up(1).unwrap();
    crate::kafka::drained(&app, Duration::from_secs(60)).await;
    let resolved = receiver
        .wait_until("the outbox alert, resolved", Duration::from_secs(240), |received| {
            notifications_of(received, alert, "resolved")
        })
        .await;
    assert_eq!(resolved[0]["receiver"], "healthcore-pages");
    assert_eq!(resolved[0]["status"], "resolved", "{:#}", resolved[0]);
    drop(prometheus);
    drop(alertmanager);
    app.stop().await;
}
