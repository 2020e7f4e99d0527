//! The sandbox's only door to the network: the `wasi:http` outbound hook.
//!
//! Every request an action makes through `wasi:http/outgoing-handler` comes
//! here ([`OutboundHooks::send_request`]) and is:
//! 1. checked against the [`OutboundPolicy`] — scheme, host and port must be
//!    the integration's base URL, and the action's manifest must declare it;
//! 2. resolved, and every address checked: private, loopback and link-local
//!    ranges are refused unless the base URL itself points there;
//! 3. stripped of credential headers the guest tried to set, then given the
//!    integration's key in the manifest's credential header;
//! 4. sent over a connection to the *checked* address (no second DNS lookup a
//!    rebinding attacker could race), with every phase clamped to what is left
//!    of the call's deadline and the response body capped. The connection is
//!    an idle keep-alive one to exactly that peer when the component's
//!    [`ConnectionPool`] has one, else a new one (see `conn_pool.rs` for
//!    when a connection is reused and when it is closed).
//!
//! A refused request fails inside the guest as `HttpRequestDenied`; the host
//! log says which host was refused and which setting would allow it.

use crate::conn_pool::{checkin_when_ready, ConnectionPool, PeerKey, PooledConnection, READY_WAIT};
use crate::deadline::ActionDeadline;
use crate::integration::BaseUrl;
use crate::limits::{SandboxLimits, SandboxViolation};
use crate::secret::ApiKey;
use bytes::Bytes;
use http::{HeaderName, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// What one integration's actions may reach. Built once per integration and
/// shared by every invocation.
#[derive(Debug)]
pub struct OutboundPolicy {
    /// The integration's base URL: the only origin requests may go to.
    pub base_url: BaseUrl,
    /// Whether the action's manifest declares the base URL's host (directly
    /// or as `{base-url}`). If not, every request is refused.
    pub manifest_allows_base: bool,
    /// Whether non-public addresses may be dialled: only when the operator
    /// pointed the base URL at one (tests, local simulators).
    pub allow_private_addresses: bool,
    /// Header the key goes in (from the manifest). The guest may never set it.
    pub credential_header: Option<HeaderName>,
    /// The key injected in `credential_header`; `None` sends none.
    pub api_key: Option<ApiKey>,
    /// Cap on one response body, in bytes.
    pub max_response_bytes: u64,
    /// Cap on one request body, in bytes.
    pub max_request_body_bytes: u64,
    /// Cap on requests per invocation.
    pub max_requests: u32,
    /// Addresses to use for a host name instead of DNS (like curl's
    /// `--resolve`); still subject to the address checks.
    pub pinned_addresses: BTreeMap<String, Vec<IpAddr>>,
}

impl OutboundPolicy {
    /// The policy for `base_url`, given the hosts the manifest declares and its
    /// credential header.
    pub fn new(
        base_url: BaseUrl,
        declared_hosts: &[String],
        credential_header: Option<&str>,
        api_key: Option<ApiKey>,
        limits: &SandboxLimits,
    ) -> anyhow::Result<Self> {
        let manifest_allows_base = declared_hosts
            .iter()
            .any(|h| h == "{base-url}" || h.eq_ignore_ascii_case(&base_url.host));
        let credential_header = credential_header
            .map(|header| {
                HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| anyhow::anyhow!("the action's manifest names an invalid credential header `{header}`"))
            })
            .transpose()?;
        Ok(Self {
            allow_private_addresses: base_url.targets_private_network(),
            base_url,
            manifest_allows_base,
            credential_header,
            api_key,
            max_response_bytes: limits.max_response_body_bytes,
            max_request_body_bytes: limits.max_request_body_bytes,
            max_requests: limits.max_outbound_requests,
            pinned_addresses: BTreeMap::new(),
        })
    }

    /// A policy that refuses every request (used while an action describes itself).
    pub fn deny_all() -> Self {
        Self {
            base_url: BaseUrl {
                scheme: "https".into(),
                host: "invalid".into(),
                port: 443,
                path_prefix: String::new(),
            },
            manifest_allows_base: false,
            allow_private_addresses: false,
            credential_header: None,
            api_key: None,
            max_response_bytes: 0,
            max_request_body_bytes: 0,
            max_requests: 0,
            pinned_addresses: BTreeMap::new(),
        }
    }

    /// Why a request to `scheme://host:port` is refused, or `None` if allowed.
    fn refusal(&self, scheme: &str, host: &str, port: u16) -> Option<String> {
        let base = &self.base_url;
        if !self.manifest_allows_base {
            return Some(format!(
                "the action's manifest does not declare the base URL host `{}`; it may reach nothing",
                base.host
            ));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if scheme != base.scheme || !host.eq_ignore_ascii_case(&base.host) || port != base.port {
            return Some(format!(
                "{scheme}://{host}:{port} is not the integration's base URL ({base}); \
                 to allow it, set the integration's base_url to {scheme}://{host}:{port}"
            ));
        }
        None
    }

    /// Whether `name` is a header the guest must not set itself.
    pub fn is_credential_header(&self, name: &HeaderName) -> bool {
        *name == http::header::AUTHORIZATION
            || *name == http::header::PROXY_AUTHORIZATION
            || self.credential_header.as_ref() == Some(name)
    }
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local,
/// CGNAT, unspecified, multicast, documentation or other special ranges).
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 CGNAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 IETF
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
                || o[0] >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_address(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x64 && s[1] == 0xff9b)) // NAT64 can reach private v4
        }
    }
}

