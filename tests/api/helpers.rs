//! The test harness: a real HealthCore on a loopback port, on a fresh SQLite file or a fresh
//! PostgreSQL database per test, and a small client for it.

use std::collections::HashMap;

use healthcore::config::Config;
use healthcore::testing::app::Application;
use healthcore::testing::domain::{AppointmentStatus, PatientId, Role};
use healthcore::testing::service::users;
use healthcore::testing::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const USER_PASSWORD: &str = "user-password-for-tests";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` once per backend, as `sqlite::name` and
/// `postgres::name`, so one suite covers both databases.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Postgres).await })*
        }
    };
}

/// The server for which `HEALTHCORE_TEST_POSTGRES_URL` (default: the local trust-auth server)
/// creates one database per test.
fn postgres_admin_url() -> String {
    std::env::var("HEALTHCORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A connection for creating and dropping test databases: on a machine busy with the whole suite,
/// `CREATE DATABASE` may take longer than a request's statement may.
pub async fn admin_store() -> Store {
    let limits = healthcore::testing::store::DbLimits {
        acquire: std::time::Duration::from_secs(30),
        statement: std::time::Duration::from_secs(120),
    };
    Store::connect_with_limits(&postgres_admin_url(), 1, limits)
        .await
        .expect("PostgreSQL must be running for the tests")
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    None,
    Folder(std::path::PathBuf),
    Database(String),
}

impl TestDatabase {
    /// An empty PostgreSQL database, for a test that starts the server itself.
    pub async fn postgres() -> TestDatabase {
        TestDatabase::create(Backend::Postgres).await
    }

    /// The database's name on the PostgreSQL server (`None` for SQLite).
    pub fn postgres_name(&self) -> Option<&str> {
        match &self.cleanup {
            Cleanup::Database(name) => Some(name),
            _ => None,
        }
    }

    async fn create(backend: Backend) -> TestDatabase {
        let name = format!("hc_test_{}", Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let folder = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&folder).unwrap();
                TestDatabase {
                    url: format!("sqlite://{}/healthcore.db", folder.display()),
                    cleanup: Cleanup::Folder(folder),
                }
            }
            Backend::Postgres => {
                let admin = admin_store().await;
                admin.db_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
                admin.close().await;
                let base = postgres_admin_url();
                let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
                TestDatabase { url, cleanup: Cleanup::Database(name) }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::None => {}
            Cleanup::Folder(folder) => {
                let _ = std::fs::remove_dir_all(folder);
            }
            Cleanup::Database(name) => {
                let name = name.clone();
                // Drop runs inside the test's runtime; a fresh thread with its own runtime may block.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    runtime.block_on(async {
                        let admin = admin_store().await;
                        let _ = admin.db_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                        admin.close().await;
                    });
                })
                .join();
            }
        }
    }
}

pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub store: Store,
    /// The server's metrics registry, for parts a test runs beside it (a scheduler, consumers).
    pub metrics: std::sync::Arc<healthcore::testing::telemetry::metrics::Metrics>,
    /// The server's clock: a test moves it forward instead of waiting.
    pub clock: healthcore::testing::clock::Clock,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Declared last: dropped after the server has stopped.
    _database: TestDatabase,
}

/// A parsed response: status, headers we care about, and the JSON body (or `Null`).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn id(&self) -> Uuid {
        self.body["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no id in {:#}", self.body))
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {:#}", self.body);
        self
    }

    /// Asserts an RFC 9457 problem response with this status and `type` slug.
    #[track_caller]
    pub fn expect_problem(self, status: u16, slug: &str) -> Reply {
        let reply = self.expect(status);
        assert_eq!(reply.header("content-type"), Some("application/problem+json"), "{:#}", reply.body);
        assert_eq!(reply.body["type"], format!("https://healthcore.dev/problems/{slug}"), "{:#}", reply.body);
        assert_eq!(reply.body["status"], status);
        assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(reply.body["correlation_id"].as_str(), reply.header("x-correlation-id"));
        reply
    }

    /// The listed patients' (or practitioners') names, "given family", in the list's order.
    pub fn listed_names(&self) -> Vec<String> {
        let items = self.body["items"].as_array().expect("a list's items");
        items
            .iter()
            .map(|p| format!("{} {}", p["given_name"].as_str().unwrap(), p["family_name"].as_str().unwrap()))
            .collect()
    }

    /// The `(field, rule)` pairs of a validation problem.
    pub fn field_errors(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or_default().to_owned(),
                            e["rule"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub fn test_config(database_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut values: HashMap<String, String> = [
        ("HEALTHCORE_BIND", "127.0.0.1:0"),
        ("DATABASE_URL", database_url),
        ("HEALTHCORE_JWT_SECRET", "test-signing-key-that-is-long-enough-0123456789"),
        ("HEALTHCORE_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("HEALTHCORE_DB_MAX_CONNECTIONS", "8"),
        ("HEALTHCORE_SHUTDOWN_GRACE_SECONDS", "5"),
        // The whole suite shares two cores and one PostgreSQL: production's limits would turn a
        // busy moment into a spurious 503. Tests of the limits set their own.
        ("HEALTHCORE_DB_ACQUIRE_TIMEOUT_MS", "20000"),
        ("HEALTHCORE_DB_STATEMENT_TIMEOUT_MS", "30000"),
        ("HEALTHCORE_REQUEST_TIMEOUT_MS", "120000"),
        // The scheduler's jobs fire on the wall clock's five-minute marks: left running, a
        // reminder would now and then add a notification to a test that counts them. Tests of
        // the jobs run them themselves; a test that wants the scheduler sets this to true.
        ("HEALTHCORE_JOBS_ENABLED", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    values.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let data_dir = std::env::temp_dir().join(format!("hc_data_{}", Uuid::new_v4().simple()));
    values.entry("HEALTHCORE_DATA_DIR".into()).or_insert_with(|| data_dir.display().to_string());
    Config::from_map(values).expect("the test configuration is valid")
}

/// The subscriber `serve` installs, tracing without an exporter, so spans and stored traceparents
/// exist as in production. Lines go nowhere unless `HEALTHCORE_TEST_LOG=debug cargo nextest run …
/// --no-capture` asks to see them. A test that installed its own subscriber first keeps it.
pub fn install_subscriber() {
    static TRACER_PROVIDER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> =
        std::sync::OnceLock::new();
    let provider = TRACER_PROVIDER.get_or_init(|| opentelemetry_sdk::trace::SdkTracerProvider::builder().build());
    let _ = match std::env::var("HEALTHCORE_TEST_LOG") {
        Ok(filter) => healthcore::testing::telemetry::try_init(
            &filter,
            healthcore::testing::telemetry::LogFormat::Pretty,
            tracing_subscriber::fmt::TestWriter::default(),
            Some(provider),
        ),
        Err(_) => healthcore::testing::telemetry::try_init(
            "info",
            healthcore::testing::telemetry::LogFormat::Json,
            std::io::sink,
            Some(provider),
        ),
    };
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
        let database = TestDatabase::create(backend).await;
        let url = database.url.clone();
        TestApp::spawn_on(database, &url, extra).await
    }

    /// A server on a fresh PostgreSQL database that it reaches through `rewrite(url)` (a proxy
    /// between it and the database, say); `app.store` is the server's own, through the same path.
    pub async fn spawn_postgres_via(rewrite: impl FnOnce(&str) -> String, extra: &[(&str, &str)]) -> TestApp {
        let database = TestDatabase::create(Backend::Postgres).await;
        let url = rewrite(&database.url);
        TestApp::spawn_on(database, &url, extra).await
    }

    async fn spawn_on(database: TestDatabase, url: &str, extra: &[(&str, &str)]) -> TestApp {
        install_subscriber();
        let config = test_config(url, extra);
        let application = Application::build(config).await.expect("the application starts");
        let base_url = format!("http://{}", application.local_addr());
        let store = application.state().store.clone();
        let metrics = application.state().metrics.clone();
        let clock = application.state().clock.clone();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(application.run_until(async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let mut app = TestApp {
            base_url,
            client,
            admin_token: String::new(),
            store,
            metrics,
            clock,
            shutdown: Some(shutdown),
            server: Some(server),
            _database: database,
        };
        app.admin_token = app.login("admin", ADMIN_PASSWORD).await;
        app
    }

    /// Stops the server gracefully and waits for it (and its audit writer) to finish, after checking
    /// every event the test caused against its JSON Schema. Returns the database, which is removed
    /// when the returned value is dropped.
    pub async fn stop(mut self) -> TestDatabase {
        crate::schemas::assert_events_match_schemas(&self.store).await;
        crate::fhir::assert_received_resources_are_valid();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        TestDatabase {
            url: self._database.url.clone(),
            cleanup: std::mem::replace(&mut self._database.cleanup, Cleanup::None),
        }
    }

    /// Stops the server without checking the events (for a test whose events never left the
    /// outbox, by design).
    pub async fn shutdown_without_event_checks(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), server).await;
        }
    }

    pub fn database_url(&self) -> String {
        self._database.url.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let reply = self
            .call(Method::POST, "/api/v1/auth/token", None, Some(json!({"username": username, "password": password})))
            .await;
        let reply = reply.expect(200);
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates a user with `role` (linked to `patient_id` for patients) and returns its token.
    pub async fn user_token(&self, role: Role, patient_id: Option<Uuid>) -> String {
        let username = format!("{}-{}", role.as_str(), &Uuid::new_v4().simple().to_string()[..8]);
        users::create(&self.store, &username, role, patient_id.map(PatientId::from_uuid), USER_PASSWORD).await.unwrap();
        self.login(&username, USER_PASSWORD).await
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            // A Content-Type among `headers` is the body's; `json` would add a second one.
            let typed = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
            request = if typed { request.body(body.to_string()) } else { request.json(&body) };
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the server answers");
        Reply::from(response).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn create_patient(&self, given: &str, family: &str) -> Uuid {
        self.post("/api/v1/patients", &self.admin_token, patient_body(given, family)).await.expect(201).id()
    }

    pub async fn create_practitioner(&self, licence: &str) -> Uuid {
        self.post(
            "/api/v1/practitioners",
            &self.admin_token,
            json!({"licence_number": licence, "given_name": "Grace", "family_name": "Hopper", "role": "physician"}),
        )
        .await
        .expect(201)
        .id()
    }

    /// A booked appointment that started `hours_ago` hours ago. The API cannot create one (no
    /// booking in the past), so it is written through the store as time passing would leave it.
    pub async fn started_appointment(&self, patient: Uuid, practitioner: Uuid, hours_ago: i64) -> Uuid {
        let start = chrono::Utc::now() - chrono::Duration::hours(hours_ago);
        let appointment = stored_appointment(patient, practitioner, start, 30, AppointmentStatus::Booked);
        healthcore::testing::store::appointments::insert(self.store.db(), &appointment).await.unwrap();
        appointment.id().as_uuid()
    }

    /// `count` completed appointments of these patients and practitioners, one every half hour back
    /// from now, then `ANALYZE`: the history a hospital's planner statistics know (written with
    /// SQL, as years of use would leave it; PostgreSQL only).
    pub async fn appointment_history(&self, patients: &[Uuid], practitioners: &[Uuid], count: u32) {
        self.store
            .db_execute(&format!(
                "{APPOINTMENT_INSERT} SELECT gen_random_uuid(), ({patients})[1 + g % {n}], \
                 ({practitioners})[1 + (g * 7) % {m}], s, s + interval '30 minutes', 'history', NULL, 'completed', \
                 NULL, 1, s, s FROM generate_series(1, {count}) g, LATERAL (SELECT now() - interval '30 minutes' * g AS s) slot",
                patients = uuid_array(patients),
                practitioners = uuid_array(practitioners),
                n = patients.len(),
                m = practitioners.len(),
            ))
            .await
            .unwrap();
        self.store.db_execute("ANALYZE appointments").await.unwrap();
    }

    /// `count` upcoming bookings of the patient with the practitioner, one a day from tomorrow,
    /// written with SQL like `appointment_history`: no request's reads of the table may still be on
    /// their way to the statistics while a test counts its own.
    pub async fn upcoming_bookings(&self, patient: Uuid, practitioner: Uuid, count: u32) {
        self.store
            .db_execute(&format!(
                "{APPOINTMENT_INSERT} SELECT gen_random_uuid(), '{patient}', '{practitioner}', s, \
                 s + interval '30 minutes', 'upcoming', NULL, 'booked', NULL, 1, now(), now() \
                 FROM generate_series(1, {count}) g, LATERAL (SELECT now() + interval '1 day' * g AS s) slot"
            ))
            .await
            .unwrap();
    }

    /// One number PostgreSQL answers (from a statistics view, say), through the server's own store.
    pub async fn postgres_number(&self, sql: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let db = self.store.db();
        let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    /// Rows of `tables` (a `LIKE` pattern: a table's name, or its partitions') PostgreSQL has
    /// counted as read (by sequential and index scans), their scans, their updated and inserted
    /// rows and the entries their indexes returned, as the connections have reported them (each
    /// when it goes idle). One statement, so that the counts are of one moment: read one by one, a
    /// connection's report could land between them (its scans counted, its rows not).
    pub async fn table_reads(&self, tables: &str) -> TableReads {
        use sea_orm::{ConnectionTrait, Statement};
        let sql = format!(
            "SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)::bigint, \
             coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)), 0)::bigint, \
             coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_ins), 0)::bigint, \
             (SELECT coalesce(sum(idx_tup_read), 0)::bigint FROM pg_stat_user_indexes WHERE relname LIKE '{tables}') \
             FROM pg_stat_user_tables WHERE relname LIKE '{tables}'"
        );
        let db = self.store.db();
        let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
        let number = |column: usize| row.try_get_by_index::<i64>(column).unwrap();
        TableReads {
            rows: number(0),
            scans: number(1),
            updated: number(2),
            inserted: number(3),
            index_entries: number(4),
        }
    }

    /// What `table_reads` reports once `ready` holds for it (polled, at most 30 s): each
    /// connection reports when it goes idle, so a test waits for the counts its own statements
    /// make grow before it compares the rest.
    pub async fn table_reads_once(&self, what: &str, table: &str, ready: impl Fn(&TableReads) -> bool) -> TableReads {
        eventually(what, || async {
            let now = self.table_reads(table).await;
            ready(&now).then_some(now)
        })
        .await
    }

    /// Audit events matching a query string (as admin).
    pub async fn audit_events(&self, query: &str) -> Vec<Value> {
        let reply = self.get(&format!("/api/v1/audit-events?limit=100&{query}"), &self.admin_token).await.expect(200);
        reply.body["items"].as_array().unwrap().clone()
    }
}

/// What `TestApp::table_reads` reports of one table.
#[derive(Debug, Clone, Copy)]
pub struct TableReads {
    pub rows: i64,
    pub scans: i64,
    pub updated: i64,
    pub inserted: i64,
    /// Entries the table's indexes returned, of index-only scans too (which read no row).
    pub index_entries: i64,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        let reply = Reply { status, headers, body };
        if reply.header("content-type") == Some("application/fhir+json") {
            crate::fhir::received(&reply.body);
        }
        reply
    }
}

/// How often a test repeats a request whose plan it checks: PostgreSQL plans a prepared statement
/// for its values five times on a connection, then may plan it once for any values. With the pool
/// held to two connections (`HEALTHCORE_DB_MAX_CONNECTIONS`) every statement runs more than five
/// times on each.
pub const RUNS: i64 = 16;

/// An appointment of `minutes` from `start` in `status`, as the store writes one, for tests that
/// write past the API (created a day before it starts).
pub fn stored_appointment(
    patient: Uuid,
    practitioner: Uuid,
    start: chrono::DateTime<chrono::Utc>,
    minutes: i64,
    status: AppointmentStatus,
) -> healthcore::testing::domain::Appointment {
    use healthcore::testing::domain::{Appointment, AppointmentId, PractitionerId, TimeSlot};
    Appointment::restore(healthcore::testing::domain::appointment::StoredAppointment {
        id: AppointmentId::generate(),
        patient_id: PatientId::from_uuid(patient),
        practitioner_id: PractitionerId::from_uuid(practitioner),
        slot: TimeSlot::new(start, start + chrono::Duration::minutes(minutes)).unwrap(),
        reason: "check-up".into(),
        notes: None,
        status,
        cancellation_reason: None,
        version: 1,
        created_at: start - chrono::Duration::days(1),
        updated_at: start - chrono::Duration::days(1),
    })
}

/// The start of an `INSERT` of whole appointment rows, for tests that write them with SQL.
pub const APPOINTMENT_INSERT: &str = "INSERT INTO appointments (id, patient_id, practitioner_id, starts_at, ends_at, \
     reason, notes, status, cancellation_reason, version, created_at, updated_at)";

/// A PostgreSQL `uuid[]` literal.
pub fn uuid_array(ids: &[Uuid]) -> String {
    format!("ARRAY[{}]::uuid[]", ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(","))
}

pub fn patient_body(given: &str, family: &str) -> Value {
    json!({"given_name": given, "family_name": family, "birth_date": "1985-04-12", "sex": "female", "email": "patient@example.org"})
}

/// A booking `start_hours` from now (on the hour), `minutes` long.
pub fn booking(patient: Uuid, practitioner: Uuid, start_hours: i64, minutes: i64) -> Value {
    let start = chrono::Utc::now() + chrono::Duration::hours(start_hours);
    let start = start.format("%Y-%m-%dT%H:00:00Z").to_string();
    let start_time: chrono::DateTime<chrono::Utc> = start.parse().unwrap();
    let end = (start_time + chrono::Duration::minutes(minutes)).to_rfc3339();
    json!({"patient_id": patient, "practitioner_id": practitioner, "start": start, "end": end, "reason": "check-up"})
}

/// Polls `check` (every 50 ms, for at most 30 s) until it yields a value: for effects that happen
/// asynchronously (consumers, webhooks), observed rather than waited for with a sleep.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after 30 s waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Waits until every recorded event has been published or delivered in-process.
    pub async fn events_settled(&self) {
        eventually("the outbox to drain", || async {
            let backlog = healthcore::testing::store::outbox::backlog(self.store.db()).await.unwrap();
            (backlog.pending == 0).then_some(())
        })
        .await
    }
}

