//! Portability: the unmodified ShipStation component in a second, independent
//! runtime. `tests/jco/host.mjs` runs it in Node.js after `jco transpile`,
//! with its own implementation of the contract's host side (wasi:config/store
//! settings, log, wasi:http restricted to the base URL's origin with the key
//! injected by the host). Every scenario runs through `actionbox run` (or
//! `actionbox test-connection`) and through the Node host, each against its
//! own fresh simulator, and must give the same JSON, the same typed error and
//! exit code, and the same upstream requests. Both hosts refuse a component
//! built against contract 0.1.0.
//!
//! Needs what `make test` prepares: `npm ci` in `tests/jco` and the transpiled
//! component in `target/jco/shipstation`. A missing piece fails the test with
//! that instruction; nothing is skipped.

use actionbox_e2e::{run_actionbox, temp_dir, workspace_root, CliOutput};
use serde_json::Value;
use shipstation_sim::{FaultRule, Simulator};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const WRONG_KEY: &str = "TEST_wrong_key_that_must_not_leak";

/// The component `make jco` transpiles (the Makefile's build), which the
/// Rust host runs too, so both hosts run the very same bytes.
fn component_path() -> PathBuf {
    workspace_root().join("target/wasm32-wasip2/release/shipstation.wasm")
}

/// What transpiles the component for Node.js, for `require!`.
const JCO_MADE_BY: &str = "Node.js and jco: `make jco`";

fn jco_dir() -> PathBuf {
    workspace_root().join("tests/jco")
}

/// The transpiled component's JS entry point.
fn bindings() -> PathBuf {
    workspace_root().join("target/jco/shipstation/shipstation.js")
}

fn version_in(package_json: &Path, field: &[&str]) -> String {
    let text = std::fs::read_to_string(package_json).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run `make test` (it runs npm ci in tests/jco)",
            package_json.display()
        )
    });
    let mut v: Value = serde_json::from_str(&text).expect("package.json is JSON");
    for f in field {
        v = v[*f].take();
    }
    v.as_str().unwrap_or_default().to_string()
}

/// Check once that Node, the pinned npm packages and an up-to-date transpiled
/// component are there; panic with what to run otherwise.
fn prerequisites() {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let node = Command::new("node").arg("--version").output();
        let version = match node {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            _ => panic!("`node` is not on PATH: the jco tests need Node.js >= 20 and npm; then run `make test`"),
        };
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        assert!(
            major >= 20,
            "Node.js {version} is too old for the jco tests (need >= 20)"
        );
        for package in ["@bytecodealliance/jco", "@bytecodealliance/preview2-shim"] {
            let pinned = version_in(&jco_dir().join("package.json"), &["dependencies", package]);
            let installed = jco_dir().join("node_modules").join(package).join("package.json");
            assert!(
                installed.exists(),
                "{} is missing: run `make test` (it runs npm ci in tests/jco)",
                installed.display()
            );
            let installed = version_in(&installed, &["version"]);
            assert_eq!(
                installed, pinned,
                "tests/jco/node_modules has {package} {installed}, package.json pins {pinned}: run `make test` (npm ci)"
            );
        }
        let js = bindings();
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let (Some(js_time), Some(wasm_time)) = (modified(&js), modified(&component_path())) else {
            panic!(
                "{} is missing: run `make test` (it transpiles {} with jco into target/jco)",
                js.display(),
                component_path().display()
            );
        };
        assert!(
            js_time >= wasm_time,
            "{} is older than {}: run `make test` to transpile the current component",
            js.display(),
            component_path().display()
        );
    });
}

/// Run `node tests/jco/host.mjs ARGS` on the transpiled ShipStation component
/// at the most verbose log level, with `SHIPSTATION_API_KEY` set to `key` (or
/// unset), off the async runtime.
async fn run_node_host(args: &[&str], key: Option<&str>) -> CliOutput {
    run_node_host_on(&bindings(), args, key).await
}

