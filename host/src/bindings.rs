//! Host bindings of the `actionbox:action/smart-action` world (`wit/world.wit`).
//!
//! `wasi:*` interfaces are mapped to wasmtime-wasi(-http)'s own bindings so
//! their implementations (with our outbound hook) serve the action.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "actionbox:action/smart-action",
    exports: { default: async },
    require_store_data_send: true,
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

pub use self::actionbox::action::{log, settings, types};
