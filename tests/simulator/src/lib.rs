//! A ShipStation API V2 compatible server for tests and demos.
//!
//! It speaks the V2 shapes of `shared/shipstation-v2.md` §9 from fixture data
//! ([`Fixtures`], default in `fixtures/default.json`):
//!
//! | route | answer |
//! |---|---|
//! | `GET /v2/shipments?shipment_number=…&page=…&page_size=…` | paged list; **prefix** match on `shipment_number`, like V1, so clients must filter exact matches themselves |
//! | `GET /v2/shipments/{shipment_id}` | one shipment or 404 error body |
//! | `GET /v2/shipments/external_shipment_id/{id}` | one shipment or 404 error body |
//! | `GET /v2/labels?shipment_id=…` | paged list of that shipment's labels |
//! | `GET /v2/labels/{label_id}/track` | tracking info; 404 error body when there is none, empty 404 for an unknown label |
//!
//! Every request must carry the configured key in `API-Key` (any case), or
//! gets 401 with an error body. [`FaultRule`]s inject failures: any status
//! with `Retry-After`, delays (slow or never-answering upstream), bodies that
//! are malformed, truncated, huge, trickled or of the wrong content type.
//! Every request is recorded ([`Simulator::requests`]) so tests can check
//! what reached the server. It listens on 127.0.0.1 only.

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The fixtures shipped with the simulator.
pub const DEFAULT_FIXTURES: &str = include_str!("../fixtures/default.json");

/// The API key the simulator accepts unless told otherwise. It has the
/// `TEST_` prefix of ShipStation sandbox keys and is not a real key.
pub const DEFAULT_API_KEY: &str = "TEST_actionbox_simulator_key";

/// Fixture data: raw V2 objects.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Fixtures {
    /// V2 shipment objects.
    #[serde(default)]
    pub shipments: Vec<Value>,
    /// V2 label objects (with `shipment_id`).
    #[serde(default)]
    pub labels: Vec<Value>,
    /// `label_id` → `GET /v2/labels/{label_id}/track` body.
    #[serde(default)]
    pub tracking: BTreeMap<String, Value>,
    /// Faults active from the start.
    #[serde(default)]
    pub faults: Vec<FaultRule>,
}

impl Fixtures {
    /// Parse fixtures from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).context("fixtures are not valid simulator JSON")
    }

    /// The shipped default fixtures.
    pub fn default_set() -> Self {
        // The file is part of this crate and checked by its tests.
        Self::from_json(DEFAULT_FIXTURES).unwrap_or_default()
    }
}

/// A failure to inject for matching requests.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FaultRule {
    /// Requests whose path starts with this match (e.g. `/v2/labels`).
    pub path_prefix: String,
    /// If set, the raw query string must contain this too.
    #[serde(default)]
    pub query_contains: Option<String>,
    /// How many matching requests get the fault; `None` means all.
    #[serde(default)]
    pub times: Option<u32>,
    /// Wait this long before answering (a large value = never answers in time).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Answer with this status instead of the normal response.
    #[serde(default)]
    pub status: Option<u16>,
    /// Body to send with `status` (default: a V2 error body).
    #[serde(default)]
    pub body: Option<String>,
    /// `Retry-After` header value.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// `Content-Type` of the fault's body (default `application/json`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Send the body in pieces of this many bytes ...
    #[serde(default)]
    pub trickle_chunk: Option<usize>,
    /// ... waiting this long between pieces.
    #[serde(default)]
    pub trickle_interval_ms: Option<u64>,
    /// Declare a `Content-Length` this many bytes larger than the body sent
    /// (a truncated response).
    #[serde(default)]
    pub truncate_by: Option<usize>,
    /// Send a body of this many bytes (`[` then spaces) instead.
    #[serde(default)]
    pub huge_body_bytes: Option<usize>,
}

impl FaultRule {
    /// A rule matching requests under `path_prefix`.
    pub fn on(path_prefix: &str) -> Self {
        Self {
            path_prefix: path_prefix.to_string(),
            ..Self::default()
        }
    }

