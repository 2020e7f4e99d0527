//! The ShipStation smart action as a `wasm32-wasip2` component.
//!
//! A thin binding: `shipstation-core` holds the logic; this crate implements
//! its [`Transport`] over the `wasi:http/outgoing-handler` import (the only way
//! out of the sandbox), reads its `base_url` setting from `wasi:config/store`,
//! and maps core types to the WIT contract's (`actionbox:action/action@0.2.0`).
//! The API key never passes through here: the host adds it to requests bound
//! for the base URL's host.

use shipstation_core::{HttpResponse, LogLevel, Transport, TransportError};
use std::time::Duration;

wit_bindgen::generate!({
    path: "../../wit",
    world: "smart-action",
    generate_all,
});

use exports::actionbox::action::action as wit;
use shipstation_core::manifest as spec;
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingRequest, RequestOptions, Scheme};
use wasi::io::streams::StreamError;

/// Largest response body read, in bytes; bigger bodies are an upstream error.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Bytes asked for per read of a response body.
const READ_CHUNK: u64 = 64 * 1024;
const USER_AGENT: &str = concat!("actionbox-shipstation/", env!("CARGO_PKG_VERSION"));

struct ShipStationAction;

impl wit::Guest for ShipStationAction {
    fn describe() -> wit::Manifest {
        let m = spec::manifest();
        wit::Manifest {
            integration: m.integration,
            version: m.version,
            methods: m.methods.into_iter().map(method_to_wit).collect(),
            default_actions: m.default_actions.into_iter().map(default_action_to_wit).collect(),
            outbound_hosts: m.outbound_hosts,
            default_base_url: m.default_base_url,
            credential: m.credential.map(|c| wit::CredentialSpec {
                name: c.name,
                header: c.header,
            }),
        }
    }

    fn invoke(method: String, input: String, ctx: wit::CallContext) -> Result<String, wit::ActionError> {
        let mut transport = WasiHttpTransport::new(ctx.budget_ms).map_err(to_wit)?;
        shipstation_core::invoke(&method, &input, &mut transport).map_err(to_wit)
    }

    fn test_connection(ctx: wit::CallContext) -> Result<String, wit::ActionError> {
        let mut transport = WasiHttpTransport::new(ctx.budget_ms).map_err(to_wit)?;
        shipstation_core::test_connection(&mut transport).map_err(to_wit)
    }
}

export!(ShipStationAction);

fn method_to_wit(m: spec::MethodSpec) -> wit::MethodSpec {
    wit::MethodSpec {
        name: m.name,
        display_name: m.display_name,
        description: m.description,
        params: m
            .params
            .into_iter()
            .map(|p| wit::ParamSpec {
                name: p.name,
                json_type: match p.json_type {
                    spec::JsonType::String => wit::JsonType::String,
                    spec::JsonType::Integer => wit::JsonType::Integer,
                    spec::JsonType::Number => wit::JsonType::Number,
                    spec::JsonType::Boolean => wit::JsonType::Boolean,
                    spec::JsonType::Object => wit::JsonType::Object,
                    spec::JsonType::Array => wit::JsonType::Array,
                },
                description: p.description,
                required: p.required,
                example: p.example,
            })
            .collect(),
    }
}

fn default_action_to_wit(d: spec::DefaultAction) -> wit::DefaultAction {
    wit::DefaultAction {
        name: d.name,
        method: d.method,
        description: d.description,
        execution: match d.execution {
            spec::Execution::SessionStart => wit::Execution::SessionStart,
            spec::Execution::DuringInteraction => wit::Execution::DuringInteraction,
            spec::Execution::Both => wit::Execution::Both,
        },
        trigger: match d.trigger {
            spec::Trigger::Inbound => wit::Trigger::Inbound,
            spec::Trigger::Outbound => wit::Trigger::Outbound,
            spec::Trigger::Both => wit::Trigger::Both,
        },
        parameter_descriptions: d
            .parameter_descriptions
            .into_iter()
            .map(|p| wit::ParameterDescription {
                param: p.param,
                description: p.description,
            })
            .collect(),
        response_instructions: d.response_instructions,
    }
}

fn to_wit(e: shipstation_core::ActionError) -> wit::ActionError {
    use shipstation_core::ActionError as E;
    match e {
        E::InvalidInput(m) => wit::ActionError::InvalidInput(m),
        E::Unauthorized(m) => wit::ActionError::Unauthorized(m),
        E::NotFound(m) => wit::ActionError::NotFound(m),
        E::RateLimited {
            retry_after_secs,
            message,
        } => wit::ActionError::RateLimited(wit::RateLimit {
            retry_after_secs,
            message,
        }),
        E::Upstream {
            status,
            message,
            request_id,
        } => wit::ActionError::Upstream(wit::UpstreamFailure {
            status,
            message,
            request_id,
        }),
        E::Timeout(m) => wit::ActionError::Timeout(m),
        E::Denied(m) => wit::ActionError::Denied(m),
        E::Internal(m) => wit::ActionError::Internal(m),
    }
}

