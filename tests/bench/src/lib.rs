//! Shared pieces of `make bench`: where things are, the native baseline
//! (the same ShipStation core compiled natively, with a native HTTP client),
//! the simulator on its own runtime, a stand-in OTLP collector, and the
//! statistics of raw samples.

mod otlp_receiver;

pub use otlp_receiver::{OtlpReceived, OtlpReceiver};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use shipstation_core::{HttpResponse, LogLevel, Transport, TransportError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The simulator's API key in every benchmark (not a secret).
pub const SIM_KEY: &str = "TEST_actionbox_simulator_key";
/// The order every trackOrder benchmark tracks: one shipment, one label,
/// a tracking history (three requests to the simulator).
pub const ORDER_INPUT: &str = r#"{"order_id":"1001"}"#;

/// The verdict column of a results table.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// What `cmd args` prints, trimmed (empty when it cannot run): for the
/// machine description of a report.
pub fn command_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The CPU's model name from /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string()
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/`, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// The release ShipStation component.
pub fn component_path() -> PathBuf {
    target_dir().join("wasm32-wasip2/release/shipstation.wasm")
}

/// The release hostile test component (its `infinite-loop` method spins).
pub fn hostile_component_path() -> PathBuf {
    target_dir().join("wasm32-wasip2/release/hostile_guest.wasm")
}

/// A release binary of this workspace.
pub fn release_bin(name: &str) -> PathBuf {
    target_dir().join("release").join(name)
}

/// Where benchmarks leave raw per-call samples for the report.
pub fn raw_dir() -> PathBuf {
    target_dir().join("bench/raw")
}

/// Fail with the command that builds what is missing.
pub fn require(path: &Path) -> Result<()> {
    anyhow::ensure!(
        path.exists(),
        "{} is missing; run `make bench` (it builds everything first)",
        path.display()
    );
    Ok(())
}

/// Per-call durations of one benchmark, in nanoseconds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Samples {
    /// What was measured.
    pub name: String,
    /// One entry per call.
    pub nanos: Vec<u64>,
}

impl Samples {
    /// An empty sample set.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            nanos: Vec::new(),
        }
    }

    /// Record one call.
    pub fn push(&mut self, d: Duration) {
        self.nanos.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Write to `raw_dir()/<file>.json`.
    pub fn save(&self, file: &str) -> Result<()> {
        let dir = raw_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{file}.json"));
        std::fs::write(&path, serde_json::to_vec(self)?).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Read what a benchmark saved.
    pub fn load(file: &str) -> Result<Self> {
        let path = raw_dir().join(format!("{file}.json"));
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {} (run the criterion benchmarks first: make bench)",
                path.display()
            )
        })?;
        Ok(serde_json::from_slice(&text)?)
    }

    /// Median, p99 and spread.
    pub fn stats(&self) -> Stats {
        Stats::of(&self.nanos)
    }
}

/// Summary of a distribution (nanoseconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Number of samples.
    pub n: usize,
    /// Smallest.
    pub min: u64,
    /// 25th percentile.
    pub p25: u64,
    /// Median.
    pub p50: u64,
    /// 75th percentile.
    pub p75: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Stats {
    /// Nearest-rank percentiles of `values`.
    pub fn of(values: &[u64]) -> Self {
        let mut v = values.to_vec();
        v.sort_unstable();
        let at = |q: f64| -> u64 {
            if v.is_empty() {
                return 0;
            }
            let rank = (q * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        };
        Self {
            n: v.len(),
            min: v.first().copied().unwrap_or(0),
            p25: at(0.25),
            p50: at(0.50),
            p75: at(0.75),
            p99: at(0.99),
            max: v.last().copied().unwrap_or(0),
        }
    }

    /// Interquartile range.
    pub fn iqr(&self) -> u64 {
        self.p75.saturating_sub(self.p25)
    }
}

/// How the native baseline uses connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// A new TCP connection for every request, as the sandbox's outbound
    /// connector does: the same exchanges on the wire.
    PerRequest,
    /// One keep-alive agent per call: the first request's connection is
    /// reused by the next ones, as a native service would typically do.
    KeepAlive,
}

/// The ShipStation core's transport for the native baseline: blocking
/// `ureq`, the key added by the caller like the host does.
pub struct NativeTransport {
    agent: ureq::Agent,
    connections: Connections,
    budget: Duration,
    base_url: String,
    api_key: String,
    deadline: Instant,
}

impl NativeTransport {
    /// A transport to `base_url` with `budget` to spend.
    pub fn new(base_url: &str, api_key: &str, budget: Duration, connections: Connections) -> Self {
        Self {
            agent: agent(budget),
            connections,
            budget,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            deadline: Instant::now() + budget,
        }
    }
}

fn agent(budget: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(budget))
        .build()
        .into()
}

impl Transport for NativeTransport {
    fn get(&mut self, path_and_query: &str) -> Result<HttpResponse, TransportError> {
        if self.connections == Connections::PerRequest {
            self.agent = agent(self.budget);
        }
        let url = format!("{}{path_and_query}", self.base_url);
        let mut response = self
            .agent
            .get(&url)
            .header("Accept", "application/json")
            .header("API-Key", &self.api_key)
            .call()
            .map_err(|e| match e {
                ureq::Error::Timeout(_) => TransportError::Timeout(e.to_string()),
                other => TransportError::Connection(other.to_string()),
            })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(8 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| TransportError::TooLarge(e.to_string()))?;
        Ok(HttpResponse { status, headers, body })
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn log(&mut self, _level: LogLevel, _message: &str) {}
}

/// trackOrder natively: the same core, same requests, no sandbox.
pub fn native_track_order(
    base_url: &str,
    input: &str,
    connections: Connections,
) -> Result<String, shipstation_core::ActionError> {
    let mut transport = NativeTransport::new(base_url, SIM_KEY, Duration::from_secs(10), connections);
    shipstation_core::invoke("trackOrder", input, &mut transport)
}

/// A simulator on a runtime thread of its own, so serving it does not
/// share the measured code's executor.
pub struct SimulatorThread {
    /// Its base URL.
    pub base_url: String,
    /// The running simulator (faults can be added while it runs).
    pub sim: std::sync::Arc<shipstation_sim::Simulator>,
    _runtime: tokio::runtime::Runtime,
}

impl SimulatorThread {
    /// Start the default fixtures with recording off.
    pub fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("simulator")
            .enable_all()
            .build()?;
        let sim = runtime.block_on(shipstation_sim::Simulator::start())?;
        sim.set_recording(false);
        Ok(Self {
            base_url: sim.base_url(),
            sim: std::sync::Arc::new(sim),
            _runtime: runtime,
        })
    }
}
