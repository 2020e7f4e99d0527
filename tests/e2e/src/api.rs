//! The HTTP API under test: an in-process `actionbox serve` and a minimal
//! HTTP/1.1 client (one connection per request, like a simple load generator).

use crate::{shipstation_integration, write_config};
use actionbox::server::{serve, ServeOptions, ServeState};
use serde_json::Value;
use shipstation_sim::Simulator;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The bearer token the test server requires.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A server running in the test process.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (metrics, reload).
    pub state: ServeState,
    /// Send to shut it down gracefully.
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The serving task.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The config file it serves.
    pub config: std::path::PathBuf,
}

/// Serve a config with the default trackOrder and a session-start action on `sim`.
pub async fn start(sim: &Simulator, max_concurrency: usize) -> Server {
    std::env::set_var("SHIPSTATION_API_KEY", sim.api_key());
    let text = format!(
        "{}\n[[action]]\nname = \"greet_with_status\"\nintegration = \"shop\"\nmethod = \"trackOrder\"\nexecution = \"session-start\"\nresponse_instructions = \"Greet with the status.\"\n",
        shipstation_integration(&sim.base_url())
    );
    let config = write_config(&format!("serve-{}", sim.addr().port()), &text);
    let options = ServeOptions {
        config: config.clone(),
        auth_token: Some(TOKEN.into()),
        max_concurrency,
    };
    let state = ServeState::new(options).await.expect("config loads");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(state.clone(), listener, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        state,
        stop: Some(tx),
        task,
        config,
    }
}

/// A response.
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// The head, lower-cased.
    pub headers: String,
    /// The (de-chunked) body.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with a
/// JSON body (or none).
pub async fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
    let body = body
        .filter(|b| !b.is_empty())
        .map(|b| ("application/json", b.as_bytes()));
    http_bytes(addr, method, path, token, body).await
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with a
/// body of any content type (e.g. a component's bytes).
pub async fn http_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let (content_type, bytes) = body.unwrap_or(("", &[]));
    if !content_type.is_empty() {
        req.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", bytes.len()));
    stream.write_all(req.as_bytes()).await.expect("write head");
    stream.write_all(bytes).await.expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers: head.to_ascii_lowercase(),
        body,
    }
}

/// Undo chunked transfer encoding.
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
