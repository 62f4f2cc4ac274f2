//! Logs (and, with the observability work, metrics and traces).

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{Config, LogFormat};

/// Lines buffered between the request path and the writer thread before writers wait.
const LOG_BUFFER_LINES: usize = 64 * 1024;

/// Installs the global subscriber: JSON lines (the default) or human-readable output on stdout.
/// Fields are real JSON keys; span fields such as `correlation_id` appear on every line.
///
/// Lines are written to stdout by a dedicated thread: a request never waits on a slow terminal or
/// log shipper unless the buffer is full, and then it waits rather than dropping a line. Keep the
/// returned guard alive until exit so the buffer is flushed.
pub fn init_logging(config: &Config) -> WorkerGuard {
    let (writer, guard) =
        NonBlockingBuilder::default().buffered_lines_limit(LOG_BUFFER_LINES).lossy(false).finish(std::io::stdout());
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_target(true)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false).with_writer(writer)).try_init(),
    };
    // A subscriber may already be installed (tests); that is fine.
    let _ = result;
    guard
}
