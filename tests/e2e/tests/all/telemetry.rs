//! OpenTelemetry end to end (issue 16, contract in the OTel spec): the real
//! `actionbox serve` process exports to a real OTLP/HTTP receiver started by
//! the test ([`actionbox_e2e::otlp`]), with the ShipStation simulator (or the
//! hostile guest) upstream. The tests check the span tree of a call, trace
//! context in and (only when asked) out, error spans for a timeout and a
//! denied request, the OTLP metrics, a collector that is down, MCP `_meta`
//! trace context, and JSON logs carrying the trace id — and that no exported
//! byte carries the key, a header name or the bearer token.

use crate::mcp_remote::exchange;
use crate::workspaces::{text, Reply, StoreServe};
use actionbox_e2e::api::http;
use actionbox_e2e::otlp::{
    number_value, str_attribute, AggregationTemporality, AttributeValue, ExportedSpan, MetricData, OtlpReceiver,
    SpanKind, SpanStatus, SpanTree,
};
use actionbox_e2e::{hostile_component_path, shipstation_integration, write_config};
use serde_json::{json, Value};
use shipstation_sim::{RecordedRequest, Simulator};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The bearer token of the servers that require one.
const TOKEN: &str = "telemetry-e2e-bearer-token-0123456789";

/// The call timeout the ShipStation integration is configured with, so the
/// invocation span's budget can be checked against it.
const TIMEOUT_SECS: u64 = 20;

/// The instrumentation scope of the spans.
const SPAN_SCOPE: &str = "actionbox-runtime";

/// The MCP protocol revision the raw `/mcp` calls speak.
const MCP_REVISION: &str = "2026-07-28";

// ---------------------------------------------------------------- set-up

/// A W3C trace context a caller sends: a fresh random trace id and parent
/// span id.
struct TraceContext {
    trace_id: String,
    parent_id: String,
}

impl TraceContext {
    fn new() -> Self {
        Self {
            trace_id: random_hex(16),
            parent_id: random_hex(8),
        }
    }

    /// The `traceparent` value (sampled).
    fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.parent_id)
    }
}

/// `bytes` random bytes as lower-case hex (never all zeros, which W3C
/// trace context forbids).
fn random_hex(bytes: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    while out.len() < bytes * 2 {
        // Each RandomState has fresh keys: a random 64-bit word per hasher.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(out.len());
        out.push_str(&format!("{:016x}", h.finish() | 1));
    }
    out.truncate(bytes * 2);
    out
}

/// The environment that points `serve` at `otlp` with short export delays.
fn otel_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `(key, value)` pairs as the owned environment [`StoreServe::launch`] takes.
fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `actionbox serve --config <config> --listen 127.0.0.1:0 <args>` with
/// `env`, which must start.
async fn serve(config: &Path, args: &[&str], env: Vec<(String, String)>) -> StoreServe {
    let mut all = vec![
        "--config".to_string(),
        text(config).to_string(),
        "--listen".to_string(),
        "127.0.0.1:0".to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || StoreServe::launch(&all, &env))
        .await
        .expect("join")
        .unwrap_or_else(|f| panic!("actionbox serve did not start (exit {}):\n{}", f.code, f.stderr))
}

/// The ShipStation integration `shop` on `sim` with a [`TIMEOUT_SECS`]
/// timeout and `extra` keys (e.g. `propagate_trace = true`).
fn shop_config(tag: &str, sim: &Simulator, extra: &str) -> std::path::PathBuf {
    write_config(
        tag,
        &format!(
            "{}timeout = {TIMEOUT_SECS}\n{extra}",
            shipstation_integration(&sim.base_url())
        ),
    )
}

/// Integration `evil` of the operator-declared kind `hostile` (the hostile
/// guest, its base URL on `sim`, the minimum 10 s timeout) with one action
/// per attack the tests use: `infinite_loop` and `disallowed_host`.
fn hostile_config(tag: &str, sim: &Simulator) -> std::path::PathBuf {
    write_config(
        tag,
        &format!(
            "[[kind]]\nname = \"hostile\"\nbase_url = \"http://127.0.0.1:9\"\ncredential_header = \"API-Key\"\n\n\
             [[integration]]\nname = \"evil\"\nkind = \"hostile\"\ncomponent = {:?}\napi_key_env = \"SHIPSTATION_API_KEY\"\n\
             base_url = {:?}\ntimeout = 10\n\n\
             [[action]]\nname = \"infinite_loop\"\nintegration = \"evil\"\nmethod = \"infinite-loop\"\n\n\
             [[action]]\nname = \"disallowed_host\"\nintegration = \"evil\"\nmethod = \"disallowed-host\"\n",
            hostile_component_path().display().to_string(),
            sim.base_url(),
        ),
    )
}

