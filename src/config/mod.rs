//! Configuration from environment variables, optionally layered over a `KEY=VALUE` file
//! (`HEALTHCORE_CONFIG_FILE`); the environment wins. Every setting is listed in `SETTINGS`, which
//! `healthcore config` prints and the README's table mirrors. A bad value stops the start with one
//! line naming the setting and the rule.

use std::{collections::HashMap, fmt, net::SocketAddr, path::PathBuf};

mod proxies;

pub use proxies::TrustedProxies;

pub use crate::events::kafka::KafkaConfig;
use crate::events::kafka::{COMPRESSION_TYPES, CleanupPolicy, TopicPolicy};

use crate::store::{Backend, redact_url};
use crate::telemetry::traces::TraceExport;
use crate::telemetry::{self, LogFormat};

/// One setting, declared once: its name, its default (as the README shows it), whether its value
/// is secret, for a whole number the range it must lie in, and what it does. Parsing reads the
/// default and the range from here, `healthcore config` the defaults and secrecy, and a test holds
/// the README's table to this list.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub secret: bool,
    pub range: Option<(i64, i64)>,
    pub description: &'static str,
}

/// The declaration of `name` (a name missing from `SETTINGS` is a programming error).
fn setting(name: &str) -> &'static Setting {
    SETTINGS.iter().find(|setting| setting.name == name).unwrap_or_else(|| panic!("{name} is not in SETTINGS"))
}

pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "HEALTHCORE_BIND",
        default: "127.0.0.1:8000",
        secret: false,
        range: None,
        description: "address the API listens on",
    },
    Setting {
        name: "HEALTHCORE_METRICS_ADDR",
        default: "(none: /metrics on the API address)",
        secret: false,
        range: None,
        description: "serve `/metrics` on this address instead (and for `consume` and `relay`, which serve no API)",
    },
    Setting {
        name: "HEALTHCORE_METRICS_TOKEN",
        default: "(none: /metrics needs no token)",
        secret: true,
        range: None,
        description: "require `Authorization: Bearer <token>` on /metrics (at least 16 bytes)",
    },
    Setting {
        name: "HEALTHCORE_METRICS_ENABLED",
        default: "true",
        secret: false,
        range: None,
        description: "`false` stops timing requests and queries and serves no `/metrics` (for measuring what metrics cost)",
    },
    Setting {
        name: "HEALTHCORE_DATA_DIR",
        default: "./data",
        secret: false,
        range: None,
        description: "folder for the embedded SQLite database and the generated signing key",
    },
    Setting {
        name: "DATABASE_URL",
        default: "sqlite://<HEALTHCORE_DATA_DIR>/healthcore.db",
        secret: true,
        range: None,
        description: "sqlite://… or postgres://user:password@host/db (postgres://user@/db?host=/var/run/postgresql: the Unix socket)",
    },
    Setting {
        name: "HEALTHCORE_DB_MAX_CONNECTIONS",
        default: "16",
        secret: false,
        range: Some((1, 512)),
        description: "database connection pool size (1–512)",
    },
    Setting {
        name: "HEALTHCORE_DB_ACQUIRE_TIMEOUT_MS",
        default: "2000",
        secret: false,
        range: Some((100, 60_000)),
        description: "longest wait for a database connection, connecting included (on SQLite also for the writer's turn); then 503 (100–60000)",
    },
    Setting {
        name: "HEALTHCORE_DB_STATEMENT_TIMEOUT_MS",
        default: "2000",
        secret: false,
        range: Some((100, 600_000)),
        description: "PostgreSQL `statement_timeout` (SQLite: busy timeout); a connection that does not answer within it plus a margin is given up and the pool replaced (100–600000)",
    },
    Setting {
        name: "HEALTHCORE_REQUEST_TIMEOUT_MS",
        default: "4000",
        secret: false,
        range: Some((500, 600_000)),
        description: "longest time a request may take once received; then 503 `timeout` (500–600000)",
    },
    Setting {
        name: "HEALTHCORE_JWT_SECRET",
        default: "generated into the data folder (SQLite only)",
        secret: true,
        range: None,
        description: "HS256 signing key, at least 32 bytes; required with PostgreSQL",
    },
    Setting {
        name: "HEALTHCORE_TOKEN_TTL_SECONDS",
        default: "3600",
        secret: false,
        range: Some((60, 86_400)),
        description: "access token lifetime (60–86400)",
    },
    Setting {
        name: "HEALTHCORE_ADMIN_PASSWORD",
        default: "generated and printed once",
        secret: true,
        range: None,
        description: "password of the `admin` user created on first start",
    },
    Setting {
        name: "HEALTHCORE_HTTP_MAX_CONNECTIONS",
        default: "1024",
        secret: false,
        range: Some((1, 100_000)),
        description: "open client connections at most; one more is answered 503 and closed (1–100000)",
    },
    Setting {
        name: "HEALTHCORE_HTTP_HEADER_TIMEOUT_MS",
        default: "10000",
        secret: false,
        range: Some((100, 300_000)),
        description: "a request's line and headers must arrive within this of its first byte, else the connection is closed (100–300000)",
    },
    Setting {
        name: "HEALTHCORE_HTTP_BODY_TIMEOUT_MS",
        default: "10000",
        secret: false,
        range: Some((100, 300_000)),
        description: "a request's body must arrive within this, else 408 (100–300000)",
    },
    Setting {
        name: "HEALTHCORE_HTTP_IDLE_TIMEOUT_MS",
        default: "60000",
        secret: false,
        range: Some((100, 3_600_000)),
        description: "a connection that sends nothing (before its first request, between requests) for this long is closed (100–3600000)",
    },
    Setting {
        name: "HEALTHCORE_PASSWORD_HASH_CONCURRENCY",
        default: "auto",
        secret: false,
        range: Some((1, 64)),
        description: "password verifications run at once, 19 MiB each; beyond it logins wait up to 1 s, then get 503 with Retry-After (1–64; `auto`: the cores, at most a quarter of the memory limit)",
    },
    Setting {
        name: "HEALTHCORE_LOGIN_FREE_ATTEMPTS",
        default: "5",
        secret: false,
        range: Some((1, 1000)),
        description: "failed sign-ins for one account name before each further failure locks it out, for 1 s doubling (1–1000)",
    },
    Setting {
        name: "HEALTHCORE_LOGIN_LOCKOUT_MAX_SECONDS",
        default: "60",
        secret: false,
        range: Some((1, 86_400)),
        description: "longest lockout of an account name: short, so an attacker cannot keep its real user out for long (1–86400)",
    },
    Setting {
        name: "HEALTHCORE_LOGIN_ADDRESS_FREE_ATTEMPTS",
        default: "20",
        secret: false,
        range: Some((1, 1_000_000)),
        description: "failed sign-ins from one client address, whatever the names, before it is locked out the same way (1–1000000)",
    },
    Setting {
        name: "HEALTHCORE_LOGIN_ADDRESS_LOCKOUT_MAX_SECONDS",
        default: "900",
        secret: false,
        range: Some((1, 86_400)),
        description: "longest lockout of a client address (1–86400)",
    },
    Setting {
        name: "HEALTHCORE_TRUSTED_PROXIES",
        default: "(none: the peer address is the client's)",
        secret: false,
        range: None,
        description: "comma-separated addresses or CIDR blocks of reverse proxies whose `X-Forwarded-For` names the client (for audit records and sign-in throttling)",
    },
    Setting {
        name: "HEALTHCORE_BODY_LIMIT_BYTES",
        default: "65536",
        secret: false,
        range: Some((1024, 10_485_760)),
        description: "largest accepted request body (1024–10485760)",
    },
    Setting {
        name: "HEALTHCORE_BOOKING_HORIZON_DAYS",
        default: "1826",
        secret: false,
        range: Some((1, 3660)),
        description: "how far ahead an appointment may start; later dates are refused as typing errors (1–3660)",
    },
    Setting {
        name: "HEALTHCORE_PATIENT_FUTURE_BOOKINGS_MAX",
        default: "10",
        secret: false,
        range: Some((1, 1000)),
        description: "future booked appointments a patient user may hold when booking for themselves (staff bookings are not limited but count) (1–1000)",
    },
    Setting {
        name: "HEALTHCORE_IDEMPOTENCY_TTL_SECONDS",
        default: "86400",
        secret: false,
        range: Some((60, 604_800)),
        description: "how long an Idempotency-Key is remembered (60–604800)",
    },
    Setting {
        name: "HEALTHCORE_AUDIT_BATCH_MAX",
        default: "512",
        secret: false,
        range: Some((1, 10_000)),
        description: "most audit records committed in one group commit (1–10000)",
    },
    Setting {
        name: "HEALTHCORE_LOG_FORMAT",
        default: "json",
        secret: false,
        range: None,
        description: "`json` (one object per line) or `pretty`",
    },
    Setting {
        name: "HEALTHCORE_LOG_FILE",
        default: "(none: stdout only)",
        secret: false,
        range: None,
        description: "also write the JSON log lines to this file, rotated; lines are dropped (and counted) rather than slow requests",
    },
    Setting {
        name: "HEALTHCORE_LOG_FILE_MAX_BYTES",
        default: "104857600",
        secret: false,
        range: Some((1024, 10_737_418_240)),
        description: "rotate the log file at this size (1024–10737418240)",
    },
    Setting {
        name: "HEALTHCORE_LOG_FILE_ROTATION",
        default: "daily",
        secret: false,
        range: None,
        description: "also rotate the log file at each new `hourly` or `daily` period (UTC), or `never`",
    },
    Setting {
        name: "HEALTHCORE_LOG_FILE_KEEP",
        default: "7",
        secret: false,
        range: Some((1, 1000)),
        description: "rotated log files kept; older ones are deleted (1–1000)",
    },
    Setting {
        name: "RUST_LOG",
        default: "info",
        secret: false,
        range: None,
        description: "log filter, e.g. `info,healthcore=debug`",
    },
    Setting {
        name: "HEALTHCORE_ACCESS_LOG",
        default: "true",
        secret: false,
        range: None,
        description: "`false` drops the one-line-per-request access log (other log lines stay)",
    },
    Setting {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: "(none: spans are not exported)",
        secret: false,
        range: None,
        description: "OTLP/HTTP collector base URL, e.g. http://otel-collector:4318 (`/v1/traces` is appended); the other standard `OTEL_*` variables apply",
    },
    Setting {
        name: "OTEL_SERVICE_NAME",
        default: "healthcore",
        secret: false,
        range: None,
        description: "`service.name` of the exported spans (tell the API, relay and consumer processes apart)",
    },
    Setting {
        name: "OTEL_SDK_DISABLED",
        default: "false",
        secret: false,
        range: None,
        description: "`true` turns tracing off: no spans, no `trace_id` in log lines",
    },
    Setting {
        name: "HEALTHCORE_CACHE_TTL_SECONDS",
        default: "30",
        secret: false,
        range: Some((1, 3600)),
        description: "how long a cached practitioner or user is served before it is read again (1–3600); writes through this instance invalidate at once",
    },
    Setting {
        name: "HEALTHCORE_SHUTDOWN_GRACE_SECONDS",
        default: "20",
        secret: false,
        range: Some((0, 300)),
        description: "how long in-flight requests may finish after SIGTERM (0–300)",
    },
    Setting {
        name: "KAFKA_BOOTSTRAP_SERVERS",
        default: "(none: events are delivered in-process)",
        secret: false,
        range: None,
        description: "Kafka brokers, e.g. `kafka:9092`; setting it turns event publishing on",
    },
    Setting {
        name: "KAFKA_ENABLED",
        default: "true when KAFKA_BOOTSTRAP_SERVERS is set",
        secret: false,
        range: None,
        description: "`false` keeps events in-process even when brokers are configured",
    },
    Setting {
        name: "KAFKA_TOPIC_PREFIX",
        default: "healthcore",
        secret: false,
        range: None,
        description: "topics are `{prefix}.{event_type}`, e.g. `healthcore.patient.created`",
    },
    Setting {
        name: "HEALTHCORE_KAFKA_MESSAGE_TIMEOUT_MS",
        default: "30000",
        secret: false,
        range: Some((1_000, 300_000)),
        description: "how long the producer retries one message before the relay backs off (1000–300000)",
    },
    Setting {
        name: "HEALTHCORE_KAFKA_TOPIC_PARTITIONS",
        default: "3",
        secret: false,
        range: Some((1, 1000)),
        description: "partitions of topics the relay creates (1–1000)",
    },
    Setting {
        name: "HEALTHCORE_KAFKA_REPLICATION_FACTOR",
        default: "1",
        secret: false,
        range: Some((1, 10)),
        description: "replication factor of topics the relay creates (1–10)",
    },
    Setting {
        name: "HEALTHCORE_KAFKA_EVENTS_RETENTION_HOURS",
        default: "168",
        secret: false,
        range: Some((1, 87_600)),
        description: "`retention.ms` of the event topics, in hours (1–87600; the outbox keeps events for replay as long by default)",
    },
    Setting {
        name: "HEALTHCORE_KAFKA_EVENTS_CLEANUP_POLICY",
        default: "delete",
        secret: false,
        range: None,
        description: "`cleanup.policy` of the event topics: `delete`, `compact` or `compact,delete` (docs/EVENTS.md says why not compact)",
    },
    Setting {
        name: "HEALTHCORE_KAFKA_DEAD_LETTER_RETENTION_HOURS",
        default: "720",
        secret: false,
        range: Some((1, 87_600)),
        description: "`retention.ms` of the consumers' dead-letter topics, in hours (1–87600)",
    },
    Setting {
        name: "HEALTHCORE_KAFKA_DEAD_LETTER_CLEANUP_POLICY",
        default: "delete",
        secret: false,
        range: None,
        description: "`cleanup.policy` of the dead-letter topics: `delete`, `compact` or `compact,delete`",
    },
    Setting {
        name: "HEALTHCORE_KAFKA_MIN_INSYNC_REPLICAS",
        default: "1",
        secret: false,
        range: Some((1, 10)),
        description: "`min.insync.replicas` of every topic HealthCore creates (1–10, at most the replication factor)",
    },
    Setting {
        name: "HEALTHCORE_KAFKA_COMPRESSION",
        default: "lz4",
        secret: false,
        range: None,
        description: "`compression.type` of every topic HealthCore creates: `lz4` (what the relay sends), `zstd`, `snappy`, `gzip`, `producer` or `uncompressed`",
    },
    Setting {
        name: "HEALTHCORE_RELAY_ENABLED",
        default: "true",
        secret: false,
        range: None,
        description: "whether `serve` also runs the outbox relay: to Kafka, or without brokers to the in-process consumers (`healthcore relay` runs it alone)",
    },
    Setting {
        name: "HEALTHCORE_RELAY_BATCH_SIZE",
        default: "5000",
        secret: false,
        range: Some((1, 10_000)),
        description: "most events the relay publishes per round (1–10000)",
    },
    Setting {
        name: "HEALTHCORE_RELAY_POLL_MS",
        default: "500",
        secret: false,
        range: Some((10, 60_000)),
        description: "how often the relay looks for events written by other processes (10–60000)",
    },
    Setting {
        name: "HEALTHCORE_OUTBOX_MAX_AGE_SECONDS",
        default: "30",
        secret: false,
        range: Some((1, 86_400)),
        description: "events waiting longer than this to be acknowledged (a broker down, or up and not answering) make readiness report the outbox and Kafka degraded, still 200 (1–86400)",
    },
    Setting {
        name: "HEALTHCORE_OUTBOX_RETENTION_HOURS",
        default: "168",
        secret: false,
        range: Some((1, 87_600)),
        description: "how long published events are kept for replay before the `outbox_retention` job removes them (1–87600)",
    },
    Setting {
        name: "HEALTHCORE_CONSUMER_MAX_ATTEMPTS",
        default: "5",
        secret: false,
        range: Some((1, 100)),
        description: "attempts at handling one event before a consumer dead-letters it (1–100)",
    },
    Setting {
        name: "HEALTHCORE_CONSUMER_RETRY_MS",
        default: "200",
        secret: false,
        range: Some((1, 60_000)),
        description: "first pause between a consumer's attempts, doubling each time (1–60000)",
    },
    Setting {
        name: "HEALTHCORE_NOTIFICATIONS_WEBHOOK_URL",
        default: "(none: notifications are recorded as prepared)",
        secret: false,
        range: None,
        description: "http(s) URL the notifications consumer POSTs each patient notification to",
    },
    Setting {
        name: "HEALTHCORE_NOTIFICATIONS_WEBHOOK_SECRET",
        default: "(none)",
        secret: true,
        range: None,
        description: "HMAC-SHA256 key for the notification webhook's signature, at least 16 bytes; required with the URL",
    },
    Setting {
        name: "HEALTHCORE_WEBHOOK_TIMEOUT_MS",
        default: "10000",
        secret: false,
        range: Some((100, 120_000)),
        description: "how long one webhook POST may take (100–120000)",
    },
    Setting {
        name: "HEALTHCORE_WEBHOOK_MAX_ATTEMPTS",
        default: "8",
        secret: false,
        range: Some((1, 50)),
        description: "attempts at one webhook delivery before it is marked failed (1–50)",
    },
    Setting {
        name: "HEALTHCORE_WEBHOOK_RETRY_MS",
        default: "1000",
        secret: false,
        range: Some((10, 3_600_000)),
        description: "first pause before a webhook is retried, doubling each time up to an hour (10–3600000)",
    },
    Setting {
        name: "HEALTHCORE_SUBSCRIPTION_DISABLE_AFTER",
        default: "10",
        secret: false,
        range: Some((1, 1000)),
        description: "failed attempts in a row after which an integration subscription is disabled (1–1000)",
    },
    Setting {
        name: "HEALTHCORE_FHIR_BASE_URL",
        default: "http://127.0.0.1:8000/fhir/R4",
        secret: false,
        range: None,
        description: "where clients reach the FHIR interface: the base of the resource URLs in FHIR notifications",
    },
    Setting {
        name: "HEALTHCORE_JOBS_ENABLED",
        default: "true",
        secret: false,
        range: None,
        description: "whether `serve` runs the background jobs (each run happens once across instances)",
    },
    Setting {
        name: "HEALTHCORE_REMINDER_WINDOW_HOURS",
        default: "24",
        secret: false,
        range: Some((1, 168)),
        description: "reminders go out for booked appointments starting within this many hours (1–168)",
    },
    Setting {
        name: "HEALTHCORE_NO_SHOW_AFTER_HOURS",
        default: "24",
        secret: false,
        range: Some((1, 720)),
        description: "a booked appointment that ended this many hours ago is marked no-show (1–720)",
    },
    Setting {
        name: "HEALTHCORE_JOB_RETRY_MS",
        default: "1000",
        secret: false,
        range: Some((1, 600_000)),
        description: "first pause before a failed job run is retried, doubling, three attempts in all (1–600000)",
    },
    Setting {
        name: "HEALTHCORE_INBOX_RETENTION_HOURS",
        default: "24 more than the outbox's or the event topics' retention",
        secret: false,
        range: Some((1, 87_600)),
        description: "how long a consumer group remembers an event it handled, which makes a redelivery harmless; longer than `HEALTHCORE_OUTBOX_RETENTION_HOURS` and, with Kafka, `HEALTHCORE_KAFKA_EVENTS_RETENTION_HOURS` (1–87600)",
    },
    Setting {
        name: "HEALTHCORE_WEBHOOK_RETENTION_DAYS",
        default: "30",
        secret: false,
        range: Some((1, 3650)),
        description: "how long delivered webhooks are kept; given-up ones are kept as long as dead letters (1–3650)",
    },
    Setting {
        name: "HEALTHCORE_NOTIFICATION_RETENTION_DAYS",
        default: "30",
        secret: false,
        range: Some((1, 3650)),
        description: "how long notifications whose webhook is no longer pending, and the marks of sent reminders, are kept (1–3650)",
    },
    Setting {
        name: "HEALTHCORE_DEAD_LETTER_RETENTION_DAYS",
        default: "90",
        secret: false,
        range: Some((1, 3650)),
        description: "how long dead letters and given-up webhook deliveries are kept for investigation (1–3650)",
    },
    Setting {
        name: "HEALTHCORE_JOB_RUN_RETENTION_DAYS",
        default: "30",
        secret: false,
        range: Some((1, 3650)),
        description: "how long finished job runs are kept (1–3650)",
    },
    Setting {
        name: "HEALTHCORE_CONFIG_FILE",
        default: "(none)",
        secret: false,
        range: None,
        description: "optional file of KEY=VALUE lines read before the environment",
    },
];

