//! The shipped Alertmanager configuration is valid (`amtool`, Debian's `prometheus-alertmanager`,
//! installed by `scripts/test`), routes every alert of the rules file by its severity, and inhibits
//! only alerts that exist.

use std::process::Command;

use serde_json::Value;

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
