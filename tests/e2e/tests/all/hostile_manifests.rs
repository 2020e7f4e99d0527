//! Hostile manifests (`tests/hostile-manifest`): a component's `describe` is
//! guest output like any other. Each variant must be refused cleanly, within
//! a bounded time, by every command that loads components — `describe`,
//! `tools`, `mcp` and `serve` — with a short error that quotes guest text only
//! defused, and (for the registry variants) says what was wrong with the
//! value it asked for. The valid variant loads everywhere, so a refusal is
//! the host's judgement, not a broken build.

use actionbox_e2e::{
    hostile_manifest_path, run_actionbox_bounded, run_actionbox_bounded_with_input, write_config, BoundedRun,
    ServeProcess,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one command may take to refuse a hostile manifest.
const REFUSAL_BOUND: Duration = Duration::from_secs(30);
/// When a command still runs, it is killed (and the test fails) here.
const KILL_AFTER: Duration = Duration::from_secs(60);
/// Most of standard error a refusal may print.
const MAX_STDERR_BYTES: u64 = 4096;
/// The key the runs see (nothing is called: loading is what is tested).
const KEY: &str = "TEST_hostile_manifest_key_0123456789";

/// The kind the config declares the integration as: the one the variant's
/// manifest claims, so the refusal is about what it asks for.
fn config_kind(variant: &str) -> &'static str {
    if variant == "unknown-kind-reflected-header" {
        "hostile2"
    } else {
        "shipstation"
    }
}

/// A config with one integration running `variant` and one action on its
/// `ping` method. For the unknown kind the operator declares it, with the
/// honest header, so the component's own request is what is refused.
fn config_for(variant: &str) -> PathBuf {
    let kind = config_kind(variant);
    let declared = if kind == "hostile2" {
        "[[kind]]\nname = \"hostile2\"\nbase_url = \"https://api.hostile2.example\"\ncredential_header = \"API-Key\"\n\n"
    } else {
        ""
    };
    let text = format!(
        "{declared}[[integration]]\nname = \"shop\"\nkind = \"{kind}\"\ncomponent = {:?}\napi_key_env = \"SHIPSTATION_API_KEY\"\ndefault_actions = false\n\n[[action]]\nname = \"ping\"\nintegration = \"shop\"\nmethod = \"ping\"\n",
        hostile_manifest_path(variant).display().to_string()
    );
    write_config(&format!("hostile-manifest-{variant}"), &text)
}

/// An MCP client's first words: initialize, initialized, tools/list.
const MCP_HANDSHAKE: &str = concat!(
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"hostile-manifests","version":"0"}}}"#,
    "\n",
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    "\n",
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    "\n",
);

/// The commands that load a component, as argument lists.
fn commands(variant: &str, config: &Path) -> Vec<(&'static str, Vec<String>)> {
    let wasm = hostile_manifest_path(variant).display().to_string();
    let config = config.display().to_string();
    vec![
        ("describe", vec!["describe".into(), wasm.clone()]),
        // No --base-url: the kind registry, never the component, says where
        // the key goes; a component that asks for elsewhere is refused.
        (
            "run",
            vec!["run".into(), wasm, "trackOrder".into(), "--input".into(), "{}".into()],
        ),
        ("tools", vec!["tools".into(), "--config".into(), config.clone()]),
        ("mcp", vec!["mcp".into(), "--config".into(), config.clone()]),
    ]
}

/// Run one command off the async runtime.
async fn run(args: Vec<String>) -> BoundedRun {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_actionbox_bounded(&args, &[("SHIPSTATION_API_KEY", KEY)], KILL_AFTER)
    })
    .await
    .expect("join")
}

/// Start `serve` off the async runtime; `Err` is the run of a serve that
/// exited (or hung) instead of listening.
async fn serve(config: PathBuf) -> Result<ServeProcess, BoundedRun> {
    tokio::task::spawn_blocking(move || ServeProcess::start(&config, &[("SHIPSTATION_API_KEY", KEY)], KILL_AFTER))
        .await
        .expect("join")
}

