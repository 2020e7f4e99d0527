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
//! | `GET /metrics` | Prometheus text |
//!
//! `/v1/*` needs `Authorization: Bearer <token>`; a missing or wrong token is
//! a 401 before any work. Each integration runs at most `max_concurrency`
//! calls at once; past that the answer is 429 with `Retry-After` instead of an
//! unbounded queue. SIGHUP reloads the config and components; calls in flight
//! finish on the catalog they started with. Shutdown drains in-flight calls.

use crate::catalog::{error_json, ActionCatalog};
use crate::config::{Direction, Phase};
use crate::error::InvokeError;
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{RwLock, Semaphore};

/// Largest request body accepted, in bytes: params and contexts are small.
pub const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;
/// Default per-integration concurrency bound.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
/// `Retry-After` seconds sent with a 429 for saturation.
const SATURATED_RETRY_AFTER_SECS: u64 = 1;

/// How the server runs.
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

/// The router: public routes plus the authenticated `/v1` API.
pub fn router(state: ServeState) -> Router {
    let api = Router::new()
        .route("/v1/tools", get(tools))
        .route("/v1/actions/{name}/invoke", post(invoke))
        .route("/v1/sessions/start", post(session_start))
        .route("/v1/integrations/{name}/test", post(test_integration))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .merge(api)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        .with_state(state)
}

/// Serve on `listener` until `shutdown` resolves, then drain in-flight calls.
/// SIGHUP reloads the configuration.
pub async fn serve(
    state: ServeState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    #[cfg(unix)]
    {
        let reloader = state.clone();
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    if let Err(e) = reloader.reload().await {
                        tracing::error!("reload failed; still serving the previous configuration: {e:#}");
                    }
                }
            });
        }
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP server failed")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Compare without an early exit on the first differing byte.
fn same_token(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn require_token(State(state): State<ServeState>, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.options.auth_token {
        if !bearer(request.headers()).is_some_and(|given| same_token(given, expected)) {
            state.metrics.unauthorized();
            let mut response = error_response(
                StatusCode::UNAUTHORIZED,
                json!({ "kind": "unauthenticated", "message": "missing or wrong bearer token", "request_id": null }),
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

/// A request body that is not the JSON the route takes.
fn bad_body(e: &axum::extract::rejection::JsonRejection, shape: &str) -> Response {
    error_response(
        e.status(),
        json!({ "kind": "invalid-input", "message": format!("{}; send {shape}", e.body_text()) }),
    )
}

/// The HTTP status for an action's failure.
pub fn status_of(e: &InvokeError) -> StatusCode {
    match e {
        InvokeError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        InvokeError::NotFound { .. } => StatusCode::NOT_FOUND,
        InvokeError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        InvokeError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        InvokeError::Unauthorized { .. } | InvokeError::Upstream { .. } | InvokeError::Denied { .. } => {
            StatusCode::BAD_GATEWAY
        }
        InvokeError::Internal { .. }
        | InvokeError::MemoryLimit { .. }
        | InvokeError::Trap { .. }
        | InvokeError::InvalidOutput { .. }
        | InvokeError::LimitExceeded { .. }
        | InvokeError::Host { .. } => StatusCode::INTERNAL_SERVER_ERROR,
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
    match q.format.as_deref().unwrap_or("json") {
        "json" => Json(json!({ "tools": tools })).into_response(),
        "openai" => Json(json!({ "tools": tools.iter().map(|t| t.openai()).collect::<Vec<_>>() })).into_response(),
        "mcp" => Json(json!({ "tools": tools.iter().map(|t| t.mcp()).collect::<Vec<_>>() })).into_response(),
        other => error_response(
            StatusCode::BAD_REQUEST,
            json!({ "kind": "invalid-input", "message": format!("unknown format `{other}`; use json, openai or mcp") }),
        ),
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
            json!({ "kind": "unknown-action", "message": format!("no action is named `{name}`") }),
        );
    };
    let Some(permits) = loaded.permits.get(&action.config.integration) else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "kind": "host", "message": "no permits" }),
        );
    };
    let Ok(_permit) = permits.clone().try_acquire_owned() else {
        state.metrics.saturated(&name);
        let mut response = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            json!({
                "kind": "saturated",
                "message": format!(
                    "integration `{}` already has {} calls in flight; retry shortly",
                    action.config.integration, state.options.max_concurrency
                ),
            }),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(SATURATED_RETRY_AFTER_SECS));
        return response;
    };
    let _in_flight = state.metrics.start();
    let started = Instant::now();
    let run = match loaded.catalog.invoke(&name, &body.params).await {
        Ok(run) => run,
        Err(e) => {
            state.metrics.finished(&name, "host", started.elapsed());
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "kind": "host", "message": format!("{e:#}"), "request_id": null }),
            );
        }
    };
    let outcome = run.report.outcome.as_ref().err().map_or("ok", InvokeError::kind);
    state.metrics.finished(&name, outcome, started.elapsed());
    state.metrics.record_outbound(&run.report);
    let status = run.report.outcome.as_ref().err().map_or(StatusCode::OK, status_of);
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
    let _in_flight = state.metrics.start();
    match loaded.catalog.session_start(&body.context).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => error_response(
            StatusCode::BAD_REQUEST,
            json!({ "kind": "invalid-input", "message": format!("{e:#}") }),
        ),
    }
}

async fn test_integration(State(state): State<ServeState>, UrlPath(name): UrlPath<String>) -> Response {
    let loaded = state.current().await;
    let _in_flight = state.metrics.start();
    match loaded.catalog.test_integration(&name).await {
        Ok((base_url, report)) => match &report.outcome {
            Ok(v) => Json(json!({ "ok": true, "message": v.get("message"), "base_url": base_url, "elapsed_ms": report.elapsed_ms }))
                .into_response(),
            Err(e) => (status_of(e), Json(json!({ "ok": false, "error": error_json(e), "base_url": base_url }))).into_response(),
        },
        Err(e) => error_response(StatusCode::NOT_FOUND, json!({ "kind": "unknown-integration", "message": format!("{e:#}") })),
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
    fn tokens_compare_exactly() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc"));
        assert!(!same_token("ab", "abc"));
        assert!(!same_token("", "abc"));
    }
}
