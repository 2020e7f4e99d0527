//! The sandbox's only door to the network: the `wasi:http` outbound hook.
//!
//! Every request an action makes through `wasi:http/outgoing-handler` comes
//! here ([`OutboundHooks`]'s `send_request`) and is, in order:
//! 1. checked against the [`OutboundPolicy`] (`policy.rs`) — scheme, host and
//!    port must be the integration's [`BaseUrl`] (`base_url.rs`), which only
//!    the operator or the kind registry sets, never the action; the authority
//!    may carry no userinfo, and the action's manifest must declare the host;
//! 2. resolved (`transport.rs`), and every address checked against the IANA
//!    special-purpose registries (`address.rs`): non-public addresses are
//!    refused unless the operator's base URL itself names one (`localhost`
//!    opens loopback only, an IP literal opens exactly that address);
//! 3. stripped of credential headers the guest tried to set, given the
//!    integration's key in the operator's credential header, and given a
//!    `Host` header built from the checked authority (`policy.rs`);
//! 4. sent over a connection to the *checked* address (no second DNS lookup a
//!    rebinding attacker could race), with every phase clamped to what is left
//!    of the call's deadline (`transport.rs`) and both bodies bounded
//!    (`body.rs`). The connection is an idle keep-alive one to exactly that
//!    peer when the component's [`ConnectionPool`] has one, else a new one
//!    (see `pool.rs` for when a connection is reused and when it is closed);
//! 5. answered with the key scrubbed: an upstream that reflects the key in a
//!    response header or body has it replaced with `[redacted]` before the
//!    action sees it ([`KeyScrubber`], `body.rs`).
//!
//! Everything a call's requests make the host keep is bounded by the
//! [`CallRecorder`] (`record.rs`): records and violations are capped (the rest
//! counted), warnings are logged for the first few only, and after
//! `limits.max_refused_requests` refusals the call is stopped.
//!
//! A call may also be recorded or replayed (`replay.rs`, [`OutboundMode`]):
//! recording keeps a copy of each exchange (without the key) on top of
//! steps 1–5; replaying keeps steps 1, 3 and 5 and the body bounds, and
//! replaces resolving, connecting and sending with the recording's answer —
//! nothing is dialled, and a request the recording lacks is refused.
//!
//! A refused request fails inside the guest as `HttpRequestDenied` (a
//! refused address as `DestinationIpProhibited`); the host log and the
//! report say what was refused and which setting governs it.
//!
//! This module is only the hook: admit (synchronously), then send (in the
//! future it returns).

pub mod address;
pub mod base_url;
pub mod body;
pub mod policy;
pub mod pool;
pub mod record;
pub mod replay;
pub(crate) mod trace;
mod transport;

pub use base_url::{BaseUrl, NonPublicScope};
pub use body::KeyScrubber;
pub use policy::{CredentialHeader, OutboundPolicy};
pub use pool::ConnectionPool;
pub use record::{CallRecorder, OutboundRecord, RequestFailure};
pub use replay::{ExchangeCapture, OutboundMode, Recording, Replay};

use crate::deadline::ActionDeadline;
use crate::limits::{CallStop, SandboxViolation};
use body::{guard_response, LimitedRequestBody, ResponseBodyChecks, ResponseGuard};
use http::{Request, Response};
use http_body_util::BodyExt;
use policy::Target;
use replay::CaptureSlot;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use trace::RequestSpans;
use transport::{Peer, Transport};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The per-invocation `WasiHttpHooks`: a policy, a deadline and a recorder.
pub struct OutboundHooks {
    policy: Arc<OutboundPolicy>,
    deadline: ActionDeadline,
    requests: u32,
    /// Idle keep-alive connections shared with other invocations; `None`
    /// opens a connection per request.
    pool: Option<Arc<ConnectionPool>>,
    /// What was sent and stopped, for the report.
    pub recorder: Arc<CallRecorder>,
    /// The call's request spans (and whether `traceparent` goes upstream);
    /// `None` traces nothing (`describe`).
    trace: Option<Arc<RequestSpans>>,
    /// Live, recorded, or answered from a recording.
    mode: OutboundMode,
}

