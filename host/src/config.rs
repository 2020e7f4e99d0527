//! `actionbox.toml`: integrations and the custom actions configured on them.
//!
//! Parsing is strict: unknown keys are errors, and every error names the file,
//! the line, the field, the bad value and what is allowed. API keys are never
//! inline — only the name of an environment variable or a file is written
//! here, and a key is read only when a call needs it. A commented example is
//! in `actionbox.example.toml`.
//!
//! ```toml
//! [[integration]]
//! name = "shipstation"
//! kind = "shipstation"
//! component = "target/wasm32-wasip2/release/shipstation.wasm"
//! api_key_env = "SHIPSTATION_API_KEY"
//!
//! [[action]]
//! name = "track_shopify_order"
//! integration = "shipstation"
//! method = "trackOrder"
//! parameters.order_id.description = "Track order by Shopify order id, format: \"SHOPIFY-123456789\""
//! ```
//!
//! A kind the host does not know is declared by the operator, who thereby
//! decides where its key may go (see `kinds.rs`):
//!
//! ```toml
//! [[kind]]
//! name = "acme"
//! base_url = "https://api.acme.example"
//! credential_header = "X-Api-Key"
//! ```
//!
//! This module holds the validated types the rest of the host reads; the
//! file's TOML shapes and the checks of each table are `config/raw.rs`.

mod limits;
mod raw;

use actionbox_runtime::deadline::ActionTimeout;
use actionbox_runtime::kinds::KindRegistry;
use actionbox_runtime::limits::SandboxLimits;
use actionbox_runtime::outbound::BaseUrl;
use actionbox_runtime::secret::ApiKey;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use actionbox_runtime::manifest::{Execution, Trigger};

/// The phase of a conversation, for filtering tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The session is starting.
    SessionStart,
    /// The conversation is under way.
    Interaction,
}

/// The direction of the message being handled, for filtering tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// A customer's message.
    Inbound,
    /// A reply going out.
    Outbound,
}

impl Phase {
    /// Whether an action with `execution` runs in this phase.
    pub fn admits(self, execution: Execution) -> bool {
        matches!(
            (execution, self),
            (Execution::Both, _)
                | (Execution::SessionStart, Phase::SessionStart)
                | (Execution::DuringInteraction, Phase::Interaction)
        )
    }
}

impl Direction {
    /// Whether an action with `trigger` is offered for this direction.
    pub fn admits(self, trigger: Trigger) -> bool {
        matches!(
            (trigger, self),
            (Trigger::Both, _) | (Trigger::Inbound, Direction::Inbound) | (Trigger::Outbound, Direction::Outbound)
        )
    }
}

/// Where an integration's key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An environment variable.
    Env(String),
    /// A file (e.g. a mounted secret); whitespace around the key is dropped.
    File(PathBuf),
    /// A workspace's key from the store, unsealed when the workspace was
    /// loaded (`workspaces/`); a workspace can name no variable or file.
    Stored(ApiKey),
    /// No key (an action that needs none).
    None,
}

impl KeySource {
    /// Read the key now.
    pub fn load(&self, integration: &str) -> Result<Option<ApiKey>> {
        match self {
            KeySource::Env(var) => match ApiKey::from_env(var)? {
                Some(k) => Ok(Some(k)),
                None => bail!(
                    "integration `{integration}`: environment variable {var} (api_key_env) is not set; export the API key in it"
                ),
            },
            KeySource::File(path) => {
                ApiKey::from_file(path).map(Some).with_context(|| format!("integration `{integration}` (api_key_file)"))
            }
            KeySource::Stored(key) => Ok(Some(key.clone())),
            KeySource::None => Ok(None),
        }
    }
}

/// Which component an integration runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ComponentRef {
    /// A file (config files), resolved against the config file's directory.
    Path(PathBuf),
    /// A component registered in the workspace store, by the lower-case hex
    /// SHA-256 of its bytes (written `sha256:<hex>`).
    Registered(String),
}

impl std::fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentRef::Path(p) => write!(f, "{}", p.display()),
            ComponentRef::Registered(sha) => write!(f, "sha256:{sha}"),
        }
    }
}

