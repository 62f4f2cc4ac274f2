//! The deployment files, checked as far as a machine without a container engine or a cluster can:
//! every Compose and Kubernetes file parses; every setting they give a HealthCore process is one the
//! binary knows, and together they form a configuration it accepts; every command is one the
//! binary parses; ports, probe paths and the metrics path are the ones the code serves; Prometheus
//! and Grafana mount exactly the files the dashboards and Prometheus tests verify; images are pinned.
//! `yamllint`, `hadolint` and `kubernetes-validate` (strict, against the Kubernetes API schemas) —
//! all from PyPI, installed by `scripts/test` — lint them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use clap::Parser;
use healthcore::cli::{Cli, Command};
use healthcore::config::{Config, SETTINGS};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, healthcore_command};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub(crate) fn path(relative: &str) -> PathBuf {
    Path::new(ROOT).join(relative)
}

/// Every YAML document of a file, merge keys (`<<`) applied, as JSON values.
pub(crate) fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            let mut value: serde_norway::Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
            value.apply_merge().unwrap();
            serde_json::to_value(value).unwrap()
        })
        .collect()
}

/// `${NAME:-default}` as Compose expands it with nothing set.
fn expand_defaults(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${…}") + start;
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, default)| default));
        rest = &rest[end + 1..];
    }
    out + rest
}

fn string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks a HealthCore process's settings and command line; returns the configuration it runs with.
fn accepted(what: &str, env: &BTreeMap<String, String>, args: &[String]) -> (Config, Command) {
    let known: BTreeSet<&str> = SETTINGS.iter().map(|s| s.name).collect();
    for name in env.keys() {
        assert!(known.contains(name.as_str()), "{what}: {name} is not a HealthCore setting");
    }
    let config = Config::from_map(env.clone().into_iter().collect::<HashMap<_, _>>())
        .unwrap_or_else(|e| panic!("{what}: the binary refuses its settings: {e}"));
    assert_eq!(config.backend, healthcore::testing::store::Backend::Postgres, "{what} runs on PostgreSQL");
    assert!(config.signing_key().is_ok(), "{what}: PostgreSQL needs HEALTHCORE_JWT_SECRET");
    assert!(config.kafka.is_some(), "{what}: KAFKA_BOOTSTRAP_SERVERS is set");
    let cli = Cli::try_parse_from(std::iter::once("healthcore".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("{what}: the binary does not parse {args:?}: {e}"));
    (config, cli.command.unwrap_or(Command::Serve))
}

/// An image reference with a version tag: never `latest`, never untagged.
fn assert_pinned(what: &str, image: &str) {
    let tag = image.rsplit_once(':').map(|(_, tag)| tag).filter(|tag| !tag.contains('/'));
    assert!(
        tag.is_some_and(|tag| tag != "latest" && tag.chars().any(|c| c.is_ascii_digit())),
        "{what}: image {image} is not pinned to a version"
    );
}

fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

/// The Prometheus scrape targets of the shipped configuration, by job.
fn scrape_targets() -> BTreeMap<String, Vec<String>> {
    let config = crate::prometheus::yaml(&path("deploy/prometheus/prometheus.yml").display().to_string());
    config["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            let targets = job["static_configs"][0]["targets"].as_array().unwrap().iter().map(string).collect();
            (string(&job["job_name"]), targets)
        })
        .collect()
}