/// Words one of which the refusal of `variant` must contain (lower case):
/// the value it asked for or the one the registry holds.
fn named_problem(variant: &str) -> &'static [&'static str] {
    match variant {
        "foreign-base-url" | "private-default" => &["api.shipstation.com"],
        "reflected-header" => &["origin", "api-key"],
        "unknown-kind-reflected-header" => &["referer", "api-key"],
        "describe-loop" => &["timeout"],
        "describe-panic" => &["panic", "trap", "crash"],
        "huge-manifest" => &["description"],
        "many-methods" => &["methods"],
        // Its 10 MB version string is over the hostcall bound, so the
        // manifest is refused for its size before its id is even read.
        "escape-sequences" => &["integration", "kind", "manifest of over"],
        "many-default-actions" => &["default actions", "manifest of over"],
        "default-action-unknown-method" => &["no-such-method"],
        "default-action-huge-instructions" => &["instructions", "manifest of over"],
        "default-action-bad-name" => &["default action name"],
        _ => &[],
    }
}

/// What keeps `run` from being a clean refusal of `variant` by `command`;
/// empty when it is one.
fn refusal_problems(variant: &str, command: &str, run: &BoundedRun) -> Vec<String> {
    let what = format!("`{command}` with the {variant} manifest");
    let mut problems = Vec::new();
    let mut check = |ok: bool, problem: String| {
        if !ok {
            problems.push(format!("{what}: {problem}"));
        }
    };
    check(!run.timed_out, format!("still running after {KILL_AFTER:?}"));
    check(
        run.elapsed < REFUSAL_BOUND,
        format!("took {:?} to refuse (bound {REFUSAL_BOUND:?})", run.elapsed),
    );
    check(run.code != 0, format!("succeeded; stdout: {}", head(&run.stdout)));
    check(
        run.stderr_bytes < MAX_STDERR_BYTES,
        format!(
            "printed {} bytes to stderr (bound {MAX_STDERR_BYTES}): {}",
            run.stderr_bytes,
            head(&run.stderr)
        ),
    );
    check(
        run.stdout_bytes < 64 * 1024,
        format!("printed {} bytes to stdout", run.stdout_bytes),
    );
    for (stream, text) in [("stderr", &run.stderr), ("stdout", &run.stdout)] {
        check(
            !text.contains('\u{1b}'),
            format!("a raw ESC reached {stream}: {:?}", head(text)),
        );
        check(
            !text.contains("\nFORGED-LOG-LINE") && !text.starts_with("FORGED-LOG-LINE"),
            format!(
                "the manifest's newline reached {stream} raw and forged a line: {:?}",
                head(text)
            ),
        );
    }
    match run.stderr.lines().find(|l| l.contains("error")) {
        None => check(false, format!("no error line in stderr: {:?}", head(&run.stderr))),
        Some(line) => {
            let lower = line.to_lowercase();
            let expected = named_problem(variant);
            check(
                expected.is_empty() || expected.iter().any(|word| lower.contains(word)),
                format!("the error names none of {expected:?}: {line}"),
            );
        }
    }
    problems
}

