//! Workspaces: one `serve` for many merchants (`serve --store`). Each
//! workspace is a merchant's integrations and actions, kept in the store
//! (`actionbox-store`: SQLite, or PostgreSQL shared by replicas) and served
//! from a catalog built on demand and cached until the workspace changes.
//!
//! | piece | where |
//! |---|---|
//! | a workspace as `actionbox.toml`, checked by the config's own rules | `workspaces/doc.rs` |
//! | components compiled once per replica, shared by all workspaces | `workspaces/registry.rs` |
//! | quotas: calls in flight and per minute, per workspace | `workspaces/quota.rs` |
//! | history of invocations, written off the call's path | `workspaces/history.rs` |
//!
//! Every admin change is checked by building the workspace's catalog with
//! the change applied — the same checks `actionbox.toml` gets at load,
//! component methods and parameters included — before it is written; then
//! the workspace's cached catalog is dropped here at once, and on every other
//! replica when its change feed poll (every [`CHANGE_POLL`]) sees it. Calls
//! in flight finish on the catalog they started with.

pub mod doc;
pub mod history;
pub mod quota;
pub mod registry;
pub mod transfer;

use crate::catalog::ActionCatalog;
use crate::config::{KeySource, WorkspaceRules};
use actionbox_runtime::secret::ApiKey;
use actionbox_store::{KeyUpdate, Quotas, SecretText, Store, StoreError, WorkspaceSnapshot};
use anyhow::anyhow;
use doc::Entry;
use quota::QuotaGate;
use registry::ComponentRegistry;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Integrations one workspace may have: every one is a loaded catalog entry
/// and a key held in memory on every replica that serves the workspace.
pub const MAX_INTEGRATIONS_PER_WORKSPACE: usize = 32;
/// Custom actions one workspace may have (each is a tool offered to the
/// assistant; far more than any assistant can choose among).
pub const MAX_ACTIONS_PER_WORKSPACE: usize = 256;

/// Verified tokens a replica remembers at most (by digest); past it the
/// memory is cleared and tokens are checked against the store again.
pub const MAX_CACHED_TOKENS: usize = 65_536;

/// How often a replica asks the store what changed.
pub const CHANGE_POLL: Duration = Duration::from_millis(250);

/// Why a workspace request failed; the server maps each to a status.
#[derive(Debug)]
pub enum WorkspaceError {
    /// The request is wrong; the message names the field (400).
    Invalid(String),
    /// No such workspace, integration or action (404).
    NotFound(String),
    /// It exists already, or is in use (409).
    Conflict(String),
    /// The store failed (503): the message says what to do.
    Unavailable(String),
}

impl std::fmt::Display for WorkspaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkspaceError::Invalid(m)
            | WorkspaceError::NotFound(m)
            | WorkspaceError::Conflict(m)
            | WorkspaceError::Unavailable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for WorkspaceError {}

impl From<StoreError> for WorkspaceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => WorkspaceError::NotFound(e.to_string()),
            StoreError::Conflict { .. } => WorkspaceError::Conflict(e.to_string()),
            StoreError::Invalid { .. } => WorkspaceError::Invalid(e.to_string()),
            other => WorkspaceError::Unavailable(other.to_string()),
        }
    }
}

/// A result of a workspace operation.
pub type WsResult<T> = Result<T, WorkspaceError>;

/// A workspace being served: its catalog, as of store version `version`.
pub struct LiveWorkspace {
    /// Its actions, ready to run.
    pub catalog: Arc<ActionCatalog>,
    /// Names of its custom (stored) actions; the rest are default actions.
    pub custom_actions: Vec<String>,
}

/// How the workspaces of one replica are served.
pub struct WorkspaceOptions {
    /// What workspaces may configure.
    pub rules: WorkspaceRules,
    /// What history keeps.
    pub retention: actionbox_store::Retention,
}

