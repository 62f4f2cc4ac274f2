//! Logs (and, with the observability work, metrics and traces).

pub mod json;
pub mod metrics;
pub mod process;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{Config, LogFormat};

/// Lines buffered between the request path and the writer thread before writers wait.
const LOG_BUFFER_LINES: usize = 64 * 1024;

/// Installs the global subscriber: JSON lines (the default) or human-readable output on stdout.
/// Fields are real JSON keys; span fields such as `correlation_id` are top-level keys of every line
/// written inside the span (`json::JsonLines`).
///
/// Lines are written to stdout by a dedicated thread: a request never waits on a slow terminal or
/// log shipper unless the buffer is full, and then it waits rather than dropping a line. Keep the
/// returned guard alive until exit so the buffer is flushed.
pub fn init_logging(config: &Config) -> WorkerGuard {
    let (writer, guard) =
        NonBlockingBuilder::default().buffered_lines_limit(LOG_BUFFER_LINES).lossy(false).finish(std::io::stdout());
    // A subscriber may already be installed (tests); that is fine.
    let _ = try_init(&config.log_filter, config.log_format, writer);
    guard
}

/// Installs the global subscriber writing to `writer` (tests capture the JSON lines this way).
pub fn try_init<W>(filter: &str, format: LogFormat, writer: W) -> Result<(), tracing_subscriber::util::TryInitError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(json::SpanFieldsLayer)
            .with(fmt::layer().event_format(json::JsonLines).with_writer(writer))
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false).with_writer(writer)).try_init(),
    }
}
