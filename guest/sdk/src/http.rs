//! Outbound HTTP over `wasi:http/outgoing-handler`, the only way out of the
//! sandbox, bound to the operator's base URL and the call's time budget.
//!
//! A [`Client`] is made per call from the base URL ([`crate::settings::base_url`])
//! and the [`CallContext`]: it knows when the call's budget runs out, and
//! every phase of every request (connect, first byte, between bytes) may use
//! at most what is left of it. The host clamps these again, so the clamp is a
//! courtesy that makes the action fail with its own `timeout` in time rather
//! than be stopped mid-call. Response bodies are read up to a bound
//! ([`DEFAULT_MAX_RESPONSE_BYTES`]) so a hostile upstream cannot exhaust the
//! action's memory.
//!
//! The client never sees the credential: the host adds it to requests bound
//! for the base URL's host, and refuses requests to hosts the manifest and the
//! operator did not both allow (they fail with [`HttpError::Denied`]).
//!
//! ```no_run
//! # use actionbox_guest::{http::*, settings, ActionError, CallContext};
//! # fn demo(ctx: CallContext) -> Result<(), ActionError> {
//! let client = Client::new(settings::base_url(None)?, &ctx);
//! // The common case: GET, map a non-2xx status to the contract's error, decode.
//! let item: serde_json::Value = client.get_json(&format!("/items/{}", encode_component("a/b")))?;
//! // Anything else: build a request, then decide what a status means yourself.
//! let request = Request::new(Method::Post, "/items").json(&item)?.timeout(std::time::Duration::from_secs(2));
//! let created = client.send(&request)?.error_for_status("POST /items")?;
//! # Ok(()) }
//! ```

use crate::bindings::wasi::clocks::monotonic_clock;
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    http_error_code, ErrorCode, Fields, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::{ActionError, CallContext};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The HTTP method of a [`Request`] (the `wasi:http` type).
pub use crate::bindings::wasi::http::types::Method;

/// Largest response body a [`Client`] reads unless told otherwise
/// ([`Client::max_response_bytes`]); a bigger one is [`HttpError::TooLarge`].
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Bytes asked for per read of a response body.
const READ_CHUNK: u64 = 64 * 1024;
/// Bytes written per call to a request body stream: `wasi:io`'s
/// `blocking-write-and-flush` takes at most 4096.
const WRITE_CHUNK: usize = 4096;

/// Scheme, host and optional path prefix of the upstream API, e.g.
/// `https://api.example.com/v1`: where every [`Client`] request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    https: bool,
    authority: String,
    path_prefix: String,
}

impl BaseUrl {
    /// Parse `http(s)://host[:port][/prefix]`; a trailing `/` is dropped, so
    /// request paths (which start with `/`) append to the prefix.
    pub fn parse(text: &str) -> Result<Self, ActionError> {
        let invalid = || {
            ActionError::Internal(format!(
                "the base URL `{text}` is unusable; expected http(s)://host[:port][/prefix] \
                 (check the integration's base URL in the host configuration)"
            ))
        };
        // Byte-wise on purpose: `str` pattern searchers cost a component
        // more than this whole function.
        let (https, rest) = match (text.strip_prefix("https://"), text.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => return Err(invalid()),
        };
        let slash = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
        let (authority, mut prefix) = rest.split_at(slash);
        while let Some(shorter) = prefix.strip_suffix('/') {
            prefix = shorter;
        }
        if authority.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            https,
            authority: authority.to_string(),
            path_prefix: prefix.to_string(),
        })
    }

    /// Host and optional port, e.g. `api.example.com:8443`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Path every request path is appended to, e.g. `/v1`; empty for none.
    pub fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// Whether requests use TLS.
    pub fn is_https(&self) -> bool {
        self.https
    }
}

/// An outgoing request, relative to the [`Client`]'s base URL.
#[derive(Debug, Clone)]
pub struct Request {
    /// The HTTP method.
    pub method: Method,
    /// Path and query, starting with `/` and already percent-encoded (see
    /// [`encode_component`]); appended to the base URL's path prefix.
    pub path_and_query: String,
    /// Headers sent after the client's own ([`Client::header`]).
    pub headers: Vec<(String, String)>,
    /// The body; empty sends none.
    pub body: Vec<u8>,
    /// Longest wait for each phase (connect, first byte, between bytes);
    /// `None` or anything longer means what is left of the call's budget.
    pub timeout: Option<Duration>,
}