/// A value that must never be printed: `Debug` and `Display` show `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// What `describe` prints, worked out once from the values and `SETTINGS`.
    described: Vec<(&'static str, String)>,
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Secret,
    pub backend: Backend,
    pub db_max_connections: u32,
    pub db_limits: crate::store::DbLimits,
    pub request_timeout_ms: u64,
    pub jwt_secret: Option<Secret>,
    pub token_ttl_seconds: i64,
    pub admin_password: Option<Secret>,
    pub login_throttle: crate::auth::throttle::ThrottlePolicy,
    pub trusted_proxies: TrustedProxies,
    /// Concurrent Argon2 runs; `None`: sized from the cores and the memory limit.
    pub password_hash_concurrency: Option<usize>,
    pub body_limit_bytes: usize,
    /// `HEALTHCORE_HTTP_*`: connections and how long a client may take to send a request.
    pub http: HttpLimits,
    pub idempotency_ttl_seconds: i64,
    /// How far ahead an appointment may start, in days.
    pub booking_horizon_days: i64,
    /// Future bookings a patient user may hold when booking for themselves.
    pub patient_future_bookings_max: u64,
    pub audit_batch_max: usize,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub log_file: Option<crate::telemetry::log_file::LogFileConfig>,
    pub shutdown_grace_seconds: u64,
    /// Where `/metrics` is served when not on the API address.
    pub metrics_addr: Option<SocketAddr>,
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<Secret>,
    /// Off only to measure what instrumentation costs: no request or query timing, no `/metrics`.
    pub metrics_enabled: bool,
    pub access_log: bool,
    pub trace_export: TraceExport,
    /// `service.name` of the exported spans.
    pub service_name: String,
    pub cache_ttl_seconds: u64,
    pub kafka: Option<KafkaConfig>,
    pub relay: RelayConfig,
    pub consumers: ConsumerConfig,
    pub jobs: JobsConfig,
    pub retention: RetentionConfig,
}

