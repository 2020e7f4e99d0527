//! Test-only action (same `smart-action` world as ShipStation) used to check
//! what the edge composition lets an action do. Methods:
//! - `env`: the environment variables it can see (names only);
//! - `fetch` `{"url": "http://host:port/path", "header": "name"}`: one GET,
//!   optionally carrying its own value for `header`; answers the status or
//!   the `wasi:http` error code.

wit_bindgen::generate!({
    path: "../../wit",
    world: "smart-action",
    generate_all,
});

use actionbox::action::types::{CredentialSpec, MethodSpec};
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

impl Guest for Probe {
    fn describe() -> Manifest {
        Manifest {
            integration: "probe".into(),
            version: "0.0.0".into(),
            methods: ["env", "fetch"]
                .iter()
                .map(|m| MethodSpec {
                    name: (*m).into(),
                    display_name: (*m).into(),
                    description: String::new(),
                    params: vec![],
                })
                .collect(),
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
            "fetch" => fetch(&input),
            _ => Err(ActionError::InvalidInput(method)),
        }
    }
}

export!(Probe);
