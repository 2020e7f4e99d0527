//! The `actionbox` binary as a person at a terminal uses it. Every run is at
//! `RUST_LOG=trace`, and the key must appear in none of its output.

use actionbox_e2e::{component_path, run_actionbox};
use shipstation_sim::Simulator;

fn component() -> String {
    component_path().display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_prints_the_result_json() {
    let sim = Simulator::start().await.expect("simulator");
    let (c, url) = (component(), sim.base_url());
    let args = [
        "run",
        &c,
        "trackOrder",
        "--input",
        r#"{"order_id":"1001"}"#,
        "--base-url",
        &url,
    ];
    let out = run_actionbox(&args, Some(sim.api_key())).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["shipstation"]["tracking"]["status_description"], "Delivered");
    assert!(
        !out.stdout.contains(sim.api_key()) && !out.stderr.contains(sim.api_key()),
        "key leaked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_key_is_unauthorized_and_never_printed() {
    let sim = Simulator::start().await.expect("simulator");
    let key = "TEST_wrong_key_that_must_not_leak";
    let (c, url) = (component(), sim.base_url());
    let out = run_actionbox(
        &[
            "run",
            &c,
            "trackOrder",
            "--input",
            r#"{"order_id":"1001"}"#,
            "--base-url",
            &url,
        ],
        Some(key),
    )
    .await;
    assert_eq!(out.code, 11, "{}", out.stderr);
    assert!(
        out.stderr.contains("unauthorized: ShipStation rejected the API key"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains(key) && !out.stderr.contains(key),
        "key leaked:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    let error_lines = out.stderr.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(error_lines, 1, "one clear error line: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_differ_per_error_kind() {
    let sim = Simulator::start().await.expect("simulator");
    let (c, url, key) = (component(), sim.base_url(), Some(sim.api_key()));
    let not_found = run_actionbox(
        &[
            "run",
            &c,
            "trackOrder",
            "--input",
            r#"{"order_id":"nope"}"#,
            "--base-url",
            &url,
        ],
        key,
    )
    .await;
    assert_eq!(not_found.code, 12, "{}", not_found.stderr);
    let invalid = run_actionbox(&["run", &c, "trackOrder", "--input", "{oops", "--base-url", &url], key).await;
    assert_eq!(invalid.code, 10, "{}", invalid.stderr);
    assert!(invalid.stderr.contains("invalid-input"));
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_outside_10_to_180_is_refused() {
    let c = component();
    for t in ["5", "200"] {
        let args = [
            "run",
            &c,
            "trackOrder",
            "--input",
            r#"{"order_id":"1"}"#,
            "--base-url",
            "http://127.0.0.1:9",
            "--timeout",
            t,
        ];
        let out = run_actionbox(&args, Some("TEST_x")).await;
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("between 10 and 180"), "{}", out.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_key_is_explained() {
    let out = run_actionbox(
        &["run", &component(), "trackOrder", "--input", r#"{"order_id":"1"}"#],
        None,
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("SHIPSTATION_API_KEY") && out.stderr.contains("--api-key-file"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_file_is_read_and_test_connection_reports_ok() {
    let sim = Simulator::start().await.expect("simulator");
    let key_file = actionbox_e2e::temp_dir("key").join("key");
    std::fs::write(&key_file, format!("{}\n", sim.api_key())).expect("write key");
    let (c, url, file) = (component(), sim.base_url(), key_file.display().to_string());
    // A key file others can read is refused, as ssh refuses such a private key.
    let refused = run_actionbox(
        &["test-connection", &c, "--base-url", &url, "--api-key-file", &file],
        None,
    )
    .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("chmod 600"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(sim.api_key()), "{}", refused.stderr);
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let out = run_actionbox(
        &["test-connection", &c, "--base-url", &url, "--api-key-file", &file],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("OK:"), "{}", out.stdout);

    let out = run_actionbox(&["test-connection", &c, "--base-url", &url], Some("TEST_bad")).await;
    assert_eq!(out.code, 11);
    assert!(out.stdout.starts_with("FAILED: unauthorized"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_prints_the_manifest() {
    let out = run_actionbox(&["describe", &component()], None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(m["integration"], "shipstation");
    assert_eq!(m["methods"][0]["display_name"], "trackOrder");
    assert_eq!(m["methods"][0]["params"][0]["name"], "order_id");
    assert_eq!(m["credential"]["header"], "API-Key");
    assert_eq!(m["default_base_url"], "https://api.shipstation.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_component_is_explained() {
    let out = run_actionbox(&["describe", "/nonexistent/x.wasm"], None).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("does not exist") && out.stderr.contains("make build"),
        "{}",
        out.stderr
    );
}
