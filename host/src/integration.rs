//! An integration's settings: where the upstream API is, how long a call may
//! take, which key to inject and the per-instance limits.

use crate::deadline::ActionTimeout;
use crate::limits::SandboxLimits;
use crate::secret::ApiKey;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// The base URL of the upstream API, e.g. `https://api.shipstation.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal, lower case, IPv6 without brackets.
    pub host: String,
    /// Port, defaulted from the scheme.
    pub port: u16,
    /// Path before `/v2/…`, without trailing slash (usually empty).
    pub path_prefix: String,
}

impl BaseUrl {
    /// Parse and check a base URL. `https` is required, except for loopback
    /// hosts (local simulators and tests), so the key never crosses a network
    /// in clear text.
    pub fn parse(text: &str) -> Result<Self> {
        let uri: http::Uri = text.trim().parse().with_context(|| {
            format!("base URL `{text}` is not a valid URL; expected e.g. https://api.shipstation.com")
        })?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_string(),
            Some(other) => {
                bail!("base URL `{text}` uses scheme `{other}`; only https (or http to a loopback host) is allowed")
            }
            None => bail!("base URL `{text}` has no scheme; write it as https://host"),
        };
        let authority = uri
            .authority()
            .with_context(|| format!("base URL `{text}` has no host"))?;
        if authority.as_str().contains('@') {
            bail!("base URL `{text}` contains user information; put credentials in the API key setting, not the URL");
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if !is_valid_host(&host) {
            bail!("base URL `{text}` has an invalid host `{host}`; expected a DNS name or an IP address");
        }
        if uri.query().is_some() {
            bail!("base URL `{text}` must not have a query string");
        }
        let port = authority.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        let path = uri.path();
        if !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b))
        {
            bail!("base URL `{text}` has characters in its path that must be percent-encoded");
        }
        let base = Self {
            host,
            port,
            path_prefix: uri.path().trim_end_matches('/').to_string(),
            scheme,
        };
        if base.scheme == "http" && !base.is_loopback() {
            bail!(
                "base URL `{text}` uses plain http to a non-loopback host, which would send the API key unencrypted; use https"
            );
        }
        Ok(base)
    }

    /// Whether the host is `localhost` or a loopback IP literal.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Whether the operator pointed the base URL itself at a non-public
    /// address (loopback, private range, …). Only then may the action's
    /// requests reach such addresses.
    pub fn targets_private_network(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<IpAddr>()
                .is_ok_and(|ip| !crate::outbound::is_public_address(ip))
    }

    /// `host:port`, IPv6 in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port {
            write!(f, "{}://{}{}", self.scheme, host, self.path_prefix)
        } else {
            write!(f, "{}://{}:{}{}", self.scheme, host, self.port, self.path_prefix)
        }
    }
}

/// Whether `host` is an IP literal or a DNS name (labels of letters, digits
/// and inner hyphens, 1–63 bytes each, 253 in all).
fn is_valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Everything the host needs to run an action for one integration.
#[derive(Debug, Clone)]
pub struct IntegrationSettings {
    /// Where the upstream API lives; the only host the action may reach.
    pub base_url: BaseUrl,
    /// Wall-clock limit of one call (10–180 s).
    pub timeout: ActionTimeout,
    /// Injected as the manifest's credential header; `None` sends no key.
    pub api_key: Option<ApiKey>,
    /// Per-call sandbox limits.
    pub limits: SandboxLimits,
    /// Addresses to use for host names instead of DNS (like curl's
    /// `--resolve`); the address checks still apply.
    pub pinned_addresses: BTreeMap<String, Vec<IpAddr>>,
}

impl IntegrationSettings {
    /// Settings with default timeout and limits.
    pub fn new(base_url: BaseUrl, api_key: Option<ApiKey>) -> Self {
        Self {
            base_url,
            timeout: ActionTimeout::default(),
            api_key,
            limits: SandboxLimits::default(),
            pinned_addresses: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse_and_print() {
        let b = BaseUrl::parse("https://api.shipstation.com").expect("valid");
        assert_eq!(
            (b.host.as_str(), b.port, b.path_prefix.as_str()),
            ("api.shipstation.com", 443, "")
        );
        assert_eq!(b.to_string(), "https://api.shipstation.com");
        assert!(!b.targets_private_network());
        let b = BaseUrl::parse("http://127.0.0.1:8080/mock/").expect("valid");
        assert_eq!(b.to_string(), "http://127.0.0.1:8080/mock");
        assert!(b.targets_private_network());
        let b = BaseUrl::parse("http://[::1]:9/").expect("valid");
        assert_eq!(b.authority(), "[::1]:9");
    }

    #[test]
    fn unsafe_base_urls_are_refused() {
        for bad in [
            "http://api.shipstation.com",
            "ftp://x",
            "api.shipstation.com",
            "https://user:pw@api.shipstation.com",
            "https://x/?a=1",
            "",
            "https://'&/s",
            "https://a_b.com",
            "https://-a.com",
            "https://x.com/a b",
            "https://x.com/s\u{a0}x",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
