//! `make bench`, workspaces at scale (issue 13, "Scale, measured"): one
//! `actionbox serve --store` holding N workspaces (default 10,000), each a
//! ShipStation integration on the simulator, its default action `trackOrder`
//! and one custom action, measured as whole processes on loopback:
//!
//! 1. seeding through the admin API, at a fixed number of parallel requests;
//! 2. start-up on the seeded store, the first call of a cold workspace,
//!    warming all N (one tools call each), idle RSS;
//! 3. invoke latency over random workspaces next to a single-workspace
//!    server, and the throughput cost of history next to `serve --config`
//!    (which keeps none);
//! 4. two replicas on one PostgreSQL: how soon replica B serves an action
//!    created through replica A.
//!
//! Writes `target/bench/workspaces.md` and, for the default N, puts the same
//! section into BENCHMARKS.md between marker comments: bench-report rewrites
//! that file whole, so `make bench` runs this after it.
//!
//! `workspace-bench [--workspaces N] [--concurrency C] [--seconds S] [--seed-concurrency P]`

use actionbox_bench::{
    command_line, component_path, cpu_model, load_average, release_bin, require, target_dir, verdict, workspace_root,
    Stats, SIM_KEY,
};
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The operator's bearer token of every store server here (not a secret).
const OPERATOR_TOKEN: &str = "bench-operator-token-0123456789abcdef";
/// The bearer token of the `serve --config` baseline (not a secret).
const CONFIG_TOKEN: &str = "bench-config-token-0123456789abcdef";
/// The integration every workspace has.
const INTEGRATION: &str = "shipstation";
/// The default action the ShipStation component adds (the one invoked).
const DEFAULT_ACTION: &str = "trackOrder";
/// The custom action every workspace has.
const CUSTOM_ACTION: &str = "track_shopify_order";
/// What every invoke sends: the simulator's order 1001 (three requests upstream).
const INVOKE_BODY: &str = r#"{"params":{"order_id":"1001"}}"#;
/// Where this bench's section starts and ends in BENCHMARKS.md.
const MARK_BEGIN: &str = "<!-- workspace-bench:begin (written by target/release/workspace-bench) -->";
const MARK_END: &str = "<!-- workspace-bench:end -->";
/// The default number of workspaces: the issue's figure.
const DEFAULT_WORKSPACES: usize = 10_000;
/// Rounds of change → visible on the other replica.
const REPLICA_ROUNDS: usize = 20;
/// How often replica B is asked whether it serves the new action.
const REPLICA_POLL: Duration = Duration::from_millis(20);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workspace-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the command line chose.
struct Options {
    workspaces: usize,
    /// Connections wrk keeps busy in the latency and throughput runs.
    concurrency: usize,
    /// Seconds of each timed wrk run.
    seconds: u64,
    /// Parallel requests while seeding and warming.
    seed_concurrency: usize,
}

