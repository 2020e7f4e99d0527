//! Remote MCP end to end (issue 14): each workspace's actions over
//! Streamable HTTP at `/v1/workspaces/{ws}/mcp` (and `/mcp` in `--config`
//! mode), reached by a client this project did not write — the `mcp` Python
//! package, driven by `tests/e2e/mcp/remote_client.py` — and by raw HTTP
//! where the status line and headers are the point (401/403 challenges,
//! `ttlMs`). Every test runs the real `actionbox serve` on loopback against
//! the ShipStation simulator, on a port chosen before the start so the
//! server can be given its `--public-url` (the audience JWTs must name, and
//! the `Host` it accepts). Store helpers come from `workspaces.rs`.

use crate::workspaces::*;
use actionbox_e2e::{python_with_mcp, shipstation_integration, workspace_root, write_config, PYTHON_MCP_MADE_BY};
use serde_json::{json, Value};
use shipstation_sim::Simulator;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The modern protocol revision (no initialize; `server/discover`).
const MODERN: &str = "2026-07-28";

/// The handshake revision the Python client offers in `legacy` mode.
const HANDSHAKE: &str = "2025-11-25";

/// The issuer the JWT tests' server trusts.
const ISSUER: &str = "https://issuer.test";

/// Bound on one run of the Python client (a session of a few calls).
const PYTHON_BOUND: Duration = Duration::from_secs(120);

/// Bound on the load run.
const LOAD_BOUND: Duration = Duration::from_secs(600);

/// What the custom action's responses tell the assistant.
const INSTRUCTIONS: &str = "Always give the tracking link.";

// ---------------------------------------------------------------- the server

/// An `actionbox serve` whose `--public-url` is `http://127.0.0.1:PORT`,
/// PORT being where it listens.
struct PublicServe {
    serve: StoreServe,
    /// `http://127.0.0.1:PORT`.
    public: String,
}

impl PublicServe {
    /// `serve --store …` as `spec` describes it, on a port of its own.
    async fn store(spec: &ServeSpec) -> Self {
        // `start` adds `--listen`.
        let (args, env) = spec.command_line(None);
        Self::start(args, env).await
    }

    /// `serve <args> --listen 127.0.0.1:PORT --public-url http://127.0.0.1:PORT`
    /// with `env`, waiting (≤ [`BOUND`]) for it to announce the address. A
    /// port taken between the pick and the bind is picked again.
    async fn start(args: Vec<String>, env: Vec<(String, String)>) -> Self {
        tokio::task::spawn_blocking(move || {
            for _ in 0..3 {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("a free loopback port")
                    .port();
                let public = format!("http://127.0.0.1:{port}");
                let mut with_port = args.clone();
                with_port.extend(["--listen".to_string(), format!("127.0.0.1:{port}")]);
                with_port.extend(["--public-url".to_string(), public.clone()]);
                match StoreServe::launch(&with_port, &env) {
                    Ok(serve) => return Self { serve, public },
                    Err(f) if f.stderr.contains("cannot listen") => continue,
                    Err(f) => panic!("actionbox serve did not start (exit {}):\n{}", f.code, f.stderr),
                }
            }
            panic!("no free loopback port for actionbox serve after 3 tries")
        })
        .await
        .expect("join")
    }

    fn api(&self) -> Api {
        self.serve.api()
    }

    fn addr(&self) -> SocketAddr {
        self.serve.addr
    }

    /// Workspace `ws`'s MCP URL, the audience its JWTs must name.
    fn mcp_url(&self, ws: &str) -> String {
        format!("{}{}", self.public, mcp_path(ws))
    }
}

/// `/v1/workspaces/{ws}/mcp`.
fn mcp_path(ws: &str) -> String {
    format!("/v1/workspaces/{ws}/mcp")
}

/// A store-mode server for the test whose directory is `dir`, with `extra`
/// arguments: (server, simulator).
async fn store_server(dir: &Path, extra: &[&str]) -> (PublicServe, Simulator) {
    let store = TestStore::sqlite(dir);
    let sim = Simulator::start().await.expect("simulator");
    let master = new_master_key(dir, "master.key").await;
    let mut spec = ServeSpec::new(&store, &master, dir);
    spec.args.extend(extra.iter().map(|a| a.to_string()));
    (PublicServe::store(&spec).await, sim)
}

// ---------------------------------------------------------------- raw HTTP

/// One HTTP/1.1 exchange on a fresh connection with exactly `headers` (a
/// `Host` of the server's address unless `headers` name one). Header names
/// come back lower-cased, values as sent.
pub(crate) async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let asked = format!("{method} {path} {headers:?}");
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {addr}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = body.unwrap_or("");
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body.as_bytes()).await.expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(BOUND, work)
        .await
        .unwrap_or_else(|_| panic!("{asked}: no answer within {BOUND:?}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: String = head
        .lines()
        .map(|l| match l.split_once(':') {
            Some((n, v)) => format!("{}:{v}\n", n.to_ascii_lowercase()),
            None => format!("{l}\n"),
        })
        .collect();
    let body = if headers.contains("transfer-encoding: chunked") {
        actionbox_e2e::api::dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        asked,
        status,
        headers,
        body,
    }
}

/// A 2026-07-28 JSON-RPC request as a client sends it: the protocol version
/// in `_meta` and in the `MCP-Protocol-Version` header.
async fn rpc(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, String)],
    method: &str,
    mut params: Value,
) -> Reply {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": { "name": "actionbox-e2e-raw", "version": "0" },
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let body = json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params }).to_string();
    let mut headers: Vec<(&str, String)> = vec![
        ("Content-Type", "application/json".to_string()),
        ("Accept", "application/json, text/event-stream".to_string()),
        ("MCP-Protocol-Version", MODERN.to_string()),
        ("Mcp-Method", method.to_string()),
    ];
    if let Some(name) = params["name"].as_str() {
        headers.push(("Mcp-Name", name.to_string()));
    }
    if let Some(t) = token {
        headers.push(("Authorization", format!("Bearer {t}")));
    }
    headers.extend(extra.iter().cloned());
    exchange(addr, "POST", path, &headers, Some(&body)).await
}