/// All workspaces of one store, as this replica serves them.
pub struct Workspaces {
    store: Store,
    rules: WorkspaceRules,
    registry: ComponentRegistry,
    live: RwLock<HashMap<String, Arc<LiveWorkspace>>>,
    gates: Mutex<HashMap<String, Arc<QuotaGate>>>,
    generation: AtomicI64,
    /// Tokens verified against the store, by SHA-256 of the presented text:
    /// a request need not ask the store who it is. Dropped with their
    /// workspace's catalog on every change (a revocation is one), so a
    /// revoked token stops working here at once and on other replicas with
    /// the change feed.
    tokens: Mutex<HashMap<[u8; 32], actionbox_store::TokenInfo>>,
    /// Bumped by every invalidation, so a catalog built from a snapshot read
    /// before a change is not cached after it.
    invalidations: std::sync::atomic::AtomicU64,
    /// Where invocations are recorded.
    pub history: history::History,
}

impl Workspaces {
    /// Serve the workspaces of `store`, compiling components on `engine`.
    /// Starts the history writer and the change feed poll (needs a tokio
    /// runtime).
    pub async fn start(
        store: Store,
        engine: actionbox_runtime::engine::ActionEngine,
        options: WorkspaceOptions,
    ) -> anyhow::Result<Arc<Self>> {
        let (generation, _) = store.changes_since(i64::MAX).await?;
        let registry = ComponentRegistry::new(engine, store.clone(), options.rules.kinds.clone());
        let history = history::History::start(store.clone(), options.retention);
        let workspaces = Arc::new(Self {
            store,
            rules: options.rules,
            registry,
            live: RwLock::default(),
            gates: Mutex::default(),
            generation: AtomicI64::new(generation),
            invalidations: Default::default(),
            tokens: Mutex::default(),
            history,
        });
        tokio::spawn(follow_changes(Arc::downgrade(&workspaces)));
        Ok(workspaces)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The shared component registry.
    pub fn registry(&self) -> &ComponentRegistry {
        &self.registry
    }

    /// How many workspaces have a catalog loaded on this replica.
    pub fn loaded(&self) -> usize {
        self.live.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Workspace `ws` ready to serve: its cached catalog, or one built now
    /// from the store.
    pub async fn live(&self, ws: &str) -> WsResult<Arc<LiveWorkspace>> {
        if let Some(live) = self.live.read().unwrap_or_else(|p| p.into_inner()).get(ws) {
            return Ok(live.clone());
        }
        let before = self.invalidations.load(Ordering::Acquire);
        let snapshot = self.snapshot(ws).await?;
        self.gate(ws, snapshot.workspace.quotas);
        let live = Arc::new(self.build(&snapshot, None).await.map_err(|e| {
            WorkspaceError::Unavailable(format!(
                "workspace `{ws}` cannot be served as stored: {e:#}; fix it through the admin API"
            ))
        })?);
        // Cache it unless a change arrived while it was built (the next call
        // builds again, from the newer state).
        if self.invalidations.load(Ordering::Acquire) == before {
            self.live
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ws.to_string(), live.clone());
        }
        Ok(live)
    }

    /// Whether `live` is still what `ws` is served with (no change since it
    /// was built): cheap, it builds nothing.
    pub fn still_serves(&self, ws: &str, live: &Arc<LiveWorkspace>) -> bool {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(ws)
            .is_some_and(|current| Arc::ptr_eq(current, live))
    }

    /// The quota gate of `ws` (created, or updated to `quotas`).
    fn gate(&self, ws: &str, quotas: Quotas) -> Arc<QuotaGate> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        let gate = gates
            .entry(ws.to_string())
            .or_insert_with(|| Arc::new(QuotaGate::new(quotas)));
        gate.update(quotas);
        gate.clone()
    }

    /// The quota gate calls of `ws` pass (loaded with its catalog).
    pub async fn quota_gate(&self, ws: &str) -> WsResult<Arc<QuotaGate>> {
        if let Some(g) = self.gates.lock().unwrap_or_else(|p| p.into_inner()).get(ws) {
            return Ok(g.clone());
        }
        let workspace = self.store.workspace(ws).await?.ok_or_else(|| not_found_workspace(ws))?;
        Ok(self.gate(ws, workspace.quotas))
    }

