//! Building an [`ActionCatalog`] from a validated config: an engine sized for
//! it, each integration's component loaded and admitted by the kind registry,
//! the default actions the components declare added, and every action
//! resolved against its component's manifest. Each step refuses with the
//! config line it is about; the rest of the catalog only sees what passed.

use super::{ActionCatalog, CatalogAction, LoadedIntegration, POOL_SPARE_SLOTS};
use crate::config::{ActionConfig, ComponentRef, Config, ConfigOrigin, IntegrationConfig, KeySource};
use actionbox_runtime::component::ActionComponent;
use actionbox_runtime::engine::{ActionEngine, EngineOptions, PoolSizing};
use actionbox_runtime::error::guest_text;
use actionbox_runtime::kinds::IntegrationKind;
use actionbox_runtime::manifest::{DefaultAction, MethodSpec};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a catalog gets its integrations' components: files for a config
/// file ([`FileComponents`]), the shared registry for workspaces
/// (`workspaces/registry.rs`).
pub trait ComponentSource {
    /// The loaded component `reference` names; `at` says which integration
    /// asks, for errors.
    fn component(
        &self,
        reference: &ComponentRef,
        at: &str,
    ) -> impl std::future::Future<Output = Result<Arc<ActionComponent>>> + Send;
}

/// Components read from files and compiled on `engine`, once per path:
/// integrations that share a component share one compiled copy.
pub struct FileComponents<'a> {
    engine: &'a ActionEngine,
    loaded: tokio::sync::Mutex<BTreeMap<PathBuf, Arc<ActionComponent>>>,
}

impl<'a> FileComponents<'a> {
    /// Load files on `engine`.
    pub fn new(engine: &'a ActionEngine) -> Self {
        Self {
            engine,
            loaded: Default::default(),
        }
    }
}

impl ComponentSource for FileComponents<'_> {
    async fn component(&self, reference: &ComponentRef, at: &str) -> Result<Arc<ActionComponent>> {
        let ComponentRef::Path(path) = reference else {
            bail!("{at} field `component`: `{reference}` is a workspace reference; a config file names the component's file");
        };
        let mut loaded = self.loaded.lock().await;
        if let Some(c) = loaded.get(path) {
            return Ok(c.clone());
        }
        if !path.exists() {
            bail!(
                "{at} field `component`: {} does not exist (build it with `make build`)",
                path.display()
            );
        }
        let c = Arc::new(self.engine.load(path).await.with_context(|| at.to_string())?);
        loaded.insert(path.clone(), c.clone());
        Ok(c)
    }
}

impl ActionCatalog {
    /// Load and check a config file, its components and actions.
    pub async fn load(path: &Path) -> Result<Self> {
        Self::load_pooled(path, None).await
    }

    /// Load the components of a validated config and resolve its actions,
    /// allocating instances on demand (one-shot commands).
    pub async fn from_config(config: Config) -> Result<Self> {
        Self::from_config_pooled(config, None).await
    }

    /// Like [`ActionCatalog::load`], with a pool of instance slots sized for
    /// `calls_per_integration` concurrent calls on every integration (plus a
    /// few for Test and session-start), for long-running servers.
    pub async fn load_pooled(path: &Path, calls_per_integration: Option<usize>) -> Result<Self> {
        let config = Config::load(path)?;
        Self::from_config_pooled(config, calls_per_integration).await
    }

    /// See [`ActionCatalog::load_pooled`].
    pub async fn from_config_pooled(config: Config, calls_per_integration: Option<usize>) -> Result<Self> {
        let engine = engine_for(&config, calls_per_integration)?;
        let mut catalog = Self::build(config, &FileComponents::new(&engine)).await?;
        catalog._engine = Some(engine);
        Ok(catalog)
    }

    /// Resolve a validated config with components from `source` (whose
    /// engine outlives the catalog): each integration's component admitted
    /// by the kind registry, the default actions added, every action bound
    /// to its method.
    pub async fn build(config: Config, source: &impl ComponentSource) -> Result<Self> {
        let integrations = load_integrations(source, &config).await?;
        let workspace = match &config.origin {
            ConfigOrigin::Workspace(id) => Some(id.clone()),
            ConfigOrigin::File(_) => None,
        };
        let configs = with_default_actions(config.actions.clone(), &integrations, &config)?;
        let actions = configs
            .into_iter()
            .map(|action| resolve_action(action, &integrations, &config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            integrations,
            actions,
            workspace,
            _engine: None,
        })
    }
}