impl OutboundHooks {
    /// Hooks for one invocation.
    pub fn new(policy: Arc<OutboundPolicy>, deadline: ActionDeadline) -> Self {
        Self {
            recorder: Arc::new(CallRecorder::new(policy.max_requests, policy.max_refused_requests)),
            policy,
            deadline,
            requests: 0,
            pool: None,
            trace: None,
            mode: OutboundMode::Live,
        }
    }

    /// Record the exchanges, or answer them from a recording (the policy
    /// still admits or refuses each request first).
    pub fn with_mode(mut self, mode: OutboundMode) -> Self {
        self.mode = mode;
        self
    }

    /// Give each request a span in the call's trace.
    pub(crate) fn with_trace(mut self, trace: Arc<RequestSpans>) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Reuse connections from `pool` (and leave reusable ones there).
    pub fn with_pool(mut self, pool: Arc<ConnectionPool>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The flag these hooks raise to stop the call.
    pub fn call_stop(&self) -> CallStop {
        self.recorder.call_stop()
    }

    /// Admission: the request count, then the policy (origin, target,
    /// headers). A refusal is recorded and counted here.
    fn admit(
        &self,
        request: Request<WasiBody>,
        record: &mut OutboundRecord,
    ) -> Result<(Request<WasiBody>, Target), HttpError> {
        if self.requests > self.policy.max_requests {
            self.recorder.refused(SandboxViolation::LimitExceeded {
                message: format!(
                    "the action made more than {} outbound requests in one call (limits.max_outbound_requests)",
                    self.policy.max_requests
                ),
            });
            return Err(HttpError::HttpRequestDenied);
        }
        self.policy.admit(request, &self.recorder, record)
    }

    /// Answer the admitted `request` from `replay` instead of the network:
    /// the first unused exchange with its method and path, its body through
    /// the same checks as a live one; the request body is read (and
    /// bounded) as the network would. A request the recording lacks is
    /// refused and recorded as such.
    fn replay(
        &self,
        replay: &Replay,
        request: Request<WasiBody>,
        record: &mut OutboundRecord,
        index: Option<usize>,
    ) -> Result<(Response<WasiBody>, IoFuture), HttpError> {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let exchange = match replay.take(request.method().as_str(), path) {
            Ok(exchange) => exchange,
            Err(message) => {
                self.recorder.refused(SandboxViolation::Denied { message });
                return Err(HttpError::HttpRequestDenied);
            }
        };
        record.status = Some(exchange.status);
        let checks = ResponseBodyChecks::new(
            self.policy.max_response_bytes,
            self.recorder.clone(),
            index,
            KeyScrubber::for_key(self.policy.api_key.as_ref()),
            format!("{} {}", record.method, record.url),
        );
        let response = replay::replayed_response(exchange, checks);
        let body = LimitedRequestBody::new(
            request.into_body(),
            self.policy.max_request_body_bytes,
            self.recorder.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        let deadline = self.deadline;
        // The request body goes nowhere, but is read as the network would
        // (so a guest still writing it is not stuck, and its bound holds).
        let io: IoFuture = Box::new(async move {
            let mut body = std::pin::pin!(body);
            let drain = async { while let Some(Ok(_)) = body.frame().await {} };
            let _ = tokio::time::timeout(deadline.remaining(), drain).await;
            Ok(())
        });
        Ok((response, io))
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture = Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for OutboundHooks {
    fn forbidden_header_filter(&mut self) -> wasmtime_wasi_http::ForbiddenHeaderFilter {
        let policy = self.policy.clone();
        Arc::new(move |name| {
            wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name) || policy.is_credential_header(name)
        })
    }

    /// The host sets `Host` itself, from the checked authority.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        body::OUTGOING_BODY_BUFFER_CHUNKS
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        body::OUTGOING_BODY_CHUNK_BYTES
    }

    /// Admission (origin, headers, the request count) is decided here,
    /// synchronously, while the guest waits in `handle`: a refusal is
    /// recorded, counted and may stop the call even when the guest drops the
    /// response future without ever polling it. Resolving, the address check
    /// and the exchange itself run in the returned future.
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        self.requests = self.requests.saturating_add(1);
        let started = Instant::now();
        let mut record = OutboundRecord::for_request(&request);
        let index = self.recorder.reserve(&record);
        let trace = self
            .trace
            .as_ref()
            .map(|t| t.start(index, request.method().as_str(), request.uri()));
        let (mut request, target) = match self.admit(request, &mut record) {
            Ok(admitted) => admitted,
            Err(e) => {
                self.recorder.finish(index, record, started, Some(&e));
                return Box::new(std::future::ready(Err(e)));
            }
        };
        // After admission, so the guest's own headers have been checked; the
        // record shows the request as sent.
        if trace.is_some_and(|t| t.header(request.headers_mut())) {
            record.set_request_headers(request.headers());
        }
        let capture = match &self.mode {
            OutboundMode::Live => None,
            OutboundMode::Record(capture) => capture.start(&request, &self.policy),
            OutboundMode::Replay(replay) => {
                let result = self.replay(replay, request, &mut record, index);
                self.recorder.finish(index, record, started, result.as_ref().err());
                return Box::new(std::future::ready(result));
            }
        };
        let outgoing = Outgoing {
            transport: Transport {
                peer: Peer::new(target, self.policy.credential_fingerprint()),
                pool: self.pool.clone(),
                deadline: self.deadline,
                options,
            },
            policy: self.policy.clone(),
            recorder: self.recorder.clone(),
            index,
            capture,
        };
        Box::new(async move {
            let recorder = outgoing.recorder.clone();
            let result = outgoing.send(request, &mut record).await;
            recorder.finish(index, record, started, result.as_ref().err());
            result
        })
    }
}

/// One admitted request on its way out.
struct Outgoing {
    transport: Transport,
    policy: Arc<OutboundPolicy>,
    recorder: Arc<CallRecorder>,
    /// Its record's slot.
    index: Option<usize>,
    /// Where the exchange is recorded, when the call is.
    capture: Option<CaptureSlot>,
}

impl Outgoing {
    /// Resolve and check the addresses, then send on a pooled or new
    /// connection, both bodies guarded.
    async fn send(
        self,
        request: Request<WasiBody>,
        record: &mut OutboundRecord,
    ) -> Result<(Response<WasiBody>, IoFuture), HttpError> {
        let host = self.transport.peer.host();
        let addrs = self.transport.resolve(self.policy.pinned_addresses.get(host)).await?;
        self.policy.check_addresses(host, &addrs, &self.recorder)?;

        // Set when the request body is cut: that connection is never reused.
        let poisoned = Arc::new(AtomicBool::new(false));
        let (limit, recorder, body_poisoned) = (
            self.policy.max_request_body_bytes,
            self.recorder.clone(),
            poisoned.clone(),
        );
        let capture = self.capture.clone();
        let request = request.map(move |body| {
            LimitedRequestBody::new(body, limit, recorder, body_poisoned)
                .recording_to(capture)
                .boxed_unsync()
        });
        let (response, conn) = self.transport.send(&addrs, request, record).await?;
        record.status = Some(response.status().as_u16());

        let checks = ResponseBodyChecks::new(
            self.policy.max_response_bytes,
            self.recorder,
            self.index,
            KeyScrubber::for_key(self.policy.api_key.as_ref()),
            format!("{} {}", record.method, record.url),
        )
        .recording_to(self.capture);
        let guard = ResponseGuard {
            deadline: self.transport.deadline,
            between_bytes_timeout: self.transport.between_bytes_timeout(),
            pool: self.transport.pool.clone(),
            poisoned,
            checks,
        };
        let response = guard_response(response, conn, guard);
        // The connection runs in its own task (it outlives this exchange when it
        // is reused), so there is nothing left for wasmtime-wasi-http to drive:
        // errors while the body streams reach the guest through the body itself.
        let io: IoFuture = Box::new(std::future::ready(Ok(())));
        Ok((response, io))
    }
}
