//! The per-call host budget: no action can make `actionbox serve` spend
//! without bound, and the key goes only to the origin the operator named.
//!
//! One `actionbox serve` process (the real binary, so its memory is its own)
//! runs two integrations: `evil`, the hostile component (kind `hostile`,
//! declared by the operator) whose upstream is a capture server, and `shop`,
//! ShipStation on the simulator. Each resource attack must end in its typed
//! error naming the limit while a trackOrder on `shop` succeeds beside it;
//! after all of them the process's peak RSS must stay under
//! [`MAX_PEAK_RSS_BYTES`]. A second capture server, never configured, must
//! never see the key.

use actionbox_e2e::api::http;
use actionbox_e2e::{hostile_two_memories_path, shipstation_integration, write_config, CaptureServer, ServeProcess};
use actionbox_runtime::{ActionEngine, ApiKey, BaseUrl, CredentialHeader, IntegrationSettings};
use serde_json::Value;
use shipstation_sim::Simulator;
use std::net::SocketAddr;
use std::time::Duration;

/// The bound on `serve`'s peak resident memory across every attack. The
/// host holds at most its per-call budget per call (64 MiB of guest memory,
/// 1024 host resources, small body buffers, a few KiB of records); before the
/// budget, single attacks took it past 1.5 GiB.
const MAX_PEAK_RSS_BYTES: u64 = 200 * 1024 * 1024;

