//! The integration's API key: loaded once, never printed.

use anyhow::{bail, Context, Result};
use std::fmt;
use std::path::Path;

/// Environment variable the CLI reads the ShipStation key from when no file is given.
pub const API_KEY_ENV: &str = "SHIPSTATION_API_KEY";

/// An API key. `Debug` and `Display` print `[redacted]`; the only way to the
/// bytes is [`ApiKey::header_value`], used by the outbound hook when it adds
/// the credential header to a request bound for the integration's host.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Accept `raw` (surrounding whitespace, e.g. a file's trailing newline, is
    /// dropped). Refuses empty keys and bytes not allowed in an HTTP header.
    pub fn new(raw: &str) -> Result<Self> {
        let key = raw.trim();
        if key.is_empty() {
            bail!("the API key is empty");
        }
        if key.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            bail!("the API key contains characters that cannot be sent in an HTTP header (control or non-ASCII)");
        }
        Ok(Self(key.to_string()))
    }

    /// Read the key from a file (e.g. a mounted secret).
    pub fn from_file(path: &Path) -> Result<Self> {
        let raw = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the API key file {}", path.display()))?;
        Self::new(&raw).with_context(|| format!("API key file {}", path.display()))
    }

    /// Read the key from environment variable `var`; `None` when it is unset.
    pub fn from_env(var: &str) -> Result<Option<Self>> {
        match std::env::var(var) {
            Ok(raw) => Self::new(&raw)
                .map(Some)
                .with_context(|| format!("environment variable {var}")),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("environment variable {var} is not valid UTF-8")
            }
        }
    }

    /// The key as a header value marked sensitive (hyper never logs it).
    pub(crate) fn header_value(&self) -> http::HeaderValue {
        // `new` admitted only visible ASCII and spaces, which are valid header bytes.
        let mut v = http::HeaderValue::from_str(&self.0).unwrap_or_else(|_| http::HeaderValue::from_static(""));
        v.set_sensitive(true);
        v
    }

    /// Whether `text` contains the key (used to scrub diagnostics).
    pub fn appears_in(&self, text: &str) -> bool {
        text.contains(&self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_never_formatted() {
        let k = ApiKey::new(" TEST_secret\n").expect("valid");
        assert_eq!(format!("{k} {k:?}"), "[redacted] ApiKey([redacted])");
        assert!(k.appears_in("xx TEST_secret yy"));
        assert_eq!(k.header_value().to_str().ok(), Some("TEST_secret"));
        assert!(k.header_value().is_sensitive());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(ApiKey::new("  ").is_err());
        assert!(ApiKey::new("a\u{7}b").is_err());
        assert!(ApiKey::new("ключ").is_err());
    }
}
