//! Workspace mode end to end (issue 13): `actionbox serve --store` as the
//! backend of a multi-merchant platform. Every test runs the real binary on
//! loopback against a real store — SQLite in the test's directory, or a
//! throwaway PostgreSQL cluster (`actionbox-pgcluster`) — and talks plain
//! HTTP/1.1 to it, as a dashboard and an assistant would.
//!
//! This module holds the helpers (the store-mode server process, a
//! byte-capable HTTP client, the merchant's set-up steps) and the merchant's
//! flow and key tests; `workspaces_admin` (validation, tokens, audit) and
//! `workspaces_ops` (quotas, replicas, store CLI, history) use its helpers.
//! They live here, not in `tests/e2e/src/lib.rs`, because these three
//! modules are their only users.

use actionbox_e2e::{component_path, run_actionbox_bounded, BoundedRun};
use actionbox_pgcluster::PgCluster;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shipstation_sim::{Fixtures, Simulator};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The operator token every test server is started with (≥ 16 characters).
pub(crate) const OPERATOR: &str = "operator-token-for-the-e2e-tests-0123";

/// Bound on a server start, a CLI run or one HTTP exchange.
pub(crate) const BOUND: Duration = Duration::from_secs(30);

/// The parameter description the seed's merchant writes for a custom action.
pub(crate) const SHOPIFY_DESCRIPTION: &str = "Track order by Shopify order id, format: SHOPIFY-123456789";

/// A key nobody could mistake for anything else, accepted by the simulator
/// of the tests that grep for it (so the calls made with it succeed).
pub(crate) const RECOGNIZABLE_KEY: &str = "sk_live_RECOGNIZABLE_e2e_key_7f3a9c1d5b";

// ---------------------------------------------------------------- stores

/// Which database a test's server keeps its state in.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A store for one test: a SQLite file in the test's directory, or a fresh
/// PostgreSQL cluster (stopped and removed when dropped).
pub(crate) struct TestStore {
    /// The `--store` URL.
    pub(crate) url: String,
    /// The SQLite database file, for the SQLite backend.
    pub(crate) sqlite_file: Option<PathBuf>,
    /// The cluster, for the Postgres backend.
    pub(crate) pg: Option<PgCluster>,
}

impl TestStore {
    /// A store on `backend` for the test whose directory is `dir`; `None`
    /// when PostgreSQL is not installed here (the test is then skipped, as
    /// [`actionbox_e2e::prerequisite`] skips, and fails under `make test`).
    pub(crate) async fn new(backend: Backend, dir: &Path) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite(dir)),
            Backend::Postgres => match tokio::task::spawn_blocking(PgCluster::start).await.expect("join") {
                Ok(pg) => Some(Self {
                    url: pg.url(),
                    sqlite_file: None,
                    pg: Some(pg),
                }),
                Err(e) if format!("{e:#}").contains(actionbox_pgcluster::NOT_INSTALLED) => {
                    let why = format!("{e:#}");
                    assert!(
                        std::env::var_os("ACTIONBOX_REQUIRE_ALL_TESTS").is_none(),
                        "{why}: `make test` installs it before running the tests"
                    );
                    use std::io::Write;
                    let _ = writeln!(std::io::stderr(), "skipped: {why}");
                    None
                }
                Err(e) => panic!("cannot start a PostgreSQL cluster: {e:#}"),
            },
        }
    }

    /// A SQLite store in `dir` (always available).
    pub(crate) fn sqlite(dir: &Path) -> Self {
        let file = dir.join("store.db");
        Self {
            url: format!("sqlite:{}", file.display()),
            sqlite_file: Some(file),
            pg: None,
        }
    }

    /// Everything the store holds at rest, as bytes: the SQLite file with its
    /// `-wal` and `-shm` companions, or a `pg_dump` of the database.
    pub(crate) async fn at_rest(&self) -> Vec<u8> {
        if let Some(file) = &self.sqlite_file {
            let mut bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for suffix in ["-wal", "-shm", "-journal"] {
                let companion = PathBuf::from(format!("{}{suffix}", file.display()));
                if let Ok(more) = std::fs::read(&companion) {
                    bytes.extend_from_slice(&more);
                }
            }
            return bytes;
        }
        let pg = self.pg.as_ref().expect("a store is SQLite or Postgres");
        pg.dump().unwrap_or_else(|e| panic!("pg_dump failed: {e:#}")).into()
    }
}

// ---------------------------------------------------------------- processes