/// A JSON-RPC request as a handshake-era client sends it: no `_meta`, and
/// the negotiated `version` in `MCP-Protocol-Version` (none on `initialize`).
async fn handshake_rpc(
    addr: SocketAddr,
    path: &str,
    token: &str,
    version: Option<&str>,
    method: &str,
    params: Value,
) -> Reply {
    let body = json!({ "jsonrpc": "2.0", "id": 3, "method": method, "params": params }).to_string();
    let mut headers: Vec<(&str, String)> = vec![
        ("Content-Type", "application/json".to_string()),
        ("Accept", "application/json, text/event-stream".to_string()),
        ("Authorization", format!("Bearer {token}")),
    ];
    if let Some(v) = version {
        headers.push(("MCP-Protocol-Version", v.to_string()));
    }
    exchange(addr, "POST", path, &headers, Some(&body)).await
}

/// `tools/list` on `path` with `token`.
async fn raw_list(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    rpc(addr, path, token, &[], "tools/list", json!({})).await
}

/// `tools/call` of trackOrder for order 1001 on `path` with `token`.
async fn raw_call(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    rpc(
        addr,
        path,
        token,
        &[],
        "tools/call",
        json!({ "name": "trackOrder", "arguments": { "order_id": "1001" } }),
    )
    .await
}

/// The `WWW-Authenticate` value of `r` (which must have one).
#[track_caller]
fn challenge(r: &Reply) -> String {
    r.header("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate: {r}\n{}", r.headers))
}

/// The `resource_metadata="…"` URL of a challenge.
#[track_caller]
fn resource_metadata(challenge: &str) -> String {
    challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no resource_metadata in `{challenge}`"))
        .to_string()
}

/// `r` is a 401 Bearer challenge for `ws` on `public`: its metadata URL, the
/// scopes, `error="invalid_token"` exactly when a token was sent; body kind
/// `unauthenticated`.
#[track_caller]
fn assert_unauthenticated(r: &Reply, public: &str, metadata_path: &str, token_sent: bool) {
    assert_eq!(r.status, 401, "{r}");
    let c = challenge(r);
    assert!(c.to_ascii_lowercase().starts_with("bearer "), "{c}");
    assert_eq!(resource_metadata(&c), format!("{public}{metadata_path}"), "{c}");
    assert!(c.contains("scope=\"actions:list actions:call\""), "{c}");
    assert_eq!(
        c.contains("error=\"invalid_token\""),
        token_sent,
        "invalid_token only when a token was sent: {c}"
    );
    assert_eq!(r.error_kind(), "unauthenticated", "{r}");
}

/// `/.well-known/oauth-protected-resource` + the MCP path of `ws`.
fn metadata_path(ws: &str) -> String {
    format!("/.well-known/oauth-protected-resource{}", mcp_path(ws))
}

// ---------------------------------------------------------------- the Python client

/// What one run of `remote_client.py` printed last: one JSON object.
async fn python(args: Vec<String>, bound: Duration) -> Value {
    let script = workspace_root().join("tests/e2e/mcp/remote_client.py");
    let shown = args.join(" ");
    let run = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(python_with_mcp());
        cmd.arg(script).args(&args);
        actionbox_e2e::run_bounded(cmd, None, bound)
    })
    .await
    .expect("join");
    let (code, stdout, stderr) = (run.code, run.stdout, run.stderr);
    assert!(
        !run.timed_out,
        "remote_client.py {shown}: still running after {bound:?}:\n{stderr}"
    );
    assert_eq!(code, 0, "remote_client.py {shown} failed:\n{stderr}\n{stdout}");
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("remote_client.py {shown}: not JSON ({e}):\n{stdout}\n{stderr}"))
}

/// A session on `url` with `token` in `mode`: list the tools when `list`,
/// then make `calls` (`[[tool, arguments], …]`), with `headers` added.
async fn session(url: &str, token: &str, mode: &str, list: bool, calls: Value, headers: &[&str]) -> Value {
    let plan = json!({ "list": list, "calls": calls });
    let mut args = vec![
        "session".to_string(),
        url.to_string(),
        token.to_string(),
        mode.to_string(),
        plan.to_string(),
    ];
    for h in headers {
        args.push("--header".to_string());
        args.push(h.to_string());
    }
    python(args, PYTHON_BOUND).await
}

/// `seen` connected and listed without an error.
#[track_caller]
fn assert_connected(seen: &Value) {
    assert!(seen.get("connect_error").is_none(), "{seen:#}");
    assert!(seen.get("list_error").is_none(), "{seen:#}");
}

/// `seen` was refused: at connect, at the listing, or at every call.
#[track_caller]
fn assert_refused(seen: &Value) {
    let refused_calls = seen["calls"]
        .as_array()
        .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c.get("raised").is_some()));
    assert!(
        seen.get("connect_error").is_some() || seen.get("list_error").is_some() || refused_calls,
        "the client was not refused: {seen:#}"
    );
    let why = ["connect_error", "list_error"]
        .iter()
        .find_map(|k| seen[*k].as_str())
        .or_else(|| seen["calls"][0]["raised"].as_str())
        .unwrap_or_default();
    eprintln!("the Python client ({}) was refused: {why}", seen["mode"]);
}

/// The names of the tools a session listed, sorted.
fn listed(seen: &Value) -> Vec<String> {
    let mut n = names(&seen["tools"]);
    n.sort();
    n
}

/// Call `i` of a session: a successful trackOrder of order 1001.
#[track_caller]
fn assert_tracked(seen: &Value, i: usize) {
    let call = &seen["calls"][i];
    assert_eq!(call["isError"], false, "call {i}: {seen:#}");
    let shipstation = &call["structured"]["result"]["shipstation"];
    assert_eq!(shipstation["order_id"], "1001", "call {i}: {seen:#}");
    assert_eq!(shipstation["tracking"]["status_code"], "DE", "call {i}: {seen:#}");
    assert_eq!(
        shipstation["tracking"]["tracking_number"], "1Z999AA10123456784",
        "call {i}: {seen:#}"
    );
}