#[test]
fn the_compose_stack_runs_every_part_with_settings_ports_and_files_the_code_and_tests_agree_on() {
    let compose_dir = path("deploy/compose");
    let compose = documents(&compose_dir.join("docker-compose.yml")).remove(0);
    let services = compose["services"].as_object().unwrap();
    for required in ["api", "relay", "consumer-analytics", "consumer-notifications", "consumer-integrations"] {
        assert!(services.contains_key(required), "no {required} service");
    }
    for (name, service) in services {
        assert_pinned(name, service["image"].as_str().unwrap());
        assert!(service["healthcheck"]["test"].is_array(), "{name} has no healthcheck");
        if let Some(depends) = service["depends_on"].as_object() {
            for (on, condition) in depends {
                assert!(services.contains_key(on), "{name} depends on unknown {on}");
                assert_eq!(condition["condition"], "service_healthy", "{name} waits for {on} to be healthy");
            }
        }
    }
    assert!(!services.keys().any(|s| s.contains("zookeeper")), "KRaft: no ZooKeeper");
    let kafka = &services["kafka"];
    assert!(string(&kafka["image"]).starts_with("apache/kafka:"), "the official image");
    assert!(string(&kafka["environment"]["KAFKA_PROCESS_ROLES"]).contains("controller"), "KRaft mode");

    // Every HealthCore process: known settings the binary accepts, a command it parses, a
    // healthcheck probing what it serves, and the port Prometheus scrapes.
    let mut listening: BTreeMap<String, u16> = BTreeMap::new();
    for (name, service) in services.iter().filter(|(_, s)| string(&s["image"]).starts_with("healthcore:")) {
        let env: BTreeMap<String, String> = service["environment"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), expand_defaults(&string(v))))
            .collect();
        let args: Vec<String> = service["command"].as_array().unwrap().iter().map(string).collect();
        let (config, command) = accepted(name, &env, &args);
        for dependency in ["postgres", "kafka"] {
            assert!(service["depends_on"].get(dependency).is_some(), "{name} waits for {dependency}");
        }
        let probe: Vec<String> = service["healthcheck"]["test"].as_array().unwrap()[1..].iter().map(string).collect();
        let (_, probe) = accepted(&format!("{name} healthcheck"), &env, &probe[1..]);
        let Command::Healthcheck { metrics } = probe else {
            panic!("{name}: the healthcheck is `healthcore healthcheck`")
        };
        match command {
            Command::Serve => {
                assert!(!metrics, "{name} serves /health/live");
                assert!(config.metrics_addr.is_none(), "the API serves /metrics on its own port");
                listening.insert(name.clone(), config.bind.port());
                let published = string(&service["ports"][0]);
                assert_eq!(port_of(&published), config.bind.port(), "{name} publishes the port it binds");
            }
            Command::Relay | Command::Consume(_) => {
                assert!(metrics, "{name} serves only /metrics, which its healthcheck probes");
                listening.insert(name.clone(), config.metrics_addr.expect("a metrics address").port());
            }
            other => panic!("{name} runs {other:?}"),
        }
    }
    let targets: Vec<String> = scrape_targets().into_values().flatten().collect();
    for target in &targets {
        let (host, port) = target.split_once(':').unwrap();
        assert_eq!(listening.get(host), Some(&port.parse().unwrap()), "Prometheus scrapes {target}");
    }
    assert_eq!(targets.len(), listening.len(), "every HealthCore process is scraped");

    // Prometheus and Grafana mount exactly the files the suite verifies.
    let mounts = |service: &str| -> BTreeMap<String, PathBuf> {
        services[service]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(string)
            .filter(|v| v.starts_with('.'))
            .map(|v| {
                let mut parts = v.split(':');
                let source = compose_dir.join(parts.next().unwrap()).canonicalize().unwrap();
                (parts.next().unwrap().to_owned(), source)
            })
            .collect()
    };
    let flags: Vec<String> = services["prometheus"]["command"].as_array().unwrap().iter().map(string).collect();
    assert_eq!(flag(&flags, "storage.tsdb.retention.time"), "30d", "history is bounded in time");
    assert!(bytes(flag(&flags, "storage.tsdb.retention.size")) > 0, "and in size");
    let prometheus = mounts("prometheus");
    assert_eq!(prometheus["/etc/prometheus/prometheus.yml"], path("deploy/prometheus/prometheus.yml"));
    assert_eq!(prometheus["/etc/prometheus/rules"], path("deploy/prometheus/rules"));
    let shipped = crate::prometheus::yaml(&path("deploy/prometheus/prometheus.yml").display().to_string());
    assert_eq!(shipped["rule_files"][0], "/etc/prometheus/rules/*.yml", "the rules are where they are mounted");
    let grafana = mounts("grafana");
    assert_eq!(grafana["/etc/grafana/provisioning"], path("deploy/grafana/provisioning"));
    assert_eq!(grafana["/var/lib/grafana/dashboards"], path("deploy/grafana/dashboards"));
    let provider = documents(&path("deploy/grafana/provisioning/dashboards/healthcore.yml")).remove(0);
    assert_eq!(provider["providers"][0]["options"]["path"], "/var/lib/grafana/dashboards");
    let datasource = documents(&path("deploy/grafana/provisioning/datasources/prometheus.yml")).remove(0);
    assert_eq!(datasource["datasources"][0]["url"], "http://prometheus:9090", "Grafana reaches the prometheus service");

    // Alertmanager runs the file the suite checks with amtool; Prometheus and Grafana reach it.
    let alertmanager = &services["alertmanager"];
    assert!(string(&alertmanager["image"]).starts_with("prom/alertmanager:"), "the official image");
    let mounted = mounts("alertmanager");
    let source = &mounted["/etc/alertmanager/alertmanager.yml"];
    assert_eq!(source, &path("deploy/alertmanager/alertmanager.yml"));
    let started = string(&alertmanager["command"][0]);
    assert!(started.contains("/etc/alertmanager/alertmanager.yml"), "the mounted file is the one templated: {started}");
    let placeholder = "http://alert-webhook.invalid/set-ALERTMANAGER_WEBHOOK_URL";
    assert!(started.contains(placeholder) && std::fs::read_to_string(source).unwrap().contains(placeholder));
    assert!(string(&alertmanager["environment"]["ALERTMANAGER_WEBHOOK_URL"]).contains("ALERTMANAGER_WEBHOOK_URL"));
    let published = port_of(&string(&alertmanager["ports"][0]));
    let alerting = &shipped["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"];
    assert_eq!(alerting, &serde_json::json!([format!("alertmanager:{published}")]), "Prometheus sends to it");
    let datasource = documents(&path("deploy/grafana/provisioning/datasources/alertmanager.yml")).remove(0);
    assert_eq!(datasource["datasources"][0]["type"], "alertmanager");
    assert_eq!(datasource["datasources"][0]["url"], format!("http://alertmanager:{published}"), "Grafana reaches it");
}

