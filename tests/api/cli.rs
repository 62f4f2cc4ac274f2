//! The `healthcore` binary as an operator meets it: one-line configuration errors, masked secrets,
//! users created from the command line, demo data, and the first administrator.

use std::io::Write;
use std::process::{Output, Stdio};

use crate::helpers::{Backend, ServeProcess, TestApp, TestDatabase, admin_store, healthcore_command, patient_body};
use crate::on_both_backends;

fn healthcore(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = healthcore_command();
    command.args(args).env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env {
        command.env(key, value);
    }
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary runs");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_invalid_setting_stops_the_start_with_one_line_naming_it() {
    let output = healthcore(&["serve"], &[("HEALTHCORE_BODY_LIMIT_BYTES", "lots")], None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("configuration error: HEALTHCORE_BODY_LIMIT_BYTES:"), "{stderr}");
}

#[test]
fn config_prints_every_setting_with_secrets_masked() {
    let output = healthcore(
        &["config"],
        &[
            ("DATABASE_URL", "postgres://app:hunter2-password@db:5432/hc"),
            ("HEALTHCORE_JWT_SECRET", "jwt-secret-value-0123456789abcdef0123"),
        ],
        None,
    );
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    assert!(stdout.contains("DATABASE_URL=postgres://app:****@db:5432/hc"), "{stdout}");
    assert!(stdout.contains("HEALTHCORE_JWT_SECRET=****"), "{stdout}");
    assert!(!stdout.contains("hunter2") && !stdout.contains("jwt-secret-value"), "{stdout}");
    for setting in healthcore::config::SETTINGS.iter().filter(|s| s.name != "HEALTHCORE_CONFIG_FILE") {
        assert!(stdout.contains(&format!("{}=", setting.name)), "{} missing from:\n{stdout}", setting.name);
    }
}

#[test]
fn secrets_are_masked_in_every_form_a_url_can_carry_them() {
    let forms = [
        "postgres://app@db:5432/hc?password=hunter2-query",
        "postgres://app@db:5432/hc?sslmode=prefer&password=hunter2-query&application_name=x",
        "postgres://app@db:5432/hc?sslpassword=hunter2-query",
        "postgres://app@db:5432/hc?%70assword=hunter2-query",
        "postgres://app@db:5432/hc?PASSWORD=hunter2-query",
        "postgresql://app:hunter2-userinfo@db/hc",
        "postgres://app:hunter2@userinfo@db/hc?user=me@example",
    ];
    for url in forms {
        let output = healthcore(&["config"], &[("DATABASE_URL", url)], None);
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{url}: {}", text(&output.stderr));
        assert!(
            !stdout.contains("hunter2"),
            "{url} printed as:\n{}",
            stdout.lines().find(|l| l.starts_with("DATABASE_URL")).unwrap_or_default()
        );
    }
    let webhook = [
        ("HEALTHCORE_NOTIFICATIONS_WEBHOOK_URL", "https://hooks:hunter2-basic@example.org/notify?token=hunter2-token"),
        ("HEALTHCORE_NOTIFICATIONS_WEBHOOK_SECRET", "a-webhook-secret-of-16+"),
    ];
    let stdout = text(&healthcore(&["config"], &webhook, None).stdout);
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(
        stdout.contains("HEALTHCORE_NOTIFICATIONS_WEBHOOK_URL=https://hooks:****@example.org/notify?token=****"),
        "{stdout}"
    );
}

#[test]
fn start_up_errors_never_print_the_database_password() {
    for url in [
        "postgres://app@127.0.0.1:1/hc?password=hunter2-query",
        "postgres://app:hunter2-userinfo@127.0.0.1:1/hc",
        // The driver quotes the sslmode value it refuses: here the same string as the password.
        "postgres://app@127.0.0.1:1/hc?password=hunter2-query&sslmode=hunter2-query",
    ] {
        for command in [["migrate"].as_slice(), &["user", "list"], &["serve"]] {
            let env = [
                ("DATABASE_URL", url),
                ("HEALTHCORE_JWT_SECRET", "0123456789abcdef0123456789abcdef-jwt"),
                ("HEALTHCORE_DB_ACQUIRE_TIMEOUT_MS", "200"),
            ];
            let output = healthcore(command, &env, None);
            assert!(!output.status.success(), "{command:?} with {url} succeeded");
            let printed = format!("{}{}", text(&output.stdout), text(&output.stderr));
            assert!(!printed.contains("hunter2"), "{command:?} with {url} printed: {printed}");
        }
    }
}

