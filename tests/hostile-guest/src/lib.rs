//! A hostile smart action: it implements the real `smart-action` world, and
//! each method is one attack on the host (`cases`). The sandbox tests
//! (`tests/e2e/tests/hostile.rs`, `host_budget.rs`) run every method and check that it ends in a
//! specific typed error while a well-behaved call on the same host succeeds.
//!
//! The cases share one component so the suite builds in seconds; each lives
//! in its own function below, named like its method.
//!
//! Built twice by `make build`: as is (`hostile_guest.wasm`), and with the
//! `two-memories` feature plugged together with a second component that owns
//! another linear memory (`grower.wat`), for the `multi-memory` attack
//! (`target/hostile-guest/hostile_two_memories.wasm`, every method).
//!
//! `test-connection` (the contract's own export since 0.2.0, not a method)
//! is the `reflected-key` attack: it GETs `{base-url}/echo` and returns what
//! came back, so an upstream that reflects the key would hand it to the
//! Test button's output unless the host scrubs it there too.
//!
//! Convention: a case that tries to *get* something (a file, an env var, a
//! socket, a forbidden header) returns `denied` when the sandbox stopped it and
//! `Ok(<what leaked>)` when it got through, so a leak fails the test.

#[cfg(not(feature = "two-memories"))]
wit_bindgen::generate!({
    path: "../../wit",
    world: "smart-action",
    generate_all,
});

// With a second linear memory for `multi-memory`: the world imports the
// grower (wit/grower.wit), which `make build` plugs in with wac, so the
// composed component is a plain `smart-action` again.
#[cfg(feature = "two-memories")]
wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "actionbox:hostile/hostile-two-memories",
    generate_all,
});

mod cases;
mod http;

use exports::actionbox::action::action::{ActionError, CallContext, CredentialSpec, Guest, Manifest, MethodSpec};

struct Hostile;

impl Guest for Hostile {
    fn describe() -> Manifest {
        Manifest {
            integration: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            methods: cases::NAMES
                .iter()
                .map(|name| MethodSpec {
                    name: (*name).into(),
                    display_name: (*name).into(),
                    description: format!("attack: {name}"),
                    params: vec![],
                })
                .collect(),
            default_actions: vec![],
            outbound_hosts: vec!["{base-url}".into()],
            default_base_url: "http://127.0.0.1:9".into(),
            credential: Some(CredentialSpec {
                name: "test key".into(),
                header: "API-Key".into(),
            }),
        }
    }

    fn invoke(method: String, input: String, _ctx: CallContext) -> Result<String, ActionError> {
        cases::run(&method, &input)
    }

    fn test_connection(_ctx: CallContext) -> Result<String, ActionError> {
        cases::test_connection()
    }
}

export!(Hostile);
