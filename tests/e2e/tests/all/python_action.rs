//! A second-language action: `tests/python-action` (Python, built with
//! componentize-py) implements the same `smart-action` world as the Rust
//! trackOrder action and must pass the same contract in the same host —
//! describe, invoke, typed errors, the budget, sandbox denial, the CLI's exit
//! codes and `actionbox.toml` integrations with their memory limit.
//!
//! Compiling the ~19 MB component takes cranelift tens of seconds on two
//! cores, so the test process compiles it once (into the precompiled-artifact
//! cache) and every test shares that load; the CLI runs then load the cached
//! artifact.

use actionbox_e2e::{capture_traces, captured_traces, run_actionbox, settings_for, workspace_root, write_config};
use actionbox_runtime::artifact_cache::Provenance;
use actionbox_runtime::manifest::{Execution, JsonType, Trigger};
use actionbox_runtime::{ActionComponent, ActionEngine, ApiKey, InvocationReport, InvokeError};
use serde_json::{json, Value};
use shipstation_sim::{FaultRule, Fixtures, Simulator};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// What builds the Python component, for `require!`.
const PYTHON_ACTION_MADE_BY: &str = "componentize-py: `make python-action`";

/// The Python component: `$ACTIONBOX_PYTHON_COMPONENT`, or the one `make
/// python-action` writes (each test first skips, or under `make test` fails,
/// when it is missing). Panics with instructions when it is older than its sources.
fn python_component_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ACTIONBOX_PYTHON_COMPONENT") {
        return PathBuf::from(p);
    }
    let root = workspace_root();
    let wasm = root.join("target/python-action/order_status.wasm");
    let Ok(built) = std::fs::metadata(&wasm).and_then(|m| m.modified()) else {
        return wasm;
    };
    let sources = root.join("tests/python-action");
    for entry in std::fs::read_dir(&sources).expect("tests/python-action") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "py") {
            let changed = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            assert!(
                changed <= built,
                "{} is newer than {}: run `make python-action` to rebuild it",
                path.display(),
                wasm.display()
            );
        }
    }
    wasm
}

/// Where the shared load caches the compiled component: the host's default
/// cache (the one the CLI uses), or a directory under `target/` when the
/// environment turned that off.
fn artifact_dir() -> PathBuf {
    actionbox_runtime::artifact_cache::default_dir()
        .unwrap_or_else(|| workspace_root().join("target/tmp/actionbox-cache"))
}

struct SharedLoad {
    _engine: ActionEngine,
    action: ActionComponent,
}

static PYTHON_ACTION: OnceLock<SharedLoad> = OnceLock::new();

/// The Python component, loaded once per test process (on its own thread and
/// runtime, so the first test to ask is the one that waits).
fn python_action() -> &'static ActionComponent {
    let shared = tokio::task::block_in_place(|| {
        PYTHON_ACTION.get_or_init(|| {
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    let path = python_component_path();
                    let engine = ActionEngine::new()
                        .expect("engine")
                        .with_cache_dir(Some(artifact_dir()));
                    let started = Instant::now();
                    let action = engine.load(&path).await.expect("the Python component loads");
                    eprintln!(
                        "python action: {} bytes, {:?} in {} ms",
                        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                        action.provenance(),
                        started.elapsed().as_millis()
                    );
                    SharedLoad {
                        _engine: engine,
                        action,
                    }
                })
            })
            .join()
            .expect("loader thread")
        })
    });
    &shared.action
}

/// Settings for `sim`: `shipstation-py` is not a built-in kind, so the
/// operator (the test) names the header the key goes in.
fn py_settings(sim: &Simulator) -> actionbox_runtime::IntegrationSettings {
    let mut settings = settings_for(sim, 10);
    settings.credential_header = Some(actionbox_runtime::CredentialHeader::new("API-Key").expect("header"));
    settings
}

/// Run `method` with `input` against `sim` (key accepted, 10 s timeout) and
/// check the key leaked into no trace or report.
async fn invoke(sim: &Simulator, method: &str, input: &str) -> InvocationReport {
    capture_traces();
    let action = python_action();
    let report = action.invoke(&py_settings(sim), method, input).await;
    assert!(!captured_traces().contains(sim.api_key()), "key in traces");
    let text = serde_json::to_string(&report).expect("report serializes");
    assert!(!text.contains(sim.api_key()), "key in report");
    report
}

fn expect_error(report: &InvocationReport) -> &InvokeError {
    match &report.outcome {
        Err(e) => e,
        Ok(v) => panic!("expected an error, got {v}"),
    }
}

