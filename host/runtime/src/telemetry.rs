//! OpenTelemetry spans of a call: one trace per invocation, a child span per
//! instantiation and per outbound request, the guest's log lines and what the
//! sandbox stopped as events.
//!
//! The runtime uses the OpenTelemetry *API* only, through the global tracer
//! provider: the application installs an SDK and exporter (the `actionbox`
//! binary does when `OTEL_*` variables ask for it). Without one every span is
//! a no-op that carries its parent's context, and [`CallTrace::finish`] does
//! no work.
//!
//! What a span may say is decided here, from what the host recorded, never
//! from what the guest would like exported:
//! - no request header, name or value, is an attribute (the key travels in
//!   one; `Authorization` in others);
//! - URLs are split into host, port and path (ids in paths are the merchant's
//!   own data and what makes a trace useful); query *values* are replaced by
//!   `REDACTED`, keys kept;
//! - guest text (paths, log lines, messages) is defused and cut as the
//!   report's is, and every list (requests, log lines, violations) is already
//!   bounded by the report.
//!
//! Trace context leaves the host only when the operator says so: an
//! integration's `propagate_trace` makes outbound requests carry a W3C
//! `traceparent` naming their own span ([`RequestTrace::header`]); by default
//! the upstream API learns nothing of the platform's traces.