fn options() -> Result<Options> {
    let mut o = Options {
        workspaces: DEFAULT_WORKSPACES,
        concurrency: 16,
        seconds: 8,
        seed_concurrency: 12,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |name: &str| -> Result<usize> {
            let v = args.next().with_context(|| format!("{name} needs a number"))?;
            let n: usize = v.parse().with_context(|| format!("{name} {v}: not a number"))?;
            anyhow::ensure!(n >= 1, "{name} must be at least 1");
            Ok(n)
        };
        match flag.as_str() {
            "--workspaces" => o.workspaces = value("--workspaces")?,
            "--concurrency" => o.concurrency = value("--concurrency")?,
            "--seconds" => o.seconds = value("--seconds")? as u64,
            "--seed-concurrency" => o.seed_concurrency = value("--seed-concurrency")?,
            "-h" | "--help" => {
                println!(
                    "workspace-bench [--workspaces N (10000)] [--concurrency C (16)] [--seconds S (8)] \
                     [--seed-concurrency P (12)]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    Ok(o)
}

fn run() -> Result<()> {
    let opts = options()?;
    for p in [
        component_path(),
        release_bin("actionbox"),
        release_bin("shipstation-sim"),
    ] {
        require(&p)?;
    }
    Command::new("wrk")
        .arg("--version")
        .output()
        .context("wrk is not installed (make bench installs it: apt-get install wrk)")?;
    let started = Instant::now();
    let machine = machine_info();
    let dir = target_dir().join("bench/workspaces-scratch");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let master_key = dir.join("master.key");
    let status = Command::new(release_bin("actionbox"))
        .args(["store", "init-master-key"])
        .arg(&master_key)
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "actionbox store init-master-key failed");
    let env = ServeEnv {
        master_key,
        cache: dir.join("cache"),
    };
    let (_sim, base_url) = start_simulator(&dir)?;
    let component = std::fs::read(component_path())?;

    eprintln!("[1/4] seeding {} workspaces", opts.workspaces);
    let store_url = format!("sqlite:{}", dir.join("store.db").display());
    let seeding = seed_store(&opts, &env, &store_url, &component, &base_url)?;

    eprintln!("[2/4] restart on the seeded store, cold call, warm all");
    let (server, scale) = start_and_warm(&opts, &env, &store_url, &seeding.tokens)?;

    eprintln!("[3/4] invoke: {} workspaces vs 1 vs serve --config", opts.workspaces);
    let load = compare_invoke(&opts, &env, &dir, &server, &seeding.tokens, &component, &base_url)?;
    drop(server);

    eprintln!("[4/4] two replicas on one PostgreSQL");
    let replicas = replicas(&env, &component, &base_url);

    let md = report(&opts, &machine, &seeding, &scale, &load, &replicas, started.elapsed());
    let out = target_dir().join("bench/workspaces.md");
    std::fs::write(&out, &md).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    if opts.workspaces == DEFAULT_WORKSPACES {
        let path = workspace_root().join("BENCHMARKS.md");
        splice_section(&path, &md)?;
        println!("updated {} (section `Workspaces at scale`)", path.display());
    } else {
        println!("(BENCHMARKS.md is only updated with the default --workspaces {DEFAULT_WORKSPACES})\n\n{md}");
    }
    Ok(())
}

// ---- processes

/// A child process, killed when dropped, whose stderr is drained so it can
/// never block on a full pipe (the last lines are kept for error messages).
struct Proc {
    child: Child,
    label: String,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// stderr lines that look like warnings or errors.
    complaints: Arc<AtomicUsize>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Spawn `cmd`; `ready` picks a value out of a stderr line (e.g. the
    /// listen address); returns once it did, with the time from spawn.
    fn spawn<T: Send + 'static>(
        label: &str,
        mut cmd: Command,
        ready: fn(&str) -> Option<T>,
    ) -> Result<(Proc, T, Duration)> {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("cannot start {label}"))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let complaints = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        {
            let tail = tail.clone();
            let complaints = complaints.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(std::io::Result::ok) {
                    if let Some(v) = ready(&line) {
                        let _ = tx.send((v, Instant::now()));
                    }
                    if line.contains("WARN") || line.contains("ERROR") {
                        complaints.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    t.push_back(line);
                    if t.len() > 20 {
                        t.pop_front();
                    }
                }
            });
        }
        let mut proc = Proc {
            child,
            label: label.to_string(),
            tail,
            complaints,
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok((v, at)) => Ok((proc, v, at - spawned)),
            Err(_) => {
                let _ = proc.child.kill();
                std::thread::sleep(Duration::from_millis(100));
                bail!("{label} did not start: {}", proc.tail_text())
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn tail_text(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// `VmRSS` and `VmHWM` in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// The address in `… on http://ADDR (…` (both `serve` modes print it).
fn listen_addr(line: &str) -> Option<SocketAddr> {
    let at = line.rfind(" on http://")?;
    line[at + " on http://".len()..].split_whitespace().next()?.parse().ok()
}

fn start_simulator(dir: &Path) -> Result<(Proc, String)> {
    let url_file = dir.join("sim-url");
    let mut cmd = Command::new(release_bin("shipstation-sim"));
    cmd.arg("--url-file").arg(&url_file).arg("--api-key").arg(SIM_KEY);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = cmd.spawn().context("cannot start shipstation-sim")?;
    let proc = Proc {
        child,
        label: "shipstation-sim".into(),
        tail: Arc::default(),
        complaints: Arc::default(),
    };
    for _ in 0..200 {
        if let Ok(s) = std::fs::read_to_string(&url_file) {
            if !s.trim().is_empty() {
                return Ok((proc, s.trim().to_string()));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} wrote no URL to {}", proc.label, url_file.display())
}

/// What every store server gets from its environment.
struct ServeEnv {
    master_key: PathBuf,
    cache: PathBuf,
}

/// A running `actionbox serve`.
struct Server {
    proc: Proc,
    api: Api,
    /// Process start → its "serving … on http://ADDR" line.
    startup: Duration,
}

fn start_store_server(label: &str, env: &ServeEnv, store_url: &str) -> Result<Server> {
    let mut cmd = Command::new(release_bin("actionbox"));
    cmd.args([
        "serve",
        "--store",
        store_url,
        "--listen",
        "127.0.0.1:0",
        "--allow-private-base-urls",
    ])
    .env("ACTIONBOX_OPERATOR_TOKEN", OPERATOR_TOKEN)
    .env("ACTIONBOX_MASTER_KEY_FILE", &env.master_key)
    .env("ACTIONBOX_CACHE_DIR", &env.cache)
    .env("RUST_LOG", "warn");
    let (proc, addr, startup) = Proc::spawn(label, cmd, listen_addr)?;
    Ok(Server {
        proc,
        api: Api::new(addr),
        startup,
    })
}

fn start_config_server(env: &ServeEnv, dir: &Path, base_url: &str) -> Result<Server> {
    let config = dir.join("actionbox.toml");
    std::fs::write(
        &config,
        format!(
            "[[integration]]\nname = \"{INTEGRATION}\"\nkind = \"shipstation\"\ncomponent = \"{}\"\n\
             api_key_env = \"SHIPSTATION_API_KEY\"\ntimeout = 10\nbase_url = \"{base_url}\"\n\n\
             [[action]]\nname = \"{CUSTOM_ACTION}\"\nintegration = \"{INTEGRATION}\"\nmethod = \"trackOrder\"\n\
             description = \"Track a Shopify order's shipment.\"\nexecution = \"during-interaction\"\n\
             trigger = \"inbound\"\n",
            component_path().display()
        ),
    )?;
    let mut cmd = Command::new(release_bin("actionbox"));
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env("ACTIONBOX_AUTH_TOKEN", CONFIG_TOKEN)
        .env("SHIPSTATION_API_KEY", SIM_KEY)
        .env("ACTIONBOX_CACHE_DIR", &env.cache)
        .env("RUST_LOG", "warn");
    let (proc, addr, startup) = Proc::spawn("actionbox serve --config", cmd, listen_addr)?;
    Ok(Server {
        proc,
        api: Api::new(addr),
        startup,
    })
}

// ---- HTTP

/// A keep-alive HTTP/1.1 client to one server.
#[derive(Clone)]
struct Api {
    agent: ureq::Agent,
    addr: SocketAddr,
}

impl Api {
    fn new(addr: SocketAddr) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(64)
            .build()
            .into();
        Api { agent, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn answer(r: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<(u16, String)> {
        let mut r = r?;
        let status = r.status().as_u16();
        let body = r.body_mut().with_config().limit(64 << 20).read_to_string()?;
        Ok((status, body))
    }

    fn get(&self, path: &str, token: &str) -> Result<(u16, String)> {
        Self::answer(
            self.agent
                .get(self.url(path))
                .header("Authorization", format!("Bearer {token}"))
                .call(),
        )
    }

    fn post(&self, path: &str, token: &str, json: &str) -> Result<(u16, String)> {
        Self::answer(
            self.agent
                .post(self.url(path))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .send(json),
        )
    }

    fn put(&self, path: &str, token: &str, json: &str) -> Result<(u16, String)> {
        Self::answer(
            self.agent
                .put(self.url(path))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .send(json),
        )
    }

    fn post_wasm(&self, path: &str, token: &str, bytes: &[u8]) -> Result<(u16, String)> {
        Self::answer(
            self.agent
                .post(self.url(path))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/wasm")
                .send(bytes),
        )
    }
}

/// The body of an answer whose status is one of `want`, else an error
/// naming `what`.
fn expect(answer: Result<(u16, String)>, want: &[u16], what: &str) -> Result<String> {
    let (status, body) = answer.with_context(|| what.to_string())?;
    if !want.contains(&status) {
        bail!("{what}: HTTP {status}: {}", body.chars().take(400).collect::<String>());
    }
    Ok(body)
}

fn json_field(body: &str, field: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))?;
    v.get(field)
        .and_then(|f| f.as_str())
        .map(str::to_string)
        .with_context(|| format!("no `{field}` in {body}"))
}

fn workspace_id(i: usize) -> String {
    format!("ws{i:05}")
}

/// Register the ShipStation component; its `sha256:…` reference.
fn register_component(api: &Api, component: &[u8]) -> Result<String> {
    let body = expect(
        api.post_wasm("/v1/admin/components", OPERATOR_TOKEN, component),
        &[200, 201],
        "register the component",
    )?;
    json_field(&body, "reference")
}

/// How long each admin request of one workspace took.
#[derive(Default)]
struct SeedTimes {
    create: Vec<u64>,
    integration: Vec<u64>,
    action: Vec<u64>,
    token: Vec<u64>,
    quotas: Vec<u64>,
}

impl SeedTimes {
    fn merge(&mut self, other: SeedTimes) {
        self.create.extend(other.create);
        self.integration.extend(other.integration);
        self.action.extend(other.action);
        self.token.extend(other.token);
        self.quotas.extend(other.quotas);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Create workspace `i` through the admin API: the workspace, its
/// integration (the default action comes with it), the custom action, an
/// assistant token (returned), and with `quotas` raised call quotas.
/// Run `step`, adding how long it took to `times`.
fn timed<T>(times: &mut Vec<u64>, step: impl FnOnce() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    let out = step()?;
    times.push(nanos(started.elapsed()));
    Ok(out)
}

fn seed_workspace(
    api: &Api,
    i: usize,
    component_ref: &str,
    base_url: &str,
    quotas: bool,
    times: &mut SeedTimes,
) -> Result<String> {
    let ws = workspace_id(i);
    timed(&mut times.create, || {
        expect(
            api.post(
                "/v1/admin/workspaces",
                OPERATOR_TOKEN,
                &format!(r#"{{"id":"{ws}","display_name":"Merchant {i}"}}"#),
            ),
            &[201],
            "create a workspace",
        )
    })?;
    timed(&mut times.integration, || {
        expect(
            api.put(
                &format!("/v1/workspaces/{ws}/integrations/{INTEGRATION}"),
                OPERATOR_TOKEN,
                &serde_json::json!({
                    "kind": "shipstation",
                    "component": component_ref,
                    "api_key": SIM_KEY,
                    "base_url": base_url,
                    "timeout": 10,
                })
                .to_string(),
            ),
            &[201],
            "add the ShipStation integration",
        )
    })?;
    timed(&mut times.action, || {
        expect(
            api.put(
                &format!("/v1/workspaces/{ws}/actions/{CUSTOM_ACTION}"),
                OPERATOR_TOKEN,
                &serde_json::json!({
                    "integration": INTEGRATION,
                    "method": "trackOrder",
                    "description": "Track a Shopify order's shipment: carrier status, tracking link and delivery dates.",
                    "execution": "during-interaction",
                    "trigger": "inbound",
                    "parameters": { "order_id": { "description": "Shopify order id, e.g. SHOPIFY-123456789" } },
                    "response_instructions": "Give the status and the tracking link.",
                })
                .to_string(),
            ),
            &[201],
            "add the custom action",
        )
    })?;
    let body = timed(&mut times.token, || {
        expect(
            api.post(
                &format!("/v1/admin/workspaces/{ws}/tokens"),
                OPERATOR_TOKEN,
                r#"{"scopes":["assistant"],"label":"bench"}"#,
            ),
            &[201],
            "mint an assistant token",
        )
    })?;
    if quotas {
        timed(&mut times.quotas, || {
            expect(
                api.put(
                    &format!("/v1/admin/workspaces/{ws}/quotas"),
                    OPERATOR_TOKEN,
                    r#"{"max_concurrent_calls":1000,"calls_per_minute":10000000}"#,
                ),
                &[200],
                "raise the workspace's quotas",
            )
        })?;
    }
    json_field(&body, "token")
}

/// Run `work(i)` for i in 0..n on `threads` threads; results by index.
fn parallel<T: Send, S: Default + Send>(
    n: usize,
    threads: usize,
    work: impl Fn(usize, &mut S) -> Result<T> + Sync,
) -> Result<(Vec<T>, Vec<S>)> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    let mut per_thread: Vec<(Vec<(usize, T)>, S)> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.min(n).max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    let mut state = S::default();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        match work(i, &mut state) {
                            Ok(v) => done.push((i, v)),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                first_error
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .get_or_insert(e.context(format!("item {i}")));
                            }
                        }
                    }
                    (done, state)
                })
            })
            .collect();
        for h in handles {
            if let Ok(r) = h.join() {
                per_thread.push(r);
            }
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut states = Vec::new();
    for (done, state) in per_thread {
        for (i, v) in done {
            slots[i] = Some(v);
        }
        states.push(state);
    }
    let values = slots
        .into_iter()
        .collect::<Option<Vec<T>>>()
        .context("a worker thread panicked")?;
    Ok((values, states))
}

// ---- 1. seeding

struct Seeding {
    /// One assistant token per workspace, by index.
    tokens: Vec<String>,
    /// Start-up of the first server, on an empty store.
    startup_empty: Duration,
    elapsed: Duration,
    times: SeedTimes,
    /// Completion time of each workspace since seeding began, in order.
    finished_at: Vec<Duration>,
    /// RSS of the seeding server when done (it keeps every catalog it built).
    rss_after_kib: (u64, u64),
    quotas_raised: bool,
    db_bytes: u64,
}

fn seed_store(opts: &Options, env: &ServeEnv, store_url: &str, component: &[u8], base_url: &str) -> Result<Seeding> {
    let server = start_store_server("actionbox serve --store (seeding)", env, store_url)?;
    let component_ref = register_component(&server.api, component)?;
    // Default quotas (600 calls a minute) would answer 429 when a small N
    // shares the whole load; with 1,000 and more they are far from reached.
    let quotas_raised = opts.workspaces < 1000;
    let began = Instant::now();
    let finished = Mutex::new(Vec::with_capacity(opts.workspaces));
    let progress_every = (opts.workspaces / 10).max(1);
    let (tokens, states) = parallel(opts.workspaces, opts.seed_concurrency, |i, times: &mut SeedTimes| {
        let token = seed_workspace(&server.api, i, &component_ref, base_url, quotas_raised, times)?;
        let mut f = finished.lock().unwrap_or_else(|p| p.into_inner());
        f.push(began.elapsed());
        if f.len() % progress_every == 0 {
            eprintln!(
                "  {} workspaces seeded in {:.1} s",
                f.len(),
                began.elapsed().as_secs_f64()
            );
        }
        Ok(token)
    })
    .with_context(|| format!("seeding failed; server log: {}", server.proc.tail_text()))?;
    let elapsed = began.elapsed();
    let mut times = SeedTimes::default();
    for s in states {
        times.merge(s);
    }
    let rss_after_kib = server.proc.memory_kib();
    let startup_empty = server.startup;
    drop(server);
    let db_bytes = ["store.db", "store.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(Path::new(store_url.trim_start_matches("sqlite:")).with_file_name(f)).ok())
        .map(|m| m.len())
        .sum();
    Ok(Seeding {
        tokens,
        startup_empty,
        elapsed,
        times,
        finished_at: finished.into_inner().unwrap_or_else(|p| p.into_inner()),
        rss_after_kib,
        quotas_raised,
        db_bytes,
    })
}

// ---- 2. start-up, cold and warm

struct Scale {
    startup: Duration,
    rss_start_kib: u64,
    first_cold: Duration,
    cold_calls: Stats,
    warm_all: Duration,
    rss_warm_kib: (u64, u64),
    /// A second pass over all N, now cached.
    warm_calls: Stats,
}

fn tools_path(i: usize) -> String {
    format!("/v1/workspaces/{}/tools", workspace_id(i))
}

fn tools_call(api: &Api, i: usize, token: &str) -> Result<Duration> {
    let t = Instant::now();
    let body = expect(api.get(&tools_path(i), token), &[200], "list a workspace's tools")?;
    let took = t.elapsed();
    anyhow::ensure!(
        body.contains(&format!("\"{DEFAULT_ACTION}\"")) && body.contains(&format!("\"{CUSTOM_ACTION}\"")),
        "workspace {} does not list both actions: {body}",
        workspace_id(i)
    );
    Ok(took)
}

fn start_and_warm(opts: &Options, env: &ServeEnv, store_url: &str, tokens: &[String]) -> Result<(Server, Scale)> {
    let server = start_store_server("actionbox serve --store", env, store_url)?;
    let (rss_start_kib, _) = server.proc.memory_kib();
    let n = tokens.len();
    // The first call of all: its workspace is built from the store and the
    // shared component loaded (from the compile cache) on the way.
    let first = n / 2;
    let first_cold = tools_call(&server.api, first, &tokens[first])?;
    let began = Instant::now();
    let (cold, _): (Vec<Duration>, Vec<()>) = parallel(n, opts.seed_concurrency, |i, _: &mut ()| {
        if i == first {
            return Ok(Duration::ZERO);
        }
        tools_call(&server.api, i, &tokens[i])
    })?;
    let warm_all = began.elapsed() + first_cold;
    std::thread::sleep(Duration::from_secs(2));
    let rss_warm_kib = server.proc.memory_kib();
    let (warm, _): (Vec<Duration>, Vec<()>) = parallel(n, opts.seed_concurrency, |i, _: &mut ()| {
        tools_call(&server.api, i, &tokens[i])
    })?;
    let cold: Vec<u64> = cold
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != first)
        .map(|(_, d)| nanos(*d))
        .collect();
    let warm: Vec<u64> = warm.iter().map(|d| nanos(*d)).collect();
    let scale = Scale {
        startup: server.startup,
        rss_start_kib,
        first_cold,
        cold_calls: Stats::of(&cold),
        warm_all,
        rss_warm_kib,
        warm_calls: Stats::of(&warm),
    };
    Ok((server, scale))
}

// ---- 3. invoke latency and the cost of history

/// What one wrk run measured (wrk's own `done` hook prints it).
#[derive(Debug, Default, Clone, Copy)]
struct WrkRun {
    requests: u64,
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: u64,
    socket_errors: u64,
    /// The server's CPU time (user + system) per request, in ms.
    cpu_ms_per_call: f64,
}

/// A wrk script that sends `method` (POST: with `INVOKE_BODY`) to a random
/// one of `targets` (path, bearer token) per request.
fn wrk_script(path: &Path, method: &str, targets: &[(String, String)]) -> Result<()> {
    let mut lua = String::from("local targets = {\n");
    for (p, t) in targets {
        let safe = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b));
        anyhow::ensure!(safe(p) && safe(t), "unexpected characters in {p} or its token");
        let _ = writeln!(lua, "  {{\"{p}\", \"Bearer {t}\"}},");
    }
    let body = if method == "POST" {
        format!("'{INVOKE_BODY}'")
    } else {
        "nil".to_string()
    };
    let _ = write!(
        lua,
        "}}\nlocal n = #targets\nlocal body = {body}\nlocal counter = 0\n\
         function setup(thread)\n  counter = counter + 1\n  thread:set(\"id\", counter)\nend\n\
         function init(args)\n  math.randomseed(os.time() * 1000 + (id or 0) * 7919)\nend\n\
         function request()\n  local t = targets[math.random(n)]\n  \
         return wrk.format(\"{method}\", t[1], {{[\"Authorization\"] = t[2], [\"Content-Type\"] = \"application/json\"}}, body)\nend\n\
         function done(summary, latency, requests)\n  local e = summary.errors\n  \
         io.write(string.format(\"WRK-RESULT %.0f %.0f %.0f %.0f %.0f %.0f\\n\", summary.requests, summary.duration, \
         latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))\nend\n"
    );
    std::fs::write(path, lua)?;
    Ok(())
}

/// The CPU time `pid` has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| command_line("getconf", &["CLK_TCK"]).parse().unwrap_or(100.0));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the 3rd, utime the 14th, stime the 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<f64> = after.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / ticks
}

fn run_wrk(script: &Path, server: &Server, connections: usize, seconds: u64) -> Result<WrkRun> {
    let addr = server.api.addr;
    let cpu_before = cpu_seconds(server.proc.pid());
    let out = Command::new("wrk")
        .arg(format!("-t{}", connections.min(2)))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["--timeout", "30s", "-s"])
        .arg(script)
        .arg(format!("http://{addr}"))
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("WRK-RESULT "))
        .with_context(|| format!("wrk printed no result: {text} {}", String::from_utf8_lossy(&out.stderr)))?;
    let cpu = cpu_seconds(server.proc.pid()) - cpu_before;
    let v: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    anyhow::ensure!(v.len() == 6, "cannot read wrk's result `{line}`");
    Ok(WrkRun {
        requests: v[0] as u64,
        rate: v[0] / (v[1] / 1e6).max(1e-9),
        p50_us: v[2],
        p99_us: v[3],
        non_2xx: v[4] as u64,
        socket_errors: v[5] as u64,
        cpu_ms_per_call: cpu * 1e3 / v[0].max(1.0),
    })
}

