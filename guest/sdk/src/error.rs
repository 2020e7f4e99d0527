//! The contract's [`ActionError`]: the one place that maps an upstream HTTP
//! status to one of its cases ([`ActionError::from_response`]), the mapping
//! from [`HttpError`], and accessors for logs and tests.
//!
//! Each case tells the caller what to do next (`unauthorized`: fix the key;
//! `rate-limited`: retry later; …), so the mapping decides behaviour
//! downstream, not just wording: keep it here, not in each action.

use crate::http::{HttpError, Response};
use crate::{ActionError, RateLimit, UpstreamFailure};

/// Response headers an upstream's request id is read from, for support
/// tickets (`upstream.request-id`).
const REQUEST_ID_HEADERS: [&str; 2] = ["x-request-id", "request-id"];

impl ActionError {
    /// The contract's error for `response`, an upstream answer to `what`
    /// (e.g. `GET /items/42`) whose status is not 2xx:
    ///
    /// | status | case |
    /// |---|---|
    /// | 401, 403 | `unauthorized` |
    /// | 404 | `not-found` |
    /// | 429 | `rate-limited`, with `Retry-After` seconds when given |
    /// | anything else | `upstream`, with the status and `x-request-id` |
    ///
    /// Messages never quote the body: it is the upstream's, and may echo
    /// what the action sent.
    pub fn from_response(response: &Response, what: &str) -> Self {
        let status = response.status;
        match status {
            401 => ActionError::Unauthorized(format!(
                "{what}: the upstream rejected the credential (HTTP 401); check the integration's API key"
            )),
            403 => ActionError::Unauthorized(format!(
                "{what}: the upstream refused access (HTTP 403); the key lacks permission for this account or resource"
            )),
            404 => ActionError::NotFound(format!("{what}: not found (HTTP 404)")),
            429 => ActionError::RateLimited(RateLimit {
                retry_after_secs: response.header("retry-after").and_then(|v| v.trim().parse().ok()),
                message: format!("{what}: the upstream is rate-limiting this key (HTTP 429); retry later"),
            }),
            _ => {
                // The status is the case's own field (hosts print it), not
                // part of the message.
                let message = match status {
                    500..=599 => format!("{what}: the upstream failed"),
                    300..=399 => format!(
                        "{what}: the upstream answered with a redirect, which actions do not follow; \
                         check the integration's base URL"
                    ),
                    _ => format!("{what}: the upstream refused the request"),
                };
                let request_id = REQUEST_ID_HEADERS
                    .iter()
                    .find_map(|h| response.header(h))
                    .map(str::to_string);
                ActionError::Upstream(UpstreamFailure {
                    status: Some(status),
                    message,
                    request_id,
                })
            }
        }
    }

    /// The case's name in the contract, e.g. `not-found`: stable, for logs
    /// and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionError::InvalidInput(_) => "invalid-input",
            ActionError::Unauthorized(_) => "unauthorized",
            ActionError::NotFound(_) => "not-found",
            ActionError::RateLimited(_) => "rate-limited",
            ActionError::Upstream(_) => "upstream",
            ActionError::Timeout(_) => "timeout",
            ActionError::Denied(_) => "denied",
            ActionError::Internal(_) => "internal",
        }
    }

    /// What happened, for a person.
    pub fn message(&self) -> &str {
        match self {
            ActionError::InvalidInput(m)
            | ActionError::Unauthorized(m)
            | ActionError::NotFound(m)
            | ActionError::Timeout(m)
            | ActionError::Denied(m)
            | ActionError::Internal(m) => m,
            ActionError::RateLimited(r) => &r.message,
            ActionError::Upstream(u) => &u.message,
        }
    }
}

