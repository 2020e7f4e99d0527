//! What one call's outbound side records — [`OutboundRecord`]s for the
//! report and the debugger, and the [`SandboxViolation`]s the sandbox
//! stopped — and the [`CallRecorder`] that keeps it bounded.
//!
//! Everything a call's requests make the host keep is bounded here: records
//! and violations are capped (the rest counted), warnings are logged for the
//! first few only, and after `limits.max_refused_requests` refusals the call
//! is stopped. A record never holds the key: the credential's value is shown
//! as `[redacted]`, and guest-chosen text (URL, header values) is defused and
//! cut.

use crate::error::guest_text;
use crate::limits::{CallStop, SandboxViolation};
use http::{HeaderMap, Request};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use wasmtime_wasi_http::Error as HttpError;

/// Violations kept in one call's report; later ones are only counted.
pub const MAX_VIOLATIONS_KEPT: usize = 32;
/// Violations per call that are also logged as warnings for the operator;
/// later ones are logged at debug only, so one call cannot flood the log.
pub const MAX_VIOLATIONS_LOGGED: usize = 4;
/// Bytes of a guest-chosen URL kept in a record.
const RECORD_URL_BYTES: usize = 2048;
/// Bytes of one header value kept in a record.
const RECORD_HEADER_BYTES: usize = 512;

/// One outbound request as the debugger and tests see it. Never holds the key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboundRecord {
    /// HTTP method.
    pub method: String,
    /// Full URL (scheme, host, port, path and query), defused and cut to 2 KiB.
    pub url: String,
    /// Request headers as sent; the credential's value is `[redacted]`.
    pub request_headers: Vec<(String, String)>,
    /// Response status, when a response arrived.
    pub status: Option<u16>,
    /// Why it failed or was refused, when it did.
    pub error: Option<String>,
    /// Microseconds from the call's start to this request's (the debugger
    /// draws its waterfall with it and [`OutboundRecord::duration_us`]).
    pub started_us: u64,
    /// Milliseconds from the hook being called to the response head.
    pub duration_ms: u64,
    /// The same in microseconds.
    pub duration_us: u64,
    /// Response body bytes delivered to the guest.
    pub response_bytes: u64,
    /// Whether it went over an idle keep-alive connection (no new TCP
    /// connection or TLS handshake).
    pub reused_connection: bool,
    /// How it failed, when it did (`error` says it in words).
    pub failure: Option<RequestFailure>,
}

/// How an outbound request failed, as traces and metrics classify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestFailure {
    /// The sandbox refused it (origin, address, limits).
    Denied,
    /// A phase ran past its time (connect, response head, between bytes).
    Timeout,
    /// Resolving, connecting, TLS or the exchange failed.
    Transport,
}

impl RequestFailure {
    /// The classification of `e`.
    fn of(e: &HttpError) -> Self {
        match e {
            HttpError::HttpRequestDenied | HttpError::DestinationIpProhibited => Self::Denied,
            HttpError::ConnectionTimeout
            | HttpError::ConnectionReadTimeout
            | HttpError::ConnectionWriteTimeout
            | HttpError::HttpResponseTimeout => Self::Timeout,
            _ => Self::Transport,
        }
    }

    /// Its name in traces (`error.type`): `denied`, `timeout` or `transport`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::Timeout => "timeout",
            Self::Transport => "transport",
        }
    }
}

impl OutboundRecord {
    /// The record of `request` as the guest made it, before the policy.
    pub(crate) fn for_request<B>(request: &Request<B>) -> Self {
        Self::new(
            &guest_text(request.method().as_str(), 32),
            &guest_text(&request.uri().to_string(), RECORD_URL_BYTES),
        )
    }

    /// A record of `method url` with nothing known yet.
    pub(crate) fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_string(),
            url: url.to_string(),
            request_headers: Vec::new(),
            status: None,
            error: None,
            started_us: 0,
            duration_ms: 0,
            duration_us: 0,
            response_bytes: 0,
            reused_connection: false,
            failure: None,
        }
    }

    /// Record `headers` as sent: sensitive values (the key) as `[redacted]`,
    /// the rest defused and cut.
    pub(crate) fn set_request_headers(&mut self, headers: &HeaderMap) {
        self.request_headers = headers
            .iter()
            .map(|(n, v)| {
                let shown = if v.is_sensitive() {
                    "[redacted]".to_string()
                } else {
                    guest_text(&String::from_utf8_lossy(v.as_bytes()), RECORD_HEADER_BYTES)
                };
                (n.to_string(), shown)
            })
            .collect();
    }
}

/// What one call's outbound side records, shared by its hooks and bodies,
/// and bounded: records up to `max_outbound_requests + max_refused_requests`,
/// violations up to [`MAX_VIOLATIONS_KEPT`], the rest counted. It also
/// counts refusals and stops the call after too many.
#[derive(Debug)]
pub struct CallRecorder {
    records: Mutex<Vec<OutboundRecord>>,
    records_dropped: AtomicU64,
    max_records: usize,
    violations: Mutex<Vec<SandboxViolation>>,
    violations_seen: AtomicU64,
    refused: AtomicU32,
    max_refused: u32,
    stop: CallStop,
    /// When the call (and so this recorder) started.
    created: Instant,
}