/// One outbound request as the debugger and tests see it. Never holds the key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboundRecord {
    /// HTTP method.
    pub method: String,
    /// Full URL (scheme, host, port, path and query).
    pub url: String,
    /// Request headers as sent; the credential's value is `[redacted]`.
    pub request_headers: Vec<(String, String)>,
    /// Response status, when a response arrived.
    pub status: Option<u16>,
    /// Why it failed or was refused, when it did.
    pub error: Option<String>,
    /// Milliseconds from the hook being called to the response head.
    pub duration_ms: u64,
    /// Response body bytes delivered to the guest.
    pub response_bytes: u64,
    /// Whether it went over an idle keep-alive connection (no new TCP
    /// connection or TLS handshake).
    pub reused_connection: bool,
}

/// Shared list of an invocation's outbound records.
pub type OutboundLog = Arc<Mutex<Vec<OutboundRecord>>>;

/// Shared list of what the sandbox stopped during an invocation.
pub type ViolationLog = Arc<Mutex<Vec<SandboxViolation>>>;

/// Record a violation and log it for the operator.
pub(crate) fn record_violation(violations: &ViolationLog, violation: SandboxViolation) {
    match &violation {
        SandboxViolation::Denied { message } => {
            tracing::warn!(target: "actionbox::sandbox", "denied: {message}")
        }
        SandboxViolation::LimitExceeded { message } => {
            tracing::warn!(target: "actionbox::sandbox", "limit exceeded: {message}")
        }
    }
    if let Ok(mut v) = violations.lock() {
        v.push(violation);
    }
}

/// The per-invocation `WasiHttpHooks`: a policy, a deadline and logs.
pub struct OutboundHooks {
    policy: Arc<OutboundPolicy>,
    deadline: ActionDeadline,
    requests: u32,
    /// Idle keep-alive connections shared with other invocations; `None`
    /// opens a connection per request.
    pool: Option<Arc<ConnectionPool>>,
    /// What was sent, for the debugger and tests.
    pub log: OutboundLog,
    /// What the sandbox stopped.
    pub violations: ViolationLog,
}

impl OutboundHooks {
    /// Hooks for one invocation.
    pub fn new(policy: Arc<OutboundPolicy>, deadline: ActionDeadline) -> Self {
        Self {
            policy,
            deadline,
            requests: 0,
            pool: None,
            log: Arc::default(),
            violations: Arc::default(),
        }
    }

