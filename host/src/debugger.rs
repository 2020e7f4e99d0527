//! The Action Debugger: one run of a configured action, shown the way a
//! person debugging it needs — where it went, what it sent and got, what the
//! action logged, what it cost, what the assistant receives, and, on failure,
//! where in the flow it failed. The same trace is available as JSON.
//!
//! Almost everything in a trace is guest-controlled (request methods, URLs and
//! headers, log lines, error texts, the result), and a person reads it in a
//! terminal or a web page. So every such string goes through [`guest_text`]
//! before it is rendered, in both forms: terminal escapes, forged line breaks
//! and bidi overrides come out as visible `\u{..}` escapes, and each string is
//! cut to a cap below.

use crate::catalog::ActionRun;

use actionbox_runtime::error::{guest_text, MAX_GUEST_MESSAGE_BYTES};
use actionbox_runtime::limits::SandboxViolation;
use actionbox_runtime::outbound::OutboundRecord;
use actionbox_runtime::report::InvocationReport;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Cap for a request's URL (what the outbound records keep).
const URL_BYTES: usize = 2 * 1024;
/// Cap for a request method: a guest may send any token as one.
const METHOD_BYTES: usize = 32;
/// Cap for a request header name.
const HEADER_NAME_BYTES: usize = 256;
/// Cap for a request header value.
const HEADER_VALUE_BYTES: usize = 1024;
/// Cap for a log line, an error or violation text, and any other string.
const TEXT_BYTES: usize = MAX_GUEST_MESSAGE_BYTES;
/// Cap for one string of the result (one line of it in the text form): the
/// default `limits.max_result_bytes`, so the result is escaped but in
/// practice never cut — the debugger shows what the assistant receives.
const PAYLOAD_STRING_BYTES: usize = 1024 * 1024;

/// Every string in `value` (object keys too) escaped and cut to `cap`.
fn defused(mut value: Value, cap: usize) -> Value {
    defuse_in_place(&mut value, cap);
    value
}