/// How long the rows of the growing tables are kept (the retention jobs; `store::retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    pub inbox_hours: i64,
    pub webhook_days: i64,
    pub notification_days: i64,
    pub dead_letter_days: i64,
    pub job_run_days: i64,
}

/// What a client may make the HTTP server spend (`HEALTHCORE_HTTP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub idle_timeout_ms: u64,
}

/// The background jobs (`jobs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    pub enabled: bool,
    pub reminder_window_hours: i64,
    pub no_show_after_hours: i64,
    pub retry_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    pub enabled: bool,
    /// Pending events older than this mean publishing is not keeping up (readiness: degraded).
    pub max_age_seconds: i64,
    pub batch_size: u64,
    pub poll_ms: u64,
    pub retention_hours: i64,
}

/// How consumers retry and how their webhooks are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub max_attempts: u32,
    pub retry_ms: u64,
    pub webhook: WebhookConfig,
    /// The FHIR interface's public base, for the URLs FHIR notifications name (no trailing `/`).
    pub fhir_base_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The notification webhook and its signing key; `None` records notifications as prepared.
    pub notifications: Option<(String, Secret)>,
    pub timeout_ms: u64,
    pub max_attempts: i32,
    pub retry_ms: u64,
    pub disable_after: i32,
}

/// "SETTING: reason" — printed as the one line a bad configuration produces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError { setting, reason: reason.into() }
}

/// The raw values, and the normalized form of each one parsed so far (for `describe`).
struct Source {
    values: HashMap<String, String>,
    parsed: std::cell::RefCell<HashMap<&'static str, String>>,
}

impl Source {
    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    fn note(&self, name: &'static str, value: impl fmt::Display) {
        self.parsed.borrow_mut().insert(name, value.to_string());
    }

    /// A switch, unset if absent. Every boolean setting is read here, the same way: `true`,
    /// `1` or `yes`, `false`, `0` or `no`, in any case. (`OTEL_SDK_DISABLED` alone follows the
    /// OpenTelemetry specification instead: only `true` disables, anything else does not.)
    fn optional_flag(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if ["true", "1", "yes"].contains(&v.as_str()) => Ok(Some(true)),
            Some(v) if ["false", "0", "no"].contains(&v.as_str()) => Ok(Some(false)),
            Some(other) => Err(invalid(name, format!("'{other}' is neither true nor false"))),
        }
        .inspect(|value| value.iter().for_each(|value| self.note(name, value)))
    }

    /// How long inbox entries are kept: longer than any event can still be delivered again (from
    /// the outbox by a replay, or by the broker), or a redelivered event would be handled twice.
    fn inbox_retention(&self, outbox_hours: i64, kafka: Option<&KafkaConfig>) -> Result<i64, ConfigError> {
        const NAME: &str = "HEALTHCORE_INBOX_RETENTION_HOURS";
        let redeliverable = kafka.map_or(outbox_hours, |kafka| outbox_hours.max(kafka.event_topics.retention_hours));
        if self.get(NAME).is_none() {
            return Ok(redeliverable + 24);
        }
        let hours: i64 = self.number(NAME)?;
        if hours <= redeliverable {
            return Err(invalid(
                NAME,
                format!(
                    "{hours} is not longer than the {redeliverable} hours an event can still be delivered again (the outbox's or the event topics' retention)"
                ),
            ));
        }
        Ok(hours)
    }

    /// A class of topics' retention and clean-up policy.
    fn topic_policy(&self, retention: &'static str, cleanup: &'static str) -> Result<TopicPolicy, ConfigError> {
        let text = self.get(cleanup).unwrap_or(setting(cleanup).default);
        let cleanup_policy = CleanupPolicy::parse(text)
            .ok_or_else(|| invalid(cleanup, format!("'{text}' is not delete, compact or compact,delete")))?;
        self.note(cleanup, cleanup_policy.as_str());
        Ok(TopicPolicy { retention_hours: self.number(retention)?, cleanup: cleanup_policy })
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.optional_flag(name)?.unwrap_or(default))
    }

    /// A whole number within its declared range, or its declared default.
    fn number<T>(&self, name: &'static str) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + TryFrom<i64> + PartialOrd + fmt::Display + Copy,
    {
        let declared = setting(name);
        let (min, max) = declared.range.unwrap_or_else(|| panic!("{name} is declared without a range"));
        let bound = |n: i64| T::try_from(n).unwrap_or_else(|_| panic!("{name}'s range does not fit its type"));
        let (min, max) = (bound(min), bound(max));
        let Some(raw) = self.get(name) else {
            return Ok(declared.default.parse().unwrap_or_else(|_| panic!("{name}'s default is not a number")));
        };
        let value: T = raw.trim().parse().map_err(|_| invalid(name, format!("'{raw}' is not a whole number")))?;
        if (min..=max).contains(&value) {
            self.note(name, value);
            Ok(value)
        } else {
            Err(invalid(name, format!("{value} is outside {min}–{max}")))
        }
    }
}

