//! One tracing setup for every process: pretty for a terminal, JSON lines in production, the
//! level from `RUST_LOG` (default `info`); and, when `EVENTHIVE_OTLP_ENDPOINT` is set,
//! OpenTelemetry traces exported over OTLP/gRPC.
//!
//! A trace follows a request across services through the W3C `traceparent`: the gateway takes
//! it from the client (or starts one), [`crate::grpc::request`] puts it in every outgoing gRPC
//! call's metadata, each gRPC server continues it, the outbox stores it in the envelope of every
//! domain event the request caused, and each consumer continues it when it handles the event.
//! Without an endpoint there is no exporter and no OpenTelemetry layer, and the helpers here
//! return at once: tracing off costs nothing.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*, registry::LookupSpan};

use crate::config::LogFormat;

/// The W3C trace-context header (and gRPC metadata key, and envelope field).
pub const TRACEPARENT: &str = "traceparent";

/// Whether spans go to OpenTelemetry in this process; off, propagation is skipped entirely.
static TRACING: AtomicBool = AtomicBool::new(false);

/// Keeps the trace exporter of the process; dropping it flushes the spans not yet sent.
#[must_use = "dropping the guard shuts the trace exporter down"]
pub struct Guard(Option<SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("eventhive: flushing traces failed: {error}");
        }
    }
}

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// The OpenTelemetry layer over `provider`, named after `service`.
fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("eventhive"))
}

/// Installs the global subscriber; with `otlp_endpoint`, also an OpenTelemetry layer whose
/// spans are batched and exported over OTLP/gRPC, as `service_name`. A second call (tests boot
/// many systems in one process) installs nothing.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>, service_name: &str) -> anyhow::Result<Guard> {
    let provider = match otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name(service_name.to_owned()).build())
                    .build(),
            )
        }
        None => None,
    };
    let filter = filter("info,sqlx=warn,lapin=warn,tower_http=info,h2=warn,hyper=warn,opentelemetry=warn,tonic=warn");
    let otel = provider.as_ref().map(otel_layer);
    let registry = tracing_subscriber::registry().with(otel).with(filter);
    let installed = match format {
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true).with_current_span(true)).try_init(),
    };
    if installed.is_ok() && provider.is_some() {
        TRACING.store(true, Ordering::Relaxed);
    }
    Ok(Guard(provider))
}

/// Logs in tests go to the test harness' captured output; set `RUST_LOG` to see them.
pub fn init_for_tests() {
    let _already_set =
        tracing_subscriber::registry().with(filter("warn")).with(fmt::layer().with_test_writer()).try_init();
}

/// For a test about traces: spans go to `provider` (an in-memory exporter, say), propagation is
/// on. Call it before anything else installs a subscriber; `false` if something did.
pub fn init_for_tests_with_traces(provider: &SdkTracerProvider) -> bool {
    // Spans are recorded at info whatever `RUST_LOG` says; it applies to the log lines only.
    let spans = otel_layer(provider).with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let logs = fmt::layer().with_test_writer().with_filter(filter("warn"));
    let installed = tracing_subscriber::registry().with(spans).with(logs).try_init().is_ok();
    if installed {
        TRACING.store(true, Ordering::Relaxed);
    }
    installed
}

/// Whether this process exports traces.
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// The `traceparent` of the current span, to carry to the next hop; `None` with tracing off.
pub fn current_traceparent() -> Option<String> {
    if !tracing_enabled() {
        return None;
    }
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut Carrier(&mut carrier));
    carrier.remove(TRACEPARENT)
}

/// Makes `span` continue the trace of `traceparent` (from a header, metadata or an envelope).
/// A missing or malformed value leaves `span` the root of a new trace.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| tracing_enabled()) else { return };
    let mut carrier = HashMap::new();
    carrier.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
    let context = TraceContextPropagator::new().extract(&Carrier(&mut carrier));
    if context.span().span_context().is_valid() {
        // Fails only for a span already closed or not recorded: nothing to continue then.
        let _ = span.set_parent(context);
    }
}

struct Carrier<'a>(&'a mut HashMap<String, String>);

impl Injector for Carrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}