/// [`run_node_host`] on the transpiled component whose JS entry point is `js`.
async fn run_node_host_on(js: &Path, args: &[&str], key: Option<&str>) -> CliOutput {
    prerequisites();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let key = key.map(str::to_string);
    let js = js.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("node");
        cmd.arg(jco_dir().join("host.mjs"))
            .args(&args)
            .arg("--bindings")
            .arg(js)
            .env_remove("SHIPSTATION_API_KEY")
            .env("ACTIONBOX_JCO_LOG", "trace")
            .stdin(std::process::Stdio::null());
        if let Some(k) = key {
            cmd.env("SHIPSTATION_API_KEY", k);
        }
        CliOutput::from(cmd.output().expect("node runs"))
    })
    .await
    .expect("join")
}

/// The Rust CLI's `error: …` line for the Node host's `{"tag", "val"}`
/// (`InvokeError`'s Display).
fn rust_error_line(error: &Value) -> String {
    let tag = error["tag"].as_str().expect("tag");
    let val = &error["val"];
    let mut line = match val {
        Value::String(message) => format!("{tag}: {message}"),
        _ => format!("{tag}: {}", val["message"].as_str().expect("message")),
    };
    if tag == "rate-limited" {
        if let Some(s) = val["retryAfterSecs"].as_u64() {
            line.push_str(&format!(" (retry after {s} s)"));
        }
    }
    if tag == "upstream" {
        if let Some(s) = val["status"].as_u64() {
            line.push_str(&format!(" (HTTP {s})"));
        }
        if let Some(id) = val["requestId"].as_str() {
            if !val["message"].as_str().unwrap_or_default().contains(id) {
                line.push_str(&format!(" [request_id {id}]"));
            }
        }
    }
    format!("error: {line}")
}

/// The one `error: {json}` line of a failed Node host run.
fn node_error(out: &CliOutput) -> Value {
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{}", out.stderr);
    serde_json::from_str(&lines[0]["error: ".len()..]).expect("the error line carries JSON")
}

/// The one `error: …` line of a failed `actionbox run`.
fn rust_error(out: &CliOutput) -> String {
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{}", out.stderr);
    lines[0].to_string()
}

/// What the simulator saw, minus what may legitimately differ between two
/// HTTP client stacks (header order, `connection`/`host` framing headers).
fn upstream_requests(sim: &Simulator) -> Vec<(String, String, String, bool)> {
    sim.requests()
        .into_iter()
        .map(|r| (r.method, r.raw_path, r.raw_query, r.authorized))
        .collect()
}

/// One comparison: `method` with `input` through both hosts, each against a
/// fresh simulator with `faults`, with the simulator's own key or `WRONG_KEY`.
struct Scenario {
    method: String,
    input: String,
    right_key: bool,
    faults: Vec<FaultRule>,
    /// Text the two runtimes are known to word differently in the error
    /// message: (as actionbox says it, as the Node host says it).
    known_difference: Option<(&'static str, &'static str)>,
}

impl Scenario {
    fn call(method: &str, input: &str) -> Self {
        Self {
            method: method.into(),
            input: input.into(),
            right_key: true,
            faults: Vec::new(),
            known_difference: None,
        }
    }

    fn track(order_id: &str) -> Self {
        Self::call("trackOrder", &serde_json::json!({ "order_id": order_id }).to_string())
    }

    fn wrong_key(mut self) -> Self {
        self.right_key = false;
        self
    }

    fn fault(mut self, rule: FaultRule) -> Self {
        self.faults.push(rule);
        self
    }

    fn known_difference(mut self, rust: &'static str, node: &'static str) -> Self {
        self.known_difference = Some((rust, node));
        self
    }
}

/// What both hosts answered, once shown to be the same.
enum Agreed {
    Ok(Value),
    Err(Value, i32),
}

