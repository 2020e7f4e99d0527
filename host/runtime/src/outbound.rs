//! The sandbox's only door to the network: the `wasi:http` outbound hook.
//!
//! Every request an action makes through `wasi:http/outgoing-handler` comes
//! here ([`OutboundHooks::send_request`]) and is:
//! 1. checked against the [`OutboundPolicy`] — scheme, host and port must be
//!    the integration's base URL (which only the operator or the kind
//!    registry sets, never the action), the authority may carry no userinfo,
//!    and the action's manifest must declare the host;
//! 2. resolved, and every address checked against the IANA special-purpose
//!    registries (`address.rs`): non-public addresses are refused unless the
//!    operator's base URL itself names one (`localhost` opens loopback only,
//!    an IP literal opens exactly that address);
//! 3. stripped of credential headers the guest tried to set, given the
//!    integration's key in the operator's credential header, and given a
//!    `Host` header built from the checked authority;
//! 4. sent over a connection to the *checked* address (no second DNS lookup a
//!    rebinding attacker could race), with every phase clamped to what is left
//!    of the call's deadline and the response body capped. The connection is
//!    an idle keep-alive one to exactly that peer when the component's
//!    [`ConnectionPool`] has one, else a new one (see `conn_pool.rs` for
//!    when a connection is reused and when it is closed);
//! 5. answered with the key scrubbed: an upstream that reflects the key in a
//!    response header or body has it replaced with `[redacted]` before the
//!    action sees it ([`KeyScrubber`]).
//!
//! Everything a call's requests make the host keep is bounded by the
//! [`CallRecorder`]: records and violations are capped (the rest counted),
//! warnings are logged for the first few only, and after
//! `limits.max_refused_requests` refusals the call is stopped.
//!
//! A refused request fails inside the guest as `HttpRequestDenied` (a
//! refused address as `DestinationIpProhibited`); the host log and the
//! report say what was refused and which setting governs it.