#[test]
fn the_kubernetes_manifests_give_every_part_probes_limits_and_settings_the_binary_accepts() {
    let dir = path("deploy/kubernetes");
    let kustomization = documents(&path("deploy/kustomization.yaml")).remove(0);
    let listed: BTreeSet<String> = kustomization["resources"].as_array().unwrap().iter().map(string).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| format!("kubernetes/{}", e.unwrap().file_name().into_string().unwrap()))
        .filter(|f| f.ends_with(".yaml") && f != "kubernetes/secret.example.yaml")
        .collect();
    assert_eq!(listed, on_disk, "kustomization.yaml applies every manifest (the Secret is created by hand)");
    let tag = string(&kustomization["images"][0]["newTag"]);
    assert_pinned("kustomization", &format!("healthcore:{tag}"));

    let all = kubernetes_documents();
    let of_kind = |kind: &'static str| all.iter().filter(move |d| d["kind"] == kind);
    let config_map = of_kind("ConfigMap").next().expect("a ConfigMap");
    let secret = of_kind("Secret").next().expect("the example Secret");
    let mut shared: BTreeMap<String, String> = BTreeMap::new();
    for source in [&config_map["data"], &secret["stringData"]] {
        shared.extend(source.as_object().unwrap().iter().map(|(k, v)| (k.clone(), string(v))));
    }

    let deployments: Vec<&Value> = of_kind("Deployment").collect();
    assert_eq!(deployments.len(), 5, "the API, the relay and three consumer groups");
    let mut groups = BTreeSet::new();
    for deployment in deployments {
        let name = string(&deployment["metadata"]["name"]);
        let pod = &deployment["spec"]["template"];
        assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true, "{name} runs as non-root");
        assert_eq!(pod["spec"]["securityContext"]["runAsUser"], 10001, "{name}: the image's user");
        let container = &pod["spec"]["containers"][0];
        assert_eq!(container["image"], "healthcore", "{name}: the image kustomize pins");
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(container["resources"][kind][resource].is_string(), "{name}: no {kind}.{resource}");
            }
        }
        let sources: Vec<String> = container["envFrom"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| string(&s[s.as_object().unwrap().keys().next().unwrap()]["name"]))
            .collect();
        assert_eq!(sources, ["healthcore", "healthcore"], "{name} reads the ConfigMap and the Secret");
        let mut env = shared.clone();
        for variable in container["env"].as_array().unwrap() {
            env.insert(string(&variable["name"]), string(&variable["value"]));
        }
        let args: Vec<String> = container["args"].as_array().unwrap().iter().map(string).collect();
        let (config, command) = accepted(&name, &env, &args);
        let ports: BTreeMap<String, u64> = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (string(&p["name"]), p["containerPort"].as_u64().unwrap()))
            .collect();
        let annotations = &pod["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{name} is scraped");
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
        let scraped: u64 = string(&annotations["prometheus.io/port"]).parse().unwrap();
        match command {
            Command::Serve => {
                assert_eq!(ports["http"], u64::from(config.bind.port()), "{name} exposes the port it binds");
                assert_eq!(scraped, ports["http"], "the API serves /metrics on its own port");
                assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/health/ready");
                assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health/live");
                assert!(!config.relay.enabled, "the relay Deployment publishes, not the API");
            }
            Command::Relay | Command::Consume(_) => {
                let metrics = u64::from(config.metrics_addr.expect("a metrics address").port());
                assert_eq!(ports["metrics"], metrics, "{name} exposes its metrics address");
                assert_eq!(scraped, metrics);
                assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/metrics");
                if let Command::Consume(args) = command {
                    groups.insert(args.group.as_str());
                }
            }
            other => panic!("{name} runs {other:?}"),
        }
        for probe in ["readinessProbe", "livenessProbe"].iter().filter_map(|p| container.get(*p)) {
            let port = string(&probe["httpGet"]["port"]);
            assert!(ports.contains_key(&port), "{name}: a probe uses port {port}, which it does not name");
        }
    }
    assert_eq!(groups.len(), 3, "one Deployment per consumer group");
    let budget = of_kind("PodDisruptionBudget").next().expect("a PodDisruptionBudget");
    assert_eq!(budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"], "healthcore-api");
}

