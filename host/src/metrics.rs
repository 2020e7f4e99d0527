//! The server's counters, rendered in Prometheus text format, and the same
//! figures as OpenTelemetry instruments ([`Metrics::export_to_otel`]) for
//! when an OTLP exporter is installed (`telemetry.rs`).

use actionbox_runtime::limits::SandboxViolation;
use actionbox_runtime::report::InvocationReport;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::KeyValue;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram: from a cached-fast call
/// to the longest allowed timeout.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0,
];

/// Distinct label sets one labelled counter keeps; past it, new ones are
/// counted under [`OTHER_LABEL`]. Action and integration names come from
/// config — in a store server, from thousands of merchants' admins — and a
/// series per name would grow the server's memory (and every scrape) without
/// bound.
pub const MAX_LABEL_SETS: usize = 512;

/// The label value that stands for every name past [`MAX_LABEL_SETS`].
pub const OTHER_LABEL: &str = "(other)";

/// `map[key]` += 1, or `map[fold(key)]` += 1 once the map holds
/// [`MAX_LABEL_SETS`] keys and `key` is not one of them; the key counted.
fn bump<K: Ord + Clone>(map: &mut BTreeMap<K, u64>, key: K, fold: impl FnOnce(K) -> K) -> K {
    let key = if map.len() >= MAX_LABEL_SETS && !map.contains_key(&key) {
        fold(key)
    } else {
        key
    };
    *map.entry(key.clone()).or_default() += 1;
    key
}

#[derive(Default)]
struct Counters {
    invocations: BTreeMap<(String, String), u64>,
    buckets: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_count: u64,
    outbound: BTreeMap<String, u64>,
    timeouts: u64,
    denials: u64,
    limit_breaches: u64,
    /// Responses in which an upstream reflected an integration's key (scrubbed).
    keys_reflected: u64,
    /// (route, integration) → calls refused for saturation.
    saturated: BTreeMap<(&'static str, String), u64>,
    unauthenticated: u64,
    /// Why the server closed connections itself → how many.
    connections_closed: BTreeMap<ConnectionClose, u64>,
}

/// Why the server closed a connection the client had not closed: the
/// counters that show a slow or idle client being cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConnectionClose {
    /// No complete request head in time (slowloris).
    HeaderReadTimeout,
    /// An answer the client did not read in time.
    WriteTimeout,
    /// A keep-alive connection unused for the idle timeout.
    IdleTimeout,
    /// Shutdown found it without a request in flight.
    Shutdown,
}

impl ConnectionClose {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::HeaderReadTimeout => "header-read-timeout",
            Self::WriteTimeout => "write-timeout",
            Self::IdleTimeout => "idle-timeout",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Invocations by action and outcome, latency, outbound calls by status,
/// timeouts, denials, saturation, in-flight calls, open connections and the
/// connections the server cut off.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
    in_flight: AtomicI64,
    open_connections: AtomicI64,
    /// The latency histogram as an OTel instrument, once exported; the
    /// other figures are read by observable instruments when collected.
    otel_latency: OnceLock<Histogram<f64>>,
}