/// A test's own directory: fresh and empty at the start, removed when the
/// test passes (kept after a failure, to look at).
pub(crate) struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh, empty directory for one test's files.
pub(crate) fn fresh_dir(tag: &str) -> TestDir {
    let dir = std::env::temp_dir().join(format!("actionbox-ws-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TestDir(dir)
}

/// Run the `actionbox` CLI off the async runtime, bounded by [`BOUND`].
pub(crate) async fn cli(args: &[&str], env: &[(&str, &str)]) -> BoundedRun {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_actionbox_bounded(&args, &env, BOUND)
    })
    .await
    .expect("join")
}

/// `path` as text, for command lines.
pub(crate) fn text(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// `actionbox store init-master-key DIR/NAME`, which must succeed.
pub(crate) async fn new_master_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let run = cli(&["store", "init-master-key", text(&path)], &[]).await;
    assert_eq!(run.code, 0, "init-master-key failed: {}{}", run.stdout, run.stderr);
    path
}

/// How to start one `actionbox serve --store` process.
#[derive(Clone)]
pub(crate) struct ServeSpec {
    /// The `--store` URL.
    pub(crate) store: String,
    /// `ACTIONBOX_MASTER_KEY_FILE`.
    pub(crate) master_key: PathBuf,
    /// `ACTIONBOX_OPERATOR_TOKEN`.
    pub(crate) operator_token: String,
    /// Extra arguments after `serve --store URL --listen 127.0.0.1:0`.
    pub(crate) args: Vec<String>,
    /// Extra environment.
    pub(crate) env: Vec<(String, String)>,
    /// `XDG_DATA_HOME`, so nothing lands in the real home directory.
    pub(crate) data_home: PathBuf,
}

impl ServeSpec {
    /// `serve --store <store>` with the test operator token and `master_key`,
    /// loopback upstreams allowed (the simulator is on 127.0.0.1).
    pub(crate) fn new(store: &TestStore, master_key: &Path, dir: &Path) -> Self {
        Self {
            store: store.url.clone(),
            master_key: master_key.to_path_buf(),
            operator_token: OPERATOR.to_string(),
            args: vec!["--allow-private-base-urls".to_string()],
            env: Vec::new(),
            data_home: dir.join("xdg"),
        }
    }

    /// The same, with `args` instead of the default extra arguments.
    pub(crate) fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The arguments after `serve` (with `--listen listen` when given) and
    /// the environment this spec runs with.
    pub(crate) fn command_line(&self, listen: Option<&str>) -> (Vec<String>, Vec<(String, String)>) {
        let mut args = vec!["--store".to_string(), self.store.clone()];
        if let Some(listen) = listen {
            args.extend(["--listen".to_string(), listen.to_string()]);
        }
        args.extend(self.args.iter().cloned());
        let mut env = vec![
            ("ACTIONBOX_OPERATOR_TOKEN".to_string(), self.operator_token.clone()),
            (
                "ACTIONBOX_MASTER_KEY_FILE".to_string(),
                self.master_key.to_string_lossy().into_owned(),
            ),
            (
                "XDG_DATA_HOME".to_string(),
                self.data_home.to_string_lossy().into_owned(),
            ),
        ];
        env.extend(self.env.iter().cloned());
        (args, env)
    }

    /// The same, with `KEY=value` added to the environment.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running `actionbox serve --store` process, killed when dropped.
pub(crate) struct StoreServe {
    pub(crate) child: std::process::Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Everything it has written to standard error so far.
    pub(crate) stderr: Arc<Mutex<Vec<u8>>>,
}

/// A server start that did not reach "serving": its exit code (-1 when it
/// had to be killed) and standard error.
#[derive(Debug)]
pub(crate) struct StartFailure {
    pub(crate) code: i32,
    pub(crate) stderr: String,
}

impl StoreServe {
    /// Start `spec` and wait (≤ [`BOUND`]) for it to announce its address.
    pub(crate) async fn start(spec: ServeSpec) -> Result<Self, StartFailure> {
        tokio::task::spawn_blocking(move || Self::start_blocking(&spec))
            .await
            .expect("join")
    }

    /// [`StoreServe::start`], which must succeed.
    pub(crate) async fn up(spec: ServeSpec) -> Self {
        Self::start(spec)
            .await
            .unwrap_or_else(|f| panic!("serve --store did not start (exit {}):\n{}", f.code, f.stderr))
    }

    fn start_blocking(spec: &ServeSpec) -> Result<Self, StartFailure> {
        let (args, env) = spec.command_line(Some("127.0.0.1:0"));
        Self::launch(&args, &env)
    }