/// The operator's `base_url` setting from `wasi:config/store`, or ShipStation's
/// own when the host sets none.
fn base_url() -> Result<String, shipstation_core::ActionError> {
    use wasi::config::store::{get, Error};
    match get("base_url") {
        Ok(Some(url)) => Ok(url),
        Ok(None) => Ok(spec::DEFAULT_BASE_URL.to_string()),
        Err(Error::Upstream(detail) | Error::Io(detail)) => Err(shipstation_core::ActionError::Internal(format!(
            "the host could not read the base_url setting from wasi:config/store ({detail}); \
             check the integration's base URL in the host configuration"
        ))),
    }
}

/// [`Transport`] over `wasi:http`, bound to the operator's `base_url` setting and
/// the call's time budget.
struct WasiHttpTransport {
    scheme: Scheme,
    authority: String,
    /// Path the base URL carries before `/v2/…` (usually empty).
    path_prefix: String,
    /// Monotonic-clock instant (ns) at which the budget runs out.
    deadline_ns: u64,
}

impl WasiHttpTransport {
    fn new(budget_ms: u64) -> Result<Self, shipstation_core::ActionError> {
        let base = base_url()?;
        let invalid = || {
            shipstation_core::ActionError::Internal(format!(
                "the host gave an unusable base_url setting `{base}`; expected http(s)://host[:port][/prefix]"
            ))
        };
        let (scheme, rest) = base.split_once("://").ok_or_else(invalid)?;
        let scheme = match scheme {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return Err(invalid()),
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            scheme,
            authority: authority.to_string(),
            path_prefix: prefix.to_string(),
            deadline_ns: monotonic_clock::now().saturating_add(budget_ms.saturating_mul(1_000_000)),
        })
    }

    fn remaining_ns(&self) -> u64 {
        self.deadline_ns.saturating_sub(monotonic_clock::now())
    }

    fn send(&self, path_and_query: &str) -> Result<HttpResponse, ErrorCode> {
        let headers = Fields::new();
        // Names and values are constants, so appending cannot fail on content.
        let _ = headers.append("accept", b"application/json");
        let _ = headers.append("user-agent", USER_AGENT.as_bytes());
        let request = OutgoingRequest::new(headers);
        let full_path = format!("{}{}", self.path_prefix, path_and_query);
        let ok = request.set_method(&Method::Get).is_ok()
            && request.set_scheme(Some(&self.scheme)).is_ok()
            && request.set_authority(Some(&self.authority)).is_ok()
            && request.set_path_with_query(Some(&full_path)).is_ok();
        if !ok {
            return Err(ErrorCode::HttpRequestUriInvalid);
        }
        // Every phase may use at most what is left of the budget; the host
        // clamps these again, so this is a courtesy, not the enforcement.
        let options = RequestOptions::new();
        let left = Some(self.remaining_ns());
        let _ = options.set_connect_timeout(left);
        let _ = options.set_first_byte_timeout(left);
        let _ = options.set_between_bytes_timeout(left);

        let pending = outgoing_handler::handle(request, Some(options))?;
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(result)) => result?,
            // `get` after a completed `block` is always ready and unread.
            Some(Err(())) | None => return Err(ErrorCode::InternalError(Some("response already taken".into()))),
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let body = response
            .consume()
            .map_err(|()| ErrorCode::InternalError(Some("response body already taken".into())))?;
        let mut bytes = Vec::new();
        {
            let stream = body
                .stream()
                .map_err(|()| ErrorCode::InternalError(Some("response stream already taken".into())))?;
            loop {
                match stream.blocking_read(READ_CHUNK) {
                    Ok(chunk) => {
                        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                            return Err(ErrorCode::HttpResponseBodySize(Some(MAX_RESPONSE_BYTES as u64)));
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(wasi::http::types::http_error_code(&e)
                            .unwrap_or_else(|| ErrorCode::InternalError(Some(e.to_debug_string()))))
                    }
                }
            }
        }
        Ok(HttpResponse {
            status,
            headers,
            body: bytes,
        })
    }
}