/// `healthcore serve` as its own process (the real binary, as an operator runs it) on a free
/// loopback port, with its data in `folder/data`; killed when dropped unless stopped.
/// The `healthcore` binary with an empty environment, as a deployment would start it, but for what
/// the test machinery needs passed on: where an instrumented build writes its coverage
/// (`LLVM_PROFILE_FILE`, set by `scripts/coverage`).
pub fn healthcore_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_healthcore"));
    command.env_clear();
    if let Some(profile) = std::env::var_os("LLVM_PROFILE_FILE") {
        command.env("LLVM_PROFILE_FILE", profile);
    }
    command
}

pub struct ServeProcess {
    pub bind: String,
    child: Option<std::process::Child>,
}

impl ServeProcess {
    /// Starts it with these settings and returns once `/health/live` answers.
    pub async fn start(folder: &std::path::Path, settings: &[(&str, String)]) -> ServeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bind = format!("127.0.0.1:{port}");
        let child = healthcore_command()
            .env("HEALTHCORE_DATA_DIR", folder.join("data"))
            .env("HEALTHCORE_BIND", &bind)
            .env("HEALTHCORE_ADMIN_PASSWORD", "serve-process-test-password")
            .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        eventually("the server to answer", || async {
            client.get(format!("http://{bind}/health/live")).send().await.ok().filter(|r| r.status() == 200).map(|_| ())
        })
        .await;
        ServeProcess { bind, child: Some(child) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.bind)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The process's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }

    /// SIGTERM, then waits; whether it exited cleanly.
    pub fn stop(mut self) -> bool {
        let mut child = self.child.take().expect("running");
        let signalled = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        signalled.success() && child.wait().unwrap().success()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
