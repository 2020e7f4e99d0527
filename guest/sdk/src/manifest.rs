//! Builders on the contract's manifest types, so `describe` is a few chained
//! calls instead of struct literals with every field spelled out, and
//! [`Manifest::resolve`] to find the method `invoke` was asked for.
//!
//! ```
//! use actionbox_guest::{DefaultAction, JsonType, Manifest, MethodSpec, ParamSpec, Trigger};
//!
//! let manifest = Manifest::new("items", "1.0.0")
//!     .method(
//!         MethodSpec::new("get-item", "getItem", "Look up an item by its id.")
//!             .param(ParamSpec::required("id", JsonType::String, "The item's id").example("\"42\"")),
//!     )
//!     .default_action(DefaultAction::new("getItem", "getItem").trigger(Trigger::Both))
//!     .outbound_host("{base-url}")
//!     .credential("Items API key", "X-Api-Key");
//! assert_eq!(manifest.resolve("getItem").ok().map(|m| m.name.as_str()), Some("get-item"));
//! ```
//!
//! The host validates what `describe` returns (names `[A-Za-z0-9_-]`, 1-64
//! bytes; bounded descriptions and counts) and refuses a component whose
//! manifest breaks a rule; `actionbox check` shows which.

use crate::{ActionError, CredentialSpec, DefaultAction, Execution, JsonType, Manifest, MethodSpec, ParamSpec};
use crate::{ParameterDescription, Trigger};

impl Manifest {
    /// A manifest for integration kind `integration` (e.g. `shipstation`) at
    /// `version` (usually `env!("CARGO_PKG_VERSION")`), offering nothing yet:
    /// no methods, default actions, outbound hosts or credential, and an
    /// empty default base URL (the operator must configure one).
    pub fn new(integration: impl Into<String>, version: impl Into<String>) -> Self {
        Manifest {
            integration: integration.into(),
            version: version.into(),
            methods: Vec::new(),
            default_actions: Vec::new(),
            outbound_hosts: Vec::new(),
            default_base_url: String::new(),
            credential: None,
        }
    }

    /// Offer `method`.
    pub fn method(mut self, method: MethodSpec) -> Self {
        self.methods.push(method);
        self
    }

    /// Offer `action` as a smart action every integration of this kind gets
    /// unless the operator turns default actions off or replaces it.
    pub fn default_action(mut self, action: DefaultAction) -> Self {
        self.default_actions.push(action);
        self
    }

    /// Ask to reach `host`: a host name, or `{base-url}` for "the host of the
    /// base URL the operator configures". The host allows only hosts both
    /// declared here and named by the operator's base URL.
    pub fn outbound_host(mut self, host: impl Into<String>) -> Self {
        self.outbound_hosts.push(host.into());
        self
    }

    /// Where the action expects its kind's API when the operator sets no base
    /// URL, e.g. `https://api.shipstation.com`. A request, not a setting: a
    /// host refuses a component whose default disagrees with its kind registry.
    pub fn default_base_url(mut self, url: impl Into<String>) -> Self {
        self.default_base_url = url.into();
        self
    }

    /// Ask the host to inject the secret called `name` (e.g. `Items API key`)
    /// into requests to the base URL's host, in header `header`.
    pub fn credential(mut self, name: impl Into<String>, header: impl Into<String>) -> Self {
        self.credential = Some(CredentialSpec {
            name: name.into(),
            header: header.into(),
        });
        self
    }

    /// The method `invoke` was asked for, by machine name (`get-item`) or
    /// display name (`getItem`); `invalid-input` listing what is offered when
    /// there is none, so a caller can correct itself.
    pub fn resolve(&self, method: &str) -> Result<&MethodSpec, ActionError> {
        if let Some(found) = self
            .methods
            .iter()
            .find(|m| m.name == method || m.display_name == method)
        {
            return Ok(found);
        }
        let offered: Vec<String> = self
            .methods
            .iter()
            .map(|m| format!("{} ({})", m.display_name, m.name))
            .collect();
        Err(ActionError::InvalidInput(format!(
            "unknown method `{method}`; this action offers: {}",
            offered.join(", ")
        )))
    }
}

impl MethodSpec {
    /// A method with machine name `name` (kebab-case, e.g. `get-item`), the
    /// `display_name` people and assistants see (e.g. `getItem`) and a
    /// `description` written for the assistant; no parameters yet.
    pub fn new(name: impl Into<String>, display_name: impl Into<String>, description: impl Into<String>) -> Self {
        MethodSpec {
            name: name.into(),
            display_name: display_name.into(),
            description: description.into(),
            params: Vec::new(),
        }
    }

    /// Add `param` to the method's input object.
    pub fn param(mut self, param: ParamSpec) -> Self {
        self.params.push(param);
        self
    }
}

impl ParamSpec {
    /// A property the input object must contain.
    pub fn required(name: impl Into<String>, json_type: JsonType, description: impl Into<String>) -> Self {
        ParamSpec {
            name: name.into(),
            json_type,
            description: description.into(),
            required: true,
            example: None,
        }
    }

