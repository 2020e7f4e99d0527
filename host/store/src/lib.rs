//! The workspace store: what `actionbox serve --store …` keeps for many
//! merchants — workspaces, registered components, integrations with their
//! API keys sealed, custom actions, tokens, invocation history and the audit
//! log — in SQLite (one file, the default) or PostgreSQL (many replicas).
//!
//! The store is persistence, not policy: integration and action specs are
//! JSON objects whose fields are `actionbox.toml`'s; the host validates them
//! (one code path with the config file) before they are written here.
//!
//! Security properties this crate owns:
//! - an API key is written only sealed (AES-256-GCM under the master key,
//!   [`MasterKey`]) and is read back only through [`Store::unseal`]; no
//!   listing, audit entry or error carries it;
//! - a token is stored as the SHA-256 of its secret; the secret is shown once,
//!   by [`Store::mint_token`];
//! - every change writes its audit entry in the same transaction, so there is
//!   no change without one.

//!
//! Replicas sharing one PostgreSQL database follow each other through
//! [`Store::changes_since`]: every change bumps one generation counter in the
//! same transaction, so "what changed after generation N" is exact.
//!
//! ```no_run
//! # async fn demo() -> Result<(), actionbox_store::StoreError> {
//! use actionbox_store::{KeyUpdate, MasterKey, SecretText, Store};
//! let master = MasterKey::from_file("/etc/actionbox/master.key".as_ref())?;
//! let store = Store::open("sqlite:/var/lib/actionbox/store.db", Some(master)).await?;
//! store.create_workspace("acme", "Acme Inc.", "operator").await?;
//! let spec = serde_json::json!({ "kind": "shipstation", "timeout": 10 });
//! let key = KeyUpdate::Set(SecretText::new("the-api-key"));
//! store.put_integration("acme", "shipstation", &spec, key, "operator").await?;
//! // Later, building the catalog: the key leaves the store only here.
//! let snapshot = store.snapshot("acme").await?.expect("just created");
//! if let (_, Some(sealed)) = &snapshot.integrations[0] {
//!     let _key = store.unseal(sealed)?;
//! }
//! # Ok(()) }
//! ```

mod actions;
mod audit;
mod changes;
mod components;
mod error;
mod history;
mod integrations;
mod records;
mod schema;
mod secret;
mod store;
mod tokens;
mod workspaces;

pub use error::{Result, StoreError};
pub use records::{
    ActionRecord, AuditEntry, AuditFilter, Backend, ComponentInfo, IntegrationRecord, Invocation, InvocationFilter,
    InvocationSummary, KeyInfo, KeyUpdate, NewInvocation, Quotas, Retention, Scope, TokenInfo, Workspace,
    WorkspaceSnapshot,
};
pub use schema::SCHEMA_VERSION;
pub use secret::{random_hex, MasterKey, SealedKey, SecretText, ValueSealer};
pub use store::{is_workspace_id, Store};
pub use tokens::TOKEN_PREFIX;