#[test]
fn a_config_file_is_read_and_the_environment_wins() {
    let folder = std::env::temp_dir().join(format!("hc_cfg_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("healthcore.env");
    std::fs::write(&file, "# comment\nHEALTHCORE_TOKEN_TTL_SECONDS=120\nHEALTHCORE_BIND=127.0.0.1:9999\n").unwrap();
    let path = file.display().to_string();
    let output =
        healthcore(&["config"], &[("HEALTHCORE_CONFIG_FILE", &path), ("HEALTHCORE_BIND", "127.0.0.1:7777")], None);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("HEALTHCORE_TOKEN_TTL_SECONDS=120"), "{stdout}");
    assert!(stdout.contains("HEALTHCORE_BIND=127.0.0.1:7777"), "{stdout}");
    std::fs::remove_dir_all(folder).unwrap();
}

#[test]
fn openapi_prints_the_document_without_any_configuration() {
    let output = healthcore(&["openapi"], &[("HEALTHCORE_TOKEN_TTL_SECONDS", "not-a-number")], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document, serde_json::to_value(healthcore::testing::http::openapi()).unwrap());
}

async fn a_user_created_on_the_command_line_can_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.store.url().to_owned();
    let env = [("DATABASE_URL", url.as_str())];
    let output = healthcore(
        &["user", "create", "--username", "night-nurse", "--role", "nurse", "--password-stdin"],
        &env,
        Some("a-long-enough-password\n"),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("created user 'night-nurse' (nurse)"));
    let token = app.login("night-nurse", "a-long-enough-password").await;
    let me = app.get("/api/v1/auth/me", &token).await.expect(200);
    assert_eq!(me.body["role"], "nurse");

    let again = healthcore(
        &["user", "create", "--username", "night-nurse", "--role", "nurse", "--password-stdin"],
        &env,
        Some("another-long-password\n"),
    );
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already exists"), "{}", text(&again.stderr));
    let weak = healthcore(
        &["user", "create", "--username", "weak", "--role", "nurse", "--password-stdin"],
        &env,
        Some("short\n"),
    );
    assert!(!weak.status.success());
    let unlinked = healthcore(
        &["user", "create", "--username", "pat", "--role", "patient", "--password-stdin"],
        &env,
        Some("a-long-enough-password\n"),
    );
    assert!(text(&unlinked.stderr).contains("--patient-id"), "{}", text(&unlinked.stderr));
    app.stop().await;
}

async fn outbox_status_reports_the_backlog(backend: Backend) {
    // No relay: nothing delivers the events, so they stay pending.
    let app = TestApp::spawn_with(backend, &[("HEALTHCORE_RELAY_ENABLED", "false")]).await;
    app.create_patient("Ada", "Lovelace").await;
    app.create_patient("Alan", "Turing").await;
    let url = app.store.url().to_owned();
    let output = healthcore(&["outbox", "status"], &[("DATABASE_URL", url.as_str())], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("recorded events:      2"), "{stdout}");
    assert!(stdout.contains("pending:              2"), "{stdout}");
    assert!(stdout.contains("last published:       -"), "{stdout}");
    app.stop().await;
}

async fn seed_creates_the_requested_demo_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.store.url().to_owned();
    let output = healthcore(
        &["seed", "--patients", "25", "--practitioners", "4", "--appointments", "30"],
        &[("DATABASE_URL", url.as_str()), ("HEALTHCORE_JWT_SECRET", "seed-signing-key-0123456789abcdef0123456789")],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    // Not on a terminal: no progress drawn, so logs and pipes get only the result.
    assert!(!text(&output.stderr).contains('[') && !text(&output.stderr).contains('\r'), "{}", text(&output.stderr));
    let patients = app.get("/api/v1/patients?limit=1", &app.admin_token).await.expect(200);
    assert_eq!(patients.body["page"]["total"], 25);
    let practitioners = app.get("/api/v1/practitioners?limit=1", &app.admin_token).await.expect(200);
    assert!(practitioners.body["page"]["total"].as_u64().unwrap() >= 1);
    let booked = app.get("/api/v1/appointments?status=booked&limit=1", &app.admin_token).await.expect(200);
    assert_eq!(booked.body["page"]["total"], 30);
    app.stop().await;
}

