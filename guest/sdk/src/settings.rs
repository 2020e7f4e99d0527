//! The action's non-secret settings, from `wasi:config/store`.
//!
//! The operator sets them per integration; the one every action reads is
//! `base_url` (scheme, host and optional path prefix of the upstream API). The
//! key is never a setting: the host injects it into requests.

use crate::http::BaseUrl;
use crate::ActionError;

/// The setting `key` (`[a-z0-9_]`), `None` when the host has none.
pub fn get(key: &str) -> Result<Option<String>, ActionError> {
    use crate::bindings::wasi::config::store::{get, Error};
    get(key).map_err(|(Error::Upstream(detail) | Error::Io(detail))| {
        ActionError::Internal(format!(
            "the host could not read the {key} setting from wasi:config/store ({detail}); \
             check the integration's settings in the host configuration"
        ))
    })
}

/// The operator's `base_url` setting, or `default` when the host sets none
/// (pass the manifest's `default_base_url`, or `None` when the action has no
/// sensible default and the operator must configure one).
pub fn base_url(default: Option<&str>) -> Result<BaseUrl, ActionError> {
    match (get("base_url")?, default) {
        (Some(url), _) => BaseUrl::parse(&url),
        (None, Some(url)) => BaseUrl::parse(url),
        (None, None) => Err(ActionError::Internal(
            "the host set no base_url setting and this action has no default; \
             configure the integration's base URL"
                .into(),
        )),
    }
}
