//! The edge gateway: a `wasi:http/incoming-handler` in front of one smart
//! action, which it imports as the action exports it (`actionbox:action/action`).
//!
//! | route | answer |
//! |---|---|
//! | `POST /{method}` with a JSON object body | 200 and the action's result JSON, or `{"error": {"kind", "message", "request_id"}}` with the same statuses as `actionbox serve` |
//! | `GET /` | the action's manifest as JSON |
//! | `GET /test-connection` | the action's `test-connection` (the integration's Test button): its JSON, or an error as above |
//! | `GET /healthz` | `ok` |
//!
//! Configuration comes from the runtime's `wasi:config/store`:
//!
//! | key | meaning |
//! |---|---|
//! | `actionbox_auth_token` | bearer token (at least 16 characters) every route but `/healthz` requires |
//! | `actionbox_no_auth` | `1` serves without a token (local tests only) |
//! | `actionbox_timeout_secs` | the budget the action is told, 10–180, default 10 |
//!
//! The token is required because the endpoint spends the merchant's API key:
//! with none configured every route but `/healthz` refuses (500) instead of
//! serving openly. The budget is only *told* to the action; the edge
//! runtime's own request limit is what enforces time.

wit_bindgen::generate!({
    // The repo's contract and WASI packages (wit/), then the edge worlds.
    path: ["../../../wit", "../wit"],
    world: "actionbox:edge/gateway",
    generate_all,
});

use actionbox::action::action::{
    describe, invoke, test_connection, ActionError, CallContext, DefaultAction, Execution, JsonType, Manifest, Trigger,
};
use serde_json::{json, Value};
use wasi::config::store;
use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::io::streams::StreamError;

/// Request bodies larger than this are refused (as `actionbox serve` does).
const MAX_BODY: usize = 64 * 1024;

/// The runtime's configuration keys this gateway reads (names Spin accepts as
/// variable names: lower case, `_` separators).
const AUTH_TOKEN: &str = "actionbox_auth_token";
const NO_AUTH: &str = "actionbox_no_auth";
const TIMEOUT_SECS: &str = "actionbox_timeout_secs";

/// A value from the runtime's configuration, trimmed; `None` when unset,
/// empty or unreadable (each caller then falls back to its safe default:
/// refuse to serve, or the shortest budget).
fn config(key: &str) -> Option<String> {
    store::get(key)
        .ok()
        .flatten()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

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
    let Some(token) = config(AUTH_TOKEN) else {
        if config(NO_AUTH).as_deref() == Some("1") {
            return None;
        }
        return Some(Reply::error(
            500,
            "internal",
            &format!("edge not configured: set {AUTH_TOKEN} (or {NO_AUTH}=1)"),
            None,
        ));
    };
    if token.len() < 16 {
        return Some(Reply::error(
            500,
            "internal",
            &format!("{AUTH_TOKEN} must be at least 16 characters"),
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
        (Method::Get, "/test-connection") => json_result(test_connection(&call_context())),
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
        (_, "/") | (_, "/healthz") | (_, "/test-connection") => Reply::error(405, "invalid-input", "use GET", None),
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
    json_result(invoke(method, &input, &call_context()))
}

/// What the action is told about this call: its budget and an id for its logs.
fn call_context() -> CallContext {
    CallContext {
        budget_ms: budget_secs() * 1000,
        invocation_id: format!("{:016x}", wasi::random::random::get_random_u64()),
    }
}

/// An action's answer as a reply: its JSON as is, or the error with the
/// status `actionbox serve` uses; a result that is not JSON is the action's bug.
fn json_result(result: Result<String, ActionError>) -> Reply {
    match result {
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
    config(TIMEOUT_SECS)
        .and_then(|v| v.parse::<u64>().ok())
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
                "json_type": json_type_name(p.json_type),
                "description": p.description,
                "required": p.required,
                "example": p.example,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "default_actions": m.default_actions.iter().map(default_action_json).collect::<Vec<_>>(),
        "outbound_hosts": m.outbound_hosts,
        "default_base_url": m.default_base_url,
        "credential": m.credential.as_ref().map(|c| json!({"name": c.name, "header": c.header})),
    })
}

fn default_action_json(a: &DefaultAction) -> Value {
    json!({
        "name": a.name,
        "method": a.method,
        "description": a.description,
        "execution": match a.execution {
            Execution::SessionStart => "session-start",
            Execution::DuringInteraction => "during-interaction",
            Execution::Both => "both",
        },
        "trigger": match a.trigger {
            Trigger::Inbound => "inbound",
            Trigger::Outbound => "outbound",
            Trigger::Both => "both",
        },
        "parameter_descriptions": a.parameter_descriptions.iter()
            .map(|d| json!({"param": d.param, "description": d.description}))
            .collect::<Vec<_>>(),
        "response_instructions": a.response_instructions,
    })
}

/// The JSON Schema name of a parameter type, as the WIT spells it.
fn json_type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::String => "string",
        JsonType::Integer => "integer",
        JsonType::Number => "number",
        JsonType::Boolean => "boolean",
        JsonType::Object => "object",
        JsonType::Array => "array",
    }
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