/// Each setting's effective value, derived from its declaration: what the parsing made of it
/// (numbers and switches), else the value as set (`****` for a secret), else the declared default;
/// only the values that depend on more than their own text are named here.
fn describe(source: &Source, config: &Config) -> Vec<(&'static str, String)> {
    let derived = |name: &str| -> Option<String> {
        match name {
            "DATABASE_URL" => Some(redact_url(config.database_url.expose())),
            "HEALTHCORE_NOTIFICATIONS_WEBHOOK_URL" => {
                config.consumers.webhook.notifications.as_ref().map(|(url, _)| redact_url(url))
            }
            "HEALTHCORE_TRUSTED_PROXIES" => {
                (!config.trusted_proxies.is_empty()).then(|| config.trusted_proxies.to_string())
            }
            "KAFKA_ENABLED" => Some(config.kafka.is_some().to_string()),
            "HEALTHCORE_INBOX_RETENTION_HOURS" => Some(config.retention.inbox_hours.to_string()),
            "OTEL_SDK_DISABLED" => Some((config.trace_export == TraceExport::Disabled).to_string()),
            // Never the endpoint itself: its URL may carry credentials.
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(match config.trace_export {
                TraceExport::Otlp => "(set: spans exported)".to_owned(),
                _ => setting(name).default.to_owned(),
            }),
            _ => None,
        }
    };
    let parsed = source.parsed.borrow();
    SETTINGS
        .iter()
        .map(|setting| {
            let name = setting.name;
            let set = source.get(name).map(|raw| match (setting.secret, parsed.get(name)) {
                (true, _) => "****".to_owned(),
                (false, Some(value)) => value.clone(),
                (false, None) => raw.trim().to_owned(),
            });
            (name, derived(name).or(set).unwrap_or_else(|| setting.default.to_owned()))
        })
        .collect()
}

/// Whether a webhook URL is one HealthCore will POST to: absolute http(s) with a host.
/// The longest webhook URL accepted, in characters.
pub const WEBHOOK_URL_MAX: usize = 2048;

pub fn check_webhook_url(url: &str) -> Result<(), &'static str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && url.chars().count() <= WEBHOOK_URL_MAX
                && !url.contains(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => Err("must be an absolute http:// or https:// URL with a host, at most 2048 characters"),
    }
}

fn notification_webhook(source: &Source) -> Result<Option<(String, Secret)>, ConfigError> {
    let url = source.get("HEALTHCORE_NOTIFICATIONS_WEBHOOK_URL").map(str::trim);
    let secret = source.get("HEALTHCORE_NOTIFICATIONS_WEBHOOK_SECRET");
    match (url, secret) {
        (None, _) => Ok(None),
        (Some(url), _) if check_webhook_url(url).is_err() => {
            Err(invalid("HEALTHCORE_NOTIFICATIONS_WEBHOOK_URL", check_webhook_url(url).expect_err("checked above")))
        }
        (Some(_), None) => {
            Err(invalid("HEALTHCORE_NOTIFICATIONS_WEBHOOK_SECRET", "is required when the webhook URL is set"))
        }
        (Some(_), Some(secret)) if secret.len() < 16 => {
            Err(invalid("HEALTHCORE_NOTIFICATIONS_WEBHOOK_SECRET", "must be at least 16 bytes"))
        }
        (Some(url), Some(secret)) => Ok(Some((url.to_owned(), Secret(secret.to_owned())))),
    }
}

fn fhir_base_url(source: &Source) -> Result<String, ConfigError> {
    const NAME: &str = "HEALTHCORE_FHIR_BASE_URL";
    let url = source.get(NAME).unwrap_or(setting(NAME).default).trim();
    check_webhook_url(url).map_err(|reason| invalid(NAME, reason))?;
    let url = url.trim_end_matches('/');
    source.note(NAME, url);
    Ok(url.to_owned())
}

fn log_file(source: &Source) -> Result<Option<crate::telemetry::log_file::LogFileConfig>, ConfigError> {
    use crate::telemetry::log_file::{LogFileConfig, Rotation};
    let Some(path) = source.get("HEALTHCORE_LOG_FILE") else { return Ok(None) };
    let rotation = source.get("HEALTHCORE_LOG_FILE_ROTATION").unwrap_or("daily").trim();
    let rotation = Rotation::parse(rotation).ok_or_else(|| {
        invalid("HEALTHCORE_LOG_FILE_ROTATION", format!("'{rotation}' is not hourly, daily or never"))
    })?;
    Ok(Some(LogFileConfig {
        path: PathBuf::from(path.trim()),
        max_bytes: source.number("HEALTHCORE_LOG_FILE_MAX_BYTES")?,
        rotation,
        keep: source.number("HEALTHCORE_LOG_FILE_KEEP")?,
    }))
}

impl Config {
    /// What the logging and tracing set-up needs.
    pub fn telemetry(&self) -> telemetry::Settings {
        telemetry::Settings {
            log_filter: self.log_filter.clone(),
            log_format: self.log_format,
            log_file: self.log_file.clone(),
            trace_export: self.trace_export.clone(),
            service_name: self.service_name.clone(),
        }
    }

