//! actionbox: the application around the sandbox — the configuration file,
//! the catalog of configured actions, and the three ways to reach them (the
//! command line, `serve`'s HTTP API, MCP over stdio). The sandbox itself is
//! the `actionbox-runtime` crate, re-exported here as [`runtime`].
//!
//! Where things live:
//! - [`config`]: `actionbox.toml` — kinds, integrations and custom actions;
//! - [`catalog`]: the configured actions — default and custom, tool definitions, session start, invoke, Test;
//! - [`debugger`]: the Action Debugger's trace;
//! - [`present`]: what people and assistants see — tool lists, error bodies, HTTP statuses;
//! - [`server`] and [`metrics`]: `actionbox serve`, the platform's HTTP API;
//! - [`mcp`]: `actionbox mcp`, the configured actions as an MCP server over stdio;
//! - [`telemetry`]: OpenTelemetry export (OTLP, `OTEL_*` variables) and incoming trace context;
//! - [`cli`]: the `actionbox` command line, one function per subcommand.

pub use actionbox_runtime as runtime;

pub mod catalog;
pub mod cli;
pub mod config;
pub mod debugger;
pub mod mcp;
pub mod metrics;
pub mod present;
pub mod server;
pub mod telemetry;
pub mod workspaces;

pub use catalog::{ActionCatalog, ActionRun, ToolDefinition};
pub use config::Config;
