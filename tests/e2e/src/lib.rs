//! Helpers for the end-to-end tests: the real component, loaded by the real
//! host, talking real HTTP to the simulator on loopback.

pub mod api;
pub mod otlp;

use actionbox_runtime::{ActionComponent, ActionEngine, ApiKey, BaseUrl, IntegrationSettings};
use shipstation_sim::Simulator;
use std::path::PathBuf;

/// Where the test components are: `target/` under `make test`, or
/// `target/test-components/` when plain `cargo test` built them (build.rs).
pub fn components_dir() -> PathBuf {
    PathBuf::from(env!("ACTIONBOX_TEST_COMPONENTS"))
}

/// A component under [`components_dir`]; it is always there (build.rs
/// builds it or `make test` did), so a missing one is a broken build.
fn test_component(relative: &str) -> PathBuf {
    let p = components_dir().join(relative);
    assert!(
        p.exists(),
        "{} is missing: run `make test-components` or `cargo test`",
        p.display()
    );
    p
}

/// The ShipStation component: `$ACTIONBOX_COMPONENT`, or the one built for the tests.
pub fn component_path() -> PathBuf {
    match std::env::var_os("ACTIONBOX_COMPONENT") {
        Some(p) => PathBuf::from(p),
        None => test_component("wasm32-wasip2/release/shipstation.wasm"),
    }
}

/// A component built against contract 0.1.0 (`tests/legacy-action`).
pub fn legacy_action_path() -> PathBuf {
    test_component("legacy-action/legacy_action_0_1_0.wasm")
}

/// Whether `path`, a prerequisite only `make test` builds (Node.js, Python,
/// wac artifacts), exists. Plain `cargo test` skips a test that lacks one,
/// printing why; under `make test` (`ACTIONBOX_REQUIRE_ALL_TESTS` set) a
/// missing one fails the test instead, so nothing is skipped there.
pub fn prerequisite(path: &std::path::Path, made_by: &str) -> bool {
    if path.exists() {
        return true;
    }
    let why = format!("{} is missing ({made_by})", path.display());
    assert!(
        std::env::var_os("ACTIONBOX_REQUIRE_ALL_TESTS").is_none(),
        "{why}: `make test` builds it before running the tests"
    );
    // Written to stderr directly, past the test harness's capture, so the
    // reason shows in a plain `cargo test` run.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {why}; `make test` builds it and runs this test"
    );
    false
}

/// Return from the test when [`prerequisite`] says it cannot run here.
#[macro_export]
macro_rules! require {
    ($path:expr, $made_by:expr) => {
        if !$crate::prerequisite(&$path, $made_by) {
            return;
        }
    };
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
    s.timeout = actionbox_runtime::ActionTimeout::from_secs(timeout_secs).expect("timeout");
    s
}

/// The hostile test component (`tests/hostile-guest`), built by `make build`.
pub fn hostile_component_path() -> PathBuf {
    test_component("wasm32-wasip2/release/hostile_guest.wasm")
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
    workspace_root().join("target/pyenv/bin/python")
}

/// What makes [`python_with_mcp`], for [`require!`].
pub const PYTHON_MCP_MADE_BY: &str = "the Python `mcp` client: `make pyenv`";

/// What makes [`hostile_two_memories_path`], for [`require!`].
pub const TWO_MEMORIES_MADE_BY: &str = "wac-composed: `make test-components`";

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

/// The hostile component with a second linear memory plugged in
/// (`tests/hostile-guest`, feature `two-memories`, composed with its
/// `grower.wat` by `make build`): every attack, `multi-memory` included.
pub fn hostile_two_memories_path() -> PathBuf {
    workspace_root().join("target/hostile-guest/hostile_two_memories.wasm")
}

/// The hostile-manifest variants: the cargo features of
/// `tests/hostile-manifest/Cargo.toml` (read by build.rs), each built as
/// `hostile-manifests/<feature>.wasm` under [`components_dir`].
pub fn hostile_manifest_variants() -> Vec<&'static str> {
    env!("ACTIONBOX_HOSTILE_MANIFEST_VARIANTS")
        .split(',')
        .filter(|v| !v.is_empty())
        .collect()
}

/// `target/hostile-manifests/<variant>.wasm`; `default` is the valid one.
pub fn hostile_manifest_path(variant: &str) -> PathBuf {
    test_component(&format!("hostile-manifests/{variant}.wasm"))
}

