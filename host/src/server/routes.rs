//! What each route of `serve` answers (the table in `server.rs`): the
//! handlers, the bodies they take, and the error answers they share — a body
//! that is not the route's JSON, or arrived too slowly, and 429 when an
//! integration is at its concurrency bound.

use super::{connections, NoSlot, ServeState};
use crate::catalog::ActionCatalog;
use crate::config::{Direction, Phase};
use crate::present::{self, problem, ToolFormat};
use actionbox_runtime::error::InvokeError;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// `Retry-After` seconds sent with a 429 for saturation.
const SATURATED_RETRY_AFTER_SECS: u64 = 1;

/// `{"error": …}` with `status`.
pub(super) fn error_response(status: StatusCode, error: Value) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// A request body that is not the JSON the route takes, or that did not
/// arrive within the header-read timeout (408).
pub(super) fn bad_body(e: &axum::extract::rejection::JsonRejection, shape: &str) -> Response {
    if caused_by::<connections::BodyTimeout>(e) {
        return error_response(StatusCode::REQUEST_TIMEOUT, problem("request-timeout", e.body_text()));
    }
    error_response(
        e.status(),
        problem("invalid-input", format_args!("{}; send {shape}", e.body_text())),
    )
}

/// Whether an error of type `E` is anywhere in `e`'s source chain.
pub(super) fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source()).any(|e| e.is::<E>())
}

/// Why a call did not run: the status and problem its caller is answered
/// with over HTTP (an MCP client gets the problem as an `isError` result).
pub(crate) struct Refusal {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// The problem, `{"kind", "message"}`.
    pub(crate) error: Value,
    /// `Retry-After` seconds, when waiting helps.
    pub(crate) retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal with no `Retry-After`.
    pub(crate) fn new(status: StatusCode, error: Value) -> Self {
        Self {
            status,
            error,
            retry_after: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = error_response(self.status, self.error);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// 429 `saturated`: `integration` has `max_concurrency` calls in flight.
fn saturated(state: &ServeState, route: &'static str, integration: &str) -> Refusal {
    state.metrics.saturated(route, integration);
    Refusal {
        status: StatusCode::TOO_MANY_REQUESTS,
        error: problem(
            "saturated",
            format_args!(
                "integration `{integration}` already has {} calls in flight; retry shortly",
                state.options.max_concurrency
            ),
        ),
        retry_after: Some(SATURATED_RETRY_AFTER_SECS),
    }
}

/// The refusal when call slots could not be taken for `route`.
fn no_slot(state: &ServeState, route: &'static str, why: NoSlot<'_>) -> Refusal {
    match why {
        NoSlot::Saturated(integration) => saturated(state, route, integration),
        NoSlot::Unknown(integration) => Refusal::new(
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

/// `GET /v1/tools`'s query.
#[derive(Deserialize)]
pub(super) struct ToolsQuery {
    pub(super) phase: Option<Phase>,
    pub(super) direction: Option<Direction>,
    pub(super) format: Option<String>,
}

/// `GET /v1/tools`: the tool definitions to offer, in the format asked for.
pub(super) async fn tools(State(state): State<ServeState>, Query(q): Query<ToolsQuery>) -> Response {
    let loaded = state.current().await;
    let tools = loaded.catalog.tools(q.phase, q.direction);
    match q.format.as_deref().unwrap_or("json").parse::<ToolFormat>() {
        Ok(format) => Json(present::tools(&tools, format)).into_response(),
        Err(why) => error_response(StatusCode::BAD_REQUEST, problem("invalid-input", why)),
    }
}

/// `POST /v1/actions/{name}/invoke`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InvokeBody {
    #[serde(default = "empty_object")]
    pub(super) params: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// `POST /v1/actions/{name}/invoke`: one call, holding one slot on its integration.
pub(super) async fn invoke(
    State(state): State<ServeState>,
    UrlPath(name): UrlPath<String>,
    body: Result<Json<InvokeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_body(&e, "{\"params\": {…}}"),
    };
    match call_action(&state, &name, &body.params, "invoke").await {
        Ok(run) => run_response(&run),
        Err(refusal) => refusal.into_response(),
    }
}

/// Run action `name` for `route` (an invoke, an MCP call) holding one slot
/// on its integration, counted in the metrics.
pub(super) async fn call_action(
    state: &ServeState,
    name: &str,
    params: &Value,
    route: &'static str,
) -> Result<crate::catalog::ActionRun, Refusal> {
    let loaded = state.current().await;
    let Some(action) = loaded.catalog.action(name) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            problem("unknown-action", format_args!("no action is named `{name}`")),
        ));
    };
    let calls = BTreeMap::from([(action.config.integration.as_str(), 1)]);
    let _slots = loaded.take_slots(&calls).map_err(|why| no_slot(state, route, why))?;
    let _in_flight = state.metrics.start();
    let started = Instant::now();
    let run = match loaded.catalog.invoke(name, params).await {
        Ok(run) => run,
        Err(e) => {
            state.metrics.finished(name, "host", started.elapsed());
            return Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                problem("host", format_args!("{e:#}")),
            ));
        }
    };
    let outcome = run.report.outcome.as_ref().err().map_or("ok", InvokeError::kind);
    state.metrics.finished(name, outcome, started.elapsed());
    state.metrics.record_outbound(&run.report);
    Ok(run)
}

