//! The transport: resolve, connect, TLS, and one HTTP/1.1 exchange, on a
//! connection to an address the policy has already checked.
//!
//! Nothing here decides whether a request may go out (that is
//! `policy.rs`); it only carries an admitted one, and carries it safely:
//! - the connection is made to the *checked* address (no second DNS lookup a
//!   rebinding attacker could race);
//! - every phase (DNS, connect, TLS, first byte) is clamped to what is left of
//!   the call's deadline;
//! - TLS verifies the server against the Mozilla root set, for the base
//!   URL's host name, with no client certificate;
//! - an idle keep-alive connection is reused only for exactly the same peer,
//!   address and credential (`pool.rs`); when an idle one turns out to have
//!   closed before the request was written, the request is sent once more on
//!   a new connection (nothing was sent, so this cannot repeat a request).

use super::policy::Target;
use super::pool::{ConnectionPool, OutgoingBody, PeerKey, PooledConnection};
use super::record::OutboundRecord;
use crate::deadline::ActionDeadline;
use http::{Request, Response};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions};

/// The peer a request goes to, before an address is picked.
pub(crate) struct Peer {
    scheme: String,
    host: String,
    port: u16,
    tls_server_name: Option<String>,
    credential: [u8; 32],
}

impl Peer {
    /// The peer of an admitted request's `target`, carrying the credential
    /// whose fingerprint is `credential` (`OutboundPolicy::credential_fingerprint`).
    pub(crate) fn new(target: Target, credential: [u8; 32]) -> Self {
        Self {
            tls_server_name: (target.scheme == "https").then(|| target.host.clone()),
            scheme: target.scheme,
            host: target.host,
            port: target.port,
            credential,
        }
    }

    /// Its host name (lower case, IPv6 without brackets).
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    fn key(&self, addr: SocketAddr) -> PeerKey {
        PeerKey {
            scheme: self.scheme.clone(),
            host: self.host.clone(),
            port: self.port,
            addr,
            tls_server_name: self.tls_server_name.clone(),
            credential: self.credential,
        }
    }
}

/// How one admitted request travels: the transport's one config.
pub(crate) struct Transport {
    /// Where it goes; a pooled connection must match it exactly.
    pub peer: Peer,
    /// Idle keep-alive connections shared with other invocations; `None`
    /// opens a connection per request.
    pub pool: Option<Arc<ConnectionPool>>,
    /// The call's deadline: no phase may outlast it.
    pub deadline: ActionDeadline,
    /// The phase timeouts the guest asked for.
    pub options: Option<RequestOptions>,
}