use crate::conn_pool::{checkin_when_ready, ConnectionPool, PeerKey, PooledConnection, READY_WAIT};
use crate::deadline::ActionDeadline;
use crate::error::guest_text;
use crate::integration::{BaseUrl, NonPublicScope};
use crate::kinds::CredentialHeader;
use crate::limits::{CallStop, SandboxLimits, SandboxViolation};
use crate::secret::ApiKey;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Bytes of one write to an outgoing body that the host buffers, and (with
/// [`OUTGOING_BODY_BUFFER_CHUNKS`]) all it buffers for a body the guest has
/// not sent yet. wasi-http's default is 1 MiB, which let a guest park ~2 MiB
/// of host memory in every request object it never sends.
pub const OUTGOING_BODY_CHUNK_BYTES: usize = 8 * 1024;
/// Writes buffered per outgoing body before the guest must wait.
pub const OUTGOING_BODY_BUFFER_CHUNKS: usize = 1;
/// Longest request target (path and query) an action may send, in bytes.
/// Real APIs stay far below; a longer one is refused before it is recorded.
pub const MAX_REQUEST_TARGET_BYTES: usize = 8 * 1024;
/// Violations kept in one call's report; later ones are only counted.
pub const MAX_VIOLATIONS_KEPT: usize = 32;
/// Violations per call that are also logged as warnings for the operator;
/// later ones are logged at debug only, so one call cannot flood the log.
pub const MAX_VIOLATIONS_LOGGED: usize = 4;
/// Bytes of a guest-chosen URL kept in a record.
const RECORD_URL_BYTES: usize = 2048;
/// Bytes of one header value kept in a record.
const RECORD_HEADER_BYTES: usize = 512;
/// Keys shorter than this are not scrubbed from responses: replacing every
/// occurrence of a few characters would corrupt ordinary text, and no real
/// API key is that short.
pub const MIN_SCRUBBED_KEY_BYTES: usize = 8;

/// What one integration's actions may reach. Built for each call from the
/// operator's settings; nothing in it comes from the action.
#[derive(Debug)]
pub struct OutboundPolicy {
    /// The integration's base URL: the only origin requests may go to.
    pub base_url: BaseUrl,
    /// Whether the action's manifest declares the base URL's host (directly
    /// or as `{base-url}`). If not, every request is refused.
    pub manifest_allows_base: bool,
    /// Which non-public addresses may be dialled: only what the operator's
    /// base URL names (tests, local simulators).
    pub non_public: NonPublicScope,
    /// Header the key goes in (the operator's or the kind registry's). The
    /// guest may never set it.
    pub credential_header: Option<CredentialHeader>,
    /// The key injected in `credential_header`; `None` sends none.
    pub api_key: Option<ApiKey>,
    /// Cap on one response body, in bytes.
    pub max_response_bytes: u64,
    /// Cap on one request body, in bytes.
    pub max_request_body_bytes: u64,
    /// Cap on requests per invocation.
    pub max_requests: u32,
    /// Refusals per invocation before the call is stopped.
    pub max_refused_requests: u32,
    /// Addresses to use for a host name instead of DNS (like curl's
    /// `--resolve`); still subject to the address checks.
    pub pinned_addresses: BTreeMap<String, Vec<IpAddr>>,
}

impl OutboundPolicy {
    /// The policy for `base_url`, given the hosts the manifest declares, the
    /// operator's credential header and key, and the call's limits.
    pub fn new(
        base_url: BaseUrl,
        declared_hosts: &[String],
        credential_header: Option<CredentialHeader>,
        api_key: Option<ApiKey>,
        limits: &SandboxLimits,
    ) -> Self {
        let manifest_allows_base = declared_hosts
            .iter()
            .any(|h| h == "{base-url}" || h.eq_ignore_ascii_case(&base_url.host));
        Self {
            non_public: base_url.non_public_scope(),
            base_url,
            manifest_allows_base,
            credential_header,
            api_key,
            max_response_bytes: limits.max_response_body_bytes,
            max_request_body_bytes: limits.max_request_body_bytes,
            max_requests: limits.max_outbound_requests,
            max_refused_requests: limits.max_refused_requests,
            pinned_addresses: BTreeMap::new(),
        }
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
            non_public: NonPublicScope::None,
            credential_header: None,
            api_key: None,
            max_response_bytes: 0,
            max_request_body_bytes: 0,
            max_requests: 0,
            max_refused_requests: 16,
            pinned_addresses: BTreeMap::new(),
        }
    }

    /// Why a request to `scheme://authority` is refused, or `None` if
    /// allowed. The message names the allowed origin and who sets it, never
    /// the requested host as something to allow.
    fn refusal(&self, scheme: &str, authority: &http::uri::Authority) -> Option<String> {
        let base = &self.base_url;
        if !self.manifest_allows_base {
            return Some(format!(
                "the action's manifest does not declare the base URL host `{}`; it may reach nothing",
                base.host
            ));
        }
        if authority.as_str().contains('@') {
            return Some("the request's authority carries user information (`user@host`); it is never sent".into());
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        if scheme != base.scheme || !host.eq_ignore_ascii_case(&base.host) || port != base.port {
            return Some(format!(
                "{}://{}:{port} is not the integration's base URL origin; actions may reach only {base}, which the \
                 operator sets (the integration's base_url)",
                guest_text(scheme, 16),
                guest_text(host, 256),
            ));
        }
        None
    }

    /// Whether `name` is a header the guest must not set itself.
    pub fn is_credential_header(&self, name: &HeaderName) -> bool {
        *name == http::header::AUTHORIZATION
            || *name == http::header::PROXY_AUTHORIZATION
            || self.credential_header.as_ref().is_some_and(|h| h.name() == name)
    }
}

/// One outbound request as the debugger and tests see it. Never holds the key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboundRecord {
    /// HTTP method.
    pub method: String,
    /// Full URL (scheme, host, port, path and query), defused and cut to 2 KiB.
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

/// What one call's outbound side records, shared by its hooks and bodies,
/// and bounded: records up to `max_outbound_requests + max_refused_requests`,
/// violations up to [`MAX_VIOLATIONS_KEPT`], the rest counted. It also
/// counts refusals and stops the call after too many.
#[derive(Debug)]
pub struct CallRecorder {
    records: Mutex<Vec<OutboundRecord>>,
    records_dropped: AtomicU64,
    max_records: usize,
    violations: Mutex<Vec<SandboxViolation>>,
    violations_seen: AtomicU64,
    refused: AtomicU32,
    max_refused: u32,
    stop: CallStop,
}

impl CallRecorder {
    /// A recorder for a call under `policy`.
    pub fn new(policy: &OutboundPolicy) -> Self {
        Self {
            records: Mutex::default(),
            records_dropped: AtomicU64::new(0),
            max_records: (policy.max_requests as usize).saturating_add(policy.max_refused_requests as usize),
            violations: Mutex::default(),
            violations_seen: AtomicU64::new(0),
            refused: AtomicU32::new(0),
            max_refused: policy.max_refused_requests,
            stop: CallStop::default(),
        }
    }

    /// The flag this recorder raises to stop its call.
    pub fn call_stop(&self) -> CallStop {
        self.stop.clone()
    }

    /// Reserve a record slot (in start order, so a response body counts its
    /// bytes into the right record even with several requests in flight);
    /// `None` once the cap is reached.
    fn reserve(&self, record: &OutboundRecord) -> Option<usize> {
        let mut records = self.records.lock().ok()?;
        if records.len() >= self.max_records {
            self.records_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        records.push(record.clone());
        Some(records.len() - 1)
    }

    /// Change record `index` (no-op for a request that got no slot).
    fn update(&self, index: Option<usize>, change: impl FnOnce(&mut OutboundRecord)) {
        if let (Some(i), Ok(mut records)) = (index, self.records.lock()) {
            if let Some(r) = records.get_mut(i) {
                change(r);
            }
        }
    }

    /// Record what the sandbox stopped: kept up to [`MAX_VIOLATIONS_KEPT`],
    /// logged as a warning for the first [`MAX_VIOLATIONS_LOGGED`].
    pub fn violation(&self, violation: SandboxViolation) {
        let seen = self.violations_seen.fetch_add(1, Ordering::Relaxed) as usize;
        let what = match &violation {
            SandboxViolation::Denied { .. } => "denied",
            SandboxViolation::LimitExceeded { .. } => "limit exceeded",
            SandboxViolation::KeyReflected { .. } => "key reflected",
        };
        if seen < MAX_VIOLATIONS_LOGGED {
            tracing::warn!(target: "actionbox::sandbox", "{what}: {}", violation.message());
        } else {
            tracing::debug!(target: "actionbox::sandbox", "{what}: {}", violation.message());
        }
        if seen < MAX_VIOLATIONS_KEPT {
            if let Ok(mut v) = self.violations.lock() {
                v.push(violation);
            }
        }
    }

    /// A request the sandbox refused: a violation, and past
    /// `max_refused_requests` of them, the end of the call.
    fn refused(&self, violation: SandboxViolation) {
        self.violation(violation);
        let refused = self.refused.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if refused >= self.max_refused {
            self.stop.stop(format!(
                "the action kept making requests the sandbox refuses ({refused} in one call) and was stopped \
                 (limits.max_refused_requests = {})",
                self.max_refused
            ));
        }
    }

    /// The records kept, in start order.
    pub fn records(&self) -> Vec<OutboundRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Requests that got no record (past the cap).
    pub fn records_dropped(&self) -> u64 {
        self.records_dropped.load(Ordering::Relaxed)
    }

    /// The violations kept, in order.
    pub fn violations(&self) -> Vec<SandboxViolation> {
        self.violations.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Violations seen but not kept (past [`MAX_VIOLATIONS_KEPT`]).
    pub fn violations_dropped(&self) -> u64 {
        self.violations_seen
            .load(Ordering::Relaxed)
            .saturating_sub(MAX_VIOLATIONS_KEPT as u64)
    }
}

/// The per-invocation `WasiHttpHooks`: a policy, a deadline and a recorder.
pub struct OutboundHooks {
    policy: Arc<OutboundPolicy>,
    deadline: ActionDeadline,
    requests: u32,
    /// Idle keep-alive connections shared with other invocations; `None`
    /// opens a connection per request.
    pool: Option<Arc<ConnectionPool>>,
    /// What was sent and stopped, for the report.
    pub recorder: Arc<CallRecorder>,
}

impl OutboundHooks {
    /// Hooks for one invocation.
    pub fn new(policy: Arc<OutboundPolicy>, deadline: ActionDeadline) -> Self {
        Self {
            recorder: Arc::new(CallRecorder::new(&policy)),
            policy,
            deadline,
            requests: 0,
            pool: None,
        }
    }

    /// Reuse connections from `pool` (and leave reusable ones there).
    pub fn with_pool(mut self, pool: Arc<ConnectionPool>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The flag these hooks raise to stop the call.
    pub fn call_stop(&self) -> CallStop {
        self.recorder.call_stop()
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

    /// The host sets `Host` itself, from the checked authority.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        OUTGOING_BODY_BUFFER_CHUNKS
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        OUTGOING_BODY_CHUNK_BYTES
    }

    /// Admission (origin, headers, the request count) is decided here,
    /// synchronously, while the guest waits in `handle`: a refusal is
    /// recorded, counted and may stop the call even when the guest drops the
    /// response future without ever polling it. Resolving, the address check
    /// and the exchange itself run in the returned future.
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        self.requests = self.requests.saturating_add(1);
        let started = Instant::now();
        let mut record = OutboundRecord {
            method: guest_text(request.method().as_str(), 32),
            url: guest_text(&request.uri().to_string(), RECORD_URL_BYTES),
            request_headers: Vec::new(),
            status: None,
            error: None,
            duration_ms: 0,
            response_bytes: 0,
            reused_connection: false,
        };
        let exchange = Exchange {
            policy: self.policy.clone(),
            pool: self.pool.clone(),
            deadline: self.deadline,
            options,
            recorder: self.recorder.clone(),
            index: self.recorder.reserve(&record),
        };
        let admitted = if self.requests > self.policy.max_requests {
            self.recorder.refused(SandboxViolation::LimitExceeded {
                message: format!(
                    "the action made more than {} outbound requests in one call (limits.max_outbound_requests)",
                    self.policy.max_requests
                ),
            });
            Err(HttpError::HttpRequestDenied)
        } else {
            exchange.admit(request, &mut record)
        };
        let (request, target) = match admitted {
            Ok(admitted) => admitted,
            Err(e) => {
                finish_record(&exchange.recorder, exchange.index, record, started, Some(&e));
                return Box::new(std::future::ready(Err(e)));
            }
        };
        Box::new(async move {
            let recorder = exchange.recorder.clone();
            let index = exchange.index;
            let result = exchange.send(request, target, &mut record).await;
            finish_record(&recorder, index, record, started, result.as_ref().err());
            result
        })
    }
}

/// Put the finished `record` in its slot, keeping the body bytes the
/// response guard counted there meanwhile.
fn finish_record(
    recorder: &CallRecorder,
    index: Option<usize>,
    mut record: OutboundRecord,
    started: Instant,
    error: Option<&HttpError>,
) {
    record.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    record.error = error.map(describe_error);
    recorder.update(index, |slot| {
        record.response_bytes = slot.response_bytes;
        *slot = record;
    });
}

fn describe_error(e: &HttpError) -> String {
    match e {
        HttpError::HttpRequestDenied => "denied by the sandbox".into(),
        HttpError::DestinationIpProhibited => "address refused by the sandbox".into(),
        other => format!("{other}"),
    }
}

/// One request on its way: what it needs besides the request itself.
struct Exchange {
    policy: Arc<OutboundPolicy>,
    pool: Option<Arc<ConnectionPool>>,
    deadline: ActionDeadline,
    options: Option<RequestOptions>,
    recorder: Arc<CallRecorder>,
    /// Its record's slot.
    index: Option<usize>,
}

impl Exchange {
    /// Resolve and check the admitted target, then send on a pooled or new
    /// connection.
    async fn send(
        self,
        request: Request<WasiBody>,
        target: Target,
        record: &mut OutboundRecord,
    ) -> Result<(Response<WasiBody>, IoFuture), HttpError> {
        let addrs = self.checked_addresses(&target).await?;
        self.transmit(request, target, addrs, record).await
    }

    /// The policy: origin, target length, headers (key, Host). Returns the
    /// request ready for the wire and the checked target.
    fn admit(
        &self,
        mut request: Request<WasiBody>,
        record: &mut OutboundRecord,
    ) -> Result<(Request<WasiBody>, Target), HttpError> {
        let policy = &self.policy;
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?.clone();
        if let Some(why) = policy.refusal(&scheme, &authority) {
            self.recorder.refused(SandboxViolation::Denied {
                message: format!("outbound request refused: {why}"),
            });
            return Err(HttpError::HttpRequestDenied);
        }
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        if path_and_query.len() > MAX_REQUEST_TARGET_BYTES {
            self.recorder.refused(SandboxViolation::LimitExceeded {
                message: format!(
                    "an outbound request's path and query were {} bytes, over the {MAX_REQUEST_TARGET_BYTES} the \
                     sandbox sends",
                    path_and_query.len()
                ),
            });
            return Err(HttpError::HttpRequestUriTooLong);
        }
        let base = &policy.base_url;

        // The key goes only to the base URL's origin, only in the operator's
        // header; whatever credential-like headers the guest set are dropped
        // first. `Host` comes from the checked base URL, not the guest.
        let headers = request.headers_mut();
        headers.remove(http::header::AUTHORIZATION);
        headers.remove(http::header::PROXY_AUTHORIZATION);
        if let Some(name) = &policy.credential_header {
            headers.remove(name.name());
            if let Some(key) = &policy.api_key {
                headers.insert(name.name().clone(), key.header_value());
            }
        }
        let host_header = HeaderValue::from_str(&base.host_header()).map_err(|_| HttpError::HttpRequestUriInvalid)?;
        headers.insert(http::header::HOST, host_header);
        record.request_headers = request
            .headers()
            .iter()
            .map(|(n, v)| {
                let shown = if v.is_sensitive() {
                    "[redacted]".to_string()
                } else {
                    guest_text(&String::from_utf8_lossy(v.as_bytes()), RECORD_HEADER_BYTES)
                };
                (n.to_string(), shown)
            })
            .collect();
        // On the wire the request line carries only the path; Host is set.
        *request.uri_mut() = http::Uri::builder()
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        let target = Target {
            scheme,
            host: base.host.clone(),
            port: base.port,
        };
        Ok((request, target))
    }

    /// Resolve the target (or take its pinned addresses) and refuse it if
    /// any address is non-public and not opened by the operator's base URL.
    async fn checked_addresses(&self, target: &Target) -> Result<Vec<SocketAddr>, HttpError> {
        let policy = &self.policy;
        let addrs: Vec<SocketAddr> = match policy.pinned_addresses.get(&target.host) {
            Some(ips) => ips.iter().map(|ip| SocketAddr::new(*ip, target.port)).collect(),
            None => resolve(&target.host, target.port, self.phase(self.connect_timeout())).await?,
        };
        let refused = addrs
            .iter()
            .find(|a| !crate::address::is_public_address(a.ip()) && !policy.non_public.allows(a.ip()));
        if let Some(bad) = refused {
            let range = crate::address::special_purpose_range(bad.ip())
                .map(|r| format!(" ({}, {})", r.name, r.rfc))
                .unwrap_or_default();
            self.recorder.refused(SandboxViolation::Denied {
                message: format!(
                    "outbound request refused: {} resolves to the non-public address {}{range}; non-public \
                     addresses are reachable only when the operator's base_url names one itself",
                    target.host,
                    bad.ip()
                ),
            });
            return Err(HttpError::DestinationIpProhibited);
        }
        Ok(addrs)
    }

    /// The time a phase may take: what the guest asked for, within what is
    /// left of the call.
    fn phase(&self, configured: Option<Duration>) -> Duration {
        let left = self.deadline.remaining();
        configured.map_or(left, |c| c.min(left))
    }

    fn connect_timeout(&self) -> Option<Duration> {
        self.options.and_then(|o| o.connect_timeout)
    }

    /// Send on an idle pooled connection to a checked address, or a new
    /// one; wrap both bodies in their guards.
    async fn transmit(
        self,
        request: Request<WasiBody>,
        target: Target,
        addrs: Vec<SocketAddr>,
        record: &mut OutboundRecord,
    ) -> Result<(Response<WasiBody>, IoFuture), HttpError> {
        let policy = self.policy.clone();
        let first_byte_timeout = self.options.and_then(|o| o.first_byte_timeout);
        let between_bytes_timeout = self.options.and_then(|o| o.between_bytes_timeout);
        // Set when the request body is cut: that connection is never reused.
        let poisoned = Arc::new(AtomicBool::new(false));
        let body_limit = policy.max_request_body_bytes;
        let recorder = self.recorder.clone();
        let body_poisoned = poisoned.clone();
        let request = request.map(move |body| {
            LimitedRequestBody {
                inner: body,
                limit: body_limit,
                sent: 0,
                recorder,
                poisoned: body_poisoned,
            }
            .boxed_unsync()
        });

        let peer = Peer {
            tls_server_name: (target.scheme == "https").then(|| target.host.clone()),
            scheme: target.scheme,
            host: target.host,
            port: target.port,
            credential: credential_fingerprint(&policy),
        };
        let pooled = self
            .pool
            .as_ref()
            .and_then(|pool| addrs.iter().find_map(|addr| pool.checkout(&peer.key(*addr))));
        let connect_timeout = self.phase(self.connect_timeout());
        let (mut conn, reused) = match pooled {
            Some(conn) => (conn, true),
            None => (dial(&addrs, &peer, connect_timeout, self.deadline).await?, false),
        };
        record.reused_connection = reused;

        let sent = tokio::time::timeout(self.phase(first_byte_timeout), conn.sender.try_send_request(request)).await;
        let mut response = match sent {
            Err(_) => return Err(HttpError::ConnectionReadTimeout),
            Ok(Ok(response)) => response,
            Ok(Err(mut e)) => match e.take_message() {
                // The idle connection closed just before the request could be
                // written (the server timed it out): nothing was sent, so send it
                // once more on a new connection.
                Some(request) if reused => {
                    drop(conn);
                    conn = dial(&addrs, &peer, self.phase(self.connect_timeout()), self.deadline).await?;
                    record.reused_connection = false;
                    match tokio::time::timeout(self.phase(first_byte_timeout), conn.sender.send_request(request)).await
                    {
                        Err(_) => return Err(HttpError::ConnectionReadTimeout),
                        Ok(r) => r?,
                    }
                }
                _ => return Err(e.into_error().into()),
            },
        };
        record.status = Some(response.status().as_u16());

        let scrubber = KeyScrubber::for_key(policy.api_key.as_ref());
        if let Some(scrubber) = &scrubber {
            let scrubbed = scrubber.scrub_headers(response.headers_mut());
            if scrubbed > 0 {
                self.recorder.violation(SandboxViolation::KeyReflected {
                    message: format!(
                        "the upstream's response to {} {} carried the integration's key in {scrubbed} header(s); \
                         it was replaced with [redacted] before the action saw it",
                        record.method, record.url
                    ),
                });
            }
        }
        let what = format!("{} {}", record.method, record.url);
        let deadline = self.deadline;
        let pool = self.pool;
        let recorder = self.recorder;
        let index = self.index;
        let response = response.map(move |incoming| {
            GuardedBody {
                inner: incoming,
                deadline: Box::pin(tokio::time::sleep_until(deadline.instant().into())),
                idle_limit: between_bytes_timeout,
                idle: between_bytes_timeout.map(|d| Box::pin(tokio::time::sleep(d))),
                limit: policy.max_response_bytes,
                seen: 0,
                recorder,
                record_index: index,
                scrubber,
                what,
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
}

/// Where an admitted request goes: the base URL's scheme, host and port.
struct Target {
    scheme: String,
    /// Lower case, IPv6 without brackets.
    host: String,
    port: u16,
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
            hash.update(name.name().as_str().as_bytes());
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
    recorder: Arc<CallRecorder>,
    record_index: Option<usize>,
    /// Replaces the key where the upstream reflects it (`None`: no key sent).
    scrubber: Option<KeyScrubber>,
    /// `METHOD url` of the request, for violation messages.
    what: String,
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
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let (Some(idle), Some(limit)) = (this.idle.as_mut(), this.idle_limit) {
                        idle.as_mut().reset(tokio::time::Instant::now() + limit);
                    }
                    let frame = match frame.into_data() {
                        Ok(data) => {
                            this.seen += data.len() as u64;
                            let seen = this.seen;
                            this.recorder.update(this.record_index, |r| r.response_bytes = seen);
                            if this.seen > this.limit {
                                this.discard();
                                this.recorder.violation(SandboxViolation::LimitExceeded {
                                    message: format!(
                                        "an outbound response body passed {} bytes and was cut off \
                                         (limits.max_response_body_bytes)",
                                        this.limit
                                    ),
                                });
                                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(this.limit)))));
                            }
                            match this.scrubber.as_mut() {
                                None => Frame::data(data),
                                Some(scrubber) => {
                                    let before = scrubber.found;
                                    let out = scrubber.feed(&data);
                                    if before == 0 && scrubber.found > 0 {
                                        this.recorder.violation(SandboxViolation::KeyReflected {
                                            message: format!(
                                                "the upstream's response body to {} contained the integration's \
                                                 key; it was replaced with [redacted] before the action saw it",
                                                this.what
                                            ),
                                        });
                                    }
                                    if out.is_empty() {
                                        // All of it may be the start of the
                                        // key: wait for more before handing
                                        // anything on.
                                        continue;
                                    }
                                    Frame::data(out)
                                }
                            }
                        }
                        Err(frame) => match (frame.into_trailers(), this.scrubber.as_ref()) {
                            (Ok(mut trailers), Some(scrubber)) => {
                                if scrubber.scrub_headers(&mut trailers) > 0 {
                                    this.recorder.violation(SandboxViolation::KeyReflected {
                                        message: format!(
                                            "the upstream's response trailers to {} carried the integration's key; \
                                             it was replaced with [redacted]",
                                            this.what
                                        ),
                                    });
                                }
                                Frame::trailers(trailers)
                            }
                            (Ok(trailers), None) => Frame::trailers(trailers),
                            (Err(_), _) => continue,
                        },
                    };
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.discard();
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    // What the scrubber held back can no longer start the key.
                    if let Some(rest) = this.scrubber.as_mut().map(KeyScrubber::finish) {
                        if !rest.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(rest))));
                        }
                    }
                    return this.finish(cx);
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
                    return Poll::Pending;
                }
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
    recorder: Arc<CallRecorder>,
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
                    this.recorder.violation(SandboxViolation::LimitExceeded {
                        message: format!(
                            "an outbound request body passed {} bytes (limits.max_request_body_bytes)",
                            this.limit
                        ),
                    });
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

