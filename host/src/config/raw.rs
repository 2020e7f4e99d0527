//! `actionbox.toml` as written — the serde shapes, strict (an unknown key is
//! an error) — and their validation into the types of `config.rs`, one
//! function per table: `[[kind]]`, `[[integration]]` with its `limits`, and
//! `[[action]]`. Every error is located (`file:line:`) and names the field,
//! the bad value (never a key) and what is allowed.
//!
//! The shapes and their checks share this file (about 400 lines) because the
//! checks consume the shapes' private fields: a new field changes both.

use super::limits::RawLimits;
use super::{
    ActionConfig, ComponentRef, Config, ConfigOrigin, Execution, IntegrationConfig, KeySource, Trigger, WorkspaceRules,
};
use actionbox_runtime::deadline::ActionTimeout;
use actionbox_runtime::kinds::{IntegrationKind, KindCredential, KindRegistry};
use actionbox_runtime::outbound::{BaseUrl, CredentialHeader};
use anyhow::{anyhow, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The whole file, as written.
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
    #[serde(default)]
    propagate_trace: bool,
}

fn yes() -> bool {
    true
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

/// Where the text being parsed comes from, and so which rules apply.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// An `actionbox.toml` at this path.
    File(&'a Path),
    /// Workspace `id` of the store, under the operator's `rules`.
    Workspace { id: &'a str, rules: &'a WorkspaceRules },
}

/// A located error: `file:line: message` for a file; the message alone for a
/// workspace (its fields are named, and it has no file a line could be in).
pub(super) struct Locator<'a> {
    path: Option<&'a Path>,
    text: &'a str,
}

impl<'a> Locator<'a> {
    fn new(source: Source<'a>, text: &'a str) -> Self {
        let path = match source {
            Source::File(path) => Some(path),
            Source::Workspace { .. } => None,
        };
        Self { path, text }
    }

    /// 1-based line of byte offset `at`.
    pub(super) fn line(&self, at: usize) -> usize {
        self.text[..at.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    pub(super) fn error(&self, line: usize, message: impl std::fmt::Display) -> anyhow::Error {
        match self.path {
            Some(path) => anyhow!("{}:{line}: {message}", path.display()),
            None => anyhow!("{message}"),
        }
    }

    /// `action `x` field `execution`` for the value at byte `offset`: the
    /// `[[table]]` it is in (by the `name` that table gives), and its key
    /// with any sub-table path. A parse error names the field with it, so the
    /// same message reads well from a file and from the admin API (whose
    /// workspace documents have no lines a person could look at).
    fn field_at(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let at_line = self.text[..line_start].matches('\n').count();
        let lines: Vec<&str> = self.text.lines().collect();
        let key = lines.get(at_line)?.split_once('=')?.0.trim().trim_matches('"');
        // The `[[table]]` the line is in, and the `[table.sub]` it may be under.
        let mut sub = None;
        let (table, header_line) = (0..at_line).rev().find_map(|i| {
            let l = lines[i].trim();
            if let Some(t) = l.strip_prefix("[[").and_then(|t| t.strip_suffix("]]")) {
                return Some((t.trim(), i));
            }
            if sub.is_none() {
                sub = l.strip_prefix('[').and_then(|t| t.strip_suffix(']')).map(str::trim);
            }
            None
        })?;
        // Its name: the `name = …` of the table's own part.
        let name = lines[header_line + 1..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.starts_with('['))
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
            })
            .map(|n| format!(" `{}`", actionbox_runtime::error::guest_text(&n, 64)))
            .unwrap_or_default();
        let path = match sub
            .and_then(|s| s.strip_prefix(table))
            .and_then(|s| s.strip_prefix('.'))
        {
            Some(prefix) => format!("{prefix}.{key}"),
            None => key.to_string(),
        };
        Some(format!("{table}{name} field `{path}`"))
    }

    /// `path:line` for a file, `None` for a workspace.
    fn declared_at(&self, line: usize) -> Option<String> {
        self.path.map(|p| format!("{}:{line}", p.display()))
    }
}

