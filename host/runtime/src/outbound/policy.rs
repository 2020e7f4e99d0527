//! The outbound policy: what one call's requests may do, decided from the
//! operator's settings alone (nothing in it comes from the action).
//!
//! Every request is admitted here before anything is resolved or dialled
//! ([`OutboundPolicy::admit`]):
//! - scheme, host and port must be the integration's base URL
//!   (`base_url.rs`), which only the operator or the kind registry sets,
//!   never the action; the authority may carry no userinfo; the action's
//!   manifest must declare the host;
//! - credential headers the guest set are stripped, the integration's key is
//!   put in the operator's [`CredentialHeader`] (a header on no deny list: a
//!   key in `Origin` or `Referer` would be reflected back by ordinary
//!   upstreams), and `Host` is built from the checked authority.
//!
//! Then, once the transport has resolved the name, every address is checked
//! against the IANA special-purpose registries (`address.rs`):
//! non-public addresses are refused unless the operator's base URL itself
//! names one ([`OutboundPolicy::check_addresses`]).
//!
//! A refusal is recorded (the report and the host log say what was refused
//! and which setting governs it, never advising to allow the requested host)
//! and counts toward stopping the call (`record.rs`).

use super::address::{is_public_address, special_purpose_range};
use super::base_url::{BaseUrl, NonPublicScope};
use super::record::{CallRecorder, OutboundRecord};
use crate::error::guest_text;
use crate::limits::{SandboxLimits, SandboxViolation};
use crate::secret::ApiKey;
use anyhow::{bail, Result};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// Longest request target (path and query) an action may send, in bytes.
/// Real APIs stay far below; a longer one is refused before it is recorded.
pub const MAX_REQUEST_TARGET_BYTES: usize = 8 * 1024;

/// Header names that never carry a credential, and why. Checked as exact
/// (lower-case) names; [`DENIED_CREDENTIAL_HEADER_PREFIXES`] covers families.
pub const DENIED_CREDENTIAL_HEADERS: &[(&str, &str)] = &[
    (
        "host",
        "it routes the request: proxies and virtual hosts act on it and log it",
    ),
    ("origin", "CORS responses reflect it (Access-Control-Allow-Origin)"),
    ("referer", "analytics, error pages and logs record and reflect it"),
    ("user-agent", "servers log it and error pages echo it"),
    ("cookie", "servers and frameworks reflect and log cookies"),
    (
        "set-cookie",
        "it is a response header; sent in a request it is echoed by debug endpoints",
    ),
    ("forwarded", "proxies pass it on to the next hop and log it"),
    ("via", "proxies pass it on to the next hop and log it"),
    ("x-real-ip", "proxies pass it on and log it"),
    ("connection", "hop-by-hop: it steers framing and names headers to drop"),
    ("keep-alive", "hop-by-hop connection management"),
    ("te", "hop-by-hop: it steers transfer codings"),
    ("trailer", "it steers framing"),
    ("transfer-encoding", "it steers framing (request smuggling)"),
    ("upgrade", "it switches protocols"),
    ("expect", "it changes how the body is sent"),
    ("max-forwards", "proxies act on it"),
    ("x-http-method-override", "it changes the method servers act on"),
    ("location", "it is a response header that servers reflect"),
];

/// Header name prefixes that never carry a credential, and why.
pub const DENIED_CREDENTIAL_HEADER_PREFIXES: &[(&str, &str)] = &[
    ("content-", "it describes or frames the body"),
    ("x-forwarded-", "proxies pass it on to the next hop and log it"),
    ("proxy-", "it is meant for (and read by) proxies"),
    ("access-control-", "it is part of CORS, which reflects values"),
    ("sec-", "browsers own it"),
    ("if-", "caches act on it and may store it"),
];

/// The header an integration's key is sent in: a valid header name that is
/// not on the deny list. Only the operator or the registry makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialHeader(HeaderName);

impl CredentialHeader {
    /// Check `name` (e.g. `API-Key`) and accept it as a credential header.
    pub fn new(name: &str) -> Result<Self> {
        let shown = guest_text(name, 64);
        let Ok(header) = HeaderName::from_bytes(name.trim().as_bytes()) else {
            bail!("`{shown}` is not a valid HTTP header name");
        };
        if let Some(why) = credential_header_refusal(header.as_str()) {
            bail!("`{shown}` cannot carry a credential: {why}; use the API's own key header (e.g. API-Key)");
        }
        Ok(Self(header))
    }

    /// A built-in kind's header (`kinds.rs`): a lower-case constant that
    /// `KindRegistry::builtin` is tested to hold only headers [`Self::new`]
    /// accepts.
    pub(crate) fn from_static(name: &'static str) -> Self {
        Self(HeaderName::from_static(name))
    }

    /// The header name (lower case).
    pub fn name(&self) -> &HeaderName {
        &self.0
    }

    /// Whether `other` names this header (case-insensitive).
    pub fn matches(&self, other: &str) -> bool {
        self.0.as_str().eq_ignore_ascii_case(other.trim())
    }
}

