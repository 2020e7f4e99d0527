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

use actionbox_runtime::deadline::ActionTimeout;
use actionbox_runtime::kinds::{IntegrationKind, KindCredential, KindRegistry};
use actionbox_runtime::limits::SandboxLimits;
use actionbox_runtime::outbound::{BaseUrl, CredentialHeader};
use actionbox_runtime::secret::ApiKey;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::Spanned;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An environment variable.
    Env(String),
    /// A file (e.g. a mounted secret); whitespace around the key is dropped.
    File(PathBuf),
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
            KeySource::None => Ok(None),
        }
    }
}

/// One `[[integration]]`, validated.
#[derive(Debug, Clone)]
pub struct IntegrationConfig {
    /// Unique name.
    pub name: String,
    /// Kind of integration; must match the component's manifest (`shipstation`).
    pub kind: String,
    /// The action component, resolved against the config file's directory.
    pub component: PathBuf,
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
    /// The file it came from.
    pub path: PathBuf,
    /// Integrations in file order.
    pub integrations: Vec<IntegrationConfig>,
    /// Custom actions in file order (default actions are added when components load).
    pub actions: Vec<ActionConfig>,
    /// The built-in kinds plus the file's `[[kind]]` declarations.
    pub kinds: KindRegistry,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, rename = "kind")]
    kinds: Vec<Spanned<RawKind>>,
    #[serde(default, rename = "integration")]
    integrations: Vec<Spanned<RawIntegration>>,
    #[serde(default, rename = "action")]
    actions: Vec<Spanned<RawAction>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    name: Spanned<String>,
    base_url: Spanned<String>,
    credential_header: Option<Spanned<String>>,
    credential_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntegration {
    name: Spanned<String>,
    kind: Spanned<String>,
    component: Spanned<String>,
    api_key_env: Option<Spanned<String>>,
    api_key_file: Option<Spanned<String>>,
    /// Accepted by the parser only to refuse it with a clear message (and
    /// without ever echoing the value).
    api_key: Option<Spanned<toml::Value>>,
    timeout: Option<Spanned<u64>>,
    base_url: Option<Spanned<String>>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default = "yes")]
    default_actions: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mib: Option<Spanned<u64>>,
    max_outbound_requests: Option<Spanned<u32>>,
    max_response_body_kib: Option<Spanned<u64>>,
    max_request_body_kib: Option<Spanned<u64>>,
    max_result_kib: Option<Spanned<u64>>,
    max_log_kib: Option<Spanned<u64>>,
    max_host_resources: Option<Spanned<u64>>,
    max_refused_requests: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    name: Spanned<String>,
    description: Option<String>,
    integration: Spanned<String>,
    method: Spanned<String>,
    #[serde(default)]
    execution: Execution,
    #[serde(default)]
    trigger: Trigger,
    #[serde(default)]
    parameters: BTreeMap<String, Spanned<RawParameter>>,
    response_instructions: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    description: String,
}

