//! A smart action built against the old contract, `actionbox:action@0.1.0`
//! (`wit/world.wit` is a copy of it; `wit/deps` links to the repository's
//! WASI packages). It is otherwise valid: `describe` returns a 0.1.0
//! ShipStation-kind manifest and `invoke` answers `{"legacy":true}`, so a
//! host that refuses it at load is judging the contract version, not a
//! broken component. `invoke` also reads `base-url` through the 0.1.0
//! `settings` interface and logs a line, so the component imports what a
//! real 0.1.0 action imports (a host meets the old `settings` and `log`
//! imports before it ever sees the old exports).
//!
//! `make test-components` builds it into
//! `target/legacy-action/legacy_action_0_1_0.wasm`.

wit_bindgen::generate!({
    path: "wit",
    world: "smart-action",
    generate_all,
});

use actionbox::action::log::{write, Level};
use actionbox::action::settings;
use actionbox::action::types::{CredentialSpec, MethodSpec, ParamSpec};

struct LegacyAction;

impl Guest for LegacyAction {
    fn describe() -> Manifest {
        Manifest {
            integration: "shipstation".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            methods: vec![MethodSpec {
                name: "ping".into(),
                display_name: "ping".into(),
                description: "Answers {\"legacy\":true}; makes no request.".into(),
                params: vec![ParamSpec {
                    name: "note".into(),
                    json_type: "string".into(),
                    description: "Ignored.".into(),
                    required: false,
                    example: None,
                }],
            }],
            outbound_hosts: vec!["{base-url}".into()],
            default_base_url: "https://api.shipstation.com".into(),
            credential: Some(CredentialSpec {
                name: "ShipStation API V2 key".into(),
                header: "API-Key".into(),
            }),
        }
    }

    fn invoke(_method: String, _input: String, _ctx: CallContext) -> Result<String, ActionError> {
        let base_url = settings::get("base-url").unwrap_or_default();
        write(
            Level::Info,
            &format!("legacy 0.1.0 action invoked; base-url {base_url:?}"),
        );
        Ok("{\"legacy\":true}".into())
    }
}

export!(LegacyAction);
