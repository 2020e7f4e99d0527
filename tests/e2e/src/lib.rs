//! Helpers for the end-to-end tests: the real component, loaded by the real
//! host, talking real HTTP to the simulator on loopback.

pub mod api;

use actionbox::{ActionComponent, ActionEngine, ApiKey, BaseUrl, IntegrationSettings};
use shipstation_sim::Simulator;
use std::path::PathBuf;

/// The ShipStation component: `$ACTIONBOX_COMPONENT`, or the one `make build`
/// writes. Panics with instructions when it is missing (never skips).
pub fn component_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ACTIONBOX_COMPONENT") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join("target/wasm32-wasip2/release/shipstation.wasm");
    assert!(
        p.exists(),
        "{} is missing: run `make build` (or `make test`, which builds it) first",
        p.display()
    );
    p
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `actionbox` binary built next to the running test binary.
pub fn actionbox_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target profile dir");
    let bin = dir.join("actionbox");
    assert!(
        bin.exists(),
        "{} is missing: run the tests through `make test`",
        bin.display()
    );
    bin
}

/// A fresh engine with the ShipStation component loaded.
pub async fn load_action() -> (ActionEngine, ActionComponent) {
    let engine = ActionEngine::new().expect("engine");
    let action = engine.load(&component_path()).await.expect("component loads");
    (engine, action)
}

/// Integration settings pointing at `sim`, with its key and a `timeout_secs` timeout.
pub fn settings_for(sim: &Simulator, timeout_secs: u64) -> IntegrationSettings {
    let mut s = IntegrationSettings::new(
        BaseUrl::parse(&sim.base_url()).expect("sim url"),
        Some(ApiKey::new(sim.api_key()).expect("key")),
    );
    s.timeout = actionbox::ActionTimeout::from_secs(timeout_secs).expect("timeout");
    s
}

/// The hostile test component (`tests/hostile-guest`), built by `make build`.
pub fn hostile_component_path() -> PathBuf {
    let p = workspace_root().join("target/wasm32-wasip2/release/hostile_guest.wasm");
    assert!(p.exists(), "{} is missing: run `make build` first", p.display());
    p
}

/// Everything logged through `tracing` in this test process, at every level.
static TRACE_CAPTURE: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();

#[derive(Clone)]
struct CaptureWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install (once per process) a TRACE-level subscriber that records every
/// event, so tests can check what the host logged.
pub fn capture_traces() {
    TRACE_CAPTURE.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = CaptureWriter(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    });
}

/// Everything captured so far, as text.
pub fn captured_traces() -> String {
    TRACE_CAPTURE
        .get()
        .and_then(|b| b.lock().ok().map(|b| String::from_utf8_lossy(&b).into_owned()))
        .unwrap_or_default()
}

/// A fresh directory for a test's files.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("actionbox-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `[[integration]]` "shop" of kind shipstation at `base_url`, key from
/// `SHIPSTATION_API_KEY`.
pub fn shipstation_integration(base_url: &str) -> String {
    format!(
        "[[integration]]\nname = \"shop\"\nkind = \"shipstation\"\ncomponent = {:?}\napi_key_env = \"SHIPSTATION_API_KEY\"\nbase_url = {:?}\n",
        component_path().display().to_string(),
        base_url
    )
}

/// Write `text` as `actionbox.toml` in a fresh directory.
pub fn write_config(tag: &str, text: &str) -> PathBuf {
    let path = temp_dir(tag).join("actionbox.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The Python interpreter of the virtualenv `make test` installs the `mcp`
/// client package into.
pub fn python_with_mcp() -> PathBuf {
    let p = workspace_root().join("target/pyenv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run the tests through `make test` (it installs the mcp client)",
        p.display()
    );
    p
}

/// What a CLI run printed.
pub struct CliOutput {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Run the `actionbox` binary with `args` at `RUST_LOG=trace`, with
/// `SHIPSTATION_API_KEY` set to `key` (or unset), off the async runtime.
impl From<std::process::Output> for CliOutput {
    fn from(out: std::process::Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub async fn run_actionbox(args: &[&str], key: Option<&str>) -> CliOutput {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let key = key.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(actionbox_bin());
        cmd.args(&args)
            .env_remove("SHIPSTATION_API_KEY")
            .env("RUST_LOG", "trace");
        if let Some(k) = key {
            cmd.env("SHIPSTATION_API_KEY", k);
        }
        CliOutput::from(cmd.output().expect("actionbox runs"))
    })
    .await
    .expect("join")
}
