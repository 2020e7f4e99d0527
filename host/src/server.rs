//! `actionbox serve`: the assistant platform's HTTP API over the configured
//! actions.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/tools?phase=…&direction=…&format=…` | tool definitions, as `actionbox tools` |
//! | `POST /v1/actions/{name}/invoke` `{"params": {…}}` | `{"result", "response_instructions"}` or `{"error": {…}}` |
//! | `POST /v1/sessions/start` `{"context": {…}}` | the session-start actions' results |
//! | `POST /v1/integrations/{name}/test` | the Test button |
//! | `POST /mcp` | the interaction actions over remote MCP (`server/mcp_http.rs`), with `/.well-known/oauth-protected-resource/mcp` |
//! | `GET /healthz` | liveness |
//! | `GET /metrics` | Prometheus text; only on `--metrics-listen ADDR` when that is given |
//!
//! `/v1/*` needs `Authorization: Bearer <token>`; a missing or wrong token is
//! a 401 before any work. The token is compared as SHA-256 digests in
//! constant time, so neither its bytes nor its length show in response times.
//!
//! Everything a client can make the server hold is bounded; a bound that is
//! reached is an answer (or a closed connection), never a queue:
//!
//! | bound | default | why |
//! |---|---|---|
//! | calls in flight per integration: invoke, session start, Test | 64, `--max-concurrency` | past it, 429 `saturated` with `Retry-After`, so a burst cannot pile calls (and pool instances) up |
//! | request body | 64 KiB ([`MAX_REQUEST_BODY_BYTES`]) | params and contexts are small |
//! | request head | 16 KiB ([`connections::MAX_REQUEST_HEAD_BYTES`]) | bounds buffer memory per connection |
//! | head, then body, then writing the answer | 10 s each, `--header-read-timeout` | slowloris and slow-POST clients lose their connection, not the server its descriptors |
//! | keep-alive between requests | 60 s, `--idle-timeout` | idle descriptors come back |
//! | open connections | 1024, `--max-connections` | at the cap, accepting pauses until one closes |
//!
//! A session start takes a slot on every integration whose actions it will
//! run, a Test its integration's: both run the integration's component and
//! count against its bound exactly like an invoke. `--metrics-listen` puts
//! `/metrics` on its own address (kept internal, with its own small
//! connection cap) so the public port does not expose counters.
//!
//! SIGHUP reloads the config and components; calls in flight finish on the
//! catalog they started with. Shutdown (SIGTERM, Ctrl-C) stops accepting at
//! once, closes idle and half-sent connections at once, and lets calls in
//! flight finish — each within its action timeout (≤ 180 s).
//!
//! This module holds the server's state, its (re)loading, the router and the
//! token check; what each route answers is `server/routes.rs`, the listener
//! and its per-connection bounds `server/connections.rs`.

pub mod connections;
mod console;
pub mod mcp_http;
pub mod oauth;
mod routes;
pub mod workspace_api;

use crate::catalog::ActionCatalog;
use crate::config::Phase;
use crate::mcp::{ActionRunner, ToolAnswer};
use crate::metrics::Metrics;
use crate::present::problem;
use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
pub use connections::ConnectionLimits;
use mcp_http::{McpAccess, McpHttp};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, RwLock, Semaphore};

/// Largest request body accepted, in bytes: params and contexts are small.
pub const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;
/// Default per-integration concurrency bound.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;

/// How the server runs: what it serves and to whom. How connections are
/// treated is [`ConnectionLimits`], given to [`serve_with`]: those bounds
/// belong to the listener and do not change on a reload.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The config file (reloaded on SIGHUP).
    pub config: PathBuf,
    /// Bearer token required on `/v1/*`; `None` only for loopback development.
    pub auth_token: Option<String>,
    /// Calls in flight per integration before 429.
    pub max_concurrency: usize,
}

struct Loaded {
    catalog: Arc<ActionCatalog>,
    /// Integration name → its concurrency permits.
    permits: BTreeMap<String, Arc<Semaphore>>,
}

