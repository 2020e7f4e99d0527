//! Guarded bodies: the request body the guest sends and the response body it
//! reads, each bounded, and the key scrubbed from what comes back.
//!
//! - **Request bodies** ([`LimitedRequestBody`]): wasi-http buffers at most
//!   [`OUTGOING_BODY_BUFFER_CHUNKS`] writes of [`OUTGOING_BODY_CHUNK_BYTES`]
//!   per body, and a body that passes `limits.max_request_body_bytes` fails;
//!   a cut body's connection is never reused (`pool.rs`).
//! - **Response bodies** ([`GuardedBody`]): stopped at the call's deadline,
//!   after too long without a byte, or past `limits.max_response_body_bytes`;
//!   their bytes are counted into the request's record. The body owns its
//!   connection while the guest reads and hands it back to the pool only
//!   after a clean end.
//! - **Scrubbing** ([`KeyScrubber`]): an upstream that reflects the key in a
//!   response header, body or trailer has it replaced with `[redacted]`
//!   before the action sees it, and the report says so.
//!
//! The size cap and the scrubber of a response are one `ResponseBodyChecks`,
//! which a replayed response (`replay.rs`) passes through too; when a call
//! is recorded, both bodies are copied from here as the wire and the guest
//! see them.
//!
//! They share a module (a little over 400 lines) because they meet at the
//! end of a response: the guard releases the scrubber's held-back bytes and
//! the connection there, and whether the request body was cut decides if
//! that connection may be reused.

use super::pool::{checkin_when_ready, ConnectionPool, PooledConnection, READY_WAIT};
use super::record::CallRecorder;
use super::replay::CaptureSlot;
use crate::deadline::ActionDeadline;
use crate::limits::SandboxViolation;
use crate::secret::ApiKey;
use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// Bytes of one write to an outgoing body that the host buffers, and (with
/// [`OUTGOING_BODY_BUFFER_CHUNKS`]) all it buffers for a body the guest has
/// not sent yet. wasi-http's default is 1 MiB, which let a guest park ~2 MiB
/// of host memory in every request object it never sends.
pub const OUTGOING_BODY_CHUNK_BYTES: usize = 8 * 1024;
/// Writes buffered per outgoing body before the guest must wait.
pub const OUTGOING_BODY_BUFFER_CHUNKS: usize = 1;
/// Keys shorter than this are not scrubbed from responses: replacing every
/// occurrence of a few characters would corrupt ordinary text, and no real
/// API key is that short.
pub const MIN_SCRUBBED_KEY_BYTES: usize = 8;

/// What guards one response: the one config of [`guard_response`].
pub(crate) struct ResponseGuard {
    /// The call's deadline: the body fails once it has passed.
    pub deadline: ActionDeadline,
    /// Longest wait for the next byte (the guest's `between-bytes-timeout`).
    pub between_bytes_timeout: Option<Duration>,
    /// Where a cleanly ended exchange leaves its connection.
    pub pool: Option<Arc<ConnectionPool>>,
    /// Set when the request body was cut: its connection is never reused.
    pub poisoned: Arc<AtomicBool>,
    /// The size cap and the key scrubber (and the recording, if any).
    pub checks: ResponseBodyChecks,
}

/// The response as the guest gets it: the key scrubbed from its headers
/// (recorded as a violation), its body a [`GuardedBody`] that owns `conn`.
pub(crate) fn guard_response(
    response: Response<hyper::body::Incoming>,
    conn: PooledConnection,
    mut guard: ResponseGuard,
) -> Response<WasiBody> {
    let (mut parts, incoming) = response.into_parts();
    guard.checks.check_head(parts.status, &mut parts.headers);
    Response::from_parts(parts, GuardedBody::new(incoming, conn, guard).boxed_unsync())
}

/// What every response the guest reads passes through, from the network or
/// from a recording (`replay.rs`): the size cap (its bytes counted into the
/// request's record), the key scrubber, and, when the call is recorded, the
/// copy of what the guest saw.
pub(crate) struct ResponseBodyChecks {
    /// Cap on the body, in bytes.
    limit: u64,
    /// Body bytes seen so far.
    seen: u64,
    /// Where violations go and body bytes are counted.
    recorder: Arc<CallRecorder>,
    /// The request's record slot.
    record_index: Option<usize>,
    /// Replaces the key where the upstream reflects it (`None`: no key sent).
    scrubber: Option<KeyScrubber>,
    /// `METHOD url` of the request, for violation messages.
    what: String,
    /// Where the exchange is recorded, when the call is.
    capture: Option<CaptureSlot>,
}