/// Every document of every manifest in deploy/kubernetes (the example Secrets included).
fn kubernetes_documents() -> Vec<Value> {
    std::fs::read_dir(path("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .flat_map(|p| documents(&p))
        .collect()
}

/// `8GB`, `10Gi` and the like, in bytes.
fn bytes(size: &str) -> u64 {
    let digits: String = size.chars().take_while(char::is_ascii_digit).collect();
    let unit = match &size[digits.len()..] {
        "GB" => 1_000_000_000,
        "Gi" => 1 << 30,
        "MB" => 1_000_000,
        "Mi" => 1 << 20,
        other => panic!("unknown size unit {other}"),
    };
    digits.parse::<u64>().unwrap() * unit
}

/// A StatefulSet's container argument `--name=value`'s value.
fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    let prefix = format!("--{name}=");
    args.iter().find_map(|a| a.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no --{name}"))
}

#[test]
fn on_kubernetes_prometheus_scrapes_every_process_keeps_bounded_history_and_alerts_through_alertmanager() {
    let kustomization = documents(&path("deploy/kustomization.yaml")).remove(0);
    // The generated ConfigMaps hold exactly the files the suite checks (promtool, amtool).
    let generated: BTreeMap<String, Vec<String>> = kustomization["configMapGenerator"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (string(&g["name"]), g["files"].as_array().unwrap().iter().map(string).collect()))
        .collect();
    assert_eq!(generated["prometheus-config"], ["prometheus.yml=prometheus/prometheus-kubernetes.yml"]);
    assert_eq!(generated["prometheus-rules"], ["prometheus/rules/healthcore.yml"]);
    assert_eq!(generated["alertmanager-config"], ["alertmanager/alertmanager.yml"]);

    let all = kubernetes_documents();
    let named = |kind: &str, name: &str| -> Value {
        all.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    // The same jobs as the Compose configuration (the rules, dashboards and inhibition select on
    // their names); each DNS name is a headless Service in front of the pods exposing that port.
    let config = crate::prometheus::yaml(&path("deploy/prometheus/prometheus-kubernetes.yml").display().to_string());
    let jobs: BTreeSet<String> =
        config["scrape_configs"].as_array().unwrap().iter().map(|j| string(&j["job_name"])).collect();
    assert_eq!(jobs, scrape_targets().into_keys().collect::<BTreeSet<_>>(), "the jobs of prometheus.yml");
    let mut scraped = BTreeSet::new();
    for job in config["scrape_configs"].as_array().unwrap() {
        let discovery = &job["dns_sd_configs"][0];
        let port = discovery["port"].as_u64().unwrap();
        for name in discovery["names"].as_array().unwrap().iter().map(string) {
            let (service, namespace) = name.split_once('.').unwrap();
            assert_eq!(namespace, format!("{}.svc", string(&kustomization["namespace"])), "{name}");
            let service = named("Service", service);
            assert_eq!(service["spec"]["clusterIP"], "None", "{name}: headless, one record per pod");
            assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(port), "{name}");
            let selector = service["spec"]["selector"].as_object().unwrap();
            let deployment = all
                .iter()
                .find(|d| {
                    d["kind"] == "Deployment"
                        && selector.iter().all(|(k, v)| &d["spec"]["template"]["metadata"]["labels"][k] == v)
                })
                .unwrap_or_else(|| panic!("{name} selects no Deployment"));
            let ports = &deployment["spec"]["template"]["spec"]["containers"][0]["ports"];
            assert!(ports.as_array().unwrap().iter().any(|p| p["containerPort"].as_u64() == Some(port)), "{name}");
            scraped.insert(string(&deployment["metadata"]["name"]));
        }
    }
    let deployments = all.iter().filter(|d| d["kind"] == "Deployment").count();
    assert_eq!(scraped.len(), deployments, "every HealthCore Deployment is scraped");
    let compose_config = crate::prometheus::yaml(&path("deploy/prometheus/prometheus.yml").display().to_string());
    assert_eq!(config["rule_files"], compose_config["rule_files"]);
    assert_eq!(config["alerting"], compose_config["alerting"], "Prometheus sends to the alertmanager Service");
    let alertmanager_service = named("Service", "alertmanager");
    assert_eq!(alertmanager_service["spec"]["ports"][0]["port"], 9093);

    // Prometheus: the generated files where its flags and rule_files expect them, and a bounded
    // history on its persistent volume.
    let prometheus = named("StatefulSet", "prometheus");
    let pod = &prometheus["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_pinned("prometheus", &string(&container["image"]));
    let args: Vec<String> = container["args"].as_array().unwrap().iter().map(string).collect();
    let mounts = container["volumeMounts"].as_array().unwrap();
    let mount_of = |volume: &str| mounts.iter().find(|m| m["name"] == volume).unwrap_or_else(|| panic!("no {volume}"));
    let config_map_of = |volume: &str| {
        let found = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == volume).unwrap();
        string(&found["configMap"]["name"])
    };
    assert_eq!(config_map_of("config"), "prometheus-config");
    assert_eq!(
        string(&mount_of("config")["mountPath"]),
        flag(&args, "config.file"),
        "the generated prometheus.yml is the file Prometheus reads"
    );
    assert_eq!(string(&mount_of("config")["subPath"]), "prometheus.yml");
    assert_eq!(config_map_of("rules"), "prometheus-rules");
    assert_eq!(format!("{}/*.yml", string(&mount_of("rules")["mountPath"])), string(&config["rule_files"][0]));
    assert_eq!(string(&mount_of("data")["mountPath"]), flag(&args, "storage.tsdb.path"));
    assert_eq!(flag(&args, "storage.tsdb.retention.time"), "30d");
    let volume = &prometheus["spec"]["volumeClaimTemplates"][0];
    assert_eq!(volume["metadata"]["name"], "data");
    let capacity = bytes(&string(&volume["spec"]["resources"]["requests"]["storage"]));
    let retained = bytes(flag(&args, "storage.tsdb.retention.size"));
    assert!(retained * 5 / 4 <= capacity, "the size limit ({retained} B) leaves a quarter of the volume free");

    // Alertmanager: the checked file, its webhook URL written over the placeholder from a Secret.
    let alertmanager = named("StatefulSet", "alertmanager");
    let pod = &alertmanager["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_pinned("alertmanager", &string(&container["image"]));
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "config").unwrap();
    assert_eq!(volume["configMap"]["name"], "alertmanager-config");
    let started = string(&container["args"][0]);
    let placeholder = "http://alert-webhook.invalid/set-ALERTMANAGER_WEBHOOK_URL";
    assert!(started.contains(placeholder) && started.contains("/etc/alertmanager/alertmanager.yml"), "{started}");
    let url = container["env"].as_array().unwrap().iter().find(|e| e["name"] == "ALERTMANAGER_WEBHOOK_URL").unwrap();
    let secret = named("Secret", &string(&url["valueFrom"]["secretKeyRef"]["name"]));
    assert!(secret["stringData"]["ALERTMANAGER_WEBHOOK_URL"].is_string(), "the example Secret shows the key");
    assert!(alertmanager["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"].is_string());
}

/// `kubectl kustomize` (the kubectl wheel from PyPI, installed by `scripts/test`) renders the
/// whole deployment, and what it renders validates against the Kubernetes API schemas with the
/// checked files inside its ConfigMaps.
#[test]
fn the_kustomization_renders_and_the_rendered_manifests_validate() {
    let rendered = std::process::Command::new("kubectl")
        .args(["kustomize", &path("deploy").display().to_string()])
        .output()
        .expect("kubectl is installed (scripts/test installs it from PyPI)");
    assert!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    let file = crate::prometheus::new_folder("kustomize").join("rendered.yaml");
    std::fs::write(&file, &rendered.stdout).unwrap();
    let documents = documents(&file);
    let data_of = |prefix: &str| -> Value {
        documents
            .iter()
            .find(|d| d["kind"] == "ConfigMap" && string(&d["metadata"]["name"]).starts_with(prefix))
            .unwrap_or_else(|| panic!("no ConfigMap {prefix}…"))["data"]
            .clone()
    };
    let read = |relative: &str| std::fs::read_to_string(path(relative)).unwrap();
    assert_eq!(data_of("prometheus-config-")["prometheus.yml"], read("deploy/prometheus/prometheus-kubernetes.yml"));
    assert_eq!(data_of("prometheus-rules-")["healthcore.yml"], read("deploy/prometheus/rules/healthcore.yml"));
    assert_eq!(data_of("alertmanager-config-")["alertmanager.yml"], read("deploy/alertmanager/alertmanager.yml"));
    assert!(documents.iter().all(|d| d["metadata"]["namespace"] == "healthcore" || d["kind"] == "Namespace"));
    let output = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--kubernetes-version", "1.31.0"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate is installed");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
    assert!(output.status.success() && !report.contains("ERROR"), "{report}");
}

#[test]
fn the_image_is_pinned_non_root_and_checks_its_own_health() {
    let dockerfile = std::fs::read_to_string(path("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    let stages: Vec<&str> = instructions.iter().filter_map(|l| l.strip_prefix("FROM ")).collect();
    assert!(stages.len() >= 2, "a multi-stage build");
    for stage in &stages {
        assert_pinned("Dockerfile", stage.split_whitespace().next().unwrap());
    }
    let last = instructions.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let runtime = &instructions[last..];
    assert!(runtime.contains(&"USER 10001:10001"), "the runtime stage runs as the non-root user");
    assert!(runtime.contains(&r#"ENTRYPOINT ["healthcore"]"#));
    let check = runtime.iter().find_map(|l| l.strip_prefix("HEALTHCHECK ")).expect("a HEALTHCHECK");
    let probe: Vec<String> = serde_json::from_str(&check[check.find('[').unwrap()..]).unwrap();
    let cli = Cli::try_parse_from(&probe).unwrap_or_else(|e| panic!("the HEALTHCHECK does not parse: {e}"));
    assert!(matches!(cli.command, Some(Command::Healthcheck { metrics: false })));
    let bind = runtime.iter().find(|l| l.contains("HEALTHCORE_BIND=")).expect("the image binds all interfaces");
    assert!(bind.contains("0.0.0.0:8000") && runtime.contains(&"EXPOSE 8000 9464"));
}

#[test]
fn every_deployment_file_passes_yamllint() {
    let mut files = vec![
        path("deploy/compose/docker-compose.yml"),
        path("deploy/kustomization.yaml"),
        path("deploy/prometheus/prometheus.yml"),
        path("deploy/prometheus/prometheus-kubernetes.yml"),
    ];
    files.extend(std::fs::read_dir(path("deploy/kubernetes")).unwrap().map(|e| e.unwrap().path()));
    let output = std::process::Command::new("yamllint")
        .args(["--strict", "-d", "{extends: default, rules: {line-length: {max: 160}, document-start: disable}}"])
        .args(&files)
        .output()
        .expect("yamllint is installed (scripts/test installs it from PyPI)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn the_kubernetes_manifests_validate_against_the_api_schemas() {
    let manifests: Vec<PathBuf> =
        std::fs::read_dir(path("deploy/kubernetes")).unwrap().map(|e| e.unwrap().path()).collect();
    let output = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--kubernetes-version", "1.31.0"])
        .args(&manifests)
        .output()
        .expect("kubernetes-validate is installed (scripts/test installs it from PyPI)");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && !report.contains("ERROR"), "{report}");
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let output = std::process::Command::new("hadolint")
        .args(["--config", &path(".hadolint.yaml").display().to_string(), "--no-color"])
        .arg(path("Dockerfile"))
        .output()
        .expect("hadolint is installed (scripts/test installs it from PyPI)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
}

/// Whether `healthcore healthcheck` passes for a process bound to `bind` (and serving metrics on
/// `metrics_addr`, if given).
fn healthcheck_passes(bind: &str, metrics_addr: Option<&str>) -> bool {
    let mut command = healthcore_command();
    command
        .arg("healthcheck")
        .env("HEALTHCORE_BIND", bind)
        .env("HEALTHCORE_DATA_DIR", std::env::temp_dir().join("hc_healthcheck_unused"));
    if let Some(metrics_addr) = metrics_addr {
        command.env("HEALTHCORE_METRICS_ADDR", metrics_addr);
    }
    command.output().unwrap().status.success()
}

/// The paths the manifests probe answer on a running instance, and `healthcore healthcheck` passes
/// against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probed_paths_are_served_and_the_healthcheck_command_passes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ["/health/live", "/health/ready", "/metrics"] {
        app.call(reqwest::Method::GET, path, None, None).await.expect(200);
    }
    let bind = app.base_url.trim_start_matches("http://").to_owned();
    assert!(healthcheck_passes(&bind, None), "a serving instance passes the check");
    app.stop().await;
    assert!(!healthcheck_passes(&bind, None), "a stopped instance fails the check");
}

/// A relay or consumer serves only `/metrics`: the image's plain `healthcore healthcheck` finds it
/// there when nothing listens on the API address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_healthcheck_probes_the_metrics_address_of_a_process_without_an_api() {
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap().to_string();
    let routes = axum::Router::new().route("/metrics", axum::routing::get(|| async { "# EOF\n" }));
    tokio::spawn(async move { axum::serve(metrics, routes).await.unwrap() });
    let unused_api = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    assert!(healthcheck_passes(&unused_api, Some(&metrics_addr)), "found on the metrics address");
    assert!(!healthcheck_passes(&unused_api, None), "nothing answers without one");
}