async fn both(s: Scenario) -> Agreed {
    prerequisites();
    let (rust_sim, node_sim) = (
        Simulator::start().await.expect("simulator"),
        Simulator::start().await.expect("simulator"),
    );
    for f in &s.faults {
        rust_sim.add_fault(f.clone());
        node_sim.add_fault(f.clone());
    }
    let key = |sim: &Simulator| {
        if s.right_key {
            sim.api_key().to_string()
        } else {
            WRONG_KEY.into()
        }
    };
    let (rust_key, node_key) = (key(&rust_sim), key(&node_sim));
    let (component, rust_url, node_url) = (
        component_path().display().to_string(),
        rust_sim.base_url(),
        node_sim.base_url(),
    );
    let rust_args = [
        "run",
        &component,
        &s.method,
        "--input",
        &s.input,
        "--base-url",
        &rust_url,
    ];
    let node_args = ["run", &s.method, "--input", &s.input, "--base-url", &node_url];
    let (rust, node) = tokio::join!(
        run_actionbox(&rust_args, Some(&rust_key)),
        run_node_host(&node_args, Some(&node_key)),
    );
    let what = format!("{} {}", s.method, s.input);
    for (host, out, key) in [("actionbox", &rust, &rust_key), ("node", &node, &node_key)] {
        assert!(
            !out.stdout.contains(key.as_str()) && !out.stderr.contains(key.as_str()),
            "{what}: {host} printed the key"
        );
    }
    assert_eq!(
        upstream_requests(&rust_sim),
        upstream_requests(&node_sim),
        "{what}: the two hosts made different upstream requests"
    );
    assert_eq!(
        rust.code, node.code,
        "{what}: exit codes differ\nactionbox: {}\nnode: {}",
        rust.stderr, node.stderr
    );
    if rust.code == 0 {
        let r: Value = serde_json::from_str(&rust.stdout).expect("actionbox prints JSON");
        let n: Value = serde_json::from_str(&node.stdout).unwrap_or_else(|e| {
            panic!(
                "{what}: node host stdout is not JSON ({e}):\n{}\n{}",
                node.stdout, node.stderr
            )
        });
        assert_eq!(r, n, "{what}: results differ");
        Agreed::Ok(n)
    } else {
        let n = node_error(&node);
        let (rust_line, mut node_line) = (rust_error(&rust), rust_error_line(&n));
        if let Some((in_rust, in_node)) = s.known_difference {
            assert!(
                rust_line.contains(in_rust) && node_line.contains(in_node),
                "{what}: the known difference ({in_rust} / {in_node}) is gone or changed:\n{rust_line}\n{node_line}"
            );
            node_line = node_line.replace(in_node, in_rust);
        }
        assert_eq!(rust_line, node_line, "{what}: errors differ");
        assert!(node.stdout.is_empty(), "{what}: nothing on stdout on failure");
        Agreed::Err(n, node.code)
    }
}

fn expect_ok(a: Agreed) -> Value {
    match a {
        Agreed::Ok(v) => v,
        Agreed::Err(e, code) => panic!("expected success, both failed with {code}: {e}"),
    }
}