    async fn snapshot(&self, ws: &str) -> WsResult<WorkspaceSnapshot> {
        self.store.snapshot(ws).await?.ok_or_else(|| not_found_workspace(ws))
    }

    /// Build the catalog of `snapshot`, with `change` applied first.
    async fn build(&self, snapshot: &WorkspaceSnapshot, change: Option<&Change<'_>>) -> anyhow::Result<LiveWorkspace> {
        let ws = snapshot.workspace.id.as_str();
        let mut integrations: Vec<(String, Value, Option<ApiKey>)> = Vec::new();
        for (record, sealed) in &snapshot.integrations {
            let key = match sealed {
                Some(sealed) => Some(api_key(self.store.unseal(sealed)?)?),
                None => None,
            };
            integrations.push((record.name.clone(), record.spec.clone(), key));
        }
        let mut actions: Vec<(String, Value)> = snapshot
            .actions
            .iter()
            .map(|a| (a.name.clone(), a.spec.clone()))
            .collect();
        if let Some(change) = change {
            change.apply(&mut integrations, &mut actions)?;
            if integrations.len() > MAX_INTEGRATIONS_PER_WORKSPACE {
                return Err(anyhow!(
                    "a workspace may have at most {MAX_INTEGRATIONS_PER_WORKSPACE} integrations; delete one first"
                ));
            }
            if actions.len() > MAX_ACTIONS_PER_WORKSPACE {
                return Err(anyhow!(
                    "a workspace may have at most {MAX_ACTIONS_PER_WORKSPACE} custom actions; delete one first"
                ));
            }
        }
        let integration_entries: Vec<Entry<'_>> = integrations
            .iter()
            .map(|(name, spec, _)| Entry { name, spec })
            .collect();
        let action_entries: Vec<Entry<'_>> = actions.iter().map(|(name, spec)| Entry { name, spec }).collect();
        let text = doc::document(&integration_entries, &action_entries)?;
        let mut config = doc::config(&text, ws, &self.rules)?;
        for integ in &mut config.integrations {
            if let Some((_, _, Some(key))) = integrations.iter().find(|(n, _, _)| *n == integ.name) {
                integ.key_source = KeySource::Stored(key.clone());
            }
        }
        let catalog = ActionCatalog::build(config, &self.registry).await?;
        Ok(LiveWorkspace {
            catalog: Arc::new(catalog),
            custom_actions: actions.into_iter().map(|(n, _)| n).collect(),
        })
    }

    /// Check `change` against workspace `ws` as it is now: the catalog it
    /// would have must build.
    async fn check(&self, ws: &str, change: &Change<'_>) -> WsResult<()> {
        let snapshot = self.snapshot(ws).await?;
        self.build(&snapshot, Some(change))
            .await
            .map(drop)
            .map_err(|e| WorkspaceError::Invalid(format!("{e:#}")))
    }