/// Validate config `text` from `source`: [`Config::parse`] and
/// [`Config::parse_workspace`].
pub(super) fn parse(text: &str, source: Source<'_>) -> Result<Config> {
    let at = Locator::new(source, text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| at.line(s.start));
        let msg = e.message().trim_end().to_string();
        match e.span().and_then(|s| at.field_at(s.start)) {
            Some(field) => at.error(line, format!("{field}: {msg}")),
            None => at.error(line, msg),
        }
    })?;
    let (kinds, origin, base_dir) = match source {
        Source::File(path) => (
            declare_kinds(raw.kinds, &at)?,
            ConfigOrigin::File(path.to_path_buf()),
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
        ),
        Source::Workspace { id, rules } => {
            if let Some(kind) = raw.kinds.first() {
                return Err(at.error(
                    at.line(kind.span().start),
                    "a workspace cannot declare kinds: where a kind's key may go is the operator's decision \
                     (the server's built-in kinds, or the operator's --kinds file)",
                ));
            }
            (
                rules.kinds.clone(),
                ConfigOrigin::Workspace(id.to_string()),
                PathBuf::new(),
            )
        }
    };
    let mut integrations = Vec::new();
    let mut names = BTreeSet::new();
    for spanned in raw.integrations {
        let line = at.line(spanned.span().start);
        let integration = spanned.into_inner();
        if let Source::Workspace { rules, .. } = source {
            integration.check_workspace_rules(rules, &at)?;
        }
        integrations.push(integration.resolve(line, &at, &base_dir, &mut names)?);
    }
    let mut actions = Vec::new();
    let mut action_names = BTreeSet::new();
    for spanned in raw.actions {
        let line = at.line(spanned.span().start);
        actions.push(spanned.into_inner().resolve(line, &at, &names, &mut action_names)?);
    }
    Ok(Config {
        origin,
        integrations,
        actions,
        kinds,
    })
}

/// A relative path in the file resolves against the file's directory.
fn resolve_path(base_dir: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        base_dir.join(p)
    }
}

/// The built-in kinds plus every `[[kind]]`, in file order.
fn declare_kinds(raws: Vec<Spanned<RawKind>>, at: &Locator<'_>) -> Result<KindRegistry> {
    let mut kinds = KindRegistry::builtin();
    for spanned in raws {
        let line = at.line(spanned.span().start);
        let kind = spanned.into_inner().resolve(line, at)?;
        kinds.declare(kind).map_err(|e| at.error(line, format!("{e:#}")))?;
    }
    Ok(kinds)
}

impl RawKind {
    /// This `[[kind]]` (its header on `line`), checked: the operator's word on
    /// where the kind's key may go.
    fn resolve(self, line: usize, at: &Locator<'_>) -> Result<IntegrationKind> {
        let name = self.name.get_ref().trim().to_string();
        if !actionbox_runtime::manifest::is_identifier(&name) {
            return Err(at.error(
                at.line(self.name.span().start),
                format!("kind field `name`: `{name}` is not a kind id; use 1-64 letters, digits, `_` or `-`"),
            ));
        }
        let base_url = BaseUrl::parse(self.base_url.get_ref()).map_err(|e| {
            at.error(
                at.line(self.base_url.span().start),
                format!("kind `{name}` field `base_url`: {e:#}"),
            )
        })?;
        let credential = match &self.credential_header {
            Some(h) => Some(KindCredential {
                header: CredentialHeader::new(h.get_ref()).map_err(|e| {
                    at.error(
                        at.line(h.span().start),
                        format!("kind `{name}` field `credential_header`: {e:#}"),
                    )
                })?,
                name: self.credential_name.unwrap_or_else(|| format!("{name} API key")),
                default_env: None,
            }),
            None => None,
        };
        Ok(IntegrationKind {
            name,
            base_url,
            credential,
            declared_at: at.declared_at(line),
        })
    }
}

impl RawIntegration {
    /// This `[[integration]]` (its header on `line`), checked; its name is
    /// added to `names`, the integrations seen so far.
    fn resolve(
        self,
        line: usize,
        at: &Locator<'_>,
        base_dir: &Path,
        names: &mut BTreeSet<String>,
    ) -> Result<IntegrationConfig> {
        let name = self.name.get_ref().trim().to_string();
        let name_line = at.line(self.name.span().start);
        if name.is_empty() {
            return Err(at.error(name_line, "integration field `name` is empty; give it a unique name"));
        }
        if !names.insert(name.clone()) {
            return Err(at.error(
                name_line,
                format!("integration field `name`: `{name}` is used twice; names must be unique"),
            ));
        }
        let key_source = self.key_source(&name, at, base_dir)?;
        let timeout = self.call_timeout(&name, at)?;
        let base_url = self.operator_base_url(&name, at)?;
        let limits = self.limits.resolve(at, &name)?;
        let kind = self.kind.get_ref().trim().to_string();
        if kind.is_empty() {
            return Err(at.error(
                at.line(self.kind.span().start),
                format!("integration `{name}` field `kind` is empty"),
            ));
        }
        let component = self.component_ref(&name, at, base_dir)?;
        Ok(IntegrationConfig {
            name,
            kind,
            component,
            key_source,
            timeout,
            base_url,
            limits,
            default_actions: self.default_actions,
            propagate_trace: self.propagate_trace,
            line,
        })
    }