fn expect_err(a: Agreed, tag: &str, code: i32) -> Value {
    match a {
        Agreed::Err(e, c) => {
            assert_eq!((e["tag"].as_str(), c), (Some(tag), code), "{e}");
            e
        }
        Agreed::Ok(v) => panic!("expected {tag}, both succeeded with {v}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn component_imports_only_wasi_and_the_actionbox_contract() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    prerequisites();
    let out = Command::new("node")
        .arg(jco_dir().join("node_modules/.bin/jco"))
        .arg("wit")
        .arg(component_path())
        .output()
        .expect("jco runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let wit = String::from_utf8(out.stdout).expect("utf-8");
    let imports: Vec<&str> = wit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("import "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    // Contract 0.2.0: settings through the standard wasi:config/store, the
    // contract's own log; nothing of 0.1.0 (its `settings` and `types`) is left.
    for required in [
        "wasi:http/outgoing-handler@0.2.12",
        "wasi:clocks/monotonic-clock@0.2.12",
        "wasi:config/store@0.2.0-rc.1",
        "actionbox:action/log@0.2.0",
    ] {
        assert!(imports.contains(&required), "{required} not imported:\n{wit}");
    }
    let old_contract: Vec<&&str> = imports
        .iter()
        .filter(|i| i.starts_with("actionbox:action/") && !i.ends_with("@0.2.0"))
        .collect();
    assert!(
        old_contract.is_empty(),
        "imports of another contract version: {old_contract:?}\n{wit}"
    );
    let foreign: Vec<&&str> = imports
        .iter()
        .filter(|i| !i.starts_with("wasi:") && !i.starts_with("actionbox:action/"))
        .collect();
    assert!(
        foreign.is_empty(),
        "imports outside wasi:* and actionbox:action: {foreign:?}\n{wit}"
    );
    // One exported interface (describe, invoke, test-connection), as
    // wasi:http/proxy exports its handler; no world-level functions.
    let exports: Vec<&str> = wit
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("export "))
        .collect();
    assert_eq!(exports, ["export actionbox:action/action@0.2.0;"], "{wit}");
}

/// `displayName` → `display_name`: jco gives WIT record fields in camelCase,
/// the Rust host serializes them in snake_case.
fn snake_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let mut snake = String::new();
                    for c in k.chars() {
                        if c.is_ascii_uppercase() {
                            snake.push('_');
                            snake.push(c.to_ascii_lowercase());
                        } else {
                            snake.push(c);
                        }
                    }
                    (snake, snake_keys(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(snake_keys).collect()),
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_gives_the_same_manifest() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    let component = component_path().display().to_string();
    let rust_args = ["describe", component.as_str()];
    let (rust, node) = tokio::join!(run_actionbox(&rust_args, None), run_node_host(&["describe"], None));
    assert_eq!((rust.code, node.code), (0, 0), "{}\n{}", rust.stderr, node.stderr);
    let r: Value = serde_json::from_str(&rust.stdout).expect("JSON");
    let n: Value = serde_json::from_str(&node.stdout).expect("JSON");
    assert_eq!(n["methods"][0]["displayName"], "trackOrder", "jco's own field names");
    // The default action is the component's own, seen the same by both hosts.
    assert_eq!(n["defaultActions"][0]["name"], "trackOrder", "{n}");
    assert_eq!(r["default_actions"][0]["name"], "trackOrder", "{r}");
    assert_eq!(r, parameter_descriptions_as_maps(snake_keys(n)));
}

/// jco gives a default action's `parameter-descriptions` as the WIT's list of
/// `{param, description}`; the Rust host serializes them as a map from
/// parameter to description.
fn parameter_descriptions_as_maps(mut manifest: Value) -> Value {
    let defaults = manifest["default_actions"]
        .as_array_mut()
        .expect("default_actions is a list");
    for default in defaults {
        let list = default["parameter_descriptions"]
            .as_array()
            .expect("parameter_descriptions is a list in jco")
            .iter()
            .map(|d| {
                let param = d["param"].as_str().expect("param").to_string();
                (param, d["description"].clone())
            })
            .collect();
        default["parameter_descriptions"] = Value::Object(list);
    }
    manifest
}

#[tokio::test(flavor = "multi_thread")]
async fn delivered_and_in_transit_orders_are_identical() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    let delivered = expect_ok(both(Scenario::track("1001")).await);
    assert_eq!(delivered["shipstation"]["tracking"]["status_code"], "DE");
    let in_transit = expect_ok(both(Scenario::track("10010")).await);
    assert_eq!(in_transit["shipstation"]["tracking"]["status_code"], "IT");
    let exception = expect_ok(both(Scenario::track("1006")).await);
    assert_eq!(exception["shipstation"]["tracking"]["status_code"], "EX");
}

#[tokio::test(flavor = "multi_thread")]
async fn split_voided_return_and_unshipped_orders_are_identical() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    let split = expect_ok(both(Scenario::track("1002")).await);
    assert_eq!(split["shipstation"]["shipments"].as_array().map(Vec::len), Some(2));
    let voided = expect_ok(both(Scenario::track("1003")).await);
    assert_eq!(voided["shipstation"]["shipped"], true);
    let with_return = expect_ok(both(Scenario::track("1008")).await);
    let returns = with_return["shipstation"]["shipments"]
        .as_array()
        .expect("shipments")
        .iter()
        .filter(|s| s["is_return_label"] == true)
        .count();
    assert_eq!(returns, 1);
    let unshipped = expect_ok(both(Scenario::track("1004")).await);
    assert_eq!(unshipped["shipstation"]["shipped"], false);
    assert_eq!(unshipped["shipstation"]["tracking"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn external_ids_and_awkward_characters_are_identical() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    let external = expect_ok(both(Scenario::track("SHOPIFY-123456789")).await);
    assert_eq!(external["shipstation"]["shipped"], true);
    let awkward = expect_ok(both(Scenario::track("A&B/5?#x y")).await);
    assert_eq!(awkward["shipstation"]["order_id"], "A&B/5?#x y");
    expect_ok(both(Scenario::track("#1001")).await);
    expect_ok(both(Scenario::track("se-100201")).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn not_found_unauthorized_and_invalid_input_are_the_same_typed_errors() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    let e = expect_err(both(Scenario::track("9999999")).await, "not-found", 12);
    assert!(e["val"].as_str().is_some_and(|m| m.contains("9999999")), "{e}");
    let e = expect_err(both(Scenario::track("1001").wrong_key()).await, "unauthorized", 11);
    assert!(
        e["val"].as_str().is_some_and(|m| m.contains("rejected the API key")),
        "{e}"
    );
    expect_err(both(Scenario::call("trackOrder", "{oops")).await, "invalid-input", 10);
    let no_such_method = Scenario::call("cancelOrder", r#"{"order_id":"1001"}"#);
    let e = expect_err(both(no_such_method).await, "invalid-input", 10);
    assert!(
        e["val"]
            .as_str()
            .is_some_and(|m| m.contains("trackOrder (track-order)")),
        "{e}"
    );
}

/// The Test button through both hosts (`actionbox test-connection` and
/// `host.mjs test-connection`), each against a fresh simulator, with the
/// simulator's key or `WRONG_KEY`. Returns both runs once their exit codes
/// and upstream requests are shown to be the same and neither printed the key.
async fn both_test_connection(right_key: bool) -> (CliOutput, CliOutput) {
    prerequisites();
    let (rust_sim, node_sim) = (
        Simulator::start().await.expect("simulator"),
        Simulator::start().await.expect("simulator"),
    );
    let key = |sim: &Simulator| {
        if right_key {
            sim.api_key().to_string()
        } else {
            WRONG_KEY.into()
        }
    };
    let (rust_key, node_key) = (key(&rust_sim), key(&node_sim));
    let (component, rust_url, node_url) = (
        component_path().display().to_string(),
        rust_sim.base_url(),
        node_sim.base_url(),
    );
    let rust_args = ["test-connection", &component, "--base-url", &rust_url];
    let node_args = ["test-connection", "--base-url", &node_url];
    let (rust, node) = tokio::join!(
        run_actionbox(&rust_args, Some(&rust_key)),
        run_node_host(&node_args, Some(&node_key)),
    );
    for (host, out, key) in [("actionbox", &rust, &rust_key), ("node", &node, &node_key)] {
        assert!(
            !out.stdout.contains(key.as_str()) && !out.stderr.contains(key.as_str()),
            "test-connection: {host} printed the key"
        );
    }
    let requests = upstream_requests(&rust_sim);
    assert_eq!(
        requests,
        upstream_requests(&node_sim),
        "test-connection: the two hosts made different upstream requests"
    );
    assert_eq!(requests.len(), 1, "one cheap request: {requests:?}");
    assert_eq!(
        rust.code, node.code,
        "test-connection: exit codes differ\nactionbox: {}{}\nnode: {}",
        rust.stdout, rust.stderr, node.stderr
    );
    (rust, node)
}

#[tokio::test(flavor = "multi_thread")]
async fn test_connection_is_identical() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    // Right key: actionbox sums up the result the Node host prints whole.
    let (rust, node) = both_test_connection(true).await;
    assert_eq!(rust.code, 0, "{}\n{}", rust.stdout, rust.stderr);
    let n: Value = serde_json::from_str(&node.stdout)
        .unwrap_or_else(|e| panic!("node host stdout is not JSON ({e}):\n{}\n{}", node.stdout, node.stderr));
    let message = n["message"].as_str().expect("the result carries a message");
    assert!(
        rust.stdout.starts_with(&format!("OK: {message} (")),
        "actionbox: {}\nnode: {n}",
        rust.stdout
    );

    // Wrong key: the same typed error and exit code.
    let (rust, node) = both_test_connection(false).await;
    assert_eq!(rust.code, 11, "{}\n{}", rust.stdout, rust.stderr);
    let n = node_error(&node);
    assert_eq!(n["tag"], "unauthorized", "{n}");
    let expected = rust_error_line(&n).replacen("error: ", "FAILED: ", 1);
    assert_eq!(rust.stdout.trim_end(), expected, "errors differ");
    assert!(node.stdout.is_empty(), "nothing on the Node host's stdout on failure");

    // test-connection is the contract's own export, no method `run` can call.
    for name in ["testConnection", "test-connection"] {
        let e = expect_err(both(Scenario::call(name, "{}")).await, "invalid-input", 10);
        assert!(
            e["val"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("no method `{name}`"))),
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_failures_carry_the_same_records() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    let failing = Scenario::track("1001").fault(FaultRule::on("/v2/shipments").status(503));
    let e = expect_err(both(failing).await, "upstream", 14);
    assert_eq!(e["val"]["status"], 503, "{e}");
    assert!(e["val"]["requestId"].is_string(), "{e}");

    let throttled = Scenario::track("1001").fault(FaultRule::on("/v2/shipments").status(429).retry_after("120"));
    let e = expect_err(both(throttled).await, "rate-limited", 13);
    assert_eq!(e["val"]["retryAfterSecs"], 120, "{e}");

    // A one-second Retry-After is waited out (wasi:clocks in both runtimes).
    let waited = Scenario::track("1001").fault(FaultRule::on("/v2/shipments").status(429).retry_after("1").times(1));
    let started = Instant::now();
    expect_ok(both(waited).await);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_never_answers_is_a_timeout_in_both() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    // wasmtime-wasi-http reports a response that does not start in time as
    // `connection-read-timeout`; preview2-shim uses one Node socket timeout for
    // the whole wait and reports `connection-timeout`. The action turns both
    // into the same `timeout` error, quoting the code.
    let hanging = Scenario::track("1001")
        .fault(FaultRule::on("/v2/").delay(Duration::from_secs(60)))
        .known_difference("connection-read-timeout", "connection-timeout");
    let started = Instant::now();
    expect_err(both(hanging).await, "timeout", 15);
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "both stop near the 10 s deadline, took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_built_against_contract_0_1_0_is_refused_by_both_hosts() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    prerequisites();
    let legacy = actionbox_e2e::legacy_action_path();
    assert!(
        legacy.exists(),
        "{} is missing: run `make test-components`",
        legacy.display()
    );
    let dir = temp_dir("jco-legacy");
    let transpiled = {
        let (legacy, dir) = (legacy.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg(jco_dir().join("node_modules/.bin/jco"))
                .arg("transpile")
                .arg(&legacy)
                .arg("-o")
                .arg(&dir)
                .args(["--name", "legacy", "--instantiation", "sync", "--quiet"])
                .stdin(std::process::Stdio::null())
                .output()
                .expect("jco runs")
        })
        .await
        .expect("join")
    };
    assert!(
        transpiled.status.success(),
        "jco transpile of the 0.1.0 component failed: {}",
        String::from_utf8_lossy(&transpiled.stderr)
    );

    let legacy_path = legacy.display().to_string();
    let (rust_args, legacy_js) = (["describe", legacy_path.as_str()], dir.join("legacy.js"));
    let (rust, node) = tokio::join!(
        run_actionbox(&rust_args, None),
        run_node_host_on(&legacy_js, &["describe"], None),
    );
    let _ = std::fs::remove_dir_all(&dir);
    for (host, out) in [("actionbox", &rust), ("node", &node)] {
        assert_ne!(out.code, 0, "{host} ran a 0.1.0 component:\n{}", out.stdout);
        assert!(out.stdout.is_empty(), "{host} printed a manifest: {}", out.stdout);
        assert!(
            out.stderr.contains("actionbox:action@0.1.0"),
            "{host} does not name the version the component targets:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("rebuild it against actionbox:action@0.2.0"),
            "{host} does not say what to rebuild against:\n{}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn js_host_unit_tests_pass() {
    actionbox_e2e::require!(bindings(), JCO_MADE_BY);
    prerequisites();
    let out = tokio::task::spawn_blocking(|| {
        Command::new("node")
            .args(["--test", "test/host.test.mjs", "test/cli.test.mjs"])
            .current_dir(jco_dir())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("node --test runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("# fail 0") && !stdout.contains("# pass 0"), "{stdout}");
}
