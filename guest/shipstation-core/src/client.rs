//! ShipStation requests: retry and rate-limit policy, and the one place that
//! maps an upstream HTTP status to an [`ActionError`].

use crate::api::ErrorBody;
use crate::transport::{HttpResponse, LogLevel, Transport, TransportError};
use crate::ActionError;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How many times a 429 is waited out before giving up with `rate-limited`.
pub const MAX_RATE_LIMIT_WAITS: u32 = 3;
/// Wait used when a 429 carries no usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Pause before the single retry of a 5xx or failed connection.
pub const SERVER_ERROR_BACKOFF: Duration = Duration::from_millis(250);
/// Time kept in reserve after a wait, so the retried request can still finish.
pub const WAIT_RESERVE: Duration = Duration::from_millis(500);
/// Below this much remaining budget no new request is started.
pub const MIN_REQUEST_BUDGET: Duration = Duration::from_millis(50);

/// A ShipStation client over some [`Transport`].
pub struct Client<'t, T: Transport> {
    transport: &'t mut T,
    /// Requests sent so far in this call (including retries).
    pub requests_sent: u32,
}

/// What a response means for the caller.
enum Outcome {
    Success(Vec<u8>),
    NotFound,
    RetryAfter(Option<u32>, ErrorBody),
    ServerError(u16, ErrorBody),
    Fail(ActionError),
}

impl<'t, T: Transport> Client<'t, T> {
    /// Wrap a transport.
    pub fn new(transport: &'t mut T) -> Self {
        Self {
            transport,
            requests_sent: 0,
        }
    }

    /// Log through the transport.
    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.transport.log(level, message);
    }

    /// GET and decode JSON; a 404 is [`ActionError::NotFound`] with `not_found` as message.
    pub fn get_json<R: DeserializeOwned>(&mut self, path: &str, not_found: &str) -> Result<R, ActionError> {
        self.get_json_or_404(path)?
            .ok_or_else(|| ActionError::NotFound(not_found.to_string()))
    }

    /// GET and decode JSON; a 404 is `Ok(None)`.
    pub fn get_json_or_404<R: DeserializeOwned>(&mut self, path: &str) -> Result<Option<R>, ActionError> {
        let Some(body) = self.get(path)? else { return Ok(None) };
        if actionbox_guest::json::too_deep(&body) {
            return Err(ActionError::Upstream {
                status: Some(200),
                message: format!(
                    "ShipStation returned a malformed response for {}: nested deeper than {} levels",
                    endpoint(path),
                    actionbox_guest::json::MAX_DEPTH
                ),
                request_id: None,
            });
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ActionError::Upstream {
                status: Some(200),
                message: format!("ShipStation returned a malformed response for {}: {e}", endpoint(path)),
                request_id: None,
            })
    }

    /// GET with the retry policy; `Ok(None)` on 404, the body otherwise.
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, ActionError> {
        let mut rate_limit_waits = 0;
        let mut server_retries = 0;
        loop {
            if self.transport.remaining() < MIN_REQUEST_BUDGET {
                return Err(ActionError::Timeout(format!(
                    "the time budget ran out before calling ShipStation {}",
                    endpoint(path)
                )));
            }
            self.requests_sent += 1;
            self.transport.log(LogLevel::Debug, &format!("GET {path}"));
            let outcome = match self.transport.get(path) {
                Ok(resp) => classify(&resp, path),
                Err(TransportError::Denied(m)) => {
                    return Err(ActionError::Denied(format!("the sandbox refused the request: {m}")))
                }
                Err(TransportError::Timeout(m)) => {
                    return Err(ActionError::Timeout(format!(
                        "ShipStation did not answer {} in time: {m}",
                        endpoint(path)
                    )))
                }
                Err(TransportError::TooLarge(m)) => {
                    return Err(ActionError::Upstream {
                        status: None,
                        message: m,
                        request_id: None,
                    })
                }
                Err(TransportError::InvalidRequest(m)) => {
                    return Err(ActionError::Internal(format!("could not build the request: {m}")))
                }
                Err(TransportError::Connection(m)) => Outcome::Fail(ActionError::Upstream {
                    status: None,
                    message: format!("could not reach ShipStation: {m}"),
                    request_id: None,
                }),
            };
            match outcome {
                Outcome::Success(body) => return Ok(Some(body)),
                Outcome::NotFound => return Ok(None),
                Outcome::RetryAfter(secs, err) => {
                    let wait = secs.map_or(DEFAULT_RETRY_AFTER, |s| Duration::from_secs(s.into()));
                    if rate_limit_waits < MAX_RATE_LIMIT_WAITS && self.can_wait(wait) {
                        rate_limit_waits += 1;
                        self.transport.log(
                            LogLevel::Warn,
                            &format!("ShipStation rate limit (429); waiting {} ms as asked", wait.as_millis()),
                        );
                        self.transport.sleep(wait);
                        continue;
                    }
                    let mut message = "ShipStation is rate-limiting this API key (HTTP 429)".to_string();
                    if secs.is_some_and(|s| !self.can_wait(Duration::from_secs(s.into()))) {
                        message.push_str("; waiting as asked would exceed the time budget");
                    }
                    if let Some(id) = err.request_id {
                        message.push_str(&format!(" [request_id {id}]"));
                    }
                    return Err(ActionError::RateLimited {
                        retry_after_secs: secs,
                        message,
                    });
                }
                Outcome::ServerError(status, err) => {
                    if server_retries == 0 && self.can_wait(SERVER_ERROR_BACKOFF) {
                        server_retries += 1;
                        self.transport.log(
                            LogLevel::Warn,
                            &format!("ShipStation answered HTTP {status}; retrying once"),
                        );
                        self.transport.sleep(SERVER_ERROR_BACKOFF);
                        continue;
                    }
                    let detail = err.summary().map(|s| format!(": {s}")).unwrap_or_default();
                    return Err(ActionError::Upstream {
                        status: Some(status),
                        message: format!("ShipStation failed on {}{detail}", endpoint(path)),
                        request_id: err.request_id,
                    });
                }
                Outcome::Fail(e @ ActionError::Upstream { status: None, .. }) => {
                    // A failed connection gets the same single retry as a 5xx.
                    if server_retries == 0 && self.can_wait(SERVER_ERROR_BACKOFF) {
                        server_retries += 1;
                        self.transport.log(LogLevel::Warn, &format!("{e}; retrying once"));
                        self.transport.sleep(SERVER_ERROR_BACKOFF);
                        continue;
                    }
                    return Err(e);
                }
                Outcome::Fail(e) => return Err(e),
            }
        }
    }

    fn can_wait(&self, wait: Duration) -> bool {
        self.transport.remaining() > wait + WAIT_RESERVE
    }
}

