//! A real OTLP/HTTP receiver for the telemetry tests: what an OpenTelemetry
//! collector would see from `actionbox`, decoded with the reference protobuf
//! messages (`opentelemetry-proto`), so the tests check the wire format and
//! not the host's own idea of it.
//!
//! It listens on 127.0.0.1, accepts `POST /v1/traces` and `POST /v1/metrics`
//! with `application/x-protobuf` bodies, answers each with an empty
//! `Export*ServiceResponse` (200), and keeps every body as it came, so a test
//! can scan every exported byte for secrets. Anything else (another path, a
//! JSON or compressed body, a body that does not decode) is answered with an
//! error and recorded in [`OtlpReceiver::problems`], which tests assert empty.
//!
//! ```ignore
//! let otlp = OtlpReceiver::start().await;
//! // … run `actionbox serve` with OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint() …
//! let spans = otlp.wait_for_span("the invocation span", |s| s.name() == "invoke track-order").await;
//! ```

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use opentelemetry_proto::tonic::common::v1::any_value::Value as AttributeValue;
pub use opentelemetry_proto::tonic::common::v1::KeyValue;
pub use opentelemetry_proto::tonic::metrics::v1::metric::Data as MetricData;
pub use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumberValue;
pub use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint,
};
pub use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
pub use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
pub use opentelemetry_proto::tonic::trace::v1::Span;

/// How long the `wait_for_*` helpers wait for an export: the tests export
/// every ~200 ms (spans) and ~500 ms (metrics), so this is only reached when
/// nothing is coming, on a loaded 2-core machine included.
pub const EXPORT_WAIT: Duration = Duration::from_secs(20);

/// The content type OTLP/HTTP with protobuf bodies uses, both ways.
const PROTOBUF: &str = "application/x-protobuf";

/// The largest export body read: far above any batch a test produces, and a
/// bound on what a broken exporter can make the test hold.
const MAX_EXPORT_BODY: usize = 64 * 1024 * 1024;

/// How many spans or metrics a failed wait lists, so its message stays readable.
const LISTED_IN_A_PANIC: usize = 60;

/// Which OTLP signal an export carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `POST /v1/traces`.
    Traces,
    /// `POST /v1/metrics`.
    Metrics,
}

/// One export exactly as it arrived, before decoding: what a secret scan
/// must look at (a decoder could skip unknown fields; the bytes cannot hide).
#[derive(Debug, Clone)]
pub struct RawExport {
    /// The signal its path named.
    pub signal: Signal,
    /// Its `Content-Type` header (empty when none).
    pub content_type: String,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// Everything received so far.
#[derive(Default)]
struct Received {
    raw: Vec<RawExport>,
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    problems: Vec<String>,
}

/// A span as exported, with what the OTLP envelope around it said: its
/// resource's attributes and its instrumentation scope.
#[derive(Debug, Clone)]
pub struct ExportedSpan {
    /// The span itself.
    pub span: Span,
    /// The attributes of the resource it was exported under (`service.name`, …).
    pub resource: Vec<KeyValue>,
    /// Its instrumentation scope's name.
    pub scope: String,
}

impl ExportedSpan {
    /// The span name.
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id as 16 hex digits; empty for a root span.
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// The span kind (`Unspecified` for a value the proto does not know).
    pub fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }

    /// The status code; `Unset` when the span has no status.
    pub fn status(&self) -> SpanStatus {
        self.span
            .status
            .as_ref()
            .and_then(|s| SpanStatus::try_from(s.code).ok())
            .unwrap_or(SpanStatus::Unset)
    }

    /// The status description (empty when none).
    pub fn status_message(&self) -> &str {
        self.span
            .status
            .as_ref()
            .map(|s| s.message.as_str())
            .unwrap_or_default()
    }

