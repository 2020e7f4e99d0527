//! The records the store reads and writes. Times are Unix milliseconds.

use crate::secret::{SealedKey, SecretText};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which database a [`crate::Store`] speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One file, the default for a single server.
    Sqlite,
    /// A shared server, for many replicas.
    Postgres,
}

/// One merchant's space: its integrations, actions, tokens and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    /// Identifier `[a-z0-9][a-z0-9_-]{0,62}`, used in URLs.
    pub id: String,
    /// What people see.
    pub display_name: String,
    /// When it was created.
    pub created_ms: i64,
    /// The store generation of its last change; a replica reloads it when this moves.
    pub version: i64,
    /// Its limits, so one merchant cannot starve the others.
    pub quotas: Quotas,
}

/// Per-workspace call limits enforced by the server.
#[derive(Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct Quotas {
    /// Calls running at the same time.
    pub max_concurrent_calls: u32,
    /// Calls started per minute.
    pub calls_per_minute: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_concurrent_calls: 16,
            calls_per_minute: 600,
        }
    }
}

/// A registered component (content-addressed, shared by all workspaces).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The integration kind the host's check found.
    pub kind: String,
    /// The manifest the host's check found.
    pub manifest: Value,
    /// When it was first registered.
    pub registered_ms: i64,
}

/// What [`crate::Store::put_integration`] does with the stored API key.
#[derive(Debug, Clone)]
pub enum KeyUpdate {
    /// Keep the stored key (on create: no key).
    Keep,
    /// Seal and store this key.
    Set(SecretText),
    /// Remove the stored key.
    Clear,
}

/// An integration as listed: its spec and whether a key is set — never the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationRecord {
    /// Name, unique in its workspace.
    pub name: String,
    /// `actionbox.toml`'s `[[integration]]` fields minus name and key.
    pub spec: Value,
    /// The stored key's fingerprint, if a key is set.
    pub key: Option<KeyInfo>,
    /// When it was created.
    pub created_ms: i64,
    /// When it was last replaced.
    pub updated_ms: i64,
}

/// What may be shown about a stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// First 8 hex of SHA-256(key): enough to tell keys apart, useless to guess one.
    pub fingerprint: String,
    /// When it was set.
    pub set_ms: i64,
}

/// A custom action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Name, unique in its workspace.
    pub name: String,
    /// `actionbox.toml`'s `[[action]]` fields minus name.
    pub spec: Value,
    /// When it was created.
    pub created_ms: i64,
    /// When it was last replaced.
    pub updated_ms: i64,
}

/// Everything needed to build one workspace's catalog, read consistently.
/// (Not `Serialize`: it carries sealed keys, which are no one's output.)
#[derive(Debug, Clone)]
pub struct WorkspaceSnapshot {
    /// The workspace, with the version this snapshot corresponds to.
    pub workspace: Workspace,
    /// Its integrations, each with its sealed key if one is set.
    pub integrations: Vec<(IntegrationRecord, Option<SealedKey>)>,
    /// Its actions.
    pub actions: Vec<ActionRecord>,
}

/// What a workspace token allows.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Manage the workspace's integrations, actions, debugger and history.
    Admin,
    /// Tools, invoke, session start, MCP.
    Assistant,
}

impl Scope {
    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Assistant => "assistant",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Scope> {
        match s {
            "admin" => Some(Scope::Admin),
            "assistant" => Some(Scope::Assistant),
            _ => None,
        }
    }
}

/// A workspace token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Public id (12 lower-hex), the middle part of the token text.
    pub id: String,
    /// The workspace it is for.
    pub workspace: String,
    /// What it allows.
    pub scopes: Vec<Scope>,
    /// A note for people ("dashboard", "claude desktop").
    pub label: String,
    /// When it was minted.
    pub created_ms: i64,
}

/// An invocation to record, as the host saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewInvocation {
    /// The action called.
    pub action: String,
    /// The integration it ran against.
    pub integration: String,
    /// The component method.
    pub method: String,
    /// `"ok"` or the error kind.
    pub outcome: String,
    /// When it started.
    pub started_ms: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// The debugger report the host produced, already without secrets.
    pub trace: Value,
}

/// One history row without its trace (for listings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationSummary {
    /// Id, increasing.
    pub id: i64,
    /// The action called.
    pub action: String,
    /// The integration it ran against.
    pub integration: String,
    /// The component method.
    pub method: String,
    /// `"ok"` or the error kind.
    pub outcome: String,
    /// When it started.
    pub started_ms: i64,
    /// How long it took.
    pub duration_ms: i64,
}

/// One history row with its trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// The row.
    pub summary: InvocationSummary,
    /// The debugger report.
    pub trace: Value,
}

/// Which history rows to list (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationFilter {
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only started at or after this time.
    pub since_ms: Option<i64>,
    /// At most this many; clamped to 1..=500 so one request cannot read the whole history.
    pub limit: u32,
}

impl Default for InvocationFilter {
    fn default() -> Self {
        InvocationFilter {
            action: None,
            outcome: None,
            since_ms: None,
            limit: 100,
        }
    }
}

/// How much history to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Keep the newest N per workspace.
    pub keep_last: Option<u32>,
    /// Drop rows that started more than D days ago.
    pub keep_days: Option<u32>,
}

/// One audit log entry: who changed what, without secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing sequence number.
    pub seq: i64,
    /// When.
    pub at_ms: i64,
    /// Who (the token id or "operator" as the host names it).
    pub actor: String,
    /// The workspace concerned, if any.
    pub workspace: Option<String>,
    /// What, e.g. `integration.put`.
    pub action: String,
    /// The object's name.
    pub target: String,
    /// The object before (None when created).
    pub before: Option<Value>,
    /// The object after (None when deleted).
    pub after: Option<Value>,
}

/// Which audit entries to list (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only this workspace's entries.
    pub workspace: Option<String>,
    /// Only entries at or after this time.
    pub since_ms: Option<i64>,
    /// At most this many; clamped to 1..=500.
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            workspace: None,
            since_ms: None,
            limit: 100,
        }
    }
}
