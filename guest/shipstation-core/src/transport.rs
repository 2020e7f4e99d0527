//! The boundary between the ShipStation logic and whatever sends HTTP.

use std::time::Duration;

/// A complete HTTP response, body read into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers; names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The sandbox refused the request (host not allowed, address blocked, …).
    Denied(String),
    /// The request did not complete within the time it was given.
    Timeout(String),
    /// The connection failed (refused, reset, DNS, TLS, protocol error).
    Connection(String),
    /// The response body was larger than the action accepts.
    TooLarge(String),
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Details useful when debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that was handled.
    Warn,
    /// Something failed.
    Error,
}

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