use crate::error::guest_text;
use crate::limits::SandboxViolation;
use crate::outbound::{OutboundRecord, RequestFailure};
use crate::report::InvocationReport;
use http::{HeaderMap, HeaderValue, Uri};
use opentelemetry::global::{self, BoxedSpan};
use opentelemetry::trace::{Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The instrumentation scope of the runtime's spans.
pub const SCOPE: &str = "actionbox-runtime";
/// Bytes of a guest-chosen path or query kept in an attribute (as the
/// report's records keep of a URL).
const URL_ATTRIBUTE_BYTES: usize = 2048;

/// What a call's trace says about where it came from, set by the
/// application (the runtime knows only the method): which action, of which
/// integration, in which workspace.
#[derive(Debug, Clone, Default)]
pub struct CallLabels {
    /// The action (tool) name the call was made as.
    pub action: Option<String>,
    /// The integration whose settings the call runs with.
    pub integration: Option<String>,
    /// The workspace, on a multi-tenant server.
    pub workspace: Option<String>,
}

/// The trace of one call: its invocation span (a child of whatever context
/// was current when the call started, e.g. an incoming `traceparent`), and
/// the spans of its outbound requests until the call ends.
pub(crate) struct CallTrace {
    /// A context whose active span is the invocation span.
    cx: Context,
    started: SystemTime,
    started_at: Instant,
    requests: Arc<RequestSpans>,
}

impl CallTrace {
    /// Start the span of a call of `method`, in the current context.
    pub(crate) fn start(method: &str, labels: &CallLabels, propagate: bool) -> Self {
        let parent = Context::current();
        let tracer = global::tracer(SCOPE);
        let started = SystemTime::now();
        let mut attributes = vec![KeyValue::new("actionbox.method", method.to_string())];
        let labelled = [
            ("actionbox.action", &labels.action),
            ("actionbox.integration", &labels.integration),
            ("actionbox.workspace", &labels.workspace),
        ];
        for (key, value) in labelled {
            if let Some(v) = value {
                attributes.push(KeyValue::new(key, v.clone()));
            }
        }
        let span = tracer
            .span_builder(format!("invoke {method}"))
            .with_kind(SpanKind::Internal)
            .with_start_time(started)
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        let cx = parent.with_span(span);
        let requests = Arc::new(RequestSpans {
            cx: cx.clone(),
            propagate,
            spans: Mutex::default(),
        });
        Self {
            cx,
            started,
            started_at: Instant::now(),
            requests,
        }
    }

    /// The trace id as 32 hex digits, when the call has a valid trace
    /// context (an exporter is installed, or the caller sent one): what
    /// structured logs carry to find the trace.
    pub(crate) fn trace_id(&self) -> Option<String> {
        let sc = self.cx.span().span_context().clone();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    /// The spans of this call's outbound requests, for its hooks.
    pub(crate) fn requests(&self) -> Arc<RequestSpans> {
        self.requests.clone()
    }

    /// When `at` happened, on the wall clock.
    fn wall(&self, at: Instant) -> SystemTime {
        self.started + at.saturating_duration_since(self.started_at)
    }

    /// Record the instantiation: from `from` (an instance slot was free) to
    /// `to` (the instance was ready; `None`: it never was).
    pub(crate) fn instantiated(&self, from: Instant, to: Option<Instant>) {
        if !self.cx.span().is_recording() {
            return;
        }
        let tracer = global::tracer(SCOPE);
        let mut span = tracer
            .span_builder("instantiate")
            .with_kind(SpanKind::Internal)
            .with_start_time(self.wall(from))
            .start_with_context(&tracer, &self.cx);
        match to {
            Some(to) => span.end_with_timestamp(self.wall(to)),
            None => {
                span.set_status(Status::error("the instance was not ready before the call ended"));
                span.end();
            }
        }
    }

    /// End the trace with what `report` says: the invocation's attributes,
    /// status and events, and each outbound span with its record.
    pub(crate) fn finish(self, report: &InvocationReport) {
        let requests = std::mem::take(&mut *self.requests.spans.lock().unwrap_or_else(|e| e.into_inner()));
        for (index, started, mut span) in requests {
            if let Some(record) = report.outbound.get(index) {
                end_request_span(&mut span, started, record, &report.outbound[..index]);
            } else {
                span.end();
            }
        }
        let span = self.cx.span();
        if !span.is_recording() {
            return;
        }
        let outcome = match &report.outcome {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        span.set_attributes([
            KeyValue::new("actionbox.invocation.id", report.invocation_id.clone()),
            KeyValue::new("actionbox.outcome", outcome),
            KeyValue::new("actionbox.budget_ms", int(report.deadline_ms)),
            KeyValue::new("actionbox.elapsed_ms", int(report.elapsed_ms)),
            KeyValue::new("actionbox.memory.peak_bytes", count(report.peak_memory_bytes)),
            KeyValue::new("actionbox.memory.limit_bytes", count(report.memory_limit_bytes)),
            KeyValue::new("actionbox.outbound.requests", count(report.outbound.len())),
            KeyValue::new("actionbox.outbound.dropped", int(report.outbound_dropped)),
            KeyValue::new("actionbox.log.dropped", int(report.guest_log_dropped)),
        ]);
        for line in &report.guest_log {
            span.add_event_with_timestamp(
                "log",
                self.started + Duration::from_millis(line.at_ms),
                vec![
                    KeyValue::new("log.level", line.level),
                    KeyValue::new("log.message", redact_query_values(&line.message)),
                ],
            );
        }
        for v in &report.violations {
            let kind = match v {
                SandboxViolation::Denied { .. } => "denied",
                SandboxViolation::LimitExceeded { .. } => "limit-exceeded",
                SandboxViolation::KeyReflected { .. } => "key-reflected",
            };
            span.add_event(
                "sandbox.violation",
                vec![
                    KeyValue::new("actionbox.violation.kind", kind),
                    KeyValue::new("actionbox.violation.message", v.message().to_string()),
                ],
            );
        }
        if let Err(e) = &report.outcome {
            span.set_status(Status::error(format!("{}: {}", e.kind(), e.message())));
        }
        span.end();
    }
}

/// The spans of one call's outbound requests, started by the hook as each
/// request is made (so a propagated `traceparent` can name its own span) and
/// ended with the request's final record when the call ends. Bounded like the
/// records: a request without a record slot gets no span.
pub(crate) struct RequestSpans {
    /// The invocation's context: the requests' parent.
    cx: Context,
    /// Whether requests carry `traceparent` upstream (the operator's
    /// `propagate_trace`).
    propagate: bool,
    /// Record index, start time and span of each request.
    spans: Mutex<Vec<(usize, SystemTime, BoxedSpan)>>,
}

impl RequestSpans {
    /// Start the span of the request `uri` (as the guest made it) with
    /// `method`, recorded at `index`; `None` without a record slot.
    pub(crate) fn start(&self, index: Option<usize>, method: &str, uri: &Uri) -> RequestTrace {
        let Some(index) = index else {
            return RequestTrace { span: None };
        };
        if !self.cx.span().is_recording() {
            // Nothing is exported: no span to make, and what may go upstream
            // is the context the call runs in (the caller's, if any).
            return RequestTrace {
                span: Some((self.cx.span().span_context().clone(), self.propagate)),
            };
        }
        let tracer = global::tracer(SCOPE);
        let started = SystemTime::now();
        let span = tracer
            .span_builder(guest_text(method, 32))
            .with_kind(SpanKind::Client)
            .with_start_time(started)
            .with_attributes(url_attributes(method, uri))
            .start_with_context(&tracer, &self.cx);
        let context = span.span_context().clone();
        if let Ok(mut spans) = self.spans.lock() {
            spans.push((index, started, span));
        }
        RequestTrace {
            span: Some((context, self.propagate)),
        }
    }
}

/// The trace context of one outbound request.
pub(crate) struct RequestTrace {
    /// Its span's context, and whether it may go upstream.
    span: Option<(SpanContext, bool)>,
}

impl RequestTrace {
    /// Put the request's `traceparent` (and `tracestate`) in `headers` when
    /// the operator lets the trace go upstream and there is one; otherwise
    /// leave the headers as they are. Whether it changed them.
    pub(crate) fn header(&self, headers: &mut HeaderMap) -> bool {
        let Some((sc, true)) = &self.span else { return false };
        if !sc.is_valid() {
            return false;
        }
        let traceparent = format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8());
        if let Ok(v) = HeaderValue::from_str(&traceparent) {
            headers.insert("traceparent", v);
        }
        headers.remove("tracestate");
        let state = sc.trace_state().header();
        if !state.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&state) {
                headers.insert("tracestate", v);
            }
        }
        true
    }
}

