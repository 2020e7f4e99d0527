//! The host's view of an action's manifest (from `describe`), as JSON, and
//! the checks it passes before anything is built from it.
//!
//! A manifest is guest output: the host turns it into tool definitions,
//! schemas and messages, so [`Manifest::validate`] checks every name and
//! bounds every count and length (the `MAX_*` constants) before use, and
//! quotes guest text in its refusals only escaped and cut. What it says about
//! where the key goes is a request the kind registry checks (`kinds.rs`).
//!
//! The module is longer than most (about 500 lines before its tests) on
//! purpose: each type, its bound and its check stay together, so a field
//! cannot be added without its limit in view.

use crate::bindings::types;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// JSON Schema type of a parameter (the contract's `json-type` enum).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    /// `string`
    String,
    /// `integer`
    Integer,
    /// `number`
    Number,
    /// `boolean`
    Boolean,
    /// `object`
    Object,
    /// `array`
    Array,
}

impl JsonType {
    /// The JSON Schema name, e.g. `string`.
    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
            JsonType::Object => "object",
            JsonType::Array => "array",
        }
    }
}

/// When an action runs in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Execution {
    /// When a conversation starts, with what the session context provides.
    SessionStart,
    /// When the assistant decides to call it during the conversation.
    #[default]
    DuringInteraction,
    /// Both.
    Both,
}

/// Which messages an action is offered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// While answering a customer's inbound message.
    #[default]
    Inbound,
    /// While composing an outbound reply (e.g. agent-initiated).
    Outbound,
    /// Both.
    Both,
}

/// A parameter of a method.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ParamSpec {
    /// JSON property name.
    pub name: String,
    /// JSON Schema type.
    pub json_type: JsonType,
    /// Default description.
    pub description: String,
    /// Whether it must be given.
    pub required: bool,
    /// Example value, as JSON text.
    pub example: Option<String>,
}

/// A method of the action.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MethodSpec {
    /// Machine name.
    pub name: String,
    /// Name users see.
    pub display_name: String,
    /// What it does.
    pub description: String,
    /// Input properties.
    pub params: Vec<ParamSpec>,
}

/// The credential the host injects.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CredentialSpec {
    /// Human name.
    pub name: String,
    /// Header it goes in.
    pub header: String,
}

/// A smart action the component offers by default (the contract's
/// `default-action`): every integration of its kind gets it unless the
/// operator turns defaults off or a custom action of the same name replaces it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DefaultAction {
    /// Tool name, e.g. `trackOrder`.
    pub name: String,
    /// The method it calls (name or display name).
    pub method: String,
    /// What the assistant is told it does; `None` = the method's description.
    pub description: Option<String>,
    /// When it runs.
    pub execution: Execution,
    /// Which messages it is offered for.
    pub trigger: Trigger,
    /// Parameter name → description replacing the method's default.
    pub parameter_descriptions: BTreeMap<String, String>,
    /// How the assistant should use the result.
    pub response_instructions: Option<String>,
}

/// What an action is and needs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Manifest {
    /// Integration kind.
    pub integration: String,
    /// Action version.
    pub version: String,
    /// Methods offered.
    pub methods: Vec<MethodSpec>,
    /// Smart actions offered by default.
    pub default_actions: Vec<DefaultAction>,
    /// Hosts it needs (`{base-url}` = the configured base URL's host).
    pub outbound_hosts: Vec<String>,
    /// Default base URL.
    pub default_base_url: String,
    /// Credential the host injects.
    pub credential: Option<CredentialSpec>,
}

// Bounds on a manifest. It is guest output that the host turns into tool
// definitions (sent to every assistant, kept per catalog entry), schemas and
// messages, so an action must not be able to make any of those arbitrarily
// large. Each bound is far above what a real integration needs.

