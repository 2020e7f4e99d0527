//! {{name}}: a smart action, written in Rust with the `actionbox-guest` SDK
//! (vendored in `sdk/`) and built for `wasm32-wasip2`.
//!
//! `getItem` (machine name `get-item`) takes `{"id": "42"}`, GETs
//! `{base_url}/items/42` and answers `{"id": "42", "item": <the API's JSON>}`.
//!
//! - The base URL is the operator's `base_url` setting; this action has no
//!   default of its own (`settings::base_url(None)`), so it never sends
//!   anything anywhere the operator did not name.
//! - The API key never passes through here: the host adds it, in the header
//!   the manifest asks for (`X-Api-Key`), to requests bound for the base URL's host.
//! - Every failure is one of the contract's typed errors: `Client::get_json`
//!   maps 401/403 to `unauthorized`, 404 to `not-found`, 429 to
//!   `rate-limited`, anything else to `upstream` (`ActionError::from_response`).
//! - `Client` keeps every timeout inside the call's budget (`ctx.budget_ms`),
//!   so a slow API ends in `timeout` before the host stops the call.

use actionbox_guest::http::{encode_component, Client};
use actionbox_guest::{export_action, json, settings};
use actionbox_guest::{Action, ActionError, CallContext, DefaultAction, JsonType, Manifest, MethodSpec, ParamSpec};
use serde::Deserialize;

/// The integration kind this action belongs to: the project's name.
const KIND: &str = "{{name}}";
/// What an assistant is told `getItem` does.
const GET_ITEM_DESCRIPTION: &str = "Get one item from the {{name}} API by its id.";
/// Longest item id accepted.
const MAX_ID_CHARS: usize = 64;

struct Items;

/// The input of `getItem`.
#[derive(Deserialize)]
struct GetItem {
    id: String,
}

impl Action for Items {
    fn describe() -> Manifest {
        let get_item = MethodSpec::new("get-item", "getItem", GET_ITEM_DESCRIPTION)
            .param(ParamSpec::required("id", JsonType::String, "The item's id, e.g. \"42\"").example("\"42\""));
        Manifest::new(KIND, env!("CARGO_PKG_VERSION"))
            .method(get_item)
            .default_action(
                DefaultAction::new("getItem", "getItem")
                    .response_instructions("Answer with the item's details in one or two sentences; never invent any."),
            )
            // Only the host of the operator's base URL.
            .outbound_host("{base-url}")
            .credential(format!("{KIND} API key"), "X-Api-Key")
    }

    fn invoke(method: String, input: String, ctx: CallContext) -> Result<String, ActionError> {
        Self::describe().resolve(&method)?;
        let input: GetItem = json::parse_input(&input)?;
        let id = input.id.trim();
        if id.is_empty() || id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
            return Err(ActionError::InvalidInput(format!(
                "id must be 1-{MAX_ID_CHARS} printable characters, e.g. \"42\""
            )));
        }
        actionbox_guest::info!("{}: getItem {id}", ctx.invocation_id);
        let client = Client::new(settings::base_url(None)?, &ctx);
        let item: serde_json::Value = client.get_json(&format!("/items/{}", encode_component(id)))?;
        json::to_output(&serde_json::json!({ "id": id, "item": item }))
    }

    fn test_connection(ctx: CallContext) -> Result<String, ActionError> {
        let client = Client::new(settings::base_url(None)?, &ctx);
        client.get("/items?limit=1")?.error_for_status("GET /items")?;
        Ok(r#"{"ok":true,"message":"the API accepted the key (GET /items?limit=1 answered 2xx)"}"#.into())
    }
}

export_action!(Items);