/// Replaces the integration's key with `[redacted]` wherever an upstream
/// reflects it, in a streamed body (matches across chunk boundaries: it
/// holds back the last `key length - 1` bytes until it knows they do not
/// start the key) and in header maps.
#[derive(Debug)]
pub struct KeyScrubber {
    finder: memchr::memmem::Finder<'static>,
    held: Vec<u8>,
    /// Occurrences replaced so far.
    pub found: u64,
}

/// What a reflected key is replaced with.
pub const REDACTED: &[u8] = b"[redacted]";

impl KeyScrubber {
    /// A scrubber for `key`; `None` when there is no key, or it is shorter
    /// than [`MIN_SCRUBBED_KEY_BYTES`].
    pub fn for_key(key: Option<&ApiKey>) -> Option<Self> {
        let needle = key?.header_value().as_bytes().to_vec();
        (needle.len() >= MIN_SCRUBBED_KEY_BYTES).then(|| Self {
            finder: memchr::memmem::Finder::new(&needle).into_owned(),
            held: Vec::new(),
            found: 0,
        })
    }

    /// The next chunk of a body, scrubbed; may be shorter (bytes held back).
    pub fn feed(&mut self, data: &[u8]) -> Bytes {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(data);
        let key_len = self.finder.needle().len();
        let mut out = Vec::with_capacity(buf.len());
        let mut at = 0;
        while let Some(pos) = self.finder.find(&buf[at..]) {
            out.extend_from_slice(&buf[at..at + pos]);
            out.extend_from_slice(REDACTED);
            self.found += 1;
            at += pos + key_len;
        }
        let tail = &buf[at..];
        let keep = tail.len().min(key_len - 1);
        out.extend_from_slice(&tail[..tail.len() - keep]);
        self.held = tail[tail.len() - keep..].to_vec();
        Bytes::from(out)
    }