/// A request that got no response: refused by the host → `denied`, out of
/// time → `timeout`, a bug in the request → `internal`, anything else →
/// `upstream` without a status.
impl From<HttpError> for ActionError {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::Denied(m) => ActionError::Denied(m),
            HttpError::Timeout(m) => ActionError::Timeout(m),
            HttpError::InvalidRequest(m) => ActionError::Internal(m),
            HttpError::Connection(m) | HttpError::TooLarge(m) => ActionError::Upstream(UpstreamFailure {
                status: None,
                message: m,
                request_id: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: br#"{"error":"echoed secret"}"#.to_vec(),
        }
    }

    fn kind_of(status: u16) -> &'static str {
        ActionError::from_response(&answer(status, &[]), "GET /items/42").kind()
    }

    #[test]
    fn credential_refusals_are_unauthorized() {
        assert_eq!(kind_of(401), "unauthorized");
        assert_eq!(kind_of(403), "unauthorized");
        let e = ActionError::from_response(&answer(401, &[]), "GET /items/42");
        assert!(e.message().contains("check the integration's API key"), "{e:?}");
    }

    #[test]
    fn a_missing_thing_is_not_found() {
        assert_eq!(kind_of(404), "not-found");
        assert_eq!(
            ActionError::from_response(&answer(404, &[]), "GET /items/42").message(),
            "GET /items/42: not found (HTTP 404)"
        );
    }

    #[test]
    fn throttling_is_rate_limited_with_the_upstreams_wait() {
        match ActionError::from_response(&answer(429, &[("Retry-After", " 120 ")]), "GET /items") {
            ActionError::RateLimited(r) => assert_eq!(r.retry_after_secs, Some(120)),
            other => panic!("expected rate-limited, got {other:?}"),
        }
        // An HTTP-date is not a number of seconds: no wait is claimed.
        match ActionError::from_response(
            &answer(429, &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            "GET /",
        ) {
            ActionError::RateLimited(r) => assert_eq!(r.retry_after_secs, None),
            other => panic!("expected rate-limited, got {other:?}"),
        }
    }

    #[test]
    fn server_failures_and_other_statuses_are_upstream_with_status_and_request_id() {
        for status in [500, 503, 400, 422, 302] {
            match ActionError::from_response(&answer(status, &[("X-Request-Id", "req-7")]), "GET /items") {
                ActionError::Upstream(u) => {
                    assert_eq!(u.status, Some(status));
                    assert_eq!(u.request_id.as_deref(), Some("req-7"));
                    assert!(u.message.starts_with("GET /items: the upstream "), "{}", u.message);
                }
                other => panic!("{status}: expected upstream, got {other:?}"),
            }
        }
    }

    #[test]
    fn messages_never_quote_the_upstreams_body() {
        for status in [400, 401, 403, 404, 429, 500] {
            let e = ActionError::from_response(&answer(status, &[]), "GET /items");
            assert!(!e.message().contains("echoed secret"), "{status}: {}", e.message());
        }
    }

    #[test]
    fn a_success_passes_error_for_status_untouched() {
        let ok = answer(204, &[]);
        assert_eq!(ok.clone().error_for_status("GET /").ok(), Some(ok));
        assert!(matches!(
            answer(404, &[]).error_for_status("GET /"),
            Err(ActionError::NotFound(_))
        ));
    }

    #[test]
    fn requests_without_a_response_map_to_what_the_caller_should_do() {
        let cases = [
            (HttpError::Denied("d".into()), "denied"),
            (HttpError::Timeout("connection-read-timeout".into()), "timeout"),
            (HttpError::Connection("refused".into()), "upstream"),
            (HttpError::TooLarge("big".into()), "upstream"),
            (HttpError::InvalidRequest("bad header".into()), "internal"),
        ];
        for (error, kind) in cases {
            let message = error.to_string();
            let e = ActionError::from(error);
            assert_eq!((e.kind(), e.message()), (kind, message.as_str()));
        }
        match ActionError::from(HttpError::Connection("refused".into())) {
            ActionError::Upstream(u) => assert_eq!((u.status, u.request_id), (None, None)),
            other => panic!("expected upstream, got {other:?}"),
        }
    }
}
