//! The edge adapter: what `actionbox`'s host does for an action, done inside
//! the composed component so that any `wasi:http/proxy` runtime can run it.
//!
//! It exports to the action:
//! - `wasi:http/outgoing-handler`, wrapping the runtime's: only the base URL's
//!   origin is allowed, and requests to it get the credential header added here
//!   (the action never sees the key);
//! - `wasi:config/store`, filtered: `base_url` only, from `get` and `get-all`
//!   alike (never the key, never the rest of the runtime's configuration);
//! - `actionbox:action/log`: lines on stderr, filtered, escaped and capped.
//!
//! Its own configuration comes from the runtime's `wasi:config/store` (names
//! Spin accepts as variable names: lower case, `_` separators):
//!
//! | key | meaning |
//! |---|---|
//! | `actionbox_base_url` | `https://host[:port][/prefix]` (plain `http` only for loopback); required |
//! | `actionbox_api_key` | the credential; required; never logged |
//! | `actionbox_credential_header` | header it goes in; default `API-Key` |
//! | `actionbox_log` | `trace`/`debug`/`info`/`warn`/`error`/`off`; default `info` |

use std::sync::atomic::{AtomicUsize, Ordering};

wit_bindgen::generate!({
    // The repo's contract and WASI packages (wit/), then the edge worlds.
    path: ["../../../wit", "../wit"],
    world: "actionbox:edge/adapter",
    generate_all,
});

use exports::actionbox::action::log::Level;
use exports::wasi::config::store::Error as ConfigError;
use wasi::config::store;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, FutureIncomingResponse, OutgoingRequest, RequestOptions, Scheme};

/// The runtime's configuration keys this adapter reads.
const BASE_URL: &str = "actionbox_base_url";
const API_KEY: &str = "actionbox_api_key";
const CREDENTIAL_HEADER: &str = "actionbox_credential_header";
const LOG: &str = "actionbox_log";
/// The one setting the action may read (the contract's `base_url`).
const ACTION_BASE_URL: &str = "base_url";

const DEFAULT_CREDENTIAL_HEADER: &str = "API-Key";
/// Same caps as the `actionbox` host: 4 KiB per line, 64 KiB per instance.
const MAX_LOG_LINE: usize = 4 * 1024;
const MAX_LOG_TOTAL: usize = 64 * 1024;

static LOGGED: AtomicUsize = AtomicUsize::new(0);

struct Adapter;

