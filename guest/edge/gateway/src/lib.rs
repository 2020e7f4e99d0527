//! The edge gateway: a `wasi:http/incoming-handler` in front of one smart
//! action, which it imports as the action exports it (`describe`, `invoke`).
//!
//! | route | answer |
//! |---|---|
//! | `POST /{method}` with a JSON object body | 200 and the action's result JSON, or `{"error": {"kind", "message", "request_id"}}` with the same statuses as `actionbox serve` |
//! | `GET /` | the action's manifest as JSON |
//! | `GET /healthz` | `ok` |
//!
//! The action is told a budget of `ACTIONBOX_TIMEOUT_SECS` (10–180, default
//! 10) seconds; the edge runtime's own request limit is what enforces time.
//!
//! Every route but `/healthz` needs `Authorization: Bearer $ACTIONBOX_AUTH_TOKEN`
//! (at least 16 characters): the endpoint spends the merchant's API key. With no
//! token configured it refuses, unless `ACTIONBOX_NO_AUTH=1`.

wit_bindgen::generate!({
    // The repo's contract and WASI packages (wit/), then the edge worlds.
    path: ["../../../wit", "../wit"],
    world: "actionbox:edge/gateway",
    generate_all,
});

// The world `use`s `manifest`, `call-context`, `action-error`: generated at the crate root.
use serde_json::{json, Value};
use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::io::streams::StreamError;

/// Request bodies larger than this are refused (as `actionbox serve` does).
const MAX_BODY: usize = 64 * 1024;

struct Gateway;

struct Reply {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Self {
        Self::raw(status, "application/json", value.to_string().into_bytes())
    }

    fn raw(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    fn error(status: u16, kind: &str, message: &str, request_id: Option<&str>) -> Self {
        Self::json(
            status,
            &json!({"error": {"kind": kind, "message": message, "request_id": request_id}}),
        )
    }
}

impl exports::wasi::http::incoming_handler::Guest for Gateway {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = request.method();
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let path = path.split('?').next().unwrap_or("/").to_string();
        let reply = route(&request, &method, &path);
        eprintln!("edge-gateway: {} {path} -> {}", method_name(&method), reply.status);
        drop(request);
        send(response_out, reply);
    }
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.clone(),
    }
}

/// `None` when the caller may proceed.
fn check_auth(request: &IncomingRequest) -> Option<Reply> {
    let token = std::env::var("ACTIONBOX_AUTH_TOKEN").unwrap_or_default();
    if token.is_empty() {
        if std::env::var("ACTIONBOX_NO_AUTH").as_deref() == Ok("1") {
            return None;
        }
        return Some(Reply::error(
            500,
            "internal",
            "edge not configured: set ACTIONBOX_AUTH_TOKEN (or ACTIONBOX_NO_AUTH=1)",
            None,
        ));
    }
    if token.len() < 16 {
        return Some(Reply::error(
            500,
            "internal",
            "ACTIONBOX_AUTH_TOKEN must be at least 16 characters",
            None,
        ));
    }
    let expected = format!("Bearer {token}");
    let given = request.headers().get("authorization");
    // Constant-time comparison of the one header value.
    let ok = given.len() == 1
        && given[0].len() == expected.len()
        && given[0]
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if ok {
        None
    } else {
        Some(Reply::error(401, "unauthorized", "missing or wrong bearer token", None))
    }
}

fn route(request: &IncomingRequest, method: &Method, path: &str) -> Reply {
    if path != "/healthz" {
        if let Some(refusal) = check_auth(request) {
            return refusal;
        }
    }
    match (method, path) {
        (Method::Get, "/healthz") => Reply::raw(200, "text/plain", b"ok\n".to_vec()),
        (Method::Get, "/") => Reply::json(200, &manifest_json(&describe())),
        (Method::Post, p) if p.len() > 1 && !p[1..].contains('/') => {
            let body = match read_body(request) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let Ok(input) = String::from_utf8(body) else {
                return Reply::error(400, "invalid-input", "the request body is not UTF-8", None);
            };
            run(&p[1..], input)
        }
        (_, "/") | (_, "/healthz") => Reply::error(405, "invalid-input", "use GET", None),
        (_, p) if p.len() > 1 && !p[1..].contains('/') => {
            Reply::error(405, "invalid-input", "use POST /{method} with a JSON body", None)
        }
        _ => Reply::error(404, "not-found", "no such route; POST /{method} or GET /", None),
    }
}