/// The attributes of a request's URL: scheme, host, port, path, and the
/// query with its values replaced.
fn url_attributes(method: &str, uri: &Uri) -> Vec<KeyValue> {
    let mut attributes = vec![KeyValue::new("http.request.method", guest_text(method, 32))];
    if let Some(scheme) = uri.scheme_str() {
        attributes.push(KeyValue::new("url.scheme", guest_text(scheme, 16)));
    }
    if let Some(host) = uri.host() {
        attributes.push(KeyValue::new("server.address", guest_text(host, 256)));
    }
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    });
    if let Some(port) = port {
        attributes.push(KeyValue::new("server.port", i64::from(port)));
    }
    attributes.push(KeyValue::new("url.path", guest_text(uri.path(), URL_ATTRIBUTE_BYTES)));
    if let Some(query) = uri.query().filter(|q| !q.is_empty()) {
        attributes.push(KeyValue::new("url.query", redacted_query(query)));
    }
    attributes
}

/// `query` with every value replaced by `REDACTED`: the keys say what was
/// asked, the values may be anything (an email, a token).
fn redacted_query(query: &str) -> String {
    let redacted: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) => format!("{key}=REDACTED"),
            None => pair.to_string(),
        })
        .collect();
    guest_text(&redacted.join("&"), URL_ATTRIBUTE_BYTES)
}

