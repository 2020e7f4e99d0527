//! Keep-alive connections for the outbound transport (`transport.rs` dials,
//! `body.rs` hands a connection back when its response ends cleanly).
//!
//! Reuse replaces only the dial (TCP connect + TLS handshake) step: every
//! request still goes through the whole policy first (origin check,
//! credential headers, address resolution and the non-public-address check),
//! and only then asks the pool for an idle connection to *exactly* the peer
//! that passed: a [`PeerKey`] is the scheme, the lower-cased host name, the
//! port, the checked socket address, the TLS server name and a fingerprint of
//! the credential the request carries, so connections that carried one key
//! are never used for another. Each [`ActionComponent`](crate::ActionComponent)
//! has its own pool, shared by its invocations.
//!
//! A connection is handed back only when its exchange ended cleanly: the
//! response body was read to its end through the guarded body (never cut by
//! the size limit, the deadline or an idle timeout), the request body was not
//! cut by its limit, and hyper reports the connection ready for the next
//! request — which HTTP/1.1 only is once the request was fully sent and the
//! response fully read. Anything else drops the connection, and dropping a
//! [`PooledConnection`] aborts the task driving it, closing the socket.
//!
//! The pool is bounded: connections idle longer than [`IDLE_TIMEOUT`] are
//! discarded (checked whenever the pool is touched), at most
//! [`MAX_IDLE_PER_PEER`] idle connections per peer and [`MAX_IDLE_TOTAL`]
//! overall are kept (the oldest go first).

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::client::conn::http1::SendRequest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::Error as HttpError;

/// An idle connection older than this is closed instead of reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per peer.
pub const MAX_IDLE_PER_PEER: usize = 8;
/// Idle connections kept in one pool.
pub const MAX_IDLE_TOTAL: usize = 256;
/// How long the end of a response body waits for hyper to report the
/// connection reusable before the wait moves to a background task.
pub(crate) const READY_WAIT: Duration = Duration::from_millis(20);
/// The longest a background task waits for a connection to become reusable.
pub(crate) const BACKGROUND_READY_WAIT: Duration = Duration::from_secs(5);

/// The body type requests are sent with.
pub(crate) type OutgoingBody = UnsyncBoxBody<Bytes, HttpError>;

/// Everything that identifies the peer of a connection. Connections are
/// reused only for a request with an equal key. (No `Debug`: the credential
/// fingerprint stays out of logs.)
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PeerKey {
    pub scheme: String,
    /// Lower case.
    pub host: String,
    pub port: u16,
    /// The address that passed the address checks and was dialled.
    pub addr: SocketAddr,
    /// The name the TLS certificate was verified for (`https` only).
    pub tls_server_name: Option<String>,
    /// SHA-256 of the credential header name and value the requests carry
    /// (all zero when none).
    pub credential: [u8; 32],
}

/// One HTTP/1.1 client connection: its sender and the task driving it.
/// Dropping it closes the connection.
pub(crate) struct PooledConnection {
    pub sender: SendRequest<OutgoingBody>,
    driver: tokio::task::AbortHandle,
    pub key: PeerKey,
}

impl PooledConnection {
    /// Wrap a connection whose driver task is `driver`.
    pub(crate) fn new(sender: SendRequest<OutgoingBody>, driver: tokio::task::AbortHandle, key: PeerKey) -> Self {
        Self { sender, driver, key }
    }

    /// Whether it can take a request right now.
    fn reusable(&self) -> bool {
        !self.sender.is_closed() && self.sender.is_ready()
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

struct Idle {
    conn: PooledConnection,
    since: Instant,
}

/// Idle keep-alive connections of one component.
pub struct ConnectionPool {
    idle: Mutex<HashMap<PeerKey, Vec<Idle>>>,
    idle_timeout: Duration,
    max_per_peer: usize,
    max_total: usize,
}

impl Default for ConnectionPool {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("idle", &self.idle_connections())
            .finish()
    }
}

impl ConnectionPool {
    /// An empty pool with the default bounds.
    pub fn new() -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
            idle_timeout: IDLE_TIMEOUT,
            max_per_peer: MAX_IDLE_PER_PEER,
            max_total: MAX_IDLE_TOTAL,
        }
    }

    /// Idle connections held now.
    pub fn idle_connections(&self) -> usize {
        self.idle.lock().map(|m| m.values().map(Vec::len).sum()).unwrap_or(0)
    }

    /// Take the most recently used idle connection for `key` that is still
    /// open, ready and younger than the idle timeout.
    pub(crate) fn checkout(&self, key: &PeerKey) -> Option<PooledConnection> {
        let mut discarded = Vec::new();
        let found = {
            let Ok(mut idle) = self.idle.lock() else {
                return None;
            };
            let mut found = None;
            if let Some(list) = idle.get_mut(key) {
                while let Some(entry) = list.pop() {
                    if entry.since.elapsed() < self.idle_timeout && entry.conn.reusable() {
                        found = Some(entry.conn);
                        break;
                    }
                    discarded.push(entry);
                }
                if list.is_empty() {
                    idle.remove(key);
                }
            }
            found
        };
        // Closing happens outside the lock.
        drop(discarded);
        found
    }

    /// Keep `conn` for reuse if it is ready for another request; otherwise
    /// (or when the pool is full of younger connections) it is closed.
    pub(crate) fn checkin(&self, conn: PooledConnection) {
        if !conn.reusable() {
            return;
        }
        let mut discarded = Vec::new();
        if let Ok(mut idle) = self.idle.lock() {
            let now = Instant::now();
            let timeout = self.idle_timeout;
            idle.retain(|_, list| {
                let (old, young): (Vec<Idle>, Vec<Idle>) =
                    list.drain(..).partition(|e| now.duration_since(e.since) >= timeout);
                discarded.extend(old);
                *list = young;
                !list.is_empty()
            });
            let list = idle.entry(conn.key.clone()).or_default();
            if list.len() >= self.max_per_peer {
                discarded.push(list.remove(0));
            }
            list.push(Idle { conn, since: now });
            let mut total: usize = idle.values().map(Vec::len).sum();
            while total > self.max_total {
                let oldest = idle
                    .iter()
                    .filter_map(|(k, list)| list.first().map(|e| (k.clone(), e.since)))
                    .min_by_key(|(_, since)| *since)
                    .map(|(k, _)| k);
                let Some(k) = oldest else { break };
                if let Some(list) = idle.get_mut(&k) {
                    discarded.push(list.remove(0));
                    if list.is_empty() {
                        idle.remove(&k);
                    }
                }
                total -= 1;
            }
        }
        drop(discarded);
    }
}

