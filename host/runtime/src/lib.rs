//! actionbox-runtime: the sandbox that runs untrusted smart-action
//! WebAssembly components (contract `actionbox:action@0.2.0`, `wit/world.wit`)
//! under the operator's policy. No command line, server or config format:
//! those live in the `actionbox` crate, so a platform can embed this one.
//!
//! Where things live:
//! - [`engine`]: the wasmtime engine, linker, instance pool sizing, epoch ticker, loading components;
//! - [`component`]: a loaded action — describe, invoke, test-connection, each in a fresh store under its deadline;
//! - [`report`]: the invocation report of one call (one constructor, the outcome as JSON);
//! - `failure`: a trap or host error turned into the right typed error;
//! - [`manifest`]: what an action says about itself, checked before use;
//! - [`kinds`]: the integration-kind registry — where each kind's key may go (the trust boundary);
//! - [`outbound`]: the `wasi:http` hook — admit, then send:
//!   - [`outbound::policy`]: origin, headers, which header carries the key, the address check;
//!   - [`outbound::base_url`]: the operator's base URL and the non-public addresses it opens;
//!   - [`outbound::address`]: the IANA special-purpose address ranges the policy refuses;
//!   - `outbound::transport`: resolve, connect, TLS, one exchange on a checked address;
//!   - [`outbound::body`]: size-capped bodies, the key scrubbed from responses;
//!   - [`outbound::record`]: what a call's requests did and what the sandbox stopped, bounded;
//!   - `outbound::trace`: each request's span, and the `traceparent` it may carry upstream;
//!   - [`outbound::replay`]: recording a call's exchanges (never the key) and answering from a recording;
//!   - [`outbound::pool`]: keep-alive connections, keyed by checked peer, address and credential;
//! - [`limits`]: every per-call limit (memory, host resources, requests, log, …);
//! - [`deadline`]: the 10–180 s timeout and the per-call deadline;
//! - [`state`]: the store's data (WASI contexts with every capability off, settings, guest log);
//! - [`integration`]: base URL, timeout, key and limits of one call;
//! - [`artifact_cache`]: precompiled components, keyed by content and engine, tagged;
//! - [`check`]: the gate a platform runs on a component before accepting it (`actionbox check`, registration);
//! - [`secret`]: the API key type that never prints;
//! - [`telemetry`]: the OpenTelemetry spans of a call (API only; the application installs the exporter);
//! - [`error`]: the typed failure of a call.
//!
//! Modules depend one way: `engine` → `component` → `telemetry`, `report`,
//! `failure`, `outbound`, `state`; `outbound` depends on none of those.
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

pub mod artifact_cache;
mod bindings;
pub mod check;
pub mod component;
pub mod deadline;
pub mod engine;
pub mod error;
mod failure;
pub mod integration;
pub mod kinds;
pub mod limits;
pub mod manifest;
pub mod outbound;
pub mod report;
pub mod secret;
pub mod state;
pub mod telemetry;

pub use bindings::CONTRACT_VERSION;
pub use component::ActionComponent;
pub use deadline::{ActionDeadline, ActionTimeout};
pub use engine::ActionEngine;
pub use error::InvokeError;
pub use integration::IntegrationSettings;
pub use kinds::KindRegistry;
pub use outbound::{BaseUrl, CredentialHeader};
pub use report::InvocationReport;
pub use secret::ApiKey;
pub use telemetry::CallLabels;