/// A value from the runtime's configuration, trimmed; `None` when unset or
/// empty. A failing store reads as unset: without a base URL or key every
/// request is refused with a message naming the missing key; the header and
/// the log level fall back to their defaults.
fn config(key: &str) -> Option<String> {
    store::get(key)
        .ok()
        .flatten()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The one origin the action may reach.
#[derive(Debug, PartialEq)]
struct Origin {
    https: bool,
    /// Lower-case host, `:port` only when not the scheme's default.
    authority: String,
}

impl Origin {
    fn new(https: bool, authority: &str) -> Option<Self> {
        let authority = authority.to_ascii_lowercase();
        if authority.is_empty() || authority.contains(['@', '/', '?', '#', ' ']) {
            return None;
        }
        let authority = match (https, authority.rsplit_once(':')) {
            (true, Some((h, "443"))) | (false, Some((h, "80"))) if !h.ends_with(':') => h.to_string(),
            _ => authority,
        };
        Some(Self { https, authority })
    }

    /// The scheme requests to this origin go out with: `https`, or `http`
    /// only for a loopback base URL (`base_origin` refuses any other).
    fn scheme(&self) -> Scheme {
        if self.https {
            Scheme::Https
        } else {
            Scheme::Http
        }
    }

    fn host(&self) -> &str {
        let a = self.authority.as_str();
        if let Some(rest) = a.strip_prefix('[') {
            return rest.split(']').next().unwrap_or("");
        }
        a.split(':').next().unwrap_or("")
    }

    fn is_loopback(&self) -> bool {
        let h = self.host();
        h == "localhost" || h == "::1" || h.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// `actionbox_base_url` as the origin it allows, or why it is unusable.
fn base_origin() -> Result<Origin, String> {
    let base = config(BASE_URL).ok_or_else(|| format!("{BASE_URL} is not set"))?;
    let unusable = || format!("{BASE_URL} `{base}` is not http(s)://host[:port][/prefix]");
    let (scheme, rest) = base.split_once("://").ok_or_else(unusable)?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err(unusable()),
    };
    let authority = rest.split('/').next().unwrap_or("");
    let origin = Origin::new(https, authority).ok_or_else(unusable)?;
    if !origin.https && !origin.is_loopback() {
        return Err(format!(
            "{BASE_URL} `{base}` uses plain http to a non-loopback host; the key would cross the network unencrypted"
        ));
    }
    Ok(origin)
}

fn credential_header() -> Result<String, String> {
    let name = config(CREDENTIAL_HEADER).unwrap_or_else(|| DEFAULT_CREDENTIAL_HEADER.to_string());
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.chars().all(token) {
        Ok(name)
    } else {
        Err(format!("{CREDENTIAL_HEADER} is not a valid header name"))
    }
}

fn level_rank(level: &Level) -> u8 {
    match level {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

fn level_name(level: &Level) -> &'static str {
    match level {
        Level::Trace => "TRACE",
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    }
}

fn threshold() -> u8 {
    match config(LOG).as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("trace") => 0,
        Some("debug") => 1,
        Some("warn") => 3,
        Some("error") => 4,
        Some("off") => u8::MAX,
        _ => 2,
    }
}

/// Characters a log line must not carry raw, the same set as the host's
/// `guest_text`: controls (C0, DEL, C1: escape sequences, forged lines), the
/// line/paragraph separators, bidi controls that reorder what is shown, and
/// invisible format characters that hide text.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// One line on stderr: unsafe characters escaped, length and total capped.
fn emit(source: &str, level: &Level, message: &str) {
    if level_rank(level) < threshold() {
        return;
    }
    let mut text = String::with_capacity(message.len().min(MAX_LOG_LINE));
    for c in message.chars() {
        if text.len() >= MAX_LOG_LINE {
            text.push_str("…[truncated]");
            break;
        }
        if needs_escape(c) {
            text.extend(c.escape_default());
        } else {
            text.push(c);
        }
    }
    let line = format!("{} {source}: {text}\n", level_name(level));
    if LOGGED.fetch_add(line.len(), Ordering::Relaxed) + line.len() > MAX_LOG_TOTAL {
        return;
    }
    let stderr = wasi::cli::stderr::get_stderr();
    for chunk in line.as_bytes().chunks(4096) {
        if stderr.blocking_write_and_flush(chunk).is_err() {
            return;
        }
    }
}

fn deny(why: String) -> ErrorCode {
    emit("edge-adapter", &Level::Warn, &format!("denied: {why}"));
    ErrorCode::HttpRequestDenied
}

fn misconfigured(why: String) -> ErrorCode {
    emit("edge-adapter", &Level::Error, &why);
    ErrorCode::InternalError(Some(format!("edge adapter misconfigured: {why}")))
}

impl exports::wasi::http::outgoing_handler::Guest for Adapter {
    fn handle(request: OutgoingRequest, options: Option<RequestOptions>) -> Result<FutureIncomingResponse, ErrorCode> {
        let allowed = base_origin().map_err(misconfigured)?;
        let header = credential_header().map_err(misconfigured)?;
        let key = config(API_KEY).ok_or_else(|| misconfigured(format!("{API_KEY} is not set")))?;

        let https = match request.scheme() {
            Some(Scheme::Https) => true,
            Some(Scheme::Http) => false,
            Some(Scheme::Other(s)) => return Err(deny(format!("scheme `{s}`"))),
            None => true,
        };
        let authority = request.authority().unwrap_or_default();
        let origin = Origin::new(https, &authority);
        if origin.as_ref() != Some(&allowed) {
            let scheme = if https { "https" } else { "http" };
            return Err(deny(format!(
                "{scheme}://{authority} is not the base URL's origin ({}://{})",
                if allowed.https { "https" } else { "http" },
                allowed.authority
            )));
        }

        // The headers a request carries are immutable once it exists, so the
        // request is rebuilt around a mutable copy that gets the credential.
        let headers = {
            let original = request.headers();
            if original.has(&header) {
                return Err(deny(format!("the action set the credential header `{header}` itself")));
            }
            original.clone()
        };
        // The action writes a body only after taking it from the request; if
        // it can still be taken here, the action sends none. Bodies are not
        // forwarded by this prototype (the ShipStation action only GETs).
        match request.body() {
            Ok(body) => drop(body),
            Err(()) => return Err(deny("request bodies are not supported by the edge adapter".into())),
        }
        if headers.append(&header, key.as_bytes()).is_err() {
            return Err(misconfigured(format!("could not add the `{header}` header")));
        }
        let forwarded = OutgoingRequest::new(headers);
        // The scheme is always set, and from the checked base URL, never left
        // to the runtime's default for a request without one: the key must
        // travel over TLS unless the operator chose plain http to loopback.
        let ok = forwarded.set_method(&request.method()).is_ok()
            && forwarded.set_scheme(Some(&allowed.scheme())).is_ok()
            && forwarded.set_authority(request.authority().as_deref()).is_ok()
            && forwarded
                .set_path_with_query(request.path_with_query().as_deref())
                .is_ok();
        drop(request);
        if !ok {
            return Err(ErrorCode::HttpRequestUriInvalid);
        }
        outgoing_handler::handle(forwarded, options)
    }
}

/// The action's base URL: the operator's, without a trailing slash.
fn action_base_url() -> Option<String> {
    config(BASE_URL).map(|v| v.trim_end_matches('/').to_string())
}

/// The action's settings: an allowlist of one. The key, the gateway's token and
/// anything else the runtime's store holds are `none` to `get` and absent from
/// `get-all`, so the filter has no second route around it.
impl exports::wasi::config::store::Guest for Adapter {
    fn get(key: String) -> Result<Option<String>, ConfigError> {
        Ok(match key.as_str() {
            ACTION_BASE_URL => action_base_url(),
            _ => None,
        })
    }

    fn get_all() -> Result<Vec<(String, String)>, ConfigError> {
        Ok(action_base_url()
            .map(|v| (ACTION_BASE_URL.to_string(), v))
            .into_iter()
            .collect())
    }
}

impl exports::actionbox::action::log::Guest for Adapter {
    fn write(level: Level, message: String) {
        emit("action", &level, &message);
    }
}

export!(Adapter);
