//! The listener under `serve`: accepting connections and keeping each one
//! from holding the server longer than its request needs.
//!
//! A client owes the server a request and then attention to the answer; every
//! phase of a connection has a bound, so no client can hold a descriptor (or
//! a graceful shutdown) by being slow:
//!
//! | phase | bound | why |
//! |---|---|---|
//! | accepted, or first byte of a new request, until the head is complete | [`ConnectionLimits::header_read_timeout`] | slowloris: a head sent a byte at a time |
//! | head complete until the body has arrived | the same bound, from the head | the slow POST variant of the same attack |
//! | the handler runs | none here: the action timeout (10–180 s) bounds it | the work the client asked for |
//! | answer ready until written (for a streamed answer: since its last frame was taken) | the same bound | a client that never reads its answer |
//! | between requests (keep-alive) | [`ConnectionLimits::idle_timeout`] | idle sockets cost a descriptor each |
//!
//! At most [`ConnectionLimits::max_connections`] connections are open at once;
//! at the cap the server stops accepting until one closes (see [`accept_loop`]
//! for why). Shutdown stops accepting at once, closes every connection that has
//! no request in its handler or answer in flight, and lets the others finish.
//!
//! hyper's own `header_read_timeout` is off: it starts when a connection is
//! ready for its next request, so it would also cut keep-alive connections at
//! the header bound. The watchdog in `serve_connection` tracks the phase
//! itself (`ConnectionActivity`).
//!
//! It stays one file past 400 lines: the watchdog and the stream, service and
//! body wrappers that report each phase to it are one mechanism, and checking
//! that no phase in the table above goes unbounded means reading them together.

use crate::metrics::{ConnectionClose, Metrics};
use anyhow::{bail, Result};
use axum::Router;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// Default time a client has to send a complete request head (and then its
/// body, and to take its answer). A real client sends a head in one packet;
/// 10 s is generous for a slow mobile link and short enough that a slowloris
/// client holds each descriptor for only 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest and longest `--header-read-timeout`, in seconds: below 1 s real
/// clients fail; past 2 minutes the bound no longer protects anything.
pub const HEADER_READ_TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=120;
/// Default time a keep-alive connection may sit between requests. Clients
/// that reuse connections (the platform's HTTP pool) send again within
/// seconds; 60 s matches common client pool idle times, so they rarely race
/// a close, and idle descriptors are returned within a minute.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Shortest and longest `--idle-timeout`, in seconds.
pub const IDLE_TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=3600;
/// Default cap on open connections. Each costs a descriptor and up to
/// [`MAX_REQUEST_HEAD_BYTES`] of buffer; 1024 stays under the usual soft
/// descriptor limit (`ulimit -n` 1024 is raised by systemd/Kubernetes to far
/// more) and far above what a per-integration concurrency of 64 needs.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Smallest and largest `--max-connections` (a `u64` range, as the CLI
/// parses it).
pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u64> = 1..=65_536;
/// Cap on connections to the separate `/metrics` listener: scrapers are few,
/// and a flood there must not take descriptors from the API.
pub const METRICS_MAX_CONNECTIONS: usize = 16;
/// Largest request head (request line and headers) and read buffer per
/// connection. Our requests carry a path, a token and a few headers; 16 KiB
/// bounds buffer memory at `max_connections` × 16 KiB (16 MiB at the default).
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
/// Pause after a failed `accept` (e.g. out of descriptors), so the loop does
/// not spin and flood the log while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// How long clients may take and how many may connect at once: the bounds
/// that keep slow, idle or numerous clients from holding the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From accept (or a new request's first byte) to a complete head; also
    /// the time allowed for the body after the head, and for writing the answer.
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once; at the cap, accepting pauses.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConnectionLimits {
    /// Refuse limits outside the documented ranges (the CLI checks them too;
    /// this guards library callers).
    pub fn check(&self) -> Result<()> {
        let header = self.header_read_timeout.as_secs_f64();
        if !(*HEADER_READ_TIMEOUT_SECS.start() as f64..=*HEADER_READ_TIMEOUT_SECS.end() as f64).contains(&header) {
            bail!(
                "the header-read timeout is {header} s; it must be {}–{} s",
                HEADER_READ_TIMEOUT_SECS.start(),
                HEADER_READ_TIMEOUT_SECS.end()
            );
        }
        let idle = self.idle_timeout.as_secs_f64();
        if !(*IDLE_TIMEOUT_SECS.start() as f64..=*IDLE_TIMEOUT_SECS.end() as f64).contains(&idle) {
            bail!(
                "the idle timeout is {idle} s; it must be {}–{} s",
                IDLE_TIMEOUT_SECS.start(),
                IDLE_TIMEOUT_SECS.end()
            );
        }
        if !u64::try_from(self.max_connections).is_ok_and(|n| MAX_CONNECTIONS_RANGE.contains(&n)) {
            bail!(
                "the connection cap is {}; it must be {}–{}",
                self.max_connections,
                MAX_CONNECTIONS_RANGE.start(),
                MAX_CONNECTIONS_RANGE.end()
            );
        }
        Ok(())
    }
}

