//! actionbox-runtime: the sandbox that runs untrusted smart-action
//! WebAssembly components (contract `actionbox:action@0.2.0`, `wit/world.wit`)
//! under the operator's policy. No command line, server or config format:
//! those live in the `actionbox` crate, so a platform can embed this one.
//!
//! Where things live:
//! - [`engine`]: the wasmtime engine, linker, instance pool, epoch ticker, loading components;
//! - [`invoke`]: one call in a fresh store under its deadline, and its report;
//! - [`manifest`]: what an action says about itself, checked before use;
//! - [`kinds`]: the integration-kind registry — where each kind's key may go (the trust boundary);
//! - [`outbound`]: the `wasi:http` hook — origin check, address checks, key injection and scrubbing;
//! - [`address`]: the IANA special-purpose address ranges the hook refuses;
//! - [`conn_pool`]: keep-alive connections, keyed by checked origin and address;
//! - [`limits`]: every per-call limit (memory, host resources, requests, log, …);
//! - [`deadline`]: the 10–180 s timeout and the per-call deadline;
//! - [`state`]: the store's data (WASI contexts with every capability off, settings, guest log);
//! - [`integration`]: base URL, timeout, key and limits of one call;
//! - [`artifact_cache`]: precompiled components, keyed by content and engine, tagged;
//! - [`secret`]: the API key type that never prints;
//! - [`error`]: the typed failure of a call.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use actionbox_runtime::{ActionEngine, BaseUrl, IntegrationSettings};
//! // One engine per process: it owns the compiled code, the pool and the epoch ticker.
//! let engine = ActionEngine::new()?;
//! // Compile (or load the tagged precompiled artifact), link, and check the manifest.
//! let action = engine.load("shipstation.wasm".as_ref()).await?;
//! // The operator's settings: where the key may go, and the key itself.
//! let settings = IntegrationSettings::new(BaseUrl::parse("https://api.shipstation.com")?, None);
//! // A fresh instance per call, stopped at the integration's timeout.
//! let report = action.invoke(&settings, "trackOrder", r#"{"order_id":"1001"}"#).await;
//! println!("{:?}", report.outcome);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod address;
pub mod artifact_cache;
mod bindings;
pub mod conn_pool;
pub mod deadline;
pub mod engine;
pub mod error;
pub mod integration;
pub mod invoke;
pub mod kinds;
pub mod limits;
pub mod manifest;
pub mod outbound;
pub mod secret;
pub mod state;

pub use bindings::CONTRACT_VERSION;
pub use deadline::{ActionDeadline, ActionTimeout};
pub use engine::{ActionComponent, ActionEngine};
pub use error::InvokeError;
pub use integration::{BaseUrl, IntegrationSettings};
pub use invoke::InvocationReport;
pub use kinds::{CredentialHeader, KindRegistry};
pub use secret::ApiKey;
