//! The `actionbox` binary as a person at a terminal uses it.

use actionbox_e2e::{actionbox_bin, component_path};
use shipstation_sim::Simulator;
use std::process::{Command, Output};

fn actionbox(args: &[&str], key: Option<&str>) -> Output {
    let mut cmd = Command::new(actionbox_bin());
    cmd.args(args)
        .env_remove("SHIPSTATION_API_KEY")
        .env("RUST_LOG", "trace");
    if let Some(k) = key {
        cmd.env("SHIPSTATION_API_KEY", k);
    }
    cmd.output().expect("actionbox runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn component() -> String {
    component_path().display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_prints_the_result_json() {
    let sim = Simulator::start().await.expect("simulator");
    let args = strings(&[
        "run",
        &component(),
        "trackOrder",
        "--input",
        r#"{"order_id":"1001"}"#,
        "--base-url",
        &sim.base_url(),
    ]);
    let out = run_blocking(args, Some(sim.api_key().to_string())).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(v["shipstation"]["tracking"]["status_description"], "Delivered");
    // Even at RUST_LOG=trace the key appears nowhere.
    assert!(
        !stdout.contains(sim.api_key()) && !stderr.contains(sim.api_key()),
        "key leaked"
    );
}

async fn run_blocking(args: Vec<String>, key: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        actionbox(&refs, key.as_deref())
    })
    .await
    .expect("join")
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_key_is_unauthorized_and_never_printed() {
    let sim = Simulator::start().await.expect("simulator");
    let key = "TEST_wrong_key_that_must_not_leak";
    let args = strings(&[
        "run",
        &component(),
        "trackOrder",
        "--input",
        r#"{"order_id":"1001"}"#,
        "--base-url",
        &sim.base_url(),
    ]);
    let out = run_blocking(args, Some(key.to_string())).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(11), "{stderr}");
    assert!(
        stderr.contains("unauthorized: ShipStation rejected the API key"),
        "{stderr}"
    );
    assert!(
        !stdout.contains(key) && !stderr.contains(key),
        "key leaked:\n{stdout}\n{stderr}"
    );
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "one clear error line: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_differ_per_error_kind() {
    let sim = Simulator::start().await.expect("simulator");
    let url = sim.base_url();
    let key = Some(sim.api_key().to_string());
    let c = component();
    let not_found = run_blocking(
        strings(&[
            "run",
            &c,
            "trackOrder",
            "--input",
            r#"{"order_id":"nope"}"#,
            "--base-url",
            &url,
        ]),
        key.clone(),
    )
    .await;
    assert_eq!(not_found.status.code(), Some(12), "{}", text(&not_found).1);
    let invalid = run_blocking(
        strings(&["run", &c, "trackOrder", "--input", "{oops", "--base-url", &url]),
        key.clone(),
    )
    .await;
    assert_eq!(invalid.status.code(), Some(10), "{}", text(&invalid).1);
    assert!(text(&invalid).1.contains("invalid-input"));
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_outside_10_to_180_is_refused() {
    let c = component();
    for t in ["5", "200"] {
        let out = run_blocking(
            strings(&[
                "run",
                &c,
                "trackOrder",
                "--input",
                r#"{"order_id":"1"}"#,
                "--base-url",
                "http://127.0.0.1:9",
                "--timeout",
                t,
            ]),
            Some("TEST_x".into()),
        )
        .await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("between 10 and 180"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_key_is_explained() {
    let out = run_blocking(
        strings(&["run", &component(), "trackOrder", "--input", r#"{"order_id":"1"}"#]),
        None,
    )
    .await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("SHIPSTATION_API_KEY") && stderr.contains("--api-key-file"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_file_is_read_and_test_connection_reports_ok() {
    let sim = Simulator::start().await.expect("simulator");
    let dir = std::env::temp_dir().join(format!("actionbox-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let key_file = dir.join("key");
    std::fs::write(&key_file, format!("{}\n", sim.api_key())).expect("write key");
    let out = run_blocking(
        strings(&[
            "test-connection",
            &component(),
            "--base-url",
            &sim.base_url(),
            "--api-key-file",
            &key_file.display().to_string(),
        ]),
        None,
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("OK:"), "{stdout}");

    let out = run_blocking(
        strings(&["test-connection", &component(), "--base-url", &sim.base_url()]),
        Some("TEST_bad".into()),
    )
    .await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(11));
    assert!(stdout.starts_with("FAILED: unauthorized"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_prints_the_manifest() {
    let out = run_blocking(strings(&["describe", &component()]), None).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let m: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(m["integration"], "shipstation");
    assert_eq!(m["methods"][0]["display_name"], "trackOrder");
    assert_eq!(m["methods"][0]["params"][0]["name"], "order_id");
    assert_eq!(m["credential"]["header"], "API-Key");
    assert_eq!(m["default_base_url"], "https://api.shipstation.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_component_is_explained() {
    let out = run_blocking(strings(&["describe", "/nonexistent/x.wasm"]), None).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("does not exist") && stderr.contains("make build"),
        "{stderr}"
    );
}