/// Shipment-list requests that reached the simulator.
fn shipment_lists(sim: &Simulator) -> usize {
    sim.requests().iter().filter(|r| r.raw_path == "/v2/shipments").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_action_describes_itself_through_the_same_world() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let m = python_action().manifest();
    assert_eq!(m.integration, "shipstation-py");
    let methods: Vec<(&str, &str)> = m
        .methods
        .iter()
        .map(|m| (m.name.as_str(), m.display_name.as_str()))
        .collect();
    // test-connection is its own export in 0.2.0, not a method.
    assert_eq!(methods, [("order-status", "orderStatus")]);
    let order_status = m.method("orderStatus").expect("orderStatus");
    let param = &order_status.params[0];
    assert_eq!(
        (param.name.as_str(), param.json_type, param.required),
        ("order_number", JsonType::String, true)
    );
    assert_eq!(param.example.as_deref(), Some(r#""1001""#));
    // Its default action comes from the component, not from the host.
    let [default] = m.default_actions.as_slice() else {
        panic!("one default action expected: {:?}", m.default_actions);
    };
    assert_eq!(
        (default.name.as_str(), default.method.as_str()),
        ("orderStatus", "orderStatus")
    );
    assert_eq!(
        (default.execution, default.trigger),
        (Execution::DuringInteraction, Trigger::Inbound)
    );
    assert!(
        default
            .response_instructions
            .as_deref()
            .is_some_and(|i| i.contains("shipment status")),
        "{:?}",
        default.response_instructions
    );
    assert_eq!(m.outbound_hosts, ["api.shipstation.com", "{base-url}"]);
    assert_eq!(m.credential.as_ref().map(|c| c.header.as_str()), Some("API-Key"));
    m.validate().expect("the manifest passes the host's checks");
}

#[tokio::test(flavor = "multi_thread")]
async fn order_status_keeps_exact_matches_newest_first() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let sim = Simulator::start().await.expect("simulator");
    // 1002 was shipped in two parts; the simulator also returns 10020… by prefix.
    let report = invoke(&sim, "orderStatus", r##"{"order_number":"#1002"}"##).await;
    let out = report.outcome.expect("1002 is found");
    assert_eq!(out["order_number"], "1002");
    assert_eq!(out["shipment_count"], 2);
    let ids: Vec<&str> = out["shipments"]
        .as_array()
        .expect("shipments")
        .iter()
        .map(|s| s["shipment_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["se-100202", "se-100201"], "newest first");
    assert_eq!(out["status"], "label_purchased");
    // Every field is present, null when ShipStation did not say.
    assert_eq!(out["shipments"][0]["ship_date"], Value::Null);

    // 1001 must not pick up 10010, which the prefix match also returns.
    let report = invoke(&sim, "order-status", r#"{"order_number":"1001"}"#).await;
    let out = report.outcome.expect("1001 is found");
    assert_eq!(out["shipment_count"], 1);
    assert_eq!(out["shipments"][0]["service_code"], "ups_ground");
    assert!(report.peak_memory_bytes > 0, "the limiter saw the memory");
    assert!(
        report.guest_log.iter().any(|l| l.message.contains("-> 200")),
        "the action's log lines reach the host: {:?}",
        report.guest_log
    );
    eprintln!("python action peak memory: {} KiB", report.peak_memory_bytes / 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn order_numbers_are_percent_encoded() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let sim = Simulator::start().await.expect("simulator");
    let report = invoke(&sim, "orderStatus", r#"{"order_number":"A&B/5?#x y"}"#).await;
    let out = report.outcome.expect("found");
    assert_eq!(out["shipments"][0]["shipment_id"], "se-101001");
    let asked = sim.requests();
    assert_eq!(asked[0].param("shipment_number"), Some("A&B/5?#x y"));
    assert!(asked[0].authorized, "the host added the key");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_invalid_input_before_any_request() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let sim = Simulator::start().await.expect("simulator");
    // Nested past what the host's 1 MiB wasm stack allows CPython's parser.
    let deep = "[".repeat(100_000);
    for input in [
        "not json",
        "[1001]",
        "{}",
        r#"{"order_number":1001}"#,
        r#"{"order_number":"  # "}"#,
        r#"{"order_number":"10\n01"}"#,
        deep.as_str(),
    ] {
        let report = invoke(&sim, "orderStatus", input).await;
        match expect_error(&report) {
            InvokeError::InvalidInput { message } => assert!(message.contains("order_number"), "{message}"),
            other => panic!(
                "{}: expected invalid-input, got {other:?}",
                &input[..input.len().min(40)]
            ),
        }
    }
    assert_eq!(sim.requests().len(), 0, "nothing was sent for bad input");
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_key_is_unauthorized() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let sim = Simulator::start().await.expect("simulator");
    let mut settings = py_settings(&sim);
    settings.api_key = Some(ApiKey::new("TEST_wrong_key_for_python").expect("key"));
    let report = python_action()
        .invoke(&settings, "orderStatus", r#"{"order_number":"1001"}"#)
        .await;
    match expect_error(&report) {
        InvokeError::Unauthorized { message } => assert!(message.contains("401"), "{message}"),
        other => panic!("expected unauthorized, got {other:?}"),
    }

    sim.add_fault(FaultRule::on("/v2/shipments").status(403));
    let report = invoke(&sim, "orderStatus", r#"{"order_number":"1001"}"#).await;
    assert!(
        matches!(expect_error(&report), InvokeError::Unauthorized { message } if message.contains("403")),
        "{:?}",
        report.outcome
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn test_connection_export_accepts_the_right_key_and_reports_a_wrong_one_as_unauthorized() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let sim = Simulator::start().await.expect("simulator");
    capture_traces();
    let report = python_action().test_connection(&py_settings(&sim)).await;
    assert_eq!(report.method, "test-connection");
    let out = report.outcome.as_ref().expect("the simulator accepts its own key");
    assert_eq!(out["ok"], true, "{out}");
    assert!(
        out["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ShipStation accepted the API key")),
        "{out}"
    );
    let asked = sim.requests();
    assert_eq!(asked.len(), 1, "one cheap request");
    assert!(asked[0].authorized, "the host added the key");
    assert!(!captured_traces().contains(sim.api_key()), "key in traces");
    let text = serde_json::to_string(&report).expect("report serializes");
    assert!(!text.contains(sim.api_key()), "key in report");

    let mut settings = py_settings(&sim);
    settings.api_key = Some(ApiKey::new("TEST_wrong_key_for_python_test").expect("key"));
    let report = python_action().test_connection(&settings).await;
    match expect_error(&report) {
        InvokeError::Unauthorized { message } => assert!(message.contains("401"), "{message}"),
        other => panic!("expected unauthorized, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_order_is_not_found() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let sim = Simulator::start().await.expect("simulator");
    // `100` matches 1001…1009 by prefix but is no order itself.
    let report = invoke(&sim, "orderStatus", r#"{"order_number":"100"}"#).await;
    match expect_error(&report) {
        InvokeError::NotFound { message } => assert!(message.contains("100"), "{message}"),
        other => panic!("expected not-found, got {other:?}"),
    }
    sim.add_fault(FaultRule::on("/v2/shipments").status(404));
    let report = invoke(&sim, "orderStatus", r#"{"order_number":"1001"}"#).await;
    assert!(
        matches!(expect_error(&report), InvokeError::NotFound { .. }),
        "{:?}",
        report.outcome
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_rate_limited_with_retry_after() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(FaultRule::on("/v2/shipments").status(429).retry_after("30"));
    let report = invoke(&sim, "orderStatus", r#"{"order_number":"1001"}"#).await;
    match expect_error(&report) {
        InvokeError::RateLimited {
            retry_after_secs,
            message,
        } => {
            assert_eq!(*retry_after_secs, Some(30));
            assert!(message.contains("429"), "{message}");
        }
        other => panic!("expected rate-limited, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_and_malformed_bodies_are_upstream() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(FaultRule::on("/v2/shipments").status(503).times(1));
    let report = invoke(&sim, "orderStatus", r#"{"order_number":"1001"}"#).await;
    match expect_error(&report) {
        InvokeError::Upstream { status, request_id, .. } => {
            assert_eq!(*status, Some(503));
            assert!(
                request_id.as_deref().is_some_and(|id| id.starts_with("sim-")),
                "ShipStation's request id is kept: {request_id:?}"
            );
        }
        other => panic!("expected upstream, got {other:?}"),
    }
    assert_eq!(shipment_lists(&sim), 1, "this action does not retry");

    sim.add_fault(
        FaultRule::on("/v2/shipments")
            .status(200)
            .body("{\"shipments\": [")
            .times(1),
    );
    let report = invoke(&sim, "orderStatus", r#"{"order_number":"1001"}"#).await;
    assert!(
        matches!(expect_error(&report), InvokeError::Upstream { status: Some(200), message, .. } if message.contains("not a JSON object")),
        "{:?}",
        report.outcome
    );

    // Deep nesting is malformed too, not a stack overflow (trap).
    let deep = "[".repeat(100_000);
    sim.add_fault(FaultRule::on("/v2/shipments").status(200).body(&deep).times(1));
    let report = invoke(&sim, "orderStatus", r#"{"order_number":"1001"}"#).await;
    assert!(
        matches!(expect_error(&report), InvokeError::Upstream { status: Some(200), .. }),
        "{:?}",
        report.outcome
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_upstream_ends_in_the_actions_own_timeout_within_its_budget() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(FaultRule::on("/v2/shipments").delay(Duration::from_secs(60)));
    python_action(); // not the compile: the budget is what is measured
    let started = Instant::now();
    let report = invoke(&sim, "orderStatus", r#"{"order_number":"1001"}"#).await;
    let took = started.elapsed();
    match expect_error(&report) {
        // The action's words, not the host's "did not finish within the
        // integration's timeout": it gave up by itself, inside its budget.
        InvokeError::Timeout { message } => assert!(message.contains("within the call's budget"), "{message}"),
        other => panic!("expected timeout, got {other:?}"),
    }
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(10),
        "gave up at {took:?}, expected just before the 10 s deadline"
    );
}

/// 100 newer shipments whose numbers start with `5000`, then order `5000`
/// itself: the exact match is on the second page of 100.
fn fixtures_with_a_second_page() -> Fixtures {
    let mut shipments: Vec<Value> = (0..100)
        .map(|i| {
            json!({
                "shipment_id": format!("se-5000{i:03}"),
                "shipment_number": format!("5000-{i:03}"),
                "shipment_status": "label_purchased",
                "created_at": format!("2025-06-01T00:{:02}:{:02}.000Z", i / 60, i % 60),
            })
        })
        .collect();
    shipments.push(json!({
        "shipment_id": "se-5000",
        "shipment_number": "5000",
        "shipment_status": "pending",
        "created_at": "2025-05-01T00:00:00.000Z",
    }));
    Fixtures {
        shipments,
        ..Fixtures::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn next_link_to_another_host_is_denied_by_the_sandbox() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    let sim = Simulator::start_with(fixtures_with_a_second_page(), shipstation_sim::DEFAULT_API_KEY, 0)
        .await
        .expect("simulator");
    // Page 1 says `next: https://api.shipstation.com/v2/shipments?page=2…`. The
    // manifest declares that host, but this integration's base URL is the
    // simulator, so the host must refuse it — and send no key anywhere.
    let report = invoke(&sim, "orderStatus", r#"{"order_number":"5000"}"#).await;
    match expect_error(&report) {
        InvokeError::Denied { message } => {
            assert!(
                message.contains("api.shipstation.com"),
                "names the refused host: {message}"
            )
        }
        other => panic!("expected denied, got {other:?}"),
    }
    assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    let urls: Vec<&str> = report.outbound.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(urls.len(), 2, "{urls:?}");
    assert!(
        urls[1].starts_with("https://api.shipstation.com/v2/shipments?page=2"),
        "{urls:?}"
    );
    assert_eq!(report.outbound[1].status, None, "the refused request was never sent");
    assert_eq!(sim.requests().len(), 1, "only page 1 reached the simulator");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_component_loads_from_the_precompiled_cache() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    python_action();
    let engine = ActionEngine::new()
        .expect("engine")
        .with_cache_dir(Some(artifact_dir()));
    let started = Instant::now();
    let again = engine.load(&python_component_path()).await.expect("loads");
    let took = started.elapsed();
    eprintln!("python action from the cache: {} ms", took.as_millis());
    assert_eq!(again.provenance(), Provenance::Cached);
    assert_eq!(again.manifest(), python_action().manifest());
    assert!(took < Duration::from_secs(5), "a cached load took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_runs_the_python_action_with_the_contracts_exit_codes() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    python_action(); // compiled into the cache the CLI reads
    let sim = Simulator::start().await.expect("simulator");
    let (c, url) = (python_component_path().display().to_string(), sim.base_url());
    // `shipstation-py` is not a built-in kind: the operator says where the
    // key goes, in which header, and where to read it.
    let integration = [
        "--base-url".to_string(),
        url.clone(),
        "--credential-header".to_string(),
        "API-Key".to_string(),
        "--api-key-env".to_string(),
        "SHIPSTATION_API_KEY".to_string(),
    ];
    let run = |method: &'static str, input: &'static str, key: &'static str| {
        let mut args: Vec<String> = ["run", &c, method, "--input", input]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(integration.iter().cloned());
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_actionbox(&args, Some(key)).await
        }
    };
    let key = shipstation_sim::DEFAULT_API_KEY;
    let ok = run("orderStatus", r#"{"order_number":"1001"}"#, key).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let v: Value = serde_json::from_str(&ok.stdout).expect("stdout is JSON");
    assert_eq!(v["shipments"][0]["shipment_id"], "se-918273645");
    for (method, input, k, code, kind) in [
        ("orderStatus", r#"{"order_number":"9999"}"#, key, 12, "not-found"),
        ("orderStatus", r#"{"order":"1001"}"#, key, 10, "invalid-input"),
        (
            "orderStatus",
            r#"{"order_number":"1001"}"#,
            "TEST_wrong_python_cli_key",
            11,
            "unauthorized",
        ),
        // test-connection is the contract's own export, not a method `run` can call.
        ("testConnection", "{}", key, 10, "invalid-input"),
    ] {
        let out = run(method, input, k).await;
        assert_eq!(out.code, code, "{method} {input}: {}", out.stderr);
        assert!(out.stderr.contains(&format!("error: {kind}: ")), "{}", out.stderr);
        assert!(!out.stdout.contains(k) && !out.stderr.contains(k), "key leaked");
    }
    let mut args = vec!["test-connection", c.as_str()];
    args.extend(integration.iter().map(String::as_str));
    let test = run_actionbox(&args, Some(key)).await;
    assert_eq!(test.code, 0, "{}", test.stderr);
    assert!(
        test.stdout.starts_with("OK: ShipStation accepted the API key"),
        "{}",
        test.stdout
    );
    let wrong = "TEST_wrong_python_cli_test_key";
    let test = run_actionbox(&args, Some(wrong)).await;
    assert_eq!(test.code, 11, "{}\n{}", test.stdout, test.stderr);
    assert!(
        test.stdout.starts_with("FAILED: unauthorized: ") && test.stdout.contains("401"),
        "{}",
        test.stdout
    );
    assert!(
        !test.stdout.contains(wrong) && !test.stderr.contains(wrong),
        "key leaked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_integration_applies_its_memory_limit_to_the_python_action() {
    actionbox_e2e::require!(python_component_path(), PYTHON_ACTION_MADE_BY);
    python_action(); // compiled into the cache the CLI reads
    let sim = Simulator::start().await.expect("simulator");
    let component = python_component_path().display().to_string();
    let config = |tag: &str, memory_mib: u32| {
        let text = format!(
            "[[kind]]\nname = \"shipstation-py\"\nbase_url = \"https://api.shipstation.com\"\n\
             credential_header = \"API-Key\"\n\n\
             [[integration]]\nname = \"shop-py\"\nkind = \"shipstation-py\"\ncomponent = {component:?}\n\
             api_key_env = \"SHIPSTATION_API_KEY\"\nbase_url = {:?}\n\n[integration.limits]\nmemory_mib = {memory_mib}\n\n\
             [[action]]\nname = \"order_status\"\nintegration = \"shop-py\"\nmethod = \"orderStatus\"\n",
            sim.base_url()
        );
        write_config(tag, &text).display().to_string()
    };
    let key = Some(sim.api_key());
    let params = r#"{"order_number":"1004"}"#;

    // Python's interpreter image needs about 13 MiB: 32 MiB is plenty ...
    let roomy = config("python-mem-32", 32);
    let tools = run_actionbox(&["tools", "--config", &roomy], key).await;
    assert_eq!(tools.code, 0, "{}", tools.stderr);
    let tools: Value = serde_json::from_str(&tools.stdout).expect("tools JSON");
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("a list of tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    // The defaults come from the component: its own orderStatus, and no
    // ShipStation trackOrder for a shipstation-py kind.
    assert_eq!(
        names,
        ["order_status", "orderStatus"],
        "the configured action plus the component's own default, and no trackOrder"
    );
    let out = run_actionbox(&["invoke", "--config", &roomy, "order_status", "--params", params], key).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["result"]["status"], "pending");

    // ... and at 4 MiB it cannot even start: the cap binds the Python action too.
    let tight = config("python-mem-4", 4);
    let out = run_actionbox(&["invoke", "--config", &tight, "order_status", "--params", params], key).await;
    assert_eq!(out.code, 18, "expected memory-limit:\n{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("limits.memory_mib"), "{}", out.stdout);
}