    /// The value of span attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&AttributeValue> {
        attribute(&self.span.attributes, key)
    }

    /// Span attribute `key` when it is a string.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        as_str(self.attr(key))
    }

    /// Span attribute `key` when it is an integer.
    pub fn int_attr(&self, key: &str) -> Option<i64> {
        as_int(self.attr(key))
    }

    /// Span attribute `key` when it is a boolean.
    pub fn bool_attr(&self, key: &str) -> Option<bool> {
        match self.attr(key) {
            Some(AttributeValue::BoolValue(b)) => Some(*b),
            _ => None,
        }
    }

    /// Resource attribute `key` when it is a string.
    pub fn resource_str(&self, key: &str) -> Option<&str> {
        as_str(attribute(&self.resource, key))
    }

    /// The span's events called `name`, in order.
    pub fn events_named(&self, name: &str) -> Vec<&Event> {
        self.span.events.iter().filter(|e| e.name == name).collect()
    }

    /// Whether this span's time range lies within `outer`'s.
    pub fn within(&self, outer: &ExportedSpan) -> bool {
        self.span.start_time_unix_nano >= outer.span.start_time_unix_nano
            && self.span.end_time_unix_nano <= outer.span.end_time_unix_nano
            && self.span.start_time_unix_nano <= self.span.end_time_unix_nano
    }

    /// One line for assertion messages: name, kind, ids, status, attributes.
    pub fn summary(&self) -> String {
        format!(
            "`{}` {:?} trace {} span {} parent {} status {:?} {:?} attrs {{{}}} events [{}]",
            self.name(),
            self.kind(),
            self.trace_id(),
            self.span_id(),
            if self.span.parent_span_id.is_empty() {
                "-".to_string()
            } else {
                self.parent_span_id()
            },
            self.status(),
            self.status_message(),
            render_attributes(&self.span.attributes),
            self.span
                .events
                .iter()
                .map(|e| format!("{} {{{}}}", e.name, render_attributes(&e.attributes)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// A metric as exported, with its resource's attributes and its scope.
#[derive(Debug, Clone)]
pub struct ExportedMetric {
    /// The metric itself.
    pub metric: Metric,
    /// The attributes of the resource it was exported under.
    pub resource: Vec<KeyValue>,
    /// Its instrumentation scope's name.
    pub scope: String,
}

impl ExportedMetric {
    /// The metric name.
    pub fn name(&self) -> &str {
        &self.metric.name
    }

    /// Its number data points (Sum and Gauge; none for other kinds).
    pub fn number_points(&self) -> &[NumberDataPoint] {
        match &self.metric.data {
            Some(MetricData::Sum(s)) => &s.data_points,
            Some(MetricData::Gauge(g)) => &g.data_points,
            _ => &[],
        }
    }

    /// Its histogram data points (none for other kinds).
    pub fn histogram_points(&self) -> &[HistogramDataPoint] {
        match &self.metric.data {
            Some(MetricData::Histogram(h)) => &h.data_points,
            _ => &[],
        }
    }

    /// One line for assertion messages.
    pub fn summary(&self) -> String {
        let kind = match &self.metric.data {
            Some(MetricData::Sum(s)) => format!(
                "Sum(monotonic {}, temporality {:?})",
                s.is_monotonic,
                AggregationTemporality::try_from(s.aggregation_temporality)
                    .unwrap_or(AggregationTemporality::Unspecified)
            ),
            Some(MetricData::Gauge(_)) => "Gauge".to_string(),
            Some(MetricData::Histogram(_)) => "Histogram".to_string(),
            Some(other) => format!("{other:?}"),
            None => "no data".to_string(),
        };
        let points: Vec<String> = self
            .number_points()
            .iter()
            .map(|p| format!("{{{}}}={}", render_attributes(&p.attributes), number_value(p)))
            .chain(
                self.histogram_points()
                    .iter()
                    .map(|p| format!("{{{}}} count {}", render_attributes(&p.attributes), p.count)),
            )
            .collect();
        format!(
            "`{}` unit {:?} scope {} {kind} [{}]",
            self.name(),
            self.metric.unit,
            self.scope,
            points.join(", ")
        )
    }
}

/// A number data point's value as a float, whichever way it was sent.
pub fn number_value(point: &NumberDataPoint) -> f64 {
    match point.value {
        Some(NumberValue::AsDouble(d)) => d,
        Some(NumberValue::AsInt(i)) => i as f64,
        None => f64::NAN,
    }
}

/// The value of attribute `key` in `attributes`.
pub fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AttributeValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// Attribute `key` of `attributes` when it is a string.
pub fn str_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    as_str(attribute(attributes, key))
}

fn as_str(value: Option<&AttributeValue>) -> Option<&str> {
    match value {
        Some(AttributeValue::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn as_int(value: Option<&AttributeValue>) -> Option<i64> {
    match value {
        Some(AttributeValue::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// `key=value, …` for assertion messages.
fn render_attributes(attributes: &[KeyValue]) -> String {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AttributeValue::StringValue(s)) => format!("{s:?}"),
                Some(AttributeValue::BoolValue(b)) => b.to_string(),
                Some(AttributeValue::IntValue(i)) => i.to_string(),
                Some(AttributeValue::DoubleValue(d)) => d.to_string(),
                Some(other) => format!("{other:?}"),
                None => "(none)".to_string(),
            };
            format!("{}={value}", kv.key)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lower-case hex of `bytes`: how trace and span ids are written in
/// `traceparent` headers and JSON logs.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Spans arranged by their parent span ids, to walk a trace as a tree.
pub struct SpanTree<'a> {
    spans: &'a [ExportedSpan],
    children: HashMap<String, Vec<&'a ExportedSpan>>,
}

impl<'a> SpanTree<'a> {
    /// The tree of `spans` (of one trace or several).
    pub fn new(spans: &'a [ExportedSpan]) -> Self {
        let mut children: HashMap<String, Vec<&ExportedSpan>> = HashMap::new();
        for s in spans {
            children.entry(s.parent_span_id()).or_default().push(s);
        }
        for list in children.values_mut() {
            list.sort_by_key(|s| (s.span.start_time_unix_nano, s.span.end_time_unix_nano));
        }
        Self { spans, children }
    }

    /// The spans whose parent is not among the spans (a remote parent, or none).
    pub fn roots(&self) -> Vec<&'a ExportedSpan> {
        let ids: std::collections::HashSet<String> = self.spans.iter().map(ExportedSpan::span_id).collect();
        let mut roots: Vec<&ExportedSpan> = self
            .spans
            .iter()
            .filter(|s| !ids.contains(&s.parent_span_id()))
            .collect();
        roots.sort_by_key(|s| s.span.start_time_unix_nano);
        roots
    }

    /// The direct children of `parent`, by start time.
    pub fn children(&self, parent: &ExportedSpan) -> Vec<&'a ExportedSpan> {
        self.children.get(&parent.span_id()).cloned().unwrap_or_default()
    }

    /// The whole tree, indented, for assertion messages.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for root in self.roots() {
            self.render_into(root, 0, &mut out);
        }
        out
    }

    fn render_into(&self, span: &ExportedSpan, depth: usize, out: &mut String) {
        // Ids are unique per trace; a cycle would need a broken exporter, and
        // the depth bound keeps even that from recursing forever.
        if depth > 32 {
            return;
        }
        out.push_str(&format!("{}{}\n", "  ".repeat(depth), span.summary()));
        for child in self.children(span) {
            self.render_into(child, depth + 1, out);
        }
    }
}

/// A running OTLP/HTTP receiver on 127.0.0.1. Stops when dropped.
pub struct OtlpReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Listen on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver on loopback");
        let addr = listener.local_addr().expect("the receiver's address");
        let received = Arc::new(Mutex::new(Received::default()));
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(traces))
            .route("/v1/metrics", axum::routing::post(metrics))
            .fallback(unexpected)
            .layer(DefaultBodyLimit::max(MAX_EXPORT_BODY))
            .with_state(received.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, received, task }
    }

    /// `http://127.0.0.1:PORT`: the value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        let received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        f(&received)
    }

    /// Every export body so far, as it arrived.
    pub fn raw_exports(&self) -> Vec<RawExport> {
        self.with(|r| r.raw.clone())
    }

    /// What was refused so far (wrong path, content type or encoding, bodies
    /// that do not decode), one message each.
    pub fn problems(&self) -> Vec<String> {
        self.with(|r| r.problems.clone())
    }

    /// Every span received so far, with its resource and scope.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.with(|r| {
            let mut out = Vec::new();
            for request in &r.traces {
                for rs in &request.resource_spans {
                    let resource = rs.resource.as_ref().map(|r| r.attributes.clone()).unwrap_or_default();
                    for ss in &rs.scope_spans {
                        let scope = ss.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
                        for span in &ss.spans {
                            out.push(ExportedSpan {
                                span: span.clone(),
                                resource: resource.clone(),
                                scope: scope.clone(),
                            });
                        }
                    }
                }
            }
            out
        })
    }

    /// Every metric received so far (one entry per metric per export), with
    /// its resource and scope.
    pub fn metrics(&self) -> Vec<ExportedMetric> {
        self.with(|r| {
            let mut out = Vec::new();
            for request in &r.metrics {
                for rm in &request.resource_metrics {
                    let resource = rm.resource.as_ref().map(|r| r.attributes.clone()).unwrap_or_default();
                    for sm in &rm.scope_metrics {
                        let scope = sm.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
                        for metric in &sm.metrics {
                            out.push(ExportedMetric {
                                metric: metric.clone(),
                                resource: resource.clone(),
                                scope: scope.clone(),
                            });
                        }
                    }
                }
            }
            out
        })
    }

    /// Wait (≤ [`EXPORT_WAIT`]) until `ready` holds for the spans received,
    /// and return them all; past the bound, panic naming `what` and listing
    /// what did arrive.
    pub async fn wait_for_spans(&self, what: &str, ready: impl Fn(&[ExportedSpan]) -> bool) -> Vec<ExportedSpan> {
        let started = std::time::Instant::now();
        loop {
            let spans = self.spans();
            if ready(&spans) {
                return spans;
            }
            if started.elapsed() >= EXPORT_WAIT {
                let listed: Vec<String> = spans.iter().take(LISTED_IN_A_PANIC).map(|s| s.summary()).collect();
                panic!(
                    "{what}: not exported within {EXPORT_WAIT:?}. {} span(s) arrived in {} trace export(s){}:\n{}\nreceiver problems: {:?}",
                    spans.len(),
                    self.with(|r| r.traces.len()),
                    if spans.len() > LISTED_IN_A_PANIC { " (the first listed)" } else { "" },
                    listed.join("\n"),
                    self.problems()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait (≤ [`EXPORT_WAIT`]) for a span matching `matches` and return the
    /// first one; past the bound, panic listing what did arrive.
    pub async fn wait_for_span(&self, what: &str, matches: impl Fn(&ExportedSpan) -> bool) -> ExportedSpan {
        let spans = self.wait_for_spans(what, |spans| spans.iter().any(&matches)).await;
        spans
            .into_iter()
            .find(|s| matches(s))
            .unwrap_or_else(|| panic!("{what}: the span that matched is gone"))
    }

    /// Wait (≤ [`EXPORT_WAIT`]) for a metric matching `matches` and return the
    /// latest such export of it; past the bound, panic listing what arrived.
    pub async fn wait_for_metric(&self, what: &str, matches: impl Fn(&ExportedMetric) -> bool) -> ExportedMetric {
        let started = std::time::Instant::now();
        loop {
            let metrics = self.metrics();
            if let Some(found) = metrics.iter().rev().find(|m| matches(m)) {
                return found.clone();
            }
            if started.elapsed() >= EXPORT_WAIT {
                // The latest export of each metric says the most.
                let mut latest: Vec<&ExportedMetric> = Vec::new();
                for m in metrics.iter().rev() {
                    if !latest.iter().any(|l| l.name() == m.name()) {
                        latest.push(m);
                    }
                }
                let listed: Vec<String> = latest.iter().take(LISTED_IN_A_PANIC).map(|m| m.summary()).collect();
                panic!(
                    "{what}: not exported within {EXPORT_WAIT:?}. {} metric export(s) arrived; the latest of each metric:\n{}\nreceiver problems: {:?}",
                    self.with(|r| r.metrics.len()),
                    listed.join("\n"),
                    self.problems()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every export whose bytes contain `needle`, ignoring ASCII case, as
    /// `signal #n at byte offset`, for a secret scan's assertion message.
    pub fn exports_containing(&self, needle: &str) -> Vec<String> {
        let needle = needle.to_ascii_lowercase().into_bytes();
        if needle.is_empty() {
            return Vec::new();
        }
        self.raw_exports()
            .iter()
            .enumerate()
            .filter_map(|(i, export)| {
                let body = export.body.to_ascii_lowercase();
                body.windows(needle.len())
                    .position(|w| w == needle.as_slice())
                    .map(|at| format!("{:?} export #{i} at byte {at}", export.signal))
            })
            .collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = Arc<Mutex<Received>>;

/// `POST /v1/traces`.
async fn traces(State(received): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let decoded = accept(&received, Signal::Traces, &headers, &body)
        .and_then(|()| ExportTraceServiceRequest::decode(body.as_ref()).map_err(|e| e.to_string()));
    let mut r = received.lock().unwrap_or_else(|p| p.into_inner());
    match decoded {
        Ok(request) => {
            r.traces.push(request);
            protobuf(ExportTraceServiceResponse::default().encode_to_vec())
        }
        Err(why) => refuse(&mut r, format!("POST /v1/traces: {why}")),
    }
}

/// `POST /v1/metrics`.
async fn metrics(State(received): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let decoded = accept(&received, Signal::Metrics, &headers, &body)
        .and_then(|()| ExportMetricsServiceRequest::decode(body.as_ref()).map_err(|e| e.to_string()));
    let mut r = received.lock().unwrap_or_else(|p| p.into_inner());
    match decoded {
        Ok(request) => {
            r.metrics.push(request);
            protobuf(ExportMetricsServiceResponse::default().encode_to_vec())
        }
        Err(why) => refuse(&mut r, format!("POST /v1/metrics: {why}")),
    }
}

/// Keep the raw body, then check it is an uncompressed protobuf export.
fn accept(received: &Shared, signal: Signal, headers: &HeaderMap, body: &Bytes) -> Result<(), String> {
    let header_text = |name| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    let content_type = header_text(header::CONTENT_TYPE);
    let encoding = header_text(header::CONTENT_ENCODING);
    received.lock().unwrap_or_else(|p| p.into_inner()).raw.push(RawExport {
        signal,
        content_type: content_type.clone(),
        body: body.to_vec(),
    });
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case(PROTOBUF) {
        return Err(format!("Content-Type is {content_type:?}, not {PROTOBUF}"));
    }
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity") {
        return Err(format!(
            "Content-Encoding {encoding:?}: the receiver reads uncompressed bodies only"
        ));
    }
    Ok(())
}

/// Any other route: recorded as a problem.
async fn unexpected(State(received): State<Shared>, method: axum::http::Method, uri: Uri) -> Response {
    let mut r = received.lock().unwrap_or_else(|p| p.into_inner());
    r.problems.push(format!("unexpected request {method} {uri}"));
    StatusCode::NOT_FOUND.into_response()
}

/// A 400 naming `why`, recorded as a problem.
fn refuse(received: &mut Received, why: String) -> Response {
    received.problems.push(why.clone());
    (StatusCode::BAD_REQUEST, why).into_response()
}

/// A 200 with a protobuf body.
fn protobuf(body: Vec<u8>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
}
