//! `actionbox check` (issue 17): the gate a platform runs on a component at
//! upload, on the real binary. The ShipStation component passes and the
//! report says what it asks for; the hostile manifests, the 0.1.0 component,
//! a component importing what the host does not provide, files that are not
//! components and a file over the upload bound fail with the finding that
//! names why — within a bounded time and output, guest text defused — and
//! the workspaces' registration refuses what the check refuses: 422 with the
//! findings.

use crate::workspaces::{fresh_dir, new_master_key, Reply, ServeSpec, StoreServe, TestStore, OPERATOR};
use actionbox_e2e::{
    component_path, hostile_component_path, hostile_manifest_path, hostile_manifest_variants, legacy_action_path,
    run_actionbox_bounded, BoundedRun,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one check may take: a `describe` that never returns is stopped
/// by the loader at 10 s.
const CHECK_BOUND: Duration = Duration::from_secs(30);
/// When a check still runs, it is killed (and the test fails) here.
const KILL_AFTER: Duration = Duration::from_secs(60);
/// `actionbox check`'s exit code for a component it refuses.
const CHECK_FAILED: i32 = 3;
/// Most a check may print, whatever the component (its report is bounded).
const MAX_OUTPUT_BYTES: u64 = 32 * 1024;

/// `actionbox check PATH [--json]`, off the async runtime.
async fn check(path: &Path, json: bool) -> BoundedRun {
    let mut args = vec!["check".to_string(), path.display().to_string()];
    if json {
        args.push("--json".into());
    }
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_actionbox_bounded(&args, &[], KILL_AFTER)
    })
    .await
    .expect("join")
}

/// The JSON report of `run`, after checking it is the stable object:
/// exactly `ok`, `component`, `asks`, `findings`, each finding exactly
/// `check`, `level` (`error` or `warning`) and `message`, and `ok` true
/// exactly when no finding is an error.
fn report(run: &BoundedRun) -> Value {
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}): {}{}", run.stdout, run.stderr));
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["asks", "component", "findings", "ok"], "{v}");
    for key in ["sha256", "bytes", "contract", "imports"] {
        assert!(v["component"].get(key).is_some(), "component.{key} missing: {v}");
    }
    let findings = v["findings"].as_array().expect("findings is an array");
    for f in findings {
        assert_eq!(keys(f), ["check", "level", "message"], "{f}");
        assert!(f["level"] == "error" || f["level"] == "warning", "{f}");
    }
    let has_error = findings.iter().any(|f| f["level"] == "error");
    assert_eq!(v["ok"], !has_error, "ok is the absence of errors: {v}");
    assert_eq!(run.code, if has_error { CHECK_FAILED } else { 0 }, "exit code: {v}");
    v
}