async fn the_first_start_creates_an_admin_with_a_generated_password_once(backend: Backend) {
    use healthcore::testing::service::users::{FirstAdmin, ensure_first_admin};
    let app = TestApp::spawn(backend).await;
    // The harness's server already created `admin`; a second call must leave it alone.
    assert!(matches!(ensure_first_admin(&app.store, None).await.unwrap(), FirstAdmin::NotNeeded));
    app.store.db_execute("DELETE FROM users").await.unwrap();
    let FirstAdmin::CreatedWithGeneratedPassword(password) = ensure_first_admin(&app.store, None).await.unwrap() else {
        panic!("an empty database gets a generated admin password")
    };
    assert!(password.len() >= 20);
    app.login("admin", &password).await;
    app.stop().await;
}

#[test]
fn consume_without_brokers_says_where_the_consumers_run() {
    let output = healthcore(&["consume", "--group", "analytics"], &[], None);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("KAFKA_BOOTSTRAP_SERVERS") && stderr.contains("in-process"), "{stderr}");
    let unknown = healthcore(&["consume", "--group", "billing"], &[], None);
    assert!(text(&unknown.stderr).contains("analytics, notifications, integrations"), "{}", text(&unknown.stderr));
}

async fn jobs_are_listed_and_run_on_demand(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.store.url().to_owned();
    let env = [("DATABASE_URL", url.as_str())];
    let run = healthcore(&["jobs", "run", "idempotency_key_expiry"], &env, None);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(
        text(&run.stdout).contains("idempotency_key_expiry: succeeded: 0 expired keys removed"),
        "{}",
        text(&run.stdout)
    );
    let list = healthcore(&["jobs", "list"], &env, None);
    let listed = text(&list.stdout);
    for job in healthcore::testing::jobs::Job::ALL {
        assert!(listed.contains(job.name()) && listed.contains(job.schedule()), "{listed}");
    }
    assert!(listed.contains("succeeded after 1 attempt(s): 0 expired keys removed"), "{listed}");
    let unknown = healthcore(&["jobs", "run", "vacuum"], &env, None);
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("appointment_reminders"), "{}", text(&unknown.stderr));
    app.stop().await;
}

