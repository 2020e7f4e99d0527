//! A debugger trace (`debugger::trace_json`, or the one history kept) as the
//! console draws it: the outcome with what to do, a waterfall of the
//! outbound requests to scale, the log, the violations, memory and time
//! against their limits, and the payload.
//!
//! Every string here was defused when the trace was made (`debugger.rs`) and
//! is HTML-escaped by the templates; the request headers hold the key's
//! header as `[redacted]` (the runtime never records the key).

use serde_json::Value;

/// Height of one waterfall row in the SVG, in its units.
const ROW: u64 = 18;
/// Narrowest bar, in the SVG's units of 1000 across.
const MIN_BAR: u64 = 4;

/// One outbound request.
pub struct RequestView {
    /// HTTP method.
    pub method: String,
    /// Host and path (no query: it may carry values the page need not repeat).
    pub target: String,
    /// Status, or what happened instead.
    pub status: String,
    /// Whether it failed (no answer, an error, or a status ≥ 400).
    pub failed: bool,
    /// Milliseconds from the call's start, one decimal.
    pub started: String,
    /// Milliseconds to the response head, one decimal.
    pub duration: String,
    /// Response body bytes.
    pub bytes: u64,
    /// `new` or `reused` connection.
    pub connection: &'static str,
    /// Request headers (the key's shown `[redacted]`).
    pub headers: Vec<(String, String)>,
    /// The bar: x, width and y in the SVG's units (x and width in 0–1000).
    pub bar_x: u64,
    /// Bar width.
    pub bar_width: u64,
    /// Bar row.
    pub bar_y: u64,
}

/// A trace, ready to draw.
pub struct TraceView {
    /// The call succeeded.
    pub ok: bool,
    /// `ok` or the error kind.
    pub kind: String,
    /// The error message (empty when ok).
    pub message: String,
    /// What to do about it.
    pub what_to_do: String,
    /// Where the call stopped, when it failed.
    pub failed_at: Option<String>,
    /// The requests, in order.
    pub requests: Vec<RequestView>,
    /// Requests past the record cap.
    pub requests_dropped: u64,
    /// The SVG's height.
    pub svg_height: u64,
    /// The time axis: the whole call, in ms, one decimal.
    pub axis: String,
    /// `(level, message, at ms)` per log line.
    pub logs: Vec<(String, String, u64)>,
    /// Log lines dropped.
    pub logs_dropped: u64,
    /// One text per violation.
    pub violations: Vec<String>,
    /// Peak memory in bytes.
    pub peak_memory_bytes: u64,
    /// The memory limit in bytes (0 when unknown).
    pub memory_limit_bytes: u64,
    /// Time used in ms.
    pub elapsed_ms: u64,
    /// The timeout in ms.
    pub deadline_ms: u64,
    /// The assistant payload, pretty JSON, when the trace has it.
    pub payload: Option<String>,
}