/// Call `i` of a session: a tool error of `kind`.
#[track_caller]
fn assert_tool_error(seen: &Value, i: usize, kind: &str) {
    let call = &seen["calls"][i];
    assert_eq!(call["isError"], true, "call {i}: {seen:#}");
    assert_eq!(call["structured"]["error"]["kind"], kind, "call {i}: {seen:#}");
    assert!(
        call["structured"]["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "call {i}: {seen:#}"
    );
}

/// Call `i` of a session raised (a protocol or HTTP error, not a tool result).
#[track_caller]
fn assert_raised(seen: &Value, i: usize) {
    assert!(
        seen["calls"][i]["raised"].as_str().is_some(),
        "call {i} did not raise: {seen:#}"
    );
}

/// No request the simulator received carried an `Authorization` header:
/// assistants' tokens are never passed upstream.
#[track_caller]
fn assert_no_authorization_upstream(sim: &Simulator) {
    let requests = sim.requests();
    assert!(!requests.is_empty(), "the simulator was called");
    for r in &requests {
        assert!(
            !r.header_names.iter().any(|h| h == "authorization"),
            "an Authorization header reached the upstream: {r:?}"
        );
    }
}

/// Put custom action `name` (trackOrder on `main`) in `ws`.
async fn custom_action(api: Api, admin: &str, ws: &str, name: &str, spec: Value) {
    let mut body = json!({ "integration": "main", "method": "trackOrder" });
    if let (Some(b), Some(extra)) = (body.as_object_mut(), spec.as_object()) {
        b.extend(extra.clone());
    }
    api.put(admin, &format!("/v1/workspaces/{ws}/actions/{name}"), body)
        .await
        .expect(201);
}

// ---------------------------------------------------------------- 1. two workspaces

#[tokio::test(flavor = "multi_thread")]
async fn each_workspace_lists_and_calls_only_its_own_tools() {
    actionbox_e2e::require!(python_with_mcp(), PYTHON_MCP_MADE_BY);
    let dir = fresh_dir("mcp-two");
    let (s, sim) = store_server(&dir, &[]).await;
    let api = s.api();
    let a = merchant(api, "alpha", &sim, sim.api_key()).await;
    let b = merchant(api, "beta", &sim, sim.api_key()).await;
    custom_action(
        api,
        &a.admin,
        "alpha",
        "track_shopify_order",
        json!({ "description": "Track a Shopify order.",
                "parameters": { "order_id": { "description": SHOPIFY_DESCRIPTION } },
                "response_instructions": INSTRUCTIONS }),
    )
    .await;
    custom_action(
        api,
        &b.admin,
        "beta",
        "where_is_my_parcel",
        json!({ "description": "Where a parcel is." }),
    )
    .await;

    // What each workspace's REST route says its MCP tools are.
    let mut rest = std::collections::BTreeMap::new();
    for (ws, m) in [("alpha", &a), ("beta", &b)] {
        let tools = api
            .get(&m.assistant, &format!("/v1/workspaces/{ws}/tools?format=mcp"))
            .await
            .expect(200)
            .json();
        rest.insert(ws, tools["tools"].clone());
    }
    let direct = api
        .invoke(&a.assistant, "alpha", "trackOrder", "1001")
        .await
        .expect(200)
        .json();

    let expected = [
        (
            "alpha",
            &a,
            vec!["trackOrder", "track_shopify_order"],
            "where_is_my_parcel",
        ),
        (
            "beta",
            &b,
            vec!["trackOrder", "where_is_my_parcel"],
            "track_shopify_order",
        ),
    ];
    for (ws, m, names, foreign) in &expected {
        for mode in [MODERN, "auto", "legacy"] {
            let mut calls = vec![
                json!(["trackOrder", { "order_id": "1001" }]),
                json!(["trackOrder", { "order_id": "no-such-order" }]),
                json!(["noSuchTool", {}]),
                // The other workspace's custom action is unknown here.
                json!([foreign, { "order_id": "1001" }]),
            ];
            if *ws == "alpha" {
                calls.push(json!(["track_shopify_order", { "order_id": "SHOPIFY-123456789" }]));
            }
            let seen = session(&s.mcp_url(ws), &m.assistant, mode, true, json!(calls), &[]).await;
            assert_connected(&seen);
            let version = if mode == "legacy" { HANDSHAKE } else { MODERN };
            assert_eq!(seen["protocol_version"], version, "{mode}: {seen:#}");
            assert_eq!(listed(&seen), *names, "{ws} {mode}: {seen:#}");
            // The same tools as the REST route's MCP format.
            for tool in seen["tools"].as_array().cloned().unwrap_or_default() {
                let name = tool["name"].as_str().unwrap_or_default();
                let twin = named(&rest[ws], name);
                assert_eq!(tool["description"], twin["description"], "{ws} {mode} {name}");
                assert_eq!(tool["inputSchema"], twin["inputSchema"], "{ws} {mode} {name}");
            }
            assert_tracked(&seen, 0);
            assert_tool_error(&seen, 1, "not-found");
            assert_raised(&seen, 2);
            assert_raised(&seen, 3);
            if *ws == "alpha" {
                let custom = named(&seen["tools"], "track_shopify_order");
                assert_eq!(
                    custom["inputSchema"]["properties"]["order_id"]["description"], SHOPIFY_DESCRIPTION,
                    "{mode}: {custom:#}"
                );
                assert!(
                    custom["description"].as_str().is_some_and(|d| d.contains(INSTRUCTIONS)),
                    "the response instructions are in the description: {custom:#}"
                );
                let shopify = &seen["calls"][4];
                assert_eq!(shopify["isError"], false, "{seen:#}");
                assert_eq!(shopify["structured"]["response_instructions"], INSTRUCTIONS, "{seen:#}");
                // The payload is the invoke route's.
                assert_eq!(seen["calls"][0]["structured"]["result"], direct["result"], "{seen:#}");
            }
            eprintln!(
                "{ws} {mode}: protocol {}, tools {:?}, unknown tool → {}",
                seen["protocol_version"], names, seen["calls"][2]["raised"]
            );
        }
    }

    // The protocol versions on the wire: discover, and a stateless
    // initialize (no session id) then a list, for each handshake revision.
    let path = mcp_path("alpha");
    let discover = rpc(s.addr(), &path, Some(&a.assistant), &[], "server/discover", json!({}))
        .await
        .expect(200);
    let supported = &discover.json()["result"]["supportedVersions"];
    assert!(
        supported.as_array().is_some_and(|v| v.contains(&json!(MODERN))),
        "{discover}"
    );
    for version in [HANDSHAKE, "2025-06-18", "2025-03-26"] {
        let init = handshake_rpc(
            s.addr(),
            &path,
            &a.assistant,
            None,
            "initialize",
            json!({ "protocolVersion": version, "capabilities": {},
                    "clientInfo": { "name": "actionbox-e2e-raw", "version": "0" } }),
        )
        .await
        .expect(200);
        assert_eq!(init.json()["result"]["protocolVersion"], version, "{init}");
        assert!(init.header("mcp-session-id").is_none(), "stateless: {}", init.headers);
        let list = handshake_rpc(s.addr(), &path, &a.assistant, Some(version), "tools/list", json!({}))
            .await
            .expect(200);
        let mut listed = names(&list.json()["result"]["tools"]);
        listed.sort();
        assert_eq!(listed, ["trackOrder", "track_shopify_order"], "{version}: {list}");
    }
    // A 2026-07-28 request must say its version in the header too.
    let body = json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": { "_meta": {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": { "name": "actionbox-e2e-raw", "version": "0" },
        "io.modelcontextprotocol/clientCapabilities": {} } } });
    let headerless = handshake_rpc(
        s.addr(),
        &path,
        &a.assistant,
        None,
        "tools/list",
        body["params"].clone(),
    )
    .await;
    assert_eq!(headerless.status, 400, "{headerless}");
    // -32020: the header does not match the request's protocol version.
    assert_eq!(headerless.json()["error"]["code"], -32020, "{headerless}");
    let mismatched = handshake_rpc(
        s.addr(),
        &path,
        &a.assistant,
        Some("2025-06-18"),
        "tools/list",
        body["params"].clone(),
    )
    .await;
    assert_eq!(mismatched.status, 400, "{mismatched}");
    assert_eq!(mismatched.json()["error"]["code"], -32020, "{mismatched}");

    // History holds the MCP calls like invokes: three sessions each.
    for (ws, m) in [("alpha", &a), ("beta", &b)] {
        let missing = history_of(api, &m.admin, ws, "?outcome=not-found", 3).await;
        assert!(missing.iter().all(|e| e["action"] == "trackOrder"), "{missing:#?}");
    }
    history_of(api, &a.admin, "alpha", "?action=track_shopify_order", 3).await;
    // Per session a found and a missing order; alpha also had a direct invoke.
    history_of(api, &a.admin, "alpha", "?action=trackOrder", 7).await;
    history_of(api, &b.admin, "beta", "?action=trackOrder", 6).await;

    assert_no_authorization_upstream(&sim);
    let logs = s.serve.stderr();
    for secret in [&a.assistant, &b.assistant] {
        assert!(!logs.contains(secret.as_str()), "a token was logged:\n{logs}");
    }
}

