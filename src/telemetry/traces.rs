//! Distributed traces. The code writes ordinary `tracing` spans; `tracing-opentelemetry` turns them
//! into OpenTelemetry spans, so one trace runs from the HTTP request through its database work and
//! outbox write to the relay's publish and each consumer's handling. The `traceparent` of the outbox
//! write is stored with the event and sent as a Kafka header: that is how a consumer in another
//! process continues the trace.
//!
//! Spans are exported over OTLP (HTTP/protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; otherwise they are still made, so every log line
//! of a request carries its `trace_id`, and dropped when they end. `OTEL_SDK_DISABLED=true` turns
//! tracing off altogether (no spans, no trace ids in logs).
//!
//! Span attributes carry ids, routes, types and table names only: nothing that identifies a person.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACER_NAME: &str = "healthcore";

/// The tracer database spans are started with (they are made after the query, with its real start
/// and end times, which a `tracing` span cannot have). Set when tracing is installed.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// What the standard `OTEL_*` variables ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceExport {
    /// `OTEL_SDK_DISABLED=true`: no spans at all.
    Disabled,
    /// Spans give log lines their trace ids and are dropped.
    None,
    /// Batched and sent over OTLP/HTTP (protobuf) to the configured endpoint.
    Otlp,
}

impl TraceExport {
    /// From the standard variables, as `get` finds them (unset and blank are the same).
    pub fn from_lookup<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<TraceExport, String> {
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(TraceExport::Disabled);
        }
        if get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none") {
            return Ok(TraceExport::None);
        }
        if get("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() {
            return Ok(TraceExport::None);
        }
        match get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL")) {
            Some(other) if !is_supported_protocol(other) => {
                Err(format!("'{other}' is not supported; HealthCore exports OTLP over http/protobuf"))
            }
            _ => Ok(TraceExport::Otlp),
        }
    }
}

/// gRPC and JSON are not built in: one transport keeps the dependency tree lean, and every
/// collector accepts http/protobuf.
fn is_supported_protocol(protocol: &str) -> bool {
    protocol.trim() == "http/protobuf"
}

/// The tracer provider for `export` (None when disabled). The SDK itself reads the other standard
/// variables from the environment: `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`.
pub fn provider(export: &TraceExport, service_name: &str) -> anyhow::Result<Option<SdkTracerProvider>> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service_name));
    match export {
        TraceExport::Disabled => return Ok(None),
        // Nothing would read a recorded span: new traces are not sampled, so spans carry ids (for
        // the logs and the stored traceparent) without recording attributes. A caller's sampled
        // traceparent is still honoured, so its trace stays whole downstream.
        TraceExport::None => builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff))),
        TraceExport::Otlp => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()
                .map_err(|err| anyhow::anyhow!("OTLP trace exporter: {err}"))?;
            builder = builder.with_batch_exporter(exporter);
        }
    }
    Ok(Some(builder.build()))
}

fn resource(service_name: &str) -> Resource {
    Resource::builder()
        .with_service_name(service_name.to_owned())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attribute(KeyValue::new("service.namespace", "healthcore"))
        .build()
}

/// The tracer for the `tracing-opentelemetry` layer; also kept for the database spans.
pub fn tracer(provider: &SdkTracerProvider) -> SdkTracer {
    let tracer = provider.tracer(TRACER_NAME);
    let _ = TRACER.set(tracer.clone());
    tracer
}

/// The W3C `traceparent` of `span`, to store with the events it records or send onwards.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier = HashMap::with_capacity(1);
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` continue the trace of a received `traceparent` (ignored unless well-formed).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else { return };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Whether `span` is recorded (sampled): attributes set on an unsampled span are dropped unread.
pub fn is_recorded(span: &tracing::Span) -> bool {
    span.context().span().span_context().is_sampled()
}

/// Marks `span` as failed (OpenTelemetry status `Error`) with a description free of personal data.
pub fn mark_error(span: &tracing::Span, description: impl Into<std::borrow::Cow<'static, str>>) {
    span.set_status(Status::error(description));
}

/// One span per database statement, a child of the current span, made after the statement
/// finished (from the timing the query metrics get). Operation and table only, never the SQL text:
/// a statement may hold values.
pub fn record_query(
    system: &'static str,
    operation: &'static str,
    table: &'static str,
    elapsed: Duration,
    failed: bool,
) {
    let Some(tracer) = TRACER.get() else { return };
    // The OpenTelemetry context the entered `tracing` span activated: a thread-local read, cheaper
    // than looking the span up through the subscriber for every statement.
    let parent = opentelemetry::Context::current();
    if !parent.span().span_context().is_sampled() {
        // Work outside any trace (pool upkeep, background polling) makes no orphan spans, and an
        // unsampled trace records none.
        return;
    }
    let end = SystemTime::now();
    let mut span = tracer
        .span_builder(format!("{operation} {table}"))
        .with_kind(SpanKind::Client)
        .with_start_time(end.checked_sub(elapsed).unwrap_or(end))
        .with_attributes([
            KeyValue::new("db.system.name", system),
            KeyValue::new("db.operation.name", operation),
            KeyValue::new("db.collection.name", table),
        ])
        .start_with_context(tracer, &parent);
    if failed {
        span.set_status(Status::error("statement failed"));
    }
    span.end_with_timestamp(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_protobuf_is_accepted_as_the_otlp_protocol() {
        assert!(is_supported_protocol("http/protobuf"));
        assert!(is_supported_protocol(" http/protobuf "));
        assert!(!is_supported_protocol("grpc"));
        assert!(!is_supported_protocol("http/json"));
    }

    #[test]
    fn a_received_traceparent_is_continued_and_a_malformed_one_ignored() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::layer::SubscriberExt::with(
            tracing_subscriber::registry(),
            tracing_opentelemetry::layer().with_tracer(provider.tracer("test")),
        );
        tracing::subscriber::with_default(subscriber, || {
            let continued = tracing::info_span!("continued");
            continue_trace(&continued, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
            let sent = traceparent(&continued).expect("a span in a trace has a traceparent");
            assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{sent}");
            assert!(!sent.contains("00f067aa0ba902b7"), "the span's own id is sent, not its parent's: {sent}");

            let fresh = tracing::info_span!("fresh");
            continue_trace(&fresh, Some("00-not-a-trace-01"));
            let sent = traceparent(&fresh).expect("a new trace is started instead");
            assert!(!sent.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
        });
    }
}