impl CallRecorder {
    /// A recorder for a call that may make `max_requests` requests and have
    /// `max_refused_requests` refused (the policy's limits).
    pub fn new(max_requests: u32, max_refused_requests: u32) -> Self {
        Self {
            records: Mutex::default(),
            records_dropped: AtomicU64::new(0),
            max_records: (max_requests as usize).saturating_add(max_refused_requests as usize),
            violations: Mutex::default(),
            violations_seen: AtomicU64::new(0),
            refused: AtomicU32::new(0),
            max_refused: max_refused_requests,
            stop: CallStop::default(),
            created: Instant::now(),
        }
    }

    /// The flag this recorder raises to stop its call.
    pub fn call_stop(&self) -> CallStop {
        self.stop.clone()
    }

    /// Reserve a record slot (in start order, so a response body counts its
    /// bytes into the right record even with several requests in flight);
    /// `None` once the cap is reached.
    pub(crate) fn reserve(&self, record: &OutboundRecord) -> Option<usize> {
        let mut records = self.records.lock().ok()?;
        if records.len() >= self.max_records {
            self.records_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        records.push(record.clone());
        Some(records.len() - 1)
    }

    /// Change record `index` (no-op for a request that got no slot).
    pub(crate) fn update(&self, index: Option<usize>, change: impl FnOnce(&mut OutboundRecord)) {
        if let (Some(i), Ok(mut records)) = (index, self.records.lock()) {
            if let Some(r) = records.get_mut(i) {
                change(r);
            }
        }
    }

    /// Record what the sandbox stopped: kept up to [`MAX_VIOLATIONS_KEPT`],
    /// logged as a warning for the first [`MAX_VIOLATIONS_LOGGED`].
    pub fn violation(&self, violation: SandboxViolation) {
        let seen = self.violations_seen.fetch_add(1, Ordering::Relaxed) as usize;
        let what = match &violation {
            SandboxViolation::Denied { .. } => "denied",
            SandboxViolation::LimitExceeded { .. } => "limit exceeded",
            SandboxViolation::KeyReflected { .. } => "key reflected",
        };
        if seen < MAX_VIOLATIONS_LOGGED {
            tracing::warn!(target: "actionbox::sandbox", "{what}: {}", violation.message());
        } else {
            tracing::debug!(target: "actionbox::sandbox", "{what}: {}", violation.message());
        }
        if seen < MAX_VIOLATIONS_KEPT {
            if let Ok(mut v) = self.violations.lock() {
                v.push(violation);
            }
        }
    }

    /// A request the sandbox refused: a violation, and past
    /// `max_refused_requests` of them, the end of the call.
    pub(crate) fn refused(&self, violation: SandboxViolation) {
        self.violation(violation);
        let refused = self.refused.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if refused >= self.max_refused {
            self.stop.stop(format!(
                "the action kept making requests the sandbox refuses ({refused} in one call) and was stopped \
                 (limits.max_refused_requests = {})",
                self.max_refused
            ));
        }
    }

    /// The records kept, in start order.
    pub fn records(&self) -> Vec<OutboundRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Requests that got no record (past the cap).
    pub fn records_dropped(&self) -> u64 {
        self.records_dropped.load(Ordering::Relaxed)
    }

    /// The violations kept, in order.
    pub fn violations(&self) -> Vec<SandboxViolation> {
        self.violations.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Violations seen but not kept (past [`MAX_VIOLATIONS_KEPT`]).
    pub fn violations_dropped(&self) -> u64 {
        self.violations_seen
            .load(Ordering::Relaxed)
            .saturating_sub(MAX_VIOLATIONS_KEPT as u64)
    }

    /// Put the finished `record` in its slot `index`, keeping the body bytes
    /// the response guard counted there meanwhile.
    pub(crate) fn finish(
        &self,
        index: Option<usize>,
        mut record: OutboundRecord,
        started: Instant,
        error: Option<&HttpError>,
    ) {
        let took = started.elapsed();
        record.duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        record.duration_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        record.started_us =
            u64::try_from(started.saturating_duration_since(self.created).as_micros()).unwrap_or(u64::MAX);
        record.error = error.map(describe_error);
        record.failure = error.map(RequestFailure::of);
        self.update(index, |slot| {
            record.response_bytes = slot.response_bytes;
            *slot = record;
        });
    }
}

/// What a failed or refused request's record says.
fn describe_error(e: &HttpError) -> String {
    match e {
        HttpError::HttpRequestDenied => "denied by the sandbox".into(),
        HttpError::DestinationIpProhibited => "address refused by the sandbox".into(),
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::SandboxLimits;

    #[test]
    fn records_and_violations_are_capped_and_refusals_stop_the_call() {
        let limits = SandboxLimits::default();
        let r = CallRecorder::new(limits.max_outbound_requests, limits.max_refused_requests);
        let record = OutboundRecord::new("GET", "u");
        for _ in 0..10_000 {
            r.reserve(&record);
            r.refused(SandboxViolation::Denied { message: "no".into() });
        }
        assert_eq!(r.records().len(), 32);
        assert_eq!(r.records_dropped(), 10_000 - 32);
        assert_eq!(r.violations().len(), MAX_VIOLATIONS_KEPT);
        assert_eq!(r.violations_dropped(), 10_000 - MAX_VIOLATIONS_KEPT as u64);
        let reason = r.call_stop().reason().map(str::to_string).expect("stopped");
        assert!(reason.contains("max_refused_requests"), "{reason}");
    }
}