// ---------------------------------------------------------------- 2. workspace tokens

#[tokio::test(flavor = "multi_thread")]
async fn workspace_tokens_need_this_workspaces_assistant_scope() {
    actionbox_e2e::require!(python_with_mcp(), PYTHON_MCP_MADE_BY);
    let dir = fresh_dir("mcp-tokens");
    let (s, sim) = store_server(&dir, &[]).await;
    let api = s.api();
    let a = merchant(api, "alpha", &sim, sim.api_key()).await;
    let b = merchant(api, "beta", &sim, sim.api_key()).await;
    let path = mcp_path("alpha");
    let upstream_before = sim.requests().len();

    // The admin scope is not the assistant's: 403 insufficient_scope.
    for r in [
        raw_list(s.addr(), &path, Some(&a.admin)).await,
        raw_call(s.addr(), &path, Some(&a.admin)).await,
    ] {
        assert_eq!(r.status, 403, "{r}");
        let c = challenge(&r);
        assert!(c.contains("error=\"insufficient_scope\""), "{c}");
        assert!(c.contains("scope=\""), "{c}");
        assert_eq!(
            resource_metadata(&c),
            format!("{}{}", s.public, metadata_path("alpha")),
            "{c}"
        );
        eprintln!("admin token on alpha's MCP: 403 kind `{}`", r.error_kind());
        assert!(!r.error_kind().is_empty(), "{r}");
    }
    // Another workspace's tokens: 403, whatever their scope.
    for token in [&b.assistant, &b.admin] {
        let r = raw_list(s.addr(), &path, Some(token)).await;
        assert_eq!(r.status, 403, "{r}");
        eprintln!("beta's token on alpha's MCP: 403 kind `{}`", r.error_kind());
        assert!(!r.error_kind().is_empty(), "{r}");
        let r = raw_call(s.addr(), &path, Some(token)).await;
        assert_eq!(r.status, 403, "{r}");
    }
    // The operator token is not an assistant's either.
    let r = raw_call(s.addr(), &path, Some(OPERATOR)).await;
    assert!(r.status == 401 || r.status == 403, "{r}");

    // No token: a challenge naming the metadata, which is public.
    let none = raw_list(s.addr(), &path, None).await;
    assert_unauthenticated(&none, &s.public, &metadata_path("alpha"), false);
    let url = resource_metadata(&challenge(&none));
    let doc_path = url.strip_prefix(&s.public).unwrap_or_else(|| panic!("{url}"));
    let doc = exchange(s.addr(), "GET", doc_path, &[], None).await.expect(200);
    let meta = doc.json();
    assert_eq!(meta["resource"], s.mcp_url("alpha"), "{doc}");
    assert_eq!(
        meta["scopes_supported"],
        json!(["actions:list", "actions:call"]),
        "{doc}"
    );
    assert_eq!(meta["bearer_methods_supported"], json!(["header"]), "{doc}");
    assert!(
        meta.get("authorization_servers")
            .is_none_or(|s| s.as_array().is_some_and(Vec::is_empty)),
        "no issuer is configured: {doc}"
    );
    assert!(meta["resource_name"].is_string(), "{doc}");
    let beta_doc = exchange(s.addr(), "GET", &metadata_path("beta"), &[], None)
        .await
        .expect(200);
    assert_eq!(beta_doc.json()["resource"], s.mcp_url("beta"), "{beta_doc}");

    // A token nobody issued: invalid_token.
    for garbage in [
        "abx_000000000000_wrongwrongwrongwrongwrong",
        "nonsense",
        "eyJhbGciOiJub25lIn0.e30.",
    ] {
        let r = raw_call(s.addr(), &path, Some(garbage)).await;
        assert_unauthenticated(&r, &s.public, &metadata_path("alpha"), true);
    }

    // The Python client is refused too, at connect or at its first request.
    for (token, mode) in [
        (a.admin.as_str(), "legacy"),
        (a.admin.as_str(), MODERN),
        (b.assistant.as_str(), MODERN),
        ("-", "legacy"),
        ("nonsense-token-0123456789", MODERN),
    ] {
        let calls = json!([["trackOrder", { "order_id": "1001" }]]);
        let seen = session(&s.mcp_url("alpha"), token, mode, true, calls, &[]).await;
        assert_refused(&seen);
    }
    assert_eq!(
        sim.requests().len(),
        upstream_before,
        "a refused call sends nothing upstream"
    );

    // The right token works; GET and DELETE are not served (stateless, POST only).
    raw_list(s.addr(), &path, Some(&a.assistant)).await.expect(200);
    for method in ["GET", "DELETE"] {
        let auth = vec![
            ("Authorization", format!("Bearer {}", a.assistant)),
            ("Accept", "application/json, text/event-stream".to_string()),
        ];
        let r = exchange(s.addr(), method, &path, &auth, None).await;
        assert_eq!(r.status, 405, "{r}");
    }
    let seen = session(
        &s.mcp_url("alpha"),
        &a.assistant,
        MODERN,
        true,
        json!([["trackOrder", { "order_id": "1001" }]]),
        &[],
    )
    .await;
    assert_connected(&seen);
    assert_tracked(&seen, 0);
    assert_no_authorization_upstream(&sim);
}

