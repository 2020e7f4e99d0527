//! A stand-in OpenTelemetry collector for the OTLP export benchmark: it
//! answers `200` to `POST /v1/traces` and `POST /v1/metrics` (OTLP/HTTP with
//! an empty, and so valid, protobuf response) and only counts what arrived.
//! Nothing is decoded: the benchmark measures what exporting costs the
//! server's calls, not what it exports (the e2e tests check that).

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Large enough for any batch the exporter sends: a refused batch would be
/// dropped spans, i.e. a receiver fault counted against the server.
const MAX_EXPORT_BYTES: usize = 64 * 1024 * 1024;

/// What the receiver has been sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtlpReceived {
    /// `POST /v1/traces` requests (one per exported span batch).
    pub trace_requests: u64,
    /// Their body bytes, as sent (compressed if the exporter compresses).
    pub trace_bytes: u64,
    /// `POST /v1/metrics` requests (one per metric export interval).
    pub metric_requests: u64,
    /// Their body bytes.
    pub metric_bytes: u64,
}

#[derive(Default)]
struct Counters {
    trace_requests: AtomicU64,
    trace_bytes: AtomicU64,
    metric_requests: AtomicU64,
    metric_bytes: AtomicU64,
}

/// The receiver, served on a runtime thread of its own (like the simulator)
/// so it does not share the measuring code's executor; stopped when dropped.
pub struct OtlpReceiver {
    /// The base URL to give as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    counters: Arc<Counters>,
    _runtime: tokio::runtime::Runtime,
}

impl OtlpReceiver {
    /// Listen on a free loopback port.
    pub fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-receiver")
            .enable_all()
            .build()?;
        let counters = Arc::new(Counters::default());
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .layer(DefaultBodyLimit::max(MAX_EXPORT_BYTES))
            .with_state(counters.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("cannot listen on 127.0.0.1 for the OTLP receiver")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("otlp receiver stopped: {e}");
            }
        });
        Ok(Self {
            endpoint,
            counters,
            _runtime: runtime,
        })
    }

    /// The counts so far.
    pub fn received(&self) -> OtlpReceived {
        let c = &self.counters;
        OtlpReceived {
            trace_requests: c.trace_requests.load(Ordering::Relaxed),
            trace_bytes: c.trace_bytes.load(Ordering::Relaxed),
            metric_requests: c.metric_requests.load(Ordering::Relaxed),
            metric_bytes: c.metric_bytes.load(Ordering::Relaxed),
        }
    }
}

/// An empty `Export…ServiceResponse`: no partial-success report.
fn accepted() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/x-protobuf")], Bytes::new())
}

async fn traces(State(c): State<Arc<Counters>>, body: Bytes) -> impl IntoResponse {
    c.trace_requests.fetch_add(1, Ordering::Relaxed);
    c.trace_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    accepted()
}

async fn metrics(State(c): State<Arc<Counters>>, body: Bytes) -> impl IntoResponse {
    c.metric_requests.fetch_add(1, Ordering::Relaxed);
    c.metric_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn post(endpoint: &str, path: &str, body: &[u8]) -> Result<String> {
        let addr = endpoint.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr)?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        s.write_all(body)?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn otlp_posts_are_accepted_and_counted_per_signal() -> Result<()> {
        let receiver = OtlpReceiver::start()?;
        assert!(post(&receiver.endpoint, "/v1/traces", &[1; 100])?.starts_with("HTTP/1.1 200"));
        assert!(post(&receiver.endpoint, "/v1/traces", &[2; 50])?.starts_with("HTTP/1.1 200"));
        assert!(post(&receiver.endpoint, "/v1/metrics", &[3; 7])?.starts_with("HTTP/1.1 200"));
        assert!(post(&receiver.endpoint, "/v1/logs", &[4; 7])?.starts_with("HTTP/1.1 404"));
        assert_eq!(
            receiver.received(),
            OtlpReceived {
                trace_requests: 2,
                trace_bytes: 150,
                metric_requests: 1,
                metric_bytes: 7,
            }
        );
        Ok(())
    }
}