/// Counts one call in flight until dropped.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts one open connection until dropped.
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A call started.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A call of `action` ended with `outcome` (`ok` or an error kind).
    pub fn finished(&self, action: &str, outcome: &str, took: Duration) {
        let Ok(mut c) = self.counters.lock() else { return };
        let (action, outcome) = bump(
            &mut c.invocations,
            (action.to_string(), outcome.to_string()),
            |(_, outcome)| (OTHER_LABEL.to_string(), outcome),
        );
        let secs = took.as_secs_f64();
        if let Some(latency) = self.otel_latency.get() {
            latency.record(
                secs,
                &[
                    KeyValue::new("action", action),
                    KeyValue::new("outcome", outcome.clone()),
                ],
            );
        }
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                c.buckets[i] += 1;
            }
        }
        c.latency_sum += secs;
        c.latency_count += 1;
        if outcome == "timeout" {
            c.timeouts += 1;
        }
    }

    /// Export the same figures as OpenTelemetry instruments of the global
    /// meter provider (a no-op one when OTLP metrics are off): counters and
    /// gauges read these counters when the exporter collects, the latency
    /// histogram is recorded as calls finish. Label sets are the bounded
    /// ones `/metrics` shows. Call once per server.
    pub fn export_to_otel(self: &Arc<Self>) {
        let meter = opentelemetry::global::meter("actionbox");
        let latency = meter
            .f64_histogram("actionbox.invocation.duration")
            .with_unit("s")
            .with_description("Wall-clock time of action invocations.")
            .with_boundaries(BUCKETS.to_vec())
            .build();
        if self.otel_latency.set(latency).is_err() {
            return;
        }
        let counters = Arc::downgrade(self);
        observe_labelled(
            &meter,
            "actionbox.invocations",
            "Action invocations by action and outcome.",
            counters.clone(),
            |c| {
                c.invocations
                    .iter()
                    .map(|((a, o), n)| {
                        (
                            vec![KeyValue::new("action", a.clone()), KeyValue::new("outcome", o.clone())],
                            *n,
                        )
                    })
                    .collect()
            },
        );
        observe_labelled(
            &meter,
            "actionbox.outbound.requests",
            "Outbound requests by response status (error = none).",
            counters.clone(),
            |c| {
                c.outbound
                    .iter()
                    .map(|(status, n)| (vec![KeyValue::new("status", status.clone())], *n))
                    .collect()
            },
        );
        let plain: [Described<ReadCounter>; 5] = [
            ("actionbox.timeouts", "Invocations stopped at their deadline.", |c| {
                c.timeouts
            }),
            ("actionbox.denials", "Capabilities the sandbox refused.", |c| c.denials),
            ("actionbox.limit_breaches", "Sandbox limits reached.", |c| {
                c.limit_breaches
            }),
            (
                "actionbox.keys_reflected",
                "Upstream responses that carried an integration's key back.",
                |c| c.keys_reflected,
            ),
            (
                "actionbox.unauthenticated",
                "API requests without a valid bearer token.",
                |c| c.unauthenticated,
            ),
        ];
        for (name, help, read) in plain {
            observe_labelled(&meter, name, help, counters.clone(), move |c| {
                vec![(Vec::new(), read(c))]
            });
        }
        let gauges: [Described<ReadGauge>; 2] = [
            ("actionbox.in_flight", "Calls running now.", Metrics::in_flight),
            (
                "actionbox.connections.open",
                "Client connections open now.",
                Metrics::open_connections,
            ),
        ];
        for (name, help, read) in gauges {
            let metrics = counters.clone();
            meter
                .i64_observable_gauge(name)
                .with_description(help)
                .with_callback(move |o| {
                    if let Some(m) = metrics.upgrade() {
                        o.observe(read(&m), &[]);
                    }
                })
                .build();
        }
        let spans: [Described<fn() -> u64>; 2] = [
            (
                "actionbox.telemetry.spans.exported",
                "Spans the OTLP collector accepted.",
                || crate::telemetry::span_counters().exported(),
            ),
            (
                "actionbox.telemetry.spans.dropped",
                "Spans dropped: export queue full or export failed.",
                || crate::telemetry::span_counters().dropped(),
            ),
        ];
        for (name, help, read) in spans {
            meter
                .u64_observable_counter(name)
                .with_description(help)
                .with_callback(move |o| o.observe(read(), &[]))
                .build();
        }
    }

    /// Count a report's outbound requests and sandbox violations.
    pub fn record_outbound(&self, report: &InvocationReport) {
        let Ok(mut c) = self.counters.lock() else { return };
        for r in &report.outbound {
            let key = r.status.map_or_else(|| "error".to_string(), |s| s.to_string());
            bump(&mut c.outbound, key, |_| OTHER_LABEL.to_string());
        }
        for v in &report.violations {
            match v {
                SandboxViolation::Denied { .. } => c.denials += 1,
                SandboxViolation::LimitExceeded { .. } => c.limit_breaches += 1,
                SandboxViolation::KeyReflected { .. } => c.keys_reflected += 1,
            }
        }
    }

    /// A request on `route` (`invoke`, `session-start`, `test`) was refused
    /// because `integration` was at its concurrency bound.
    pub fn saturated(&self, route: &'static str, integration: &str) {
        if let Ok(mut c) = self.counters.lock() {
            bump(&mut c.saturated, (route, integration.to_string()), |(route, _)| {
                (route, OTHER_LABEL.to_string())
            });
        }
    }

    /// A connection was accepted; it counts as open until the guard drops.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> i64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// The server closed a connection for `reason`.
    pub fn connection_closed(&self, reason: ConnectionClose) {
        if let Ok(mut c) = self.counters.lock() {
            *c.connections_closed.entry(reason).or_default() += 1;
        }
    }

    /// A request without the right bearer token.
    pub fn unauthorized(&self) {
        if let Ok(mut c) = self.counters.lock() {
            c.unauthenticated += 1;
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(c) = self.counters.lock() else { return out };
        write_invocations(&mut out, &c);
        write_latency(&mut out, &c);
        write_outbound(&mut out, &c);
        write_event_counters(&mut out, &c);
        write_saturated(&mut out, &c);
        write_connections_closed(&mut out, &c);
        write_gauge(
            &mut out,
            "actionbox_open_connections",
            "Client connections open now.",
            self.open_connections(),
        );
        write_gauge(&mut out, "actionbox_in_flight", "Calls running now.", self.in_flight());
        let spans = crate::telemetry::span_counters();
        for (name, help, n) in [
            (
                "actionbox_telemetry_spans_exported_total",
                "Spans the OTLP collector accepted.",
                spans.exported(),
            ),
            (
                "actionbox_telemetry_spans_dropped_total",
                "Spans dropped because the export queue was full or an export failed (calls are unaffected).",
                spans.dropped(),
            ),
        ] {
            write_family(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {n}");
        }
        out
    }
}

/// An OTel instrument's name, description, and how to read its value.
type Described<R> = (&'static str, &'static str, R);
/// Reads one unlabelled counter.
type ReadCounter = fn(&Counters) -> u64;
/// Reads one gauge.
type ReadGauge = fn(&Metrics) -> i64;

/// A monotonic OTel counter named `name` whose points `read` takes from the
/// counters when the exporter collects; nothing once the server is gone.
fn observe_labelled(
    meter: &Meter,
    name: &'static str,
    help: &'static str,
    metrics: Weak<Metrics>,
    read: impl Fn(&Counters) -> Vec<(Vec<KeyValue>, u64)> + Send + Sync + 'static,
) {
    meter
        .u64_observable_counter(name)
        .with_description(help)
        .with_callback(move |o| {
            let Some(m) = metrics.upgrade() else { return };
            let points = match m.counters.lock() {
                Ok(c) => read(&c),
                Err(_) => return,
            };
            for (labels, n) in points {
                o.observe(n, &labels);
            }
        })
        .build();
}

/// A metric family's `# HELP` and `# TYPE` lines.
fn write_family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Invocations by action and outcome.
fn write_invocations(out: &mut String, c: &Counters) {
    write_family(
        out,
        "actionbox_invocations_total",
        "counter",
        "Action invocations by action and outcome.",
    );
    for ((action, outcome), n) in &c.invocations {
        let _ = writeln!(
            out,
            "actionbox_invocations_total{{action=\"{}\",outcome=\"{}\"}} {n}",
            escape(action),
            escape(outcome)
        );
    }
}

/// The latency histogram.
fn write_latency(out: &mut String, c: &Counters) {
    write_family(
        out,
        "actionbox_invocation_duration_seconds",
        "histogram",
        "Wall-clock time of action invocations.",
    );
    for (le, n) in BUCKETS.iter().zip(c.buckets.iter()) {
        let _ = writeln!(out, "actionbox_invocation_duration_seconds_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "actionbox_invocation_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        c.latency_count
    );
    let _ = writeln!(out, "actionbox_invocation_duration_seconds_sum {}", c.latency_sum);
    let _ = writeln!(out, "actionbox_invocation_duration_seconds_count {}", c.latency_count);
}

/// Outbound requests by response status.
fn write_outbound(out: &mut String, c: &Counters) {
    write_family(
        out,
        "actionbox_outbound_requests_total",
        "counter",
        "Outbound requests by response status (error = none).",
    );
    for (status, n) in &c.outbound {
        let _ = writeln!(
            out,
            "actionbox_outbound_requests_total{{status=\"{}\"}} {n}",
            escape(status)
        );
    }
}

/// The counters without labels: timeouts, sandbox events, refused tokens.
fn write_event_counters(out: &mut String, c: &Counters) {
    for (name, help, n) in [
        (
            "actionbox_timeouts_total",
            "Invocations stopped at their deadline.",
            c.timeouts,
        ),
        (
            "actionbox_denials_total",
            "Capabilities the sandbox refused.",
            c.denials,
        ),
        (
            "actionbox_limit_breaches_total",
            "Sandbox limits reached.",
            c.limit_breaches,
        ),
        (
            "actionbox_keys_reflected_total",
            "Upstream responses that carried an integration's key back (scrubbed before the action saw them).",
            c.keys_reflected,
        ),
        (
            "actionbox_unauthenticated_total",
            "API requests without a valid bearer token.",
            c.unauthenticated,
        ),
    ] {
        write_family(out, name, "counter", help);
        let _ = writeln!(out, "{name} {n}");
    }
}

/// Requests refused for saturation, by route and integration.
fn write_saturated(out: &mut String, c: &Counters) {
    write_family(
        out,
        "actionbox_saturated_total",
        "counter",
        "Requests refused with 429 because an integration was at its concurrency bound, by route and integration.",
    );
    for ((route, integration), n) in &c.saturated {
        let _ = writeln!(
            out,
            "actionbox_saturated_total{{route=\"{route}\",integration=\"{}\"}} {n}",
            escape(integration)
        );
    }
}

/// Connections the server closed itself, by reason.
fn write_connections_closed(out: &mut String, c: &Counters) {
    write_family(
        out,
        "actionbox_connections_closed_total",
        "counter",
        "Connections the server closed itself, by reason (slow, idle or at shutdown).",
    );
    for (reason, n) in &c.connections_closed {
        let _ = writeln!(
            out,
            "actionbox_connections_closed_total{{reason=\"{}\"}} {n}",
            reason.label()
        );
    }
}

/// A gauge and its value now.
fn write_gauge(out: &mut String, name: &str, help: &str, value: i64) {
    write_family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_stay_bounded_however_many_names_come() {
        let m = Metrics::default();
        for i in 0..(MAX_LABEL_SETS * 3) {
            m.finished(&format!("action_{i}"), "ok", Duration::from_millis(1));
            m.saturated("invoke", &format!("workspace-{i}"));
        }
        let c = m.counters.lock().expect("not poisoned");
        assert_eq!(
            c.invocations.len(),
            MAX_LABEL_SETS + 1,
            "the cap plus one (other) series"
        );
        assert_eq!(
            c.invocations[&(OTHER_LABEL.to_string(), "ok".to_string())],
            (MAX_LABEL_SETS * 2) as u64
        );
        assert_eq!(c.saturated.len(), MAX_LABEL_SETS + 1);
        assert_eq!(c.latency_count, (MAX_LABEL_SETS * 3) as u64, "every call still counted");
    }
}
