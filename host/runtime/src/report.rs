//! The invocation report: everything one call did — its outcome, every
//! outbound request, the guest's log, time and memory used, and what the
//! sandbox stopped — as the CLI, the server, the debugger and tests see it.
//!
//! The report is bounded like everything else a call makes the host keep:
//! records, violations and log lines arrive already capped (`outbound/record.rs`,
//! `state.rs`), with what was dropped counted. Guest text in it is defused
//! where it was recorded. When the sandbox stopped something and the call then
//! failed, the host's account is the outcome, not the guest's
//! ([`InvocationReport::prefer_the_hosts_account`]).

use crate::error::InvokeError;
use crate::limits::SandboxViolation;
use crate::outbound::{CallRecorder, OutboundRecord};
use crate::state::GuestLogLine;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Everything one invocation did.
#[derive(Debug, Serialize)]
pub struct InvocationReport {
    /// Process-unique id of the invocation.
    pub invocation_id: String,
    /// The call's OpenTelemetry trace id (32 hex digits), when it has a
    /// valid trace context (an exporter is on, or the caller sent one):
    /// where to find its spans.
    pub trace_id: Option<String>,
    /// The method as asked.
    pub method: String,
    /// The JSON result, or why there is none.
    #[serde(serialize_with = "serialize_outcome")]
    pub outcome: Result<serde_json::Value, InvokeError>,
    /// Every outbound request, in order (up to `max_outbound_requests +
    /// max_refused_requests`; see `outbound_dropped`).
    pub outbound: Vec<OutboundRecord>,
    /// Requests past the record cap, counted only.
    pub outbound_dropped: u64,
    /// The action's log lines.
    pub guest_log: Vec<GuestLogLine>,
    /// Log lines dropped past the log budget.
    pub guest_log_dropped: u64,
    /// Wall-clock time used, in ms.
    pub elapsed_ms: u64,
    /// The deadline, in ms from the start.
    pub deadline_ms: u64,
    /// Highest linear-memory size the action reached, in bytes.
    pub peak_memory_bytes: usize,
    /// The call's memory limit (`limits.memory_mib`), in bytes; 0 when the
    /// call never ran.
    pub memory_limit_bytes: usize,
    /// What the sandbox stopped during the call (the first
    /// `outbound::record::MAX_VIOLATIONS_KEPT`).
    pub violations: Vec<SandboxViolation>,
    /// Violations past that cap, counted only.
    pub violations_dropped: u64,
}

fn serialize_outcome<S: serde::Serializer>(
    outcome: &Result<serde_json::Value, InvokeError>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Outcome<'a> {
        Ok(&'a serde_json::Value),
        Error(&'a InvokeError),
    }
    match outcome {
        Ok(v) => Outcome::Ok(v).serialize(s),
        Err(e) => Outcome::Error(e).serialize(s),
    }
}

static NEXT_INVOCATION: AtomicU64 = AtomicU64::new(1);

fn next_invocation_id() -> String {
    format!("inv-{}", NEXT_INVOCATION.fetch_add(1, Ordering::Relaxed))
}

impl InvocationReport {
    /// A report of a call of `method` with `outcome` and nothing else yet: a
    /// fresh id, no requests, no log, no time. The one constructor: a refused
    /// call is reported as it is, a call that runs fills in the rest.
    pub fn new(method: &str, outcome: Result<serde_json::Value, InvokeError>) -> Self {
        Self {
            invocation_id: next_invocation_id(),
            trace_id: None,
            method: method.to_string(),
            outcome,
            outbound: Vec::new(),
            outbound_dropped: 0,
            guest_log: Vec::new(),
            guest_log_dropped: 0,
            elapsed_ms: 0,
            deadline_ms: 0,
            peak_memory_bytes: 0,
            memory_limit_bytes: 0,
            violations: Vec::new(),
            violations_dropped: 0,
        }
    }

    /// A report for a call refused before any instance ran.
    pub fn refused(method: &str, error: InvokeError) -> Self {
        Self::new(method, Err(error))
    }

    /// Take what the call's outbound side recorded. Called once the store is
    /// gone, so every body guard has counted its bytes.
    pub(crate) fn take_outbound(&mut self, recorder: &CallRecorder) {
        self.outbound = recorder.records();
        self.outbound_dropped = recorder.records_dropped();
        self.violations = recorder.violations();
        self.violations_dropped = recorder.violations_dropped();
    }

    /// The host knows exactly what it stopped; when the call failed after
    /// that, its account replaces the guest's (e.g. a guest that reports
    /// "connection failed" after its request was refused). A reflected key
    /// is the upstream's doing, never the call's outcome; a call the host
    /// stopped or cut off keeps that account.
    pub(crate) fn prefer_the_hosts_account(&mut self) {
        let first_stop = self.violations.iter().find_map(|v| match v {
            SandboxViolation::Denied { message } => Some(InvokeError::Denied {
                message: message.clone(),
            }),
            SandboxViolation::LimitExceeded { message } => Some(InvokeError::LimitExceeded {
                message: message.clone(),
            }),
            SandboxViolation::KeyReflected { .. } => None,
        });
        if let (Err(e), Some(stop)) = (&self.outcome, first_stop) {
            if !matches!(
                e,
                InvokeError::Timeout { .. } | InvokeError::MemoryLimit { .. } | InvokeError::LimitExceeded { .. }
            ) {
                self.outcome = Err(stop);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_after(violations: Vec<SandboxViolation>, error: InvokeError) -> InvokeError {
        let mut report = InvocationReport::refused("m", error);
        report.violations = violations;
        report.prefer_the_hosts_account();
        report.outcome.expect_err("failed")
    }

    #[test]
    fn the_hosts_account_replaces_the_guests_unless_the_host_cut_the_call() {
        let denied = SandboxViolation::Denied {
            message: "refused: evil.example".into(),
        };
        let reflected = SandboxViolation::KeyReflected {
            message: "key in body".into(),
        };
        let guest = || InvokeError::Internal {
            message: "connection failed".into(),
        };
        let e = failed_after(vec![reflected.clone(), denied.clone()], guest());
        assert_eq!((e.kind(), e.message()), ("denied", "refused: evil.example"));
        // A reflected key alone is the upstream's doing: the guest's account stays.
        assert_eq!(failed_after(vec![reflected], guest()).kind(), "internal");
        // The host stopped the call at its deadline: that account stays.
        let timeout = InvokeError::Timeout {
            message: "stopped".into(),
        };
        assert_eq!(failed_after(vec![denied.clone()], timeout).kind(), "timeout");
        // A call that succeeded is never rewritten.
        let mut ok = InvocationReport::new("m", Ok(serde_json::json!(1)));
        ok.violations = vec![denied];
        ok.prefer_the_hosts_account();
        assert_eq!(ok.outcome, Ok(serde_json::json!(1)));
    }
}
