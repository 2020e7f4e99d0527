//! The boundary between the ShipStation logic and whatever sends HTTP: the
//! wasm component implements [`Transport`] over the SDK's `wasi:http` client;
//! tests, fuzzers and the native benchmark over anything else. The request,
//! response and error types are the SDK's, so the component passes them
//! through unchanged.

use std::time::Duration;

/// A complete HTTP response, body read into memory (the SDK's).
pub use actionbox_guest::http::Response as HttpResponse;

/// Why a request produced no response (the SDK's).
pub use actionbox_guest::http::HttpError as TransportError;

/// Severity of a log line (the contract's `log.level`).
pub use actionbox_guest::log::Level as LogLevel;

/// What the ShipStation logic needs from its environment.
pub trait Transport {
    /// Send `GET {base-url}{path_and_query}` with `Accept: application/json`.
    /// `path_and_query` starts with `/v2/` and is already percent-encoded. The
    /// credential header is *not* the action's business: the host adds it.
    fn get(&mut self, path_and_query: &str) -> Result<HttpResponse, TransportError>;

    /// Block for `duration` (used to honour `Retry-After`).
    fn sleep(&mut self, duration: Duration);

    /// Time left before the caller's deadline.
    fn remaining(&self) -> Duration;

    /// Record a diagnostic line.
    fn log(&mut self, level: LogLevel, message: &str);
}