    /// `actionbox serve <args>` (any mode) with `env`, waiting (≤ [`BOUND`])
    /// for it to announce its address. Blocking.
    pub(crate) fn launch(args: &[String], env: &[(String, String)]) -> Result<Self, StartFailure> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(actionbox_e2e::actionbox_bin());
        cmd.arg("serve")
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("SHIPSTATION_API_KEY")
            .env_remove("ACTIONBOX_CONFIG")
            .env_remove("ACTIONBOX_STORE")
            .env_remove("ACTIONBOX_AUTH_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("actionbox serve starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let kept = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        let writer = kept.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if let Ok(mut k) = writer.lock() {
                            // Bounded: a flood of logs must not exhaust the test.
                            if k.len() < 8 * 1024 * 1024 {
                                k.extend_from_slice(&line);
                            }
                        }
                        // "actionbox serving the workspaces of <store> on http://ADDR (…)"
                        // (or "listening on http://ADDR").
                        let announced = (text.contains("serving") || text.contains("listening"))
                            .then(|| text.rsplit(" on http://").next().filter(|r| *r != text))
                            .flatten();
                        if let Some(rest) = announced {
                            let addr = rest.split_whitespace().next().unwrap_or_default();
                            if let Ok(addr) = addr.trim_end_matches(['/', ',', ')']).parse() {
                                let _ = addr_tx.send(addr);
                            }
                        }
                    }
                }
            }
        });
        let started = std::time::Instant::now();
        loop {
            match addr_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => {
                    return Ok(Self {
                        child,
                        addr,
                        stderr: kept,
                    })
                }
                Err(_) => {
                    let exited = child.try_wait().ok().flatten().is_some();
                    if exited || started.elapsed() >= BOUND {
                        let _ = child.kill();
                        let status = child.wait().expect("wait for actionbox serve");
                        // Let the reader take the last of the output.
                        std::thread::sleep(Duration::from_millis(100));
                        let stderr = String::from_utf8_lossy(&kept.lock().expect("stderr")).into_owned();
                        return Err(StartFailure {
                            code: if exited { status.code().unwrap_or(-1) } else { -1 },
                            stderr,
                        });
                    }
                }
            }
        }
    }

    /// An HTTP client for it.
    pub(crate) fn api(&self) -> Api {
        Api { addr: self.addr }
    }

    /// Its standard error so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for StoreServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- HTTP

/// One HTTP answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// What was asked, for assertion messages (`PUT /v1/…`).
    pub(crate) asked: String,
    pub(crate) status: u16,
    /// The head, lower-cased.
    pub(crate) headers: String,
    pub(crate) body: String,
}

impl Reply {
    /// The body as JSON (a failed parse names the request and the body).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{self}: not JSON ({e})"))
    }

    /// The value of header `name` (lower case), if present.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim().to_string())
        })
    }

    /// `error.kind` of a JSON error answer.
    pub(crate) fn error_kind(&self) -> String {
        self.json()["error"]["kind"].as_str().unwrap_or_default().to_string()
    }

    /// `error.message` of a JSON error answer.
    pub(crate) fn error_message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_string()
    }

    /// Assert the status is `status` and return self.
    #[track_caller]
    pub(crate) fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "{self}");
        self
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} → {} {}", self.asked, self.status, self.body)
    }
}

/// A minimal HTTP/1.1 client for one server: one connection per request
/// (`Connection: close`), JSON or raw bytes.
#[derive(Clone, Copy)]
pub(crate) struct Api {
    pub(crate) addr: SocketAddr,
}

impl Api {
    /// `method path` with `token` and an optional body of `content_type`.
    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Reply {
        let asked = format!("{method} {path}");
        let answer = tokio::time::timeout(
            BOUND,
            actionbox_e2e::api::http_bytes(self.addr, method, path, token, body),
        )
        .await
        .unwrap_or_else(|_| panic!("{asked}: no answer within {BOUND:?}"));
        Reply {
            asked,
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        }
    }

