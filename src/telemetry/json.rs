//! The JSON log line: one object per event with `timestamp`, `level`, `target`, `message`, the
//! fields of every enclosing span (so `correlation_id`, set on the request span, is a top-level key
//! of every line written while serving the request), `trace_id` and `span_id` of the innermost
//! traced span, and the event's own fields, all as real JSON values. Each key appears once: an
//! event field wins over a span field of the same name, an inner span's over an outer one's. Span
//! fields that only steer OpenTelemetry (`otel.*`) are left out.
//!
//! Every request writes at least its access line, so the line is built without a map: field names
//! are the `&'static str`s `tracing` already has, and values are written straight into one buffer.

use std::fmt::{self, Write as _};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Field names and their JSON values, in the order they were recorded.
type Fields = Vec<(&'static str, Value)>;

/// A span's fields as JSON, kept in the span's extensions by `SpanFieldsLayer`.
struct SpanFields(Fields);

struct JsonVisitor<'a>(&'a mut Fields);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name.starts_with("otel.") {
            return;
        }
        match self.0.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

/// Records span fields as JSON when the span is created (and when fields are recorded later).
pub struct SpanFieldsLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanFieldsLayer {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::with_capacity(attrs.fields().len());
        attrs.record(&mut JsonVisitor(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(fields));
        }
    }
}

/// Formats each event as one JSON object on one line.
pub struct JsonLines;

/// Appends `"key":value` (with a separating comma) to the line.
fn push_entry(line: &mut Vec<u8>, key: &str, value: &Value) {
    if line.len() > 1 {
        line.push(b',');
    }
    serde_json::to_writer(&mut *line, key).expect("writing to a Vec cannot fail");
    line.push(b':');
    serde_json::to_writer(&mut *line, value).expect("writing to a Vec cannot fail");
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let metadata = event.metadata();
        let mut fields = Fields::with_capacity(8);
        event.record(&mut JsonVisitor(&mut fields));
        let message = fields.iter().position(|(name, _)| *name == "message").map(|at| fields.remove(at).1);

        let mut line = Vec::with_capacity(512);
        line.push(b'{');
        let mut timestamp = String::with_capacity(32);
        let _ = write!(timestamp, "{}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ"));
        push_entry(&mut line, "timestamp", &Value::String(timestamp));
        push_entry(&mut line, "level", &Value::String(metadata.level().as_str().to_owned()));
        push_entry(&mut line, "target", &Value::String(metadata.target().to_owned()));
        push_entry(&mut line, "message", &message.unwrap_or_else(|| Value::String(String::new())));
        let mut written: Vec<&'static str> = fields.iter().map(|(name, _)| *name).collect();
        if let Some(scope) = ctx.event_scope() {
            let mut trace = None;
            // Innermost first, so an inner span's field wins over an outer one's of the same name.
            for span in scope {
                let extensions = span.extensions();
                if let Some(SpanFields(span_fields)) = extensions.get::<SpanFields>() {
                    for (name, value) in span_fields {
                        if !written.contains(name) {
                            written.push(name);
                            push_entry(&mut line, name, value);
                        }
                    }
                }
                if trace.is_none()
                    && let Some(otel) = extensions.get::<tracing_opentelemetry::OtelData>()
                {
                    trace = otel.trace_id().zip(otel.span_id());
                }
            }
            if let Some((trace_id, span_id)) = trace {
                push_entry(&mut line, "trace_id", &Value::String(trace_id.to_string()));
                push_entry(&mut line, "span_id", &Value::String(span_id.to_string()));
            }
        }
        for (name, value) in &fields {
            push_entry(&mut line, name, value);
        }
        line.push(b'}');
        // serde_json writes valid UTF-8.
        let text = std::str::from_utf8(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt;
    use tracing_subscriber::prelude::*;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_key_once_inner_fields_winning_and_values_typed() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry()
            .with(SpanFieldsLayer)
            .with(fmt::layer().event_format(JsonLines).with_writer(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer", correlation_id = "c-1", group = "outer", otel.kind = "server");
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", group = "inner", attempt = 2_u64);
            let _inner = inner.enter();
            tracing::info!(attempt = 3_u64, ok = true, ratio = 0.5, text = "a \"quoted\" word", "done");
        });
        let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(output.trim()).unwrap_or_else(|e| panic!("{e}: {output}"));
        assert_eq!(line["message"], "done");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["correlation_id"], "c-1");
        assert_eq!(line["group"], "inner", "the inner span's field wins");
        assert_eq!(line["attempt"], 3, "the event's field wins");
        assert_eq!((line["ok"].clone(), line["ratio"].clone()), (Value::Bool(true), 0.5.into()));
        assert_eq!(line["text"], "a \"quoted\" word");
        assert!(line.get("otel.kind").is_none());
        assert!(chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str().unwrap()).is_ok());
        for key in ["group", "attempt", "correlation_id"] {
            assert_eq!(output.matches(&format!("\"{key}\":")).count(), 1, "{key} once in {output}");
        }
    }
}
