//! Test-only action (same `smart-action` world as ShipStation) used to check
//! what the edge composition lets an action do. Methods:
//! - `env`: the environment variables it can see (names only);
//! - `config` `{"key": "name"}`: what `wasi:config/store` answers for `get(key)`,
//!   and the keys `get-all` lists;
//! - `fetch` `{"url": "http://host:port/path", "header": "name"}`: one GET,
//!   optionally carrying its own value for `header`; answers the status or
//!   the `wasi:http` error code.

wit_bindgen::generate!({
    path: "../../wit",
    world: "smart-action",
    generate_all,
});

use exports::actionbox::action::action::{ActionError, CallContext, CredentialSpec, Guest, Manifest, MethodSpec};
use wasi::config::store;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

struct Probe;

fn field<'a>(input: &'a str, name: &str) -> Option<&'a str> {
    input.split(&format!("\"{name}\"")).nth(1)?.split('"').nth(1)
}

fn fetch(input: &str) -> Result<String, ActionError> {
    let url = field(input, "url").ok_or_else(|| ActionError::InvalidInput("url".into()))?;
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| ActionError::InvalidInput("url".into()))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let headers = Fields::new();
    if let Some(h) = field(input, "header") {
        let _ = headers.append(h, b"probe-chosen-value");
    }
    let req = OutgoingRequest::new(headers);
    let _ = req.set_method(&Method::Get);
    let _ = req.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http }));
    let _ = req.set_authority(Some(authority));
    let _ = req.set_path_with_query(Some(if path.is_empty() { "/" } else { path }));
    match outgoing_handler::handle(req, None) {
        Err(code) => Ok(format!("{{\"refused\": {:?}}}", format!("{code:?}"))),
        Ok(pending) => {
            pending.subscribe().block();
            match pending.get() {
                Some(Ok(Ok(resp))) => Ok(format!("{{\"status\": {}}}", resp.status())),
                Some(Ok(Err(code))) => Ok(format!("{{\"failed\": {:?}}}", format!("{code:?}"))),
                _ => Err(ActionError::Internal("no response".into())),
            }
        }
    }
}

/// `{"get": value-or-null, "all": [keys]}`; store errors as `{"error": "..."}`.
fn config(input: &str) -> Result<String, ActionError> {
    let key = field(input, "key").ok_or_else(|| ActionError::InvalidInput("key".into()))?;
    let got = match store::get(key) {
        Ok(Some(v)) => format!("{v:?}"),
        Ok(None) => "null".into(),
        Err(e) => return Ok(format!("{{\"error\": {:?}}}", format!("{e:?}"))),
    };
    let all = match store::get_all() {
        Ok(pairs) => pairs.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
        Err(e) => return Ok(format!("{{\"error\": {:?}}}", format!("{e:?}"))),
    };
    Ok(format!("{{\"get\": {got}, \"all\": {all:?}}}"))
}

impl Guest for Probe {
    fn describe() -> Manifest {
        Manifest {
            integration: "probe".into(),
            version: "0.0.0".into(),
            methods: ["env", "config", "fetch"]
                .iter()
                .map(|m| MethodSpec {
                    name: (*m).into(),
                    display_name: (*m).into(),
                    description: String::new(),
                    params: vec![],
                })
                .collect(),
            default_actions: vec![],
            outbound_hosts: vec!["{base-url}".into()],
            default_base_url: "http://127.0.0.1:9".into(),
            credential: Some(CredentialSpec {
                name: "key".into(),
                header: "API-Key".into(),
            }),
        }
    }

    fn invoke(method: String, input: String, _ctx: CallContext) -> Result<String, ActionError> {
        match method.as_str() {
            "env" => {
                let names: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                Ok(format!(
                    "{{\"env\": {names:?}, \"args\": {:?}}}",
                    std::env::args().collect::<Vec<_>>()
                ))
            }
            "config" => config(&input),
            "fetch" => fetch(&input),
            _ => Err(ActionError::InvalidInput(method)),
        }
    }

    fn test_connection(_ctx: CallContext) -> Result<String, ActionError> {
        Ok("{}".into())
    }
}

export!(Probe);