/// The bound on one attack's HTTP answer: errors are summaries, not dumps.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// How an attack must end: an error kind and the limits (one of which its
/// message must name), or `None` for a call that succeeds within its budget.
type Expected = Option<(&'static str, &'static [&'static str])>;

/// Each resource attack and how it must end.
const ATTACKS: &[(&str, Expected)] = &[
    ("resource-flood", Some(("limit-exceeded", &["max_host_resources"]))),
    (
        "header-field-flood",
        Some(("limit-exceeded", &["max_host_resources", "max_header"])),
    ),
    ("unsent-bodies", Some(("limit-exceeded", &["max_host_resources"]))),
    ("pollable-flood", Some(("limit-exceeded", &["max_host_resources"]))),
    (
        "refused-request-loop",
        Some(("limit-exceeded", &["max_refused_requests"])),
    ),
    ("log-flood", None),
    ("multi-memory", Some(("memory-limit", &["memory_mib"]))),
    ("memory-bomb", Some(("memory-limit", &["memory_mib"]))),
    ("many-requests", Some(("limit-exceeded", &["max_outbound_requests"]))),
];

/// The config: kind `hostile` declared by the operator, `evil` on it with
/// its base URL at `upstream`, `shop` on the simulator, one action per attack.
fn config(upstream: &CaptureServer, sim: &Simulator) -> String {
    let mut text = format!(
        "[[kind]]\nname = \"hostile\"\nbase_url = \"http://127.0.0.1:9\"\ncredential_header = \"API-Key\"\n\n\
         [[integration]]\nname = \"evil\"\nkind = \"hostile\"\ncomponent = {:?}\napi_key_env = \"SHIPSTATION_API_KEY\"\n\
         base_url = {:?}\ntimeout = 30\n\n{}\n",
        hostile_two_memories_path().display().to_string(),
        upstream.base_url(),
        shipstation_integration(&sim.base_url()),
    );
    for (method, _) in ATTACKS {
        text.push_str(&format!(
            "[[action]]\nname = \"{}\"\nintegration = \"evil\"\nmethod = \"{method}\"\n\n",
            action_name(method)
        ));
    }
    text
}

/// The action invoking `method`.
fn action_name(method: &str) -> String {
    method.replace('-', "_")
}

/// POST an invoke and return the status and JSON answer, checking its size.
async fn invoke(addr: SocketAddr, action: &str, params: &str) -> (u16, Value) {
    let answer = http(
        addr,
        "POST",
        &format!("/v1/actions/{action}/invoke"),
        None,
        Some(&format!("{{\"params\": {params}}}")),
    )
    .await;
    assert!(
        answer.body.len() < MAX_ANSWER_BYTES,
        "`{action}` answered {} bytes (bound {MAX_ANSWER_BYTES})",
        answer.body.len()
    );
    (answer.status, answer.json())
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_attacks_are_stopped_and_serve_stays_small() {
    actionbox_e2e::require!(
        actionbox_e2e::hostile_two_memories_path(),
        actionbox_e2e::TWO_MEMORIES_MADE_BY
    );
    let sim = Simulator::start().await.expect("simulator");
    let upstream = CaptureServer::start().await;
    let elsewhere = CaptureServer::start().await;
    let key = sim.api_key().to_string();
    let config_path = write_config("host-budget", &config(&upstream, &sim));
    let env_key = key.clone();
    let mut serve = tokio::task::spawn_blocking(move || {
        ServeProcess::start(
            &config_path,
            &[("SHIPSTATION_API_KEY", env_key.as_str())],
            Duration::from_secs(60),
        )
    })
    .await
    .expect("join")
    .unwrap_or_else(|run| panic!("serve did not start (exit {}): {}", run.code, run.stderr));
    let addr = serve.addr;
    println!("serve started: peak RSS {} MiB", serve.peak_rss_bytes() / (1024 * 1024));

    let mut problems = Vec::new();
    for (method, expected) in ATTACKS {
        let stderr_before = serve.stderr_bytes();
        let action = action_name(method);
        let ((status, answer), (good_status, good)) = tokio::join!(
            invoke(addr, &action, "{}"),
            invoke(addr, "trackOrder", r#"{"order_id": "1001"}"#)
        );
        if good_status != 200 || good["result"]["shipstation"]["tracking"]["status_code"] != "DE" {
            problems.push(format!(
                "{method}: the trackOrder beside it failed: {good_status} {good}"
            ));
        }
        match expected {
            Some((kind, limits)) => {
                let message = answer["error"]["message"].as_str().unwrap_or_default();
                if status == 200 || answer["error"]["kind"] != *kind || !limits.iter().any(|l| message.contains(l)) {
                    problems.push(format!(
                        "{method}: expected {kind} naming {limits:?}, got {status} {answer}"
                    ));
                }
            }
            None => {
                if status != 200 {
                    problems.push(format!(
                        "{method}: expected success within budget, got {status} {answer}"
                    ));
                }
            }
        }
        let printed = serve.stderr_bytes() - stderr_before;
        if printed > 256 * 1024 {
            problems.push(format!(
                "{method}: serve printed {printed} bytes to stderr for one call"
            ));
        }
        if !serve.is_running() {
            problems.push(format!("{method}: serve died: {}", serve.stderr_head()));
            break;
        }
        println!(
            "{method}: {status} {}; serve peak RSS so far {} MiB",
            answer["error"]["kind"],
            serve.peak_rss_bytes() / (1024 * 1024)
        );
    }

    let peak = serve.peak_rss_bytes();
    println!(
        "serve peak RSS after every attack: {} MiB (bound {} MiB); it printed {} bytes to stderr",
        peak / (1024 * 1024),
        MAX_PEAK_RSS_BYTES / (1024 * 1024),
        serve.stderr_bytes()
    );
    if peak >= MAX_PEAK_RSS_BYTES {
        problems.push(format!(
            "serve's peak RSS reached {} MiB (bound {} MiB)",
            peak / (1024 * 1024),
            MAX_PEAK_RSS_BYTES / (1024 * 1024)
        ));
    }
    if !elsewhere.requests_carrying(&key).is_empty() {
        problems.push("the unconfigured capture server received the key".into());
    }
    if serve.stderr_head().contains(&key) {
        problems.push("serve printed the key".into());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Settings for the hostile component with `upstream` as its base URL: the
/// operator names the header, as a config's `[[kind]]` would.
fn hostile_settings(upstream: &CaptureServer, key: &str) -> IntegrationSettings {
    let mut settings = IntegrationSettings::new(
        BaseUrl::parse(&upstream.base_url()).expect("capture url"),
        Some(ApiKey::new(key).expect("key")),
    );
    settings.credential_header = Some(CredentialHeader::new("API-Key").expect("header"));
    settings.timeout = actionbox_runtime::ActionTimeout::from_secs(30).expect("timeout");
    settings
}

const KEY: &str = "TEST_reflected_key_0123456789abcdef";

/// Also through the Test button: the hostile guest's `test-connection`
/// export is the same attack, and its result is shown to a person.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_upstream_reflects_is_redacted_before_the_guest_sees_it() {
    actionbox_e2e::require!(
        actionbox_e2e::hostile_two_memories_path(),
        actionbox_e2e::TWO_MEMORIES_MADE_BY
    );
    let engine = ActionEngine::new().expect("engine");
    let action = engine.load(&hostile_two_memories_path()).await.expect("hostile loads");
    for call in ["reflected-key", "test-connection"] {
        let upstream = CaptureServer::start().await;
        let settings = hostile_settings(&upstream, KEY);
        let report = match call {
            "test-connection" => action.test_connection(&settings).await,
            method => action.invoke(&settings, method, "{}").await,
        };

        let sent = upstream.requests_carrying(KEY);
        assert_eq!(sent.len(), 1, "{call}: the key went to the configured upstream, once");
        assert_eq!(sent[0].line, "GET /echo HTTP/1.1");
        let result = report.outcome.as_ref().expect("the call succeeds");
        let text = result.to_string();
        assert!(!text.contains(KEY), "{call}: the guest saw the reflected key: {text}");
        assert!(
            result["body"].as_str().unwrap_or_default().contains("[redacted]"),
            "{call}: the body's key is redacted: {text}"
        );
        assert_eq!(
            result["x_echo"], "[redacted]",
            "{call}: the header's key is redacted: {text}"
        );
        let violations = serde_json::to_value(&report.violations).expect("violations serialize");
        assert!(
            violations
                .as_array()
                .expect("a list")
                .iter()
                .any(|v| v["kind"] == "key-reflected"),
            "{call}: a key-reflected violation is reported: {violations}"
        );
        let report_json = serde_json::to_string(&report).expect("report serializes");
        assert!(!report_json.contains(KEY), "{call}: the key is in the report");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_never_reaches_an_origin_the_operator_did_not_name() {
    actionbox_e2e::require!(
        actionbox_e2e::hostile_two_memories_path(),
        actionbox_e2e::TWO_MEMORIES_MADE_BY
    );
    let upstream = CaptureServer::start().await;
    let elsewhere = CaptureServer::start().await;
    let engine = ActionEngine::new().expect("engine");
    let action = engine.load(&hostile_two_memories_path()).await.expect("hostile loads");
    let settings = hostile_settings(&upstream, KEY);
    let other = elsewhere.addr;

    // Straight at the other port.
    let report = action
        .invoke(
            &settings,
            "url-request",
            &format!(r#"{{"url": "http://{other}/collect"}}"#),
        )
        .await;
    match &report.outcome {
        Err(e) => assert_eq!(e.kind(), "denied", "{e}"),
        Ok(v) => panic!("a request to {other} went through: {v}"),
    }
    // Through the base URL, with the other origin after an `@`: the
    // configured host becomes user information.
    let report = action
        .invoke(
            &settings,
            "base-url-request",
            &format!(r#"{{"path": "@{other}/collect"}}"#),
        )
        .await;
    assert!(
        report.outcome.is_err(),
        "an authority with `@` went through: {:?}",
        report.outcome
    );

    assert!(
        elsewhere.requests_carrying(KEY).is_empty(),
        "the unconfigured origin received the key: {:?}",
        elsewhere.requests()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_million_log_lines_keep_a_bounded_log() {
    actionbox_e2e::require!(
        actionbox_e2e::hostile_two_memories_path(),
        actionbox_e2e::TWO_MEMORIES_MADE_BY
    );
    let upstream = CaptureServer::start().await;
    let engine = ActionEngine::new().expect("engine");
    let action = engine.load(&hostile_two_memories_path()).await.expect("hostile loads");
    let report = action
        .invoke(&hostile_settings(&upstream, KEY), "log-flood", "{}")
        .await;
    assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    assert!(
        report.guest_log.len() <= 1100,
        "{} log lines kept",
        report.guest_log.len()
    );
    assert!(
        report.guest_log.len() as u64 + report.guest_log_dropped >= 10_001_000,
        "every line is kept or counted: {} kept, {} dropped",
        report.guest_log.len(),
        report.guest_log_dropped
    );
    let size = serde_json::to_string(&report).expect("report serializes").len();
    assert!(size < 1024 * 1024, "the report is {size} bytes");
}