    /// Drop the cached catalog of `ws`: the next call builds it anew.
    fn invalidate(&self, ws: &str) {
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        self.live.write().unwrap_or_else(|p| p.into_inner()).remove(ws);
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, t| t.workspace != ws);
    }

    /// Who `presented` is: a remembered verification, or the store's.
    pub async fn authenticate(&self, presented: &str) -> WsResult<Option<actionbox_store::TokenInfo>> {
        use sha2::{Digest, Sha256};
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if let Some(t) = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&digest) {
            return Ok(Some(t.clone()));
        }
        let before = self.invalidations.load(Ordering::Acquire);
        let Some(token) = self.store.authenticate(presented).await? else {
            return Ok(None);
        };
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        // Not remembered when a change (perhaps its revocation) arrived meanwhile.
        if self.invalidations.load(Ordering::Acquire) == before {
            if tokens.len() >= MAX_CACHED_TOKENS {
                tokens.clear();
            }
            tokens.insert(digest, token.clone());
        }
        Ok(Some(token))
    }

    /// Revoke token `id` of `ws`: refused from now on, here at once.
    pub async fn revoke_token(&self, ws: &str, id: &str, actor: &str) -> WsResult<()> {
        self.store.revoke_token(ws, id, actor).await?;
        self.invalidate(ws);
        Ok(())
    }

    /// Create or replace integration `name` of `ws` from a request body:
    /// its fields as in `actionbox.toml`, and `api_key` (write-only: absent
    /// keeps the stored key, `null` removes it). Returns its view and whether
    /// it was created.
    pub async fn put_integration(&self, ws: &str, name: &str, body: Value, actor: &str) -> WsResult<(Value, bool)> {
        let Value::Object(mut body) = body else {
            return Err(invalid("send the integration as a JSON object, e.g. {\"kind\": \"shipstation\", \"component\": \"sha256:…\", \"api_key\": \"…\"}"));
        };
        // The key is checked once, here; the checked key is what the change is
        // tried with and what the store seals.
        let new_key: Option<Option<ApiKey>> = match body.remove("api_key") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(k)) => {
                Some(Some(ApiKey::new(&k).map_err(|e| {
                    invalid(format!("integration `{name}` field `api_key`: {e:#}"))
                })?))
            }
            Some(_) => {
                return Err(invalid(format!(
                    "integration `{name}` field `api_key` must be a string"
                )))
            }
        };
        let key = match &new_key {
            None => KeyUpdate::Keep,
            Some(None) => KeyUpdate::Clear,
            Some(Some(k)) => KeyUpdate::Set(SecretText::new(k.reveal_for_sealing())),
        };
        let spec =
            doc::spec(body, "integration", name, doc::INTEGRATION_FIELDS).map_err(|e| invalid(format!("{e:#}")))?;
        self.check(
            ws,
            &Change::Integration {
                name,
                spec: Some(&spec),
                key: new_key,
            },
        )
        .await?;
        let (record, created) = self.store.put_integration(ws, name, &spec, key, actor).await?;
        self.invalidate(ws);
        Ok((integration_view(&record), created))
    }

    /// Delete integration `name` of `ws`; refused while custom actions use it.
    pub async fn delete_integration(&self, ws: &str, name: &str, actor: &str) -> WsResult<()> {
        let actions = self.store.actions(ws).await?;
        let users: Vec<&str> = actions
            .iter()
            .filter(|a| a.spec.get("integration").and_then(Value::as_str) == Some(name))
            .map(|a| a.name.as_str())
            .collect();
        if !users.is_empty() {
            return Err(WorkspaceError::Conflict(format!(
                "integration `{name}` is used by the actions {}; delete them first",
                users.join(", ")
            )));
        }
        self.store.delete_integration(ws, name, actor).await?;
        self.invalidate(ws);
        Ok(())
    }

    /// The integrations of `ws` as the admin API shows them (no key).
    pub async fn integrations(&self, ws: &str) -> WsResult<Vec<Value>> {
        self.require_workspace(ws).await?;
        Ok(self
            .store
            .integrations(ws)
            .await?
            .iter()
            .map(integration_view)
            .collect())
    }

    /// Create or replace custom action `name` of `ws` from a request body
    /// (its `[[action]]` fields).
    pub async fn put_action(&self, ws: &str, name: &str, body: Value, actor: &str) -> WsResult<(Value, bool)> {
        let Value::Object(body) = body else {
            return Err(invalid(
                "send the action as a JSON object, e.g. {\"integration\": \"main\", \"method\": \"trackOrder\"}",
            ));
        };
        let spec = doc::spec(body, "action", name, doc::ACTION_FIELDS).map_err(|e| invalid(format!("{e:#}")))?;
        self.check(
            ws,
            &Change::Action {
                name,
                spec: Some(&spec),
            },
        )
        .await?;
        let (record, created) = self.store.put_action(ws, name, &spec, actor).await?;
        self.invalidate(ws);
        let view = self
            .actions(ws)
            .await?
            .into_iter()
            .find(|a| a["name"] == record.name.as_str())
            .ok_or_else(|| WorkspaceError::Unavailable(format!("action `{name}` was saved but is not served")))?;
        Ok((view, created))
    }

    /// The tool definition action `name` of `ws` would have with `body`,
    /// checked exactly as a save checks it; nothing is written.
    pub async fn preview_action(&self, ws: &str, name: &str, body: Value) -> WsResult<crate::catalog::ToolDefinition> {
        let Value::Object(body) = body else {
            return Err(invalid("send the action as a JSON object"));
        };
        let spec = doc::spec(body, "action", name, doc::ACTION_FIELDS).map_err(|e| invalid(format!("{e:#}")))?;
        let snapshot = self.snapshot(ws).await?;
        let change = Change::Action {
            name,
            spec: Some(&spec),
        };
        let live = self
            .build(&snapshot, Some(&change))
            .await
            .map_err(|e| WorkspaceError::Invalid(format!("{e:#}")))?;
        live.catalog
            .tools(None, None)
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| WorkspaceError::Invalid(format!("action `{name}` would not be served")))
    }

    /// Delete custom action `name` of `ws` (a default action it replaced
    /// comes back).
    pub async fn delete_action(&self, ws: &str, name: &str, actor: &str) -> WsResult<()> {
        self.store.delete_action(ws, name, actor).await?;
        self.invalidate(ws);
        Ok(())
    }

    /// Every action of `ws` — custom ones and the defaults its integrations
    /// add — as the admin API shows them.
    pub async fn actions(&self, ws: &str) -> WsResult<Vec<Value>> {
        let live = self.live(ws).await?;
        Ok(live
            .catalog
            .actions()
            .iter()
            .map(|a| {
                let c = &a.config;
                let parameters: Map<String, Value> = c
                    .parameter_descriptions
                    .iter()
                    .map(|(p, d)| (p.clone(), json!({ "description": d })))
                    .collect();
                json!({
                    "name": c.name,
                    "integration": c.integration,
                    "method": c.method,
                    "description": c.description,
                    "execution": c.execution,
                    "trigger": c.trigger,
                    "parameters": parameters,
                    "response_instructions": c.response_instructions,
                    "default": !live.custom_actions.contains(&c.name),
                })
            })
            .collect())
    }

    /// Set the quotas of `ws`.
    pub async fn set_quotas(&self, ws: &str, quotas: Quotas, actor: &str) -> WsResult<actionbox_store::Workspace> {
        // The store refuses a quota of 0 (400, naming both fields).
        let w = self.store.set_quotas(ws, quotas, actor).await?;
        self.gate(ws, w.quotas);
        Ok(w)
    }

    /// Delete workspace `ws` and everything in it.
    pub async fn delete_workspace(&self, ws: &str, actor: &str) -> WsResult<()> {
        self.store.delete_workspace(ws, actor).await?;
        self.invalidate(ws);
        self.gates.lock().unwrap_or_else(|p| p.into_inner()).remove(ws);
        Ok(())
    }

    async fn require_workspace(&self, ws: &str) -> WsResult<()> {
        match self.store.workspace(ws).await? {
            Some(_) => Ok(()),
            None => Err(not_found_workspace(ws)),
        }
    }

    /// Apply what changed in the store since the last poll.
    async fn poll_changes(&self) -> anyhow::Result<()> {
        let since = self.generation.load(Ordering::Acquire);
        let (now, changed) = self.store.changes_since(since).await?;
        if changed.is_empty() && now == since {
            return Ok(());
        }
        for ws in &changed {
            self.invalidate(ws);
        }
        for ws in &changed {
            if let Ok(Some(w)) = self.store.workspace(ws).await {
                if let Some(gate) = self.gates.lock().unwrap_or_else(|p| p.into_inner()).get(ws) {
                    gate.update(w.quotas);
                }
            }
        }
        self.generation.store(now, Ordering::Release);
        Ok(())
    }
}

