//! The console (issue 15) in a real browser: headless Chromium, driven
//! through chromedriver by Selenium (`tests/e2e/console/journey.py`), walks
//! the seed's merchant journey through `actionbox serve --store` on loopback,
//! with axe-core injected into every page for an accessibility check and a
//! screenshot of every page at 1280 and 390 px wide under `target/console/`.
//!
//! The browser, its driver, axe-core and Selenium come from `make test`
//! (`make browser axe pyenv`); a plain `cargo test` skips these tests when
//! one is missing, as [`actionbox_e2e::prerequisite`] does.

use crate::workspaces::*;
use actionbox_e2e::workspace_root;
use serde_json::Value;
use shipstation_sim::{Fixtures, Simulator};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bound on one run of the journey (a cold Chromium on 2 shared cores is slow).
const JOURNEY_BOUND: Duration = Duration::from_secs(420);

/// The workspace the journey runs in.
const WS: &str = "acme";

/// The custom action the merchant adds.
const ACTION: &str = "trackShopifyOrder";

/// The order-id description the seed's merchant writes, quotes included.
const PARAM_DESCRIPTION: &str = r#"Track order by Shopify order id, format: "SHOPIFY-123456789""#;

/// The custom action's response instructions.
const RESPONSE_INSTRUCTIONS: &str = "Always give the tracking link and the carrier.";

/// A key the simulator refuses, entered first.
const WRONG_KEY: &str = "sk_live_WRONG_e2e_key_0d9e8f7a6b";

/// An order shipped in two parts (tests/simulator/fixtures/default.json).
const SPLIT_ORDER: &str = "1002";

/// Every page photographed, as `<page>-1280.png` and `<page>-390.png`.
const SCREENSHOTS: &[&str] = &[
    "sign-in",
    "integration-new",
    "integration",
    "integrations",
    "action-pick",
    "action-new",
    "action",
    "actions",
    "debugger",
    "debugger-run",
    "history",
    "history-entry",
];

// ---------------------------------------------------------------- prerequisites

/// Debian's Chromium (`make browser`).
fn chromium() -> PathBuf {
    PathBuf::from("/usr/bin/chromium")
}

/// Debian's chromedriver, built with [`chromium`] (`make browser`).
fn chromedriver() -> PathBuf {
    PathBuf::from("/usr/bin/chromedriver")
}

/// What installs [`chromium`] and [`chromedriver`], for `require!`.
const BROWSER_MADE_BY: &str = "Debian's chromium and chromium-driver: `make browser`";

/// axe-core's browser bundle (`make axe`).
fn axe() -> PathBuf {
    workspace_root().join("target/axe-core/node_modules/axe-core/axe.min.js")
}

/// What installs [`axe`], for `require!`.
const AXE_MADE_BY: &str = "axe-core from npm: `make axe`";

/// The Python of `target/pyenv`.
fn python() -> PathBuf {
    actionbox_e2e::python_with_mcp()
}

/// Selenium's package in `target/pyenv` (whichever Python version made it).
fn selenium() -> PathBuf {
    let lib = workspace_root().join("target/pyenv/lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("site-packages/selenium"))
        .find(|p| p.exists())
        .unwrap_or_else(|| lib.join("python3/site-packages/selenium"))
}

/// What installs [`python`] with [`selenium`], for `require!`.
const SELENIUM_MADE_BY: &str = "Selenium in target/pyenv: `make pyenv`";

/// Where the screenshots go (and chromedriver's log).
fn screenshots_dir() -> PathBuf {
    let root = workspace_root();
    std::fs::canonicalize(&root).unwrap_or(root).join("target/console")
}

// ---------------------------------------------------------------- the Python side

/// What one run of `journey.py`: its exit code, its summary (the last line
/// of its standard output) and its progress log (standard error).
struct JourneyRun {
    code: i32,
    summary: Value,
    log: String,
}

/// Run `journey.py <mode>` with `env`, bounded by [`JOURNEY_BOUND`].
async fn journey(mode: &str, env: Vec<(&'static str, String)>) -> JourneyRun {
    let script = workspace_root().join("tests/e2e/console/journey.py");
    let mode = mode.to_string();
    let shown = mode.clone();
    let run = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(python());
        cmd.arg(script).arg(&mode);
        // Loopback only: no proxy between Selenium, chromedriver and the server.
        for proxy in [
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
        ] {
            cmd.env_remove(proxy);
        }
        cmd.env("NO_PROXY", "127.0.0.1,localhost").env("SE_OFFLINE", "true");
        for (k, v) in env {
            cmd.env(k, v);
        }
        actionbox_e2e::run_bounded(cmd, None, JOURNEY_BOUND)
    })
    .await
    .expect("join");
    let (code, stdout, stderr) = (run.code, run.stdout, run.stderr);
    assert!(
        !run.timed_out,
        "journey.py {shown}: still running after {JOURNEY_BOUND:?}:\n{stderr}"
    );
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let summary = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("journey.py {shown} (exit {code}): no JSON summary ({e}):\n{stderr}\n{stdout}"));
    JourneyRun {
        code,
        summary,
        log: stderr,
    }
}