/// Why call slots could not be taken.
enum NoSlot<'a> {
    /// This integration has `max_concurrency` calls in flight.
    Saturated(&'a str),
    /// This integration has no permits (a catalog/permits mismatch: a bug).
    Unknown(&'a str),
}

impl Loaded {
    /// `calls[name]` call slots on each integration, taken now or not at
    /// all: a request waits for nothing (it is answered 429 instead). Every
    /// call in flight holds one, so an integration never runs more than
    /// `max_concurrency` calls at once — the bound the host's memory is sized
    /// by (README, "Worst case per call").
    fn take_slots<'a>(&self, calls: &BTreeMap<&'a str, u32>) -> Result<Vec<OwnedSemaphorePermit>, NoSlot<'a>> {
        calls
            .iter()
            .map(|(&name, &n)| {
                let permits = self.permits.get(name).ok_or(NoSlot::Unknown(name))?;
                permits
                    .clone()
                    .try_acquire_many_owned(n)
                    .map_err(|_| NoSlot::Saturated(name))
            })
            .collect()
    }
}

/// Shared server state.
#[derive(Clone)]
pub struct ServeState {
    loaded: Arc<RwLock<Arc<Loaded>>>,
    options: Arc<ServeOptions>,
    /// The server's counters.
    pub metrics: Arc<Metrics>,
    /// The remote MCP endpoint, when served.
    mcp: Option<Arc<McpHttp>>,
}

impl ServeState {
    /// Load the config and its components.
    pub async fn new(options: ServeOptions) -> Result<Self> {
        let loaded = load(&options).await?;
        Ok(Self {
            loaded: Arc::new(RwLock::new(Arc::new(loaded))),
            options: Arc::new(options),
            metrics: Arc::default(),
            mcp: None,
        })
    }

    /// Also serve the actions over remote MCP at `/mcp`.
    pub fn with_mcp(mut self, mcp: McpHttp) -> Self {
        self.mcp = Some(Arc::new(mcp.with_own_token("the server's token (--auth-token-env)")));
        self
    }

    /// Reload the config and components; on failure the old ones stay.
    pub async fn reload(&self) -> Result<()> {
        let fresh = load(&self.options).await?;
        *self.loaded.write().await = Arc::new(fresh);
        tracing::info!("configuration reloaded from {}", self.options.config.display());
        Ok(())
    }

    async fn current(&self) -> Arc<Loaded> {
        self.loaded.read().await.clone()
    }
}

async fn load(options: &ServeOptions) -> Result<Loaded> {
    let catalog = ActionCatalog::load_pooled(&options.config, Some(options.max_concurrency)).await?;
    // A session start runs all of an integration's session-start actions at
    // once, one slot each; more of them than the bound could never start.
    let mut session_actions: BTreeMap<&str, usize> = BTreeMap::new();
    for a in catalog.actions() {
        if Phase::SessionStart.admits(a.config.execution) {
            *session_actions.entry(a.config.integration.as_str()).or_default() += 1;
        }
    }
    if let Some((integration, n)) = session_actions.iter().find(|(_, n)| **n > options.max_concurrency) {
        anyhow::bail!(
            "integration `{integration}` has {n} session-start actions, and a session start runs them at once, one \
             call slot each: more than --max-concurrency {} allows; raise --max-concurrency or give some of them \
             execution = \"during-interaction\"",
            options.max_concurrency
        );
    }
    let permits = catalog
        .integration_names()
        .into_iter()
        .map(|name| (name, Arc::new(Semaphore::new(options.max_concurrency))))
        .collect();
    Ok(Loaded {
        catalog: Arc::new(catalog),
        permits,
    })
}