/// `text` (a guest's log line) with the values of every URL query in it
/// replaced by `REDACTED`: actions log the URLs they fetch, and what keeps
/// query values out of the request spans keeps them out of log events too.
/// A query is what follows a `?` up to whitespace or a quote.
fn redact_query_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(q) = rest.find('?') {
        out.push_str(&rest[..=q]);
        let after = &rest[q + 1..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .unwrap_or(after.len());
        let query = &after[..end];
        if query.contains('=') {
            out.push_str(&redacted_query(query));
        } else {
            out.push_str(query);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The path of a record's URL (for counting retries), without its query.
fn record_target(record: &OutboundRecord) -> (&str, &str) {
    let url = record.url.split(['?', '#']).next().unwrap_or_default();
    (record.method.as_str(), url)
}

/// End a request's span with its `record`; `earlier` are the call's records
/// before it (a request to the same method and URL is a retry).
fn end_request_span(span: &mut BoxedSpan, started: SystemTime, record: &OutboundRecord, earlier: &[OutboundRecord]) {
    if !span.is_recording() {
        span.end();
        return;
    }
    let target = record_target(record);
    let retry = earlier.iter().filter(|r| record_target(r) == target).count();
    span.set_attribute(KeyValue::new(
        "actionbox.retry",
        i64::try_from(retry).unwrap_or(i64::MAX),
    ));
    span.set_attribute(KeyValue::new("actionbox.connection.reused", record.reused_connection));
    span.set_attribute(KeyValue::new(
        "http.response.body.size",
        i64::try_from(record.response_bytes).unwrap_or(i64::MAX),
    ));
    if let Some(status) = record.status {
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
    }
    let error_type = match (record.failure, record.status) {
        (Some(failure), _) => Some(failure.as_str().to_string()),
        (None, Some(status)) if status >= 400 => Some(status.to_string()),
        _ => None,
    };
    if let Some(failure) = record.failure {
        span.set_attribute(KeyValue::new(
            "actionbox.outbound.denied",
            failure == RequestFailure::Denied,
        ));
    }
    if let Some(error_type) = error_type {
        let why = record.error.clone().unwrap_or_else(|| format!("HTTP {error_type}"));
        span.set_attribute(KeyValue::new("error.type", error_type));
        span.set_status(Status::error(why));
    }
    // The span started when the hook was called; the record's duration runs
    // from then to the response head (or the failure).
    span.end_with_timestamp(started + Duration::from_micros(record.duration_us));
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
        attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn query_values_never_reach_a_span_but_keys_and_path_ids_do() {
        let uri: Uri = "https://api.example.com:8443/v2/labels/se-123/track?email=a%40b.c&token=s3cret&flag"
            .parse()
            .expect("uri");
        let attributes = url_attributes("GET", &uri);
        assert_eq!(
            attribute(&attributes, "url.path").as_deref(),
            Some("/v2/labels/se-123/track")
        );
        assert_eq!(
            attribute(&attributes, "url.query").as_deref(),
            Some("email=REDACTED&token=REDACTED&flag")
        );
        assert_eq!(
            attribute(&attributes, "server.address").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(attribute(&attributes, "server.port").as_deref(), Some("8443"));
        let all = format!("{attributes:?}");
        assert!(!all.contains("s3cret") && !all.contains("a%40b.c"), "{all}");
    }

    #[test]
    fn guest_chosen_urls_are_bounded_and_defused_in_attributes() {
        // (an `http::Uri` holds at most 64 KiB, as the guest's request does)
        let long = format!("https://h.example/{}?{}", "p".repeat(30_000), "k=v&".repeat(7_000));
        let uri: Uri = long.parse().expect("uri");
        for kv in url_attributes("GET", &uri) {
            assert!(
                kv.value.as_str().len() <= URL_ATTRIBUTE_BYTES + 64,
                "{} is bounded",
                kv.key
            );
        }
        // A method is guest text too: no newline may forge anything downstream.
        let attributes = url_attributes("GET\nX-Forged: 1", &"https://h.example/".parse().expect("uri"));
        let method = attribute(&attributes, "http.request.method").unwrap_or_default();
        assert!(!method.contains('\n'), "{method:?}");
    }

    fn trace_of(propagate: bool) -> RequestTrace {
        let sc = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("id"),
            SpanId::from_hex("b7ad6b7169203331").expect("id"),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "x")]).expect("state"),
        );
        RequestTrace {
            span: Some((sc, propagate)),
        }
    }

    #[test]
    fn traceparent_goes_upstream_only_when_the_operator_says_so() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("00-guest-chosen"));
        assert!(!trace_of(false).header(&mut headers));
        assert_eq!(headers["traceparent"], "00-guest-chosen", "left as the guest set it");

        assert!(trace_of(true).header(&mut headers));
        assert_eq!(
            headers["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(headers["tracestate"], "vendor=x");
        // No context, nothing to send.
        assert!(!RequestTrace { span: None }.header(&mut HeaderMap::new()));
    }

    #[test]
    fn query_values_in_guest_log_lines_are_redacted_in_events() {
        assert_eq!(
            redact_query_values("GET http://h/v2/shipments?shipment_number=1002&page=1 -> 200 (what? yes)"),
            "GET http://h/v2/shipments?shipment_number=REDACTED&page=REDACTED -> 200 (what? yes)"
        );
        assert_eq!(
            redact_query_values("url \"/a?x=1\" and /b?y=2"),
            "url \"/a?x=REDACTED\" and /b?y=REDACTED"
        );
        assert_eq!(redact_query_values("no query here"), "no query here");
        assert_eq!(redact_query_values("ends with ?"), "ends with ?");
    }

    #[test]
    fn retries_are_counted_by_method_and_url_without_query() {
        let record = |method: &str, url: &str| OutboundRecord {
            method: method.into(),
            url: url.into(),
            request_headers: vec![],
            status: None,
            error: None,
            started_us: 0,
            duration_ms: 0,
            duration_us: 0,
            response_bytes: 0,
            reused_connection: false,
            failure: None,
        };
        let a = record("GET", "http://h/v2/shipments?page=1");
        let b = record("GET", "http://h/v2/shipments?page=2");
        let c = record("POST", "http://h/v2/shipments");
        assert_eq!(record_target(&a), record_target(&b));
        assert_ne!(record_target(&a), record_target(&c));
    }
}