    /// A property the input object may omit.
    pub fn optional(name: impl Into<String>, json_type: JsonType, description: impl Into<String>) -> Self {
        ParamSpec {
            required: false,
            ..ParamSpec::required(name, json_type, description)
        }
    }

    /// An example value as JSON text, e.g. `"\"1001\""` for a string; the
    /// host refuses an example that is not valid JSON.
    pub fn example(mut self, json: impl Into<String>) -> Self {
        self.example = Some(json.into());
        self
    }
}

impl DefaultAction {
    /// A default action named `name` (the tool name the assistant sees) that
    /// calls `method` (a method's name or display name), run when the
    /// assistant decides during the conversation, for inbound messages, with
    /// the method's own descriptions and no response instructions.
    pub fn new(name: impl Into<String>, method: impl Into<String>) -> Self {
        DefaultAction {
            name: name.into(),
            method: method.into(),
            description: None,
            execution: Execution::DuringInteraction,
            trigger: Trigger::Inbound,
            parameter_descriptions: Vec::new(),
            response_instructions: None,
        }
    }

    /// What the assistant is told the action does, instead of the method's description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// When the action runs.
    pub fn execution(mut self, execution: Execution) -> Self {
        self.execution = execution;
        self
    }

    /// Which messages the action is offered for.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Tell the assistant `description` about parameter `param` instead of
    /// the method's default description.
    pub fn parameter_description(mut self, param: impl Into<String>, description: impl Into<String>) -> Self {
        self.parameter_descriptions.push(ParameterDescription {
            param: param.into(),
            description: description.into(),
        });
        self
    }

    /// How the assistant should use the result when it answers.
    pub fn response_instructions(mut self, text: impl Into<String>) -> Self {
        self.response_instructions = Some(text.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Manifest {
        Manifest::new("items", "1.0.0")
            .method(
                MethodSpec::new("get-item", "getItem", "Look up an item.")
                    .param(ParamSpec::required("id", JsonType::String, "The id").example("\"42\""))
                    .param(ParamSpec::optional("verbose", JsonType::Boolean, "More detail")),
            )
            .method(MethodSpec::new("list-items", "listItems", "List items."))
    }

    #[test]
    fn builders_fill_every_field_of_the_contract_types() {
        let m = items()
            .default_action(
                DefaultAction::new("getItem", "get-item")
                    .description("Find an item")
                    .execution(Execution::Both)
                    .trigger(Trigger::Outbound)
                    .parameter_description("id", "The item id from the order page")
                    .response_instructions("Quote the item's name."),
            )
            .outbound_host("{base-url}")
            .default_base_url("https://api.example.com")
            .credential("Items API key", "X-Api-Key");
        assert_eq!(m.integration, "items");
        assert_eq!(m.version, "1.0.0");
        assert_eq!(m.methods.len(), 2);
        let id = &m.methods[0].params[0];
        assert!(id.required);
        assert_eq!(id.example.as_deref(), Some("\"42\""));
        assert!(!m.methods[0].params[1].required);
        let d = &m.default_actions[0];
        assert_eq!(d.description.as_deref(), Some("Find an item"));
        assert_eq!(d.execution, Execution::Both);
        assert_eq!(d.trigger, Trigger::Outbound);
        assert_eq!(d.parameter_descriptions[0].param, "id");
        assert_eq!(d.response_instructions.as_deref(), Some("Quote the item's name."));
        assert_eq!(m.outbound_hosts, ["{base-url}"]);
        assert_eq!(m.default_base_url, "https://api.example.com");
        let c = m.credential.as_ref().map(|c| (c.name.as_str(), c.header.as_str()));
        assert_eq!(c, Some(("Items API key", "X-Api-Key")));
    }

    #[test]
    fn a_new_manifest_asks_for_nothing() {
        let m = Manifest::new("items", "1.0.0");
        assert!(m.methods.is_empty() && m.default_actions.is_empty() && m.outbound_hosts.is_empty());
        assert_eq!(m.default_base_url, "");
        assert!(m.credential.is_none());
    }

    #[test]
    fn a_default_action_runs_during_interaction_for_inbound_messages_unless_told() {
        let d = DefaultAction::new("getItem", "getItem");
        assert_eq!(
            (d.execution, d.trigger),
            (Execution::DuringInteraction, Trigger::Inbound)
        );
        assert!(d.description.is_none() && d.response_instructions.is_none());
    }

    #[test]
    fn methods_resolve_by_either_name() {
        let m = items();
        assert_eq!(m.resolve("getItem").ok().map(|s| s.name.as_str()), Some("get-item"));
        assert_eq!(
            m.resolve("list-items").ok().map(|s| s.name.as_str()),
            Some("list-items")
        );
    }

    #[test]
    fn an_unknown_method_is_invalid_input_listing_what_is_offered() {
        match items().resolve("GetItem") {
            Err(ActionError::InvalidInput(message)) => assert_eq!(
                message,
                "unknown method `GetItem`; this action offers: getItem (get-item), listItems (list-items)"
            ),
            other => panic!("expected invalid-input, got {other:?}"),
        }
    }
}
