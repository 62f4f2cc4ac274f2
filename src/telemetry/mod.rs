//! Logs, metrics and traces.

pub mod json;
pub mod log_file;
pub mod metrics;
pub mod process;
pub mod traces;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Lines buffered between the request path and the writer thread before writers wait.
const LOG_BUFFER_LINES: usize = 64 * 1024;

/// Bytes of log lines gathered into one write to stdout.
const STDOUT_BUFFER_BYTES: usize = 64 * 1024;

/// Keeps the log writers' threads and the span exporter alive; dropping it flushes what they hold.
pub struct TelemetryGuard {
    _writers: Vec<WorkerGuard>,
    tracer_provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take() {
            // Sends the spans still batched; an unreachable collector costs at most its timeout.
            let _ = provider.shutdown();
        }
    }
}

static DROPPED_FILE_LINES: std::sync::OnceLock<tracing_appender::non_blocking::ErrorCounter> =
    std::sync::OnceLock::new();

/// Log lines the file writer dropped because it was behind (0 without a log file).
pub fn dropped_log_lines() -> u64 {
    DROPPED_FILE_LINES.get().map_or(0, |counter| counter.dropped_lines() as u64)
}

/// How log lines are written on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// What `init` needs from the configuration (`Config::telemetry`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub log_filter: String,
    pub log_format: LogFormat,
    pub log_file: Option<log_file::LogFileConfig>,
    pub trace_export: traces::TraceExport,
    pub service_name: String,
}

/// Installs the global subscriber (and the OpenTelemetry tracer, see `traces`): JSON lines (the default) or human-readable output on stdout, and
/// JSON lines to the rotated log file when one is configured. Fields are real JSON keys; span fields
/// such as `correlation_id` are top-level keys of every line written inside the span
/// (`json::JsonLines`).
///
/// Stdout is written by a dedicated thread: a request never waits on a slow terminal or log shipper
/// unless the buffer is full, and then it waits rather than dropping a line (stdout is the record of
/// last resort). The file writer drops instead, and counts what it drops.
pub fn init(config: &Settings) -> anyhow::Result<TelemetryGuard> {
    // The writer thread drains every queued line into this buffer and then flushes it: one write
    // per burst instead of one per line (stdout alone is line-buffered).
    let buffered_stdout = std::io::BufWriter::with_capacity(STDOUT_BUFFER_BYTES, std::io::stdout());
    let (stdout, stdout_guard) =
        NonBlockingBuilder::default().buffered_lines_limit(LOG_BUFFER_LINES).lossy(false).finish(buffered_stdout);
    let mut guards = vec![stdout_guard];
    let file = match &config.log_file {
        Some(file) => {
            let rotating = log_file::RotatingFile::open(file.clone())
                .map_err(|err| anyhow::anyhow!("HEALTHCORE_LOG_FILE: cannot open {}: {err}", file.path.display()))?;
            let (writer, guard) =
                NonBlockingBuilder::default().buffered_lines_limit(LOG_BUFFER_LINES).lossy(true).finish(rotating);
            let _ = DROPPED_FILE_LINES.set(writer.error_counter());
            guards.push(guard);
            Some(writer)
        }
        None => None,
    };
    let tracer_provider = traces::provider(&config.trace_export, &config.service_name)?;
    // A subscriber may already be installed (tests); that is fine.
    let _ = install(&config.log_filter, config.log_format, stdout, file, tracer_provider.as_ref());
    Ok(TelemetryGuard { _writers: guards, tracer_provider })
}

/// Installs the global subscriber writing to `writer` (tests capture the JSON lines this way), with
/// spans going to `tracer_provider` if given.
pub fn try_init<W>(
    filter: &str,
    format: LogFormat,
    writer: W,
    tracer_provider: Option<&SdkTracerProvider>,
) -> Result<(), tracing_subscriber::util::TryInitError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    install(filter, format, writer, None::<fn() -> std::io::Sink>, tracer_provider)
}

fn install<W, F>(
    filter: &str,
    format: LogFormat,
    writer: W,
    file: Option<F>,
    tracer_provider: Option<&SdkTracerProvider>,
) -> Result<(), tracing_subscriber::util::TryInitError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    F: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let file_layer = file.map(|file| fmt::layer().event_format(json::JsonLines).with_writer(file));
    // Spans are built for every level the filter lets through; the filter is global, so a span the
    // log filter hides is not traced either.
    // No thread, source-location or busy/idle-time attributes: they cost allocations and clock
    // reads on every span (and every poll), and the span names and ids say where work happened.
    let otel_layer = tracer_provider.map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(traces::tracer(provider))
            .with_threads(false)
            .with_location(false)
            .with_tracked_inactivity(false)
    });
    let registry =
        tracing_subscriber::registry().with(filter).with(otel_layer).with(json::SpanFieldsLayer).with(file_layer);
    match format {
        LogFormat::Json => registry.with(fmt::layer().event_format(json::JsonLines).with_writer(writer)).try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false).with_writer(writer)).try_init(),
    }
}