fn run(method: &str, input: String) -> Reply {
    let known = describe()
        .methods
        .iter()
        .any(|m| m.name == method || m.display_name == method);
    if !known {
        return Reply::error(
            404,
            "unknown-method",
            &format!("the action has no method `{method}`"),
            None,
        );
    }
    let ctx = CallContext {
        budget_ms: budget_secs() * 1000,
        invocation_id: format!("{:016x}", wasi::random::random::get_random_u64()),
    };
    match invoke(method, &input, &ctx) {
        Ok(result) => match serde_json::from_str::<Value>(&result) {
            Ok(_) => Reply::raw(200, "application/json", result.into_bytes()),
            Err(_) => Reply::error(
                500,
                "invalid-output",
                "the action returned something that is not JSON",
                None,
            ),
        },
        Err(e) => error_reply(e),
    }
}

fn budget_secs() -> u64 {
    std::env::var("ACTIONBOX_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(10)
        .clamp(10, 180)
}

fn error_reply(e: ActionError) -> Reply {
    match e {
        ActionError::InvalidInput(m) => Reply::error(400, "invalid-input", &m, None),
        ActionError::NotFound(m) => Reply::error(404, "not-found", &m, None),
        ActionError::Unauthorized(m) => Reply::error(502, "unauthorized", &m, None),
        ActionError::Denied(m) => Reply::error(502, "denied", &m, None),
        ActionError::Upstream(u) => Reply::error(502, "upstream", &u.message, u.request_id.as_deref()),
        ActionError::Timeout(m) => Reply::error(504, "timeout", &m, None),
        ActionError::Internal(m) => Reply::error(500, "internal", &m, None),
        ActionError::RateLimited(r) => {
            let mut reply = Reply::error(429, "rate-limited", &r.message, None);
            if let Some(s) = r.retry_after_secs {
                reply.headers.push(("retry-after".into(), s.to_string()));
            }
            reply
        }
    }
}

fn manifest_json(m: &Manifest) -> Value {
    json!({
        "integration": m.integration,
        "version": m.version,
        "methods": m.methods.iter().map(|method| json!({
            "name": method.name,
            "display_name": method.display_name,
            "description": method.description,
            "params": method.params.iter().map(|p| json!({
                "name": p.name,
                "json_type": p.json_type,
                "description": p.description,
                "required": p.required,
                "example": p.example,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "outbound_hosts": m.outbound_hosts,
        "default_base_url": m.default_base_url,
        "credential": m.credential.as_ref().map(|c| json!({"name": c.name, "header": c.header})),
    })
}

fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, Reply> {
    let internal = |what: &str| Reply::error(500, "internal", what, None);
    let body = request.consume().map_err(|()| internal("request body already taken"))?;
    let mut bytes = Vec::new();
    {
        let stream = body.stream().map_err(|()| internal("request stream already taken"))?;
        loop {
            match stream.blocking_read(16 * 1024) {
                Ok(chunk) => {
                    if bytes.len() + chunk.len() > MAX_BODY {
                        return Err(Reply::error(413, "invalid-input", "request body over 64 KiB", None));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(Reply::error(400, "invalid-input", &e.to_debug_string(), None))
                }
            }
        }
    }
    drop(body);
    Ok(bytes)
}

fn send(out: ResponseOutparam, reply: Reply) {
    let mut entries = vec![("content-type".to_string(), reply.content_type.as_bytes().to_vec())];
    entries.extend(reply.headers.into_iter().map(|(k, v)| (k, v.into_bytes())));
    let headers = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(reply.status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    {
        let Ok(stream) = body.write() else {
            return;
        };
        for chunk in reply.body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

export!(Gateway);