/// The one engine of this catalog: memory reservations sized for the
/// integration that allows the most, and, for a server, a pool of instance
/// slots (see [`pool_sizing`]).
fn engine_for(config: &Config, calls_per_integration: Option<usize>) -> Result<ActionEngine> {
    let max_memory_bytes = config
        .integrations
        .iter()
        .map(|i| i.limits.memory_bytes)
        .fold(actionbox_runtime::limits::DEFAULT_MEMORY_BYTES, usize::max);
    let pool = pool_sizing(config, calls_per_integration)?;
    ActionEngine::with_options(EngineOptions { max_memory_bytes, pool })
}

/// Instance slots for `calls` concurrent calls on every integration plus
/// [`POOL_SPARE_SLOTS`]; `None` (allocate on demand) for one-shot commands.
fn pool_sizing(config: &Config, calls_per_integration: Option<usize>) -> Result<Option<PoolSizing>> {
    let Some(calls) = calls_per_integration else {
        return Ok(None);
    };
    let instances = u32::try_from(calls.saturating_mul(config.integrations.len().max(1)))
        .unwrap_or(u32::MAX)
        .saturating_add(POOL_SPARE_SLOTS);
    if instances > actionbox_runtime::engine::MAX_POOL_INSTANCES {
        bail!(
            "{} integrations × {calls} concurrent calls needs {instances} instance slots, more than the \
             {} one host may pool; lower --max-concurrency or split the integrations across hosts",
            config.integrations.len(),
            actionbox_runtime::engine::MAX_POOL_INSTANCES
        );
    }
    Ok(Some(PoolSizing { instances }))
}

/// Every integration of `config` with its component loaded and admitted, in
/// file order.
async fn load_integrations(source: &impl ComponentSource, config: &Config) -> Result<Vec<LoadedIntegration>> {
    let mut integrations = Vec::new();
    for integ in &config.integrations {
        let at = format!("{}: integration `{}`", config.at(integ.line), integ.name);
        let component = source.component(&integ.component, &at).await?;
        let kind = admit(config, integ, &component, &at)?;
        integrations.push(LoadedIntegration {
            config: integ.clone(),
            component,
            kind,
        });
    }
    Ok(integrations)
}

/// The kind `component` runs as on `integ`: the configured kind must be the
/// component's, the registry must admit what its manifest requests, and a
/// component that needs a key must have one configured.
fn admit(config: &Config, integ: &IntegrationConfig, component: &ActionComponent, at: &str) -> Result<IntegrationKind> {
    let manifest = component.manifest();
    if manifest.integration != integ.kind {
        bail!(
            "{at} field `kind`: `{}` does not match the component, which is a `{}` action",
            integ.kind,
            actionbox_runtime::error::guest_text(&manifest.integration, 64)
        );
    }
    let kind = config.kinds.admit(manifest).with_context(|| at.to_string())?.clone();
    if let (Some(cred), KeySource::None) = (&manifest.credential, &integ.key_source) {
        let how = match config.origin {
            ConfigOrigin::File(_) => "set api_key_env or api_key_file",
            ConfigOrigin::Workspace(_) => "send its \"api_key\"",
        };
        bail!("{at}: the action needs a {}; {how}", guest_text(&cred.name, 64));
    }
    Ok(kind)
}

/// The custom actions, then every default action no custom action of the
/// same name replaces.
fn with_default_actions(
    custom: Vec<ActionConfig>,
    integrations: &[LoadedIntegration],
    config: &Config,
) -> Result<Vec<ActionConfig>> {
    let custom_count = custom.len();
    let mut configs = custom;
    for default in default_actions(integrations, config)? {
        if configs[..custom_count].iter().any(|a| a.name == default.name) {
            continue; // a custom action of that name replaces the default
        }
        // Two defaults under one tool name (a component naming its default
        // after another integration's prefixed one, or integration names
        // that sanitize alike): refuse, so no component can take over the
        // tool name another integration's default answers to.
        if let Some(first) = configs[custom_count..].iter().find(|a| a.name == default.name) {
            bail!(
                "{}: integration `{}`: its default action `{}` has the same tool name as a default action of \
                 integration `{}`; set default_actions = false on one of them, or add an [[action]] of that name",
                config.at(default.line),
                default.integration,
                default.name,
                first.integration
            );
        }
        configs.push(default);
    }
    Ok(configs)
}