/// Accept connections on `listener` and serve `app` on each until `stop`
/// turns true; then stop accepting, and return once every connection is
/// closed.
///
/// At the cap the loop waits for a free slot *before* calling `accept`
/// instead of accepting and closing at once: new connections wait in the
/// kernel's backlog, which costs the process no descriptor; a legitimate
/// client is served as soon as a slow one times out instead of being reset;
/// and a flood cannot turn the loop into an accept–close spin. Clients that
/// give up while queued are the kernel's to clean up.
pub async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed; nothing left to serve if it were
            },
            () = stopped(&mut stop) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    tracing::warn!(
                        "cannot accept a connection: {e}; retrying shortly (if it says too many open files, raise \
                         the descriptor limit `ulimit -n` above --max-connections)"
                    );
                    drop(slot);
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        tokio::spawn(serve_connection(
            stream,
            app.clone(),
            limits,
            metrics.clone(),
            stop.clone(),
            slot,
        ));
    }
    // Stop accepting now: the port closes while connections drain.
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Resolves once shutdown has begun (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Serve one connection until the client is done, a phase bound passes, or
/// shutdown finds it without work in flight. Holds `_slot` (its place under
/// the cap) until it returns.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _open = metrics.connection_opened();
    let activity = Arc::new(ConnectionActivity::new());
    let io = TokioIo::new(WatchedStream {
        inner: stream,
        activity: activity.clone(),
    });
    let service = AppService {
        app,
        activity: activity.clone(),
        body_timeout: limits.header_read_timeout,
    };
    let mut builder = http1::Builder::new();
    builder.header_read_timeout(None).max_buf_size(MAX_REQUEST_HEAD_BYTES);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let now = Instant::now();
        let bound = activity.bound(&limits);
        if let Some((deadline, reason)) = bound {
            if deadline <= now {
                metrics.connection_closed(reason);
                return;
            }
        }
        // Without a bound (a handler is running) the watchdog only waits for
        // the phase to change; the hour is a placeholder never reached.
        let wake = bound.map_or(now + Duration::from_secs(3600), |(deadline, _)| deadline);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            () = activity.changed.notified() => {}
            () = tokio::time::sleep_until(wake) => {}
            () = stopped(&mut stop), if !draining => {
                if activity.has_request_in_flight() {
                    // Finish this request, answer with `Connection: close`.
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                } else {
                    metrics.connection_closed(ConnectionClose::Shutdown);
                    return;
                }
            }
        }
    }
}

/// Where a connection is in its request cycle, and since when.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head.
    ReadingHead { since: Instant },
    /// A handler has the request (its body is bounded by [`DeadlineBody`]).
    Handling,
    /// The answer is ready and being written.
    Responding { since: Instant },
    /// Between requests on a keep-alive connection.
    Idle { since: Instant },
}

/// The phase of one connection, updated by its stream (bytes arrived) and its
/// service (request started, answer ready, answer written), watched by
/// [`serve_connection`].
struct ConnectionActivity {
    phase: Mutex<Phase>,
    /// Wakes the watchdog when the phase changes its bound.
    changed: Notify,
}