    /// Only requests whose query contains `text`.
    pub fn query(mut self, text: &str) -> Self {
        self.query_contains = Some(text.to_string());
        self
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Answer with `status`.
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Send `body`.
    pub fn body(mut self, body: &str) -> Self {
        self.body = Some(body.to_string());
        self
    }

    /// Add `Retry-After: value`.
    pub fn retry_after(mut self, value: &str) -> Self {
        self.retry_after = Some(value.to_string());
        self
    }

    /// Wait before answering.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }

    fn matches(&self, path: &str, query: &str) -> bool {
        path.starts_with(&self.path_prefix)
            && self.query_contains.as_deref().is_none_or(|q| query.contains(q))
            && self.times != Some(0)
    }
}

/// A request as the simulator received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Raw (still percent-encoded) path.
    pub raw_path: String,
    /// Raw query string.
    pub raw_query: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Whether the request carried the accepted key.
    pub authorized: bool,
    /// Header names received (lower case); values are not kept, except
    /// those of the two trace-context headers below.
    pub header_names: Vec<String>,
    /// The `traceparent` header's value, when one came. Kept (unlike every
    /// other header's value) so tests can check the trace context a host
    /// forwards upstream — none by default, the host's own span when an
    /// integration opts in. It identifies a trace, never a credential.
    pub traceparent: Option<String>,
    /// The `tracestate` header's value, when one came: kept for the same
    /// reason as [`RecordedRequest::traceparent`], which it accompanies.
    pub tracestate: Option<String>,
    /// Request body bytes received.
    pub body_bytes: usize,
}

impl RecordedRequest {
    /// The decoded value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

struct SimState {
    fixtures: Fixtures,
    api_key: String,
    faults: Mutex<Vec<FaultRule>>,
    requests: Mutex<Vec<RecordedRequest>>,
    recording: std::sync::atomic::AtomicBool,
    next_request_id: AtomicU64,
    connections_accepted: Arc<AtomicU64>,
}

/// A running simulator. Stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Simulator {
    /// Start on 127.0.0.1 with a free port, the default fixtures and key.
    pub async fn start() -> Result<Self> {
        Self::start_with(Fixtures::default_set(), DEFAULT_API_KEY, 0).await
    }