// ---------------------------------------------------------------- 3. JWTs

#[tokio::test(flavor = "multi_thread")]
async fn jwts_must_name_this_mcp_url_this_issuer_and_the_scope_of_the_call() {
    actionbox_e2e::require!(python_with_mcp(), PYTHON_MCP_MADE_BY);
    let dir = fresh_dir("mcp-jwt");
    let keys_dir = dir.join("issuer");
    let made = python(vec!["keys".into(), text(&keys_dir).into()], PYTHON_BOUND).await;
    let jwks = made["jwks"].as_str().unwrap_or_else(|| panic!("{made}")).to_string();
    let (s, sim) = store_server(&dir, &["--oauth-issuer", ISSUER, "--oauth-jwks", &jwks]).await;
    let api = s.api();
    let a = merchant(api, "alpha", &sim, sim.api_key()).await;
    merchant(api, "beta", &sim, sim.api_key()).await;
    let (alpha, beta) = (s.mcp_url("alpha"), s.mcp_url("beta"));
    let both = "actions:list actions:call";

    let spec = |key: &str, aud: Value, extra: Value| {
        let mut v = json!({ "key": key, "iss": ISSUER, "aud": aud, "scope": both });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        v
    };
    let specs = json!({
        "good_ec": spec("ec", json!(alpha), json!({})),
        "good_rsa": spec("rsa", json!([alpha]), json!({})),
        "list_only": spec("ec", json!(alpha), json!({ "scope": "actions:list" })),
        "for_beta": spec("ec", json!(beta), json!({})),
        "aud_extra_path": spec("ec", json!(format!("{alpha}/extra")), json!({})),
        "aud_other_host": spec("ec", json!("https://other.example/v1/workspaces/alpha/mcp"), json!({})),
        "aud_two": spec("ec", json!([alpha, beta]), json!({})),
        "expired": spec("ec", json!(alpha), json!({ "exp_in": -3600 })),
        "no_exp": spec("ec", json!(alpha), json!({ "exp_in": null })),
        "not_yet": spec("ec", json!(alpha), json!({ "nbf_in": 3600 })),
        "wrong_issuer": spec("ec", json!(alpha), json!({ "iss": "https://evil.test" })),
        "issuer_slash": spec("ec", json!(alpha), json!({ "iss": format!("{ISSUER}/") })),
        "rogue_same_kid": spec("rogue", json!(alpha), json!({})),
        "unknown_kid": spec("ec", json!(alpha), json!({ "kid": "no-such-kid" })),
        "hs256_public": spec("hs256-public", json!(alpha), json!({})),
        "alg_none": spec("none", json!(alpha), json!({})),
    });
    let minted = python(
        vec!["mint".into(), text(&keys_dir).into(), specs.to_string()],
        PYTHON_BOUND,
    )
    .await;
    let token = |name: &str| -> String {
        minted["tokens"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no token {name}: {minted}"))
            .to_string()
    };
    let path = mcp_path("alpha");

    // Good tokens (ES256, and RS256 with a one-element audience list) list and call.
    for (name, mode) in [("good_ec", MODERN), ("good_ec", "legacy"), ("good_rsa", MODERN)] {
        let calls = json!([["trackOrder", { "order_id": "1001" }], ["trackOrder", { "order_id": "nope" }]]);
        let seen = session(&alpha, &token(name), mode, true, calls, &[]).await;
        assert_connected(&seen);
        assert_eq!(listed(&seen), ["trackOrder"], "{name} {mode}: {seen:#}");
        assert_tracked(&seen, 0);
        assert_tool_error(&seen, 1, "not-found");
    }
    history_of(api, &a.admin, "alpha", "?outcome=not-found", 3).await;

    // Every other token is refused with invalid_token, before anything runs.
    let upstream_before = sim.requests().len();
    for name in [
        "aud_extra_path",
        "aud_other_host",
        "aud_two",
        "expired",
        "no_exp",
        "not_yet",
        "wrong_issuer",
        "issuer_slash",
        "rogue_same_kid",
        "unknown_kid",
        "hs256_public",
        "alg_none",
    ] {
        let r = raw_call(s.addr(), &path, Some(&token(name))).await;
        assert_eq!(r.status, 401, "{name}: {r}");
        assert_unauthenticated(&r, &s.public, &metadata_path("alpha"), true);
        let r = raw_list(s.addr(), &path, Some(&token(name))).await;
        assert_eq!(r.status, 401, "{name}: {r}");
    }
    // A token for alpha's URL is not one for beta's, and beta's not alpha's.
    let r = raw_list(s.addr(), &mcp_path("beta"), Some(&token("good_ec"))).await;
    assert_unauthenticated(&r, &s.public, &metadata_path("beta"), true);
    let r = raw_list(s.addr(), &path, Some(&token("for_beta"))).await;
    assert_unauthenticated(&r, &s.public, &metadata_path("alpha"), true);
    let seen = session(
        &beta,
        &token("good_ec"),
        MODERN,
        true,
        json!([["trackOrder", { "order_id": "1001" }]]),
        &[],
    )
    .await;
    assert_refused(&seen);
    let seen = session(&alpha, &token("expired"), "legacy", true, json!([]), &[]).await;
    assert_refused(&seen);
    assert_eq!(
        sim.requests().len(),
        upstream_before,
        "refused calls send nothing upstream"
    );

    // actions:list lists but does not call: 403 insufficient_scope naming actions:call.
    let seen = session(
        &alpha,
        &token("list_only"),
        MODERN,
        true,
        json!([["trackOrder", { "order_id": "1001" }]]),
        &[],
    )
    .await;
    assert_connected(&seen);
    assert_eq!(listed(&seen), ["trackOrder"], "{seen:#}");
    assert_raised(&seen, 0);
    raw_list(s.addr(), &path, Some(&token("list_only"))).await.expect(200);
    let r = raw_call(s.addr(), &path, Some(&token("list_only"))).await;
    assert_eq!(r.status, 403, "{r}");
    let c = challenge(&r);
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("scope=\"actions:call\""), "{c}");
    assert_eq!(
        resource_metadata(&c),
        format!("{}{}", s.public, metadata_path("alpha")),
        "{c}"
    );
    eprintln!("actions:list JWT calling a tool: 403 kind `{}`", r.error_kind());
    // A body naming `method` twice is read one way by the scope check and
    // perhaps another by the protocol: the handler refuses the call anyway.
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": { "name": "actionbox-e2e-raw", "version": "0" },
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let params = json!({ "name": "trackOrder", "arguments": { "order_id": "1001" }, "_meta": meta });
    let twice = format!(r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{params},"method":"tools/list"}}"#);
    let headers: Vec<(&str, String)> = vec![
        ("Content-Type", "application/json".to_string()),
        ("Accept", "application/json, text/event-stream".to_string()),
        ("MCP-Protocol-Version", MODERN.to_string()),
        ("Authorization", format!("Bearer {}", token("list_only"))),
    ];
    let r = exchange(s.addr(), "POST", &path, &headers, Some(&twice)).await;
    eprintln!("a list-only JWT with `method` twice: HTTP {} {}", r.status, r.body);
    assert!(
        !r.body.contains("\"isError\":false") && !r.body.contains("tracking_number"),
        "the call ran: {r}"
    );
    assert_eq!(
        sim.requests().len(),
        upstream_before,
        "the refused call sent nothing upstream"
    );

    // The metadata now names the issuer.
    let doc = exchange(s.addr(), "GET", &metadata_path("alpha"), &[], None)
        .await
        .expect(200);
    assert_eq!(doc.json()["authorization_servers"], json!([ISSUER]), "{doc}");
    assert_eq!(doc.json()["resource"], alpha, "{doc}");

    // Workspace tokens still work beside JWTs.
    raw_call(s.addr(), &path, Some(&a.assistant)).await.expect(200);

    assert_no_authorization_upstream(&sim);
    let logs = s.serve.stderr();
    assert!(!logs.contains(&token("good_ec")), "a JWT was logged:\n{logs}");
}