/// A located error: `file:line: message`.
pub(crate) struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        Self { path, text }
    }

    /// 1-based line of byte offset `at`.
    pub(crate) fn line(&self, at: usize) -> usize {
        self.text[..at.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    pub(crate) fn error(&self, line: usize, message: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}:{line}: {message}", self.path.display())
    }
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
        let at = Locator::new(path, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| at.line(s.start));
            let msg = e.message().to_string();
            at.error(line, msg)
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                base_dir.join(p)
            }
        };

        let mut kinds = KindRegistry::builtin();
        for spanned in raw.kinds {
            let line = at.line(spanned.span().start);
            let raw = spanned.into_inner();
            let name = raw.name.get_ref().trim().to_string();
            if !actionbox_runtime::manifest::is_identifier(&name) {
                return Err(at.error(
                    at.line(raw.name.span().start),
                    format!("kind field `name`: `{name}` is not a kind id; use 1-64 letters, digits, `_` or `-`"),
                ));
            }
            let base_url = BaseUrl::parse(raw.base_url.get_ref()).map_err(|e| {
                at.error(
                    at.line(raw.base_url.span().start),
                    format!("kind `{name}` field `base_url`: {e:#}"),
                )
            })?;
            let credential = match &raw.credential_header {
                Some(h) => Some(KindCredential {
                    header: CredentialHeader::new(h.get_ref()).map_err(|e| {
                        at.error(
                            at.line(h.span().start),
                            format!("kind `{name}` field `credential_header`: {e:#}"),
                        )
                    })?,
                    name: raw.credential_name.clone().unwrap_or_else(|| format!("{name} API key")),
                    default_env: None,
                }),
                None => None,
            };
            kinds
                .declare(IntegrationKind {
                    name,
                    base_url,
                    credential,
                    declared_at: Some(format!("{}:{line}", path.display())),
                })
                .map_err(|e| at.error(line, format!("{e:#}")))?;
        }

        let mut integrations = Vec::new();
        let mut names = BTreeSet::new();
        for spanned in raw.integrations {
            let line = at.line(spanned.span().start);
            let raw = spanned.into_inner();
            let name = raw.name.get_ref().trim().to_string();
            let name_line = at.line(raw.name.span().start);
            if name.is_empty() {
                return Err(at.error(name_line, "integration field `name` is empty; give it a unique name"));
            }
            if !names.insert(name.clone()) {
                return Err(at.error(
                    name_line,
                    format!("integration field `name`: `{name}` is used twice; names must be unique"),
                ));
            }
            if let Some(k) = &raw.api_key {
                return Err(at.error(
                    at.line(k.span().start),
                    format!(
                        "integration `{name}` field `api_key`: keys are never written in the config file; \
                         use api_key_env = \"VAR\" or api_key_file = \"/path/to/key\""
                    ),
                ));
            }
            let key_source = match (&raw.api_key_env, &raw.api_key_file) {
                (Some(_), Some(f)) => {
                    return Err(at.error(
                        at.line(f.span().start),
                        format!("integration `{name}`: give api_key_env or api_key_file, not both"),
                    ))
                }
                (Some(env), None) => {
                    let var = env.get_ref().trim();
                    if !actionbox_runtime::secret::is_env_var_name(var) {
                        return Err(at.error(
                            at.line(env.span().start),
                            format!(
                                "integration `{name}` field `api_key_env`: the value is not an environment variable \
                                 name (letters, digits and `_`, not starting with a digit; not shown, in case it is \
                                 a key); write the variable's NAME, never the key"
                            ),
                        ));
                    }
                    KeySource::Env(var.to_string())
                }
                (None, Some(file)) => KeySource::File(resolve(file.get_ref())),
                (None, None) => KeySource::None,
            };
            let timeout = match &raw.timeout {
                Some(t) => ActionTimeout::from_secs(*t.get_ref()).map_err(|e| {
                    at.error(
                        at.line(t.span().start),
                        format!("integration `{name}` field `timeout`: {e}"),
                    )
                })?,
                None => ActionTimeout::default(),
            };
            let base_url = match &raw.base_url {
                Some(u) => Some(BaseUrl::parse(u.get_ref()).map_err(|e| {
                    at.error(
                        at.line(u.span().start),
                        format!("integration `{name}` field `base_url`: {e:#}"),
                    )
                })?),
                None => None,
            };
            let limits = raw.limits.resolve(&at, &name)?;
            let kind = raw.kind.get_ref().trim().to_string();
            if kind.is_empty() {
                return Err(at.error(
                    at.line(raw.kind.span().start),
                    format!("integration `{name}` field `kind` is empty"),
                ));
            }
            integrations.push(IntegrationConfig {
                name,
                kind,
                component: resolve(raw.component.get_ref()),
                key_source,
                timeout,
                base_url,
                limits,
                default_actions: raw.default_actions,
                line,
            });
        }

        let mut actions = Vec::new();
        let mut action_names = BTreeSet::new();
        for spanned in raw.actions {
            let line = at.line(spanned.span().start);
            let raw = spanned.into_inner();
            let name = raw.name.get_ref().clone();
            let name_line = at.line(raw.name.span().start);
            if !actionbox_runtime::manifest::is_identifier(&name) {
                return Err(at.error(
                    name_line,
                    format!(
                        "action field `name`: `{name}` is not a valid tool name; use 1-64 letters, digits, `_` or `-`"
                    ),
                ));
            }
            if !action_names.insert(name.clone()) {
                return Err(at.error(
                    name_line,
                    format!("action field `name`: `{name}` is used twice; names must be unique"),
                ));
            }
            let integration = raw.integration.get_ref().clone();
            if !names.contains(&integration) {
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                return Err(at.error(
                    at.line(raw.integration.span().start),
                    format!(
                        "action `{name}` field `integration`: no integration is named `{integration}`; configured: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            if raw.description.as_deref().is_some_and(|d| d.trim().is_empty()) {
                return Err(at.error(
                    line,
                    format!("action `{name}` field `description` is empty; remove it or describe the action"),
                ));
            }
            let mut parameter_descriptions = BTreeMap::new();
            let mut parameter_lines = BTreeMap::new();
            for (param, p) in raw.parameters {
                let pline = at.line(p.span().start);
                let description = p.into_inner().description;
                if description.trim().is_empty() {
                    return Err(at.error(
                        pline,
                        format!("action `{name}` parameter `{param}`: `description` is empty"),
                    ));
                }
                parameter_descriptions.insert(param.clone(), description);
                parameter_lines.insert(param, pline);
            }
            actions.push(ActionConfig {
                name,
                description: raw.description,
                integration,
                method: raw.method.get_ref().clone(),
                execution: raw.execution,
                trigger: raw.trigger,
                parameter_descriptions,
                parameter_lines,
                response_instructions: raw.response_instructions.filter(|r| !r.trim().is_empty()),
                line,
                method_line: at.line(raw.method.span().start),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            integrations,
            actions,
            kinds,
        })
    }
}

impl RawLimits {
    fn resolve(&self, at: &Locator<'_>, integration: &str) -> Result<SandboxLimits> {
        let mut limits = SandboxLimits::default();
        let check = |v: &Spanned<u64>, field: &str, min: u64, max: u64| -> Result<u64> {
            let n = *v.get_ref();
            if (min..=max).contains(&n) {
                Ok(n)
            } else {
                Err(at.error(
                    at.line(v.span().start),
                    format!(
                        "integration `{integration}` field `limits.{field}`: {n} is out of range; allowed {min}–{max}"
                    ),
                ))
            }
        };
        if let Some(v) = &self.memory_mib {
            // The same bound the engine checks its memory reservation against.
            let max_mib = (actionbox_runtime::limits::MAX_MEMORY_BYTES >> 20) as u64;
            limits.memory_bytes = usize::try_from(check(v, "memory_mib", 1, max_mib)? * 1024 * 1024)?;
        }
        if let Some(v) = &self.max_outbound_requests {
            let n = *v.get_ref();
            if !(1..=1000).contains(&n) {
                return Err(at.error(
                    at.line(v.span().start),
                    format!(
                        "integration `{integration}` field `limits.max_outbound_requests`: {n} is out of range; allowed 1–1000"
                    ),
                ));
            }
            limits.max_outbound_requests = n;
        }
        if let Some(v) = &self.max_response_body_kib {
            limits.max_response_body_bytes = check(v, "max_response_body_kib", 1, 1024 * 1024)? * 1024;
        }
        if let Some(v) = &self.max_request_body_kib {
            limits.max_request_body_bytes = check(v, "max_request_body_kib", 0, 1024 * 1024)? * 1024;
        }
        if let Some(v) = &self.max_result_kib {
            limits.max_result_bytes = usize::try_from(check(v, "max_result_kib", 1, 64 * 1024)? * 1024)?;
        }
        if let Some(v) = &self.max_log_kib {
            limits.max_log_bytes = usize::try_from(check(v, "max_log_kib", 0, 64 * 1024)? * 1024)?;
        }
        if let Some(v) = &self.max_host_resources {
            limits.max_host_resources = usize::try_from(check(v, "max_host_resources", 64, 65_536)?)?;
        }
        if let Some(v) = &self.max_refused_requests {
            limits.max_refused_requests = u32::try_from(check(v, "max_refused_requests", 1, 1000)?)?;
        }
        Ok(limits)
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
