//! Host bindings of the `actionbox:action/smart-action` world (`wit/world.wit`).
//!
//! `wasi:*` interfaces are mapped to wasmtime-wasi(-http)'s own bindings so
//! their implementations (with our outbound hook) serve the action;
//! `wasi:config/store` is linked from wasmtime-wasi-config (see `engine.rs`),
//! so the bindings generated for it here are never used.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "actionbox:action/smart-action",
    exports: { default: async },
    require_store_data_send: true,
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

pub use self::actionbox::action::log;
pub use self::exports::actionbox::action::action as types;

/// The contract version this host implements, as it appears in component
/// import and export names (`actionbox:action/action@0.2.0`).
pub const CONTRACT_VERSION: &str = "0.2.0";