/// Hand `conn` back to `pool` once hyper reports it ready for another
/// request (within [`BACKGROUND_READY_WAIT`]) and `poisoned` (the request
/// body was cut) is still unset; closes it otherwise. Waits in the
/// background; without a runtime the connection is simply closed.
pub(crate) fn checkin_when_ready(
    pool: std::sync::Arc<ConnectionPool>,
    mut conn: PooledConnection,
    poisoned: std::sync::Arc<AtomicBool>,
) {
    if poisoned.load(Ordering::Acquire) {
        return;
    }
    if conn.reusable() {
        pool.checkin(conn);
        return;
    }
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let ready = tokio::time::timeout(BACKGROUND_READY_WAIT, conn.sender.ready()).await;
            if matches!(ready, Ok(Ok(()))) && !poisoned.load(Ordering::Acquire) {
                pool.checkin(conn);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::Arc;

    fn key(port: u16) -> PeerKey {
        PeerKey {
            scheme: "http".into(),
            host: "127.0.0.1".into(),
            port,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tls_server_name: None,
            credential: [0; 32],
        }
    }

    /// A real keep-alive connection to a tiny server that answers every
    /// request with an empty 204.
    async fn connection(key: PeerKey) -> PooledConnection {
        let stream = tokio::net::TcpStream::connect(key.addr).await.expect("connect");
        let (sender, conn) = hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream))
            .await
            .expect("handshake");
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut sender = sender;
        sender.ready().await.expect("ready");
        PooledConnection::new(sender, driver.abort_handle(), key)
    }

    async fn server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
                    }
                });
            }
        });
        (port, accepted)
    }

    #[tokio::test]
    async fn keys_bounds_and_expiry() {
        let (port, _) = server().await;
        let pool = ConnectionPool {
            max_per_peer: 2,
            max_total: 3,
            ..ConnectionPool::new()
        };
        // A ready connection is kept and handed out for its own key only.
        pool.checkin(connection(key(port)).await);
        assert_eq!(pool.idle_connections(), 1);
        let mut other = key(port);
        other.credential = [1; 32];
        assert!(pool.checkout(&other).is_none(), "another credential never shares");
        assert!(pool.checkout(&key(port)).is_some());
        assert_eq!(pool.idle_connections(), 0);

        // Per-peer and overall bounds.
        for _ in 0..3 {
            pool.checkin(connection(key(port)).await);
        }
        assert_eq!(pool.idle_connections(), 2, "at most 2 per peer");
        for _ in 0..2 {
            pool.checkin(connection(other.clone()).await);
        }
        assert_eq!(pool.idle_connections(), 3, "at most 3 overall");

        // Expired connections are not handed out.
        let expiring = ConnectionPool {
            idle_timeout: Duration::from_millis(10),
            ..ConnectionPool::new()
        };
        expiring.checkin(connection(key(port)).await);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(expiring.checkout(&key(port)).is_none());
        assert_eq!(expiring.idle_connections(), 0);
    }

    #[tokio::test]
    async fn a_connection_busy_with_a_request_is_not_kept() {
        let (port, _) = server().await;
        let pool = ConnectionPool::new();
        let mut conn = connection(key(port)).await;
        let request = http::Request::builder()
            .uri("/")
            .header("host", "127.0.0.1")
            .body(
                http_body_util::Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .expect("request");
        let pending = conn.sender.send_request(request);
        // The request is queued: the sender is not ready for another one.
        pool.checkin(conn);
        assert_eq!(pool.idle_connections(), 0);
        drop(pending);
    }
}
