//! Record and replay: `actionbox debug … --record FILE` keeps a call's
//! outbound exchanges (never the key), and `actionbox run … --replay FILE`
//! answers the action's requests from that file with the network out of the
//! picture, while the sandbox's policy, body bounds and key scrubber still
//! apply. A recording is untrusted input: hostile ones are refused or
//! bounded with a clear error.

use actionbox_e2e::{
    component_path, hostile_component_path, run_actionbox, shipstation_integration, temp_dir, CaptureServer,
};
use actionbox_runtime::outbound::replay::{RecordedBody, RecordedExchange};
use actionbox_runtime::outbound::{ExchangeCapture, OutboundMode, Recording, Replay};
use actionbox_runtime::{
    ActionComponent, ActionEngine, ApiKey, BaseUrl, CredentialHeader, IntegrationSettings, InvokeError,
};
use serde_json::Value;
use shipstation_sim::Simulator;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn component() -> String {
    component_path().display().to_string()
}

/// Record trackOrder of the split order 1002 against a fresh simulator with
/// `actionbox debug --record`; returns the simulator (still running), the
/// recording's path and the debugger's JSON trace.
async fn record_split_order(tag: &str) -> (Simulator, PathBuf, Value) {
    let sim = Simulator::start().await.expect("simulator");
    let dir = temp_dir(tag);
    let config = dir.join("actionbox.toml");
    std::fs::write(&config, shipstation_integration(&sim.base_url())).expect("config");
    let recording = dir.join("split.json");
    let _ = std::fs::remove_file(&recording);
    let (config, file) = (config.display().to_string(), recording.display().to_string());
    let out = run_actionbox(
        &[
            "debug",
            "--config",
            &config,
            "trackOrder",
            "--params",
            r#"{"order_id":"1002"}"#,
            "--json",
            "--record",
            &file,
        ],
        Some(sim.api_key()),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let trace: Value = serde_json::from_str(&out.stdout).expect("the trace is JSON");
    let exchanges = sim.requests().len();
    assert!(exchanges >= 2, "a split order takes several requests");
    assert!(
        out.stderr
            .contains(&format!("recorded {exchanges} exchange(s) to {file}")),
        "{}",
        out.stderr
    );
    (sim, recording, trace)
}

/// `actionbox run` of the ShipStation trackOrder for `order_id`, replayed
/// from `recording`, with no key and with `extra` flags.
async fn replay_track(order_id: &str, recording: &Path, extra: &[&str]) -> actionbox_e2e::CliOutput {
    let (c, file) = (component(), recording.display().to_string());
    let input = format!(r#"{{"order_id":"{order_id}"}}"#);
    let mut args = vec!["run", &c, "trackOrder", "--input", &input, "--replay", &file];
    args.extend_from_slice(extra);
    run_actionbox(&args, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_split_order_replays_offline_with_the_same_result() {
    let (sim, recording, trace) = record_split_order("replay-same").await;
    let recorded = trace["assistant_payload"]["result"].clone();
    assert_eq!(recorded["shipstation"]["shipments"].as_array().map(Vec::len), Some(2));
    let stopped = sim.base_url();
    drop(sim);

    // No key, and the simulator is gone: whatever answers comes from the file.
    for extra in [&["--base-url", stopped.as_str()][..], &[][..]] {
        let out = replay_track("1002", &recording, extra).await;
        assert_eq!(out.code, 0, "{extra:?}: {}", out.stderr);
        let replayed: Value = serde_json::from_str(&out.stdout).expect("the result is JSON");
        assert_eq!(replayed, recorded, "{extra:?}: the replayed result is the recorded one");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_never_holds_the_key_or_the_origin() {
    let (sim, recording, _) = record_split_order("replay-key").await;
    let text = std::fs::read_to_string(&recording).expect("recording");
    assert!(!text.contains(sim.api_key()), "the key is in the recording:\n{text}");
    assert!(
        !text.contains(&sim.addr().to_string()),
        "the origin is in the recording:\n{text}"
    );
    let file: Value = serde_json::from_str(&text).expect("the recording is JSON");
    assert_eq!(file["actionbox_recording"], 1);
    let exchanges = file["exchanges"].as_array().expect("exchanges");
    assert_eq!(exchanges.len(), sim.requests().len(), "every exchange is kept");
    for exchange in exchanges {
        assert!(
            exchange["path"].as_str().expect("path").starts_with("/v2/"),
            "{exchange}"
        );
        let headers = exchange["request_headers"].as_array().expect("request headers");
        let key_header = headers
            .iter()
            .find(|h| h[0] == "api-key")
            .unwrap_or_else(|| panic!("the credential header is listed: {exchange}"));
        assert_eq!(key_header[1], "[redacted]");
        assert!(!headers.iter().any(|h| h[0] == "host"), "{exchange}");
        assert_eq!(exchange["status"], 200);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&recording).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the recording is the owner's only");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_the_recording_lacks_fails_clearly() {
    let (sim, recording, _) = record_split_order("replay-missing").await;
    drop(sim);
    let file = recording.display().to_string();
    let out = replay_track("1001", &recording, &[]).await;
    assert_eq!(out.code, 16, "denied: {}", out.stderr);
    for expected in [
        format!("not in the recording {file}: GET /v2/"),
        "(it has: GET /v2/".to_string(),
        format!("record it again with actionbox debug … --record {file}"),
    ] {
        assert!(
            out.stderr.contains(&expected),
            "expected `{expected}` in:\n{}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recording_replaces_a_previous_recording_but_nothing_else() {
    let sim = Simulator::start().await.expect("simulator");
    let dir = temp_dir("replay-overwrite");
    let config = dir.join("actionbox.toml");
    let config_text = shipstation_integration(&sim.base_url());
    std::fs::write(&config, &config_text).expect("config");
    let recording = dir.join("again.json");
    let _ = std::fs::remove_file(&recording);
    let config = config.display().to_string();
    let record_to = |target: String| {
        let config = config.clone();
        let key = sim.api_key().to_string();
        async move {
            let args = [
                "debug",
                "--config",
                &config,
                "trackOrder",
                "--params",
                r#"{"order_id":"1001"}"#,
                "--record",
                &target,
            ];
            run_actionbox(&args, Some(&key)).await
        }
    };
    let over_config = record_to(config.clone()).await;
    assert_eq!(over_config.code, 1, "{}", over_config.stderr);
    assert!(
        over_config.stderr.contains("is not an actionbox recording"),
        "{}",
        over_config.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        config_text,
        "the config is untouched"
    );
    for round in ["first", "second"] {
        let out = record_to(recording.display().to_string()).await;
        assert_eq!(out.code, 0, "{round}: {}", out.stderr);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file is left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_recordings_are_refused_with_a_clear_error() {
    let dir = temp_dir("replay-hostile-files");
    let one = r#"{"method":"GET","path":"/v2/shipments","status":200,"response_body":"{}"}"#;
    let many = format!(
        "{{\"actionbox_recording\": 1, \"exchanges\": [{}]}}",
        vec![one; 100_000].join(",")
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("invalid.json", "{\"actionbox_recording\": 1, \"exchanges\": [".into(), "EOF while parsing"),
        ("wrong-version.json", "{\"actionbox_recording\": 7, \"exchanges\": []}".into(), "version 7"),
        ("not-a-recording.json", "{\"tools\": []}".into(), "not an actionbox recording"),
        ("many.json", many, "more than 1024 exchanges"),
        (
            "origin.json",
            r#"{"actionbox_recording": 1, "exchanges": [{"method":"GET","path":"https://evil.example/x","status":200}]}"#
                .into(),
            "exchange 1 (GET https://evil.example/x): the path must start with `/`",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        let out = replay_track("1002", &path, &[]).await;
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("--replay") && out.stderr.contains(expected),
            "{name}: expected `{expected}` in:\n{}",
            out.stderr
        );
        assert_eq!(
            out.stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{name}: one error line"
        );
    }
    // Over the size cap: refused from its length, never read.
    let huge = dir.join("huge.json");
    let file = std::fs::File::create(&huge).expect("create");
    file.set_len(65 * 1024 * 1024).expect("sparse file");
    let out = replay_track("1002", &huge, &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("over the 67108864 a recording may be"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_file(&huge);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_recorded_body_is_cut_at_the_calls_limit() {
    let (sim, recording, _) = record_split_order("replay-huge-body").await;
    drop(sim);
    let mut file = Recording::load(&recording).expect("the recording reads back");
    file.exchanges[0].response_body = RecordedBody::complete("x".repeat(9 * 1024 * 1024));
    let huge = recording.with_file_name("huge-body.json");
    std::fs::write(&huge, file.to_json()).expect("write");
    let out = replay_track("1002", &huge, &[]).await;
    assert_eq!(out.code, 21, "limit-exceeded: {}", out.stderr);
    assert!(
        out.stderr.contains("response body passed 8388608 bytes"),
        "{}",
        out.stderr
    );
}

// The hostile component, through the library: the policy still decides.

const KEY: &str = "TEST_replayed_key_0123456789abcdef";

async fn hostile() -> (ActionEngine, ActionComponent) {
    let engine = ActionEngine::new().expect("engine");
    let action = engine.load(&hostile_component_path()).await.expect("hostile loads");
    (engine, action)
}

/// Settings for the hostile kind at `base_url` with [`KEY`], in `mode`.
fn hostile_settings(base_url: &str, mode: OutboundMode) -> IntegrationSettings {
    let mut settings = IntegrationSettings::new(
        BaseUrl::parse(base_url).expect("base url"),
        Some(ApiKey::new(KEY).expect("key")),
    );
    settings.credential_header = Some(CredentialHeader::new("API-Key").expect("header"));
    settings.outbound_mode = mode;
    settings
}

fn answer(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> RecordedExchange {
    RecordedExchange {
        method: method.into(),
        path: path.into(),
        request_headers: vec![],
        request_body: RecordedBody::default(),
        status: 200,
        response_headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        response_body: RecordedBody::complete(body.to_string()),
    }
}

/// A replay of `exchanges` (port 9 of loopback as the base URL: nothing
/// listens there, so any connection attempt would fail the call).
fn replaying(exchanges: Vec<RecordedExchange>) -> OutboundMode {
    OutboundMode::Replay(Arc::new(Replay::new(Recording { exchanges }, "hostile.json")))
}

fn failure(outcome: &Result<Value, InvokeError>) -> (&'static str, String) {
    match outcome {
        Ok(v) => panic!("the attack succeeded: {v}"),
        Err(e) => (e.kind(), e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_keeps_the_policy_the_body_bounds_and_the_scrubber() {
    let (_engine, action) = hostile().await;

    // Another origin is refused by the policy even when the recording has an answer.
    let settings = hostile_settings("http://127.0.0.1:9", replaying(vec![answer("GET", "/", &[], "leak")]));
    let report = action.invoke(&settings, "disallowed-host", "{}").await;
    let (kind, message) = failure(&report.outcome);
    assert_eq!(kind, "denied", "{message}");
    assert!(message.contains("not the integration's base URL origin"), "{message}");

    // The request body is bounded as live.
    let settings = hostile_settings(
        "http://127.0.0.1:9",
        replaying(vec![answer("POST", "/upload", &[], "{}")]),
    );
    let report = action.invoke(&settings, "huge-request-body", "{}").await;
    let (kind, message) = failure(&report.outcome);
    assert_eq!(kind, "limit-exceeded", "{message}");
    assert!(message.contains("request body passed 1048576 bytes"), "{message}");

    // A recording that carries the replayer's key hands the action `[redacted]`.
    let echo = answer("GET", "/echo", &[("x-echo", KEY)], &format!("{{\"got\": \"{KEY}\"}}"));
    let settings = hostile_settings("http://127.0.0.1:9", replaying(vec![echo]));
    let report = action.test_connection(&settings).await;
    let result = report.outcome.as_ref().expect("the replayed echo answers");
    assert!(!result.to_string().contains(KEY), "the action saw the key: {result}");
    assert_eq!(result["x_echo"], "[redacted]", "{result}");
    assert!(
        result["body"].as_str().unwrap_or_default().contains("[redacted]"),
        "{result}"
    );
    let violations = serde_json::to_value(&report.violations).expect("violations");
    assert!(
        violations
            .as_array()
            .expect("list")
            .iter()
            .any(|v| v["kind"] == "key-reflected"),
        "{violations}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reflected_key_is_recorded_redacted_and_replays_the_same() {
    let (_engine, action) = hostile().await;
    let upstream = CaptureServer::start().await;
    let capture = Arc::new(ExchangeCapture::new());
    let settings = hostile_settings(&upstream.base_url(), OutboundMode::Record(capture.clone()));
    let live = action.test_connection(&settings).await;
    let live = live.outcome.expect("the live echo answers");
    assert_eq!(upstream.requests_carrying(KEY).len(), 1, "the key went upstream once");

    let path = temp_dir("replay-reflected").join("echo.json");
    let _ = std::fs::remove_file(&path);
    assert_eq!(capture.save(&path).expect("saved"), 1);
    let text = std::fs::read_to_string(&path).expect("recording");
    assert!(!text.contains(KEY), "the key is in the recording:\n{text}");
    assert!(text.contains("[redacted]"), "{text}");

    let settings = hostile_settings(
        "http://127.0.0.1:9",
        OutboundMode::Replay(Arc::new(Replay::load(&path).expect("replay"))),
    );
    let replayed = action.test_connection(&settings).await;
    assert_eq!(
        replayed.outcome.expect("replayed"),
        live,
        "the replay answers as the upstream did"
    );
}