/// Most methods one action may offer: a tool list longer than this is no
/// longer one integration, and every method becomes a tool definition.
pub const MAX_METHODS: usize = 64;
/// Most parameters one method may take (each becomes a schema property).
pub const MAX_PARAMS_PER_METHOD: usize = 32;
/// Longest integration id, method or parameter name, and version, in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// Longest method description, in bytes: a few paragraphs for an assistant.
pub const MAX_METHOD_DESCRIPTION_BYTES: usize = 4 * 1024;
/// Longest parameter description, in bytes.
pub const MAX_PARAM_DESCRIPTION_BYTES: usize = 1024;
/// Longest parameter example (JSON text), in bytes.
pub const MAX_EXAMPLE_BYTES: usize = 1024;
/// Most default actions one component may offer: each becomes a tool on
/// every integration of its kind.
pub const MAX_DEFAULT_ACTIONS: usize = 16;
/// Longest default action description or response instructions, in bytes:
/// text every assistant is sent with the tool.
pub const MAX_INSTRUCTIONS_BYTES: usize = 4 * 1024;
/// Most outbound host entries: an integration talks to a handful of hosts.
pub const MAX_OUTBOUND_HOSTS: usize = 16;
/// Longest outbound host entry, in bytes: the DNS limit for a name.
pub const MAX_HOST_BYTES: usize = 253;
/// Longest default base URL, in bytes: a URL with room for a path prefix.
pub const MAX_BASE_URL_BYTES: usize = 2 * 1024;
/// Longest credential name (what the operator is asked for), in bytes.
pub const MAX_CREDENTIAL_NAME_BYTES: usize = 128;
/// Longest credential header name, in bytes.
pub const MAX_CREDENTIAL_HEADER_BYTES: usize = 64;
/// How much of a refused guest string an error message quotes, in bytes
/// (escaped by [`guest_text`](crate::error::guest_text), then cut).
pub const QUOTED_GUEST_TEXT_BYTES: usize = 64;