impl ResponseBodyChecks {
    /// Checks for a body of at most `limit` bytes, counted into record
    /// `record_index` of `recorder`, with the key `scrubber`; `what` (`METHOD
    /// url`) names the request in violations.
    pub(crate) fn new(
        limit: u64,
        recorder: Arc<CallRecorder>,
        record_index: Option<usize>,
        scrubber: Option<KeyScrubber>,
        what: String,
    ) -> Self {
        Self {
            limit,
            seen: 0,
            recorder,
            record_index,
            scrubber,
            what,
            capture: None,
        }
    }

    /// Also copy what the guest sees into `capture` (a recorded call).
    pub(crate) fn recording_to(mut self, capture: Option<CaptureSlot>) -> Self {
        self.capture = capture;
        self
    }

    /// Scrub the key from the response head's `headers` (a violation if it
    /// was there), then record the head as the guest gets it.
    pub(crate) fn check_head(&mut self, status: http::StatusCode, headers: &mut http::HeaderMap) {
        if let Some(scrubber) = &self.scrubber {
            let scrubbed = scrubber.scrub_headers(headers);
            if scrubbed > 0 {
                self.recorder.violation(SandboxViolation::KeyReflected {
                    message: format!(
                        "the upstream's response to {} carried the integration's key in {scrubbed} header(s); \
                         it was replaced with [redacted] before the action saw it",
                        self.what
                    ),
                });
            }
        }
        if let Some(capture) = &self.capture {
            capture.response_head(status, headers);
        }
    }

    /// Count a data chunk against the limit (failing past it: the caller
    /// cuts the body), then scrub it; `None` when the scrubber holds back
    /// all of it.
    pub(crate) fn pass_data(&mut self, data: Bytes) -> Result<Option<Bytes>, HttpError> {
        self.seen += data.len() as u64;
        let seen = self.seen;
        self.recorder.update(self.record_index, |r| r.response_bytes = seen);
        if self.seen > self.limit {
            self.recorder.violation(SandboxViolation::LimitExceeded {
                message: format!(
                    "an outbound response body passed {} bytes and was cut off (limits.max_response_body_bytes)",
                    self.limit
                ),
            });
            return Err(HttpError::HttpResponseBodySize(Some(self.limit)));
        }
        let out = match self.scrubber.as_mut() {
            None => data,
            Some(scrubber) => {
                let before = scrubber.found;
                let out = scrubber.feed(&data);
                if before == 0 && scrubber.found > 0 {
                    self.recorder.violation(SandboxViolation::KeyReflected {
                        message: format!(
                            "the upstream's response body to {} contained the integration's key; it was replaced \
                             with [redacted] before the action saw it",
                            self.what
                        ),
                    });
                }
                out
            }
        };
        if let Some(capture) = &self.capture {
            capture.response_data(&out);
        }
        Ok((!out.is_empty()).then_some(out))
    }

    /// Scrub the key from the trailers.
    pub(crate) fn pass_trailers(&self, mut trailers: http::HeaderMap) -> http::HeaderMap {
        if let Some(scrubber) = &self.scrubber {
            if scrubber.scrub_headers(&mut trailers) > 0 {
                self.recorder.violation(SandboxViolation::KeyReflected {
                    message: format!(
                        "the upstream's response trailers to {} carried the integration's key; it was replaced \
                         with [redacted]",
                        self.what
                    ),
                });
            }
        }
        trailers
    }

    /// The body ended cleanly: the bytes the scrubber held back (they can no
    /// longer start the key), and the recorded body is complete.
    pub(crate) fn finish(&mut self) -> Bytes {
        let rest = self.scrubber.as_mut().map(KeyScrubber::finish).unwrap_or_default();
        if let Some(capture) = &self.capture {
            capture.response_data(&rest);
            capture.response_end();
        }
        rest
    }
}