    /// Reuse connections from `pool` (and leave reusable ones there).
    pub fn with_pool(mut self, pool: Arc<ConnectionPool>) -> Self {
        self.pool = Some(pool);
        self
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture = Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for OutboundHooks {
    fn forbidden_header_filter(&mut self) -> wasmtime_wasi_http::ForbiddenHeaderFilter {
        let policy = self.policy.clone();
        Arc::new(move |name| {
            wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name) || policy.is_credential_header(name)
        })
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        self.requests += 1;
        let count = self.requests;
        let policy = self.policy.clone();
        let deadline = self.deadline;
        let log = self.log.clone();
        let violations = self.violations.clone();
        let pool = self.pool.clone();
        Box::new(async move {
            let started = Instant::now();
            let mut record = OutboundRecord {
                method: request.method().to_string(),
                url: request.uri().to_string(),
                request_headers: Vec::new(),
                status: None,
                error: None,
                duration_ms: 0,
                response_bytes: 0,
                reused_connection: false,
            };
            // Take this request's slot in the log now, in start order, so its
            // response body counts its bytes into the right record even when
            // the guest has several requests in flight.
            let index = log
                .lock()
                .map(|mut records| {
                    records.push(record.clone());
                    records.len() - 1
                })
                .unwrap_or(usize::MAX);
            let result = if count > policy.max_requests {
                record_violation(
                    &violations,
                    SandboxViolation::LimitExceeded {
                        message: format!(
                            "the action made more than {} outbound requests in one call (limits.max_outbound_requests)",
                            policy.max_requests
                        ),
                    },
                );
                Err(HttpError::HttpRequestDenied)
            } else {
                send(
                    &policy,
                    pool,
                    deadline,
                    options,
                    request,
                    &mut record,
                    (log.clone(), index),
                    violations.clone(),
                )
                .await
            };
            record.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            if let Err(e) = &result {
                record.error = Some(describe_error(e));
            }
            if let Ok(mut records) = log.lock() {
                if let Some(slot) = records.get_mut(index) {
                    record.response_bytes = slot.response_bytes;
                    *slot = record;
                }
            }
            result
        })
    }
}

fn describe_error(e: &HttpError) -> String {
    match e {
        HttpError::HttpRequestDenied => "denied by the sandbox".into(),
        other => format!("{other}"),
    }
}

/// Check, resolve, connect and send one request.
#[allow(clippy::too_many_arguments)]
async fn send(
    policy: &OutboundPolicy,
    pool: Option<Arc<ConnectionPool>>,
    deadline: ActionDeadline,
    options: Option<RequestOptions>,
    mut request: Request<WasiBody>,
    record: &mut OutboundRecord,
    (log, index): (OutboundLog, usize),
    violations: ViolationLog,
) -> Result<(Response<WasiBody>, IoFuture), HttpError> {
    let uri = request.uri().clone();
    let scheme = uri.scheme_str().unwrap_or("https").to_string();
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?.to_string();
    let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    if let Some(why) = policy.refusal(&scheme, &host, port) {
        record_violation(
            &violations,
            SandboxViolation::Denied {
                message: format!("outbound request refused: {why}"),
            },
        );
        return Err(HttpError::HttpRequestDenied);
    }

    // The key goes only to the base URL's host, only in its header; whatever
    // credential-like headers the guest set are dropped first.
    let headers = request.headers_mut();
    headers.remove(http::header::AUTHORIZATION);
    headers.remove(http::header::PROXY_AUTHORIZATION);
    if let Some(name) = &policy.credential_header {
        headers.remove(name);
        if let Some(key) = &policy.api_key {
            headers.insert(name.clone(), key.header_value());
        }
    }
    record.request_headers = request
        .headers()
        .iter()
        .map(|(n, v)| {
            let shown = if v.is_sensitive() {
                "[redacted]".to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (n.to_string(), shown)
        })
        .collect();

    let phase = |configured: Option<Duration>| -> Duration {
        let left = deadline.remaining();
        configured.map_or(left, |c| c.min(left))
    };
    let connect_timeout = phase(options.and_then(|o| o.connect_timeout));
    let first_byte_timeout = options.and_then(|o| o.first_byte_timeout);
    let between_bytes_timeout = options.and_then(|o| o.between_bytes_timeout);

    let addrs = match policy.pinned_addresses.get(&host.to_ascii_lowercase()) {
        Some(ips) => ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
        None => resolve(&host, port, connect_timeout).await?,
    };
    if !policy.allow_private_addresses {
        if let Some(bad) = addrs.iter().find(|a| !is_public_address(a.ip())) {
            record_violation(
                &violations,
                SandboxViolation::Denied {
                    message: format!(
                        "outbound request refused: {host} resolves to the non-public address {}; private, loopback \
                         and link-local ranges are reachable only when the integration's base_url itself names one",
                        bad.ip()
                    ),
                },
            );
            return Err(HttpError::HttpRequestDenied);
        }
    }
    // Set when the request body is cut: that connection is never reused.
    let poisoned = Arc::new(AtomicBool::new(false));
    let body_limit = policy.max_request_body_bytes;
    let body_violations = violations.clone();
    let body_poisoned = poisoned.clone();
    let mut request = request.map(move |body| {
        LimitedRequestBody {
            inner: body,
            limit: body_limit,
            sent: 0,
            violations: body_violations,
            poisoned: body_poisoned,
        }
        .boxed_unsync()
    });

    // On the wire the request line carries only the path; Host is already set.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    // Everything above is the policy; from here on an idle connection to the
    // very peer that passed it may stand in for a new one.
    let host_name = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let peer = Peer {
        tls_server_name: (scheme == "https").then(|| host_name.clone()),
        scheme,
        host: host_name,
        port,
        credential: credential_fingerprint(policy),
    };
    let pooled = pool
        .as_ref()
        .and_then(|pool| addrs.iter().find_map(|addr| pool.checkout(&peer.key(*addr))));
    let (mut conn, reused) = match pooled {
        Some(conn) => (conn, true),
        None => (dial(&addrs, &peer, connect_timeout, deadline).await?, false),
    };
    record.reused_connection = reused;

    let sent = tokio::time::timeout(phase(first_byte_timeout), conn.sender.try_send_request(request)).await;
    let response = match sent {
        Err(_) => return Err(HttpError::ConnectionReadTimeout),
        Ok(Ok(response)) => response,
        Ok(Err(mut e)) => match e.take_message() {
            // The idle connection closed just before the request could be
            // written (the server timed it out): nothing was sent, so send it
            // once more on a new connection.
            Some(request) if reused => {
                drop(conn);
                conn = dial(&addrs, &peer, phase(options.and_then(|o| o.connect_timeout)), deadline).await?;
                record.reused_connection = false;
                match tokio::time::timeout(phase(first_byte_timeout), conn.sender.send_request(request)).await {
                    Err(_) => return Err(HttpError::ConnectionReadTimeout),
                    Ok(r) => r?,
                }
            }
            _ => return Err(e.into_error().into()),
        },
    };
    record.status = Some(response.status().as_u16());

    let body_limit = policy.max_response_bytes;
    let body_violations = violations;
    let response = response.map(move |incoming| {
        GuardedBody {
            inner: incoming,
            deadline: Box::pin(tokio::time::sleep_until(deadline.instant().into())),
            idle_limit: between_bytes_timeout,
            idle: between_bytes_timeout.map(|d| Box::pin(tokio::time::sleep(d))),
            limit: body_limit,
            seen: 0,
            log,
            record_index: index,
            violations: body_violations,
            conn: Some(conn),
            pool,
            poisoned,
            ended: false,
            ready_wait: None,
        }
        .boxed_unsync()
    });
    // The connection runs in its own task (it outlives this exchange when it
    // is reused), so there is nothing left for wasmtime-wasi-http to drive:
    // errors while the body streams reach the guest through the body itself.
    let io: IoFuture = Box::new(std::future::ready(Ok(())));
    Ok((response, io))
}

/// The peer a request goes to, before an address is picked.
struct Peer {
    scheme: String,
    host: String,
    port: u16,
    tls_server_name: Option<String>,
    credential: [u8; 32],
}

impl Peer {
    fn key(&self, addr: SocketAddr) -> PeerKey {
        PeerKey {
            scheme: self.scheme.clone(),
            host: self.host.clone(),
            port: self.port,
            addr,
            tls_server_name: self.tls_server_name.clone(),
            credential: self.credential,
        }
    }
}

/// SHA-256 of the credential header and the key the policy injects (zero
/// when it injects none), so connections are never shared across keys.
fn credential_fingerprint(policy: &OutboundPolicy) -> [u8; 32] {
    use sha2::Digest;
    match (&policy.credential_header, &policy.api_key) {
        (Some(name), Some(key)) => {
            let mut hash = sha2::Sha256::new();
            hash.update(name.as_str().as_bytes());
            hash.update([0u8]);
            hash.update(key.header_value().as_bytes());
            hash.finalize().into()
        }
        _ => [0; 32],
    }
}

/// Open a new connection to the first of `addrs` (all checked) that answers,
/// with TLS for `https`, its I/O driven by a task of its own.
async fn dial(
    addrs: &[SocketAddr],
    peer: &Peer,
    connect_timeout: Duration,
    deadline: ActionDeadline,
) -> Result<PooledConnection, HttpError> {
    let (stream, addr) = connect(addrs, connect_timeout).await?;
    let key = peer.key(addr);
    let (sender, driver) = match &peer.tls_server_name {
        Some(name) => {
            let tls = tls_connect(name, stream, deadline.remaining()).await?;
            let (s, c) = hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(tls)).await?;
            (s, spawn_driver(c))
        }
        None => {
            let (s, c) = hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)).await?;
            (s, spawn_driver(c))
        }
    };
    Ok(PooledConnection::new(sender, driver, key))
}