/// Whether `name` is an id the host accepts for kinds, methods, parameters
/// and actions: 1–64 of `A-Z a-z 0-9 _ -`, the rule OpenAI and MCP clients
/// share for tool names (so any of them can become one).
pub fn is_identifier(name: &str) -> bool {
    (1..=MAX_ID_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Guest text as an error message may quote it: escaped and short, so a
/// refusal never prints terminal escapes or megabytes.
fn quoted(text: &str) -> String {
    crate::error::guest_text(text, QUOTED_GUEST_TEXT_BYTES)
}

/// Refuse `text` (called `what`) when it is longer than `max` bytes.
fn ensure_len(what: &dyn std::fmt::Display, text: &str, max: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        text.len() <= max,
        "{what} is {} bytes, over the limit of {max} bytes",
        text.len()
    );
    Ok(())
}

/// Refuse `count` items of `what` when there are more than `max`.
fn ensure_count(what: &dyn std::fmt::Display, count: usize, max: usize) -> anyhow::Result<()> {
    anyhow::ensure!(count <= max, "{what}: {count}, over the limit of {max}");
    Ok(())
}

impl Manifest {
    /// Check what an untrusted action says about itself before the host
    /// builds tool schemas, headers or messages from it: the shape (names,
    /// types, JSON examples) and the size (every `MAX_*` bound above). An
    /// error quotes guest text only through [`guest_text`](crate::error::guest_text),
    /// cut to [`QUOTED_GUEST_TEXT_BYTES`].
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(
            is_identifier(&self.integration),
            "the manifest's integration id `{}` ({} bytes) is not 1-{MAX_ID_BYTES} of [A-Za-z0-9_-]",
            quoted(&self.integration),
            self.integration.len()
        );
        ensure_len(&"the manifest's version", &self.version, MAX_ID_BYTES)?;
        ensure_count(&"the manifest's number of methods", self.methods.len(), MAX_METHODS)?;
        ensure!(!self.methods.is_empty(), "the manifest offers no methods");
        ensure_count(
            &"the manifest's number of outbound hosts",
            self.outbound_hosts.len(),
            MAX_OUTBOUND_HOSTS,
        )?;
        for host in &self.outbound_hosts {
            ensure_len(&format_args!("outbound host `{}`", quoted(host)), host, MAX_HOST_BYTES)?;
        }
        ensure_len(
            &format_args!("the default base URL `{}`", quoted(&self.default_base_url)),
            &self.default_base_url,
            MAX_BASE_URL_BYTES,
        )?;
        self.validate_methods()?;
        self.validate_default_actions()?;
        if let Some(c) = &self.credential {
            ensure_len(&"the credential name", &c.name, MAX_CREDENTIAL_NAME_BYTES)?;
            ensure_len(
                &format_args!("the credential header `{}`", quoted(&c.header)),
                &c.header,
                MAX_CREDENTIAL_HEADER_BYTES,
            )?;
            ensure!(
                http::HeaderName::from_bytes(c.header.as_bytes()).is_ok(),
                "the credential header `{}` is not a valid HTTP header name",
                quoted(&c.header)
            );
        }
        Ok(())
    }

    /// Check the methods: tool-style names (a method's name and display name
    /// may be the same), each used once, bounded descriptions and parameters.
    fn validate_methods(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        let mut names = std::collections::BTreeSet::new();
        for m in &self.methods {
            let own: std::collections::BTreeSet<&String> = [&m.name, &m.display_name].into();
            for name in own {
                ensure!(
                    is_identifier(name),
                    "method name `{}` ({} bytes) is not 1-{MAX_ID_BYTES} of [A-Za-z0-9_-]",
                    quoted(name),
                    name.len()
                );
                ensure!(names.insert(name.clone()), "method name `{name}` is used twice");
            }
            ensure_len(
                &format_args!("method `{}`: the description", m.name),
                &m.description,
                MAX_METHOD_DESCRIPTION_BYTES,
            )?;
            ensure_count(
                &format_args!("method `{}`: number of parameters", m.name),
                m.params.len(),
                MAX_PARAMS_PER_METHOD,
            )?;
            m.validate_params()?;
        }
        Ok(())
    }

    /// Check the default actions: bounded in number and size, named like
    /// tools, each naming a method and parameters the manifest declares.
    fn validate_default_actions(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure_count(
            &"the manifest's number of default actions",
            self.default_actions.len(),
            MAX_DEFAULT_ACTIONS,
        )?;
        let mut names = std::collections::BTreeSet::new();
        for a in &self.default_actions {
            ensure!(
                is_identifier(&a.name),
                "default action name `{}` ({} bytes) is not 1-{MAX_ID_BYTES} of [A-Za-z0-9_-]",
                quoted(&a.name),
                a.name.len()
            );
            ensure!(names.insert(&a.name), "default action `{}` is declared twice", a.name);
            let Some(method) = self.method(&a.method) else {
                anyhow::bail!(
                    "default action `{}` calls method `{}`, which the manifest does not offer; it offers: {}",
                    a.name,
                    quoted(&a.method),
                    self.method_list()
                );
            };
            for (what, text) in [
                ("description", &a.description),
                ("response instructions", &a.response_instructions),
            ] {
                if let Some(text) = text {
                    ensure_len(
                        &format_args!("default action `{}`: the {what}", a.name),
                        text,
                        MAX_INSTRUCTIONS_BYTES,
                    )?;
                }
            }
            for (param, description) in &a.parameter_descriptions {
                ensure!(
                    method.params.iter().any(|p| &p.name == param),
                    "default action `{}` describes parameter `{}`, which method `{}` does not take",
                    a.name,
                    quoted(param),
                    method.name
                );
                ensure_len(
                    &format_args!("default action `{}`: parameter `{param}`: the description", a.name),
                    description,
                    MAX_PARAM_DESCRIPTION_BYTES,
                )?;
            }
        }
        Ok(())
    }

    /// Bytes of text the manifest holds (every string summed), for callers
    /// that keep or forward manifests and want to account for them.
    pub fn approx_bytes(&self) -> usize {
        let methods: usize = self
            .methods
            .iter()
            .map(|m| {
                let params: usize = m
                    .params
                    .iter()
                    .map(|p| p.name.len() + p.description.len() + p.example.as_ref().map_or(0, String::len))
                    .sum();
                m.name.len() + m.display_name.len() + m.description.len() + params
            })
            .sum();
        let defaults: usize = self
            .default_actions
            .iter()
            .map(|a| {
                a.name.len()
                    + a.method.len()
                    + a.description.as_ref().map_or(0, String::len)
                    + a.response_instructions.as_ref().map_or(0, String::len)
                    + a.parameter_descriptions
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            })
            .sum();
        let hosts: usize = self.outbound_hosts.iter().map(String::len).sum();
        let credential = self.credential.as_ref().map_or(0, |c| c.name.len() + c.header.len());
        self.integration.len()
            + self.version.len()
            + methods
            + defaults
            + hosts
            + self.default_base_url.len()
            + credential
    }

    /// The method called `name` (machine or display name).
    pub fn method(&self, name: &str) -> Option<&MethodSpec> {
        self.methods.iter().find(|m| m.name == name || m.display_name == name)
    }

    /// `trackOrder (track-order), …` for messages.
    pub fn method_list(&self) -> String {
        self.methods
            .iter()
            .map(|m| format!("{} ({})", m.display_name, m.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl MethodSpec {
    /// Check the parameters: tool-style names, each once, bounded
    /// descriptions, and examples that are bounded JSON.
    fn validate_params(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        let mut params = std::collections::BTreeSet::new();
        for p in &self.params {
            ensure!(
                is_identifier(&p.name),
                "method `{}`: parameter name `{}` ({} bytes) is not 1-{MAX_ID_BYTES} of [A-Za-z0-9_-]",
                self.name,
                quoted(&p.name),
                p.name.len()
            );
            ensure!(
                params.insert(&p.name),
                "method `{}`: parameter `{}` is declared twice",
                self.name,
                p.name
            );
            ensure_len(
                &format_args!("method `{}`: parameter `{}`: the description", self.name, p.name),
                &p.description,
                MAX_PARAM_DESCRIPTION_BYTES,
            )?;
            if let Some(example) = &p.example {
                ensure_len(
                    &format_args!("method `{}`: parameter `{}`: the example", self.name, p.name),
                    example,
                    MAX_EXAMPLE_BYTES,
                )?;
                ensure!(
                    serde_json::from_str::<serde_json::Value>(example).is_ok(),
                    "method `{}`: parameter `{}` has an example that is not JSON",
                    self.name,
                    p.name
                );
            }
        }
        Ok(())
    }
}

impl From<types::JsonType> for JsonType {
    fn from(t: types::JsonType) -> Self {
        match t {
            types::JsonType::String => JsonType::String,
            types::JsonType::Integer => JsonType::Integer,
            types::JsonType::Number => JsonType::Number,
            types::JsonType::Boolean => JsonType::Boolean,
            types::JsonType::Object => JsonType::Object,
            types::JsonType::Array => JsonType::Array,
        }
    }
}

impl From<types::Execution> for Execution {
    fn from(e: types::Execution) -> Self {
        match e {
            types::Execution::SessionStart => Execution::SessionStart,
            types::Execution::DuringInteraction => Execution::DuringInteraction,
            types::Execution::Both => Execution::Both,
        }
    }
}

impl From<types::Trigger> for Trigger {
    fn from(t: types::Trigger) -> Self {
        match t {
            types::Trigger::Inbound => Trigger::Inbound,
            types::Trigger::Outbound => Trigger::Outbound,
            types::Trigger::Both => Trigger::Both,
        }
    }
}

impl From<types::Manifest> for Manifest {
    /// The manifest as the guest returned it; [`Manifest::validate`] checks it.
    /// Parameter descriptions given twice keep the last (validation still
    /// checks that each names a parameter of the method).
    fn from(m: types::Manifest) -> Self {
        Self {
            integration: m.integration,
            version: m.version,
            methods: m
                .methods
                .into_iter()
                .map(|m| MethodSpec {
                    name: m.name,
                    display_name: m.display_name,
                    description: m.description,
                    params: m
                        .params
                        .into_iter()
                        .map(|p| ParamSpec {
                            name: p.name,
                            json_type: p.json_type.into(),
                            description: p.description,
                            required: p.required,
                            example: p.example,
                        })
                        .collect(),
                })
                .collect(),
            default_actions: m
                .default_actions
                .into_iter()
                .map(|a| DefaultAction {
                    name: a.name,
                    method: a.method,
                    description: a.description,
                    execution: a.execution.into(),
                    trigger: a.trigger.into(),
                    parameter_descriptions: a
                        .parameter_descriptions
                        .into_iter()
                        .map(|d| (d.param, d.description))
                        .collect(),
                    response_instructions: a.response_instructions,
                })
                .collect(),
            outbound_hosts: m.outbound_hosts,
            default_base_url: m.default_base_url,
            credential: m.credential.map(|c| CredentialSpec {
                name: c.name,
                header: c.header,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(header: &str) -> Manifest {
        Manifest {
            integration: "shipstation".into(),
            version: "1".into(),
            methods: vec![MethodSpec {
                name: "track-order".into(),
                display_name: "trackOrder".into(),
                description: "d".into(),
                params: vec![ParamSpec {
                    name: "order_id".into(),
                    json_type: JsonType::String,
                    description: "d".into(),
                    required: true,
                    example: Some("\"1\"".into()),
                }],
            }],
            default_actions: vec![DefaultAction {
                name: "trackOrder".into(),
                method: "trackOrder".into(),
                description: None,
                execution: Execution::DuringInteraction,
                trigger: Trigger::Inbound,
                parameter_descriptions: BTreeMap::new(),
                response_instructions: Some("r".into()),
            }],
            outbound_hosts: vec!["{base-url}".into()],
            default_base_url: "https://api.shipstation.com".into(),
            credential: Some(CredentialSpec {
                name: "key".into(),
                header: header.into(),
            }),
        }
    }

    #[test]
    fn untrusted_manifests_are_checked() {
        assert!(manifest("API-Key").validate().is_ok());
        assert!(manifest("API Key\n").validate().is_err());
        let mut m = manifest("API-Key");
        m.methods.push(m.methods[0].clone());
        assert!(m.validate().expect_err("dup").to_string().contains("used twice"));
        m.methods.truncate(1);
        m.methods[0].display_name = "track order; drop".into();
        assert!(m.validate().is_err());
    }

    fn ok() -> Manifest {
        manifest("API-Key")
    }

    #[test]
    fn default_actions_must_name_what_the_manifest_declares() {
        let mut m = ok();
        m.default_actions[0].method = "refund-order".into();
        refusal(&m, "calls method `refund-order`, which the manifest does not offer");
        let mut m = ok();
        m.default_actions[0].parameter_descriptions = BTreeMap::from([("order_id".into(), "d".into())]);
        m.validate().expect("a description of a parameter the method takes");
        m.default_actions[0].parameter_descriptions = BTreeMap::from([("email".into(), "d".into())]);
        refusal(
            &m,
            "describes parameter `email`, which method `track-order` does not take",
        );
        let mut m = ok();
        m.default_actions.push(m.default_actions[0].clone());
        refusal(&m, "default action `trackOrder` is declared twice");
        let mut m = ok();
        m.default_actions = (0..=MAX_DEFAULT_ACTIONS)
            .map(|i| DefaultAction {
                name: format!("a{i}"),
                ..ok().default_actions[0].clone()
            })
            .collect();
        refusal(&m, "default actions: 17, over the limit of 16");
        let mut m = ok();
        m.default_actions[0].name = "track order\u{1b}[2J".into();
        let e = refusal(&m, "is not 1-64 of [A-Za-z0-9_-]");
        assert!(!e.contains('\u{1b}'), "{e}");
    }

    /// The refusal of `m`, checked to name `needle`.
    fn refusal(m: &Manifest, needle: &str) -> String {
        let e = m.validate().expect_err(needle).to_string();
        assert!(e.contains(needle), "{e}");
        e
    }

    #[test]
    fn counts_over_their_bound_are_refused() {
        let mut m = ok();
        m.default_actions.clear();
        m.methods = (0..MAX_METHODS)
            .map(|i| MethodSpec {
                name: format!("m{i}"),
                display_name: format!("d{i}"),
                ..ok().methods[0].clone()
            })
            .collect();
        m.validate().expect("exactly MAX_METHODS");
        m.methods.push(MethodSpec {
            name: "one-more".into(),
            display_name: "oneMore".into(),
            ..ok().methods[0].clone()
        });
        refusal(&m, "methods: 65, over the limit of 64");

        let mut m = ok();
        let param = m.methods[0].params[0].clone();
        m.methods[0].params = (0..MAX_PARAMS_PER_METHOD)
            .map(|i| ParamSpec {
                name: format!("p{i}"),
                ..param.clone()
            })
            .collect();
        m.validate().expect("exactly MAX_PARAMS_PER_METHOD");
        m.methods[0].params.push(ParamSpec {
            name: "extra".into(),
            ..param
        });
        refusal(
            &m,
            "method `track-order`: number of parameters: 33, over the limit of 32",
        );

        let mut m = ok();
        m.outbound_hosts = vec!["api.example.com".into(); MAX_OUTBOUND_HOSTS];
        m.validate().expect("exactly MAX_OUTBOUND_HOSTS");
        m.outbound_hosts.push("one.more.example".into());
        refusal(&m, "outbound hosts: 17, over the limit of 16");
    }

    #[test]
    fn texts_over_their_bound_are_refused() {
        type Setter = fn(&mut Manifest, String);
        let cases: [(Setter, usize, &str); 11] = [
            (
                |m, t| m.default_actions[0].response_instructions = Some(t),
                MAX_INSTRUCTIONS_BYTES,
                "default action `trackOrder`: the response instructions is 4097 bytes, over the limit of 4096",
            ),
            (
                |m, t| m.default_actions[0].description = Some(t),
                MAX_INSTRUCTIONS_BYTES,
                "default action `trackOrder`: the description is 4097 bytes",
            ),
            (
                |m, t| m.version = t,
                MAX_ID_BYTES,
                "version is 65 bytes, over the limit of 64",
            ),
            (
                |m, t| m.methods[0].description = t,
                MAX_METHOD_DESCRIPTION_BYTES,
                "method `track-order`: the description is 4097 bytes, over the limit of 4096",
            ),
            (
                |m, t| m.methods[0].params[0].description = t,
                MAX_PARAM_DESCRIPTION_BYTES,
                "parameter `order_id`: the description is 1025 bytes, over the limit of 1024",
            ),
            (
                // A JSON string of exactly the given length.
                |m, t| m.methods[0].params[0].example = Some(format!("\"{}\"", &t[2..])),
                MAX_EXAMPLE_BYTES,
                "parameter `order_id`: the example is 1025 bytes, over the limit of 1024",
            ),
            (
                |m, t| m.outbound_hosts[0] = t,
                MAX_HOST_BYTES,
                "bytes, over the limit of 253",
            ),
            (
                |m, t| m.default_base_url = format!("https://{}", &t[8..]),
                MAX_BASE_URL_BYTES,
                "the default base URL `https://",
            ),
            (
                |m, t| m.credential.as_mut().expect("credential").name = t,
                MAX_CREDENTIAL_NAME_BYTES,
                "the credential name is 129 bytes, over the limit of 128",
            ),
            (
                |m, t| m.credential.as_mut().expect("credential").header = t,
                MAX_CREDENTIAL_HEADER_BYTES,
                "the credential header `",
            ),
            (
                |m, t| m.methods[0].name = t,
                MAX_ID_BYTES,
                "(65 bytes) is not 1-64 of [A-Za-z0-9_-]",
            ),
        ];
        for (set, max, needle) in cases {
            let mut m = ok();
            set(&mut m, "a".repeat(max));
            m.validate()
                .unwrap_or_else(|e| panic!("{max} bytes is allowed ({needle}): {e}"));
            let mut m = ok();
            set(&mut m, "a".repeat(max + 1));
            refusal(&m, needle);
        }
    }

    #[test]
    fn refusals_quote_guest_text_escaped_and_short() {
        let hostile = format!("\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}{}", "x".repeat(1024 * 1024));
        type Setter = fn(&mut Manifest, String);
        // (field, setter, whether `validate` checks its content, not only its length)
        let fields: [(&str, Setter, bool); 10] = [
            ("integration", |m, t| m.integration = t, true),
            ("version", |m, t| m.version = t, false),
            ("method name", |m, t| m.methods[0].name = t, true),
            ("display name", |m, t| m.methods[0].display_name = t, true),
            ("parameter name", |m, t| m.methods[0].params[0].name = t, true),
            ("default action name", |m, t| m.default_actions[0].name = t, true),
            ("default action method", |m, t| m.default_actions[0].method = t, true),
            ("outbound host", |m, t| m.outbound_hosts[0] = t, false),
            ("default base URL", |m, t| m.default_base_url = t, false),
            (
                "credential header",
                |m, t| m.credential.as_mut().expect("credential").header = t,
                true,
            ),
        ];
        for (field, set, content_checked) in fields {
            let mut m = ok();
            set(&mut m, hostile.clone());
            let e = format!("{:#}", m.validate().expect_err(field));
            assert!(e.len() < 1024, "{field}: {} bytes", e.len());
            assert!(
                !e.contains('\u{1b}') && !e.contains('\u{7}') && !e.contains('\u{202e}'),
                "{field}: {e}"
            );
            if !content_checked {
                continue;
            }
            // A short hostile value is refused for its content, quoted escaped.
            let mut m = ok();
            set(&mut m, "\u{1b}[2Jx\u{202e}".into());
            let e = format!("{:#}", m.validate().expect_err(field));
            assert!(!e.contains('\u{1b}') && !e.contains('\u{202e}'), "{field}: {e}");
        }
    }

    #[test]
    fn approx_bytes_sums_every_string() {
        let m = ok();
        // shipstation 11 + "1" 1 + track-order 11 + trackOrder 10 + "d" 1
        // + order_id 8 + "d" 1 + "\"1\"" 3 + {base-url} 10
        // + https://api.shipstation.com 27 + key 3 + API-Key 7
        // + default action: trackOrder 10 + trackOrder 10 + "r" 1
        assert_eq!(m.approx_bytes(), 114);
        let mut bigger = m.clone();
        bigger.methods[0].params[0].description = "x".repeat(1000);
        assert_eq!(bigger.approx_bytes(), 114 + 999);
    }
}