    /// Reads the process environment (and the config file it names).
    pub fn from_env() -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let mut merged = match env.get("HEALTHCORE_CONFIG_FILE").filter(|p| !p.is_empty()) {
            Some(path) => read_config_file(path)?,
            None => HashMap::new(),
        };
        merged.extend(env);
        Config::from_map(merged)
    }

    pub fn from_map(values: HashMap<String, String>) -> Result<Config, ConfigError> {
        let source = Source { values, parsed: Default::default() };
        let bind = source.get("HEALTHCORE_BIND").unwrap_or("127.0.0.1:8000");
        let bind: SocketAddr = bind
            .parse()
            .map_err(|_| invalid("HEALTHCORE_BIND", format!("'{bind}' is not an address like 127.0.0.1:8000")))?;
        let data_dir = PathBuf::from(source.get("HEALTHCORE_DATA_DIR").unwrap_or("./data"));
        let database_url = match source.get("DATABASE_URL") {
            Some(url) => url.trim().to_owned(),
            None => format!("sqlite://{}/healthcore.db", data_dir.display()),
        };
        let backend = Backend::from_url(&database_url).ok_or_else(|| {
            invalid("DATABASE_URL", format!("'{}' is neither sqlite:// nor postgres://", redact_url(&database_url)))
        })?;
        let jwt_secret = source.get("HEALTHCORE_JWT_SECRET").map(|s| Secret(s.to_owned()));
        if jwt_secret.as_ref().is_some_and(|secret| secret.0.len() < 32) {
            return Err(invalid("HEALTHCORE_JWT_SECRET", "must be at least 32 bytes"));
        }
        let admin_password = source.get("HEALTHCORE_ADMIN_PASSWORD").map(|s| Secret(s.to_owned()));
        if let Some(password) = &admin_password {
            crate::auth::password::validate_new_password(password.expose())
                .map_err(|reason| invalid("HEALTHCORE_ADMIN_PASSWORD", reason))?;
        }
        let log_format = match source.get("HEALTHCORE_LOG_FORMAT").unwrap_or("json") {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => {
                return Err(invalid("HEALTHCORE_LOG_FORMAT", format!("'{other}' is neither json nor pretty")));
            }
        };
        let kafka_enabled = source.optional_flag("KAFKA_ENABLED")?;
        let topic_prefix = source.get("KAFKA_TOPIC_PREFIX").unwrap_or("healthcore").trim().to_owned();
        if !topic_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) || topic_prefix.len() > 100 {
            return Err(invalid(
                "KAFKA_TOPIC_PREFIX",
                "may contain only letters, digits, '.', '_' and '-' (at most 100)",
            ));
        }
        let kafka = match (source.get("KAFKA_BOOTSTRAP_SERVERS"), kafka_enabled) {
            (Some(_), Some(false)) | (None, _) => {
                if kafka_enabled == Some(true) {
                    return Err(invalid("KAFKA_ENABLED", "is true but KAFKA_BOOTSTRAP_SERVERS is not set"));
                }
                None
            }
            (Some(servers), _) => {
                let replication_factor = source.number("HEALTHCORE_KAFKA_REPLICATION_FACTOR")?;
                let min_insync_replicas = source.number("HEALTHCORE_KAFKA_MIN_INSYNC_REPLICAS")?;
                if min_insync_replicas > replication_factor {
                    return Err(invalid(
                        "HEALTHCORE_KAFKA_MIN_INSYNC_REPLICAS",
                        format!(
                            "{min_insync_replicas} is more than HEALTHCORE_KAFKA_REPLICATION_FACTOR ({replication_factor})"
                        ),
                    ));
                }
                let compression = source.get("HEALTHCORE_KAFKA_COMPRESSION").unwrap_or("lz4").trim().to_owned();
                if !COMPRESSION_TYPES.contains(&compression.as_str()) {
                    return Err(invalid(
                        "HEALTHCORE_KAFKA_COMPRESSION",
                        format!("'{compression}' is not one of {}", COMPRESSION_TYPES.join(", ")),
                    ));
                }
                Some(KafkaConfig {
                    bootstrap_servers: servers.trim().to_owned(),
                    topic_prefix,
                    message_timeout_ms: source.number("HEALTHCORE_KAFKA_MESSAGE_TIMEOUT_MS")?,
                    topic_partitions: source.number("HEALTHCORE_KAFKA_TOPIC_PARTITIONS")?,
                    replication_factor,
                    event_topics: source.topic_policy(
                        "HEALTHCORE_KAFKA_EVENTS_RETENTION_HOURS",
                        "HEALTHCORE_KAFKA_EVENTS_CLEANUP_POLICY",
                    )?,
                    dead_letter_topics: source.topic_policy(
                        "HEALTHCORE_KAFKA_DEAD_LETTER_RETENTION_HOURS",
                        "HEALTHCORE_KAFKA_DEAD_LETTER_CLEANUP_POLICY",
                    )?,
                    min_insync_replicas,
                    compression,
                })
            }
        };
        let relay = RelayConfig {
            enabled: source.flag("HEALTHCORE_RELAY_ENABLED", true)?,
            max_age_seconds: source.number("HEALTHCORE_OUTBOX_MAX_AGE_SECONDS")?,
            batch_size: source.number("HEALTHCORE_RELAY_BATCH_SIZE")?,
            poll_ms: source.number("HEALTHCORE_RELAY_POLL_MS")?,
            retention_hours: source.number("HEALTHCORE_OUTBOX_RETENTION_HOURS")?,
        };
        let consumers = ConsumerConfig {
            max_attempts: source.number("HEALTHCORE_CONSUMER_MAX_ATTEMPTS")?,
            retry_ms: source.number("HEALTHCORE_CONSUMER_RETRY_MS")?,
            webhook: WebhookConfig {
                notifications: notification_webhook(&source)?,
                timeout_ms: source.number("HEALTHCORE_WEBHOOK_TIMEOUT_MS")?,
                max_attempts: source.number("HEALTHCORE_WEBHOOK_MAX_ATTEMPTS")?,
                retry_ms: source.number("HEALTHCORE_WEBHOOK_RETRY_MS")?,
                disable_after: source.number("HEALTHCORE_SUBSCRIPTION_DISABLE_AFTER")?,
            },
            fhir_base_url: fhir_base_url(&source)?,
        };
        let jobs = JobsConfig {
            enabled: source.flag("HEALTHCORE_JOBS_ENABLED", true)?,
            reminder_window_hours: source.number("HEALTHCORE_REMINDER_WINDOW_HOURS")?,
            no_show_after_hours: source.number("HEALTHCORE_NO_SHOW_AFTER_HOURS")?,
            retry_ms: source.number("HEALTHCORE_JOB_RETRY_MS")?,
        };
        let retention = RetentionConfig {
            inbox_hours: source.inbox_retention(relay.retention_hours, kafka.as_ref())?,
            webhook_days: source.number("HEALTHCORE_WEBHOOK_RETENTION_DAYS")?,
            notification_days: source.number("HEALTHCORE_NOTIFICATION_RETENTION_DAYS")?,
            dead_letter_days: source.number("HEALTHCORE_DEAD_LETTER_RETENTION_DAYS")?,
            job_run_days: source.number("HEALTHCORE_JOB_RUN_RETENTION_DAYS")?,
        };
        let config = Config {
            described: Vec::new(),
            kafka,
            relay,
            consumers,
            jobs,
            retention,
            bind,
            data_dir,
            database_url: Secret(database_url),
            backend,
            db_max_connections: source.number("HEALTHCORE_DB_MAX_CONNECTIONS")?,
            db_limits: crate::store::DbLimits {
                acquire: std::time::Duration::from_millis(source.number("HEALTHCORE_DB_ACQUIRE_TIMEOUT_MS")?),
                statement: std::time::Duration::from_millis(source.number("HEALTHCORE_DB_STATEMENT_TIMEOUT_MS")?),
            },
            request_timeout_ms: source.number("HEALTHCORE_REQUEST_TIMEOUT_MS")?,
            jwt_secret,
            token_ttl_seconds: source.number("HEALTHCORE_TOKEN_TTL_SECONDS")?,
            admin_password,
            login_throttle: crate::auth::throttle::ThrottlePolicy {
                account_free_attempts: source.number("HEALTHCORE_LOGIN_FREE_ATTEMPTS")?,
                account_max_lockout: std::time::Duration::from_secs(
                    source.number("HEALTHCORE_LOGIN_LOCKOUT_MAX_SECONDS")?,
                ),
                address_free_attempts: source.number("HEALTHCORE_LOGIN_ADDRESS_FREE_ATTEMPTS")?,
                address_max_lockout: std::time::Duration::from_secs(
                    source.number("HEALTHCORE_LOGIN_ADDRESS_LOCKOUT_MAX_SECONDS")?,
                ),
            },
            trusted_proxies: TrustedProxies::parse(source.get("HEALTHCORE_TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|reason| invalid("HEALTHCORE_TRUSTED_PROXIES", reason))?,
            password_hash_concurrency: match source.get("HEALTHCORE_PASSWORD_HASH_CONCURRENCY").map(str::trim) {
                None | Some("auto") => None,
                Some(_) => Some(source.number("HEALTHCORE_PASSWORD_HASH_CONCURRENCY")?),
            },
            body_limit_bytes: source.number("HEALTHCORE_BODY_LIMIT_BYTES")?,
            http: HttpLimits {
                max_connections: source.number("HEALTHCORE_HTTP_MAX_CONNECTIONS")?,
                header_timeout_ms: source.number("HEALTHCORE_HTTP_HEADER_TIMEOUT_MS")?,
                body_timeout_ms: source.number("HEALTHCORE_HTTP_BODY_TIMEOUT_MS")?,
                idle_timeout_ms: source.number("HEALTHCORE_HTTP_IDLE_TIMEOUT_MS")?,
            },
            idempotency_ttl_seconds: source.number("HEALTHCORE_IDEMPOTENCY_TTL_SECONDS")?,
            booking_horizon_days: source.number("HEALTHCORE_BOOKING_HORIZON_DAYS")?,
            patient_future_bookings_max: source.number("HEALTHCORE_PATIENT_FUTURE_BOOKINGS_MAX")?,
            audit_batch_max: source.number("HEALTHCORE_AUDIT_BATCH_MAX")?,
            log_format,
            log_filter: source.get("RUST_LOG").unwrap_or("info").to_owned(),
            log_file: log_file(&source)?,
            shutdown_grace_seconds: source.number("HEALTHCORE_SHUTDOWN_GRACE_SECONDS")?,
            metrics_token: match source.get("HEALTHCORE_METRICS_TOKEN") {
                Some(token) if token.len() < 16 => {
                    return Err(invalid("HEALTHCORE_METRICS_TOKEN", "must be at least 16 bytes"));
                }
                token => token.map(|t| Secret(t.to_owned())),
            },
            metrics_enabled: source.flag("HEALTHCORE_METRICS_ENABLED", true)?,
            access_log: source.flag("HEALTHCORE_ACCESS_LOG", true)?,
            trace_export: TraceExport::from_lookup(|name| source.get(name))
                .map_err(|reason| invalid("OTEL_EXPORTER_OTLP_PROTOCOL", reason))?,
            service_name: source.get("OTEL_SERVICE_NAME").unwrap_or("healthcore").trim().to_owned(),
            cache_ttl_seconds: source.number("HEALTHCORE_CACHE_TTL_SECONDS")?,
            metrics_addr: match source.get("HEALTHCORE_METRICS_ADDR").map(str::trim) {
                None => None,
                Some(raw) => Some(raw.parse().map_err(|_| {
                    invalid("HEALTHCORE_METRICS_ADDR", format!("'{raw}' is not an address like 0.0.0.0:9464"))
                })?),
            },
        };
        let described = describe(&source, &config);
        Ok(Config { described, ..config })
    }

    /// The effective configuration as `NAME=value` lines in `SETTINGS` order, secrets masked.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        self.described.clone()
    }

    /// The token signing key: configured, or (embedded default only) generated once into the data
    /// folder with owner-only permissions and reused on every later start.
    pub fn signing_key(&self) -> anyhow::Result<Vec<u8>> {
        if let Some(secret) = &self.jwt_secret {
            return Ok(secret.expose().as_bytes().to_vec());
        }
        if self.backend == Backend::Postgres {
            // Checked here rather than at load so commands that issue no tokens (migrate, user
            // create) run with the database URL alone.
            anyhow::bail!(invalid(
                "HEALTHCORE_JWT_SECRET",
                "is required when DATABASE_URL points at PostgreSQL (all instances must share one key)"
            ));
        }
        let path = self.data_dir.join("jwt-signing-key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let key = existing.trim();
            anyhow::ensure!(
                key.len() >= 64,
                "{} is shorter than 64 hex characters; delete it to generate a new key",
                path.display()
            );
            return Ok(key.as_bytes().to_vec());
        }
        crate::store::create_private_dir(&self.data_dir)?;
        let key = hex::encode(rand::random::<[u8; 32]>());
        write_private_file(&path, &key)?;
        Ok(key.into_bytes())
    }
}

