#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - the contract's types ([`Manifest`], [`CallContext`], [`ActionError`], …)
//!   and the [`Action`] trait, with [`export_action!`] to export an
//!   implementation; builders on the types in [`manifest`];
//! - [`http::Client`]: outbound HTTP over `wasi:http/outgoing-handler` to the
//!   operator's base URL ([`settings::base_url`]), every timeout clamped to the
//!   call's budget, response bodies bounded;
//! - [`error`](mod@error): the one mapping from an upstream HTTP status to the
//!   contract's [`ActionError`] case;
//! - [`json`]: input parsing that answers `invalid-input`, output encoding,
//!   a nesting guard;
//! - [`log`]: [`trace!`] … [`error!`](macro@error) over the contract's `log` import.
// Every public item says why it exists; the generated bindings carry the
// WIT's own docs, which the WASI packages do not always have.
#![warn(missing_docs)]

pub mod error;
pub mod http;
pub mod json;
pub mod log;
pub mod manifest;
pub mod settings;

/// The wit-bindgen bindings of `wit/world.wit` (world `smart-action`) and
/// the WASI interfaces it imports. Everything an action needs is re-exported
/// at the crate root or wrapped by a module; reach in here for the rest
/// (e.g. `bindings::wasi::clocks::monotonic_clock`).
#[allow(missing_docs)]
pub mod bindings {
    // `wit` is a link to the repository's `wit/`; `actionbox new` copies the
    // files, so a vendored copy of this crate is self-contained.
    wit_bindgen::generate!({
        path: "wit",
        world: "smart-action",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export_action",
        default_bindings_module: "actionbox_guest::bindings",
    });
}

/// Export a type implementing [`Action`] as the component's
/// `actionbox:action/action` — once per component, at the crate root:
/// `actionbox_guest::export_action!(MyAction);`.
pub use bindings::export_action;

/// What every action implements (the contract's exported `action`
/// interface): `describe`, `invoke` and `test-connection`.
pub use bindings::exports::actionbox::action::action::Guest as Action;

pub use bindings::exports::actionbox::action::action::{
    ActionError, CallContext, CredentialSpec, DefaultAction, Execution, JsonType, Manifest, MethodSpec, ParamSpec,
    ParameterDescription, RateLimit, Trigger, UpstreamFailure,
};