fn spawn_driver(conn: impl Future<Output = hyper::Result<()>> + Send + 'static) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(target: "actionbox::outbound", "outbound connection ended with an error: {e}");
        }
    })
    .abort_handle()
}

async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, HttpError> {
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(HttpError::DnsTimeout),
        Ok(Err(e)) => Err(HttpError::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        }),
        Ok(Ok(addrs)) => {
            let addrs: Vec<_> = addrs.collect();
            if addrs.is_empty() {
                Err(HttpError::DestinationNotFound)
            } else {
                Ok(addrs)
            }
        }
    }
}

async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<(TcpStream, SocketAddr), HttpError> {
    let attempt = async {
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok((s, *addr)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or(HttpError::DestinationUnavailable, HttpError::Connect))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
}

async fn tls_connect(
    host: &str,
    stream: TcpStream,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, HttpError> {
    // Built once: the Mozilla root set (webpki-roots), ring as the crypto
    // provider, TLS 1.2 and 1.3. No client certificates.
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> = std::sync::OnceLock::new();
    let config = CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| HttpError::InternalError(Some(format!("TLS is unavailable: {e}"))))?;
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => rustls::pki_types::ServerName::try_from(host.to_string()).map_err(HttpError::InvalidDnsNameError)?,
    };
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    tokio::time::timeout(timeout, connector.connect(name, stream))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Tls)
}