/// The public routes (`/healthz`) and the authenticated `/v1` API; `/metrics`
/// is [`metrics_router`], served beside these or on its own listener.
pub fn router(state: ServeState) -> Router {
    let api = Router::new()
        .route("/v1/tools", get(routes::tools))
        .route("/v1/actions/{name}/invoke", post(routes::invoke))
        .route("/v1/sessions/start", post(routes::session_start))
        .route("/v1/integrations/{name}/test", post(routes::test_integration))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    let mut router = Router::new().route("/healthz", get(|| async { "ok\n" })).merge(api);
    if state.mcp.is_some() {
        router = router.route(CONFIG_MCP_PATH, axum::routing::any(mcp)).route(
            &format!("{}{CONFIG_MCP_PATH}", mcp_http::METADATA_PREFIX),
            get(mcp_metadata),
        );
    }
    router
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::telemetry::continue_trace))
        .with_state(state)
}

/// Where `serve --config` answers remote MCP.
const CONFIG_MCP_PATH: &str = "/mcp";

/// Runs an MCP call like an invoke: one slot on its integration, counted.
#[derive(Clone)]
struct ServeRunner(ServeState);

impl ActionRunner for ServeRunner {
    async fn run(&self, name: &str, params: serde_json::Value) -> Result<ToolAnswer, serde_json::Value> {
        match routes::call_action(&self.0, name, &params, "mcp").await {
            Ok(run) => Ok(ToolAnswer::of(&run)),
            Err(refusal) => Err(refusal.error),
        }
    }
}

/// `/mcp`: the server's own bearer token (or, with `--no-auth`, none) or an
/// OAuth access token for this URL.
async fn mcp(State(state): State<ServeState>, request: Request) -> Response {
    let Some(endpoint) = state.mcp.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Err(refused) = endpoint.check_host_and_origin(request.headers()) {
        return refused;
    }
    let access = match (bearer(request.headers()), &state.options.auth_token) {
        (_, None) => McpAccess::ALL,
        (Some(given), Some(expected)) if same_token(given, expected) => McpAccess::ALL,
        (Some(given), Some(_)) if oauth::TokenIssuer::looks_like_jwt(given) => {
            match endpoint.jwt_access(given, CONFIG_MCP_PATH) {
                Ok(access) => access,
                Err(refused) => {
                    state.metrics.unauthorized();
                    return refused;
                }
            }
        }
        (given, Some(_)) => {
            state.metrics.unauthorized();
            let rejected = given.map(|_| "unknown, revoked or malformed token");
            return endpoint.unauthorized(CONFIG_MCP_PATH, rejected);
        }
    };
    let catalog = state.current().await.catalog.clone();
    let watch = Arc::new(ReloadWatch {
        loaded: state.loaded.clone(),
        catalog: catalog.clone(),
    });
    endpoint
        .answer(
            request,
            CONFIG_MCP_PATH,
            access,
            catalog,
            ServeRunner(state.clone()),
            watch,
        )
        .await
}

/// Tells a listen when the configuration was reloaded (SIGHUP).
struct ReloadWatch {
    loaded: Arc<RwLock<Arc<Loaded>>>,
    catalog: Arc<ActionCatalog>,
}

impl crate::mcp::CatalogWatch for ReloadWatch {
    fn replaced(&self) -> bool {
        // Being replaced right now (write-locked): say so on the next look.
        self.loaded
            .try_read()
            .is_ok_and(|loaded| !Arc::ptr_eq(&loaded.catalog, &self.catalog))
    }
}

