//! `actionbox serve`: the assistant platform's HTTP API over the configured
//! actions.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/tools?phase=…&direction=…&format=…` | tool definitions, as `actionbox tools` |
//! | `POST /v1/actions/{name}/invoke` `{"params": {…}}` | `{"result", "response_instructions"}` or `{"error": {…}}` |
//! | `POST /v1/sessions/start` `{"context": {…}}` | the session-start actions' results |
//! | `POST /v1/integrations/{name}/test` | the Test button |
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

pub mod connections;

use crate::catalog::ActionCatalog;
use crate::config::{Direction, Phase};
use crate::metrics::Metrics;
use crate::present::{self, problem, ToolFormat};
use actionbox_runtime::error::InvokeError;
use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
pub use connections::ConnectionLimits;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, RwLock, Semaphore};

/// Largest request body accepted, in bytes: params and contexts are small.
pub const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;
/// Default per-integration concurrency bound.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
/// `Retry-After` seconds sent with a 429 for saturation.
const SATURATED_RETRY_AFTER_SECS: u64 = 1;

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
}

impl ServeState {
    /// Load the config and its components.
    pub async fn new(options: ServeOptions) -> Result<Self> {
        let loaded = load(&options).await?;
        Ok(Self {
            loaded: Arc::new(RwLock::new(Arc::new(loaded))),
            options: Arc::new(options),
            metrics: Arc::default(),
        })
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
        .route("/v1/tools", get(tools))
        .route("/v1/actions/{name}/invoke", post(invoke))
        .route("/v1/sessions/start", post(session_start))
        .route("/v1/integrations/{name}/test", post(test_integration))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(api)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        .with_state(state)
}

/// `GET /metrics` alone.
pub fn metrics_router(state: ServeState) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(state)
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
                metrics_router(state.clone()),
                metrics_limits,
                state.metrics.clone(),
                stopped.clone(),
            )));
            router(state.clone())
        }
        None => router(state.clone()).merge(metrics_router(state.clone())),
    };
    accepting.push(tokio::spawn(connections::accept_loop(
        listeners.api,
        api,
        limits,
        state.metrics.clone(),
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
    if let Some(reloader) = reloader {
        reloader.abort();
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
            let mut response = error_response(
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

fn error_response(status: StatusCode, error: Value) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// A request body that is not the JSON the route takes, or that did not
/// arrive within the header-read timeout (408).
fn bad_body(e: &axum::extract::rejection::JsonRejection, shape: &str) -> Response {
    if caused_by::<connections::BodyTimeout>(e) {
        return error_response(StatusCode::REQUEST_TIMEOUT, problem("request-timeout", e.body_text()));
    }
    error_response(
        e.status(),
        problem("invalid-input", format_args!("{}; send {shape}", e.body_text())),
    )
}

/// Whether an error of type `E` is anywhere in `e`'s source chain.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source()).any(|e| e.is::<E>())
}

/// 429 `saturated`: `integration` has `max_concurrency` calls in flight.
fn saturated(state: &ServeState, route: &'static str, integration: &str) -> Response {
    state.metrics.saturated(route, integration);
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        problem(
            "saturated",
            format_args!(
                "integration `{integration}` already has {} calls in flight; retry shortly",
                state.options.max_concurrency
            ),
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(SATURATED_RETRY_AFTER_SECS));
    response
}

/// The answer when call slots could not be taken for `route`.
fn no_slot(state: &ServeState, route: &'static str, why: NoSlot<'_>) -> Response {
    match why {
        NoSlot::Saturated(integration) => saturated(state, route, integration),
        NoSlot::Unknown(integration) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            problem(
                "host",
                format_args!(
                    "integration `{integration}` has no concurrency permits; reload the configuration (SIGHUP)"
                ),
            ),
        ),
    }
}

#[derive(Deserialize)]
struct ToolsQuery {
    phase: Option<Phase>,
    direction: Option<Direction>,
    format: Option<String>,
}

async fn tools(State(state): State<ServeState>, Query(q): Query<ToolsQuery>) -> Response {
    let loaded = state.current().await;
    let tools = loaded.catalog.tools(q.phase, q.direction);
    match q.format.as_deref().unwrap_or("json").parse::<ToolFormat>() {
        Ok(format) => Json(present::tools(&tools, format)).into_response(),
        Err(why) => error_response(StatusCode::BAD_REQUEST, problem("invalid-input", why)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeBody {
    #[serde(default = "empty_object")]
    params: Value,
}

fn empty_object() -> Value {
    json!({})
}

async fn invoke(
    State(state): State<ServeState>,
    UrlPath(name): UrlPath<String>,
    body: Result<Json<InvokeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_body(&e, "{\"params\": {…}}"),
    };
    let loaded = state.current().await;
    let Some(action) = loaded.catalog.action(&name) else {
        return error_response(
            StatusCode::NOT_FOUND,
            problem("unknown-action", format_args!("no action is named `{name}`")),
        );
    };
    let calls = BTreeMap::from([(action.config.integration.as_str(), 1)]);
    let _slots = match loaded.take_slots(&calls) {
        Ok(slots) => slots,
        Err(why) => return no_slot(&state, "invoke", why),
    };
    let _in_flight = state.metrics.start();
    let started = Instant::now();
    let run = match loaded.catalog.invoke(&name, &body.params).await {
        Ok(run) => run,
        Err(e) => {
            state.metrics.finished(&name, "host", started.elapsed());
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                problem("host", format_args!("{e:#}")),
            );
        }
    };
    let outcome = run.report.outcome.as_ref().err().map_or("ok", InvokeError::kind);
    state.metrics.finished(&name, outcome, started.elapsed());
    state.metrics.record_outbound(&run.report);
    let status = run
        .report
        .outcome
        .as_ref()
        .err()
        .map_or(StatusCode::OK, present::http_status);
    let mut response = (status, Json(run.assistant_payload())).into_response();
    if let Err(InvokeError::RateLimited {
        retry_after_secs: Some(s),
        ..
    }) = &run.report.outcome
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*s));
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionBody {
    #[serde(default = "empty_object")]
    context: Value,
}

async fn session_start(
    State(state): State<ServeState>,
    body: Result<Json<SessionBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_body(&e, "{\"context\": {…}}"),
    };
    let loaded = state.current().await;
    let calls = session_start_calls(&loaded.catalog, &body.context);
    let _slots = match loaded.take_slots(&calls) {
        Ok(slots) => slots,
        Err(why) => return no_slot(&state, "session-start", why),
    };
    let _in_flight = state.metrics.start();
    match loaded.catalog.session_start(&body.context).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => error_response(StatusCode::BAD_REQUEST, problem("invalid-input", format_args!("{e:#}"))),
    }
}

/// How many calls `ActionCatalog::session_start` runs on each integration
/// for `context` (`ActionCatalog::session_start_runs`); a context that is
/// not an object runs nothing (the catalog refuses it).
fn session_start_calls<'a>(catalog: &'a ActionCatalog, context: &'a Value) -> BTreeMap<&'a str, u32> {
    let mut calls = BTreeMap::new();
    if let Some(context) = context.as_object() {
        for a in catalog.session_start_runs(context) {
            *calls.entry(a.config.integration.as_str()).or_insert(0) += 1;
        }
    }
    calls
}

async fn test_integration(State(state): State<ServeState>, UrlPath(name): UrlPath<String>) -> Response {
    let loaded = state.current().await;
    // An unknown name takes no slot: the catalog answers 404 with the names it knows.
    let calls = if loaded.permits.contains_key(&name) {
        BTreeMap::from([(name.as_str(), 1)])
    } else {
        BTreeMap::new()
    };
    let _slots = match loaded.take_slots(&calls) {
        Ok(slots) => slots,
        Err(why) => return no_slot(&state, "test", why),
    };
    let _in_flight = state.metrics.start();
    match loaded.catalog.test_integration(&name).await {
        Ok((base_url, report)) => match &report.outcome {
            Ok(v) => Json(json!({ "ok": true, "message": v.get("message"), "base_url": base_url, "elapsed_ms": report.elapsed_ms }))
                .into_response(),
            Err(e) => (present::http_status(e), Json(json!({ "ok": false, "error": present::error(e), "base_url": base_url }))).into_response(),
        },
        Err(e) => error_response(StatusCode::NOT_FOUND, problem("unknown-integration", format_args!("{e:#}"))),
    }
}

async fn metrics(State(state): State<ServeState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
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