/// The no-show job looks back only to where its last successful run stopped, so an appointment
/// written into the table directly with an end before that is found only by a run told to look
/// through everything.
async fn a_no_show_run_from_the_start_finds_what_was_written_into_the_past(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.store.url().to_owned();
    let env = [("DATABASE_URL", url.as_str())];
    let run = |args: &[&str]| {
        let output = healthcore(args, &env, None);
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let no_shows = ["jobs", "run", "no_show_past_appointments"];
    assert!(run(&no_shows).contains("succeeded: 0 marked no_show"));
    assert!(run(&["jobs", "list"]).contains("swept:     everything due before"));
    // A month-old booking, as an import would write it: before where the last run stopped.
    let (patient, practitioner) =
        (app.create_patient("Imported", "Late").await, app.create_practitioner("LIC-IMP").await);
    let imported = app.started_appointment(patient, practitioner, 24 * 30).await;
    assert!(run(&no_shows).contains("succeeded: 0 marked no_show"));
    assert!(run(&[&no_shows[..], &["--from-the-start"]].concat()).contains("succeeded: 1 marked no_show"));
    let marked = app.get(&format!("/api/v1/appointments/{imported}"), &app.admin_token).await.expect(200);
    assert_eq!(marked.body["status"], "no_show");
    app.stop().await;
}

/// `events tail` prints events recorded after it started, decoded, filtered by type.
async fn events_tail_prints_new_events_as_they_are_recorded(backend: Backend) {
    use std::io::{BufRead, BufReader};
    let app = TestApp::spawn(backend).await;
    app.create_patient("Before", "Tail").await;
    let url = app.store.url().to_owned();
    let mut tail = healthcore_command()
        .args(["events", "tail", "--type", "patient.created"])
        .env("DATABASE_URL", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It announces where it starts before it polls: from then on every new event is shown.
    let mut stderr = BufReader::new(tail.stderr.take().unwrap());
    let mut announcement = String::new();
    stderr.read_line(&mut announcement).unwrap();
    assert!(announcement.contains("following events after"), "{announcement}");
    let patient = app.create_patient("During", "Tail").await;
    app.patch(&format!("/api/v1/patients/{patient}"), &app.admin_token, serde_json::json!({"phone": "+1 555 0199"}))
        .await
        .expect(200);
    let mut stdout = BufReader::new(tail.stdout.take().unwrap());
    let mut line = String::new();
    let reader = std::thread::spawn(move || {
        stdout.read_line(&mut line).unwrap();
        line
    });
    let line = tokio::task::spawn_blocking(move || reader.join().unwrap()).await.unwrap();
    tail.kill().unwrap();
    tail.wait().unwrap();
    assert!(line.contains(" patient.created patient/") && line.contains(&patient.to_string()), "{line}");
    assert!(!line.contains("During") && !line.contains("Tail "), "no PHI: {line}");
    app.stop().await;
}

on_both_backends!(
    a_user_created_on_the_command_line_can_sign_in,
    seed_creates_the_requested_demo_data,
    outbox_status_reports_the_backlog,
    events_tail_prints_new_events_as_they_are_recorded,
    jobs_are_listed_and_run_on_demand,
    a_no_show_run_from_the_start_finds_what_was_written_into_the_past,
    the_first_start_creates_an_admin_with_a_generated_password_once,
    seed_shows_its_progress_on_a_terminal,
);

/// On a terminal (util-linux `script` gives the command one), `seed` shows its progress.
async fn seed_shows_its_progress_on_a_terminal(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.store.url().to_owned();
    let seed = format!("{} seed --patients 5 --practitioners 2 --appointments 3", env!("CARGO_BIN_EXE_healthcore"));
    // `script` runs the command on a new pseudo-terminal and copies what is drawn there to stdout.
    let mut command = std::process::Command::new("script");
    command.env_clear().args(["--quiet", "--return", "--command", &seed, "/dev/null"]);
    command.env("PATH", std::env::var("PATH").unwrap_or_default()).env("TERM", "xterm");
    command.env("DATABASE_URL", &url).env("HEALTHCORE_JWT_SECRET", "seed-signing-key-0123456789abcdef0123456789");
    if let Some(profile) = std::env::var_os("LLVM_PROFILE_FILE") {
        command.env("LLVM_PROFILE_FILE", profile);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let drawn = text(&output.stdout);
    assert!(output.status.success(), "{drawn}{}", text(&output.stderr));
    assert!(drawn.contains("patients [") && drawn.contains("5/5"), "{drawn}");
    app.stop().await;
}

#[test]
fn completion_scripts_complete_the_commands() {
    // No configuration is needed, as for `openapi`.
    let bash = healthcore(&["completions", "bash"], &[], None);
    assert!(bash.status.success(), "{}", text(&bash.stderr));
    let folder = std::env::temp_dir().join(format!("hc_completions_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&folder).unwrap();
    let script = folder.join("healthcore.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    // What bash offers after `healthcore aud<TAB>` and after `healthcore audit <TAB>`.
    let complete = |words: &str, index: usize| {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={index}; _healthcore healthcore \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let output = std::process::Command::new("bash").args(["-c", &program]).output().unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout).split_whitespace().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(complete("healthcore aud", 1), ["audit"]);
    let after_audit = complete("healthcore audit ''", 2);
    for sub in ["export", "verify", "restore"] {
        assert!(after_audit.iter().any(|w| w == sub), "{after_audit:?}");
    }
    std::fs::remove_dir_all(&folder).unwrap();
    for (shell, marker) in [("zsh", "#compdef healthcore"), ("fish", "complete -c healthcore")] {
        let output = healthcore(&["completions", shell], &[], None);
        let printed = text(&output.stdout);
        assert!(output.status.success() && printed.contains(marker), "{shell}: {printed}");
        assert!(printed.contains("audit") && printed.contains("completions"), "{shell} completes the commands");
    }
}

#[test]
fn a_printing_command_ends_quietly_when_its_reader_goes_away() {
    // `openapi | head -1`: the reader closes the pipe after one line.
    let mut child = healthcore_command().arg("openapi").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 1];
    use std::io::Read;
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_writes_json_lines_to_a_rotated_log_file() {
    let folder = std::env::temp_dir().join(format!("hc_logfile_{}", uuid::Uuid::new_v4().simple()));
    let log = folder.join("logs").join("healthcore.log");
    let settings = [
        ("HEALTHCORE_LOG_FILE", log.display().to_string()),
        ("HEALTHCORE_LOG_FILE_MAX_BYTES", "1024".to_owned()),
        ("HEALTHCORE_LOG_FILE_KEEP", "2".to_owned()),
    ];
    let server = ServeProcess::start(&folder, &settings).await;
    let bind = server.bind.clone();
    let client = reqwest::Client::new();
    for _ in 0..40 {
        client
            .get(format!("http://{bind}/api/v1/patients"))
            .header("x-correlation-id", "log-file")
            .send()
            .await
            .unwrap();
    }
    assert!(server.stop(), "a clean shutdown flushes the log writer");
    let mut files: Vec<_> = std::fs::read_dir(log.parent().unwrap()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 3, "the live file and the two newest rotated ones: {files:?}");
    let mut correlated = 0;
    for file in &files {
        assert!(std::fs::metadata(file).unwrap().len() <= 1024, "{file:?} exceeds the limit");
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            correlated += usize::from(value["correlation_id"] == "log-file");
        }
    }
    assert!(correlated > 0, "the request lines are in the files");
    std::fs::remove_dir_all(&folder).unwrap();
}

/// PostgreSQL on the same host is reached over its Unix-domain socket (`?host=<directory>`), which
/// skips the loopback TCP stack; `HEALTHCORE_TEST_POSTGRES_SOCKET_DIR` names the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reaches_postgresql_over_its_unix_domain_socket() {
    let socket_dir =
        std::env::var("HEALTHCORE_TEST_POSTGRES_SOCKET_DIR").unwrap_or_else(|_| "/var/run/postgresql".to_owned());
    let database = TestDatabase::postgres().await;
    let name = database.postgres_name().unwrap().to_owned();
    let url = format!("postgres://postgres@/{name}?host={socket_dir}");
    let shown = healthcore(&["config"], &[("DATABASE_URL", url.as_str())], None);
    assert!(text(&shown.stdout).contains(&url), "{}", text(&shown.stdout));

    let folder = std::env::temp_dir().join(format!("hc_socket_{}", uuid::Uuid::new_v4().simple()));
    let settings =
        [("DATABASE_URL", url), ("HEALTHCORE_JWT_SECRET", "socket-signing-key-0123456789abcdef0123".to_owned())];
    let server = ServeProcess::start(&folder, &settings).await;
    let client = reqwest::Client::new();
    assert_eq!(client.get(server.url("/health/ready")).send().await.unwrap().status(), 200);
    let login = serde_json::json!({"username": "admin", "password": "serve-process-test-password"});
    let token: serde_json::Value =
        client.post(server.url("/api/v1/auth/token")).json(&login).send().await.unwrap().json().await.unwrap();
    let token = token["access_token"].as_str().expect("a token").to_owned();
    let created = client
        .post(server.url("/api/v1/patients"))
        .bearer_auth(&token)
        .json(&patient_body("Socket", "Reader"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let read = client.get(server.url(&format!("/api/v1/patients/{id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(read.status(), 200);

    // Every connection the server holds to its database came over the socket (no client address).
    let admin = admin_store().await;
    let check = format!(
        "DO $$ BEGIN \
           IF (SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' AND client_addr IS NULL) = 0 \
              OR (SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' AND client_addr IS NOT NULL) > 0 \
           THEN RAISE EXCEPTION 'the server is not connected over the socket only'; END IF; END $$"
    );
    admin.db_execute(&check).await.expect("only socket connections");
    admin.close().await;
    assert!(server.stop());
    // On PostgreSQL the server writes nothing to its data folder unless asked to.
    let _ = std::fs::remove_dir_all(&folder);
}

/// What an OTLP/HTTP collector received: each request's content type and body.
type Exports = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

async fn collect_export(
    axum::extract::State(exports): axum::extract::State<Exports>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    exports.lock().unwrap().push((content_type, body.to_vec()));
    axum::http::StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_its_spans_to_an_otlp_collector() {
    let exports = Exports::default();
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let routes =
        axum::Router::new().route("/v1/traces", axum::routing::post(collect_export)).with_state(exports.clone());
    tokio::spawn(async move { axum::serve(collector, routes).await.unwrap() });

    let folder = std::env::temp_dir().join(format!("hc_otlp_{}", uuid::Uuid::new_v4().simple()));
    let settings = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_SERVICE_NAME", "healthcore-otlp-test".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let server = ServeProcess::start(&folder, &settings).await;
    let bind = server.bind.clone();
    let client = reqwest::Client::new();
    let trace_id = "5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed";
    let answered = client
        .get(format!("http://{bind}/api/v1/practitioners"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 401);
    // The protobuf body holds the trace id as its 16 raw bytes and the service name as text.
    let trace_bytes = hex::decode(trace_id).unwrap();
    let contains = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    let (content_type, body) = crate::helpers::eventually("the request's spans to be exported", || {
        let found = exports.lock().unwrap().iter().find(|(_, body)| contains(body, &trace_bytes)).cloned();
        std::future::ready(found)
    })
    .await;
    assert_eq!(content_type, "application/x-protobuf");
    assert!(contains(&body, b"healthcore-otlp-test"), "the resource names the service");
    assert!(contains(&body, b"GET /api/v1/practitioners"), "the server span is named by method and route");
    assert!(server.stop());
    std::fs::remove_dir_all(&folder).unwrap();
}