// ---------------------------------------------------------------- 4. Origin and Host

#[tokio::test(flavor = "multi_thread")]
async fn foreign_origins_and_hosts_are_refused() {
    actionbox_e2e::require!(python_with_mcp(), PYTHON_MCP_MADE_BY);
    let dir = fresh_dir("mcp-origin");
    let (s, sim) = store_server(&dir, &["--allowed-origin", "https://console.example"]).await;
    let api = s.api();
    let a = merchant(api, "alpha", &sim, sim.api_key()).await;
    let path = mcp_path("alpha");
    let list = |extra: Vec<(&'static str, String)>| {
        let (addr, path, token) = (s.addr(), path.clone(), a.assistant.clone());
        async move { rpc(addr, &path, Some(&token), &extra, "tools/list", json!({})).await }
    };

    // Without Origin, from the public origin or an allowed one: served.
    let plain = list(vec![]).await.expect(200);
    // The default tools TTL is 60 s.
    assert_eq!(plain.json()["result"]["ttlMs"], 60_000, "{plain}");
    list(vec![("Origin", s.public.clone())]).await.expect(200);
    list(vec![("Origin", "https://console.example".to_string())])
        .await
        .expect(200);

    // A page on another origin: 403, whether or not it has a token.
    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let r = list(vec![("Origin", origin.to_string())]).await;
        assert_eq!(r.status, 403, "{origin}: {r}");
        assert_eq!(r.error_kind(), "origin-not-allowed", "{r}");
    }
    let r = rpc(
        s.addr(),
        &path,
        None,
        &[("Origin", "https://evil.example".to_string())],
        "tools/list",
        json!({}),
    )
    .await;
    assert!(r.status == 403 || r.status == 401, "{r}");

    // Host: the public one, or a loopback spelling of it; nothing else (DNS rebinding).
    let port = s.addr().port();
    list(vec![("Host", format!("localhost:{port}"))]).await.expect(200);
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
    ] {
        let r = list(vec![("Host", host.clone())]).await;
        assert_eq!(r.status, 403, "{host}: {r}");
        assert_eq!(r.error_kind(), "host-not-allowed", "{r}");
    }

    // The Python client with a foreign Origin is refused; with the allowed one it works.
    let calls = json!([["trackOrder", { "order_id": "1001" }]]);
    let seen = session(
        &s.mcp_url("alpha"),
        &a.assistant,
        MODERN,
        true,
        calls.clone(),
        &["Origin:https://evil.example"],
    )
    .await;
    assert_refused(&seen);
    let seen = session(
        &s.mcp_url("alpha"),
        &a.assistant,
        MODERN,
        true,
        calls,
        &["Origin:https://console.example"],
    )
    .await;
    assert_connected(&seen);
    assert_tracked(&seen, 0);
}

