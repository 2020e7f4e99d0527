//! The spans of a call's outbound requests: started by the hook as each
//! request is made, so a propagated `traceparent` can name the request's own
//! span, and ended with the request's final record when the call ends
//! (`telemetry.rs` owns the call's trace; this is the outbound side of it).
//!
//! What a request span may say comes from what the host recorded: method,
//! scheme, host, port and path (ids in paths are the merchant's own data and
//! what makes a trace useful), the query with every value replaced by
//! `REDACTED`, status, bytes, connection reuse, retry number. No header, name
//! or value, is an attribute: the key travels in one.
//!
//! The trace context goes upstream only when the operator's integration says
//! `propagate_trace` ([`RequestTrace::header`]).

use super::{OutboundRecord, RequestFailure};
use crate::error::guest_text;
use http::{HeaderMap, HeaderValue, Uri};
use opentelemetry::global::{self, BoxedSpan};
use opentelemetry::trace::{Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The instrumentation scope of the runtime's spans.
pub const SCOPE: &str = "actionbox-runtime";
/// Bytes of a guest-chosen path or query kept in an attribute (as the
/// report's records keep of a URL).
const URL_ATTRIBUTE_BYTES: usize = 2048;

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
    /// Request spans that are children of `cx` (the invocation's); requests
    /// carry `traceparent` upstream when `propagate`.
    pub(crate) fn new(cx: Context, propagate: bool) -> Self {
        Self {
            cx,
            propagate,
            spans: Mutex::default(),
        }
    }

    /// End every request's span with its final record (`records`, in
    /// record order).
    pub(crate) fn finish(&self, records: &[OutboundRecord]) {
        let spans = std::mem::take(&mut *self.spans.lock().unwrap_or_else(|e| e.into_inner()));
        for (index, started, mut span) in spans {
            match records.get(index) {
                Some(record) => end_request_span(&mut span, started, record, &records[..index]),
                None => span.end(),
            }
        }
    }

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
pub(crate) fn redacted_query(query: &str) -> String {
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
    fn retries_are_counted_by_method_and_url_without_query() {
        let record = OutboundRecord::new;
        let a = record("GET", "http://h/v2/shipments?page=1");
        let b = record("GET", "http://h/v2/shipments?page=2");
        let c = record("POST", "http://h/v2/shipments");
        assert_eq!(record_target(&a), record_target(&b));
        assert_ne!(record_target(&a), record_target(&c));
    }
}
