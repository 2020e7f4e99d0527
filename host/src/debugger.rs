//! The Action Debugger: one run of a configured action, shown the way a
//! person debugging it needs — where it went, what it sent and got, what the
//! action logged, what it cost, what the assistant receives, and, on failure,
//! where in the flow it failed. The same trace is available as JSON.

use crate::catalog::{error_json, ActionRun};
use crate::limits::SandboxViolation;
use crate::outbound::OutboundRecord;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Where a failed run stopped, in words; `None` when it succeeded.
pub fn failure_point(run: &ActionRun) -> Option<String> {
    run.report.outcome.as_ref().err()?;
    if let Some(v) = run.report.violations.first() {
        let what = match v {
            SandboxViolation::Denied { message } => format!("the sandbox denied a capability: {message}"),
            SandboxViolation::LimitExceeded { message } => format!("the sandbox stopped a limit breach: {message}"),
        };
        return Some(what);
    }
    let total = run.report.outbound.len();
    Some(match run.report.outbound.last() {
        None => "before any outbound request (input validation or the action's own logic)".to_string(),
        Some(last) => format!("after outbound request {total} of {total}: {}", request_line(last)),
    })
}

fn request_line(r: &OutboundRecord) -> String {
    let answer = match (r.status, &r.error) {
        (Some(s), None) => format!("HTTP {s}"),
        (Some(s), Some(e)) => format!("HTTP {s}, then {e}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no answer".to_string(),
    };
    format!("{} {} → {answer}", r.method, r.url)
}

/// The machine-readable trace.
pub fn trace_json(run: &ActionRun) -> Value {
    let r = &run.report;
    json!({
        "action": run.action,
        "integration": run.integration,
        "method": run.method,
        "base_url": run.base_url,
        "invocation_id": r.invocation_id,
        "deadline_ms": r.deadline_ms,
        "elapsed_ms": r.elapsed_ms,
        "peak_memory_bytes": r.peak_memory_bytes,
        "outcome": match &r.outcome {
            Ok(v) => json!({ "ok": v }),
            Err(e) => json!({ "error": error_json(e) }),
        },
        "failed_at": failure_point(run),
        "outbound": r.outbound,
        "guest_log": r.guest_log,
        "guest_log_dropped": r.guest_log_dropped,
        "violations": r.violations,
        "assistant_payload": run.assistant_payload(),
    })
}

/// The person-readable trace.
pub fn render_text(run: &ActionRun) -> String {
    let r = &run.report;
    let mut out = String::new();
    let _ = writeln!(out, "Action Debugger: {}", run.action);
    let _ = writeln!(out, "  integration  {} → {}", run.integration, run.base_url);
    let _ = writeln!(out, "  method       {}  (invocation {})", run.method, r.invocation_id);
    let _ = writeln!(
        out,
        "  time         {} ms used of a {} ms deadline",
        r.elapsed_ms, r.deadline_ms
    );
    let _ = writeln!(
        out,
        "  peak memory  {:.1} MiB",
        r.peak_memory_bytes as f64 / (1024.0 * 1024.0)
    );
    match &r.outcome {
        Ok(_) => {
            let _ = writeln!(out, "  outcome      ok");
        }
        Err(e) => {
            let _ = writeln!(out, "  outcome      error: {e}");
            if let Some(at) = failure_point(run) {
                let _ = writeln!(out, "  failed       {at}");
            }
        }
    }

    let _ = writeln!(out, "\nOutbound requests ({})", r.outbound.len());
    if r.outbound.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (i, req) in r.outbound.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}. {}  [{} ms, {} bytes, {}]",
            i + 1,
            request_line(req),
            req.duration_ms,
            req.response_bytes,
            if req.reused_connection {
                "reused connection"
            } else {
                "new connection"
            }
        );
        for (name, value) in &req.request_headers {
            let _ = writeln!(out, "       {name}: {value}");
        }
    }

    let _ = writeln!(
        out,
        "\nAction log ({} lines{})",
        r.guest_log.len(),
        if r.guest_log_dropped > 0 {
            format!(", {} dropped over the log budget", r.guest_log_dropped)
        } else {
            String::new()
        }
    );
    if r.guest_log.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for line in &r.guest_log {
        let _ = writeln!(out, "  +{:>5} ms {:<5} {}", line.at_ms, line.level, line.message);
    }

    if !r.violations.is_empty() {
        let _ = writeln!(out, "\nSandbox");
        for v in &r.violations {
            match v {
                SandboxViolation::Denied { message } => {
                    let _ = writeln!(out, "  denied: {message}");
                }
                SandboxViolation::LimitExceeded { message } => {
                    let _ = writeln!(out, "  limit exceeded: {message}");
                }
            }
        }
    }

    let _ = writeln!(out, "\nWhat the assistant receives");
    let payload = serde_json::to_string_pretty(&run.assistant_payload()).unwrap_or_default();
    for line in payload.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}