/// RFC 9728 metadata of `/mcp`.
async fn mcp_metadata(State(state): State<ServeState>) -> Response {
    match &state.mcp {
        Some(endpoint) => endpoint.metadata(CONFIG_MCP_PATH, "actionbox actions"),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /metrics` alone.
pub fn metrics_router(state: ServeState) -> Router {
    Router::new().route("/metrics", get(routes::metrics)).with_state(state)
}

/// Where the server listens.
pub struct Listeners {
    /// The API and `/healthz`, and `/metrics` unless `metrics` is set.
    pub api: TcpListener,
    /// `--metrics-listen`: `/metrics` alone, on an address the operator keeps
    /// internal.
    pub metrics: Option<TcpListener>,
}

/// Serve on `listener` with the default [`ConnectionLimits`] and `/metrics`
/// beside the API, until `shutdown` resolves. See [`serve_with`].
pub async fn serve(
    state: ServeState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listeners = Listeners {
        api: listener,
        metrics: None,
    };
    serve_with(state, listeners, ConnectionLimits::default(), shutdown).await
}

/// Serve until `shutdown` resolves, then stop accepting, close idle and
/// half-sent connections and let calls in flight finish. SIGHUP reloads the
/// configuration.
pub async fn serve_with(
    state: ServeState,
    listeners: Listeners,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    limits.check()?;
    let reloader = reload_on_sighup(state.clone());
    let routers = Routers {
        api: router(state.clone()),
        metrics: metrics_router(state.clone()),
        counters: state.metrics.clone(),
    };
    let served = serve_routers(routers, listeners, limits, shutdown).await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    served
}

/// What a server answers: its API, its `/metrics`, and the counters its
/// listeners update.
pub struct Routers {
    /// `/healthz` and `/v1/*`.
    pub api: Router,
    /// `/metrics`.
    pub metrics: Router,
    /// The counters connections are counted in.
    pub counters: Arc<Metrics>,
}

/// Serve `routers` until `shutdown` resolves, then stop accepting, close idle
/// and half-sent connections and let calls in flight finish.
pub async fn serve_routers(
    routers: Routers,
    listeners: Listeners,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    limits.check()?;
    routers.counters.export_to_otel();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut accepting = Vec::new();
    let api = match listeners.metrics {
        Some(listener) => {
            let metrics_limits = ConnectionLimits {
                max_connections: connections::METRICS_MAX_CONNECTIONS,
                ..limits
            };
            accepting.push(tokio::spawn(connections::accept_loop(
                listener,
                routers.metrics,
                metrics_limits,
                routers.counters.clone(),
                stopped.clone(),
            )));
            routers.api
        }
        None => routers.api.merge(routers.metrics),
    };
    accepting.push(tokio::spawn(connections::accept_loop(
        listeners.api,
        api,
        limits,
        routers.counters.clone(),
        stopped,
    )));
    shutdown.await;
    let _ = stop.send(true);
    let mut drained = Ok(());
    for task in accepting {
        if let Err(e) = task.await {
            drained = Err(e).context("a listener task failed while draining connections");
        }
    }
    drained
}

/// Reload the configuration on every SIGHUP, keeping the old one when the new
/// one fails.
fn reload_on_sighup(state: ServeState) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()?;
        Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if let Err(e) = state.reload().await {
                    tracing::error!("reload failed; still serving the previous configuration: {e:#}");
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = state;
        None
    }
}

/// The bearer token of a request, if it sends one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Whether `given` is the expected token, in time that depends on neither.
///
/// Both sides are hashed first, so the comparison always runs over 32 bytes
/// whatever the lengths (a length check would tell an attacker how long the
/// token is), and the fold has no early exit. Even if the compiler shortened
/// it, all it could reveal is a prefix of a SHA-256 digest, which says nothing
/// usable about the token.
fn same_token(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    let difference = given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| std::hint::black_box(acc | (a ^ b)));
    difference == 0
}

async fn require_token(State(state): State<ServeState>, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.options.auth_token {
        if !bearer(request.headers()).is_some_and(|given| same_token(given, expected)) {
            state.metrics.unauthorized();
            let mut response = routes::error_response(
                StatusCode::UNAUTHORIZED,
                problem("unauthenticated", "missing or wrong bearer token"),
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly_whatever_their_lengths() {
        let token = "test-token-0123456789abcdef";
        assert!(same_token(token, token));
        assert!(!same_token("test-token-0123456789abcdeg", token), "last byte differs");
        assert!(!same_token("uest-token-0123456789abcdef", token), "first byte differs");
        assert!(!same_token("test-token-0123456789abcde", token), "a prefix");
        assert!(!same_token("test-token-0123456789abcdefX", token), "an extension");
        assert!(!same_token("", token));
        assert!(!same_token(token, ""));
        assert!(
            same_token("", ""),
            "equal empty strings are equal (the CLI refuses short tokens)"
        );
        assert!(!same_token(&"x".repeat(10_000), token), "a long guess");
    }
}