    /// `component`: a path in a file, a `sha256:<hex>` reference in a workspace.
    fn component_ref(&self, name: &str, at: &Locator<'_>, base_dir: &Path) -> Result<ComponentRef> {
        let text = self.component.get_ref().trim();
        let line = at.line(self.component.span().start);
        match (at.path, text.strip_prefix("sha256:")) {
            (Some(_), None) => Ok(ComponentRef::Path(resolve_path(base_dir, text))),
            (Some(_), Some(_)) => Err(at.error(
                line,
                format!(
                    "integration `{name}` field `component`: a config file names the component's file; \
                     `sha256:` references are for workspaces (`serve --store`)"
                ),
            )),
            (None, Some(hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(ComponentRef::Registered(hex.to_ascii_lowercase()))
            }
            (None, _) => Err(at.error(
                line,
                format!(
                    "integration `{name}` field `component`: `{}` is not a registered component's reference; \
                     register the component (POST /v1/admin/components) and use the `reference` it answers \
                     (sha256:<64 hex digits>)",
                    actionbox_runtime::error::guest_text(text, 80)
                ),
            )),
        }
    }

    /// What only the operator may decide, refused in a workspace before any
    /// other check: a key's variable or file (a merchant naming the server's
    /// own files or environment would have them sent as a header to a host of
    /// their choosing), a non-public base URL unless the operator allows it,
    /// and a memory limit above what the shared engine reserves.
    fn check_workspace_rules(&self, rules: &WorkspaceRules, at: &Locator<'_>) -> Result<()> {
        let name = self.name.get_ref().trim();
        for (field, span) in [
            ("api_key_env", self.api_key_env.as_ref().map(|f| f.span())),
            ("api_key_file", self.api_key_file.as_ref().map(|f| f.span())),
            ("api_key", self.api_key.as_ref().map(|f| f.span())),
        ] {
            if let Some(span) = span {
                return Err(at.error(
                    at.line(span.start),
                    format!(
                        "integration `{name}` field `{field}`: a workspace's API key is stored sealed by the \
                         server; send it as \"api_key\" to the admin API (it is never shown again)"
                    ),
                ));
            }
        }
        if let Some(u) = &self.base_url {
            if let Ok(url) = BaseUrl::parse(u.get_ref()) {
                if !rules.allow_private_base_urls
                    && url.non_public_scope() != actionbox_runtime::outbound::NonPublicScope::None
                {
                    return Err(at.error(
                        at.line(u.span().start),
                        format!(
                            "integration `{name}` field `base_url`: `{url}` names a non-public address (loopback, \
                             private or link-local), which this server does not let workspaces reach; use the \
                             API's public https URL (the operator can allow it with --allow-private-base-urls)"
                        ),
                    ));
                }
            }
        }
        self.limits.check_memory_at_most(rules.max_memory_bytes, at, name)
    }

    /// Where integration `name`'s key comes from: the name of a variable or
    /// a file, never the key itself (an inline `api_key` is refused without
    /// echoing it).
    fn key_source(&self, name: &str, at: &Locator<'_>, base_dir: &Path) -> Result<KeySource> {
        if let Some(k) = &self.api_key {
            return Err(at.error(
                at.line(k.span().start),
                format!(
                    "integration `{name}` field `api_key`: keys are never written in the config file; \
                     use api_key_env = \"VAR\" or api_key_file = \"/path/to/key\""
                ),
            ));
        }
        match (&self.api_key_env, &self.api_key_file) {
            (Some(_), Some(f)) => Err(at.error(
                at.line(f.span().start),
                format!("integration `{name}`: give api_key_env or api_key_file, not both"),
            )),
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
                Ok(KeySource::Env(var.to_string()))
            }
            (None, Some(file)) => Ok(KeySource::File(resolve_path(base_dir, file.get_ref()))),
            (None, None) => Ok(KeySource::None),
        }
    }

