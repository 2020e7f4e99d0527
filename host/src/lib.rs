//! actionbox: a sandbox host for untrusted smart-action WebAssembly components.
//!
//! Where things live:
//! - [`engine`]: the wasmtime engine, linker, epoch ticker, loading components;
//! - [`artifact_cache`]: precompiled components, keyed by content and engine;
//! - [`invoke`]: running one call in a fresh store under its deadline;
//! - [`deadline`]: the 10–180 s timeout and the per-call deadline;
//! - [`kinds`]: the integration-kind registry — where each kind's key may go (the trust boundary);
//! - [`outbound`]: the `wasi:http` hook — origin check, address checks, key injection and scrubbing;
//! - [`address`]: the IANA special-purpose address ranges the hook refuses;
//! - [`limits`]: every per-call limit (memory, host resources, requests, log, …);
//! - [`state`]: the store's data (WASI contexts with every capability off, guest log);
//! - [`integration`]: base URL, timeout, key and limits of an integration;
//! - [`secret`]: the API key type that never prints;
//! - [`error`]: the typed failure of a call;
//! - [`config`]: `actionbox.toml` — integrations and custom actions;
//! - [`catalog`]: the configured actions — tool definitions, session start, invoke, Test;
//! - [`debugger`]: the Action Debugger's trace;
//! - [`present`]: what people and assistants see — tool lists, error bodies, HTTP statuses;
//! - [`server`] and [`metrics`]: `actionbox serve`, the platform's HTTP API;
//! - [`mcp`]: `actionbox mcp`, the configured actions as an MCP server over stdio;
//! - [`cli`]: the `actionbox` command line.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use actionbox::{ActionEngine, BaseUrl, IntegrationSettings};
//! let engine = ActionEngine::new()?;
//! let action = engine.load("shipstation.wasm".as_ref()).await?;
//! let settings = IntegrationSettings::new(BaseUrl::parse("https://api.shipstation.com")?, None);
//! let report = action.invoke(&settings, "trackOrder", r#"{"order_id":"1001"}"#).await;
//! println!("{:?}", report.outcome);
//! # Ok(()) }
//! ```

pub mod address;
pub mod artifact_cache;
pub mod bindings;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod conn_pool;
pub mod deadline;
pub mod debugger;
pub mod engine;
pub mod error;
pub mod integration;
pub mod invoke;
pub mod kinds;
pub mod limits;
pub mod manifest;
pub mod mcp;
pub mod metrics;
pub mod outbound;
pub mod present;
pub mod secret;
pub mod server;
pub mod state;

pub use catalog::{ActionCatalog, ActionRun, ToolDefinition};
pub use config::Config;
pub use deadline::{ActionDeadline, ActionTimeout};
pub use engine::{ActionComponent, ActionEngine};
pub use error::InvokeError;
pub use integration::{BaseUrl, IntegrationSettings};
pub use invoke::InvocationReport;
pub use kinds::{CredentialHeader, KindRegistry};
pub use secret::ApiKey;