/// A sentence for a `wasi:http` error code.
fn describe_error_code(code: &ErrorCode, authority: &str) -> String {
    match code {
        ErrorCode::DnsError(_) | ErrorCode::DnsTimeout => format!("DNS lookup of {authority} failed"),
        ErrorCode::ConnectionRefused => format!("connection to {authority} was refused"),
        ErrorCode::DestinationNotFound | ErrorCode::DestinationUnavailable => format!("{authority} is unreachable"),
        ErrorCode::ConnectionTerminated | ErrorCode::HttpResponseIncomplete => {
            format!("{authority} closed the connection before the response was complete")
        }
        ErrorCode::TlsCertificateError | ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            format!("the TLS connection to {authority} failed")
        }
        ErrorCode::HttpProtocolError => format!("{authority} answered with invalid HTTP"),
        other => format!("request to {authority} failed: {}", code_name(other)),
    }
}

/// The `wasi:http` name of an error code, e.g. `connection-read-timeout`.
/// (Written out instead of `{:?}`: the derived `Debug` of this 39-case
/// variant costs 5 KB of component size.)
fn code_name(code: &ErrorCode) -> String {
    let name = match code {
        ErrorCode::DnsTimeout => "DNS-timeout",
        ErrorCode::DnsError(_) => "DNS-error",
        ErrorCode::DestinationNotFound => "destination-not-found",
        ErrorCode::DestinationUnavailable => "destination-unavailable",
        ErrorCode::DestinationIpProhibited => "destination-IP-prohibited",
        ErrorCode::DestinationIpUnroutable => "destination-IP-unroutable",
        ErrorCode::ConnectionRefused => "connection-refused",
        ErrorCode::ConnectionTerminated => "connection-terminated",
        ErrorCode::ConnectionTimeout => "connection-timeout",
        ErrorCode::ConnectionReadTimeout => "connection-read-timeout",
        ErrorCode::ConnectionWriteTimeout => "connection-write-timeout",
        ErrorCode::ConnectionLimitReached => "connection-limit-reached",
        ErrorCode::TlsProtocolError => "TLS-protocol-error",
        ErrorCode::TlsCertificateError => "TLS-certificate-error",
        ErrorCode::TlsAlertReceived(_) => "TLS-alert-received",
        ErrorCode::HttpRequestDenied => "HTTP-request-denied",
        ErrorCode::HttpRequestLengthRequired => "HTTP-request-length-required",
        ErrorCode::HttpRequestBodySize(_) => "HTTP-request-body-size",
        ErrorCode::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
        ErrorCode::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        ErrorCode::HttpRequestUriTooLong => "HTTP-request-URI-too-long",
        ErrorCode::HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
        ErrorCode::HttpRequestHeaderSize(_) => "HTTP-request-header-size",
        ErrorCode::HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
        ErrorCode::HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
        ErrorCode::HttpResponseIncomplete => "HTTP-response-incomplete",
        ErrorCode::HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
        ErrorCode::HttpResponseHeaderSize(_) => "HTTP-response-header-size",
        ErrorCode::HttpResponseBodySize(_) => "HTTP-response-body-size",
        ErrorCode::HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
        ErrorCode::HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
        ErrorCode::HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
        ErrorCode::HttpResponseContentCoding(_) => "HTTP-response-content-coding",
        ErrorCode::HttpResponseTimeout => "HTTP-response-timeout",
        ErrorCode::HttpUpgradeFailed => "HTTP-upgrade-failed",
        ErrorCode::HttpProtocolError => "HTTP-protocol-error",
        ErrorCode::LoopDetected => "loop-detected",
        ErrorCode::ConfigurationError => "configuration-error",
        ErrorCode::InternalError(detail) => return format!("internal-error: {}", detail.as_deref().unwrap_or("")),
    };
    name.to_string()
}

impl Transport for WasiHttpTransport {
    fn get(&mut self, path_and_query: &str) -> Result<HttpResponse, TransportError> {
        self.send(path_and_query).map_err(|code| match code {
            ErrorCode::HttpRequestDenied => {
                TransportError::Denied(format!("request to {} was denied by the host", self.authority))
            }
            ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
                TransportError::Timeout(code_name(&code))
            }
            ErrorCode::HttpResponseBodySize(_) => TransportError::TooLarge(format!(
                "ShipStation's response was larger than {} MiB",
                MAX_RESPONSE_BYTES / (1024 * 1024)
            )),
            other => TransportError::Connection(describe_error_code(&other, &self.authority)),
        })
    }

    fn sleep(&mut self, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        monotonic_clock::subscribe_duration(ns).block();
    }

    fn remaining(&self) -> Duration {
        Duration::from_nanos(self.remaining_ns())
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        use actionbox::action::log::{write, Level};
        let level = match level {
            LogLevel::Trace => Level::Trace,
            LogLevel::Debug => Level::Debug,
            LogLevel::Info => Level::Info,
            LogLevel::Warn => Level::Warn,
            LogLevel::Error => Level::Error,
        };
        write(level, message);
    }
}