/// Bytes of each output stream a [`BoundedRun`] keeps; the rest is counted.
const KEPT_OUTPUT_BYTES: usize = 1024 * 1024;

/// What a time-bounded run printed, and how long it took.
pub struct BoundedRun {
    /// Exit code; -1 when killed by a signal (e.g. at the time bound).
    pub code: i32,
    /// The first MiB of standard output.
    pub stdout: String,
    /// The first MiB of standard error.
    pub stderr: String,
    /// Bytes written to standard output in all.
    pub stdout_bytes: u64,
    /// Bytes written to standard error in all.
    pub stderr_bytes: u64,
    /// Wall-clock time from start to exit (or to the kill).
    pub elapsed: std::time::Duration,
    /// Whether it was still running at the bound and had to be killed.
    pub timed_out: bool,
}

/// Read `stream` to its end, keeping the first [`KEPT_OUTPUT_BYTES`]; returns
/// what was kept and the total byte count.
fn drain_bounded(mut stream: impl std::io::Read) -> (Vec<u8>, u64) {
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return (kept, total),
            Ok(n) => {
                total += n as u64;
                let room = KEPT_OUTPUT_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Run the `actionbox` binary with `args` and `env` as an operator would
/// (no `RUST_LOG`, no `SHIPSTATION_API_KEY` unless `env` sets them, standard
/// input closed), killing it if it is still running after `bound`. Blocking:
/// call it from `spawn_blocking` in async tests.
pub fn run_actionbox_bounded(args: &[&str], env: &[(&str, &str)], bound: std::time::Duration) -> BoundedRun {
    run_actionbox_bounded_with_input(args, env, None, bound)
}

/// [`run_actionbox_bounded`], writing `input` (when given) to its standard
/// input before closing it.
pub fn run_actionbox_bounded_with_input(
    args: &[&str],
    env: &[(&str, &str)],
    input: Option<&str>,
    bound: std::time::Duration,
) -> BoundedRun {
    let mut cmd = std::process::Command::new(actionbox_bin());
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("SHIPSTATION_API_KEY")
        .env_remove("ACTIONBOX_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, input, bound)
}

/// Run `cmd` (any program: actionbox, a Python test client), writing `input`
/// (when given) to its standard input before closing it, and kill it if it
/// is still running after `bound`. Blocking: call it from `spawn_blocking`
/// in async tests.
pub fn run_bounded(mut cmd: std::process::Command, input: Option<&str>, bound: std::time::Duration) -> BoundedRun {
    use std::process::Stdio;
    let started = std::time::Instant::now();
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{program} does not start: {e}"));
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        let input = input.to_string();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || drain_bounded(stdout));
    let err_reader = std::thread::spawn(move || drain_bounded(stderr));
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() >= bound {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait for the killed child");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let (stdout, stdout_bytes) = out_reader.join().expect("stdout reader");
    let (stderr, stderr_bytes) = err_reader.join().expect("stderr reader");
    BoundedRun {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout_bytes,
        stderr_bytes,
        elapsed,
        timed_out,
    }
}

/// What a [`ServeProcess`] has written to standard error so far.
#[derive(Debug, Default)]
struct StderrTally {
    /// The first MiB.
    head: Vec<u8>,
    /// Every byte, counted.
    bytes: u64,
}

/// `actionbox serve` as a child process (the real binary, so its memory can
/// be measured on its own), on a loopback port it picks itself. Killed when
/// dropped.
pub struct ServeProcess {
    child: std::process::Child,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stderr: std::sync::Arc<std::sync::Mutex<StderrTally>>,
}

impl ServeProcess {
    /// Start `actionbox serve --config <config> --listen 127.0.0.1:0 --no-auth`
    /// with `env` (no `RUST_LOG`: the operator's default), and wait up to
    /// `bound` for it to say where it listens. When it exits (or stays
    /// silent) instead, the run is returned as the error. Blocking.
    pub fn start(
        config: &std::path::Path,
        env: &[(&str, &str)],
        bound: std::time::Duration,
    ) -> Result<Self, BoundedRun> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let started = std::time::Instant::now();
        let mut cmd = Command::new(actionbox_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--no-auth"])
            .env_remove("RUST_LOG")
            .env_remove("SHIPSTATION_API_KEY")
            .env_remove("ACTIONBOX_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("actionbox serve starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let tally = std::sync::Arc::new(std::sync::Mutex::new(StderrTally::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<std::net::SocketAddr>();
        let writer = tally.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stderr);
            let mut line = Vec::new();
            let mut announced = false;
            loop {
                line.clear();
                // Lines are read whole; a flood of them is counted, and only
                // the first MiB is kept.
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if let Ok(mut t) = writer.lock() {
                            t.bytes += n as u64;
                            let room = KEPT_OUTPUT_BYTES.saturating_sub(t.head.len());
                            t.head.extend_from_slice(&line[..n.min(room)]);
                        }
                        if !announced {
                            let text = String::from_utf8_lossy(&line);
                            if let Some(rest) = text.split("serving on http://").nth(1) {
                                let addr = rest.split_whitespace().next().unwrap_or_default();
                                if let Ok(addr) = addr.parse() {
                                    announced = true;
                                    let _ = addr_tx.send(addr);
                                }
                            }
                        }
                    }
                }
            }
        });
        let failed = |mut child: std::process::Child, timed_out: bool| {
            if timed_out {
                let _ = child.kill();
            }
            let status = child.wait().expect("wait for actionbox serve");
            // Let the reader take the last of the output.
            std::thread::sleep(std::time::Duration::from_millis(100));
            let t = tally.lock().expect("stderr tally");
            BoundedRun {
                code: status.code().unwrap_or(-1),
                stdout: String::new(),
                stderr: String::from_utf8_lossy(&t.head).into_owned(),
                stdout_bytes: 0,
                stderr_bytes: t.bytes,
                elapsed: started.elapsed(),
                timed_out,
            }
        };
        loop {
            match addr_rx.recv_timeout(std::time::Duration::from_millis(50)) {
                Ok(addr) => {
                    return Ok(Self {
                        child,
                        addr,
                        stderr: tally,
                    })
                }
                Err(_) if child.try_wait().ok().flatten().is_some() => return Err(failed(child, false)),
                Err(_) if started.elapsed() >= bound => return Err(failed(child, true)),
                Err(_) => {}
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's peak resident memory so far (`VmHWM` in
    /// /proc/<pid>/status), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc/<pid>/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status");
        kib * 1024
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Bytes it has written to standard error so far.
    pub fn stderr_bytes(&self) -> u64 {
        self.stderr.lock().map(|t| t.bytes).unwrap_or_default()
    }

    /// The first MiB of its standard error.
    pub fn stderr_head(&self) -> String {
        self.stderr
            .lock()
            .map(|t| String::from_utf8_lossy(&t.head).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request a [`CaptureServer`] received.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    /// Method and target, e.g. `GET /echo`.
    pub line: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
}

impl CapturedRequest {
    /// Whether `secret` appears anywhere in the request line or headers.
    pub fn carries(&self, secret: &str) -> bool {
        self.line.contains(secret)
            || self
                .headers
                .iter()
                .any(|(n, v)| n.contains(secret) || v.contains(secret))
    }
}

/// A loopback HTTP/1.1 upstream that records every request and reflects the
/// key: `/echo` answers with a body holding the request's `API-Key` value and
/// an `x-echo` header carrying it, as careless upstreams (debug endpoints,
/// error pages) do; every other path answers `200 {}`. One request per
/// connection (`Connection: close`).
pub struct CaptureServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    requests: std::sync::Arc<std::sync::Mutex<Vec<CapturedRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CaptureServer {
    /// Listen on 127.0.0.1 on a free port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(capture_one(stream, log.clone()));
            }
        });
        Self { addr, requests, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The requests so far that carry `secret`.
    pub fn requests_carrying(&self, secret: &str) -> Vec<CapturedRequest> {
        self.requests().into_iter().filter(|r| r.carries(secret)).collect()
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read one request head (at most 64 KiB), record it, answer and close.
async fn capture_one(mut stream: tokio::net::TcpStream, log: std::sync::Arc<std::sync::Mutex<Vec<CapturedRequest>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let key = headers
        .iter()
        .find(|(n, _)| n == "api-key")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
    if let Ok(mut l) = log.lock() {
        l.push(CapturedRequest { line, headers });
    }
    let (extra, body) = if path == "/echo" {
        (
            format!("x-echo: {key}\r\n"),
            serde_json::json!({ "echo": key, "note": "your key, reflected" }).to_string(),
        )
    } else {
        (String::new(), "{}".to_string())
    };
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}