    /// The bytes held back at the end of the body.
    pub fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.held))
    }

    /// Replace every header value that contains the key; returns how many.
    pub fn scrub_headers(&self, headers: &mut http::HeaderMap) -> usize {
        let mut scrubbed = 0;
        for value in headers.values_mut() {
            if self.finder.find(value.as_bytes()).is_some() {
                *value = HeaderValue::from_static("[redacted]");
                scrubbed += 1;
            }
        }
        scrubbed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: &str, hosts: &[&str]) -> OutboundPolicy {
        let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        OutboundPolicy::new(
            BaseUrl::parse(base).expect("base"),
            &hosts,
            Some(CredentialHeader::new("API-Key").expect("header")),
            None,
            &SandboxLimits::default(),
        )
    }

    fn authority(text: &str) -> http::uri::Authority {
        text.parse().expect("authority")
    }

    #[test]
    fn only_the_base_url_origin_is_allowed() {
        let p = policy("https://api.shipstation.com", &["api.shipstation.com"]);
        assert!(p.refusal("https", &authority("api.shipstation.com")).is_none());
        assert!(p.refusal("https", &authority("API.shipstation.com:443")).is_none());
        assert!(p.refusal("http", &authority("api.shipstation.com:443")).is_some());
        assert!(p.refusal("https", &authority("api.shipstation.com:8443")).is_some());
        let why = p.refusal("https", &authority("evil.example")).expect("refused");
        assert!(
            why.contains("https://api.shipstation.com") && why.contains("operator"),
            "{why}"
        );
        assert!(
            !why.contains("base_url to"),
            "never advise allowing the requested host: {why}"
        );
        assert_eq!(p.non_public, NonPublicScope::None);
    }

    #[test]
    fn userinfo_in_the_authority_is_refused() {
        let p = policy("https://api.shipstation.com", &["{base-url}"]);
        let why = p
            .refusal("https", &authority("evil@api.shipstation.com"))
            .expect("refused");
        assert!(why.contains("user information"), "{why}");
    }

    #[test]
    fn undeclared_base_host_allows_nothing() {
        let p = policy("https://other.example", &["api.shipstation.com"]);
        assert!(p.refusal("https", &authority("other.example")).is_some());
        let p = policy("http://127.0.0.1:9000", &["{base-url}"]);
        assert!(p.refusal("http", &authority("127.0.0.1:9000")).is_none());
        assert!(p.non_public.allows("127.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn credential_headers_are_recognised() {
        let p = policy("https://api.shipstation.com", &["{base-url}"]);
        // Guarded even when no key is configured.
        assert!(p.is_credential_header(&http::header::AUTHORIZATION));
        assert!(p.is_credential_header(&HeaderName::from_static("api-key")));
        assert!(!p.is_credential_header(&http::header::ACCEPT));
    }

    fn scrub_all(key: &str, chunks: &[&[u8]]) -> (Vec<u8>, u64) {
        let key = ApiKey::new(key).expect("key");
        let mut s = KeyScrubber::for_key(Some(&key)).expect("scrubber");
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&s.feed(c));
        }
        out.extend_from_slice(&s.finish());
        (out, s.found)
    }

    #[test]
    fn reflected_keys_are_scrubbed_across_chunks() {
        let (out, found) = scrub_all(
            "SECRET_key_123",
            &[b"{\"echo\":\"SECR", b"ET_key_1", b"23\"} SECRET_key_123"],
        );
        assert_eq!(String::from_utf8_lossy(&out), "{\"echo\":\"[redacted]\"} [redacted]");
        assert_eq!(found, 2);
        let (out, found) = scrub_all("SECRET_key_123", &[b"SECRET_key_12", b"", b"4 and SECRET"]);
        assert_eq!(String::from_utf8_lossy(&out), "SECRET_key_124 and SECRET");
        assert_eq!(found, 0);
        let key = ApiKey::new("SECRET_key_123").expect("key");
        let s = KeyScrubber::for_key(Some(&key)).expect("scrubber");
        let mut h = http::HeaderMap::new();
        h.insert("x-echo", HeaderValue::from_static("got SECRET_key_123"));
        h.insert("x-other", HeaderValue::from_static("fine"));
        assert_eq!(s.scrub_headers(&mut h), 1);
        assert_eq!(h["x-echo"], "[redacted]");
        assert!(KeyScrubber::for_key(Some(&ApiKey::new("short").expect("key"))).is_none());
    }

    #[test]
    fn records_and_violations_are_capped_and_refusals_stop_the_call() {
        let p = policy("https://api.shipstation.com", &["{base-url}"]);
        let r = CallRecorder::new(&p);
        let record = OutboundRecord {
            method: "GET".into(),
            url: "u".into(),
            request_headers: vec![],
            status: None,
            error: None,
            duration_ms: 0,
            response_bytes: 0,
            reused_connection: false,
        };
        for _ in 0..10_000 {
            r.reserve(&record);
            r.refused(SandboxViolation::Denied { message: "no".into() });
        }
        assert_eq!(r.records().len(), 32);
        assert_eq!(r.records_dropped(), 10_000 - 32);
        assert_eq!(r.violations().len(), MAX_VIOLATIONS_KEPT);
        assert_eq!(r.violations_dropped(), 10_000 - MAX_VIOLATIONS_KEPT as u64);
        let reason = r.call_stop().reason().map(str::to_string).expect("stopped");
        assert!(reason.contains("max_refused_requests"), "{reason}");
    }
}