impl Transport {
    /// The addresses of the peer: `pinned` (the operator's, like curl's
    /// `--resolve`) or DNS within the connect timeout. The caller checks them
    /// before any is dialled.
    pub(crate) async fn resolve(&self, pinned: Option<&Vec<IpAddr>>) -> Result<Vec<SocketAddr>, HttpError> {
        match pinned {
            Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, self.peer.port)).collect()),
            None => resolve(&self.peer.host, self.peer.port, self.connect_timeout()).await,
        }
    }

    /// Send `request` on an idle pooled connection to one of `addrs` (all
    /// checked), or a new one, and wait for the response head. Returns it
    /// with the connection it arrived on; notes in `record` whether the
    /// connection was reused.
    pub(crate) async fn send(
        &self,
        addrs: &[SocketAddr],
        request: Request<OutgoingBody>,
        record: &mut OutboundRecord,
    ) -> Result<(Response<hyper::body::Incoming>, PooledConnection), HttpError> {
        let pooled = self
            .pool
            .as_ref()
            .and_then(|pool| addrs.iter().find_map(|addr| pool.checkout(&self.peer.key(*addr))));
        let connect_timeout = self.connect_timeout();
        let (mut conn, reused) = match pooled {
            Some(conn) => (conn, true),
            None => (self.dial(addrs, connect_timeout).await?, false),
        };
        record.reused_connection = reused;

        let sent = tokio::time::timeout(self.first_byte_timeout(), conn.sender.try_send_request(request)).await;
        let response = match sent {
            Err(_) => return Err(HttpError::ConnectionReadTimeout),
            Ok(Ok(response)) => response,
            Ok(Err(mut e)) => match e.take_message() {
                // The idle connection closed just before the request could be
                // written (the server timed it out): nothing was sent, so send it
                // once more on a new connection.
                Some(request) if reused => {
                    drop(conn);
                    conn = self.dial(addrs, self.connect_timeout()).await?;
                    record.reused_connection = false;
                    match tokio::time::timeout(self.first_byte_timeout(), conn.sender.send_request(request)).await {
                        Err(_) => return Err(HttpError::ConnectionReadTimeout),
                        Ok(r) => r?,
                    }
                }
                _ => return Err(e.into_error().into()),
            },
        };
        Ok((response, conn))
    }

    /// The longest wait between two bytes of the response body, as the guest
    /// asked (the body guard also stops at the deadline).
    pub(crate) fn between_bytes_timeout(&self) -> Option<Duration> {
        self.options.and_then(|o| o.between_bytes_timeout)
    }

    /// The time a phase may take: what the guest asked for, within what is
    /// left of the call.
    fn phase(&self, configured: Option<Duration>) -> Duration {
        let left = self.deadline.remaining();
        configured.map_or(left, |c| c.min(left))
    }

    fn connect_timeout(&self) -> Duration {
        self.phase(self.options.and_then(|o| o.connect_timeout))
    }

    fn first_byte_timeout(&self) -> Duration {
        self.phase(self.options.and_then(|o| o.first_byte_timeout))
    }

    /// Open a new connection to the first of `addrs` (all checked) that
    /// answers, with TLS for `https`, its I/O driven by a task of its own.
    async fn dial(&self, addrs: &[SocketAddr], connect_timeout: Duration) -> Result<PooledConnection, HttpError> {
        let (stream, addr) = connect(addrs, connect_timeout).await?;
        let key = self.peer.key(addr);
        let (sender, driver) = match &self.peer.tls_server_name {
            Some(name) => {
                let tls = tls_connect(name, stream, self.deadline.remaining()).await?;
                let (s, c) = hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(tls)).await?;
                (s, spawn_driver(c))
            }
            None => {
                let (s, c) =
                    hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)).await?;
                (s, spawn_driver(c))
            }
        };
        Ok(PooledConnection::new(sender, driver, key))
    }
}

/// Drive a connection's I/O in a task of its own (it outlives one exchange
/// when it is reused); the handle aborts it.
fn spawn_driver(conn: impl Future<Output = hyper::Result<()>> + Send + 'static) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(target: "actionbox::outbound", "outbound connection ended with an error: {e}");
        }
    })
    .abort_handle()
}

/// The addresses of `host` (an IP literal is its own), within `timeout`.
async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, HttpError> {
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(HttpError::DnsTimeout),
        Ok(Err(e)) => Err(HttpError::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        }),
        Ok(Ok(addrs)) => {
            let addrs: Vec<_> = addrs.collect();
            if addrs.is_empty() {
                Err(HttpError::DestinationNotFound)
            } else {
                Ok(addrs)
            }
        }
    }
}

/// A TCP connection to the first of `addrs` that answers, within `timeout`.
async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<(TcpStream, SocketAddr), HttpError> {
    let attempt = async {
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok((s, *addr)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or(HttpError::DestinationUnavailable, HttpError::Connect))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
}

/// TLS over `stream`, verified for `host`, within `timeout`.
async fn tls_connect(
    host: &str,
    stream: TcpStream,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, HttpError> {
    // Built once: the Mozilla root set (webpki-roots), ring as the crypto
    // provider, TLS 1.2 and 1.3. No client certificates.
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> = std::sync::OnceLock::new();
    let config = CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| HttpError::InternalError(Some(format!("TLS is unavailable: {e}"))))?;
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => rustls::pki_types::ServerName::try_from(host.to_string()).map_err(HttpError::InvalidDnsNameError)?,
    };
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    tokio::time::timeout(timeout, connector.connect(name, stream))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Tls)
}
