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
//! What a span may say is decided from what the host recorded, never from
//! what the guest would like exported:
//! - no request header, name or value, is an attribute (the key travels in
//!   one; `Authorization` in others) — the request spans are
//!   `outbound/trace.rs`'s;
//! - query *values* are replaced by `REDACTED`, in request spans and in the
//!   guest's log lines alike;
//! - guest text (paths, log lines, messages) is defused and cut as the
//!   report's is, and every list (requests, log lines, violations) is already
//!   bounded by the report.
//!
//! Trace context leaves the host only when the operator says so: an
//! integration's `propagate_trace` makes outbound requests carry a W3C
//! `traceparent` naming their own span; by default the upstream API learns
//! nothing of the platform's traces.

use crate::limits::SandboxViolation;
use crate::outbound::trace::{redacted_query, RequestSpans};
use crate::report::InvocationReport;
use opentelemetry::global;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use crate::outbound::trace::SCOPE;

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
        let requests = Arc::new(RequestSpans::new(cx.clone(), propagate));
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
        self.requests.finish(&report.outbound);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