// ---------------------------------------------------------------- 5. the tools TTL

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_change_is_seen_once_the_tools_ttl_has_passed() {
    actionbox_e2e::require!(python_with_mcp(), PYTHON_MCP_MADE_BY);
    let dir = fresh_dir("mcp-ttl");
    let (s, sim) = store_server(&dir, &["--mcp-tools-ttl", "2"]).await;
    let api = s.api();
    let a = merchant(api, "alpha", &sim, sim.api_key()).await;
    let path = mcp_path("alpha");

    // tools/list says how long its answer holds.
    let r = raw_list(s.addr(), &path, Some(&a.assistant)).await.expect(200);
    let result = &r.json()["result"];
    assert_eq!(result["ttlMs"], 2000, "{r}");
    assert_eq!(result["cacheScope"], "private", "{r}");

    // One open session: list, the admin adds an action, list again after the TTL.
    let script = workspace_root().join("tests/e2e/mcp/remote_client.py");
    let url = s.mcp_url("alpha");
    let token = a.assistant.clone();
    let mut watcher = WatchedPython::start(&[text(&script), "ttl", &url, &token]);
    let first = watcher.next_line().await;
    assert_eq!(first["names"], json!(["trackOrder"]), "{first}");
    assert_eq!(first["ttl_ms"], 2000, "the client sees the TTL: {first}");
    custom_action(
        api,
        &a.admin,
        "alpha",
        "added_later",
        json!({ "description": "Added while listed." }),
    )
    .await;
    watcher.say("changed\n");
    let after = watcher.next_line().await;
    eprintln!(
        "within the TTL the client listed {} (cached or not); after it {}",
        after["within_ttl"], after["after_ttl"]
    );
    let mut seen_after: Vec<String> = names_of(&after["after_ttl"]);
    seen_after.sort();
    assert_eq!(seen_after, ["added_later", "trackOrder"], "{after}");

    // A deletion too, for a fresh look after the TTL.
    api.delete(&a.admin, "/v1/workspaces/alpha/actions/added_later")
        .await
        .expect(204);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = raw_list(s.addr(), &path, Some(&a.assistant)).await.expect(200);
    assert_eq!(names(&r.json()["result"]["tools"]), ["trackOrder"], "{r}");
}

/// A 2026-07-28 client listening for tool list changes hears of an admin
/// change, and the stream stays open past the server's write bound on its
/// keep-alives (here `--header-read-timeout 2` and a 4 s wait).
#[tokio::test(flavor = "multi_thread")]
async fn a_listening_client_is_told_when_the_tools_change() {
    actionbox_e2e::require!(python_with_mcp(), PYTHON_MCP_MADE_BY);
    let dir = fresh_dir("mcp-listen");
    let (s, sim) = store_server(&dir, &["--header-read-timeout", "2"]).await;
    let api = s.api();
    let a = merchant(api, "alpha", &sim, sim.api_key()).await;
    let script = workspace_root().join("tests/e2e/mcp/remote_client.py");
    let url = s.mcp_url("alpha");
    let mut watcher = WatchedPython::start(&[text(&script), "listen", &url, &a.assistant, "4"]);
    let listening = watcher.next_line().await;
    assert!(
        listening["honored"]
            .as_str()
            .unwrap_or_default()
            .contains("tools_list_changed=True"),
        "the server honours tool list changes: {listening}"
    );
    let open = watcher.next_line().await;
    assert_eq!(open["step"], "still-open", "{open}");
    custom_action(
        api,
        &a.admin,
        "alpha",
        "added_while_listening",
        json!({ "description": "Added while a client listened." }),
    )
    .await;
    watcher.say("changed\n");
    let seen = watcher.next_line().await;
    assert_eq!(seen["event"], "ToolsListChanged", "{seen}");
    assert_eq!(seen["ended"], "graceful", "the stream ends after its notice: {seen}");
    let mut listed = names_of(&seen["names"]);
    listed.sort();
    assert_eq!(listed, ["added_while_listening", "trackOrder"], "{seen}");
}

/// Strings of a JSON array.
fn names_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

/// `remote_client.py` kept running, read line by line (each bounded) and
/// spoken to on its standard input; killed when dropped.
struct WatchedPython {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl WatchedPython {
    fn start(args: &[&str]) -> Self {
        use std::io::{BufRead, Read};
        use std::process::{Command, Stdio};
        let mut child = Command::new(python_with_mcp())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python runs");
        let out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let kept = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            if let Ok(mut k) = kept.lock() {
                *k = s;
            }
        });
        Self { child, lines, stderr }
    }

    /// The next line, as JSON (≤ [`PYTHON_BOUND`]).
    async fn next_line(&mut self) -> Value {
        let line = tokio::time::timeout(PYTHON_BOUND, self.lines.recv()).await;
        let stderr = || {
            std::thread::sleep(Duration::from_millis(200));
            self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
        };
        match line {
            Ok(Some(l)) => serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")),
            Ok(None) => panic!("remote_client.py ended early:\n{}", stderr()),
            Err(_) => panic!("remote_client.py said nothing within {PYTHON_BOUND:?}:\n{}", stderr()),
        }
    }

    fn say(&mut self, text: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        stdin.write_all(text.as_bytes()).expect("write to python");
        stdin.flush().expect("flush");
    }
}