impl Request {
    /// A request with no extra headers, no body and the budget as timeout.
    pub fn new(method: Method, path_and_query: impl Into<String>) -> Self {
        Self {
            method,
            path_and_query: path_and_query.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// Add header `name: value`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Send `body` as the request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Send `value` as a JSON body with `content-type: application/json`;
    /// `internal` if it cannot be encoded (a bug in the action).
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, ActionError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| ActionError::Internal(format!("could not encode the request body as JSON: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Wait at most `timeout` per phase (never more than the budget left).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A complete response, body read into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers; names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response itself when its status is 2xx; otherwise the contract's
    /// error for the status ([`ActionError::from_response`]), `what` (e.g.
    /// `GET /items/42`) saying which request it answered.
    pub fn error_for_status(self, what: &str) -> Result<Self, ActionError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(ActionError::from_response(&self, what))
        }
    }

    /// The body decoded as JSON; `upstream` when it is not the JSON expected
    /// or nests deeper than [`crate::json::MAX_DEPTH`].
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ActionError> {
        crate::json::from_upstream(&self.body, self.status)
    }
}

/// Why a request produced no response. [`ActionError`] has a `From` for it
/// (`?` works), or map it yourself for a better message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused the request (host not allowed, address blocked, …).
    Denied(String),
    /// The request did not complete within the time it was given; the
    /// message is the `wasi:http` error code, e.g. `connection-read-timeout`.
    Timeout(String),
    /// The connection failed (refused, reset, DNS, TLS, protocol error).
    Connection(String),
    /// The response body was larger than the client reads.
    TooLarge(String),
    /// The request itself was malformed (a header or path `wasi:http`
    /// refuses): a bug in the action.
    InvalidRequest(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied(m)
            | HttpError::Timeout(m)
            | HttpError::Connection(m)
            | HttpError::TooLarge(m)
            | HttpError::InvalidRequest(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for HttpError {}

/// Sends requests to one base URL within one call's budget. Cheap: make one
/// per call.
#[derive(Debug, Clone)]
pub struct Client {
    base: BaseUrl,
    /// Monotonic-clock instant (ns) at which the call's budget runs out.
    deadline_ns: u64,
    /// Sent with every request, before the request's own.
    headers: Vec<(String, String)>,
    max_response_bytes: usize,
}

impl Client {
    /// A client for `base` whose requests must finish within the call's
    /// budget (`ctx.budget_ms`, counted from now). It sends only the headers
    /// it is given (and the host adds the credential).
    pub fn new(base: BaseUrl, ctx: &CallContext) -> Self {
        Self {
            base,
            deadline_ns: monotonic_clock::now().saturating_add(ctx.budget_ms.saturating_mul(1_000_000)),
            headers: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Send header `name: value` with every request (e.g. `accept:
    /// application/json`, `user-agent`). Headers are sent as given, the
    /// client's before a request's own: a name given twice is sent twice.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Read response bodies up to `bytes` (default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Where requests go.
    pub fn base_url(&self) -> &BaseUrl {
        &self.base
    }

    /// Time left before the call's budget runs out.
    pub fn remaining(&self) -> Duration {
        Duration::from_nanos(self.remaining_ns())
    }

    /// Block for `duration` (e.g. to honour `Retry-After`), but never past
    /// the budget.
    pub fn sleep(&self, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos())
            .unwrap_or(u64::MAX)
            .min(self.remaining_ns());
        monotonic_clock::subscribe_duration(ns).block();
    }

    /// `GET {base}{path_and_query}`.
    pub fn get(&self, path_and_query: &str) -> Result<Response, HttpError> {
        self.exchange(&Method::Get, path_and_query, &[], None, None)
    }

    /// `GET {base}{path_and_query}`, a non-2xx status mapped to the
    /// contract's error ([`ActionError::from_response`]) and the body decoded
    /// as JSON. Messages name the request without its query, which may hold
    /// customer data.
    pub fn get_json<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, ActionError> {
        let what = format!("GET {}", without_query(path_and_query));
        self.get(path_and_query)?.error_for_status(&what)?.json()
    }

    /// Send `request` and read the whole response (bounded).
    pub fn send(&self, request: &Request) -> Result<Response, HttpError> {
        let body = (!request.body.is_empty()).then_some(request.body.as_slice());
        self.exchange(
            &request.method,
            &request.path_and_query,
            &request.headers,
            body,
            request.timeout,
        )
    }

    /// One request and its response. [`Client::get`] passes no body and no
    /// headers of its own, so an action that only GETs (and never calls
    /// [`Client::send`]) carries none of the body-writing code.
    fn exchange(
        &self,
        method: &Method,
        path_and_query: &str,
        extra_headers: &[(String, String)],
        body: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Response, HttpError> {
        let left = self.remaining_ns();
        if left == 0 {
            return Err(HttpError::Timeout(format!(
                "the call's time budget ran out before the request to {}",
                self.base.authority
            )));
        }
        let timeout = timeout.map_or(left, |t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).min(left));
        let headers = Fields::new();
        for (name, value) in self.headers.iter().chain(extra_headers) {
            if headers.append(name, value.as_bytes()).is_err() {
                return Err(HttpError::InvalidRequest(format!(
                    "wasi:http refused the request header `{name}`"
                )));
            }
        }
        if let Some(body) = body {
            if !headers.has("content-length") {
                let _ = headers.append("content-length", body.len().to_string().as_bytes());
            }
        }
        let request = OutgoingRequest::new(headers);
        let path = format!("{}{}", self.base.path_prefix, path_and_query);
        let scheme = if self.base.https { Scheme::Https } else { Scheme::Http };
        let valid = request.set_method(method).is_ok()
            && request.set_scheme(Some(&scheme)).is_ok()
            && request.set_authority(Some(&self.base.authority)).is_ok()
            && request.set_path_with_query(Some(&path)).is_ok();
        if !valid {
            return Err(HttpError::InvalidRequest(format!(
                "wasi:http refused the request path `{}` to {}",
                without_query(&path),
                self.base.authority
            )));
        }
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(timeout));
        let _ = options.set_first_byte_timeout(Some(timeout));
        let _ = options.set_between_bytes_timeout(Some(timeout));
        self.round_trip(request, options, body).map_err(|code| self.error(code))
    }

    /// Send `request`, write `body` (after `handle` has started the request,
    /// so a body larger than the host buffers cannot block before sending)
    /// and read the response.
    fn round_trip(
        &self,
        request: OutgoingRequest,
        options: RequestOptions,
        body: Option<&[u8]>,
    ) -> Result<Response, ErrorCode> {
        let taken = |what: &str| ErrorCode::InternalError(Some(format!("{what} already taken")));
        let outgoing = match body {
            Some(bytes) => Some((request.body().map_err(|()| taken("request body"))?, bytes)),
            None => None,
        };
        let pending = outgoing_handler::handle(request, Some(options))?;
        if let Some((outgoing, bytes)) = outgoing {
            {
                let stream = outgoing.write().map_err(|()| taken("request stream"))?;
                for chunk in bytes.chunks(WRITE_CHUNK) {
                    stream.blocking_write_and_flush(chunk).map_err(stream_error)?;
                }
            }
            OutgoingBody::finish(outgoing, None)?;
        }
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(result)) => result?,
            // `get` after a completed `block` is always ready and unread.
            Some(Err(())) | None => return Err(taken("response")),
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|()| taken("response body"))?;
        let mut bytes = Vec::new();
        {
            let stream = incoming.stream().map_err(|()| taken("response stream"))?;
            loop {
                match stream.blocking_read(READ_CHUNK) {
                    Ok(chunk) => {
                        if bytes.len() + chunk.len() > self.max_response_bytes {
                            return Err(ErrorCode::HttpResponseBodySize(Some(self.max_response_bytes as u64)));
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(stream_error(e)),
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body: bytes,
        })
    }

    fn remaining_ns(&self) -> u64 {
        self.deadline_ns.saturating_sub(monotonic_clock::now())
    }

    /// The one mapping from a `wasi:http` error code to an [`HttpError`].
    fn error(&self, code: ErrorCode) -> HttpError {
        let authority = &self.base.authority;
        match code {
            ErrorCode::HttpRequestDenied => HttpError::Denied(format!("request to {authority} was denied by the host")),
            ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
                HttpError::Timeout(code_name(&code))
            }
            ErrorCode::HttpResponseBodySize(limit) => HttpError::TooLarge(match limit {
                Some(bytes) => format!("the response from {authority} was larger than {bytes} bytes"),
                None => format!("the response from {authority} was larger than the host accepts"),
            }),
            other => HttpError::Connection(describe_error_code(&other, authority)),
        }
    }
}

/// The error code behind a failed stream operation.
fn stream_error(error: StreamError) -> ErrorCode {
    match error {
        StreamError::Closed => ErrorCode::ConnectionTerminated,
        StreamError::LastOperationFailed(e) => {
            http_error_code(&e).unwrap_or_else(|| ErrorCode::InternalError(Some(e.to_debug_string())))
        }
    }
}

/// `path` without its `?query`, for messages: a query may hold customer data.
pub(crate) fn without_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// Encode `value` so it is one opaque path segment or query value: every byte
/// except the RFC 3986 unreserved set (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`.
/// `A&B/5?#x y` becomes `A%26B%2F5%3F%23x%20y`.
pub fn encode_component(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0x0f)] as char);
        }
    }
    out
}