/// The settings both modes share.
fn browser_env(out: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("CONSOLE_AXE", text(&axe()).to_string()),
        ("CONSOLE_CHROMIUM", text(&chromium()).to_string()),
        ("CONSOLE_CHROMEDRIVER", text(&chromedriver()).to_string()),
        ("CONSOLE_OUT", text(out).to_string()),
    ]
}

/// Skip (or, under `make test`, fail) when the browser test cannot run here.
macro_rules! require_browser {
    () => {
        actionbox_e2e::require!(chromium(), BROWSER_MADE_BY);
        actionbox_e2e::require!(chromedriver(), BROWSER_MADE_BY);
        actionbox_e2e::require!(axe(), AXE_MADE_BY);
        actionbox_e2e::require!(selenium(), SELENIUM_MADE_BY);
    };
}

/// The ids of `summary`'s axe violations with `impact`.
fn violation_ids(summary: &Value, impact: &str) -> Vec<String> {
    summary["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["impact"] == impact)
        .map(|v| v["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

// ---------------------------------------------------------------- the tests

/// The checks of the journey can fail: on a static page with an image
/// without alt text, an unlabelled field, faint text, an inline style, no
/// viewport meta and a script that throws, each is reported.
#[tokio::test(flavor = "multi_thread")]
async fn browser_checks_report_a_page_built_to_fail_them() {
    require_browser!();
    let dir = fresh_dir("console-selfcheck");
    let run = journey("selfcheck", browser_env(&dir)).await;
    assert_eq!(run.code, 0, "selfcheck failed:\n{}\n{}", run.log, run.summary);
    let s = &run.summary;
    eprintln!("selfcheck: axe-core {} in {}", s["axe"], s["browser"]);
    let critical = violation_ids(s, "critical");
    assert!(critical.contains(&"image-alt".to_string()), "{s:#}");
    assert!(critical.contains(&"label".to_string()), "{s:#}");
    assert!(
        violation_ids(s, "serious").contains(&"color-contrast".to_string()),
        "{s:#}"
    );
    let failures = s["failures"].to_string();
    assert!(failures.contains("style attribute"), "{failures}");
    assert!(failures.contains("laid out 980 px wide"), "{failures}");
    assert!(failures.contains("selfcheck: a console error"), "{failures}");
    for width in [1280, 390] {
        let shot = dir.join(format!("selfcheck-{width}.png"));
        let bytes = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is not a PNG", shot.display());
    }
}

/// The seed's merchant, click by click: sign in, an integration with a wrong
/// key then the right one, a custom action, the debugger on a split order,
/// history; no key anywhere, CSRF and cookies as specified, no console
/// errors, no serious accessibility violations, every page photographed.
#[tokio::test(flavor = "multi_thread")]
async fn merchant_journey_in_a_real_browser() {
    require_browser!();
    let dir = fresh_dir("console");
    let store = TestStore::sqlite(&dir);
    let sim = Simulator::start_with(Fixtures::default_set(), RECOGNIZABLE_KEY, 0)
        .await
        .expect("simulator");
    let master = new_master_key(&dir, "master.key").await;
    let serve = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let api = serve.api();
    create_workspace(api, WS).await;
    register_shipstation(api).await;
    let (_, admin) = mint(api, WS, &["admin"], "console").await;
    let (_, assistant) = mint(api, WS, &["assistant"], "assistant").await;

    let out = screenshots_dir();
    std::fs::create_dir_all(&out).expect("target/console");
    // Nothing left from an earlier run can pass for this one's pictures.
    let _ = std::fs::remove_file(out.join("failure.png"));
    for page in SCREENSHOTS {
        for width in [1280, 390] {
            let _ = std::fs::remove_file(out.join(format!("{page}-{width}.png")));
        }
    }
    let mut env = browser_env(&out);
    env.extend([
        ("CONSOLE_URL", format!("http://{}", serve.addr)),
        ("CONSOLE_WORKSPACE", WS.to_string()),
        ("CONSOLE_ADMIN_TOKEN", admin.clone()),
        ("CONSOLE_WRONG_KEY", WRONG_KEY.to_string()),
        ("CONSOLE_RIGHT_KEY", RECOGNIZABLE_KEY.to_string()),
        ("CONSOLE_UPSTREAM", sim.base_url()),
        ("CONSOLE_ACTION", ACTION.to_string()),
        ("CONSOLE_PARAM_DESCRIPTION", PARAM_DESCRIPTION.to_string()),
        ("CONSOLE_RESPONSE_INSTRUCTIONS", RESPONSE_INSTRUCTIONS.to_string()),
        ("CONSOLE_ORDER", SPLIT_ORDER.to_string()),
    ]);
    let run = journey("journey", env).await;
    let s = &run.summary;

    // What the lead reads first: every violation and the figures.
    eprintln!("{}", run.log);
    for v in s["violations"].as_array().into_iter().flatten() {
        eprintln!(
            "axe {} `{}` on {} ({}): {}",
            v["impact"], v["id"], v["page"], v["url"], v["help"]
        );
    }
    eprintln!("figures: {:#}", s["figures"]);
    // 5. Outside the browser (once the journey got through): the assistant
    // sees the action saved in the console, and history holds the run.
    if s["aborted"].is_null() {
        assistant_sees_the_action(api, &assistant, &admin).await;
    }
    let stderr = serve.stderr();
    assert!(!stderr.contains(RECOGNIZABLE_KEY), "the server logged the key");
    assert!(!stderr.contains(WRONG_KEY), "the server logged the wrong key");

    let failures: Vec<&str> = s["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        failures.is_empty() && run.code == 0,
        "the console journey found {} problem(s) (exit {}):\n- {}",
        failures.len(),
        run.code,
        failures.join("\n- ")
    );

    // The figures, checked again here so a summary that lost them fails.
    assert_eq!(s["serious_violations"], 0, "{s:#}");
    let runs = &s["figures"]["debugger-run"];
    assert_eq!(runs["shipments"], 2, "order {SPLIT_ORDER} has two shipments: {runs}");
    let requests = runs["requests"].as_u64().unwrap_or_default();
    assert!(requests >= 1, "{runs}");
    assert_eq!(runs["bars"].as_u64(), Some(requests), "one bar per request: {runs}");
    assert_eq!(runs["redacted"].as_u64(), Some(requests), "{runs}");
    assert_eq!(s["figures"]["csrf_less_post"], 403, "{s:#}");
    assert_eq!(s["figures"]["session_cookie"]["httpOnly"], true, "{s:#}");
    assert_eq!(s["figures"]["session_cookie"]["sameSite"], "Strict", "{s:#}");
    let wrong = &s["figures"]["test_wrong_key"];
    assert!(
        wrong["text"].as_str().unwrap_or_default().contains("unauthorized"),
        "{wrong}"
    );
    for page in SCREENSHOTS {
        for width in [1280, 390] {
            let shot = out.join(format!("{page}-{width}.png"));
            let bytes = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
            assert!(bytes.starts_with(b"\x89PNG"), "{} is not a PNG", shot.display());
        }
    }

    eprintln!("screenshots: {}", out.display());
}

/// The action the journey saved, as the assistant's tool list (MCP format)
/// shows it, and its debugger run in the history the API shows.
async fn assistant_sees_the_action(api: Api, assistant: &str, admin: &str) {
    let tools = api
        .get(assistant, &format!("/v1/workspaces/{WS}/tools?format=mcp"))
        .await
        .expect(200);
    assert!(!tools.body.contains(RECOGNIZABLE_KEY), "{tools}");
    let listed = tools.json();
    let tool = named(&listed["tools"], ACTION);
    assert_eq!(
        tool["inputSchema"]["properties"]["order_id"]["description"], PARAM_DESCRIPTION,
        "{tool:#}"
    );
    assert!(
        tool["description"]
            .as_str()
            .unwrap_or_default()
            .contains(RESPONSE_INSTRUCTIONS),
        "the response instructions are not in the tool's description: {tool:#}"
    );
    // The debugger's run is in the history the API shows too.
    history_of(api, admin, WS, &format!("?action={ACTION}"), 1).await;
}
