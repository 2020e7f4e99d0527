//! OpenTelemetry export: the runtime's spans (`actionbox_runtime::telemetry`)
//! and the server's figures (`metrics.rs`) over OTLP (HTTP, protobuf bodies),
//! configured by the standard `OTEL_*` variables and off when no endpoint is
//! set; plus the trace context of incoming requests.
//!
//! The export never blocks or fails a call. Ended spans go into a bounded
//! queue ([`QueuedSpanProcessor`]); one background thread sends them in
//! batches. A full queue or a failed export (a collector that is down, slow
//! or refusing) drops spans, and the drops are counted
//! (`actionbox_telemetry_spans_dropped_total` on `/metrics`). The SDK's own
//! batch processor counts neither in a way a server can expose, hence our
//! own — in the same shape (`OTEL_BSP_*` variables, same defaults).
//!
//! Incoming `traceparent` headers continue the caller's trace
//! ([`continue_trace`], and MCP `_meta` in `mcp.rs`), whether or not an
//! exporter is on: structured logs carry the trace id either way. Forwarding
//! it upstream is the runtime's decision, per integration
//! (`propagate_trace`).

use anyhow::{bail, Context as _, Result};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long pending spans may take to go out when the process ends.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// Longest `tracestate` continued: W3C asks to keep at least 512 bytes; a
/// caller may not make the host carry (and perhaps forward) more.
const MAX_TRACESTATE_BYTES: usize = 512;
/// Queue bound whatever `OTEL_BSP_MAX_QUEUE_SIZE` says: spans held for a
/// collector that is down are memory the host holds.
const MAX_QUEUE_SPANS: usize = 65_536;

/// Spans handed to the exporter, and spans dropped (queue full or export
/// failed), since the process started.
#[derive(Debug, Default)]
pub struct SpanCounters {
    exported: AtomicU64,
    dropped: AtomicU64,
}

impl SpanCounters {
    /// Spans the collector accepted.
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Spans lost: queue full, or an export that failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The process's span counters (the tracer provider is process-global too).
pub fn span_counters() -> &'static SpanCounters {
    static COUNTERS: SpanCounters = SpanCounters {
        exported: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    };
    &COUNTERS
}

/// The installed exporters; [`Telemetry::shutdown`] flushes them.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    metrics: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Read the `OTEL_*` variables and install what they ask for: nothing
    /// when no OTLP endpoint is set (or `OTEL_SDK_DISABLED=true`). Fails on
    /// a setting this build cannot honour (a protocol other than
    /// `http/protobuf`, an exporter other than `otlp`/`none`). Call it before
    /// the async runtime starts: the HTTP client owns a thread of its own.
    pub fn from_env() -> Result<Self> {
        let off = Self {
            traces: None,
            metrics: None,
        };
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(off);
        }
        let traces = signal_enabled("TRACES", env)?;
        let metrics = signal_enabled("METRICS", env)?;
        if !traces && !metrics {
            return Ok(off);
        }
        // reqwest's TLS has no crypto provider of its own in this build; the
        // process default is ring, as for every other TLS client here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let resource = resource();
        let traces = if traces {
            let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build()
                .context("cannot set up the OTLP trace exporter (check OTEL_EXPORTER_OTLP_*)")?;
            exporter.set_resource(&resource);
            let provider = SdkTracerProvider::builder()
                .with_span_processor(QueuedSpanProcessor::start(exporter, BatchSettings::from_env())?)
                .with_resource(resource.clone())
                .build();
            opentelemetry::global::set_tracer_provider(provider.clone());
            Some(provider)
        } else {
            None
        };
        let metrics = if metrics {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build()
                .context("cannot set up the OTLP metric exporter (check OTEL_EXPORTER_OTLP_*)")?;
            let provider = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(exporter).build())
                .with_resource(resource)
                .build();
            opentelemetry::global::set_meter_provider(provider.clone());
            Some(provider)
        } else {
            None
        };
        Ok(Self { traces, metrics })
    }

    /// Send what is pending (at most [`SHUTDOWN_FLUSH`] per signal) and stop.
    /// Call it outside the async runtime.
    pub fn shutdown(self) {
        if let Some(traces) = self.traces {
            if let Err(e) = traces.shutdown_with_timeout(SHUTDOWN_FLUSH) {
                tracing::warn!("could not send the last spans to the OTLP collector: {e}");
            }
        }
        if let Some(metrics) = self.metrics {
            if let Err(e) = metrics.shutdown_with_timeout(SHUTDOWN_FLUSH) {
                tracing::warn!("could not send the last metrics to the OTLP collector: {e}");
            }
        }
    }
}