/// Where a config came from; errors are located by it.
#[derive(Debug, Clone)]
pub enum ConfigOrigin {
    /// An `actionbox.toml` (errors say `file:line:`).
    File(PathBuf),
    /// A workspace of the store (errors name the field alone: the admin API
    /// and `workspace import` answer the request that caused them).
    Workspace(String),
}

/// What the operator allows a workspace's config (`serve --store`): a
/// workspace is written by a merchant's admin, so everything that decides
/// where a key may go or how much the host reserves is the operator's.
#[derive(Debug, Clone)]
pub struct WorkspaceRules {
    /// The kinds workspaces may use: built in, plus the operator's own.
    pub kinds: KindRegistry,
    /// Whether a base URL may name a non-public address (loopback, private,
    /// link-local). Off by default: a merchant's base URL pointing inside the
    /// platform's network would make the host a proxy into it.
    pub allow_private_base_urls: bool,
    /// The largest `limits.memory_mib` a workspace may set, in bytes: the
    /// shared engine reserves this much per instance slot.
    pub max_memory_bytes: usize,
}

/// One `[[integration]]`, validated.
#[derive(Debug, Clone)]
pub struct IntegrationConfig {
    /// Unique name.
    pub name: String,
    /// Kind of integration; must match the component's manifest (`shipstation`).
    pub kind: String,
    /// The action component.
    pub component: ComponentRef,
    /// Where the API key comes from.
    pub key_source: KeySource,
    /// Call timeout (10–180 s).
    pub timeout: ActionTimeout,
    /// Upstream base URL; `None` = the kind's (from the registry, never
    /// from the component).
    pub base_url: Option<BaseUrl>,
    /// Sandbox limits.
    pub limits: SandboxLimits,
    /// Whether the default actions the component declares (its manifest's
    /// `default-actions`, e.g. ShipStation's `trackOrder`) are added.
    pub default_actions: bool,
    /// Whether its calls' outbound requests carry the caller's trace context
    /// (W3C `traceparent`) to the upstream API; off unless the operator
    /// trusts that API with the platform's trace ids.
    pub propagate_trace: bool,
    /// Line of the `[[integration]]` header.
    pub line: usize,
}

/// One `[[action]]`, validated (method and parameter names are checked
/// against the component later, when it is loaded).
#[derive(Debug, Clone)]
pub struct ActionConfig {
    /// Unique tool name.
    pub name: String,
    /// What the tool does, for the assistant; `None` = the method's own.
    pub description: Option<String>,
    /// The integration it runs on.
    pub integration: String,
    /// The component method, by display or machine name.
    pub method: String,
    /// When it runs.
    pub execution: Execution,
    /// Which messages it is offered for.
    pub trigger: Trigger,
    /// Parameter name → description shown to the assistant instead of the default.
    pub parameter_descriptions: BTreeMap<String, String>,
    /// Line of each parameter override, for errors found later.
    pub parameter_lines: BTreeMap<String, usize>,
    /// How the assistant should present the result.
    pub response_instructions: Option<String>,
    /// Line of the `[[action]]` entry (0 for default actions).
    pub line: usize,
    /// Line of the `method` value.
    pub method_line: usize,
}