/// A response body that stops at the call's deadline, after too long without
/// a byte, or past the size cap, and counts bytes into the outbound log.
///
/// It owns the connection while the guest reads: a body read to its end
/// hands the connection back to the pool once hyper reports it ready for
/// another request; any error, cut or early drop closes it instead.
struct GuardedBody {
    inner: hyper::body::Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    idle_limit: Option<Duration>,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The size cap and the key scrubber.
    checks: ResponseBodyChecks,
    /// The connection the response arrives on, until it is released.
    conn: Option<PooledConnection>,
    pool: Option<Arc<ConnectionPool>>,
    /// Set when the request body was cut.
    poisoned: Arc<AtomicBool>,
    /// The body reached its end.
    ended: bool,
    /// How long the end of the body waits for the connection to be ready.
    ready_wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl GuardedBody {
    fn new(inner: hyper::body::Incoming, conn: PooledConnection, guard: ResponseGuard) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(guard.deadline.instant().into())),
            idle_limit: guard.between_bytes_timeout,
            idle: guard.between_bytes_timeout.map(|d| Box::pin(tokio::time::sleep(d))),
            checks: guard.checks,
            conn: Some(conn),
            pool: guard.pool,
            poisoned: guard.poisoned,
            ended: false,
            ready_wait: None,
        }
    }

    /// Close the connection: this exchange did not end cleanly.
    fn discard(&mut self) {
        self.conn = None;
    }

    /// The body ended: release the connection — to the pool when it is ready
    /// for another request — then report the end.
    fn finish(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let Some(pool) = self.pool.clone() else {
            self.conn = None;
            return Poll::Ready(None);
        };
        if self.poisoned.load(Ordering::Acquire) {
            self.conn = None;
            return Poll::Ready(None);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(None);
        };
        match conn.sender.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                if let Some(conn) = self.conn.take() {
                    pool.checkin(conn);
                }
                Poll::Ready(None)
            }
            Poll::Ready(Err(_)) => {
                self.conn = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                // hyper is still finishing the exchange (e.g. the request
                // body is still being sent): wait a moment, then let a
                // background task wait instead of the guest.
                let wait = self
                    .ready_wait
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(READY_WAIT)));
                if wait.as_mut().poll(cx).is_ready() || self.deadline.as_mut().poll(cx).is_ready() {
                    if let Some(conn) = self.conn.take() {
                        checkin_when_ready(pool, conn, self.poisoned.clone());
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // The guest stopped reading before the end was reported. The
        // connection is worth keeping only when every byte of the body had
        // already come through this guard (and was counted against the
        // limit); otherwise dropping it here closes it.
        if self.inner.is_end_stream() && !self.poisoned.load(Ordering::Acquire) {
            if let Some(pool) = self.pool.clone() {
                checkin_when_ready(pool, conn, self.poisoned.clone());
            }
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        if this.ended {
            return this.finish(cx);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let (Some(idle), Some(limit)) = (this.idle.as_mut(), this.idle_limit) {
                        idle.as_mut().reset(tokio::time::Instant::now() + limit);
                    }
                    let frame = match frame.into_data() {
                        Ok(data) => match this.checks.pass_data(data) {
                            Ok(Some(data)) => Frame::data(data),
                            // All of it may be the start of the key: wait
                            // for more before handing anything on.
                            Ok(None) => continue,
                            Err(e) => {
                                this.discard();
                                return Poll::Ready(Some(Err(e)));
                            }
                        },
                        Err(frame) => match frame.into_trailers() {
                            Ok(trailers) => Frame::trailers(this.checks.pass_trailers(trailers)),
                            Err(_) => continue,
                        },
                    };
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.discard();
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    // What the scrubber held back can no longer start the key.
                    let rest = this.checks.finish();
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                    return this.finish(cx);
                }
                Poll::Pending => {
                    if this.deadline.as_mut().poll(cx).is_ready() {
                        this.discard();
                        return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
                    }
                    if let Some(idle) = this.idle.as_mut() {
                        if idle.as_mut().poll(cx).is_ready() {
                            this.discard();
                            return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.conn.is_none()
    }
}

/// A request body that fails once the guest has sent more than the limit.
pub(crate) struct LimitedRequestBody {
    inner: WasiBody,
    limit: u64,
    sent: u64,
    recorder: Arc<CallRecorder>,
    /// Set when the body is cut, so its connection is never reused.
    poisoned: Arc<AtomicBool>,
    /// Where the body as sent is recorded, when the call is.
    capture: Option<CaptureSlot>,
}

impl LimitedRequestBody {
    /// `inner`, cut past `limit` bytes (recorded, and `poisoned` set).
    pub(crate) fn new(inner: WasiBody, limit: u64, recorder: Arc<CallRecorder>, poisoned: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            limit,
            sent: 0,
            recorder,
            poisoned,
            capture: None,
        }
    }

    /// Also copy the body as sent into `capture` (a recorded call).
    pub(crate) fn recording_to(mut self, capture: Option<CaptureSlot>) -> Self {
        self.capture = capture;
        self
    }
}

impl Body for LimitedRequestBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &frame {
            this.poisoned.store(true, Ordering::Release);
            if let Some(capture) = &this.capture {
                capture.request_cut();
            }
        }
        if let Poll::Ready(Some(Ok(f))) = &frame {
            if let Some(data) = f.data_ref() {
                this.sent += data.len() as u64;
                if this.sent > this.limit {
                    this.poisoned.store(true, Ordering::Release);
                    if let Some(capture) = &this.capture {
                        capture.request_cut();
                    }
                    this.recorder.violation(SandboxViolation::LimitExceeded {
                        message: format!(
                            "an outbound request body passed {} bytes (limits.max_request_body_bytes)",
                            this.limit
                        ),
                    });
                    return Poll::Ready(Some(Err(HttpError::HttpRequestBodySize(Some(this.limit)))));
                }
                if let Some(capture) = &this.capture {
                    capture.request_data(data);
                }
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// Replaces the integration's key with `[redacted]` wherever an upstream
/// reflects it, in a streamed body (matches across chunk boundaries: it
/// holds back the last `key length - 1` bytes until it knows they do not
/// start the key) and in header maps.
#[derive(Debug)]
pub struct KeyScrubber {
    finder: memchr::memmem::Finder<'static>,
    held: Vec<u8>,
    /// Occurrences replaced so far.
    pub found: u64,
}

/// What a reflected key is replaced with.
pub const REDACTED: &[u8] = b"[redacted]";

impl KeyScrubber {
    /// A scrubber for `key`; `None` when there is no key, or it is shorter
    /// than [`MIN_SCRUBBED_KEY_BYTES`].
    pub fn for_key(key: Option<&ApiKey>) -> Option<Self> {
        let needle = key?.header_value().as_bytes().to_vec();
        (needle.len() >= MIN_SCRUBBED_KEY_BYTES).then(|| Self {
            finder: memchr::memmem::Finder::new(&needle).into_owned(),
            held: Vec::new(),
            found: 0,
        })
    }

    /// The next chunk of a body, scrubbed; may be shorter (bytes held back).
    pub fn feed(&mut self, data: &[u8]) -> Bytes {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(data);
        let key_len = self.finder.needle().len();
        let mut out = Vec::with_capacity(buf.len());
        let mut at = 0;
        while let Some(pos) = self.finder.find(&buf[at..]) {
            out.extend_from_slice(&buf[at..at + pos]);
            out.extend_from_slice(REDACTED);
            self.found += 1;
            at += pos + key_len;
        }
        let tail = &buf[at..];
        let keep = tail.len().min(key_len - 1);
        out.extend_from_slice(&tail[..tail.len() - keep]);
        self.held = tail[tail.len() - keep..].to_vec();
        Bytes::from(out)
    }

    /// The bytes held back at the end of the body.
    pub fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.held))
    }

    /// Replace every header value that contains the key; returns how many.
    pub fn scrub_headers(&self, headers: &mut http::HeaderMap) -> usize {
        let mut scrubbed = 0;
        for value in headers.values_mut() {
            if self.finder.find(value.as_bytes()).is_some() {
                *value = HeaderValue::from_static("[redacted]");
                scrubbed += 1;
            }
        }
        scrubbed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub_all(key: &str, chunks: &[&[u8]]) -> (Vec<u8>, u64) {
        let key = ApiKey::new(key).expect("key");
        let mut s = KeyScrubber::for_key(Some(&key)).expect("scrubber");
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&s.feed(c));
        }
        out.extend_from_slice(&s.finish());
        (out, s.found)
    }

    #[test]
    fn reflected_keys_are_scrubbed_across_chunks() {
        let (out, found) = scrub_all(
            "SECRET_key_123",
            &[b"{\"echo\":\"SECR", b"ET_key_1", b"23\"} SECRET_key_123"],
        );
        assert_eq!(String::from_utf8_lossy(&out), "{\"echo\":\"[redacted]\"} [redacted]");
        assert_eq!(found, 2);
        let (out, found) = scrub_all("SECRET_key_123", &[b"SECRET_key_12", b"", b"4 and SECRET"]);
        assert_eq!(String::from_utf8_lossy(&out), "SECRET_key_124 and SECRET");
        assert_eq!(found, 0);
        let key = ApiKey::new("SECRET_key_123").expect("key");
        let s = KeyScrubber::for_key(Some(&key)).expect("scrubber");
        let mut h = http::HeaderMap::new();
        h.insert("x-echo", HeaderValue::from_static("got SECRET_key_123"));
        h.insert("x-other", HeaderValue::from_static("fine"));
        assert_eq!(s.scrub_headers(&mut h), 1);
        assert_eq!(h["x-echo"], "[redacted]");
        assert!(KeyScrubber::for_key(Some(&ApiKey::new("short").expect("key"))).is_none());
    }
}