/// A non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether signal `TRACES`/`METRICS` is exported: an endpoint is set for it
/// and `OTEL_{signal}_EXPORTER` is not `none`; its protocol must be
/// `http/protobuf`. `env` reads a variable.
fn signal_enabled(signal: &str, env: impl Fn(&str) -> Option<String>) -> Result<bool> {
    let exporter_var = format!("OTEL_{signal}_EXPORTER");
    match env(&exporter_var).as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(false),
        Some(other) => {
            bail!("{exporter_var}={other}: this build exports over OTLP only; set it to `otlp` or `none`, or unset it")
        }
    }
    for var in [
        "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
        format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"),
    ] {
        if let Some(p) = env(&var).filter(|p| p != "http/protobuf") {
            bail!(
                "{var}={p}: this build exports OTLP over HTTP with protobuf bodies only; set it to \
                 `http/protobuf` (or unset it) and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's \
                 OTLP/HTTP port (usually 4318)"
            );
        }
    }
    Ok(env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || env(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")).is_some())
}

/// The process's resource: `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_SERVICE_NAME` (read by the SDK's detectors), `actionbox` when
/// neither names the service, and the version.
fn resource() -> Resource {
    let named = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES")
            .is_some_and(|a| a.split(',').any(|kv| kv.trim().starts_with("service.name=")));
    let builder = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if named {
        builder.build()
    } else {
        builder.with_service_name("actionbox").build()
    }
}

/// The batching knobs, from the standard `OTEL_BSP_*` variables.
#[derive(Debug, Clone, Copy)]
struct BatchSettings {
    /// Spans waiting for export; more are dropped.
    max_queue: usize,
    /// Spans in one export request.
    max_batch: usize,
    /// Longest a span waits for its batch to fill.
    delay: Duration,
}

impl BatchSettings {
    fn from_env() -> Self {
        let number = |name: &str, default: usize| {
            env(name)
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 2048).min(MAX_QUEUE_SPANS);
        Self {
            max_queue,
            max_batch: number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).min(max_queue),
            delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000) as u64),
        }
    }
}

/// A span processor that never blocks the span's thread: ended spans go
/// into a bounded queue (full: dropped and counted), one thread exports
/// them in batches (failed: dropped and counted).
#[derive(Debug)]
struct QueuedSpanProcessor {
    /// `None` once shut down.
    queue: Mutex<Option<SyncSender<SpanData>>>,
    /// Signalled by the export thread when it has sent the last batch.
    finished: Mutex<Option<Receiver<()>>>,
}

impl QueuedSpanProcessor {
    /// Start the export thread for `exporter`.
    fn start<E: SpanExporter + 'static>(exporter: E, settings: BatchSettings) -> Result<Self> {
        let (queue, spans) = mpsc::sync_channel(settings.max_queue);
        let (done, finished) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("otlp-spans".into())
            .spawn(move || export_loop(exporter, spans, settings, done))
            .context("cannot start the span export thread")?;
        Ok(Self {
            queue: Mutex::new(Some(queue)),
            finished: Mutex::new(Some(finished)),
        })
    }
}

impl SpanProcessor for QueuedSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = queue.as_ref() else { return };
        match queue.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                span_counters().dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Spans are sent at least every `OTEL_BSP_SCHEDULE_DELAY`; a flush on
    /// demand would block the caller on the collector.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        // Closing the queue tells the thread to send what it holds and stop.
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        let Some(finished) = self.finished.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        match finished.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => Ok(()),
            Err(RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
        }
    }
}

/// The export thread: collect spans until a batch is full or its delay has
/// passed, export, repeat; on a closed queue send the rest and stop.
fn export_loop<E: SpanExporter>(exporter: E, spans: Receiver<SpanData>, settings: BatchSettings, done: SyncSender<()>) {
    let mut batch = Vec::with_capacity(settings.max_batch);
    let mut due = Instant::now() + settings.delay;
    let mut failures = FailureLog::default();
    loop {
        match spans.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Ok(span) => {
                batch.push(span);
                if batch.len() < settings.max_batch {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                export(&exporter, &mut batch, &mut failures);
                let _ = exporter.shutdown_with_timeout(SHUTDOWN_FLUSH);
                let _ = done.send(());
                return;
            }
        }
        export(&exporter, &mut batch, &mut failures);
        due = Instant::now() + settings.delay;
    }
}