/// The three servers compared, over two rounds in opposite orders.
struct Load {
    /// Per server: its runs (round 1, round 2).
    many: Vec<WrkRun>,
    single: Vec<WrkRun>,
    config: Vec<WrkRun>,
    /// History records the store servers dropped (queue full or store error).
    dropped_many: u64,
    dropped_single: u64,
    /// Tools (no invoke, no history) on the 1-workspace server and on `--config`.
    tools_single: WrkRun,
    tools_config: WrkRun,
    connections: usize,
    seconds: u64,
    complaints: usize,
}

fn mean(runs: &[WrkRun], f: fn(&WrkRun) -> f64) -> f64 {
    runs.iter().map(f).sum::<f64>() / runs.len().max(1) as f64
}

fn history_dropped(api: &Api) -> u64 {
    api.get("/metrics", OPERATOR_TOKEN)
        .ok()
        .and_then(|(_, text)| {
            text.lines()
                .find(|l| l.starts_with("actionbox_history_dropped_total "))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn check_invoke(api: &Api, path: &str, token: &str, what: &str) -> Result<()> {
    let body = expect(api.post(path, token, INVOKE_BODY), &[200], what)?;
    anyhow::ensure!(body.contains("1001"), "{what}: unexpected answer {body}");
    Ok(())
}

fn compare_invoke(
    opts: &Options,
    env: &ServeEnv,
    dir: &Path,
    many: &Server,
    tokens: &[String],
    component: &[u8],
    base_url: &str,
) -> Result<Load> {
    let invoke_path = |i: usize| format!("/v1/workspaces/{}/actions/{DEFAULT_ACTION}/invoke", workspace_id(i));
    // The single-workspace server: the same binary on a store of its own.
    let single = start_store_server(
        "actionbox serve --store (1 workspace)",
        env,
        &format!("sqlite:{}", dir.join("single.db").display()),
    )?;
    let reference = register_component(&single.api, component)?;
    let single_token = seed_workspace(&single.api, 0, &reference, base_url, true, &mut SeedTimes::default())?;
    let config = start_config_server(env, dir, base_url)?;

    check_invoke(
        &many.api,
        &invoke_path(1),
        &tokens[1],
        "invoke on the N-workspace server",
    )?;
    check_invoke(
        &single.api,
        &invoke_path(0),
        &single_token,
        "invoke on the 1-workspace server",
    )?;
    let config_path = format!("/v1/actions/{DEFAULT_ACTION}/invoke");
    check_invoke(&config.api, &config_path, CONFIG_TOKEN, "invoke on serve --config")?;

    let many_targets: Vec<(String, String)> = (0..tokens.len()).map(|i| (invoke_path(i), tokens[i].clone())).collect();
    let scripts = [
        (dir.join("many.lua"), many_targets),
        (dir.join("single.lua"), vec![(invoke_path(0), single_token.clone())]),
        (dir.join("config.lua"), vec![(config_path, CONFIG_TOKEN.to_string())]),
    ];
    for (path, targets) in &scripts {
        wrk_script(path, "POST", targets)?;
    }
    let servers = [many, &single, &config];
    let mut runs: [Vec<WrkRun>; 3] = Default::default();
    for (k, server) in servers.iter().enumerate() {
        run_wrk(&scripts[k].0, server, opts.concurrency, 2)?; // warm-up
    }
    let dropped_before = [history_dropped(&many.api), history_dropped(&single.api)];
    for order in [[0usize, 1, 2], [2, 1, 0]] {
        for k in order {
            eprintln!(
                "  wrk -c{} {} s → {}",
                opts.concurrency,
                opts.seconds,
                ["N workspaces", "1 workspace", "--config"][k]
            );
            runs[k].push(run_wrk(&scripts[k].0, servers[k], opts.concurrency, opts.seconds)?);
        }
    }
    // The same comparison without the call: what the store path costs
    // outside invoke and history (token lookup, workspace lookup, routing).
    let tools_single_script = dir.join("tools-single.lua");
    wrk_script(&tools_single_script, "GET", &[(tools_path(0), single_token)])?;
    let tools_config_script = dir.join("tools-config.lua");
    wrk_script(
        &tools_config_script,
        "GET",
        &[("/v1/tools".to_string(), CONFIG_TOKEN.to_string())],
    )?;
    eprintln!(
        "  wrk -c{} {} s → tools, 1 workspace and --config",
        opts.concurrency, opts.seconds
    );
    let tools_single = run_wrk(&tools_single_script, &single, opts.concurrency, opts.seconds)?;
    let tools_config = run_wrk(&tools_config_script, &config, opts.concurrency, opts.seconds)?;
    // Let the history writers catch up before reading their counters.
    std::thread::sleep(Duration::from_secs(2));
    let [many_runs, single_runs, config_runs] = runs;
    Ok(Load {
        many: many_runs,
        single: single_runs,
        config: config_runs,
        dropped_many: history_dropped(&many.api) - dropped_before[0],
        dropped_single: history_dropped(&single.api) - dropped_before[1],
        tools_single,
        tools_config,
        connections: opts.concurrency,
        seconds: opts.seconds,
        complaints: [&many.proc, &single.proc, &config.proc]
            .iter()
            .map(|p| p.complaints.load(Ordering::Relaxed))
            .sum(),
    })
}

// ---- 4. replicas on PostgreSQL

struct Replicas {
    /// PUT through A answered → B lists the action, per round.
    visible_after_commit: Vec<u64>,
    /// PUT through A sent → B lists the action.
    visible_after_send: Vec<u64>,
    /// Rounds in which B did not list the action within 10 s.
    not_seen: usize,
    startup_a: Duration,
    startup_b: Duration,
}

fn replicas(env: &ServeEnv, component: &[u8], base_url: &str) -> Result<Replicas, String> {
    replicas_on_postgres(env, component, base_url).map_err(|e| format!("{e:#}"))
}

fn replicas_on_postgres(env: &ServeEnv, component: &[u8], base_url: &str) -> Result<Replicas> {
    let pg = actionbox_pgcluster::PgCluster::start()?;
    let url = pg.url();
    let a = start_store_server("replica A", env, &url)?;
    let b = start_store_server("replica B", env, &url)?;
    let reference = register_component(&a.api, component)?;
    let token = seed_workspace(&a.api, 0, &reference, base_url, false, &mut SeedTimes::default())?;
    let ws = workspace_id(0);
    let tools = format!("/v1/workspaces/{ws}/tools");
    let mut r = Replicas {
        visible_after_commit: Vec::new(),
        visible_after_send: Vec::new(),
        not_seen: 0,
        startup_a: a.startup,
        startup_b: b.startup,
    };
    for round in 0..REPLICA_ROUNDS {
        let name = format!("probe_{round:02}");
        let quoted = format!("\"{name}\"");
        // B serves the workspace from its cache before the change…
        let before = expect(b.api.get(&tools, &token), &[200], "tools on replica B")?;
        anyhow::ensure!(
            !before.contains(&quoted),
            "replica B lists {name} before it was created"
        );
        // …and the change lands at a different point of B's poll cycle each round.
        std::thread::sleep(Duration::from_millis((round as u64 * 37) % 250));
        let sent = Instant::now();
        expect(
            a.api.put(
                &format!("/v1/workspaces/{ws}/actions/{name}"),
                OPERATOR_TOKEN,
                &format!(r#"{{"integration":"{INTEGRATION}","method":"trackOrder","description":"probe {round}"}}"#),
            ),
            &[201],
            "create an action through replica A",
        )?;
        let committed = Instant::now();
        let deadline = committed + Duration::from_secs(10);
        loop {
            let (status, body) = b.api.get(&tools, &token)?;
            if status == 200 && body.contains(&quoted) {
                let now = Instant::now();
                r.visible_after_commit.push(nanos(now - committed));
                r.visible_after_send.push(nanos(now - sent));
                break;
            }
            if Instant::now() > deadline {
                r.not_seen += 1;
                break;
            }
            std::thread::sleep(REPLICA_POLL);
        }
    }
    drop((a, b));
    drop(pg);
    Ok(r)
}

// ---- the report

fn ms(nanos: u64) -> String {
    format!("{:.1}", nanos as f64 / 1e6)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn machine_info() -> String {
    let model = cpu_model();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or_else(
            || "unknown".to_string(),
            |kib| format!("{:.1} GiB", kib as f64 / 1048576.0),
        );
    format!(
        "{} UTC; {model} × {} cores available; {mem} RAM; Linux {}; load average at start {}",
        command_line("date", &["-u", "+%Y-%m-%d %H:%M"]),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        command_line("uname", &["-r"]),
        load_average(),
    )
}

/// Seeding rate (workspaces/s) over the first and the last tenth.
fn seeding_rates(finished_at: &[Duration]) -> (f64, f64) {
    let n = finished_at.len();
    let tenth = (n / 10).max(1);
    if n < 2 {
        return (0.0, 0.0);
    }
    let rate = |from: Duration, to: Duration, count: usize| count as f64 / (to - from).as_secs_f64().max(1e-9);
    let first = rate(Duration::ZERO, finished_at[tenth - 1], tenth);
    let last = rate(finished_at[n - 1 - tenth], finished_at[n - 1], tenth);
    (first, last)
}

fn report(
    opts: &Options,
    machine: &str,
    seeding: &Seeding,
    scale: &Scale,
    load: &Load,
    replicas: &Result<Replicas, String>,
    took: Duration,
) -> String {
    let n = opts.workspaces;
    let mut s = String::new();
    let _ = writeln!(s, "{MARK_BEGIN}\n## Workspaces at scale\n");
    let _ = writeln!(
        s,
        "Written by `target/release/workspace-bench` (tests/bench, run by `make bench` after bench-report). \
         {n} workspaces, each a ShipStation integration on the simulator (its default action `trackOrder`) and a \
         custom action `{CUSTOM_ACTION}`, created through the admin API of `actionbox serve --store sqlite:…` \
         and measured as whole processes on loopback. Machine: {machine}. The run took {:.0} s.\n",
        took.as_secs_f64()
    );

    // Summary table.
    let many_p50 = mean(&load.many, |r| r.p50_us);
    let single_p50 = mean(&load.single, |r| r.p50_us);
    let many_p99 = mean(&load.many, |r| r.p99_us);
    let single_p99 = mean(&load.single, |r| r.p99_us);
    let latency_ratio = many_p50 / single_p50.max(1.0);
    let single_rate = mean(&load.single, |r| r.rate);
    let config_rate = mean(&load.config, |r| r.rate);
    let history_cost = 1.0 - single_rate / config_rate.max(1e-9);
    let rss_ok = mib(scale.rss_warm_kib.0) <= 300.0 * 1e6 / 1048576.0;
    let _ = writeln!(s, "| measure | result | goal | |\n|---|---|---|---|");
    let _ = writeln!(
        s,
        "| seeding {n} workspaces over HTTP ({} parallel requests; 4 requests each{}) | {:.1} s ({:.0} workspaces/s) | (no goal) | |",
        opts.seed_concurrency,
        if seeding.quotas_raised { " + quotas" } else { "" },
        seeding.elapsed.as_secs_f64(),
        n as f64 / seeding.elapsed.as_secs_f64().max(1e-9)
    );
    let _ = writeln!(
        s,
        "| server start-up, process start → listening, on the seeded store | {} ms (empty store: {} ms) | (no goal) | |",
        ms(nanos(scale.startup)),
        ms(nanos(seeding.startup_empty))
    );
    let _ = writeln!(
        s,
        "| first call of a cold workspace (first call after start: tools) | {} ms; later cold workspaces p50 {} ms, p99 {} ms | (no goal) | |",
        ms(nanos(scale.first_cold)),
        ms(scale.cold_calls.p50),
        ms(scale.cold_calls.p99)
    );
    let _ = writeln!(
        s,
        "| warming all {n} (one tools call each, {} parallel) | {:.1} s | (no goal) | |",
        opts.seed_concurrency,
        scale.warm_all.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "| idle RSS with all {n} warm (VmRSS; VmHWM) | **{:.0} MiB**; {:.0} MiB (at start {:.0} MiB) | ≤ 300 MB | {} |",
        mib(scale.rss_warm_kib.0),
        mib(scale.rss_warm_kib.1),
        mib(scale.rss_start_kib),
        verdict(rss_ok)
    );
    let _ = writeln!(
        s,
        "| invoke p50, random workspace of {n} / single-workspace server, at {} connections | **{:.2}×** ({:.2} vs {:.2} ms; p99 {:.2} vs {:.2} ms) | ≤ 1.1× | {} |",
        load.connections,
        latency_ratio,
        many_p50 / 1e3,
        single_p50 / 1e3,
        many_p99 / 1e3,
        single_p99 / 1e3,
        verdict(latency_ratio <= 1.1)
    );
    let _ = writeln!(
        s,
        "| throughput cost of the workspace path with history (1-workspace `--store` vs `serve --config`) | **{:.1} %** ({:.0} vs {:.0} req/s) | ≤ 10 % | {} |",
        history_cost * 100.0,
        single_rate,
        config_rate,
        verdict(history_cost <= 0.10)
    );
    let calls: u64 = load.many.iter().chain(&load.single).map(|r| r.requests).sum();
    let dropped = load.dropped_many + load.dropped_single;
    let _ = writeln!(
        s,
        "| history records dropped during the timed invokes (both `--store` servers) | **{dropped}** of {calls} calls \
         ({:.1} %) | 0 (every call kept) | {} |",
        dropped as f64 * 100.0 / calls.max(1) as f64,
        verdict(dropped == 0)
    );
    match replicas {
        Ok(r) => {
            let st = Stats::of(&r.visible_after_commit);
            let ok = r.not_seen == 0 && st.max <= 1_000_000_000;
            let _ = writeln!(
                s,
                "| change through replica A → served by replica B (PostgreSQL, {} rounds) | p50 **{} ms**, max {} ms{} | ~1 s | {} |",
                r.visible_after_commit.len(),
                ms(st.p50),
                ms(st.max),
                if r.not_seen > 0 { format!(", {} not seen in 10 s", r.not_seen) } else { String::new() },
                verdict(ok)
            );
        }
        Err(e) => {
            let _ = writeln!(
                s,
                "| change through replica A → served by replica B (PostgreSQL) | not measured: {} | ~1 s | **missed** |",
                e.replace('|', "/").replace('\n', " ")
            );
        }
    }

    // Details.
    let (first_rate, last_rate) = seeding_rates(&seeding.finished_at);
    let _ = writeln!(s, "\n### Seeding\n");
    let _ = writeln!(
        s,
        "Each workspace: `POST /v1/admin/workspaces`, `PUT …/integrations/{INTEGRATION}` (kind, component \
         reference, the simulator's key and base URL), `PUT …/actions/{CUSTOM_ACTION}`, `POST …/tokens` (scope \
         `assistant`){}, with the operator token; the component was registered once. Per request, in ms:\n",
        if seeding.quotas_raised {
            ", `PUT …/quotas` (raised, since fewer than 1,000 workspaces would share the load)"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "| request | n | p50 | p99 | max |\n|---|---|---|---|---|");
    for (label, v) in [
        ("create workspace", &seeding.times.create),
        ("put integration", &seeding.times.integration),
        ("put custom action", &seeding.times.action),
        ("mint token", &seeding.times.token),
        ("put quotas", &seeding.times.quotas),
    ] {
        if v.is_empty() {
            continue;
        }
        let st = Stats::of(v);
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} |",
            st.n,
            ms(st.p50),
            ms(st.p99),
            ms(st.max)
        );
    }
    let _ = writeln!(
        s,
        "\nRate over the first tenth {first_rate:.0} workspaces/s, over the last tenth {last_rate:.0} workspaces/s. \
         The seeding server's RSS when done: {:.0} MiB (high-water {:.0} MiB). Store file (SQLite + WAL): {:.1} MB.\n",
        mib(seeding.rss_after_kib.0),
        mib(seeding.rss_after_kib.1),
        seeding.db_bytes as f64 / 1e6
    );
    let _ = writeln!(s, "### Start-up, cold and warm workspaces\n");
    let _ = writeln!(
        s,
        "The seeding server was stopped and a fresh one started on the same store. Start-up is process start → \
         its \"serving … on http://ADDR\" line on stderr. A cold workspace's first call builds its catalog from \
         the store (its rows, the sealed key opened, the shared compiled component); the very first call also \
         loads the component from the compile cache. Tools calls per workspace, in ms ({} parallel):\n",
        opts.seed_concurrency
    );
    let _ = writeln!(s, "| | n | p50 | p99 | max |\n|---|---|---|---|---|");
    for (label, st) in [
        ("first call, cold", &scale.cold_calls),
        ("second call, cached", &scale.warm_calls),
    ] {
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} |",
            st.n,
            ms(st.p50),
            ms(st.p99),
            ms(st.max)
        );
    }
    let per_ws = scale.rss_warm_kib.0.saturating_sub(scale.rss_start_kib) as f64 / n as f64;
    let _ = writeln!(
        s,
        "\nRSS {:.0} MiB at start, {:.0} MiB with all {n} warm (2 s after the last call): about {per_ws:.1} KiB per \
         loaded workspace.\n",
        mib(scale.rss_start_kib),
        mib(scale.rss_warm_kib.0)
    );
    let _ = writeln!(s, "### Invoke: many workspaces, one workspace, and `serve --config`\n");
    let _ = writeln!(
        s,
        "`wrk -t2 -c{c} -d{d}s` posting `trackOrder` for order 1001 (three simulator requests per call), after a \
         2 s warm-up each; two rounds in opposite orders. **N workspaces**: each request goes to a random one of \
         the {n} workspaces with its own assistant token. **1 workspace**: the same binary on a store holding one \
         workspace (quotas raised so they never answer 429). **`--config`**: `actionbox serve --config` with the \
         same integration and actions, which keeps no history. All three run the same sandboxed call; the store \
         servers add a token check, the quota gate and a history record per call.\n",
        c = load.connections,
        d = load.seconds
    );
    let _ = writeln!(
        s,
        "| server | route | round | req/s | p50 (ms) | p99 (ms) | server CPU per call (ms) | requests | non-2xx | socket errors |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    );
    let tools_single = [load.tools_single];
    let tools_config = [load.tools_config];
    for (label, route, runs) in [
        ("N workspaces", "invoke", &load.many[..]),
        ("1 workspace", "invoke", &load.single[..]),
        ("`--config`", "invoke", &load.config[..]),
        ("1 workspace", "tools", &tools_single[..]),
        ("`--config`", "tools", &tools_config[..]),
    ] {
        for (round, r) in runs.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {label} | {route} | {} | {:.0} | {:.2} | {:.2} | {:.3} | {} | {} | {} |",
                round + 1,
                r.rate,
                r.p50_us / 1e3,
                r.p99_us / 1e3,
                r.cpu_ms_per_call,
                r.requests,
                r.non_2xx,
                r.socket_errors
            );
        }
    }
    let invoke_extra = mean(&load.single, |r| r.cpu_ms_per_call) - mean(&load.config, |r| r.cpu_ms_per_call);
    let tools_extra = load.tools_single.cpu_ms_per_call - load.tools_config.cpu_ms_per_call;
    let _ = writeln!(
        s,
        "\nThe server has no switch to turn history off (`--history-keep-last` only prunes), so the history cost \
         is measured as the 1-workspace `--store` server against `serve --config` on the same catalog. That \
         difference also holds the token check (remembered per replica after the first request) and the quota gate; the tools rows \
         measure those without a call: the store path costs {tools_extra:.3} ms more server CPU per request there, against \
         {invoke_extra:.3} ms more per invoke — the rest of the invoke difference is the history record (its ~7 KB \
         trace built and written by the history writer, off the call's path but on the same two cores). \
         History records dropped by the writer during the timed runs (queue full or store error; \
         `actionbox_history_dropped_total`): N workspaces {}, 1 workspace {}. WARN/ERROR lines on the servers' \
         stderr: {}.\n",
        load.dropped_many, load.dropped_single, load.complaints
    );
    let _ = writeln!(s, "### Two replicas on one PostgreSQL\n");
    match replicas {
        Ok(r) => {
            let commit = Stats::of(&r.visible_after_commit);
            let send = Stats::of(&r.visible_after_send);
            let _ = writeln!(
                s,
                "A throwaway PostgreSQL (tests/pgcluster) on loopback and two `serve --store postgres://…` processes \
                 (start-up {} ms and {} ms). Each round: replica B serves the workspace's tools from its cache; a \
                 new custom action is created through replica A; B's tools are asked every {} ms until they list \
                 it. Rounds start at different points of B's change-feed poll (every 250 ms).\n",
                ms(nanos(r.startup_a)),
                ms(nanos(r.startup_b)),
                REPLICA_POLL.as_millis()
            );
            let _ = writeln!(
                s,
                "| from | n | p50 (ms) | p99 (ms) | min–max (ms) |\n|---|---|---|---|---|"
            );
            for (label, st) in [
                ("A answered the PUT (committed)", commit),
                ("the PUT was sent to A", send),
            ] {
                let _ = writeln!(
                    s,
                    "| {label} | {} | {} | {} | {}–{} |",
                    st.n,
                    ms(st.p50),
                    ms(st.p99),
                    ms(st.min),
                    ms(st.max)
                );
            }
            s.push('\n');
        }
        Err(e) => {
            let _ = writeln!(s, "Not measured: {e}\n");
        }
    }
    let _ = writeln!(s, "{MARK_END}");
    s
}

/// Replace this bench's section of BENCHMARKS.md (between the markers), or
/// append it when the file has none.
fn splice_section(path: &Path, section: &str) -> Result<()> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    let updated = match (current.find(MARK_BEGIN), current.find(MARK_END)) {
        (Some(begin), Some(end)) if end > begin => {
            let end = end + MARK_END.len();
            let rest = current[end..].strip_prefix('\n').unwrap_or(&current[end..]);
            format!("{}{section}{rest}", &current[..begin])
        }
        _ => {
            let sep = if current.is_empty() || current.ends_with("\n\n") {
                ""
            } else if current.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{current}{sep}{section}")
        }
    };
    std::fs::write(path, updated).with_context(|| format!("cannot write {}", path.display()))
}