impl fmt::Display for CredentialHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Why a (lower-case) header name may not carry a credential, if it may not.
fn credential_header_refusal(name: &str) -> Option<&'static str> {
    DENIED_CREDENTIAL_HEADERS
        .iter()
        .find(|(denied, _)| *denied == name)
        .or_else(|| {
            DENIED_CREDENTIAL_HEADER_PREFIXES
                .iter()
                .find(|(prefix, _)| name.starts_with(prefix))
        })
        .map(|(_, why)| *why)
}

/// The credential of a kind: which header, what it is called, and where the
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

    /// Admit `request`, or refuse it (recording the refusal): the origin,
    /// the length of its target, then its headers
    /// ([`OutboundPolicy::bind_headers`]). Returns the request ready for the
    /// wire and where it goes.
    pub(crate) fn admit(
        &self,
        mut request: Request<WasiBody>,
        recorder: &CallRecorder,
        record: &mut OutboundRecord,
    ) -> Result<(Request<WasiBody>, Target), HttpError> {
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?.clone();
        if let Some(why) = self.refusal(&scheme, &authority) {
            recorder.refused(SandboxViolation::Denied {
                message: format!("outbound request refused: {why}"),
            });
            return Err(HttpError::HttpRequestDenied);
        }
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        if path_and_query.len() > MAX_REQUEST_TARGET_BYTES {
            recorder.refused(SandboxViolation::LimitExceeded {
                message: format!(
                    "an outbound request's path and query were {} bytes, over the {MAX_REQUEST_TARGET_BYTES} the \
                     sandbox sends",
                    path_and_query.len()
                ),
            });
            return Err(HttpError::HttpRequestUriTooLong);
        }
        self.bind_headers(request.headers_mut())?;
        record.set_request_headers(request.headers());
        // On the wire the request line carries only the path; Host is set.
        *request.uri_mut() = http::Uri::builder()
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        let target = Target {
            scheme,
            host: self.base_url.host.clone(),
            port: self.base_url.port,
        };
        Ok((request, target))
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

    /// The key goes only to the base URL's origin, only in the operator's
    /// header; whatever credential-like headers the guest set are dropped
    /// first. `Host` comes from the checked base URL, not the guest.
    fn bind_headers(&self, headers: &mut HeaderMap) -> Result<(), HttpError> {
        headers.remove(http::header::AUTHORIZATION);
        headers.remove(http::header::PROXY_AUTHORIZATION);
        if let Some(name) = &self.credential_header {
            headers.remove(name.name());
            if let Some(key) = &self.api_key {
                headers.insert(name.name().clone(), key.header_value());
            }
        }
        let host_header =
            HeaderValue::from_str(&self.base_url.host_header()).map_err(|_| HttpError::HttpRequestUriInvalid)?;
        headers.insert(http::header::HOST, host_header);
        Ok(())
    }

    /// Refuse `addrs`, the addresses `host` resolved (or is pinned) to, if
    /// any is non-public and not opened by the operator's base URL
    /// (recording the refusal).
    pub(crate) fn check_addresses(
        &self,
        host: &str,
        addrs: &[SocketAddr],
        recorder: &CallRecorder,
    ) -> Result<(), HttpError> {
        let refused = addrs
            .iter()
            .find(|a| !is_public_address(a.ip()) && !self.non_public.allows(a.ip()));
        if let Some(bad) = refused {
            let range = special_purpose_range(bad.ip())
                .map(|r| format!(" ({}, {})", r.name, r.rfc))
                .unwrap_or_default();
            recorder.refused(SandboxViolation::Denied {
                message: format!(
                    "outbound request refused: {} resolves to the non-public address {}{range}; non-public \
                     addresses are reachable only when the operator's base_url names one itself",
                    host,
                    bad.ip()
                ),
            });
            return Err(HttpError::DestinationIpProhibited);
        }
        Ok(())
    }

    /// SHA-256 of the credential header and the key this policy injects
    /// (zero when it injects none), so connections are never shared across
    /// keys (`pool.rs`).
    pub(crate) fn credential_fingerprint(&self) -> [u8; 32] {
        use sha2::Digest;
        match (&self.credential_header, &self.api_key) {
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
}

/// Where an admitted request goes: the base URL's scheme, host and port.
pub(crate) struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower case, IPv6 without brackets.
    pub host: String,
    /// The base URL's port.
    pub port: u16,
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

    #[test]
    fn reflected_and_framing_headers_never_carry_a_key() {
        for bad in [
            "Host",
            "Origin",
            "Referer",
            "User-Agent",
            "Cookie",
            "Set-Cookie",
            "Forwarded",
            "X-Forwarded-For",
            "Via",
            "Content-Type",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Proxy-Authorization",
            "Access-Control-Allow-Origin",
            "not a header",
            "",
        ] {
            assert!(CredentialHeader::new(bad).is_err(), "{bad} should be refused");
        }
        for good in ["API-Key", "X-Api-Key", "x-auth-token", "Authorization"] {
            assert!(CredentialHeader::new(good).is_ok(), "{good} should be accepted");
        }
    }
}