/// Send `batch` (emptying it) and count the outcome.
fn export<E: SpanExporter>(exporter: &E, batch: &mut Vec<SpanData>, failures: &mut FailureLog) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    match futures::executor::block_on(exporter.export(std::mem::take(batch))) {
        Ok(()) => {
            span_counters().exported.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            span_counters().dropped.fetch_add(n, Ordering::Relaxed);
            failures.failed(n, &e);
        }
    }
}

/// Export failures are warned about once a minute at most: a collector that
/// is down must not flood the log either.
#[derive(Default)]
struct FailureLog {
    last_warned: Option<Instant>,
    dropped_since: u64,
}

impl FailureLog {
    fn failed(&mut self, spans: u64, e: &OTelSdkError) {
        self.dropped_since += spans;
        if self.last_warned.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            return;
        }
        tracing::warn!(
            "could not send {} span(s) to the OTLP collector: {e}; calls are unaffected, the spans are dropped \
             (counted in actionbox_telemetry_spans_dropped_total); check OTEL_EXPORTER_OTLP_ENDPOINT and the collector",
            self.dropped_since
        );
        self.last_warned = Some(Instant::now());
        self.dropped_since = 0;
    }
}

/// The trace context a caller sent, from its `traceparent` and `tracestate`
/// values (HTTP headers or MCP `_meta`); `None` when there is no valid one.
pub fn context_from(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Context> {
    struct Fields<'a>(Option<&'a str>, Option<&'a str>);
    impl Extractor for Fields<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => self.0,
                "tracestate" => self.1,
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    let traceparent = traceparent?;
    let tracestate = tracestate.filter(|s| s.len() <= MAX_TRACESTATE_BYTES);
    let cx = TraceContextPropagator::new().extract(&Fields(Some(traceparent), tracestate));
    cx.span().span_context().is_valid().then_some(cx)
}

/// The trace context of an HTTP request's headers.
pub fn context_from_headers(headers: &http::HeaderMap) -> Option<Context> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    context_from(value("traceparent"), value("tracestate"))
}

/// Middleware: a request with a valid `traceparent` runs in that trace, so
/// the calls it makes are spans of the caller's trace.
pub async fn continue_trace(request: Request, next: Next) -> Response {
    match context_from_headers(request.headers()) {
        Some(cx) => next.run(request).with_context(cx).await,
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn export_is_off_without_an_endpoint_and_per_signal_with_none() {
        assert!(!signal_enabled("TRACES", vars(&[])).expect("ok"));
        let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        assert!(signal_enabled("TRACES", vars(&base)).expect("ok"));
        assert!(signal_enabled("METRICS", vars(&base)).expect("ok"));
        let only_traces = [("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")];
        assert!(signal_enabled("TRACES", vars(&only_traces)).expect("ok"));
        assert!(!signal_enabled("METRICS", vars(&only_traces)).expect("ok"));
        let no_metrics = [base[0], ("OTEL_METRICS_EXPORTER", "none")];
        assert!(!signal_enabled("METRICS", vars(&no_metrics)).expect("ok"));
    }

    #[test]
    fn a_protocol_or_exporter_this_build_lacks_is_refused_by_name() {
        let grpc = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ];
        let e = signal_enabled("TRACES", vars(&grpc)).expect_err("refused").to_string();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && e.contains("4318"),
            "{e}"
        );
        let console = [("OTEL_TRACES_EXPORTER", "console")];
        let e = signal_enabled("TRACES", vars(&console))
            .expect_err("refused")
            .to_string();
        assert!(e.contains("OTEL_TRACES_EXPORTER=console"), "{e}");
    }

    #[test]
    fn a_callers_trace_is_continued_only_when_valid_and_bounded() {
        use opentelemetry::trace::TraceContextExt as _;
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cx = context_from(Some(parent), Some("vendor=x")).expect("valid");
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(sc.span_id().to_string(), "b7ad6b7169203331");
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_state().header(), "vendor=x");
        // A tracestate past the bound is not carried (the parent still is).
        let long = format!("vendor={}", "x".repeat(MAX_TRACESTATE_BYTES));
        let cx = context_from(Some(parent), Some(&long)).expect("valid parent");
        assert_eq!(cx.span().span_context().trace_state().header(), "");
        for bad in ["", "garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01"] {
            assert!(context_from(Some(bad), None).is_none(), "{bad:?}");
        }
        assert!(context_from(None, Some("vendor=x")).is_none());
    }
}