/// `(check, message)` of every finding at `level`.
fn findings(report: &Value, level: &str) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["level"] == level)
        .map(|f| {
            (
                f["check"].as_str().unwrap_or_default().to_string(),
                f["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Lower-case hex SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Write `bytes` to a fresh file called `name`.
fn write_file(tag: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let path = actionbox_e2e::temp_dir(&format!("check-{tag}")).join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

/// A component assembled byte by byte (so the test needs no toolchain) that
/// imports each of `imports` as an instance declaring nothing, and exports an
/// instance declaring nothing as `actionbox:action/action@0.2.0`: the
/// contract's name, without its functions.
fn component_importing(imports: &[&str]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn name(text: &str, out: &mut Vec<u8>) {
        out.push(0x00);
        leb(text.len(), out);
        out.extend_from_slice(text.as_bytes());
    }
    fn section(id: u8, body: Vec<u8>, out: &mut Vec<u8>) {
        out.push(id);
        leb(body.len(), out);
        out.extend(body);
    }
    // Magic, version 0x0d, layer 1: a component.
    let mut out = b"\0asm\x0d\0\x01\0".to_vec();
    // Type section: type 0 is an instance type with no declarations.
    section(7, vec![1, 0x42, 0x00], &mut out);
    // Import section: instances 0..n, each of type 0.
    let mut body = Vec::new();
    leb(imports.len(), &mut body);
    for import in imports {
        name(import, &mut body);
        body.extend([0x05, 0x00]);
    }
    section(10, body, &mut out);
    // Instance section: instance n, made of no exports.
    section(5, vec![1, 0x01, 0x00], &mut out);
    // Export section: instance n as the contract's interface.
    let mut body = vec![1];
    name("actionbox:action/action@0.2.0", &mut body);
    body.push(0x05);
    leb(imports.len(), &mut body);
    body.push(0x00);
    section(11, body, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipstation_component_passes_and_the_report_says_what_it_asks_for() {
    let path = component_path();
    let bytes = std::fs::read(&path).expect("the ShipStation component");
    let run = check(&path, true).await;
    let v = report(&run);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["component"]["sha256"], sha256(&bytes), "{v}");
    assert_eq!(v["component"]["bytes"], bytes.len(), "{v}");
    assert_eq!(v["component"]["contract"], "0.2.0", "{v}");
    let imports = v["component"]["imports"].as_array().expect("imports");
    assert!(imports.iter().any(|i| i == "wasi:http/outgoing-handler@0.2.12"), "{v}");
    assert!(
        v["component"]["describe_ms"].as_u64().is_some_and(|ms| ms < 1000),
        "{v}"
    );
    assert!(v["component"]["manifest_bytes"].as_u64().is_some_and(|b| b > 0), "{v}");
    let asks = &v["asks"];
    assert_eq!(asks["kind"], "shipstation", "{v}");
    assert_eq!(asks["credential"]["header"], "API-Key", "{v}");
    assert!(
        asks["outbound_hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .any(|h| h == "{base-url}"),
        "{v}"
    );
    assert!(
        asks["methods"]
            .as_array()
            .expect("methods")
            .iter()
            .any(|m| m["name"] == "track-order" && m["display_name"] == "trackOrder" && m["params"][0] == "order_id"),
        "{v}"
    );
    assert_eq!(asks["default_actions"][0]["name"], "trackOrder", "{v}");
    assert_eq!(findings(&v, "error"), Vec::<(String, String)>::new(), "{v}");

    let human = check(&path, false).await;
    assert_eq!(human.code, 0, "{}{}", human.stdout, human.stderr);
    assert!(human.stdout.contains("asks       kind shipstation"), "{}", human.stdout);
    let verdict = human.stdout.lines().last().unwrap_or_default();
    assert!(
        verdict.starts_with("OK: the component passes the check"),
        "{}",
        human.stdout
    );
}

/// The check and the word its finding must contain for each hostile
/// manifest (lower case); a variant not listed must fail with any error.
fn expected_finding(variant: &str) -> Option<(&'static str, &'static str)> {
    Some(match variant {
        "foreign-base-url" | "private-default" => ("kind", "api.shipstation.com"),
        "reflected-header" => ("kind", "origin"),
        "unknown-kind-reflected-header" => ("kind", "referer"),
        "describe-loop" => ("describe", "timeout"),
        "describe-panic" => ("describe", "panicked"),
        // Over the bound on what describe may return at all (hostcall fuel).
        "huge-manifest"
        | "many-methods"
        | "escape-sequences"
        | "many-default-actions"
        | "default-action-huge-instructions" => ("manifest", "manifest of over"),
        "default-action-unknown-method" => ("manifest", "no-such-method"),
        "default-action-bad-name" => ("manifest", "default action name"),
        _ => return None,
    })
}

/// What is wrong with the check of `variant`, in both forms; empty when it
/// failed cleanly with the right finding.
async fn hostile_problems(variant: String) -> Vec<String> {
    let path = hostile_manifest_path(&variant);
    let (json, human) = tokio::join!(check(&path, true), check(&path, false));
    let mut problems = Vec::new();
    let mut expect = |ok: bool, problem: String| {
        if !ok {
            problems.push(format!("{variant}: {problem}"));
        }
    };
    for (form, run) in [("--json", &json), ("text", &human)] {
        expect(!run.timed_out, format!("{form}: still running after {KILL_AFTER:?}"));
        expect(
            run.elapsed < CHECK_BOUND,
            format!("{form}: took {:?} (bound {CHECK_BOUND:?})", run.elapsed),
        );
        expect(
            run.code == CHECK_FAILED,
            format!("{form}: exit {} not 3: {}", run.code, run.stdout),
        );
        expect(
            run.stdout_bytes + run.stderr_bytes < MAX_OUTPUT_BYTES,
            format!("{form}: printed {} + {} bytes", run.stdout_bytes, run.stderr_bytes),
        );
        for text in [&run.stdout, &run.stderr] {
            expect(!text.contains('\u{1b}'), format!("{form}: a raw ESC was printed"));
            expect(
                !text.contains("\nFORGED-LOG-LINE") && !text.starts_with("FORGED-LOG-LINE"),
                format!("{form}: the manifest's newline forged a line"),
            );
        }
    }
    if json.timed_out {
        return problems;
    }
    let v = report(&json);
    let errors = findings(&v, "error");
    match expected_finding(&variant) {
        None => expect(!errors.is_empty(), format!("no error finding: {v}")),
        Some((check, word)) => expect(
            errors
                .iter()
                .any(|(c, m)| c == check && m.to_lowercase().contains(word)),
            format!("no `{check}` error naming `{word}`: {errors:?}"),
        ),
    }
    // A manifest refused for its kind is valid: the report shows what it
    // asked for. One that failed to describe or validate shows nothing.
    if expected_finding(&variant).is_some_and(|(check, _)| check == "kind") {
        expect(
            v["asks"]["kind"].is_string(),
            format!("no asks for a valid manifest: {v}"),
        );
    } else {
        expect(v["asks"].is_null(), format!("asks from an invalid manifest: {v}"));
    }
    let line = format!("error [{}]", expected_finding(&variant).map_or("", |(c, _)| c));
    expect(
        human.stdout.contains(&line),
        format!("text form lacks `{line}`: {}", human.stdout),
    );
    problems
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hostile_manifest_fails_the_check_with_the_finding_that_names_it() {
    let variants = hostile_manifest_variants();
    assert!(
        variants.len() >= 13,
        "tests/hostile-manifest lost variants: {variants:?}"
    );
    let mut problems = Vec::new();
    // Two variants at a time (four processes): describe-loop holds its two
    // for the loader's 10 s, and the machine may have two cores.
    for pair in variants.chunks(2) {
        let tasks: Vec<_> = pair
            .iter()
            .map(|variant| tokio::spawn(hostile_problems(variant.to_string())))
            .collect();
        for task in tasks {
            problems.extend(task.await.expect("join"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The same crate without an attack passes: the refusals are about the manifests.
    let valid = report(&check(&hostile_manifest_path("default"), true).await);
    assert_eq!(valid["ok"], true, "{valid}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_built_against_contract_0_1_0_fails_the_contract_check() {
    let v = report(&check(&legacy_action_path(), true).await);
    assert_eq!(v["component"]["contract"], "0.1.0", "{v}");
    let errors = findings(&v, "error");
    assert_eq!(errors.len(), 1, "only the contract is reported: {v}");
    let (check_name, message) = &errors[0];
    assert_eq!(check_name, "contract", "{v}");
    for needle in ["actionbox:action@0.1.0", "rebuild it against actionbox:action@0.2.0"] {
        assert!(message.contains(needle), "`{needle}` missing: {message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_importing_what_the_host_does_not_provide_fails_the_imports_check() {
    let extra = component_importing(&[
        "wasi:io/poll@0.2.0",
        "wasi:keyvalue/store@0.2.0-draft",
        "wasi:sockets/tcp@0.2.0",
    ]);
    let v = report(&check(&write_file("imports", "extra.wasm", &extra), true).await);
    assert_eq!(v["component"]["contract"], "0.2.0", "{v}");
    assert_eq!(v["component"]["imports"].as_array().map(Vec::len), Some(3), "{v}");
    let errors = findings(&v, "error");
    assert_eq!(errors.len(), 1, "{v}");
    let (check_name, message) = &errors[0];
    assert_eq!(check_name, "imports", "{v}");
    assert!(message.contains("`wasi:keyvalue/store@0.2.0-draft`"), "{message}");
    assert!(
        !message.contains("wasi:io/poll") && !message.contains("wasi:sockets/tcp`"),
        "{message}"
    );
    // Linked so toolchain runtimes load, granted nothing: a warning.
    let warnings = findings(&v, "warning");
    assert!(
        warnings
            .iter()
            .any(|(c, m)| c == "imports" && m.contains("`wasi:sockets/tcp@0.2.0`") && m.contains("grants no")),
        "{v}"
    );

    // Control: the same component importing only what the host provides
    // gets past the imports check, and is refused for lacking the
    // contract's functions, so the refusal above is the import's.
    let provided = component_importing(&["wasi:io/poll@0.2.0"]);
    let v = report(&check(&write_file("imports", "provided.wasm", &provided), true).await);
    let errors = findings(&v, "error");
    assert!(errors.iter().all(|(c, _)| c != "imports"), "{v}");
    assert!(
        errors
            .iter()
            .any(|(c, m)| c == "contract" && m.contains("smart-action world")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_not_a_binary_component_fails_the_component_check() {
    for (name, bytes, word) in [
        ("core.wasm", &b"\0asm\x01\0\0\0"[..], "core WebAssembly module"),
        ("text.wat", b"(component)", "not a binary WebAssembly component"),
        (
            "notes.wasm",
            b"not a component at all",
            "not a binary WebAssembly component",
        ),
        // A component header and then garbage: it does not compile.
        ("broken.wasm", b"\0asm\x0d\0\x01\0\xff\xff\xff", "does not compile"),
    ] {
        let v = report(&check(&write_file("not-components", name, bytes), true).await);
        let errors = findings(&v, "error");
        assert!(
            errors.iter().any(|(c, m)| c == "component" && m.contains(word)),
            "{name}: {v}"
        );
        assert_eq!(v["component"]["sha256"], sha256(bytes), "{name}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_over_the_upload_bound_is_refused_unread() {
    let path = actionbox_e2e::temp_dir("check-size").join("huge.wasm");
    let bound = actionbox::workspaces::registry::MAX_COMPONENT_BYTES as u64;
    // Sparse: the size is on record, nothing is written.
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(bound + 1).expect("set_len");
    let v = report(&check(&path, true).await);
    assert_eq!(v["component"]["bytes"], bound + 1, "{v}");
    assert!(
        v["component"]["sha256"].is_null(),
        "a file over the bound is not read: {v}"
    );
    let errors = findings(&v, "error");
    assert!(
        errors
            .iter()
            .any(|(c, m)| c == "size" && m.contains(&bound.to_string())),
        "{v}"
    );
    let _ = std::fs::remove_file(&path);
}

/// `POST /v1/admin/components` with `bytes` as the operator.
async fn register(api: crate::workspaces::Api, bytes: &[u8]) -> Reply {
    api.raw(
        "POST",
        "/v1/admin/components",
        Some(OPERATOR),
        Some(("application/wasm", bytes)),
    )
    .await
}

/// The `check` of every error finding in a 422 answer, after checking its
/// shape: the error body's kind and message, and the report beside them.
fn refused_checks(r: &Reply) -> Vec<String> {
    assert_eq!(r.status, 422, "{r}");
    assert_eq!(r.error_kind(), "component-refused", "{r}");
    assert!(r.error_message().starts_with("the component fails the check: "), "{r}");
    let error = &r.json()["error"];
    assert_eq!(error["ok"], false, "{r}");
    findings(error, "error").into_iter().map(|(c, _)| c).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_refuses_what_the_check_refuses_with_422_and_the_findings() {
    let dir = fresh_dir("check-registration");
    let store = TestStore::sqlite(&dir);
    let master = new_master_key(&dir, "master.key").await;
    let serve = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let api = serve.api();

    let legacy = std::fs::read(legacy_action_path()).expect("legacy component");
    assert_eq!(refused_checks(&register(api, &legacy).await), ["contract"]);
    let foreign = std::fs::read(hostile_manifest_path("foreign-base-url")).expect("hostile component");
    assert_eq!(refused_checks(&register(api, &foreign).await), ["kind"]);
    let extra = component_importing(&["wasi:keyvalue/store@0.2.0-draft"]);
    let r = register(api, &extra).await;
    assert_eq!(refused_checks(&r), ["imports"]);
    assert!(r.body.contains("wasi:keyvalue/store@0.2.0-draft"), "{r}");
    assert_eq!(refused_checks(&register(api, b"not a component").await), ["component"]);

    // A kind this host does not know: the author's check warns (the operator
    // declares kinds), the platform's registration refuses (nothing says
    // where its key may go).
    let unknown_kind = hostile_component_path();
    let author = report(&check(&unknown_kind, true).await);
    assert_eq!(author["ok"], true, "{author}");
    assert!(
        findings(&author, "warning").iter().any(|(c, _)| c == "kind"),
        "{author}"
    );
    let bytes = std::fs::read(&unknown_kind).expect("hostile guest");
    assert_eq!(refused_checks(&register(api, &bytes).await), ["kind"]);

    let shipstation = std::fs::read(component_path()).expect("component");
    let r = register(api, &shipstation).await;
    assert_eq!(r.status, 201, "{r}");
    let components = api.get(OPERATOR, "/v1/admin/components").await.expect(200).json();
    assert_eq!(
        components["components"].as_array().map(Vec::len),
        Some(1),
        "refused components are not stored: {components}"
    );
}