    /// `timeout`, or the default.
    fn call_timeout(&self, name: &str, at: &Locator<'_>) -> Result<ActionTimeout> {
        match &self.timeout {
            Some(t) => ActionTimeout::from_secs(*t.get_ref()).map_err(|e| {
                at.error(
                    at.line(t.span().start),
                    format!("integration `{name}` field `timeout`: {e}"),
                )
            }),
            None => Ok(ActionTimeout::default()),
        }
    }

    /// `base_url`, if the operator set one (`None` = the kind's).
    fn operator_base_url(&self, name: &str, at: &Locator<'_>) -> Result<Option<BaseUrl>> {
        self.base_url
            .as_ref()
            .map(|u| {
                BaseUrl::parse(u.get_ref()).map_err(|e| {
                    at.error(
                        at.line(u.span().start),
                        format!("integration `{name}` field `base_url`: {e:#}"),
                    )
                })
            })
            .transpose()
    }
}

impl RawAction {
    /// This `[[action]]` (on `line`), checked against `integrations` (the
    /// configured names); its name is added to `action_names`. Its method and
    /// parameters are checked later, against the loaded component.
    fn resolve(
        self,
        line: usize,
        at: &Locator<'_>,
        integrations: &BTreeSet<String>,
        action_names: &mut BTreeSet<String>,
    ) -> Result<ActionConfig> {
        let name = self.tool_name(at, action_names)?;
        let integration = self.integration_name(&name, at, integrations)?;
        if self.description.as_deref().is_some_and(|d| d.trim().is_empty()) {
            return Err(at.error(
                line,
                format!("action `{name}` field `description` is empty; remove it or describe the action"),
            ));
        }
        let (parameter_descriptions, parameter_lines) = parameter_overrides(&name, self.parameters, at)?;
        Ok(ActionConfig {
            name,
            description: self.description,
            integration,
            method: self.method.get_ref().clone(),
            execution: self.execution,
            trigger: self.trigger,
            parameter_descriptions,
            parameter_lines,
            response_instructions: self.response_instructions.filter(|r| !r.trim().is_empty()),
            line,
            method_line: at.line(self.method.span().start),
        })
    }

    /// `name`: a valid tool name not used by an earlier action.
    fn tool_name(&self, at: &Locator<'_>, action_names: &mut BTreeSet<String>) -> Result<String> {
        let name = self.name.get_ref().clone();
        let name_line = at.line(self.name.span().start);
        if !actionbox_runtime::manifest::is_identifier(&name) {
            return Err(at.error(
                name_line,
                format!("action field `name`: `{name}` is not a valid tool name; use 1-64 letters, digits, `_` or `-`"),
            ));
        }
        if !action_names.insert(name.clone()) {
            return Err(at.error(
                name_line,
                format!("action field `name`: `{name}` is used twice; names must be unique"),
            ));
        }
        Ok(name)
    }

    /// `integration`: one of the configured `integrations`.
    fn integration_name(&self, name: &str, at: &Locator<'_>, integrations: &BTreeSet<String>) -> Result<String> {
        let integration = self.integration.get_ref().clone();
        if !integrations.contains(&integration) {
            let known: Vec<&str> = integrations.iter().map(String::as_str).collect();
            return Err(at.error(
                at.line(self.integration.span().start),
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
        Ok(integration)
    }
}

/// Parameter name → description, and parameter name → line.
type ParameterOverrides = (BTreeMap<String, String>, BTreeMap<String, usize>);

/// The `parameters.<name>.description` overrides of action `action`, with the
/// line of each (for errors found once the component is loaded); none may be
/// empty.
fn parameter_overrides(
    action: &str,
    parameters: BTreeMap<String, Spanned<RawParameter>>,
    at: &Locator<'_>,
) -> Result<ParameterOverrides> {
    let mut descriptions = BTreeMap::new();
    let mut lines = BTreeMap::new();
    for (param, p) in parameters {
        let pline = at.line(p.span().start);
        let description = p.into_inner().description;
        if description.trim().is_empty() {
            return Err(at.error(
                pline,
                format!("action `{action}` parameter `{param}`: `description` is empty"),
            ));
        }
        descriptions.insert(param.clone(), description);
        lines.insert(param, pline);
    }
    Ok((descriptions, lines))
}