/// A response body that stops at the call's deadline, after too long without
/// a byte, or past the size cap, and counts bytes into the outbound log.
///
/// It owns the connection while the guest reads: a body read to its end
/// hands the connection back to the pool once hyper reports it ready for
/// another request; any error, cut or early drop closes it instead.
struct GuardedBody {
    inner: hyper::body::Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    idle_limit: Option<Duration>,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    limit: u64,
    seen: u64,
    log: OutboundLog,
    record_index: usize,
    violations: ViolationLog,
    /// The connection the response arrives on, until it is released.
    conn: Option<PooledConnection>,
    pool: Option<Arc<ConnectionPool>>,
    /// Set when the request body was cut.
    poisoned: Arc<AtomicBool>,
    /// The body reached its end.
    ended: bool,
    /// How long the end of the body waits for the connection to be ready.
    ready_wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl GuardedBody {
    /// Close the connection: this exchange did not end cleanly.
    fn discard(&mut self) {
        self.conn = None;
    }

    /// The body ended: release the connection — to the pool when it is ready
    /// for another request — then report the end.
    fn finish(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let Some(pool) = self.pool.clone() else {
            self.conn = None;
            return Poll::Ready(None);
        };
        if self.poisoned.load(Ordering::Acquire) {
            self.conn = None;
            return Poll::Ready(None);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(None);
        };
        match conn.sender.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                if let Some(conn) = self.conn.take() {
                    pool.checkin(conn);
                }
                Poll::Ready(None)
            }
            Poll::Ready(Err(_)) => {
                self.conn = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                // hyper is still finishing the exchange (e.g. the request
                // body is still being sent): wait a moment, then let a
                // background task wait instead of the guest.
                let wait = self
                    .ready_wait
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(READY_WAIT)));
                if wait.as_mut().poll(cx).is_ready() || self.deadline.as_mut().poll(cx).is_ready() {
                    if let Some(conn) = self.conn.take() {
                        checkin_when_ready(pool, conn, self.poisoned.clone());
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // The guest stopped reading before the end was reported. The
        // connection is worth keeping only when every byte of the body had
        // already come through this guard (and was counted against the
        // limit); otherwise dropping it here closes it.
        if self.inner.is_end_stream() && !self.poisoned.load(Ordering::Acquire) {
            if let Some(pool) = self.pool.clone() {
                checkin_when_ready(pool, conn, self.poisoned.clone());
            }
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        if this.ended {
            return this.finish(cx);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if let Ok(mut log) = this.log.lock() {
                        if let Some(r) = log.get_mut(this.record_index) {
                            r.response_bytes = this.seen;
                        }
                    }
                    if this.seen > this.limit {
                        this.discard();
                        record_violation(
                            &this.violations,
                            SandboxViolation::LimitExceeded {
                                message: format!(
                                    "an outbound response body passed {} bytes and was cut off (limits.max_response_body_bytes)",
                                    this.limit
                                ),
                            },
                        );
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(this.limit)))));
                    }
                }
                if let (Some(idle), Some(limit)) = (this.idle.as_mut(), this.idle_limit) {
                    idle.as_mut().reset(tokio::time::Instant::now() + limit);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.discard();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.finish(cx)
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.discard();
                    return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
                }
                if let Some(idle) = this.idle.as_mut() {
                    if idle.as_mut().poll(cx).is_ready() {
                        this.discard();
                        return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.conn.is_none()
    }
}