    /// `method path` with a JSON body (or none).
    pub(crate) async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        let text = body.map(|b| b.to_string());
        let body = text.as_deref().map(|t| ("application/json", t.as_bytes()));
        self.raw(method, path, token, body).await
    }

    pub(crate) async fn get(&self, token: &str, path: &str) -> Reply {
        self.send("GET", path, Some(token), None).await
    }

    pub(crate) async fn put(&self, token: &str, path: &str, body: Value) -> Reply {
        self.send("PUT", path, Some(token), Some(&body)).await
    }

    pub(crate) async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(token), Some(&body)).await
    }

    pub(crate) async fn delete(&self, token: &str, path: &str) -> Reply {
        self.send("DELETE", path, Some(token), None).await
    }

    /// `POST /v1/workspaces/{ws}/actions/{action}/invoke` with `order_id`.
    pub(crate) async fn invoke(&self, token: &str, ws: &str, action: &str, order_id: &str) -> Reply {
        self.post(
            token,
            &format!("/v1/workspaces/{ws}/actions/{action}/invoke"),
            json!({ "params": { "order_id": order_id } }),
        )
        .await
    }

    /// The tool names workspace `ws` offers to `token`.
    pub(crate) async fn tool_names(&self, token: &str, ws: &str) -> Vec<String> {
        let tools = self.get(token, &format!("/v1/workspaces/{ws}/tools")).await.expect(200);
        names(&tools.json()["tools"])
    }
}

/// The `name` of every entry of a JSON array.
pub(crate) fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|t| {
            t["name"]
                .as_str()
                .unwrap_or_else(|| panic!("no name in {t}"))
                .to_string()
        })
        .collect()
}

/// The entry named `name` of a JSON array.
pub(crate) fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no `{name}` in {list}"))
}

/// Lower-case hex of SHA-256(`bytes`).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `haystack` contains `needle`.
pub(crate) fn contains_bytes(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit")
}

// ---------------------------------------------------------------- set-up steps

/// A workspace set up as the seed's merchant does: the ShipStation
/// component registered, an admin and an assistant token, and integration
/// `main` on the simulator.
pub(crate) struct Merchant {
    pub(crate) ws: String,
    /// `sha256:<hex>` of the registered ShipStation component.
    pub(crate) component: String,
    pub(crate) admin: String,
    pub(crate) assistant: String,
}

/// `POST /v1/admin/workspaces` as the operator; must answer 201.
pub(crate) async fn create_workspace(api: Api, id: &str) -> Value {
    let r = api
        .post(
            OPERATOR,
            "/v1/admin/workspaces",
            json!({ "id": id, "display_name": format!("Merchant {id}") }),
        )
        .await
        .expect(201);
    let v = r.json();
    assert_eq!(v["id"], id, "{r}");
    v
}

/// Register the ShipStation component as the operator; its reference.
pub(crate) async fn register_shipstation(api: Api) -> String {
    let bytes = std::fs::read(component_path()).expect("the ShipStation component");
    let r = api
        .raw(
            "POST",
            "/v1/admin/components",
            Some(OPERATOR),
            Some(("application/wasm", &bytes)),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "{r}");
    let v = r.json();
    let reference = v["reference"].as_str().unwrap_or_else(|| panic!("no reference: {r}"));
    assert_eq!(
        reference,
        format!("sha256:{}", sha256_hex(&bytes)),
        "content-addressed: {r}"
    );
    reference.to_string()
}

/// Mint a token for `ws` with `scopes`; (id, secret).
pub(crate) async fn mint(api: Api, ws: &str, scopes: &[&str], label: &str) -> (String, String) {
    let r = api
        .post(
            OPERATOR,
            &format!("/v1/admin/workspaces/{ws}/tokens"),
            json!({ "scopes": scopes, "label": label }),
        )
        .await
        .expect(201);
    let v = r.json();
    let id = v["id"].as_str().unwrap_or_else(|| panic!("no id: {r}")).to_string();
    let token = v["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {r}"))
        .to_string();
    (id, token)
}

/// The body of a PUT of a ShipStation integration on `base_url` with `key`.
pub(crate) fn shipstation_spec(component: &str, key: &str, base_url: &str) -> Value {
    json!({ "kind": "shipstation", "component": component, "api_key": key, "base_url": base_url })
}

/// Workspace `ws` with the ShipStation component, tokens and integration
/// `main` on `sim` with `key`.
pub(crate) async fn merchant(api: Api, ws: &str, sim: &Simulator, key: &str) -> Merchant {
    create_workspace(api, ws).await;
    let component = register_shipstation(api).await;
    let (_, admin) = mint(api, ws, &["admin"], "console").await;
    let (_, assistant) = mint(api, ws, &["assistant"], "assistant").await;
    api.put(
        &admin,
        &format!("/v1/workspaces/{ws}/integrations/main"),
        shipstation_spec(&component, key, &sim.base_url()),
    )
    .await
    .expect(201);
    Merchant {
        ws: ws.to_string(),
        component,
        admin,
        assistant,
    }
}

/// Workspace `ws`'s invocation list (`query` appended), newest first.
pub(crate) async fn history(api: Api, token: &str, ws: &str, query: &str) -> Vec<Value> {
    let r = api
        .get(token, &format!("/v1/workspaces/{ws}/invocations{query}"))
        .await
        .expect(200);
    r.json()["invocations"].as_array().cloned().unwrap_or_default()
}