/// `path?k1=v1&k2=v2` with every value encoded by [`encode_component`]
/// (keys are taken as they are: write them encoded).
pub fn path_with_query(path: &str, query: &[(&str, &str)]) -> String {
    let mut out = String::from(path);
    for (i, (k, v)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&encode_component(v));
    }
    out
}

/// A sentence for a `wasi:http` error code.
fn describe_error_code(code: &ErrorCode, authority: &str) -> String {
    match code {
        ErrorCode::DnsError(_) | ErrorCode::DnsTimeout => format!("DNS lookup of {authority} failed"),
        ErrorCode::ConnectionRefused => format!("connection to {authority} was refused"),
        ErrorCode::DestinationNotFound | ErrorCode::DestinationUnavailable => format!("{authority} is unreachable"),
        ErrorCode::ConnectionTerminated | ErrorCode::HttpResponseIncomplete => {
            format!("{authority} closed the connection before the response was complete")
        }
        ErrorCode::TlsCertificateError | ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            format!("the TLS connection to {authority} failed")
        }
        ErrorCode::HttpProtocolError => format!("{authority} answered with invalid HTTP"),
        other => format!("request to {authority} failed: {}", code_name(other)),
    }
}

/// The `wasi:http` name of an error code, e.g. `connection-read-timeout`.
/// (Written out instead of `{:?}`: the generated `Debug` of this 39-case
/// variant costs 5 KB of component size.)
fn code_name(code: &ErrorCode) -> String {
    let name = match code {
        ErrorCode::DnsTimeout => "DNS-timeout",
        ErrorCode::DnsError(_) => "DNS-error",
        ErrorCode::DestinationNotFound => "destination-not-found",
        ErrorCode::DestinationUnavailable => "destination-unavailable",
        ErrorCode::DestinationIpProhibited => "destination-IP-prohibited",
        ErrorCode::DestinationIpUnroutable => "destination-IP-unroutable",
        ErrorCode::ConnectionRefused => "connection-refused",
        ErrorCode::ConnectionTerminated => "connection-terminated",
        ErrorCode::ConnectionTimeout => "connection-timeout",
        ErrorCode::ConnectionReadTimeout => "connection-read-timeout",
        ErrorCode::ConnectionWriteTimeout => "connection-write-timeout",
        ErrorCode::ConnectionLimitReached => "connection-limit-reached",
        ErrorCode::TlsProtocolError => "TLS-protocol-error",
        ErrorCode::TlsCertificateError => "TLS-certificate-error",
        ErrorCode::TlsAlertReceived(_) => "TLS-alert-received",
        ErrorCode::HttpRequestDenied => "HTTP-request-denied",
        ErrorCode::HttpRequestLengthRequired => "HTTP-request-length-required",
        ErrorCode::HttpRequestBodySize(_) => "HTTP-request-body-size",
        ErrorCode::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
        ErrorCode::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        ErrorCode::HttpRequestUriTooLong => "HTTP-request-URI-too-long",
        ErrorCode::HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
        ErrorCode::HttpRequestHeaderSize(_) => "HTTP-request-header-size",
        ErrorCode::HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
        ErrorCode::HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
        ErrorCode::HttpResponseIncomplete => "HTTP-response-incomplete",
        ErrorCode::HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
        ErrorCode::HttpResponseHeaderSize(_) => "HTTP-response-header-size",
        ErrorCode::HttpResponseBodySize(_) => "HTTP-response-body-size",
        ErrorCode::HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
        ErrorCode::HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
        ErrorCode::HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
        ErrorCode::HttpResponseContentCoding(_) => "HTTP-response-content-coding",
        ErrorCode::HttpResponseTimeout => "HTTP-response-timeout",
        ErrorCode::HttpUpgradeFailed => "HTTP-upgrade-failed",
        ErrorCode::HttpProtocolError => "HTTP-protocol-error",
        ErrorCode::LoopDetected => "loop-detected",
        ErrorCode::ConfigurationError => "configuration-error",
        ErrorCode::InternalError(detail) => return format!("internal-error: {}", detail.as_deref().unwrap_or("")),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_splits_scheme_authority_and_prefix() {
        let b = BaseUrl::parse("https://api.example.com:8443/v1/").expect("valid");
        assert!(b.is_https());
        assert_eq!(b.authority(), "api.example.com:8443");
        assert_eq!(b.path_prefix(), "/v1");
        let b = BaseUrl::parse("http://127.0.0.1:9000").expect("valid");
        assert!(!b.is_https());
        assert_eq!((b.authority(), b.path_prefix()), ("127.0.0.1:9000", ""));
    }

    #[test]
    fn unusable_base_urls_are_refused_with_what_was_expected() {
        for text in ["", "api.example.com", "ftp://x", "https://", "https:///v1"] {
            match BaseUrl::parse(text) {
                Err(ActionError::Internal(m)) => {
                    assert!(m.contains(&format!("`{text}`")), "{m}");
                    assert!(m.contains("http(s)://host[:port][/prefix]"), "{m}");
                }
                other => panic!("`{text}` should be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn components_are_percent_encoded_except_unreserved_bytes() {
        assert_eq!(encode_component("A&B/5?#x y"), "A%26B%2F5%3F%23x%20y");
        assert_eq!(encode_component("az-AZ.09_~"), "az-AZ.09_~");
        assert_eq!(encode_component("é+%"), "%C3%A9%2B%25");
        assert_eq!(path_with_query("/v2/x", &[]), "/v2/x");
        assert_eq!(
            path_with_query("/v2/shipments", &[("shipment_number", "10 01"), ("page", "1")]),
            "/v2/shipments?shipment_number=10%2001&page=1"
        );
    }

    #[test]
    fn response_headers_are_found_case_insensitively() {
        let r = Response {
            status: 200,
            headers: vec![("retry-after".into(), "3".into())],
            body: vec![],
        };
        assert_eq!(r.header("Retry-After"), Some("3"));
        assert_eq!(r.header("x-request-id"), None);
    }

    #[test]
    fn request_builders_set_headers_body_and_timeout() {
        let r = Request::new(Method::Post, "/items")
            .json(&serde_json::json!({"name": "lamp"}))
            .expect("encodes")
            .header("x-trace", "1")
            .timeout(Duration::from_secs(2));
        assert_eq!(r.body, br#"{"name":"lamp"}"#);
        assert_eq!(
            r.headers,
            [
                ("content-type".to_string(), "application/json".to_string()),
                ("x-trace".into(), "1".into())
            ]
        );
        assert_eq!(r.timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn queries_are_left_out_of_messages() {
        assert_eq!(without_query("/v2/shipments?shipment_number=1001"), "/v2/shipments");
        assert_eq!(without_query("/items/42"), "/items/42");
    }
}