/// A request body that fails once the guest has sent more than the limit.
struct LimitedRequestBody {
    inner: WasiBody,
    limit: u64,
    sent: u64,
    violations: ViolationLog,
    /// Set when the body is cut, so its connection is never reused.
    poisoned: Arc<AtomicBool>,
}

impl Body for LimitedRequestBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &frame {
            this.poisoned.store(true, Ordering::Release);
        }
        if let Poll::Ready(Some(Ok(f))) = &frame {
            if let Some(data) = f.data_ref() {
                this.sent += data.len() as u64;
                if this.sent > this.limit {
                    this.poisoned.store(true, Ordering::Release);
                    record_violation(
                        &this.violations,
                        SandboxViolation::LimitExceeded {
                            message: format!(
                                "an outbound request body passed {} bytes (limits.max_request_body_bytes)",
                                this.limit
                            ),
                        },
                    );
                    return Poll::Ready(Some(Err(HttpError::HttpRequestBodySize(Some(this.limit)))));
                }
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().expect("literal");
            assert!(!is_public_address(ip), "{ip} should not be public");
        }
        for ip in ["8.8.8.8", "104.18.0.1", "2606:4700::1"] {
            let ip: IpAddr = ip.parse().expect("literal");
            assert!(is_public_address(ip), "{ip} should be public");
        }
    }

    fn policy(base: &str, hosts: &[&str]) -> OutboundPolicy {
        let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        OutboundPolicy::new(
            BaseUrl::parse(base).expect("base"),
            &hosts,
            Some("API-Key"),
            None,
            &SandboxLimits::default(),
        )
        .expect("policy")
    }

    #[test]
    fn only_the_base_url_origin_is_allowed() {
        let p = policy("https://api.shipstation.com", &["api.shipstation.com"]);
        assert!(p.refusal("https", "api.shipstation.com", 443).is_none());
        assert!(p.refusal("https", "API.shipstation.com", 443).is_none());
        assert!(p.refusal("http", "api.shipstation.com", 443).is_some());
        assert!(p.refusal("https", "api.shipstation.com", 8443).is_some());
        let why = p.refusal("https", "evil.example", 443).expect("refused");
        assert!(why.contains("set the integration's base_url"), "{why}");
        assert!(!p.allow_private_addresses);
    }

    #[test]
    fn undeclared_base_host_allows_nothing() {
        let p = policy("https://other.example", &["api.shipstation.com"]);
        assert!(p.refusal("https", "other.example", 443).is_some());
        let p = policy("http://127.0.0.1:9000", &["{base-url}"]);
        assert!(p.refusal("http", "127.0.0.1", 9000).is_none());
        assert!(p.allow_private_addresses);
    }

    #[test]
    fn credential_headers_are_recognised() {
        let p = policy("https://api.shipstation.com", &["{base-url}"]);
        // Guarded even when no key is configured.
        assert!(p.is_credential_header(&http::header::AUTHORIZATION));
        assert!(p.is_credential_header(&HeaderName::from_static("api-key")));
        assert!(!p.is_credential_header(&http::header::ACCEPT));
    }
}