/// The whole file, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file (or workspace) it came from.
    pub origin: ConfigOrigin,
    /// Integrations in file order.
    pub integrations: Vec<IntegrationConfig>,
    /// Custom actions in file order (default actions are added when components load).
    pub actions: Vec<ActionConfig>,
    /// The built-in kinds plus the file's `[[kind]]` declarations.
    pub kinds: KindRegistry,
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read config file {} (see actionbox.example.toml for the format)",
                path.display()
            )
        })?;
        Self::parse(&text, path)
    }

    /// Validate config `text` that came from `path` (relative component and
    /// key file paths resolve against its directory).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        raw::parse(text, raw::Source::File(path))
    }

    /// Validate a workspace's config `text` (what the store holds, written as
    /// `actionbox.toml`) under the operator's `rules`: the same checks as a
    /// file, and no `[[kind]]`, key variable or key file, component path or
    /// base URL the rules do not allow.
    pub fn parse_workspace(text: &str, workspace: &str, rules: &WorkspaceRules) -> Result<Self> {
        raw::parse(text, raw::Source::Workspace { id: workspace, rules })
    }

    /// Where line `line` of this config is, for messages: `file:line` or
    /// `workspace `id``.
    pub fn at(&self, line: usize) -> String {
        match &self.origin {
            ConfigOrigin::File(path) => format!("{}:{line}", path.display()),
            ConfigOrigin::Workspace(id) => format!("workspace `{id}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("actionbox.toml"))
    }

    #[test]
    fn the_example_config_is_valid() {
        let config = Config::parse(
            include_str!("../../actionbox.example.toml"),
            Path::new("actionbox.example.toml"),
        )
        .expect("actionbox.example.toml parses");
        assert_eq!(config.integrations[0].kind, "shipstation");
        assert_eq!(config.integrations[0].base_url, None, "the kind's base URL applies");
    }

    #[test]
    fn operators_declare_unknown_kinds() {
        let config = parse(
            "[[kind]]\nname = \"acme\"\nbase_url = \"https://api.acme.example\"\ncredential_header = \"X-Api-Key\"\n",
        )
        .expect("valid");
        let kind = config.kinds.get("acme").expect("declared");
        assert_eq!(kind.base_url.to_string(), "https://api.acme.example");
        assert_eq!(kind.declared_at.as_deref(), Some("actionbox.toml:1"));
        assert_eq!(
            kind.credential.as_ref().map(|c| c.header.to_string()),
            Some("x-api-key".to_string())
        );
    }

    #[test]
    fn kind_declarations_are_checked() {
        for (text, expected) in [
            (
                "[[kind]]\nname = \"acme\"\nbase_url = \"https://a.example\"\ncredential_header = \"Origin\"\n",
                "actionbox.toml:4: kind `acme` field `credential_header`",
            ),
            (
                "[[kind]]\nname = \"shipstation\"\nbase_url = \"https://evil.example\"\n",
                "built in",
            ),
            ("[[kind]]\nname = \"acme\"\nbase_url = \"http://a.example\"\n", "unencrypted"),
            ("[[kind]]\nname = \"acme\"\n", "missing field `base_url`"),
            (
                "[[kind]]\nname = \"a\"\nbase_url = \"https://a.example\"\n[[kind]]\nname = \"a\"\nbase_url = \"https://a.example\"\n",
                "declared twice",
            ),
        ] {
            let e = parse(text).expect_err(text);
            assert!(format!("{e:#}").contains(expected), "{text}: {e:#}");
        }
    }

    #[test]
    fn a_value_serde_refuses_is_reported_with_its_table_and_field() {
        let text = "[[integration]]\nname = \"s\"\nkind = \"shipstation\"\ncomponent = \"c.wasm\"\n\
                    [integration.limits]\nmemory_mib = \"lots\"\n\
                    [[action]]\nname = \"track\"\nintegration = \"s\"\nmethod = \"trackOrder\"\nexecution = \"sometimes\"\n";
        let e = format!("{:#}", parse(text).expect_err("a string for a number"));
        assert!(
            e.contains("actionbox.toml:6: integration `s` field `limits.memory_mib`"),
            "{e}"
        );
        let fixed = text.replace("\"lots\"", "64");
        let e = format!("{:#}", parse(&fixed).expect_err("an unknown execution"));
        assert!(
            e.contains("actionbox.toml:11: action `track` field `execution`: unknown variant `sometimes`"),
            "{e}"
        );
    }

    #[test]
    fn api_key_env_must_be_a_variable_name_and_is_never_echoed() {
        let text = "[[integration]]\nname = \"s\"\nkind = \"shipstation\"\ncomponent = \"c.wasm\"\n\
                    api_key_env = \"sk live 0123456789\"\n";
        let e = format!("{:#}", parse(text).expect_err("not a name"));
        assert!(e.contains("api_key_env") && !e.contains("0123456789"), "{e}");
    }

    #[test]
    fn new_limits_are_configurable_within_bounds() {
        let base =
            "[[integration]]\nname = \"s\"\nkind = \"shipstation\"\ncomponent = \"c.wasm\"\n[integration.limits]\n";
        let c = parse(&format!("{base}max_host_resources = 256\nmax_refused_requests = 4\n")).expect("valid");
        assert_eq!(c.integrations[0].limits.max_host_resources, 256);
        assert_eq!(c.integrations[0].limits.max_refused_requests, 4);
        let e = parse(&format!("{base}max_host_resources = 10\n")).expect_err("too few");
        assert!(format!("{e:#}").contains("allowed 64–65536"), "{e:#}");
    }
}