/// Poll the store's change feed until the workspaces are dropped.
async fn follow_changes(workspaces: std::sync::Weak<Workspaces>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(CHANGE_POLL).await;
        let Some(w) = workspaces.upgrade() else { return };
        match w.poll_changes().await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the store's change feed answers again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::error!("cannot read the store's change feed (changes from other replicas wait): {e:#}");
            }
            Err(_) => {}
        }
    }
}

/// A change to check before it is written.
enum Change<'a> {
    /// Integration `name` put (`spec`) or deleted (`None`); `key`: `None`
    /// keeps the stored one.
    Integration {
        name: &'a str,
        spec: Option<&'a Value>,
        key: Option<Option<ApiKey>>,
    },
    /// Action `name` put or deleted.
    Action { name: &'a str, spec: Option<&'a Value> },
}

impl Change<'_> {
    fn apply(
        &self,
        integrations: &mut Vec<(String, Value, Option<ApiKey>)>,
        actions: &mut Vec<(String, Value)>,
    ) -> anyhow::Result<()> {
        match self {
            Change::Integration { name, spec, key } => {
                let existing = integrations.iter().position(|(n, _, _)| n == name);
                match (existing, spec) {
                    (Some(i), Some(spec)) => {
                        integrations[i].1 = (*spec).clone();
                        if let Some(key) = key {
                            integrations[i].2 = key.clone();
                        }
                    }
                    (None, Some(spec)) => {
                        integrations.push((name.to_string(), (*spec).clone(), key.clone().flatten()));
                    }
                    (Some(i), None) => {
                        integrations.remove(i);
                    }
                    (None, None) => return Err(anyhow!("no integration is named `{name}`")),
                }
            }
            Change::Action { name, spec } => {
                let existing = actions.iter().position(|(n, _)| n == name);
                match (existing, spec) {
                    (Some(i), Some(spec)) => actions[i].1 = (*spec).clone(),
                    (None, Some(spec)) => actions.push((name.to_string(), (*spec).clone())),
                    (Some(i), None) => {
                        actions.remove(i);
                    }
                    (None, None) => return Err(anyhow!("no action is named `{name}`")),
                }
            }
        }
        Ok(())
    }
}