/// [`history`] once it holds `n` entries: history may be written just after
/// the answer, so it is polled (up to 10 s). Fails showing what it holds.
pub(crate) async fn history_of(api: Api, token: &str, ws: &str, query: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = history(api, token, ws, query).await;
        if list.len() == n {
            return list;
        }
        assert!(
            list.len() < n && std::time::Instant::now() < deadline,
            "history{query} of `{ws}` holds {} entries, not {n}: {list:#?}",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`history`] once it holds at least `n` entries (polled up to 10 s).
pub(crate) async fn history_at_least(api: Api, token: &str, ws: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = history(api, token, ws, "").await;
        if list.len() >= n {
            return list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "history of `{ws}` holds {} entries, expected at least {n}: {list:#?}",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `field` of every entry of a JSON array.
pub(crate) fn names_by(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|e| e[field].as_str().unwrap_or_default().to_string())
        .collect()
}

/// An id (a JSON number or string) as path text.
pub(crate) fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------- 1. the merchant's flow

#[tokio::test(flavor = "multi_thread")]
async fn merchant_flow_on_sqlite() {
    merchant_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn merchant_flow_on_postgres() {
    merchant_flow(Backend::Postgres).await;
}

/// The seed's dashboard flow, from an empty store to an assistant's call
/// and its recorded trace.
async fn merchant_flow(backend: Backend) {
    let dir = fresh_dir(&format!("merchant-{backend:?}"));
    let Some(store) = TestStore::new(backend, &dir).await else {
        return;
    };
    let sim = Simulator::start().await.expect("simulator");
    let key = sim.api_key().to_string();
    let master = new_master_key(&dir, "master.key").await;
    let serve = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let api = serve.api();

    // The operator: a workspace, the component (registered once: again is 200), tokens.
    let ws = create_workspace(api, "acme").await;
    assert_eq!(ws["quotas"]["max_concurrent_calls"], 16, "{ws}");
    assert_eq!(ws["quotas"]["calls_per_minute"], 600, "{ws}");
    let listed = api.get(OPERATOR, "/v1/admin/workspaces").await.expect(200).json();
    assert_eq!(names_by(&listed["workspaces"], "id"), ["acme"]);
    let component = register_shipstation(api).await;
    let bytes = std::fs::read(component_path()).expect("component");
    let again = api
        .raw(
            "POST",
            "/v1/admin/components",
            Some(OPERATOR),
            Some(("application/wasm", &bytes)),
        )
        .await
        .expect(200);
    assert_eq!(again.json()["reference"], component.as_str(), "{again}");
    assert_eq!(again.json()["kind"], "shipstation", "{again}");
    let components = api.get(OPERATOR, "/v1/admin/components").await.expect(200).json();
    assert_eq!(
        components["components"].as_array().map(Vec::len),
        Some(1),
        "{components}"
    );
    let (_, admin) = mint(api, "acme", &["admin"], "console").await;
    let (_, assistant) = mint(api, "acme", &["assistant"], "assistant").await;

    // Before any integration there is nothing to offer.
    assert!(api.tool_names(&assistant, "acme").await.is_empty());

    // The admin adds the ShipStation integration: created, key shown as set only.
    let put = api
        .put(
            &admin,
            "/v1/workspaces/acme/integrations/main",
            shipstation_spec(&component, &key, &sim.base_url()),
        )
        .await
        .expect(201);
    let integration = put.json();
    assert_eq!(integration["name"], "main", "{put}");
    assert_eq!(integration["kind"], "shipstation", "{put}");
    assert_eq!(integration["timeout"], 10, "the default timeout: {put}");
    assert_eq!(integration["api_key"]["set"], true, "{put}");
    assert!(!put.body.contains(&key), "the key came back: {put}");

    // Its default action appears, in the admin's list and in the assistant's tools.
    let actions = api.get(&admin, "/v1/workspaces/acme/actions").await.expect(200).json();
    let track = named(&actions["actions"], "trackOrder");
    assert_eq!(track["default"], true, "{actions}");
    assert_eq!(track["integration"], "main", "{actions}");
    assert_eq!(track["method"], "trackOrder", "{actions}");
    assert_eq!(api.tool_names(&assistant, "acme").await, ["trackOrder"]);

    // The Test button.
    let test = api
        .post(&admin, "/v1/workspaces/acme/integrations/main/test", json!({}))
        .await
        .expect(200);
    assert_eq!(test.json()["ok"], true, "{test}");
    assert_eq!(test.json()["base_url"], sim.base_url().as_str(), "{test}");

    // A custom action with the seed's fields.
    let custom = json!({
        "integration": "main",
        "method": "trackOrder",
        "description": "Track a Shopify order.",
        "parameters": { "order_id": { "description": SHOPIFY_DESCRIPTION } },
        "response_instructions": "Always give the tracking link.",
    });
    api.put(
        &admin,
        "/v1/workspaces/acme/actions/track_shopify_order",
        custom.clone(),
    )
    .await
    .expect(201);
    api.put(&admin, "/v1/workspaces/acme/actions/track_shopify_order", custom)
        .await
        .expect(200);
    let one = api
        .get(&admin, "/v1/workspaces/acme/actions/track_shopify_order")
        .await
        .expect(200)
        .json();
    assert_eq!(one["default"], false, "{one}");
    assert_eq!(
        one["parameters"]["order_id"]["description"], SHOPIFY_DESCRIPTION,
        "{one}"
    );
    assert_eq!(one["response_instructions"], "Always give the tracking link.", "{one}");

    let tools = api
        .get(&assistant, "/v1/workspaces/acme/tools")
        .await
        .expect(200)
        .json();
    let tool = named(&tools["tools"], "track_shopify_order");
    assert_eq!(
        tool["parameters"]["properties"]["order_id"]["description"], SHOPIFY_DESCRIPTION,
        "{tools}"
    );
    assert!(
        tool["description"].as_str().unwrap_or_default().contains("Shopify"),
        "{tool}"
    );
    assert_eq!(
        tool["response_instructions"], "Always give the tracking link.",
        "{tool}"
    );
    let openai = api
        .get(&assistant, "/v1/workspaces/acme/tools?format=openai")
        .await
        .expect(200)
        .json();
    assert_eq!(openai["tools"][0]["type"], "function", "{openai}");
    let mcp = api
        .get(&assistant, "/v1/workspaces/acme/tools?format=mcp")
        .await
        .expect(200)
        .json();
    assert!(mcp["tools"][0]["inputSchema"].is_object(), "{mcp}");

    // The assistant's calls: the seed's JSON, a missing order, the custom action.
    let ok = api
        .invoke(&assistant, "acme", "trackOrder", "1001")
        .await
        .expect(200)
        .json();
    let t = &ok["result"]["shipstation"]["tracking"];
    assert_eq!(ok["result"]["shipstation"]["order_id"], "1001", "{ok}");
    assert_eq!(t["tracking_number"], "1Z999AA10123456784", "{ok}");
    assert_eq!(t["status_code"], "DE", "{ok}");
    assert_eq!(t["status_description"], "Delivered", "{ok}");
    assert_eq!(t["carrier_code"], "ups", "{ok}");
    let missing = api.invoke(&assistant, "acme", "trackOrder", "nope").await.expect(404);
    assert_eq!(missing.error_kind(), "not-found", "{missing}");
    let shopify = api
        .invoke(&assistant, "acme", "track_shopify_order", "SHOPIFY-123456789")
        .await
        .expect(200)
        .json();
    assert_eq!(
        shopify["response_instructions"], "Always give the tracking link.",
        "{shopify}"
    );
    let unknown = api.invoke(&assistant, "acme", "shipIt", "1001").await.expect(404);
    assert_eq!(unknown.error_kind(), "unknown-action", "{unknown}");

    // A session-start action runs at session start only.
    api.put(
        &admin,
        "/v1/workspaces/acme/actions/greet_with_status",
        json!({ "integration": "main", "method": "trackOrder", "execution": "session-start",
                "response_instructions": "Greet with the status." }),
    )
    .await
    .expect(201);
    let session = api
        .post(
            &assistant,
            "/v1/workspaces/acme/sessions/start",
            json!({ "context": { "order_id": "1002" } }),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        session["results"]["greet_with_status"]["result"]["shipstation"]["order_id"], "1002",
        "{session}"
    );

    // The Action Debugger (admin scope only).
    let refused = api
        .post(
            &assistant,
            "/v1/workspaces/acme/actions/trackOrder/debug",
            json!({ "params": { "order_id": "1001" } }),
        )
        .await
        .expect(403);
    assert_eq!(refused.error_kind(), "forbidden", "{refused}");
    let debug = api
        .post(
            &admin,
            "/v1/workspaces/acme/actions/trackOrder/debug",
            json!({ "params": { "order_id": "1001" } }),
        )
        .await
        .expect(200);
    let report = debug.json();
    assert_eq!(report["action"], "trackOrder", "{debug}");
    assert_eq!(report["integration"], "main", "{debug}");
    assert_eq!(report["outcome"]["ok"]["shipstation"]["order_id"], "1001", "{debug}");
    assert!(
        report["outbound"].as_array().is_some_and(|o| !o.is_empty()),
        "the debugger shows the requests: {debug}"
    );
    assert!(
        debug.body.contains("[redacted]"),
        "the key header is shown redacted: {debug}"
    );

    // History: every call, filterable, each with its trace and never the key.
    let not_found = history_of(api, &admin, "acme", "?outcome=not-found", 1).await;
    assert_eq!(not_found[0]["action"], "trackOrder");
    let custom_calls = history_of(api, &admin, "acme", "?action=track_shopify_order", 1).await;
    // The session start's run.
    history_of(api, &admin, "acme", "?action=greet_with_status", 1).await;
    // The test, three invokes, the session start and the debug run.
    let entries = history_at_least(api, &admin, "acme", 6).await;
    let all = format!("{entries:#?}");
    for e in &entries {
        assert!(e["id"].is_number() || e["id"].is_string(), "{e}");
        assert!(e["started_ms"].is_number() && e["duration_ms"].is_number(), "{e}");
    }
    let started: Vec<i64> = entries.iter().filter_map(|e| e["started_ms"].as_i64()).collect();
    assert!(started.windows(2).all(|w| w[0] >= w[1]), "newest first: {all}");
    assert_eq!(custom_calls[0]["outcome"], "ok");
    assert_eq!(custom_calls[0]["integration"], "main");
    assert_eq!(custom_calls[0]["method"], "trackOrder");
    let future = api
        .get(
            &admin,
            &format!("/v1/workspaces/acme/invocations?since={}", now_ms() + 3_600_000),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(future["invocations"].as_array().map(Vec::len), Some(0), "{future}");
    let limited = api
        .get(&admin, "/v1/workspaces/acme/invocations?limit=2")
        .await
        .expect(200)
        .json();
    assert_eq!(limited["invocations"].as_array().map(Vec::len), Some(2), "{limited}");

    let id = id_text(&custom_calls[0]["id"]);
    let one = api
        .get(&admin, &format!("/v1/workspaces/acme/invocations/{id}"))
        .await
        .expect(200);
    let trace = &one.json()["trace"];
    assert_eq!(trace["action"], "track_shopify_order", "{one}");
    assert!(trace["outbound"].as_array().is_some_and(|o| !o.is_empty()), "{one}");
    assert!(!one.body.contains(&key), "the key is in a stored trace: {one}");
    api.get(&admin, "/v1/workspaces/acme/invocations/999999999")
        .await
        .expect(404);
    let history_refused = api.get(&assistant, "/v1/workspaces/acme/invocations").await;
    assert_eq!(history_refused.status, 403, "{history_refused}");

    // An integration that custom actions use cannot be deleted from under them.
    let busy = api
        .delete(&admin, "/v1/workspaces/acme/integrations/main")
        .await
        .expect(409);
    assert!(busy.error_message().contains("track_shopify_order"), "{busy}");

    assert!(
        !serve.stderr().contains(&key),
        "the key was logged:\n{}",
        serve.stderr()
    );
}

// ---------------------------------------------------------------- 2. keys

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_write_only_and_not_at_rest_in_clear_on_sqlite() {
    keys_are_write_only_and_not_at_rest_in_clear(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_write_only_and_not_at_rest_in_clear_on_postgres() {
    keys_are_write_only_and_not_at_rest_in_clear(Backend::Postgres).await;
}

/// After a PUT with a recognizable key (one the simulator accepts, so real
/// calls with it succeed and leave traces), no answer, log or byte at rest
/// holds it; only "set" and its fingerprint are shown.
async fn keys_are_write_only_and_not_at_rest_in_clear(backend: Backend) {
    let dir = fresh_dir(&format!("keys-{backend:?}"));
    let Some(store) = TestStore::new(backend, &dir).await else {
        return;
    };
    let sim = Simulator::start_with(Fixtures::default_set(), RECOGNIZABLE_KEY, 0)
        .await
        .expect("simulator");
    let master = new_master_key(&dir, "master.key").await;
    let spec = ServeSpec::new(&store, &master, &dir).env("RUST_LOG", "debug");
    let serve = StoreServe::up(spec).await;
    let api = serve.api();
    let m = merchant(api, "keyed", &sim, RECOGNIZABLE_KEY).await;
    let ws = &m.ws;

    let mut seen: Vec<Reply> = Vec::new();
    let integration = api
        .get(&m.admin, &format!("/v1/workspaces/{ws}/integrations/main"))
        .await
        .expect(200);
    let fingerprint = integration.json()["api_key"]["fingerprint"]
        .as_str()
        .unwrap_or_else(|| panic!("no fingerprint: {integration}"))
        .to_string();
    assert_eq!(integration.json()["api_key"]["set"], true, "{integration}");
    assert_eq!(
        fingerprint,
        sha256_hex(RECOGNIZABLE_KEY.as_bytes())[..8],
        "the fingerprint tells keys apart: {integration}"
    );
    seen.push(integration);

    // Calls that use the key: they succeed, so the key really was stored.
    seen.push(
        api.post(
            &m.admin,
            &format!("/v1/workspaces/{ws}/integrations/main/test"),
            json!({}),
        )
        .await
        .expect(200),
    );
    seen.push(api.invoke(&m.assistant, ws, "trackOrder", "1001").await.expect(200));
    seen.push(
        api.post(
            &m.admin,
            &format!("/v1/workspaces/{ws}/actions/trackOrder/debug"),
            json!({ "params": { "order_id": "1001" } }),
        )
        .await
        .expect(200),
    );
    // A replace without `api_key` keeps the key.
    let kept = api
        .put(
            &m.admin,
            &format!("/v1/workspaces/{ws}/integrations/main"),
            json!({ "kind": "shipstation", "component": m.component, "base_url": sim.base_url(), "timeout": 20 }),
        )
        .await
        .expect(200);
    assert_eq!(kept.json()["api_key"]["fingerprint"], fingerprint.as_str(), "{kept}");
    seen.push(kept);
    seen.push(api.invoke(&m.assistant, ws, "trackOrder", "1002").await.expect(200));

    seen.push(
        api.get(&m.admin, &format!("/v1/workspaces/{ws}/integrations"))
            .await
            .expect(200),
    );
    seen.push(api.get(OPERATOR, "/v1/admin/audit").await.expect(200));
    seen.push(
        api.get(&m.admin, &format!("/v1/workspaces/{ws}/audit"))
            .await
            .expect(200),
    );
    // The test, two invokes and the debug run are recorded.
    let entries = history_at_least(api, &m.admin, ws, 4).await;
    let history = api
        .get(&m.admin, &format!("/v1/workspaces/{ws}/invocations"))
        .await
        .expect(200);
    for entry in entries {
        seen.push(
            api.get(
                &m.admin,
                &format!("/v1/workspaces/{ws}/invocations/{}", id_text(&entry["id"])),
            )
            .await
            .expect(200),
        );
    }
    seen.push(history);
    for reply in &seen {
        assert!(
            !reply.body.contains(RECOGNIZABLE_KEY),
            "the key is in an answer: {reply}"
        );
        assert!(
            !reply.headers.contains(&RECOGNIZABLE_KEY.to_ascii_lowercase()),
            "{reply}"
        );
    }

    // At rest: the store holds the integration, but not the key in clear.
    let at_rest = store.at_rest().await;
    assert!(
        contains_bytes(&at_rest, &sim.base_url()),
        "the scan reads the store's data (the base URL is there)"
    );
    assert!(
        !contains_bytes(&at_rest, RECOGNIZABLE_KEY),
        "the key is at rest in clear ({backend:?})"
    );
    assert!(
        !serve.stderr().contains(RECOGNIZABLE_KEY),
        "the key was logged:\n{}",
        serve.stderr()
    );

    // `null` removes it — or is refused naming `api_key`, as actionbox.toml
    // refuses a ShipStation integration without a key; then it stays set.
    let cleared = api
        .put(
            &m.admin,
            &format!("/v1/workspaces/{ws}/integrations/main"),
            json!({ "kind": "shipstation", "component": m.component, "base_url": sim.base_url(), "api_key": null }),
        )
        .await;
    assert!(!cleared.body.contains(RECOGNIZABLE_KEY), "{cleared}");
    match cleared.status {
        200 => {
            assert_eq!(cleared.json()["api_key"]["set"], false, "{cleared}");
            assert!(cleared.json()["api_key"].get("fingerprint").is_none(), "{cleared}");
        }
        400 => {
            assert!(cleared.error_message().contains("api_key"), "{cleared}");
            let still = api
                .get(&m.admin, &format!("/v1/workspaces/{ws}/integrations/main"))
                .await
                .expect(200);
            assert_eq!(still.json()["api_key"]["fingerprint"], fingerprint.as_str(), "{still}");
        }
        _ => panic!("removing the key: {cleared}"),
    }
}