fn write_private_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

fn read_config_file(path: &str) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid("HEALTHCORE_CONFIG_FILE", format!("cannot read {path}: {e}")))?;
    let mut values = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| invalid("HEALTHCORE_CONFIG_FILE", format!("{path}:{}: expected KEY=VALUE", number + 1)))?;
        values.insert(key.trim().to_owned(), value.trim().trim_matches('"').to_owned());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::kafka::TopicClass;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_map(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn with_nothing_set_it_runs_on_sqlite_in_the_data_folder() {
        let config = config(&[]).unwrap();
        assert_eq!(config.backend, Backend::Sqlite);
        assert_eq!(config.database_url.expose(), "sqlite://./data/healthcore.db");
        assert_eq!(config.bind.to_string(), "127.0.0.1:8000");
    }

    #[test]
    fn postgres_without_a_signing_key_cannot_issue_tokens() {
        let config = config(&[("DATABASE_URL", "postgres://u:p@localhost/db")]).unwrap();
        let err = config.signing_key().unwrap_err().to_string();
        assert!(err.starts_with("HEALTHCORE_JWT_SECRET: is required"), "{err}");
    }

    #[test]
    fn a_short_signing_key_is_refused() {
        assert_eq!(config(&[("HEALTHCORE_JWT_SECRET", "short")]).unwrap_err().setting, "HEALTHCORE_JWT_SECRET");
    }

    #[test]
    fn topic_policies_come_from_their_class_settings_and_are_checked() {
        let kafka = [("KAFKA_BOOTSTRAP_SERVERS", "k:9092")];
        let defaults = config(&kafka).unwrap().kafka.unwrap();
        assert_eq!(
            defaults.topic_configs(TopicClass::Events),
            [
                ("cleanup.policy", "delete".to_owned()),
                ("retention.ms", "604800000".to_owned()),
                ("min.insync.replicas", "1".to_owned()),
                ("compression.type", "lz4".to_owned()),
            ]
        );
        assert_eq!(defaults.topic_configs(TopicClass::DeadLetters)[1], ("retention.ms", "2592000000".to_owned()));
        let set = config(&[kafka[0], ("HEALTHCORE_KAFKA_DEAD_LETTER_CLEANUP_POLICY", "delete, compact")]).unwrap();
        assert_eq!(set.kafka.unwrap().topic_configs(TopicClass::DeadLetters)[0].1, "compact,delete");
        let refused = |pairs: &[(&str, &str)]| config(&[&kafka[..], pairs].concat()).unwrap_err().to_string();
        assert_eq!(
            refused(&[("HEALTHCORE_KAFKA_EVENTS_CLEANUP_POLICY", "forever")]),
            "HEALTHCORE_KAFKA_EVENTS_CLEANUP_POLICY: 'forever' is not delete, compact or compact,delete"
        );
        assert_eq!(
            refused(&[("HEALTHCORE_KAFKA_MIN_INSYNC_REPLICAS", "2")]),
            "HEALTHCORE_KAFKA_MIN_INSYNC_REPLICAS: 2 is more than HEALTHCORE_KAFKA_REPLICATION_FACTOR (1)"
        );
        assert!(
            refused(&[("HEALTHCORE_KAFKA_COMPRESSION", "brotli")])
                .starts_with("HEALTHCORE_KAFKA_COMPRESSION: 'brotli'")
        );
    }

    #[test]
    fn inbox_entries_outlive_every_redelivery() {
        assert_eq!(config(&[]).unwrap().retention.inbox_hours, 168 + 24, "the outbox's week and a day");
        let kafka = ("KAFKA_BOOTSTRAP_SERVERS", "k:9092");
        let longer_topics = config(&[kafka, ("HEALTHCORE_KAFKA_EVENTS_RETENTION_HOURS", "720")]).unwrap();
        assert_eq!(longer_topics.retention.inbox_hours, 720 + 24);
        let err = config(&[kafka, ("HEALTHCORE_INBOX_RETENTION_HOURS", "100")]).unwrap_err().to_string();
        assert!(err.starts_with("HEALTHCORE_INBOX_RETENTION_HOURS: 100 is not longer than the 168 hours"), "{err}");
        assert_eq!(config(&[("HEALTHCORE_INBOX_RETENTION_HOURS", "169")]).unwrap().retention.inbox_hours, 169);
    }

    #[test]
    fn an_out_of_range_number_names_the_setting_and_the_range() {
        let err = config(&[("HEALTHCORE_TOKEN_TTL_SECONDS", "5")]).unwrap_err();
        assert_eq!(err.to_string(), "HEALTHCORE_TOKEN_TTL_SECONDS: 5 is outside 60–86400");
    }

    #[test]
    fn switches_and_the_otlp_protocol_are_checked() {
        let err = config(&[("HEALTHCORE_ACCESS_LOG", "maybe")]).unwrap_err();
        assert_eq!(err.to_string(), "HEALTHCORE_ACCESS_LOG: 'maybe' is neither true nor false");
        for (value, expected) in
            [("TRUE", true), ("1", true), ("yes", true), ("False", false), ("0", false), ("no", false)]
        {
            assert_eq!(config(&[("HEALTHCORE_ACCESS_LOG", value)]).unwrap().access_log, expected, "{value}");
            assert_eq!(config(&[("HEALTHCORE_JOBS_ENABLED", value)]).unwrap().jobs.enabled, expected, "{value}");
        }
        let grpc = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
        assert!(
            config(&grpc).unwrap_err().to_string().starts_with("OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' is not supported")
        );
        let exported = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]).unwrap();
        assert_eq!(exported.trace_export, TraceExport::Otlp);
        assert_eq!(config(&[]).unwrap().trace_export, TraceExport::None);
        assert_eq!(config(&[("OTEL_SDK_DISABLED", "true")]).unwrap().trace_export, TraceExport::Disabled);
    }

    #[test]
    fn an_otlp_endpoint_is_never_described_even_when_tracing_is_off() {
        let endpoint = "http://user:pw@collector:4318";
        for extra in [None, Some(("OTEL_SDK_DISABLED", "true"))] {
            let mut pairs = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)];
            pairs.extend(extra);
            let described = format!("{:?}", config(&pairs).unwrap().describe());
            assert!(!described.contains("collector"), "{described}");
        }
    }

    #[test]
    fn secrets_are_masked_when_described() {
        let config = config(&[
            ("DATABASE_URL", "postgres://app:hunter2hunter2@db/hc"),
            ("HEALTHCORE_JWT_SECRET", "0123456789abcdef0123456789abcdef-secret"),
        ])
        .unwrap();
        let text = format!("{:?} {:?}", config.describe(), config);
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("-secret"));
    }
}