/// The first 500 bytes of `text`, for messages.
fn head(text: &str) -> &str {
    let mut end = text.len().min(500);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Run `describe`, `run`, `tools` and `mcp` at the same time, then `serve`, for one
/// variant; the problems found.
async fn refusal_problems_of(variant: String) -> Vec<String> {
    let config = config_for(&variant);
    let handles: Vec<_> = commands(&variant, &config)
        .into_iter()
        .map(|(command, args)| (command, tokio::spawn(run(args))))
        .collect();
    let mut problems = Vec::new();
    for (command, handle) in handles {
        let run = handle.await.expect("join");
        problems.extend(refusal_problems(&variant, command, &run));
    }
    match serve(config).await {
        Ok(process) => problems.push(format!(
            "`serve` with the {variant} manifest started and listened on {}",
            process.addr
        )),
        Err(run) => problems.extend(refusal_problems(&variant, "serve", &run)),
    }
    problems
}

/// Every hostile variant, every command: refused cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn every_hostile_manifest_is_refused_cleanly_by_every_command() {
    // Two variants at a time: describe-loop holds its commands for the
    // describe timeout, and the machine may have two cores.
    let variants = actionbox_e2e::hostile_manifest_variants();
    assert!(
        variants.len() >= 13,
        "tests/hostile-manifest lost its attack features: {variants:?}"
    );
    let mut problems = Vec::new();
    for pair in variants.chunks(2) {
        let tasks: Vec<_> = pair
            .iter()
            .map(|variant| tokio::spawn(refusal_problems_of(variant.to_string())))
            .collect();
        for task in tasks {
            problems.extend(task.await.expect("join"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems in {} refusals:\n{}",
        problems.len(),
        variants.len() * 4,
        problems.join("\n")
    );
}

/// The same crate without a feature is a valid ShipStation action: every
/// command loads it, so the refusals above are about the manifests.
#[tokio::test(flavor = "multi_thread")]
async fn the_valid_manifest_loads_in_every_command() {
    let config = config_for("default");
    let wasm = hostile_manifest_path("default").display().to_string();

    let describe = run(vec!["describe".into(), wasm]).await;
    assert_eq!(describe.code, 0, "describe: {}", describe.stderr);
    let manifest: serde_json::Value = serde_json::from_str(&describe.stdout).expect("describe prints JSON");
    assert_eq!(manifest["integration"], "shipstation");
    assert_eq!(manifest["methods"][0]["name"], "ping");

    let tools = run(vec!["tools".into(), "--config".into(), config.display().to_string()]).await;
    assert_eq!(tools.code, 0, "tools: {}", tools.stderr);
    assert!(tools.stdout.contains("\"ping\""), "{}", tools.stdout);

    // MCP needs a client's handshake before it lists tools.
    let config_arg = config.display().to_string();
    let mcp = tokio::task::spawn_blocking(move || {
        run_actionbox_bounded_with_input(
            &["mcp", "--config", &config_arg],
            &[("SHIPSTATION_API_KEY", KEY)],
            Some(MCP_HANDSHAKE),
            KILL_AFTER,
        )
    })
    .await
    .expect("join");
    assert!(!mcp.timed_out, "mcp did not stop when its input closed");
    let listed = mcp
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["id"] == 2)
        .unwrap_or_else(|| panic!("no tools/list answer: {} {}", mcp.stdout, mcp.stderr));
    assert_eq!(listed["result"]["tools"][0]["name"], "ping", "{listed}");

    let mut process = serve(config)
        .await
        .unwrap_or_else(|run| panic!("serve did not start (exit {}): {}", run.code, run.stderr));
    assert!(process.is_running());
    let health = actionbox_e2e::api::http(process.addr, "GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
}

/// A component built against contract 0.1.0 (`tests/legacy-action`) is
/// refused at load by the library and every command, with an error that
/// names the version it targets and what to rebuild against.
#[tokio::test(flavor = "multi_thread")]
async fn a_component_built_against_contract_0_1_0_is_refused_with_what_to_rebuild() {
    let legacy = actionbox_e2e::legacy_action_path();
    assert!(
        legacy.exists(),
        "{} is missing: run `make test-components`",
        legacy.display()
    );

    let engine = actionbox_runtime::ActionEngine::new().expect("engine");
    let error = match engine.load(&legacy).await {
        Ok(_) => panic!("a 0.1.0 component loaded"),
        Err(e) => format!("{e:#}"),
    };
    for needle in ["actionbox:action@0.1.0", "rebuild it against actionbox:action@0.2.0"] {
        assert!(error.contains(needle), "`{needle}` missing from: {error}");
    }

    let describe = run(vec!["describe".into(), legacy.display().to_string()]).await;
    assert_ne!(
        describe.code, 0,
        "describe loaded a 0.1.0 component: {}",
        describe.stdout
    );
    assert!(
        describe.stderr.contains("actionbox:action@0.1.0") && describe.stderr.contains("0.2.0"),
        "{}",
        describe.stderr
    );
}

/// Default actions come from the component's manifest: a ShipStation-kind
/// component that declares `defaultPing` gets that default, and no
/// `trackOrder` the host would have made up.
#[tokio::test(flavor = "multi_thread")]
async fn default_actions_are_the_ones_the_component_declares() {
    let text = format!(
        "[[integration]]\nname = \"shop\"\nkind = \"shipstation\"\ncomponent = {:?}\napi_key_env = \"SHIPSTATION_API_KEY\"\n",
        hostile_manifest_path("default").display().to_string()
    );
    let config = write_config("hostile-manifest-defaults", &text);
    let tools = run(vec![
        "tools".into(),
        "--config".into(),
        config.display().to_string(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(tools.code, 0, "tools: {}", tools.stderr);
    let listed: serde_json::Value = serde_json::from_str(&tools.stdout).expect("tools prints JSON");
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["defaultPing"], "{listed}");
}
