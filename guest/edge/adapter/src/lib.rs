//! The edge adapter: what `actionbox`'s host does for an action, done inside
//! the composed component so that any `wasi:http/proxy` runtime can run it.
//!
//! It exports to the action:
//! - `wasi:http/outgoing-handler`, wrapping the runtime's: only the base URL's
//!   origin is allowed, and requests to it get the credential header added here
//!   (the action never sees the key);
//! - `actionbox:action/settings`: `base-url` only (never the key);
//! - `actionbox:action/log`: lines on stderr, filtered, escaped and capped;
//! - `actionbox:action/types`: types only, so the action's type import is
//!   satisfied inside the composition.
//!
//! Configuration comes from `wasi:cli/environment`:
//!
//! | variable | meaning |
//! |---|---|
//! | `ACTIONBOX_BASE_URL` | `https://host[:port][/prefix]` (plain `http` only for loopback); required |
//! | `ACTIONBOX_API_KEY` | the credential; required; never logged |
//! | `ACTIONBOX_CREDENTIAL_HEADER` | header it goes in; default `API-Key` |
//! | `ACTIONBOX_LOG` | `trace`/`debug`/`info`/`warn`/`error`/`off`; default `info` |

use std::sync::atomic::{AtomicUsize, Ordering};

wit_bindgen::generate!({
    // The repo's contract and WASI packages (wit/), then the edge worlds.
    path: ["../../../wit", "../wit"],
    world: "actionbox:edge/adapter",
    generate_all,
});

use exports::actionbox::action::log::Level;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, FutureIncomingResponse, OutgoingRequest, RequestOptions, Scheme};

const DEFAULT_CREDENTIAL_HEADER: &str = "API-Key";
/// Same caps as the `actionbox` host: 4 KiB per line, 64 KiB per instance.
const MAX_LOG_LINE: usize = 4 * 1024;
const MAX_LOG_TOTAL: usize = 64 * 1024;

static LOGGED: AtomicUsize = AtomicUsize::new(0);

struct Adapter;

fn env(name: &str) -> Option<String> {
    wasi::cli::environment::get_environment()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
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

/// `ACTIONBOX_BASE_URL` as the origin it allows, or why it is unusable.
fn base_origin() -> Result<Origin, String> {
    let base = env("ACTIONBOX_BASE_URL").ok_or("ACTIONBOX_BASE_URL is not set")?;
    let unusable = || format!("ACTIONBOX_BASE_URL `{base}` is not http(s)://host[:port][/prefix]");
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
            "ACTIONBOX_BASE_URL `{base}` uses plain http to a non-loopback host; the key would cross the network unencrypted"
        ));
    }
    Ok(origin)
}

fn credential_header() -> Result<String, String> {
    let name = env("ACTIONBOX_CREDENTIAL_HEADER").unwrap_or_else(|| DEFAULT_CREDENTIAL_HEADER.to_string());
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.chars().all(token) {
        Ok(name)
    } else {
        Err("ACTIONBOX_CREDENTIAL_HEADER is not a valid header name".to_string())
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
    match env("ACTIONBOX_LOG").as_deref().map(str::to_ascii_lowercase).as_deref() {
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
        let key = env("ACTIONBOX_API_KEY").ok_or_else(|| misconfigured("ACTIONBOX_API_KEY is not set".into()))?;

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

impl exports::actionbox::action::settings::Guest for Adapter {
    fn get(key: String) -> Option<String> {
        // An allowlist: the key and anything else in the environment stay out.
        match key.as_str() {
            "base-url" => env("ACTIONBOX_BASE_URL").map(|v| v.trim_end_matches('/').to_string()),
            _ => None,
        }
    }
}

impl exports::actionbox::action::log::Guest for Adapter {
    fn write(level: Level, message: String) {
        emit("action", &level, &message);
    }
}

export!(Adapter);