/// The one mapping from an upstream response to what it means.
fn classify(resp: &HttpResponse, path: &str) -> Outcome {
    let status = resp.status;
    if (200..300).contains(&status) {
        return Outcome::Success(resp.body.clone());
    }
    let err = ErrorBody::parse(&resp.body);
    match status {
        401 => Outcome::Fail(ActionError::Unauthorized(with_request_id(
            "ShipStation rejected the API key (HTTP 401); check the integration's ShipStation API V2 key",
            &err,
        ))),
        403 => Outcome::Fail(ActionError::Unauthorized(with_request_id(
            "ShipStation refused access (HTTP 403); the API key lacks permission for this account or endpoint",
            &err,
        ))),
        404 => Outcome::NotFound,
        429 => Outcome::RetryAfter(resp.header("retry-after").and_then(|v| v.trim().parse().ok()), err),
        500..=599 => Outcome::ServerError(status, err),
        _ => {
            let detail = err.summary().map(|s| format!(": {s}")).unwrap_or_default();
            Outcome::Fail(ActionError::Upstream {
                status: Some(status),
                message: format!("ShipStation refused {}{detail}", endpoint(path)),
                request_id: err.request_id,
            })
        }
    }
}

fn with_request_id(message: &str, err: &ErrorBody) -> String {
    match &err.request_id {
        Some(id) => format!("{message} [request_id {id}]"),
        None => message.to_string(),
    }
}

/// The endpoint part of a request path, without the query (which may hold
/// customer data) — for messages.
fn endpoint(path: &str) -> String {
    let p = path.split('?').next().unwrap_or(path);
    format!("GET {p}")
}