impl TraceView {
    /// The view of `trace`.
    pub fn of(trace: &Value) -> Self {
        let u = |v: &Value| v.as_u64().unwrap_or(0);
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let (ok, kind, message) = match trace["outcome"].get("error") {
            Some(e) => (false, s(&e["kind"]), s(&e["message"])),
            None => (true, "ok".to_string(), String::new()),
        };
        let elapsed_ms = u(&trace["elapsed_ms"]);
        let records = trace["outbound"].as_array().cloned().unwrap_or_default();
        // Microseconds (a record kept before they were recorded has no
        // start: it is drawn at 0), and one more than the last end, so a
        // request that starts at the very end still has room to be drawn.
        let start_us = |r: &Value| u(&r["started_us"]);
        let length_us = |r: &Value| r["duration_us"].as_u64().unwrap_or_else(|| u(&r["duration_ms"]) * 1000);
        let axis_us = records
            .iter()
            .map(|r| start_us(r) + length_us(r))
            .chain([elapsed_ms * 1000])
            .max()
            .unwrap_or(0)
            + 1;
        let requests: Vec<RequestView> = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (started_us, duration_us) = (start_us(r), length_us(r));
                let status = r["status"].as_u64();
                let error = r["error"].as_str().map(str::to_string);
                let bar_x = (started_us * 1000 / axis_us).min(1000 - MIN_BAR);
                RequestView {
                    method: s(&r["method"]),
                    target: target_of(r["url"].as_str().unwrap_or_default()),
                    status: match (status, &error) {
                        (Some(st), None) => st.to_string(),
                        (Some(st), Some(e)) => format!("{st}, then {e}"),
                        (None, Some(e)) => e.clone(),
                        (None, None) => "no answer".to_string(),
                    },
                    failed: error.is_some() || status.is_none_or(|st| st >= 400),
                    started: millis(started_us),
                    duration: millis(duration_us),
                    bytes: u(&r["response_bytes"]),
                    connection: if r["reused_connection"].as_bool() == Some(true) {
                        "reused"
                    } else {
                        "new"
                    },
                    headers: r["request_headers"]
                        .as_array()
                        .map(|hs| hs.iter().map(|h| (s(&h[0]), s(&h[1]))).collect::<Vec<_>>())
                        .unwrap_or_default(),
                    bar_x,
                    // At least a sliver, so a 0 ms request is still seen;
                    // never past the right edge.
                    bar_width: (duration_us * 1000 / axis_us).clamp(MIN_BAR, 1000 - bar_x),
                    bar_y: i as u64 * ROW + 4,
                }
            })
            .collect();
        let logs = trace["guest_log"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .map(|l| (s(&l["level"]), s(&l["message"]), u(&l["at_ms"])))
                    .collect()
            })
            .unwrap_or_default();
        let violations = trace["violations"]
            .as_array()
            .map(|vs| vs.iter().map(violation_text).collect())
            .unwrap_or_default();
        let payload = trace
            .get("assistant_payload")
            .map(|p| serde_json::to_string_pretty(p).unwrap_or_default());
        Self {
            ok,
            what_to_do: what_to_do(&kind).to_string(),
            kind,
            message,
            failed_at: trace["failed_at"].as_str().map(str::to_string),
            svg_height: requests.len() as u64 * ROW + 8,
            requests,
            requests_dropped: u(&trace["outbound_dropped"]),
            axis: millis(axis_us),
            logs,
            logs_dropped: u(&trace["guest_log_dropped"]),
            violations,
            peak_memory_bytes: u(&trace["peak_memory_bytes"]),
            memory_limit_bytes: u(&trace["memory_limit_bytes"]),
            elapsed_ms,
            deadline_ms: u(&trace["deadline_ms"]),
            payload,
        }
    }

    /// Peak memory in MiB, one decimal.
    pub fn peak_mib(&self) -> String {
        format!("{:.1}", self.peak_memory_bytes as f64 / (1024.0 * 1024.0))
    }

    /// The limit in MiB.
    pub fn limit_mib(&self) -> String {
        format!("{:.0}", self.memory_limit_bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Microseconds as milliseconds with one decimal.
fn millis(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

/// `host/path` of `url`, without scheme and query.
fn target_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['?', '#']).next().unwrap_or_default().to_string()
}

/// A violation (`{"kind": "denied", "message": …}`) as one line.
fn violation_text(v: &Value) -> String {
    let kind = v["kind"].as_str().unwrap_or("violation");
    match v["message"].as_str() {
        Some(m) => format!("{kind}: {m}"),
        None => kind.to_string(),
    }
}

/// What a person can do about a failure of `kind`.
pub fn what_to_do(kind: &str) -> &'static str {
    match kind {
        "ok" => "",
        "unauthorized" => {
            "The upstream refused the API key. Copy a current API V2 key from ShipStation (Settings → Account → \
             API Settings) into the integration and press Test."
        }
        "not-found" => "The upstream has no such record. Check the id (format and store) and try again.",
        "invalid-input" => "The parameters do not fit the action's schema. Correct them and run again.",
        "rate-limited" => "The upstream is limiting requests. Wait for the time it asked, then run again.",
        "timeout" => "The call ran out of time. Raise the integration's timeout (10–180 s) or check the upstream.",
        "upstream" => "The upstream failed. Check its status page, then run again.",
        "denied" => {
            "The sandbox refused a request the action made. The action asked for something its integration does not \
             allow; report it to the action's author."
        }
        "memory-limit" | "limit-exceeded" => {
            "The action went past a sandbox limit. Raise the integration's limits, or report it to the action's author."
        }
        "quota-exceeded" | "saturated" => "This workspace or server is at its limit of calls. Try again shortly.",
        _ => "The action failed inside the sandbox. Report it with this trace to the action's author.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_drawn_to_scale_and_queries_left_out() {
        let trace = json!({
            "outcome": {"ok": {}},
            "elapsed_ms": 100,
            "deadline_ms": 10000,
            "outbound": [
                {"method": "GET", "url": "https://a.example/v2/x?key=1", "status": 200, "started_us": 0,
                 "duration_us": 50_000, "response_bytes": 10, "reused_connection": false,
                 "request_headers": [["api-key", "[redacted]"]]},
                {"method": "GET", "url": "https://a.example/v2/y", "status": 404, "started_us": 50_000,
                 "duration_us": 50_000, "response_bytes": 0, "reused_connection": true, "request_headers": []}
            ],
            "assistant_payload": {"result": {}},
        });
        let v = TraceView::of(&trace);
        assert!(v.ok);
        assert_eq!(v.requests.len(), 2);
        assert_eq!(v.requests[0].target, "a.example/v2/x");
        // 100,001 µs across (the last end, plus one).
        assert_eq!((v.requests[0].bar_x, v.requests[0].bar_width), (0, 499));
        assert_eq!((v.requests[1].bar_x, v.requests[1].bar_width), (499, 499));
        assert_eq!(
            (v.requests[1].started.as_str(), v.requests[1].duration.as_str()),
            ("50.0", "50.0")
        );
        assert!(v.requests[1].failed && !v.requests[0].failed);
        assert_eq!(v.requests[1].connection, "reused");
        assert_eq!(v.requests[0].headers[0].1, "[redacted]");
        assert!(v.payload.is_some());
    }

    #[test]
    fn every_bar_is_inside_the_drawing() {
        // A 1 ms call whose requests all start in its last millisecond.
        let records: Vec<_> = (0..5)
            .map(|_| json!({"method": "GET", "url": "https://a/", "status": 200, "started_us": 1000, "duration_us": 0}))
            .collect();
        let v = TraceView::of(&json!({"outcome": {"ok": {}}, "elapsed_ms": 1, "outbound": records}));
        for r in &v.requests {
            assert!(
                r.bar_width >= MIN_BAR && r.bar_x + r.bar_width <= 1000,
                "{} + {}",
                r.bar_x,
                r.bar_width
            );
        }
    }

    #[test]
    fn a_failure_says_what_to_do() {
        let v = TraceView::of(&json!({"outcome": {"error": {"kind": "unauthorized", "message": "401"}}}));
        assert!(!v.ok);
        assert_eq!(v.kind, "unauthorized");
        assert!(v.what_to_do.contains("API key"));
    }
}