    /// Start on `127.0.0.1:port` (0 = any free port) with `fixtures`,
    /// accepting `api_key`.
    pub async fn start_with(fixtures: Fixtures, api_key: &str, port: u16) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState {
            faults: Mutex::new(fixtures.faults.clone()),
            fixtures,
            api_key: api_key.to_string(),
            requests: Mutex::new(Vec::new()),
            recording: std::sync::atomic::AtomicBool::new(true),
            next_request_id: AtomicU64::new(1),
            connections_accepted: Arc::new(AtomicU64::new(0)),
        });
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let accepted = state.connections_accepted.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
            accepted.fetch_add(1, Ordering::SeqCst);
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key it accepts.
    pub fn api_key(&self) -> &str {
        &self.state.api_key
    }

    /// Add a fault rule (checked before earlier-added ones' successors: rules
    /// are tried in the order added).
    pub fn add_fault(&self, rule: FaultRule) {
        if let Ok(mut f) = self.state.faults.lock() {
            f.push(rule);
        }
    }

    /// Remove every fault rule.
    pub fn clear_faults(&self) {
        if let Ok(mut f) = self.state.faults.lock() {
            f.clear();
        }
    }

    /// Stop (or resume) recording requests, e.g. for load runs where the
    /// log itself would grow without bound.
    pub fn set_recording(&self, on: bool) {
        self.state.recording.store(on, Ordering::Relaxed);
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// TCP connections accepted so far (to check connection reuse).
    pub fn connections_accepted(&self) -> u64 {
        self.state.connections_accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Decode `%XX` escapes (and `+` as space in query values).
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Largest request body the simulator reads (it reads whole bodies so a
/// client's upload is really consumed).
const MAX_REQUEST_BODY: usize = 128 * 1024 * 1024;

async fn handle(State(state): State<Arc<SimState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body_bytes = axum::body::to_bytes(body, MAX_REQUEST_BODY)
        .await
        .map(|b| b.len())
        .unwrap_or(0);
    let method = parts.method.to_string();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = parse_query(&raw_query);
    let authorized = key_matches(&parts.headers, &state.api_key);
    let header_names = parts.headers.keys().map(|k| k.as_str().to_string()).collect();
    let header_value = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let traceparent = header_value("traceparent");
    let tracestate = header_value("tracestate");
    if let Ok(mut log) = state.requests.lock().map_err(|_| ()).and_then(|l| {
        if state.recording.load(Ordering::Relaxed) {
            Ok(l)
        } else {
            Err(())
        }
    }) {
        log.push(RecordedRequest {
            method: method.clone(),
            raw_path: raw_path.clone(),
            raw_query: raw_query.clone(),
            query: query.clone(),
            authorized,
            header_names,
            traceparent,
            tracestate,
            body_bytes,
        });
    }
    let request_id = format!("sim-{:06}", state.next_request_id.fetch_add(1, Ordering::Relaxed));

    let fault = take_fault(&state, &raw_path, &raw_query);
    if let Some(delay) = fault.as_ref().and_then(|f| f.delay_ms) {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some(fault) = fault
        .as_ref()
        .filter(|f| f.status.is_some() || f.huge_body_bytes.is_some() || f.body.is_some())
    {
        return fault_response(fault, &request_id);
    }
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            &request_id,
            "security",
            "unauthorized",
            "The API key is invalid. Please check your API key.",
        );
    }
    if method != "GET" {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            &request_id,
            "validation",
            "invalid_request",
            "Only GET is simulated.",
        );
    }
    let segments: Vec<String> = raw_path
        .trim_matches('/')
        .split('/')
        .map(|s| percent_decode(s, false))
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let response = match segments.as_slice() {
        ["v2", "shipments"] => list_shipments(&state.fixtures, &query),
        ["v2", "shipments", "external_shipment_id", id] => {
            one_shipment(&state.fixtures, "external_shipment_id", id, &request_id)
        }
        ["v2", "shipments", id] => one_shipment(&state.fixtures, "shipment_id", id, &request_id),
        ["v2", "labels"] => list_labels(&state.fixtures, &query),
        ["v2", "labels", id, "track"] => track(&state.fixtures, id, &request_id),
        _ => error(
            StatusCode::NOT_FOUND,
            &request_id,
            "validation",
            "not_found",
            "No such endpoint in the simulator.",
        ),
    };
    match fault {
        Some(f) if f.trickle_chunk.is_some() || f.truncate_by.is_some() || f.content_type.is_some() => {
            reshape(response, &f).await
        }
        _ => response,
    }
}

fn key_matches(headers: &HeaderMap, expected: &str) -> bool {
    headers.get("api-key").and_then(|v| v.to_str().ok()) == Some(expected)
}

fn take_fault(state: &SimState, path: &str, query: &str) -> Option<FaultRule> {
    let mut faults = state.faults.lock().ok()?;
    let rule = faults.iter_mut().find(|f| f.matches(path, query))?;
    if let Some(t) = rule.times.as_mut() {
        *t -= 1;
    }
    Some(rule.clone())
}

fn fault_response(fault: &FaultRule, request_id: &str) -> Response {
    let status = StatusCode::from_u16(fault.status.unwrap_or(200)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = if let Some(n) = fault.huge_body_bytes {
        let mut b = vec![b' '; n];
        if let Some(first) = b.first_mut() {
            *first = b'[';
        }
        Body::from(b)
    } else {
        Body::from(fault.body.clone().unwrap_or_else(|| {
            json!({
                "request_id": request_id,
                "errors": [{
                    "error_source": "ShipStation",
                    "error_type": "system",
                    "error_code": if status.as_u16() == 429 { "rate_limit_exceeded" } else { "unspecified" },
                    "message": format!("Simulated failure ({status})."),
                }]
            })
            .to_string()
        }))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let ct = fault.content_type.as_deref().unwrap_or("application/json");
    if let Ok(v) = HeaderValue::from_str(ct) {
        response.headers_mut().insert("content-type", v);
    }
    if let Some(ra) = fault.retry_after.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert("retry-after", ra);
    }
    response
}

/// Re-send a normal response trickled, truncated or with another content type.
async fn reshape(response: Response, fault: &FaultRule) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    if let Some(ct) = fault
        .content_type
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        parts.headers.insert("content-type", ct);
    }
    if let Some(extra) = fault.truncate_by {
        if let Ok(v) = HeaderValue::from_str(&(bytes.len() + extra).to_string()) {
            parts.headers.insert("content-length", v);
        }
    }
    let chunk = fault.trickle_chunk.unwrap_or(bytes.len().max(1)).max(1);
    let interval = Duration::from_millis(fault.trickle_interval_ms.unwrap_or(0));
    let pieces: Vec<bytes::Bytes> = bytes.chunks(chunk).map(bytes::Bytes::copy_from_slice).collect();
    let stream = futures_stream(pieces, interval);
    Response::from_parts(parts, Body::from_stream(stream))
}