/// `POST /v1/actions/{action}/invoke` with `params`, `token` and `headers`.
async fn invoke(
    addr: SocketAddr,
    action: &str,
    params: Value,
    token: Option<&str>,
    headers: &[(&str, String)],
) -> Reply {
    let mut all: Vec<(&str, String)> = headers.to_vec();
    all.push(("Content-Type", "application/json".to_string()));
    if let Some(t) = token {
        all.push(("Authorization", format!("Bearer {t}")));
    }
    let body = json!({ "params": params }).to_string();
    exchange(addr, "POST", &format!("/v1/actions/{action}/invoke"), &all, Some(&body)).await
}

/// The spans of trace `trace_id` among `spans`.
fn of_trace(spans: Vec<ExportedSpan>, trace_id: &str) -> Vec<ExportedSpan> {
    spans.into_iter().filter(|s| s.trace_id() == trace_id).collect()
}

/// The only span called `name` among `spans` (panics listing the tree otherwise).
fn only<'a>(spans: &'a [ExportedSpan], name: &str) -> &'a ExportedSpan {
    let found: Vec<&ExportedSpan> = spans.iter().filter(|s| s.name() == name).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one `{name}` span:\n{}",
        SpanTree::new(spans).render()
    );
    found[0]
}

/// No export (traces or metrics) contains any of `secrets`, in any case.
fn assert_nothing_secret_exported(otlp: &OtlpReceiver, secrets: &[&str]) {
    let exports = otlp.raw_exports();
    assert!(!exports.is_empty(), "nothing was exported to scan");
    for secret in secrets {
        let found = otlp.exports_containing(secret);
        assert!(found.is_empty(), "`{secret}` was exported: {found:?}");
    }
}

