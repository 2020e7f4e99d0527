//! The end-to-end tests, one module per area, in one test binary so
//! wasmtime is linked once (the pattern of wasmtime's `tests/all/main.rs`).
//! Run one area with `cargo test -p actionbox-e2e -- <module>::`.

mod artifact_cache;
mod check;
mod cli;
mod config;
mod connection_reuse;
mod console;
mod console_sessions;
mod host_budget;
mod hostile;
mod hostile_manifests;
mod jco;
mod load;
mod mcp_remote;
mod python_action;
mod replay;
mod serve;
mod serve_hostile_clients;
mod telemetry;
mod tls;
mod track_order;
mod upstream_faults;
mod workspaces;
mod workspaces_admin;
mod workspaces_ops;
