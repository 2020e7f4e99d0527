//! Builds the wasm components the end-to-end tests load, so a plain
//! `cargo test` works from a fresh clone (the approach of wasmtime's
//! `crates/test-programs/artifacts/build.rs`).
//!
//! - `make test` builds the components itself (fat LTO, the hostile variants,
//!   the Python and jco artifacts) and sets `ACTIONBOX_PREBUILT_COMPONENTS`:
//!   the tests then load them from `target/`, and nothing is built here.
//! - Otherwise the Rust components — the ShipStation action, the hostile
//!   guest, one hostile-manifest component per cargo feature of
//!   `tests/hostile-manifest`, and the 0.1.0 legacy action — are built for
//!   `wasm32-wasip2` into `target/test-components/` with a nested cargo (its
//!   own target directory, so it never waits on the lock this build holds).
//!
//! Either way the directory reaches the tests as `ACTIONBOX_TEST_COMPONENTS`,
//! and the hostile-manifest features as `ACTIONBOX_HOSTILE_MANIFEST_VARIANTS`;
//! the directory is laid out like `target/`: `wasm32-wasip2/release/*.wasm`,
//! `hostile-manifests/<feature>.wasm`, `legacy-action/legacy_action_0_1_0.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists");
    println!("cargo:rerun-if-env-changed=ACTIONBOX_PREBUILT_COMPONENTS");
    // The attack variants, one cargo feature each: the tests iterate these,
    // so a new feature is tested without a second list to keep in step.
    let variants = hostile_manifest_features(&root);
    println!(
        "cargo:rerun-if-changed={}",
        root.join("tests/hostile-manifest/Cargo.toml").display()
    );
    println!(
        "cargo:rustc-env=ACTIONBOX_HOSTILE_MANIFEST_VARIANTS={}",
        variants.join(",")
    );
    if std::env::var_os("ACTIONBOX_PREBUILT_COMPONENTS").is_some() {
        println!(
            "cargo:rustc-env=ACTIONBOX_TEST_COMPONENTS={}",
            root.join("target").display()
        );
        return;
    }
    for dir in [
        "wit",
        "guest/shipstation",
        "guest/shipstation-core",
        "guest/sdk",
        "tests/hostile-guest",
        "tests/hostile-manifest",
        "tests/legacy-action",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let out = root.join("target/test-components");
    ensure_wasm_target();
    build(
        &root,
        &out,
        &["-p", "shipstation", "-p", "hostile-guest", "-p", "legacy-action"],
    );
    let release = out.join(WASM_TARGET).join("release");
    copy(
        &release.join("legacy_action.wasm"),
        &out.join("legacy-action/legacy_action_0_1_0.wasm"),
    );
    for feature in std::iter::once("default".to_string()).chain(variants) {
        let mut args = vec!["-p", "hostile-manifest"];
        if feature != "default" {
            args.extend(["--features", feature.as_str()]);
        }
        build(&root, &out, &args);
        copy(
            &release.join("hostile_manifest.wasm"),
            &out.join(format!("hostile-manifests/{feature}.wasm")),
        );
    }
    println!("cargo:rustc-env=ACTIONBOX_TEST_COMPONENTS={}", out.display());
}

/// Add the wasm target through rustup when it is missing (what `make setup` does).
fn ensure_wasm_target() {
    let Ok(listed) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return; // no rustup: the build below says what is missing
    };
    if String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return;
    }
    let added = Command::new("rustup").args(["target", "add", WASM_TARGET]).status();
    if !matches!(added, Ok(s) if s.success()) {
        panic!("the end-to-end tests need the {WASM_TARGET} target: run `rustup target add {WASM_TARGET}`");
    }
}

/// `cargo build --release --target wasm32-wasip2 <args>` into `out`.
fn build(root: &Path, out: &Path, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--quiet", "--release", "--target", WASM_TARGET])
        .args(args)
        .env("CARGO_TARGET_DIR", out)
        // What this build script runs with is not what the components want.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the test components: {e}"));
    assert!(
        status.success(),
        "building the test components failed: cargo build --release --target {WASM_TARGET} {} (see the output above)",
        args.join(" ")
    );
}

fn copy(from: &Path, to: &Path) {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    }
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}

/// The `[features]` of tests/hostile-manifest/Cargo.toml: one attack each.
fn hostile_manifest_features(root: &Path) -> Vec<String> {
    let manifest = root.join("tests/hostile-manifest/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("cannot read {}: {e}", manifest.display()));
    let mut in_features = false;
    let mut features = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
            continue;
        }
        if let (true, Some((name, _))) = (in_features, line.split_once('=')) {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') && name != "default" {
                features.push(name.to_string());
            }
        }
    }
    features
}