/// Where among `spans` a string value contains `needle`: span names,
/// attributes and event attributes, as `span / event / key` paths.
fn where_exported(spans: &[ExportedSpan], needle: &str) -> Vec<String> {
    let strings = |attributes: &[actionbox_e2e::otlp::KeyValue]| -> Vec<String> {
        attributes
            .iter()
            .filter(|kv| str_attribute(attributes, &kv.key).is_some_and(|v| v.contains(needle)))
            .map(|kv| kv.key.clone())
            .collect()
    };
    let mut out = Vec::new();
    for s in spans {
        if s.name().contains(needle) {
            out.push(format!("span name `{}`", s.name()));
        }
        for key in strings(&s.span.attributes) {
            out.push(format!("span `{}` attribute `{key}`", s.name()));
        }
        for e in &s.span.events {
            for key in strings(&e.attributes) {
                out.push(format!("span `{}` event `{}` attribute `{key}`", s.name(), e.name));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The sum of Prometheus metric `name` over its label sets, if present.
fn prometheus_value(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}

/// Poll `/metrics` (≤ `bound`) until `ready` holds for its text; return it.
async fn metrics_until(addr: SocketAddr, what: &str, bound: Duration, ready: impl Fn(&str) -> bool) -> String {
    let started = std::time::Instant::now();
    loop {
        let answer = http(addr, "GET", "/metrics", None, None).await;
        assert_eq!(answer.status, 200, "/metrics: {}", answer.body);
        if ready(&answer.body) {
            return answer.body;
        }
        assert!(
            started.elapsed() < bound,
            "{what}: not shown by /metrics within {bound:?}:\n{}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the upstream request carried any trace context.
fn carries_trace_context(r: &RecordedRequest) -> bool {
    r.traceparent.is_some()
        || r.tracestate.is_some()
        || r.header_names.iter().any(|h| h == "traceparent" || h == "tracestate")
}

/// The `url.query` the spec expects for `raw_query`: its keys in order,
/// every value `REDACTED`.
fn redacted_query(raw_query: &str) -> String {
    raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| format!("{}=REDACTED", pair.split_once('=').map_or(pair, |(k, _)| k)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Check the invocation span of a successful trackOrder call on `shop`
/// that made `requests`, and its children: `instantiate`, then one CLIENT
/// span per request the simulator recorded, in order, each inside its
/// parent. Returns the CLIENT spans in request order.
fn check_track_order_tree<'a>(
    trace: &'a [ExportedSpan],
    incoming: &TraceContext,
    requests: &[RecordedRequest],
    sim: &Simulator,
) -> Vec<&'a ExportedSpan> {
    let tree = SpanTree::new(trace);
    let shown = tree.render();
    let invocation = only(trace, "invoke track-order");
    let a = |key: &str| invocation.str_attr(key).map(str::to_string);
    let n = |key: &str| invocation.int_attr(key);

    // The invocation span continues the caller's trace.
    assert_eq!(invocation.kind(), SpanKind::Internal, "{shown}");
    assert_eq!(invocation.scope, SPAN_SCOPE, "{shown}");
    assert_eq!(invocation.trace_id(), incoming.trace_id, "{shown}");
    assert_eq!(invocation.parent_span_id(), incoming.parent_id, "{shown}");
    assert_eq!(invocation.status(), SpanStatus::Unset, "{shown}");
    assert!(
        a("actionbox.invocation.id").is_some_and(|id| id.starts_with("inv-")),
        "{shown}"
    );
    assert_eq!(a("actionbox.method").as_deref(), Some("track-order"), "{shown}");
    assert_eq!(a("actionbox.action").as_deref(), Some("trackOrder"), "{shown}");
    assert_eq!(a("actionbox.integration").as_deref(), Some("shop"), "{shown}");
    assert_eq!(a("actionbox.outcome").as_deref(), Some("ok"), "{shown}");
    assert_eq!(a("actionbox.workspace"), None, "config mode has no workspace: {shown}");
    let budget = n("actionbox.budget_ms").unwrap_or_else(|| panic!("no budget_ms: {shown}"));
    assert_eq!(budget, TIMEOUT_SECS as i64 * 1000, "the configured timeout: {shown}");
    let elapsed = n("actionbox.elapsed_ms").unwrap_or_else(|| panic!("no elapsed_ms: {shown}"));
    assert!((0..=budget).contains(&elapsed), "{shown}");
    let peak = n("actionbox.memory.peak_bytes").unwrap_or_else(|| panic!("no memory.peak_bytes: {shown}"));
    let limit = n("actionbox.memory.limit_bytes").unwrap_or_else(|| panic!("no memory.limit_bytes: {shown}"));
    assert!(peak > 0 && peak <= limit, "peak {peak}, limit {limit}: {shown}");
    assert_eq!(n("actionbox.outbound.requests"), Some(requests.len() as i64), "{shown}");
    assert_eq!(n("actionbox.outbound.dropped"), Some(0), "{shown}");
    assert_eq!(n("actionbox.log.dropped"), Some(0), "{shown}");

    // Its children: instantiate, then the requests; nothing else in the trace.
    let children = tree.children(invocation);
    let instantiate: Vec<&ExportedSpan> = children.iter().copied().filter(|s| s.name() == "instantiate").collect();
    assert_eq!(instantiate.len(), 1, "one instantiate child: {shown}");
    let instantiate = instantiate[0];
    assert_eq!(instantiate.kind(), SpanKind::Internal, "{shown}");
    let clients: Vec<&ExportedSpan> = children
        .iter()
        .copied()
        .filter(|s| s.kind() == SpanKind::Client)
        .collect();
    assert_eq!(
        clients.len(),
        requests.len(),
        "one CLIENT span per request the simulator saw ({:?}): {shown}",
        requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.raw_path))
            .collect::<Vec<_>>()
    );
    assert_eq!(children.len(), 1 + clients.len(), "no other children: {shown}");
    assert_eq!(trace.len(), 2 + clients.len(), "no other spans in the trace: {shown}");
    for child in &children {
        assert!(
            child.within(invocation),
            "outside its parent: {}\n{shown}",
            child.summary()
        );
    }
    if let Some(first) = clients.first() {
        assert!(
            instantiate.span.end_time_unix_nano <= first.span.start_time_unix_nano,
            "instantiated before the first request: {shown}"
        );
    }

    // Each CLIENT span is the request the simulator saw, in order.
    for (i, (span, req)) in clients.iter().zip(requests).enumerate() {
        let at = format!("request {i} ({} {}?{})", req.method, req.raw_path, req.raw_query);
        let s = |key: &str| span.str_attr(key).map(str::to_string);
        assert_eq!(span.name(), req.method, "{at}: {}", span.summary());
        assert_eq!(
            s("http.request.method").as_deref(),
            Some(req.method.as_str()),
            "{at}: {}",
            span.summary()
        );
        assert_eq!(s("url.scheme").as_deref(), Some("http"), "{at}: {}", span.summary());
        assert_eq!(
            s("server.address").as_deref(),
            Some("127.0.0.1"),
            "{at}: {}",
            span.summary()
        );
        assert_eq!(
            span.int_attr("server.port"),
            Some(i64::from(sim.addr().port())),
            "{at}: {}",
            span.summary()
        );
        assert_eq!(
            s("url.path").as_deref(),
            Some(req.raw_path.as_str()),
            "{at}: {}",
            span.summary()
        );
        let expected_query = (!req.raw_query.is_empty()).then(|| redacted_query(&req.raw_query));
        assert_eq!(
            s("url.query"),
            expected_query,
            "{at}: only keys, no values: {}",
            span.summary()
        );
        assert_eq!(
            span.int_attr("http.response.status_code"),
            Some(200),
            "{at}: {}",
            span.summary()
        );
        assert!(
            span.int_attr("http.response.body.size").is_some_and(|b| b > 0),
            "{at}: {}",
            span.summary()
        );
        // The spec's retry number: earlier requests of this call with the
        // same method, host and path.
        let earlier = requests[..i]
            .iter()
            .filter(|r| r.method == req.method && r.raw_path == req.raw_path)
            .count();
        assert_eq!(
            span.int_attr("actionbox.retry"),
            Some(earlier as i64),
            "{at}: {}",
            span.summary()
        );
        assert!(
            span.bool_attr("actionbox.connection.reused").is_some(),
            "{at}: {}",
            span.summary()
        );
        assert_ne!(
            span.bool_attr("actionbox.outbound.denied"),
            Some(true),
            "{at}: {}",
            span.summary()
        );
        assert_eq!(s("error.type"), None, "{at}: {}", span.summary());
        assert_eq!(span.status(), SpanStatus::Unset, "{at}: {}", span.summary());
    }
    clients
}

// ---------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread")]
async fn split_order_is_one_trace_under_the_incoming_traceparent_with_a_client_span_per_request() {
    let otlp = OtlpReceiver::start().await;
    let sim = Simulator::start().await.expect("simulator");
    let config = shop_config("otel-split", &sim, "");
    let mut environment = otel_env(&otlp.endpoint());
    environment.extend(env(&[
        ("SHIPSTATION_API_KEY", sim.api_key()),
        ("ACTIONBOX_AUTH_TOKEN", TOKEN),
    ]));
    let serve = serve(&config, &[], environment).await;

    let incoming = TraceContext::new();
    let answer = invoke(
        serve.addr,
        "trackOrder",
        json!({ "order_id": "1002" }),
        Some(TOKEN),
        &[("traceparent", incoming.traceparent())],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let result = answer.json();
    assert_eq!(
        result["result"]["shipstation"]["shipments"].as_array().map(Vec::len),
        Some(2),
        "{result}"
    );
    assert_eq!(
        result["result"]["shipstation"]["tracking"]["status_code"], "IT",
        "{result}"
    );

    let requests = sim.requests();
    assert!(
        requests.len() >= 2,
        "a split order needs several requests: {requests:?}"
    );
    // Children end before their parent, so they are exported with it or before.
    let spans = otlp
        .wait_for_spans("the split order's invocation span", |spans| {
            spans
                .iter()
                .any(|s| s.trace_id() == incoming.trace_id && s.name() == "invoke track-order")
        })
        .await;
    let trace = of_trace(spans, &incoming.trace_id);
    let clients = check_track_order_tree(&trace, &incoming, &requests, &sim);
    assert_eq!(
        only(&trace, "invoke track-order").resource_str("service.name"),
        Some("actionbox"),
        "the default service name"
    );

    // A fresh process: the first request opened a connection, and every
    // request that did not reuse one is a connection the simulator accepted.
    assert_eq!(
        clients[0].bool_attr("actionbox.connection.reused"),
        Some(false),
        "{}",
        clients[0].summary()
    );
    let opened = clients
        .iter()
        .filter(|c| c.bool_attr("actionbox.connection.reused") == Some(false))
        .count() as u64;
    assert_eq!(
        opened,
        sim.connections_accepted(),
        "new connections per the spans vs. the simulator"
    );

    // Trace context is not forwarded upstream by default.
    for r in &requests {
        assert!(!carries_trace_context(r), "trace context went upstream: {r:?}");
    }

    // Metrics are exported too; then no byte of any export may carry a secret.
    otlp.wait_for_metric("actionbox.invocations", |m| m.name() == "actionbox.invocations")
        .await;
    assert_nothing_secret_exported(&otlp, &[sim.api_key(), "API-Key", "authorization", TOKEN]);
    assert!(otlp.problems().is_empty(), "{:?}", otlp.problems());

    // Prometheus counts the exported spans.
    let metrics = metrics_until(serve.addr, "spans exported", Duration::from_secs(20), |m| {
        prometheus_value(m, "actionbox_telemetry_spans_exported_total").is_some_and(|v| v >= trace.len() as f64)
    })
    .await;
    assert_eq!(
        prometheus_value(&metrics, "actionbox_telemetry_spans_dropped_total"),
        Some(0.0),
        "{metrics}"
    );
    assert!(!serve.stderr().contains(sim.api_key()), "serve printed the key");
}

#[tokio::test(flavor = "multi_thread")]
async fn query_values_are_exported_nowhere_not_even_in_guest_log_events() {
    let otlp = OtlpReceiver::start().await;
    let sim = Simulator::start().await.expect("simulator");
    let config = shop_config("otel-query", &sim, "");
    let mut environment = otel_env(&otlp.endpoint());
    environment.extend(env(&[("SHIPSTATION_API_KEY", sim.api_key())]));
    let serve = serve(&config, &["--no-auth"], environment).await;

    let answer = invoke(serve.addr, "trackOrder", json!({ "order_id": "1002" }), None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let spans = otlp
        .wait_for_spans("the invocation span", |spans| {
            spans.iter().any(|s| s.name() == "invoke track-order")
        })
        .await;
    otlp.wait_for_metric("actionbox.invocations", |m| m.name() == "actionbox.invocations")
        .await;

    // Each `key=value` pair the guest sent in a query, as sent: found in an
    // export only if a value was exported (`url.query` has `key=REDACTED`).
    let requests = sim.requests();
    let pairs: std::collections::BTreeSet<&str> = requests
        .iter()
        .flat_map(|r| r.raw_query.split('&'))
        .filter(|p| p.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .collect();
    assert!(!pairs.is_empty(), "the split order sends queries: {requests:?}");
    let mut leaks = Vec::new();
    for pair in &pairs {
        let found = otlp.exports_containing(pair);
        if !found.is_empty() {
            leaks.push(format!("`{pair}` in {found:?}: {:?}", where_exported(&spans, pair)));
        }
    }
    assert!(leaks.is_empty(), "query values were exported:\n{}", leaks.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn propagate_trace_sends_each_outbound_span_as_the_upstream_traceparent() {
    let otlp = OtlpReceiver::start().await;
    let sim = Simulator::start().await.expect("simulator");
    let config = shop_config("otel-propagate", &sim, "propagate_trace = true\n");
    let mut environment = otel_env(&otlp.endpoint());
    environment.extend(env(&[
        ("SHIPSTATION_API_KEY", sim.api_key()),
        ("OTEL_SERVICE_NAME", "actionbox-e2e-propagation"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=e2e"),
    ]));
    let serve = serve(&config, &["--no-auth"], environment).await;

    let incoming = TraceContext::new();
    let tracestate = "e2e=telemetry-test";
    let answer = invoke(
        serve.addr,
        "trackOrder",
        json!({ "order_id": "1002" }),
        None,
        &[
            ("traceparent", incoming.traceparent()),
            ("tracestate", tracestate.to_string()),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let requests = sim.requests();
    let spans = otlp
        .wait_for_spans("the invocation span", |spans| {
            spans
                .iter()
                .any(|s| s.trace_id() == incoming.trace_id && s.name() == "invoke track-order")
        })
        .await;
    let trace = of_trace(spans, &incoming.trace_id);
    let clients = check_track_order_tree(&trace, &incoming, &requests, &sim);

    for (i, (span, req)) in clients.iter().zip(&requests).enumerate() {
        assert_eq!(
            req.traceparent.as_deref(),
            Some(format!("00-{}-{}-01", incoming.trace_id, span.span_id()).as_str()),
            "request {i} ({} {}) carries its own CLIENT span as parent: {}",
            req.method,
            req.raw_path,
            span.summary()
        );
        assert_eq!(
            req.tracestate.as_deref(),
            Some(tracestate),
            "request {i}: the incoming tracestate"
        );
    }
    let invocation = only(&trace, "invoke track-order");
    assert_eq!(
        invocation.resource_str("service.name"),
        Some("actionbox-e2e-propagation")
    );
    assert_eq!(invocation.resource_str("deployment.environment"), Some("e2e"));
    assert!(otlp.problems().is_empty(), "{:?}", otlp.problems());
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_ends_the_invocation_span_with_outcome_timeout_and_status_error() {
    let otlp = OtlpReceiver::start().await;
    let sim = Simulator::start().await.expect("simulator");
    let config = hostile_config("otel-timeout", &sim);
    let mut environment = otel_env(&otlp.endpoint());
    environment.extend(env(&[("SHIPSTATION_API_KEY", sim.api_key())]));
    let serve = serve(&config, &["--no-auth"], environment).await;

    let answer = invoke(serve.addr, "infinite_loop", json!({}), None, &[]).await;
    assert_ne!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["error"]["kind"], "timeout", "{}", answer.body);

    let span = otlp
        .wait_for_span("the infinite loop's invocation span", |s| {
            s.name() == "invoke infinite-loop"
        })
        .await;
    let shown = span.summary();
    assert_eq!(span.str_attr("actionbox.outcome"), Some("timeout"), "{shown}");
    assert_eq!(span.str_attr("actionbox.action"), Some("infinite_loop"), "{shown}");
    assert_eq!(span.str_attr("actionbox.integration"), Some("evil"), "{shown}");
    assert_eq!(span.str_attr("actionbox.method"), Some("infinite-loop"), "{shown}");
    assert_eq!(span.status(), SpanStatus::Error, "{shown}");
    assert!(span.status_message().starts_with("timeout: "), "{shown}");
    assert_eq!(span.int_attr("actionbox.budget_ms"), Some(10_000), "{shown}");
    assert!(
        span.int_attr("actionbox.elapsed_ms").is_some_and(|e| e >= 9_000),
        "ran until the deadline: {shown}"
    );
    assert!(
        span.parent_span_id().is_empty(),
        "no incoming context, a root span: {shown}"
    );
    assert!(otlp.problems().is_empty(), "{:?}", otlp.problems());
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_request_is_an_error_client_span_and_a_violation_event() {
    let otlp = OtlpReceiver::start().await;
    let sim = Simulator::start().await.expect("simulator");
    let config = hostile_config("otel-denied", &sim);
    let mut environment = otel_env(&otlp.endpoint());
    environment.extend(env(&[("SHIPSTATION_API_KEY", sim.api_key())]));
    let serve = serve(&config, &["--no-auth"], environment).await;

    let answer = invoke(serve.addr, "disallowed_host", json!({}), None, &[]).await;
    assert_eq!(answer.json()["error"]["kind"], "denied", "{}", answer.body);

    let spans = otlp
        .wait_for_spans("the denied call's invocation span", |spans| {
            spans.iter().any(|s| s.name() == "invoke disallowed-host")
        })
        .await;
    let invocation = only(&spans, "invoke disallowed-host");
    let trace = of_trace(spans.clone(), &invocation.trace_id());
    let tree = SpanTree::new(&trace);
    let shown = tree.render();
    assert_eq!(invocation.str_attr("actionbox.outcome"), Some("denied"), "{shown}");
    assert_eq!(invocation.status(), SpanStatus::Error, "{shown}");
    assert!(invocation.status_message().starts_with("denied: "), "{shown}");

    let clients: Vec<&ExportedSpan> = tree
        .children(invocation)
        .into_iter()
        .filter(|s| s.kind() == SpanKind::Client)
        .collect();
    assert_eq!(clients.len(), 1, "the refused request is a CLIENT span: {shown}");
    let refused = clients[0];
    assert_eq!(refused.name(), "GET", "{shown}");
    assert_eq!(refused.bool_attr("actionbox.outbound.denied"), Some(true), "{shown}");
    assert_eq!(refused.str_attr("error.type"), Some("denied"), "{shown}");
    assert_eq!(refused.status(), SpanStatus::Error, "{shown}");
    assert_eq!(refused.str_attr("server.address"), Some("example.com"), "{shown}");
    assert_eq!(
        refused.int_attr("http.response.status_code"),
        None,
        "no response: {shown}"
    );
    assert!(refused.within(invocation), "{shown}");

    let violations = invocation.events_named("sandbox.violation");
    assert!(!violations.is_empty(), "a sandbox.violation event: {shown}");
    let denied = violations
        .iter()
        .find(|e| str_attribute(&e.attributes, "actionbox.violation.kind") == Some("denied"))
        .unwrap_or_else(|| panic!("a violation of kind `denied`: {shown}"));
    assert!(
        str_attribute(&denied.attributes, "actionbox.violation.message").is_some_and(|m| !m.is_empty()),
        "{shown}"
    );
    assert!(
        (invocation.span.start_time_unix_nano..=invocation.span.end_time_unix_nano).contains(&denied.time_unix_nano),
        "the event happened during the call: {shown}"
    );
    assert_nothing_secret_exported(&otlp, &[sim.api_key(), "API-Key", "authorization"]);
    assert!(otlp.problems().is_empty(), "{:?}", otlp.problems());
}

#[tokio::test(flavor = "multi_thread")]
async fn collector_that_is_down_fails_no_call_and_counts_dropped_spans() {
    // A loopback port nobody listens on: connections are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    let sim = Simulator::start().await.expect("simulator");
    let config = shop_config("otel-down", &sim, "");
    let mut environment = otel_env(&format!("http://{closed}"));
    environment.extend(env(&[
        ("SHIPSTATION_API_KEY", sim.api_key()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
    ]));
    let mut serve = serve(&config, &["--no-auth"], environment).await;

    for i in 0..3 {
        let answer = invoke(serve.addr, "trackOrder", json!({ "order_id": "1001" }), None, &[]).await;
        assert_eq!(answer.status, 200, "call {i} with the collector down: {}", answer.body);
        assert_eq!(answer.json()["result"]["shipstation"]["tracking"]["status_code"], "DE");
    }
    let metrics = metrics_until(serve.addr, "dropped spans", Duration::from_secs(30), |m| {
        prometheus_value(m, "actionbox_telemetry_spans_dropped_total").is_some_and(|v| v > 0.0)
    })
    .await;
    assert_eq!(
        prometheus_value(&metrics, "actionbox_telemetry_spans_exported_total"),
        Some(0.0),
        "{metrics}"
    );
    // Still serving after the failed exports.
    let answer = invoke(serve.addr, "trackOrder", json!({ "order_id": "1001" }), None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(serve.child.try_wait().ok().flatten().is_none(), "serve is running");
}

#[tokio::test(flavor = "multi_thread")]
async fn invocations_are_exported_as_otlp_metrics() {
    let otlp = OtlpReceiver::start().await;
    let sim = Simulator::start().await.expect("simulator");
    let config = shop_config("otel-metrics", &sim, "");
    let mut environment = otel_env(&otlp.endpoint());
    environment.extend(env(&[("SHIPSTATION_API_KEY", sim.api_key())]));
    let serve = serve(&config, &["--no-auth"], environment).await;

    let answer = invoke(serve.addr, "trackOrder", json!({ "order_id": "1001" }), None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let is_track_order_ok = |attributes: &[actionbox_e2e::otlp::KeyValue]| {
        str_attribute(attributes, "action") == Some("trackOrder") && str_attribute(attributes, "outcome") == Some("ok")
    };
    let invocations = otlp
        .wait_for_metric("actionbox.invocations{action=trackOrder,outcome=ok} ≥ 1", |m| {
            m.name() == "actionbox.invocations"
                && m.number_points()
                    .iter()
                    .any(|p| is_track_order_ok(&p.attributes) && number_value(p) >= 1.0)
        })
        .await;
    let shown = invocations.summary();
    assert_eq!(invocations.scope, "actionbox", "{shown}");
    match &invocations.metric.data {
        Some(MetricData::Sum(sum)) => {
            assert!(sum.is_monotonic, "{shown}");
            assert_eq!(
                sum.aggregation_temporality,
                AggregationTemporality::Cumulative as i32,
                "{shown}"
            );
        }
        _ => panic!("actionbox.invocations is a Sum: {shown}"),
    }

    let duration = otlp
        .wait_for_metric("actionbox.invocation.duration{action=trackOrder,outcome=ok}", |m| {
            m.name() == "actionbox.invocation.duration"
                && m.histogram_points()
                    .iter()
                    .any(|p| is_track_order_ok(&p.attributes) && p.count >= 1)
        })
        .await;
    assert_eq!(duration.metric.unit, "s", "{}", duration.summary());

    otlp.wait_for_metric("actionbox.outbound.requests{status=200}", |m| {
        m.name() == "actionbox.outbound.requests"
            && m.number_points().iter().any(|p| {
                let status = actionbox_e2e::otlp::attribute(&p.attributes, "status");
                let is_200 = matches!(status, Some(AttributeValue::StringValue(s)) if s == "200")
                    || matches!(status, Some(AttributeValue::IntValue(200)));
                is_200 && number_value(p) >= 1.0
            })
    })
    .await;
    assert_nothing_secret_exported(&otlp, &[sim.api_key(), "API-Key", "authorization"]);
    assert!(otlp.problems().is_empty(), "{:?}", otlp.problems());
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_meta_traceparent_continues_the_trace_and_wins_over_the_header() {
    let otlp = OtlpReceiver::start().await;
    let sim = Simulator::start().await.expect("simulator");
    let config = shop_config("otel-mcp", &sim, "");
    let mut environment = otel_env(&otlp.endpoint());
    environment.extend(env(&[("SHIPSTATION_API_KEY", sim.api_key())]));
    let serve = serve(&config, &["--no-auth"], environment).await;

    let in_meta = TraceContext::new();
    let in_header = TraceContext::new();
    let body = json!({
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "trackOrder",
            "arguments": { "order_id": "1001" },
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MCP_REVISION,
                "io.modelcontextprotocol/clientInfo": { "name": "actionbox-e2e-telemetry", "version": "0" },
                "io.modelcontextprotocol/clientCapabilities": {},
                "traceparent": in_meta.traceparent(),
            },
        },
    })
    .to_string();
    let headers = [
        ("Accept", "application/json, text/event-stream".to_string()),
        ("MCP-Protocol-Version", MCP_REVISION.to_string()),
        ("Mcp-Method", "tools/call".to_string()),
        ("Mcp-Name", "trackOrder".to_string()),
        ("traceparent", in_header.traceparent()),
        ("Content-Type", "application/json".to_string()),
    ];
    let answer = exchange(serve.addr, "POST", "/mcp", &headers, Some(&body)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["result"]["isError"], false, "{}", answer.body);

    let spans = otlp
        .wait_for_spans("the MCP call's invocation span in the _meta trace", |spans| {
            spans
                .iter()
                .any(|s| s.trace_id() == in_meta.trace_id && s.name() == "invoke track-order")
        })
        .await;
    let trace = of_trace(spans.clone(), &in_meta.trace_id);
    let invocation = only(&trace, "invoke track-order");
    assert_eq!(
        invocation.parent_span_id(),
        in_meta.parent_id,
        "{}",
        invocation.summary()
    );
    assert_eq!(
        invocation.str_attr("actionbox.outcome"),
        Some("ok"),
        "{}",
        invocation.summary()
    );
    assert!(
        of_trace(spans, &in_header.trace_id).is_empty(),
        "`_meta` wins over the HTTP header: nothing in the header's trace"
    );
    assert!(otlp.problems().is_empty(), "{:?}", otlp.problems());
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_exported_trace_id_of_a_failed_call() {
    let otlp = OtlpReceiver::start().await;
    let sim = Simulator::start().await.expect("simulator");
    let config = hostile_config("otel-json-logs", &sim);
    let mut environment = otel_env(&otlp.endpoint());
    environment.extend(env(&[("SHIPSTATION_API_KEY", sim.api_key()), ("RUST_LOG", "info")]));
    let serve = serve(&config, &["--no-auth", "--log-format", "json"], environment).await;

    let answer = invoke(serve.addr, "disallowed_host", json!({}), None, &[]).await;
    assert_eq!(answer.json()["error"]["kind"], "denied", "{}", answer.body);
    let span = otlp
        .wait_for_span("the denied call's invocation span", |s| {
            s.name() == "invoke disallowed-host"
        })
        .await;
    let invocation_id = span
        .str_attr("actionbox.invocation.id")
        .unwrap_or_else(|| panic!("no invocation id: {}", span.summary()))
        .to_string();

    // The log line is written before the answer; its reader may lag a little.
    let started = std::time::Instant::now();
    let failed = loop {
        let stderr = serve.stderr();
        let line = stderr
            .lines()
            .find(|l| l.contains("invocation failed"))
            .map(str::to_string);
        if let Some(line) = line {
            break line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no `invocation failed` line on stderr:\n{stderr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log: Value =
        serde_json::from_str(&failed).unwrap_or_else(|e| panic!("the log line is not JSON ({e}): {failed}"));
    assert!(log["timestamp"].is_string(), "{log}");
    assert_eq!(log["level"], "INFO", "{log}");
    assert!(log["target"].as_str().is_some_and(|t| !t.is_empty()), "{log}");
    assert!(
        log["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("invocation failed")),
        "{log}"
    );
    // The `invocation` span, as the current span or among the spans.
    let spans: Vec<&Value> = std::iter::once(&log["span"])
        .chain(log["spans"].as_array().into_iter().flatten())
        .filter(|s| s["trace_id"].is_string())
        .collect();
    assert!(!spans.is_empty(), "no span with a trace_id in the line: {log}");
    for s in &spans {
        assert_eq!(s["trace_id"], span.trace_id().as_str(), "the exported trace id: {log}");
        assert_eq!(s["invocation_id"], invocation_id.as_str(), "{log}");
    }
    // Every log line is one JSON object; only the plain notices `serve`
    // prints itself ("actionbox serving on …", "note: …") are not logs.
    let stderr = serve.stderr();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with("actionbox ") || line.starts_with("note: ") {
            continue;
        }
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "a log line that is not JSON: {line}"
        );
    }
    assert!(!stderr.contains(sim.api_key()), "serve printed the key");
}