#[cfg(test)]
mod documentation_tests {
    use super::SETTINGS;

    #[test]
    fn the_readme_table_lists_every_setting_and_no_other() {
        let readme = include_str!("../../README.md");
        let documented: Vec<&str> = readme
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        let known: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        assert_eq!(documented, known, "README's configuration table and config::SETTINGS differ");
    }

    #[test]
    fn the_readme_table_shows_each_declared_default_and_description() {
        let readme = include_str!("../../README.md");
        let mut differing = Vec::new();
        for setting in SETTINGS {
            let row = format!("| `{}` | ", setting.name);
            let line = readme.lines().find(|line| line.starts_with(&row)).expect("every setting has a row");
            let secrecy = if setting.secret { " — secret, never printed" } else { "" };
            let expected = format!("{} | {}{secrecy} |", setting.default, setting.description);
            if line[row.len()..].replace('`', "") != expected.replace('`', "") {
                differing.push(setting.name);
            }
        }
        assert!(differing.is_empty(), "README rows that differ from config::SETTINGS: {differing:?}");
    }

    #[test]
    fn every_numeric_default_lies_in_its_range() {
        for setting in SETTINGS {
            if let (Some((min, max)), Ok(default)) = (setting.range, setting.default.parse::<i64>()) {
                assert!((min..=max).contains(&default), "{}", setting.name);
            }
            if setting.range.is_none() {
                assert!(setting.default.parse::<i64>().is_err(), "{} is a number without a range", setting.name);
            }
        }
    }
}