fn defuse_in_place(value: &mut Value, cap: usize) {
    match value {
        Value::String(s) => *s = guest_text(s, cap),
        Value::Array(items) => items.iter_mut().for_each(|v| defuse_in_place(v, cap)),
        Value::Object(map) => {
            for (key, mut v) in std::mem::take(map) {
                defuse_in_place(&mut v, cap);
                map.insert(guest_text(&key, cap), v);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The request's headers as `(name, value)` pairs, defused.
fn headers(r: &OutboundRecord) -> Vec<(String, String)> {
    r.request_headers
        .iter()
        .map(|(name, value)| {
            (
                guest_text(name, HEADER_NAME_BYTES),
                guest_text(value, HEADER_VALUE_BYTES),
            )
        })
        .collect()
}

/// One outbound record as JSON: every string defused (fields added to the
/// record later included), method, URL and headers with their own caps.
fn record_json(r: &OutboundRecord) -> Value {
    let mut v = defused(serde_json::to_value(r).unwrap_or(Value::Null), TEXT_BYTES);
    if let Some(fields) = v.as_object_mut() {
        fields.insert("method".into(), json!(guest_text(&r.method, METHOD_BYTES)));
        fields.insert("url".into(), json!(guest_text(&r.url, URL_BYTES)));
        fields.insert("request_headers".into(), json!(headers(r)));
    }
    v
}

/// Where a failed run stopped, in words; `None` when it succeeded.
pub fn failure_point(run: &ActionRun) -> Option<String> {
    run.report.outcome.as_ref().err()?;
    // A reflected key is the upstream's doing and never what failed a call.
    let stop = run.report.violations.iter().find_map(|v| match v {
        SandboxViolation::Denied { message } => Some(format!(
            "the sandbox denied a capability: {}",
            guest_text(message, TEXT_BYTES)
        )),
        SandboxViolation::LimitExceeded { message } => Some(format!(
            "the sandbox stopped a limit breach: {}",
            guest_text(message, TEXT_BYTES)
        )),
        SandboxViolation::KeyReflected { .. } => None,
    });
    if let Some(what) = stop {
        return Some(what);
    }
    let total = run.report.outbound.len();
    Some(match run.report.outbound.last() {
        None => "before any outbound request (input validation or the action's own logic)".to_string(),
        Some(last) => format!("after outbound request {total} of {total}: {}", request_line(last)),
    })
}

/// `GET https://… → HTTP 200`, every guest-controlled part defused.
fn request_line(r: &OutboundRecord) -> String {
    let error = r.error.as_deref().map(|e| guest_text(e, TEXT_BYTES));
    let answer = match (r.status, error) {
        (Some(s), None) => format!("HTTP {s}"),
        (Some(s), Some(e)) => format!("HTTP {s}, then {e}"),
        (None, Some(e)) => e,
        (None, None) => "no answer".to_string(),
    };
    format!(
        "{} {} → {answer}",
        guest_text(&r.method, METHOD_BYTES),
        guest_text(&r.url, URL_BYTES)
    )
}

/// The trace history keeps: [`trace_json`] without the assistant payload,
/// which repeats the outcome (about half of a trackOrder trace's bytes).
pub fn stored_trace_json(run: &ActionRun) -> Value {
    let r = &run.report;
    json!({
        "action": guest_text(&run.action, TEXT_BYTES),
        "integration": guest_text(&run.integration, TEXT_BYTES),
        "method": guest_text(&run.method, TEXT_BYTES),
        "base_url": guest_text(&run.base_url, URL_BYTES),
        "invocation_id": r.invocation_id,
        "trace_id": r.trace_id,
        "deadline_ms": r.deadline_ms,
        "elapsed_ms": r.elapsed_ms,
        "peak_memory_bytes": r.peak_memory_bytes,
        "memory_limit_bytes": r.memory_limit_bytes,
        "outcome": match &r.outcome {
            Ok(v) => json!({ "ok": defused(v.clone(), PAYLOAD_STRING_BYTES) }),
            Err(e) => json!({ "error": defused(crate::present::error(e), TEXT_BYTES) }),
        },
        "failed_at": failure_point(run),
        "outbound": r.outbound.iter().map(record_json).collect::<Vec<_>>(),
        "outbound_dropped": r.outbound_dropped,
        "guest_log": defused(json!(r.guest_log), TEXT_BYTES),
        "guest_log_dropped": r.guest_log_dropped,
        "violations": defused(json!(r.violations), TEXT_BYTES),
        "violations_dropped": r.violations_dropped,
    })
}

/// The machine-readable trace; every string in it is defused (module docs).
pub fn trace_json(run: &ActionRun) -> Value {
    let mut trace = stored_trace_json(run);
    trace["assistant_payload"] = defused(run.assistant_payload(), PAYLOAD_STRING_BYTES);
    trace
}

/// The person-readable trace; every guest-controlled string in it is defused.
pub fn render_text(run: &ActionRun) -> String {
    let mut out = String::new();
    write_summary(&mut out, run);
    write_outbound(&mut out, &run.report);
    write_guest_log(&mut out, &run.report);
    write_violations(&mut out, &run.report);
    write_assistant_payload(&mut out, run);
    out
}

/// The heading: which action ran where, what it cost, how it ended.
fn write_summary(out: &mut String, run: &ActionRun) {
    let r = &run.report;
    let _ = writeln!(out, "Action Debugger: {}", guest_text(&run.action, TEXT_BYTES));
    let _ = writeln!(
        out,
        "  integration  {} → {}",
        guest_text(&run.integration, TEXT_BYTES),
        guest_text(&run.base_url, URL_BYTES)
    );
    let _ = writeln!(
        out,
        "  method       {}  (invocation {})",
        guest_text(&run.method, TEXT_BYTES),
        r.invocation_id
    );
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
            let _ = writeln!(out, "  outcome      error: {}", guest_text(&e.to_string(), TEXT_BYTES));
            if let Some(at) = failure_point(run) {
                let _ = writeln!(out, "  failed       {at}");
            }
        }
    }
}

/// Each outbound request with its answer, cost and (redacted) headers.
fn write_outbound(out: &mut String, r: &InvocationReport) {
    let dropped = if r.outbound_dropped > 0 {
        format!(", {} more not recorded", r.outbound_dropped)
    } else {
        String::new()
    };
    let _ = writeln!(out, "\nOutbound requests ({}{dropped})", r.outbound.len());
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
        for (name, value) in headers(req) {
            let _ = writeln!(out, "       {name}: {value}");
        }
    }
}

/// What the action logged, with the time of each line.
fn write_guest_log(out: &mut String, r: &InvocationReport) {
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
        let _ = writeln!(
            out,
            "  +{:>5} ms {:<5} {}",
            line.at_ms,
            line.level,
            guest_text(&line.message, TEXT_BYTES)
        );
    }
}

/// What the sandbox refused or stopped; nothing when it did neither.
fn write_violations(out: &mut String, r: &InvocationReport) {
    if r.violations.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nSandbox");
    for v in &r.violations {
        let (label, message) = match v {
            SandboxViolation::Denied { message } => ("denied", message),
            SandboxViolation::LimitExceeded { message } => ("limit exceeded", message),
            SandboxViolation::KeyReflected { message } => ("key reflected by the upstream (scrubbed)", message),
        };
        let _ = writeln!(out, "  {label}: {}", guest_text(message, TEXT_BYTES));
    }
    if r.violations_dropped > 0 {
        let _ = writeln!(out, "  … and {} more not kept", r.violations_dropped);
    }
}