fn futures_stream(
    pieces: Vec<bytes::Bytes>,
    interval: Duration,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 0 && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            if tx.send(Ok(piece)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream(rx)
}

struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

fn error(status: StatusCode, request_id: &str, error_type: &str, code: &str, message: &str) -> Response {
    let body = json!({
        "request_id": request_id,
        "errors": [{ "error_source": "ShipStation", "error_type": error_type, "error_code": code, "message": message }]
    });
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, [("content-type", "application/json")], body.to_string()).into_response()
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Apply `page`/`page_size` and build the V2 paged envelope.
fn paged(key: &str, path: &str, mut items: Vec<Value>, query: &[(String, String)]) -> Response {
    let sort_field = param(query, "sort_by").unwrap_or("created_at");
    items.sort_by(|a, b| field(b, sort_field).cmp(&field(a, sort_field)));
    if param(query, "sort_dir") == Some("asc") {
        items.reverse();
    }
    let page: usize = param(query, "page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let page_size: usize = param(query, "page_size")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(25);
    let total = items.len();
    let pages = total.div_ceil(page_size);
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * page_size).take(page_size).collect();
    let link =
        |p: usize| json!({ "href": format!("https://api.shipstation.com{path}?page={p}&page_size={page_size}") });
    ok(json!({
        key: slice,
        "total": total,
        "page": page,
        "pages": pages,
        "links": {
            "first": link(1),
            "last": link(pages.max(1)),
            "prev": if page > 1 { link(page - 1) } else { json!({}) },
            "next": if page < pages { link(page + 1) } else { json!({}) },
        }
    }))
}

fn list_shipments(fixtures: &Fixtures, query: &[(String, String)]) -> Response {
    let items = fixtures
        .shipments
        .iter()
        .filter(|s| {
            // Deliberately V1-like prefix matching: clients must not trust it.
            param(query, "shipment_number")
                .is_none_or(|n| field(s, "shipment_number").is_some_and(|sn| sn.starts_with(n)))
                && param(query, "shipment_status").is_none_or(|st| field(s, "shipment_status") == Some(st))
                && param(query, "external_shipment_id").is_none_or(|e| field(s, "external_shipment_id") == Some(e))
        })
        .cloned()
        .collect();
    paged("shipments", "/v2/shipments", items, query)
}

fn one_shipment(fixtures: &Fixtures, by: &str, id: &str, request_id: &str) -> Response {
    match fixtures.shipments.iter().find(|s| field(s, by) == Some(id)) {
        Some(s) => ok(s.clone()),
        None => error(
            StatusCode::NOT_FOUND,
            request_id,
            "validation",
            "invalid_identifier",
            &format!("{by} {id} was not found."),
        ),
    }
}

fn list_labels(fixtures: &Fixtures, query: &[(String, String)]) -> Response {
    let items = fixtures
        .labels
        .iter()
        .filter(|l| {
            param(query, "shipment_id").is_none_or(|id| field(l, "shipment_id") == Some(id))
                && param(query, "tracking_number").is_none_or(|t| field(l, "tracking_number") == Some(t))
        })
        .cloned()
        .collect();
    paged("labels", "/v2/labels", items, query)
}

fn track(fixtures: &Fixtures, label_id: &str, request_id: &str) -> Response {
    if let Some(t) = fixtures.tracking.get(label_id) {
        return ok(t.clone());
    }
    if fixtures.labels.iter().any(|l| field(l, "label_id") == Some(label_id)) {
        return error(
            StatusCode::NOT_FOUND,
            request_id,
            "business_rules",
            "tracking_not_supported",
            &format!("No tracking information is available for label {label_id}."),
        );
    }
    // The V2 spec documents an empty body for an unknown label.
    (StatusCode::NOT_FOUND, "").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fixtures_parse() {
        let f = Fixtures::from_json(DEFAULT_FIXTURES).expect("default fixtures are valid");
        assert!(f.shipments.len() >= 10);
        assert!(f.tracking.contains_key("se-445566778"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("A%26B%2F5%3F%23x%20y", true), "A&B/5?#x y");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz", true), "%zz");
    }
}