fn api_key(secret: SecretText) -> anyhow::Result<ApiKey> {
    ApiKey::new(secret.expose())
}

fn invalid(message: impl Into<String>) -> WorkspaceError {
    WorkspaceError::Invalid(message.into())
}

fn not_found_workspace(ws: &str) -> WorkspaceError {
    WorkspaceError::NotFound(format!(
        "no workspace is named `{}`",
        actionbox_runtime::error::guest_text(ws, 64)
    ))
}

/// An integration as the admin API shows it: its fields, and whether a key
/// is set with its fingerprint — never the key.
pub fn integration_view(record: &actionbox_store::IntegrationRecord) -> Value {
    let mut view = Map::new();
    view.insert("name".into(), json!(record.name));
    if let Value::Object(spec) = &record.spec {
        for field in doc::INTEGRATION_FIELDS {
            let value = spec.get(*field).cloned().unwrap_or_else(|| match *field {
                // What an absent field means, as the config file's defaults.
                "timeout" => json!(actionbox_runtime::deadline::DEFAULT_TIMEOUT_SECS),
                "default_actions" => json!(true),
                "limits" => json!({}),
                _ => Value::Null,
            });
            view.insert((*field).into(), value);
        }
    }
    view.insert(
        "api_key".into(),
        match &record.key {
            Some(k) => json!({ "set": true, "fingerprint": k.fingerprint, "set_ms": k.set_ms }),
            None => json!({ "set": false }),
        },
    );
    view.insert("updated_ms".into(), json!(record.updated_ms));
    Value::Object(view)
}