impl ConnectionActivity {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::ReadingHead { since: Instant::now() }),
            changed: Notify::new(),
        }
    }

    fn set(&self, update: impl FnOnce(Phase) -> Option<Phase>) {
        let Ok(mut phase) = self.phase.lock() else { return };
        if let Some(next) = update(*phase) {
            *phase = next;
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: on an idle connection, a new request head has begun.
    fn bytes_arrived(&self) {
        self.set(|phase| match phase {
            Phase::Idle { .. } => Some(Phase::ReadingHead { since: Instant::now() }),
            _ => None,
        });
    }

    fn request_started(&self) {
        self.set(|_| Some(Phase::Handling));
    }

    fn answer_ready(&self) {
        self.set(|_| Some(Phase::Responding { since: Instant::now() }));
    }

    fn answer_written(&self) {
        self.set(|_| Some(Phase::Idle { since: Instant::now() }));
    }

    fn has_request_in_flight(&self) -> bool {
        self.phase
            .lock()
            .is_ok_and(|phase| matches!(*phase, Phase::Handling | Phase::Responding { .. }))
    }

    /// When the current phase's bound passes, and what to call the close.
    fn bound(&self, limits: &ConnectionLimits) -> Option<(Instant, ConnectionClose)> {
        let phase = *self.phase.lock().ok()?;
        match phase {
            Phase::ReadingHead { since } => {
                Some((since + limits.header_read_timeout, ConnectionClose::HeaderReadTimeout))
            }
            Phase::Handling => None,
            Phase::Responding { since } => Some((since + limits.header_read_timeout, ConnectionClose::WriteTimeout)),
            Phase::Idle { since } => Some((since + limits.idle_timeout, ConnectionClose::IdleTimeout)),
        }
    }
}

/// The TCP stream, telling [`ConnectionActivity`] when bytes arrive.
struct WatchedStream {
    inner: TcpStream,
    activity: Arc<ConnectionActivity>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The router as hyper's service: marks the request's phases and bounds the
/// arrival of its body.
#[derive(Clone)]
struct AppService {
    app: Router,
    activity: Arc<ConnectionActivity>,
    body_timeout: Duration,
}

impl hyper::service::Service<hyper::Request<Incoming>> for AppService {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        // Dropped with the answer's body once written, or with this future
        // if the connection ends first: either way the phase moves on.
        let in_flight = RequestInFlight(self.activity.clone());
        let timeout = self.body_timeout;
        let request = request.map(|body| DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        });
        let app = self.app.clone();
        Box::pin(async move {
            let Ok(response) = app.oneshot(request).await;
            in_flight.0.answer_ready();
            Ok(response.map(|body| TrackedBody { inner: body, in_flight }))
        })
    }
}

/// One request on a connection, from its head until its answer is written.
struct RequestInFlight(Arc<ConnectionActivity>);

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.0.answer_written();
    }
}

/// An answer's body, holding its request in flight until hyper has written
/// it (and drops it).
struct TrackedBody {
    inner: axum::body::Body,
    in_flight: RequestInFlight,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        // hyper asks for the next frame only once it has taken the previous
        // one: a streamed answer (an MCP listen) that keeps being taken is
        // progress, and its write bound starts again. A client that stops
        // reading stops hyper asking, and is cut at the bound as before.
        if let Poll::Ready(Some(Ok(_))) = &frame {
            this.in_flight.0.answer_ready();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that must arrive within a bound from the end of the head.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that did not arrive in time; handlers answer 408.
#[derive(Debug)]
pub struct BodyTimeout(Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} s of its head (--header-read-timeout); send it at once",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimeout {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_within_their_ranges() {
        assert!(ConnectionLimits::default().check().is_ok());
    }

    #[test]
    fn limits_outside_their_ranges_are_refused() {
        let zero_cap = ConnectionLimits {
            max_connections: 0,
            ..ConnectionLimits::default()
        };
        assert!(zero_cap.check().is_err());
        let instant_header = ConnectionLimits {
            header_read_timeout: Duration::ZERO,
            ..ConnectionLimits::default()
        };
        let e = instant_header.check().expect_err("0 s is refused").to_string();
        assert!(e.contains("header-read timeout"), "{e}");
        let endless_idle = ConnectionLimits {
            idle_timeout: Duration::from_secs(86_400),
            ..ConnectionLimits::default()
        };
        assert!(endless_idle.check().is_err());
    }
}