/// The default actions the components of `integrations` declare, for every
/// integration that has them on. A name offered by several integrations is
/// prefixed with the integration's name (`us-store_trackOrder`), cut so the
/// tool name stays within 64 bytes.
fn default_actions(integrations: &[LoadedIntegration], config: &Config) -> Result<Vec<ActionConfig>> {
    let on = || integrations.iter().filter(|i| i.config.default_actions);
    let mut offered: BTreeMap<&str, usize> = BTreeMap::new();
    for integ in on() {
        for d in &integ.component.manifest().default_actions {
            *offered.entry(d.name.as_str()).or_default() += 1;
        }
    }
    let mut actions = Vec::new();
    for integ in on() {
        for d in &integ.component.manifest().default_actions {
            let name = if offered[d.name.as_str()] == 1 {
                d.name.clone()
            } else {
                prefixed_name(integ, d, config)?
            };
            actions.push(ActionConfig {
                name,
                description: d.description.clone(),
                integration: integ.config.name.clone(),
                method: d.method.clone(),
                execution: d.execution,
                trigger: d.trigger,
                parameter_descriptions: d.parameter_descriptions.clone(),
                parameter_lines: BTreeMap::new(),
                response_instructions: d.response_instructions.clone(),
                line: integ.config.line,
                method_line: integ.config.line,
            });
        }
    }
    Ok(actions)
}

/// `<integration>_<default action>` for a default action several
/// integrations offer: the integration's name made a tool-name prefix and
/// cut so the whole stays within 64 bytes.
fn prefixed_name(integ: &LoadedIntegration, d: &DefaultAction, config: &Config) -> Result<String> {
    let room = actionbox_runtime::manifest::MAX_ID_BYTES.saturating_sub(d.name.len() + 1);
    let prefix: String = integ
        .config
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .take(room)
        .collect();
    if prefix.is_empty() {
        bail!(
            "{}: integration `{}`: its default action `{}` is also offered by another integration \
             and its name leaves no room for a prefix; set default_actions = false on one of them",
            config.at(integ.config.line),
            integ.config.name,
            d.name
        );
    }
    Ok(format!("{prefix}_{}", d.name))
}

/// `action` bound to its integration and to the component method it names,
/// with every parameter override checked against that method.
fn resolve_action(action: ActionConfig, integrations: &[LoadedIntegration], config: &Config) -> Result<CatalogAction> {
    let index = integrations
        .iter()
        .position(|i| i.config.name == action.integration)
        .ok_or_else(|| {
            anyhow!(
                "{}: action `{}`: unknown integration",
                config.at(action.line),
                action.name
            )
        })?;
    let manifest = integrations[index].component.manifest();
    let method = manifest.method(&action.method).cloned().ok_or_else(|| {
        anyhow!(
            "{}: action `{}` field `method`: the `{}` component offers no method `{}`; it offers: {}",
            config.at(action.method_line),
            action.name,
            manifest.integration,
            action.method,
            manifest.method_list()
        )
    })?;
    check_parameter_overrides(&action, &method, config)?;
    Ok(CatalogAction {
        config: action,
        method,
        integration: index,
    })
}

/// Every parameter `action` describes is one `method` takes.
fn check_parameter_overrides(action: &ActionConfig, method: &MethodSpec, config: &Config) -> Result<()> {
    for (param, line) in &action.parameter_lines {
        if !method.params.iter().any(|p| &p.name == param) {
            let known: Vec<&str> = method.params.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "{}: action `{}` parameter `{param}`: method {} has no such parameter; it takes: {}",
                config.at(*line),
                action.name,
                method.display_name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    Ok(())
}