/// The payload the assistant receives, pretty-printed, one line at a time.
fn write_assistant_payload(out: &mut String, run: &ActionRun) {
    let _ = writeln!(out, "\nWhat the assistant receives");
    let payload = serde_json::to_string_pretty(&run.assistant_payload()).unwrap_or_default();
    // serde_json escapes C0 controls; C1, bidi and separators are left to this.
    for line in payload.lines() {
        let _ = writeln!(out, "  {}", guest_text(line, PAYLOAD_STRING_BYTES));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actionbox_runtime::error::{needs_escape, InvokeError};
    use actionbox_runtime::report::InvocationReport;
    use actionbox_runtime::state::GuestLogLine;

    /// Escape sequences, a forged log line, a bidi override and a zero-width
    /// space: what a hostile action puts in every string it controls.
    const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\r\nINFO forged\u{202e}lave\u{200b}\u{9b}";

    fn hostile_run() -> ActionRun {
        let huge = format!("{HOSTILE}{}", "v".repeat(100_000));
        ActionRun {
            action: "trackOrder".into(),
            integration: "shipstation".into(),
            method: format!("track{HOSTILE}"),
            base_url: "https://api.shipstation.com".into(),
            report: InvocationReport {
                invocation_id: "inv-1".into(),
                trace_id: None,
                method: "trackOrder".into(),
                outcome: Err(InvokeError::Upstream {
                    message: format!("upstream said {HOSTILE}"),
                    status: Some(500),
                    request_id: None,
                }),
                outbound: vec![OutboundRecord {
                    method: format!("GET{HOSTILE}"),
                    url: format!("https://api.shipstation.com/v2/{HOSTILE}"),
                    request_headers: vec![
                        (format!("x-{HOSTILE}"), huge.clone()),
                        ("api-key".into(), "[redacted]".into()),
                    ],
                    status: Some(500),
                    error: Some(format!("body cut: {HOSTILE}")),
                    started_us: 1_000,
                    duration_ms: 3,
                    duration_us: 3_000,
                    response_bytes: 10,
                    reused_connection: false,
                    failure: None,
                }],
                outbound_dropped: 0,
                guest_log: vec![GuestLogLine {
                    level: "info",
                    message: format!("log {HOSTILE}"),
                    at_ms: 1,
                }],
                guest_log_dropped: 0,
                elapsed_ms: 5,
                deadline_ms: 10_000,
                peak_memory_bytes: 1024,
                memory_limit_bytes: 64 << 20,
                violations: vec![SandboxViolation::KeyReflected {
                    message: format!("in header {HOSTILE}"),
                }],
                violations_dropped: 0,
            },
            response_instructions: Some(format!("say {HOSTILE}")),
        }
    }

    fn assert_defused(form: &str, text: &str) {
        assert!(
            !text.chars().any(needs_escape),
            "{form} holds a raw control or bidi character"
        );
        assert!(!text.contains("forged\u{202e}"), "{form}");
    }

    #[test]
    fn text_trace_prints_guest_strings_escaped_and_capped() {
        let text = render_text(&hostile_run());
        // Line breaks are the trace's own: none comes from the guest.
        let without_newlines = text.replace('\n', "");
        assert_defused("text", &without_newlines);
        assert!(!text.lines().any(|l| l.starts_with("INFO forged")), "{text}");
        assert!(text.contains("x-\\u{1b}]0;owned\\u{7}"), "header name escaped: {text}");
        assert!(text.contains("api-key: [redacted]"), "{text}");
        assert!(text.contains("forged\\u{202e}lave\\u{200b}\\u{9b}"), "{text}");
        let header_line = text
            .lines()
            .find(|l| l.trim_start().starts_with("x-"))
            .expect("the hostile header is shown");
        assert!(
            header_line.len() < 2 * HEADER_VALUE_BYTES,
            "{} bytes",
            header_line.len()
        );
        assert!(
            text.contains("key reflected by the upstream (scrubbed): in header"),
            "{text}"
        );
    }

    #[test]
    fn json_trace_holds_guest_strings_escaped_and_capped() {
        let trace = trace_json(&hostile_run());
        let text = serde_json::to_string(&trace).expect("serialize");
        let parsed: Value = serde_json::from_str(&text).expect("parse");
        let mut strings = Vec::new();
        collect_strings(&parsed, &mut strings);
        for s in &strings {
            assert_defused("json", s);
        }
        let headers = parsed["outbound"][0]["request_headers"].as_array().expect("headers");
        let value = headers[0][1].as_str().expect("value");
        assert!(value.starts_with("\\u{1b}]0;owned"), "{value}");
        assert!(value.len() <= HEADER_VALUE_BYTES + 16, "{} bytes", value.len());
        assert_eq!(headers[1], json!(["api-key", "[redacted]"]));
        assert!(parsed["failed_at"].as_str().expect("failed_at").contains("GET\\u{1b}"));
        assert!(parsed["method"].as_str().expect("method").starts_with("track\\u{1b}"));
    }

    fn collect_strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                out.push(k.clone());
                collect_strings(v, out);
            }),
            _ => {}
        }
    }
}