impl Drop for WatchedPython {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- 6. quotas and load

#[tokio::test(flavor = "multi_thread")]
async fn quotas_apply_and_a_thousand_calls_at_concurrency_32_all_succeed() {
    actionbox_e2e::require!(python_with_mcp(), PYTHON_MCP_MADE_BY);
    const CALLS: usize = 1000;
    const CONCURRENCY: usize = 32;
    let dir = fresh_dir("mcp-load");
    let (s, sim) = store_server(&dir, &["--max-concurrency", "64"]).await;
    let api = s.api();
    let a = merchant(api, "alpha", &sim, sim.api_key()).await;
    let url = s.mcp_url("alpha");

    // Two calls a minute: the third MCP call is a quota-exceeded tool error.
    api.put(
        OPERATOR,
        "/v1/admin/workspaces/alpha/quotas",
        json!({ "max_concurrent_calls": 64, "calls_per_minute": 2 }),
    )
    .await
    .expect(200);
    let one = json!(["trackOrder", { "order_id": "1001" }]);
    let seen = session(&url, &a.assistant, MODERN, false, json!([one, one, one]), &[]).await;
    assert_connected(&seen);
    assert_tracked(&seen, 0);
    assert_tracked(&seen, 1);
    assert_tool_error(&seen, 2, "quota-exceeded");

    // Enough quota for the run.
    api.put(
        OPERATOR,
        "/v1/admin/workspaces/alpha/quotas",
        json!({ "max_concurrent_calls": 64, "calls_per_minute": 100_000 }),
    )
    .await
    .expect(200);
    sim.set_recording(false);
    let run = python(
        vec![
            "load".into(),
            url,
            a.assistant.clone(),
            CALLS.to_string(),
            CONCURRENCY.to_string(),
        ],
        LOAD_BOUND,
    )
    .await;
    eprintln!(
        "remote MCP load: {} tools/call of trackOrder at concurrency {} in {} s: {} calls/s, p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (client CPU {} s)",
        run["calls"], run["concurrency"], run["elapsed_s"], run["calls_per_s"], run["p50_ms"], run["p90_ms"], run["p99_ms"], run["max_ms"], run["client_cpu_s"]
    );
    assert_eq!(run["calls"], CALLS, "{run}");
    assert_eq!(run["ok"], CALLS, "every call succeeded: {run}");
    assert!(s.serve.stderr().len() < 1024 * 1024, "the run flooded the log");
}

// ---------------------------------------------------------------- 7. config mode

#[tokio::test(flavor = "multi_thread")]
async fn config_mode_serves_mcp_with_the_serve_token() {
    actionbox_e2e::require!(python_with_mcp(), PYTHON_MCP_MADE_BY);
    const TOKEN: &str = "config-mode-serve-token-0123456789";
    let sim = Simulator::start().await.expect("simulator");
    let config = write_config(
        "mcp-remote-config",
        &format!(
            "{}\n[[action]]\nname = \"track_shopify_order\"\nintegration = \"shop\"\nmethod = \"trackOrder\"\nresponse_instructions = \"{INSTRUCTIONS}\"\n[action.parameters.order_id]\ndescription = \"{SHOPIFY_DESCRIPTION}\"\n",
            shipstation_integration(&sim.base_url())
        ),
    );
    let s = PublicServe::start(
        vec!["--config".into(), text(&config).into()],
        vec![
            ("ACTIONBOX_AUTH_TOKEN".into(), TOKEN.into()),
            ("SHIPSTATION_API_KEY".into(), sim.api_key().into()),
        ],
    )
    .await;
    let url = format!("{}/mcp", s.public);

    for mode in [MODERN, "legacy"] {
        let calls = json!([
            ["trackOrder", { "order_id": "1001" }],
            ["trackOrder", { "order_id": "no-such-order" }],
            ["noSuchTool", {}],
        ]);
        let seen = session(&url, TOKEN, mode, true, calls, &[]).await;
        assert_connected(&seen);
        assert_eq!(listed(&seen), ["trackOrder", "track_shopify_order"], "{mode}: {seen:#}");
        let custom = named(&seen["tools"], "track_shopify_order");
        assert_eq!(
            custom["inputSchema"]["properties"]["order_id"]["description"], SHOPIFY_DESCRIPTION,
            "{custom:#}"
        );
        assert!(
            custom["description"].as_str().is_some_and(|d| d.contains(INSTRUCTIONS)),
            "{custom:#}"
        );
        assert_tracked(&seen, 0);
        assert_tool_error(&seen, 1, "not-found");
        assert_raised(&seen, 2);
    }

    // The wrong token: a challenge naming /mcp's metadata, and a refused client.
    for (token, sent) in [(Some("wrong-token-0123456789abcdef"), true), (None, false)] {
        let r = raw_list(s.addr(), "/mcp", token).await;
        assert_unauthenticated(&r, &s.public, "/.well-known/oauth-protected-resource/mcp", sent);
    }
    let doc = exchange(s.addr(), "GET", "/.well-known/oauth-protected-resource/mcp", &[], None)
        .await
        .expect(200);
    assert_eq!(doc.json()["resource"], url, "{doc}");
    let seen = session(&url, "wrong-token-0123456789abcdef", "legacy", true, json!([]), &[]).await;
    assert_refused(&seen);
    assert_no_authorization_upstream(&sim);
}

// ---------------------------------------------------------------- 8. the default public URL

#[tokio::test(flavor = "multi_thread")]
async fn without_public_url_the_bound_address_is_the_resource() {
    let dir = fresh_dir("mcp-default-url");
    let store = TestStore::sqlite(&dir);
    let sim = Simulator::start().await.expect("simulator");
    let master = new_master_key(&dir, "master.key").await;
    // `--listen 127.0.0.1:0`: the port is only known once bound.
    let serve = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let a = merchant(serve.api(), "alpha", &sim, sim.api_key()).await;
    let public = format!("http://{}", serve.addr);
    let doc = exchange(serve.addr, "GET", &metadata_path("alpha"), &[], None)
        .await
        .expect(200);
    assert_eq!(
        doc.json()["resource"],
        format!("{public}{}", mcp_path("alpha")),
        "{doc}"
    );
    let none = raw_list(serve.addr, &mcp_path("alpha"), None).await;
    assert_unauthenticated(&none, &public, &metadata_path("alpha"), false);
    let call = raw_call(serve.addr, &mcp_path("alpha"), Some(&a.assistant))
        .await
        .expect(200);
    assert_eq!(call.json()["result"]["isError"], false, "{call}");
}
