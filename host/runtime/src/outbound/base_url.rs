//! The operator's base URL: the one origin an integration's requests may
//! reach, and the non-public addresses it opens.
//!
//! Only the operator (or the kind registry, `kinds.rs`) writes a base URL;
//! nothing in it comes from the action. It is checked when it is parsed:
//! `https` is required except to a loopback host, so the key never crosses a
//! network in clear text; user information in the URL is refused (credentials
//! belong in the API key setting); the host must be a DNS name or an IP
//! literal. [`BaseUrl::non_public_scope`] is the only way a non-public address
//! becomes reachable (`address.rs` lists them): `localhost` opens loopback,
//! an IP literal opens exactly that address.

use super::address::is_public_address;
use anyhow::{bail, Context, Result};
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

    /// Which non-public addresses requests to this base URL may reach. Only
    /// the operator writes a base URL, so only the operator can open these:
    /// `localhost` opens loopback (not every private range); a non-public IP
    /// literal opens exactly that address; anything else opens nothing.
    pub fn non_public_scope(&self) -> NonPublicScope {
        if self.host == "localhost" {
            return NonPublicScope::Loopback;
        }
        match self.host.parse::<IpAddr>() {
            Ok(ip) if !is_public_address(ip) => NonPublicScope::Exactly(ip),
            _ => NonPublicScope::None,
        }
    }

    /// Whether `other` has the same scheme, host and port.
    pub fn same_origin(&self, other: &BaseUrl) -> bool {
        self.scheme == other.scheme && self.host.eq_ignore_ascii_case(&other.host) && self.port == other.port
    }

    /// The `Host` header for requests to this base URL: the host (IPv6 in
    /// brackets), with the port only when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    fn default_port(&self) -> u16 {
        if self.scheme == "https" {
            443
        } else {
            80
        }
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
        write!(f, "{}://{}{}", self.scheme, self.host_header(), self.path_prefix)
    }
}

/// The non-public addresses an integration's requests may reach (see
/// [`BaseUrl::non_public_scope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonPublicScope {
    /// Public addresses only.
    None,
    /// Loopback addresses too (the base URL names `localhost`).
    Loopback,
    /// This one address too (the base URL is that IP literal).
    Exactly(IpAddr),
}

impl NonPublicScope {
    /// Whether a non-public `ip` is within the scope.
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            NonPublicScope::None => false,
            NonPublicScope::Loopback => ip.is_loopback() || ip.to_canonical().is_loopback(),
            NonPublicScope::Exactly(allowed) => ip.to_canonical() == allowed.to_canonical(),
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
        assert_eq!(b.non_public_scope(), NonPublicScope::None);
        let b = BaseUrl::parse("http://127.0.0.1:8080/mock/").expect("valid");
        assert_eq!(b.to_string(), "http://127.0.0.1:8080/mock");
        assert_eq!(b.host_header(), "127.0.0.1:8080");
        let b = BaseUrl::parse("http://[::1]:9/").expect("valid");
        assert_eq!(b.authority(), "[::1]:9");
        assert_eq!(b.host_header(), "[::1]:9");
    }

    #[test]
    fn only_the_operators_base_url_opens_non_public_addresses() {
        let lo = BaseUrl::parse("http://localhost:8080").expect("valid");
        assert_eq!(lo.non_public_scope(), NonPublicScope::Loopback);
        let scope = lo.non_public_scope();
        assert!(scope.allows("127.0.0.1".parse().expect("ip")));
        assert!(scope.allows("::1".parse().expect("ip")));
        assert!(!scope.allows("10.0.0.1".parse().expect("ip")));
        assert!(!scope.allows("169.254.169.254".parse().expect("ip")));
        let one = BaseUrl::parse("https://10.1.2.3:8443")
            .expect("valid")
            .non_public_scope();
        assert!(one.allows("10.1.2.3".parse().expect("ip")));
        assert!(one.allows("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!one.allows("10.1.2.4".parse().expect("ip")));
        assert!(!one.allows("127.0.0.1".parse().expect("ip")));
        let public = BaseUrl::parse("https://api.shipstation.com")
            .expect("valid")
            .non_public_scope();
        assert!(!public.allows("127.0.0.1".parse().expect("ip")));
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