/// The answer to an invoke: the assistant payload, with the status of its
/// failure kind and `Retry-After` when the upstream sent one.
pub(super) fn run_response(run: &crate::catalog::ActionRun) -> Response {
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

/// `POST /v1/sessions/start`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionBody {
    #[serde(default = "empty_object")]
    pub(super) context: Value,
}

/// `POST /v1/sessions/start`: the session-start actions the context can run,
/// holding a slot for each.
pub(super) async fn session_start(
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
        Err(why) => return no_slot(&state, "session-start", why).into_response(),
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
pub(super) fn session_start_calls<'a>(catalog: &'a ActionCatalog, context: &'a Value) -> BTreeMap<&'a str, u32> {
    let mut calls = BTreeMap::new();
    if let Some(context) = context.as_object() {
        for a in catalog.session_start_runs(context) {
            *calls.entry(a.config.integration.as_str()).or_insert(0) += 1;
        }
    }
    calls
}

/// `POST /v1/integrations/{name}/test`: the Test button, holding one slot.
pub(super) async fn test_integration(State(state): State<ServeState>, UrlPath(name): UrlPath<String>) -> Response {
    let loaded = state.current().await;
    // An unknown name takes no slot: the catalog answers 404 with the names it knows.
    let calls = if loaded.permits.contains_key(&name) {
        BTreeMap::from([(name.as_str(), 1)])
    } else {
        BTreeMap::new()
    };
    let _slots = match loaded.take_slots(&calls) {
        Ok(slots) => slots,
        Err(why) => return no_slot(&state, "test", why).into_response(),
    };
    let _in_flight = state.metrics.start();
    match loaded.catalog.test_integration(&name).await {
        Ok((base_url, report)) => test_response(&base_url, &report),
        Err(e) => error_response(
            StatusCode::NOT_FOUND,
            problem("unknown-integration", format_args!("{e:#}")),
        ),
    }
}

/// The answer of the Test button.
pub(super) fn test_response(base_url: &str, report: &actionbox_runtime::report::InvocationReport) -> Response {
    match &report.outcome {
        Ok(v) => Json(
            json!({ "ok": true, "message": v.get("message"), "base_url": base_url, "elapsed_ms": report.elapsed_ms }),
        )
        .into_response(),
        Err(e) => (
            present::http_status(e),
            Json(json!({ "ok": false, "error": present::error(e), "base_url": base_url })),
        )
            .into_response(),
    }
}

/// `GET /metrics`: the counters in Prometheus text format.
pub(super) async fn metrics(State(state): State<ServeState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}
