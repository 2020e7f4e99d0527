//! `serve --store`: the platform backend — the operator's admin API, each
//! workspace's admin API, and each workspace's assistant routes (the same
//! JSON as the single-config routes, under `/v1/workspaces/{ws}`).
//!
//! | route | who |
//! |---|---|
//! | `/v1/admin/workspaces[/{ws}[/quotas│/tokens[/{id}]]]`, `/v1/admin/components`, `/v1/admin/audit` | operator |
//! | `/v1/workspaces/{ws}/integrations[/{name}[/test]]`, `…/actions[/{name}]`, `…/actions/{name}/debug`, `…/invocations[/{id}]`, `…/audit` | `admin` scope |
//! | `/v1/workspaces/{ws}/tools`, `…/actions/{name}/invoke`, `…/sessions/start` | `assistant` scope |
//! | `/v1/workspaces/{ws}/mcp` (remote MCP, `server/mcp_http.rs`) | `assistant` scope, or an OAuth access token for that URL |
//! | `/.well-known/oauth-protected-resource/v1/workspaces/{ws}/mcp` | anyone (RFC 9728 metadata) |
//!
//! Who is calling is decided once, by [`authenticate`]: the operator's token
//! (`ACTIONBOX_OPERATOR_TOKEN`, compared as digests in constant time) or a
//! workspace token (`abx_…`, looked up by id and compared as digests by the
//! store). A workspace token reaches its own workspace only, with its scopes
//! only; the operator reaches every workspace's admin routes, but calls no
//! actions (it holds no `assistant` scope). Every call is bounded twice: by
//! the replica's `--max-concurrency` (429 `saturated`) and by its workspace's
//! quotas (429 `quota-exceeded`), and each is kept in the workspace's history.

// Checks return the finished answer as their error so a handler can return
// it at once; it is built once per refused request, so boxing it buys nothing.
#![allow(clippy::result_large_err)]

use super::mcp_http::{self, McpAccess, McpHttp};
use super::routes::{self, bad_body, error_response, InvokeBody, Refusal, SessionBody, ToolsQuery};
use super::{bearer, same_token};
use crate::mcp::{ActionRunner, CatalogWatch, ToolAnswer};
use crate::metrics::Metrics;
use crate::present::{self, problem, ToolFormat};
use crate::workspaces::quota::{QuotaExceeded, QuotaPermit};
use crate::workspaces::{WorkspaceError, Workspaces};
use actionbox_store::{AuditFilter, InvocationFilter, Quotas, Scope, TokenInfo};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest component upload, in bytes (`workspaces/registry.rs`).
const MAX_COMPONENT_UPLOAD: usize = crate::workspaces::registry::MAX_COMPONENT_BYTES;

/// The state of a `serve --store` replica.
#[derive(Clone)]
pub struct WorkspaceServeState {
    workspaces: Arc<Workspaces>,
    operator_token: Arc<String>,
    /// The replica's counters.
    pub metrics: Arc<Metrics>,
    calls: Arc<Semaphore>,
    max_concurrency: usize,
    /// The remote MCP endpoints, when served.
    mcp: Option<Arc<McpHttp>>,
    /// The console's sessions, when the console is served.
    console: Option<Arc<super::console::session::Sessions>>,
}

impl WorkspaceServeState {
    /// Serve `workspaces`; the operator authenticates with `operator_token`;
    /// at most `max_concurrency` calls run at once on this replica.
    pub fn new(workspaces: Arc<Workspaces>, operator_token: String, max_concurrency: usize) -> Self {
        Self {
            workspaces,
            operator_token: Arc::new(operator_token),
            metrics: Arc::default(),
            calls: Arc::new(Semaphore::new(max_concurrency)),
            max_concurrency,
            mcp: None,
            console: None,
        }
    }

    /// Also serve the console at `/console`; `secure` marks its cookies
    /// `Secure` (the public URL is https). Its sessions are sealed under a
    /// key derived from the master key, so every replica opens them; without
    /// a master key, under a key of this process only.
    pub fn with_console(mut self, secure: bool) -> Self {
        let sealer = self
            .workspaces
            .store()
            .value_sealer("console-session")
            .unwrap_or_else(|_| {
                actionbox_store::ValueSealer::new(&actionbox_store::MasterKey::generate(), "console-session")
            });
        self.console = Some(Arc::new(super::console::session::Sessions::new(sealer, secure)));
        self
    }

    /// The console's sessions, when the console is served.
    pub(super) fn console_sessions(&self) -> Option<&super::console::session::Sessions> {
        self.console.as_deref()
    }

    /// Whether `token` is the operator's (compared as digests in constant time).
    pub(super) fn is_operator_token(&self, token: &str) -> bool {
        same_token(token, &self.operator_token)
    }

    /// The workspaces served.
    pub(super) fn workspaces_handle(&self) -> &Arc<Workspaces> {
        &self.workspaces
    }

    /// Also serve each workspace's actions over remote MCP.
    pub fn with_mcp(mut self, mcp: McpHttp) -> Self {
        self.mcp = Some(Arc::new(
            mcp.with_own_token("a workspace token with the assistant scope"),
        ));
        self
    }
}

/// Who is calling.
#[derive(Clone, Debug)]
enum Caller {
    /// The platform's operator.
    Operator,
    /// A workspace token.
    Token(TokenInfo),
}

impl Caller {
    /// The audit log's actor: `operator` or `token:<id>`.
    fn actor(&self) -> String {
        match self {
            Caller::Operator => OPERATOR_ACTOR.into(),
            Caller::Token(t) => format!("token:{}", t.id),
        }
    }

    /// Whether this caller may act on workspace `ws` with `scope`.
    fn may(&self, ws: &str, scope: Scope) -> Result<(), Response> {
        let allowed = match self {
            Caller::Operator => scope == Scope::Admin,
            Caller::Token(t) => t.workspace == ws && t.scopes.contains(&scope),
        };
        if allowed {
            Ok(())
        } else {
            Err(error_response(
                StatusCode::FORBIDDEN,
                problem(
                    "forbidden",
                    format_args!(
                        "this token has no `{}` scope on workspace `{}`; mint one that does (POST /v1/admin/workspaces/{{ws}}/tokens)",
                        scope.as_str(),
                        actionbox_runtime::error::guest_text(ws, 64)
                    ),
                ),
            ))
        }
    }

    fn operator(&self) -> Result<(), Response> {
        match self {
            Caller::Operator => Ok(()),
            Caller::Token(_) => Err(error_response(
                StatusCode::FORBIDDEN,
                problem("forbidden", "this route is the operator's (ACTIONBOX_OPERATOR_TOKEN)"),
            )),
        }
    }
}

/// The audit log's actor for the operator.
pub(super) const OPERATOR_ACTOR: &str = "operator";

/// The caller [`authenticate`] put on the request.
fn caller_of(parts: &axum::http::request::Parts) -> Result<Caller, Response> {
    parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
        error_response(
            StatusCode::UNAUTHORIZED,
            problem("unauthenticated", "send Authorization: Bearer <token>"),
        )
    })
}

/// The `{ws}` of the request's path, percent-decoded as `Path` decodes it
/// for the handler, so the scope check and the handler see the same id.
pub(super) async fn path_workspace(
    parts: &mut axum::http::request::Parts,
    state: &WorkspaceServeState,
) -> Result<String, Response> {
    use axum::extract::FromRequestParts;
    let UrlPath(mut params) = UrlPath::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    params.remove("ws").ok_or_else(|| {
        error_response(
            StatusCode::NOT_FOUND,
            problem("not-found", "this route names no workspace"),
        )
    })
}

/// Proof that the operator is calling: a handler that takes it cannot run
/// for anyone else (403).
struct Operator;

impl axum::extract::FromRequestParts<WorkspaceServeState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &WorkspaceServeState,
    ) -> Result<Self, Response> {
        caller_of(parts)?.operator().map(|()| Operator)
    }
}

/// A caller with the `admin` scope on the path's workspace (a workspace
/// token with that scope, or the operator): the workspace, and who to write
/// in the audit log.
struct WorkspaceAdmin {
    ws: String,
    actor: String,
}

impl axum::extract::FromRequestParts<WorkspaceServeState> for WorkspaceAdmin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &WorkspaceServeState,
    ) -> Result<Self, Response> {
        let caller = caller_of(parts)?;
        let ws = path_workspace(parts, state).await?;
        caller.may(&ws, Scope::Admin)?;
        Ok(Self {
            ws,
            actor: caller.actor(),
        })
    }
}

/// A caller with the `assistant` scope on the path's workspace.
struct Assistant {
    ws: String,
}

impl axum::extract::FromRequestParts<WorkspaceServeState> for Assistant {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &WorkspaceServeState,
    ) -> Result<Self, Response> {
        let caller = caller_of(parts)?;
        let ws = path_workspace(parts, state).await?;
        caller.may(&ws, Scope::Assistant)?;
        Ok(Self { ws })
    }
}

/// The router of a `serve --store` replica: `/healthz` and the `/v1` API.
pub fn router(state: WorkspaceServeState) -> Router {
    let admin = Router::new()
        .route("/v1/admin/workspaces", post(create_workspace).get(list_workspaces))
        .route("/v1/admin/workspaces/{ws}", get(get_workspace).delete(delete_workspace))
        .route("/v1/admin/workspaces/{ws}/quotas", put(set_quotas))
        .route("/v1/admin/workspaces/{ws}/tokens", post(mint_token).get(list_tokens))
        .route(
            "/v1/admin/workspaces/{ws}/tokens/{id}",
            axum::routing::delete(revoke_token),
        )
        .route("/v1/admin/audit", get(operator_audit))
        .route(
            "/v1/admin/components",
            post(register_component)
                .get(list_components)
                .layer(DefaultBodyLimit::max(MAX_COMPONENT_UPLOAD)),
        );
    let workspace = Router::new()
        .route("/v1/workspaces/{ws}/integrations", get(list_integrations))
        .route(
            "/v1/workspaces/{ws}/integrations/{name}",
            put(put_integration).get(get_integration).delete(delete_integration),
        )
        .route("/v1/workspaces/{ws}/integrations/{name}/test", post(test_integration))
        .route("/v1/workspaces/{ws}/actions", get(list_actions))
        .route(
            "/v1/workspaces/{ws}/actions/{name}",
            put(put_action).get(get_action).delete(delete_action),
        )
        .route("/v1/workspaces/{ws}/actions/{name}/debug", post(debug_action))
        .route("/v1/workspaces/{ws}/actions/{name}/invoke", post(invoke))
        .route("/v1/workspaces/{ws}/sessions/start", post(session_start))
        .route("/v1/workspaces/{ws}/tools", get(tools))
        .route("/v1/workspaces/{ws}/invocations", get(list_invocations))
        .route("/v1/workspaces/{ws}/invocations/{id}", get(get_invocation))
        .route("/v1/workspaces/{ws}/audit", get(workspace_audit));
    let api = admin
        .merge(workspace)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), authenticate));
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .merge(api);
    if state.console.is_some() {
        router = router.merge(super::console::router());
    }
    if state.mcp.is_some() {
        // Not behind `authenticate`: MCP answers its own 401s, with the
        // challenge an OAuth client follows.
        router = router.route("/v1/workspaces/{ws}/mcp", axum::routing::any(mcp)).route(
            &format!("{}/v1/workspaces/{{ws}}/mcp", mcp_http::METADATA_PREFIX),
            get(mcp_metadata),
        );
    }
    router
        .layer(DefaultBodyLimit::max(super::MAX_REQUEST_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::telemetry::continue_trace))
        .with_state(state)
}

/// The MCP URL path of workspace `ws`.
fn mcp_path(ws: &str) -> String {
    format!("/v1/workspaces/{ws}/mcp")
}

/// Runs an MCP call like an invoke: the replica's and the workspace's
/// bounds, the workspace's history.
#[derive(Clone)]
struct WorkspaceRunner {
    state: WorkspaceServeState,
    ws: String,
}

impl ActionRunner for WorkspaceRunner {
    async fn run(&self, name: &str, params: Value) -> Result<ToolAnswer, Value> {
        call_action(&self.state, &self.ws, name, &params, "mcp", ToolAnswer::of)
            .await
            .map_err(|refusal| refusal.error)
    }
}

/// Tells a listen when workspace `ws` changed: its live catalog was dropped.
struct WorkspaceWatch {
    workspaces: Arc<Workspaces>,
    ws: String,
    live: Arc<crate::workspaces::LiveWorkspace>,
}

impl CatalogWatch for WorkspaceWatch {
    fn replaced(&self) -> bool {
        !self.workspaces.still_serves(&self.ws, &self.live)
    }
}

/// `/v1/workspaces/{ws}/mcp`: a workspace token with the `assistant` scope
/// on `ws`, or an OAuth access token whose audience is this URL.
async fn mcp(State(state): State<WorkspaceServeState>, UrlPath(ws): UrlPath<String>, request: Request) -> Response {
    let Some(endpoint) = state.mcp.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Err(refused) = endpoint.check_host_and_origin(request.headers()) {
        return refused;
    }
    // The id goes into URLs and challenge headers: only a well-formed one
    // gets that far (an unknown one is refused by the token check).
    if !actionbox_store::is_workspace_id(&ws) {
        return ws_error(WorkspaceError::NotFound("no workspace has this id".into()));
    }
    let path = mcp_path(&ws);
    let access = match bearer(request.headers()) {
        None => {
            state.metrics.unauthorized();
            return endpoint.unauthorized(&path, None);
        }
        Some(given) if given.starts_with(actionbox_store::TOKEN_PREFIX) => {
            match state.workspaces.authenticate(given).await {
                Ok(Some(token)) if token.workspace == ws && token.scopes.contains(&Scope::Assistant) => McpAccess::ALL,
                Ok(Some(token)) if token.workspace == ws => {
                    return endpoint.insufficient_scope(&path, Scope::Assistant.as_str())
                }
                Ok(Some(_)) => {
                    return error_response(
                        StatusCode::FORBIDDEN,
                        problem(
                            "forbidden",
                            "this token is another workspace's; use one minted for this workspace",
                        ),
                    )
                }
                Ok(None) => {
                    state.metrics.unauthorized();
                    return endpoint.unauthorized(&path, Some("unknown, revoked or malformed token"));
                }
                Err(e) => return ws_error(e),
            }
        }
        Some(given) => match endpoint.jwt_access(given, &path) {
            Ok(access) => access,
            Err(refused) => {
                state.metrics.unauthorized();
                return refused;
            }
        },
    };
    let live = match state.workspaces.live(&ws).await {
        Ok(l) => l,
        Err(e) => return ws_error(e),
    };
    let runner = WorkspaceRunner {
        state: state.clone(),
        ws: ws.clone(),
    };
    let watch = Arc::new(WorkspaceWatch {
        workspaces: state.workspaces.clone(),
        ws: ws.clone(),
        live: live.clone(),
    });
    endpoint
        .answer(request, &path, access, live.catalog.clone(), runner, watch)
        .await
}

/// RFC 9728 metadata of a workspace's MCP URL. It is the same for every
/// well-formed id, existing or not, so it tells nobody which workspaces exist.
async fn mcp_metadata(State(state): State<WorkspaceServeState>, UrlPath(ws): UrlPath<String>) -> Response {
    match &state.mcp {
        Some(endpoint) if actionbox_store::is_workspace_id(&ws) => {
            endpoint.metadata(&mcp_path(&ws), &format!("actionbox workspace {ws}"))
        }
        _ => ws_error(WorkspaceError::NotFound("no workspace has this id".into())),
    }
}

/// `GET /readyz`: 200 while the store answers, 503 when it does not — so a
/// replica that lost its database is taken out of rotation (`/healthz` only
/// says the process lives).
async fn ready(State(state): State<WorkspaceServeState>) -> Response {
    match state.workspaces.store().ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => store_unavailable(&e.to_string()),
    }
}

/// `GET /metrics` of a store replica.
pub fn metrics_router(state: WorkspaceServeState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<WorkspaceServeState>| async move {
                let mut text = s.metrics.render();
                text.push_str(&format!(
                    "# HELP actionbox_history_dropped_total Invocation records not kept (history queue full or store error).\n\
                     # TYPE actionbox_history_dropped_total counter\nactionbox_history_dropped_total {}\n\
                     # HELP actionbox_workspaces_loaded Workspaces with a catalog loaded on this replica.\n\
                     # TYPE actionbox_workspaces_loaded gauge\nactionbox_workspaces_loaded {}\n",
                    s.workspaces.history.dropped(),
                    s.workspaces.loaded()
                ));
                (
                    [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))],
                    text,
                )
            }),
        )
        .with_state(state)
}

fn unauthenticated(state: &WorkspaceServeState, why: &str) -> Response {
    state.metrics.unauthorized();
    let mut response = error_response(StatusCode::UNAUTHORIZED, problem("unauthenticated", why));
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Decide who is calling, before any work: the operator, a workspace token,
/// or nobody (401).
async fn authenticate(State(state): State<WorkspaceServeState>, mut request: Request, next: Next) -> Response {
    let Some(given) = bearer(request.headers()) else {
        return unauthenticated(
            &state,
            "send Authorization: Bearer <token> (the operator's or a workspace token)",
        );
    };
    let caller = if same_token(given, &state.operator_token) {
        Caller::Operator
    } else {
        match state.workspaces.authenticate(given).await {
            Ok(Some(token)) => Caller::Token(token),
            Ok(None) => return unauthenticated(&state, "unknown, revoked or malformed token"),
            Err(e) => return ws_error(e),
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn store_unavailable(message: &str) -> Response {
    Refusal::new(StatusCode::SERVICE_UNAVAILABLE, problem("store-unavailable", message)).into_response()
}

/// The refusal for a failed workspace operation.
pub(super) fn refusal(e: WorkspaceError) -> Refusal {
    let (status, kind, m) = match e {
        WorkspaceError::Invalid(m) => (StatusCode::BAD_REQUEST, "invalid-input", m),
        WorkspaceError::NotFound(m) => (StatusCode::NOT_FOUND, "not-found", m),
        WorkspaceError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
        WorkspaceError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", m),
    };
    Refusal::new(status, problem(kind, m))
}

/// The answer for a failed workspace operation.
fn ws_error(e: WorkspaceError) -> Response {
    refusal(e).into_response()
}

fn store_error(e: actionbox_store::StoreError) -> Response {
    ws_error(e.into())
}

/// `{key: list}`, or the error's answer.
fn listed<T: serde::Serialize, E: Into<WorkspaceError>>(r: Result<Vec<T>, E>, key: &str) -> Response {
    match r {
        Ok(list) => Json(json!({ key: list })).into_response(),
        Err(e) => ws_error(e.into()),
    }
}

/// The entry of `list` called `name`, 404 naming `what` when there is none.
fn named(r: Result<Vec<Value>, WorkspaceError>, name: &str, what: &str) -> Response {
    match r {
        Ok(list) => match list.into_iter().find(|v| v["name"] == name) {
            Some(v) => Json(v).into_response(),
            None => ws_error(WorkspaceError::NotFound(format!("no {what} is named `{name}`"))),
        },
        Err(e) => ws_error(e),
    }
}

/// 201 with the view of what was created, 200 with what was replaced, or
/// the error's answer.
fn saved(r: Result<(Value, bool), WorkspaceError>) -> Response {
    match r {
        Ok((view, is_new)) => created(is_new, view),
        Err(e) => ws_error(e),
    }
}

/// 204, or the error's answer.
fn done<E: Into<WorkspaceError>>(r: Result<(), E>) -> Response {
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ws_error(e.into()),
    }
}

/// 200 with `value`, or the error's answer.
fn answered<T: serde::Serialize, E: Into<WorkspaceError>>(r: Result<T, E>) -> Response {
    match r {
        Ok(v) => Json(json!(v)).into_response(),
        Err(e) => ws_error(e.into()),
    }
}

type Body = Result<Json<Value>, axum::extract::rejection::JsonRejection>;

fn body(body: Body, shape: &str) -> Result<Value, Response> {
    body.map(|Json(v)| v).map_err(|e| bad_body(&e, shape))
}

fn created(created: bool, value: Value) -> Response {
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    (status, Json(value)).into_response()
}

// ---- operator routes

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWorkspace {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
}

async fn create_workspace(
    State(state): State<WorkspaceServeState>,
    _: Operator,
    b: Result<Json<NewWorkspace>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match b {
        Ok(b) => b,
        Err(e) => return bad_body(&e, "{\"id\": \"acme\", \"display_name\": \"Acme\"}"),
    };
    let name = b.display_name.unwrap_or_else(|| b.id.clone());
    match state
        .workspaces
        .store()
        .create_workspace(&b.id, &name, OPERATOR_ACTOR)
        .await
    {
        Ok(w) => created(true, json!(w)),
        Err(e) => store_error(e),
    }
}

async fn list_workspaces(State(state): State<WorkspaceServeState>, _: Operator) -> Response {
    listed(state.workspaces.store().workspaces().await, "workspaces")
}

async fn get_workspace(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, .. }: WorkspaceAdmin,
) -> Response {
    match state.workspaces.store().workspace(&ws).await {
        Ok(Some(w)) => Json(json!(w)).into_response(),
        Ok(None) => ws_error(WorkspaceError::NotFound(format!("no workspace is named `{ws}`"))),
        Err(e) => store_error(e),
    }
}

async fn delete_workspace(
    State(state): State<WorkspaceServeState>,
    _: Operator,
    UrlPath(ws): UrlPath<String>,
) -> Response {
    done(state.workspaces.delete_workspace(&ws, OPERATOR_ACTOR).await)
}

async fn set_quotas(
    State(state): State<WorkspaceServeState>,
    _: Operator,
    UrlPath(ws): UrlPath<String>,
    b: Result<Json<Quotas>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(quotas) = match b {
        Ok(b) => b,
        Err(e) => return bad_body(&e, "{\"max_concurrent_calls\": 16, \"calls_per_minute\": 600}"),
    };
    answered(state.workspaces.set_quotas(&ws, quotas, OPERATOR_ACTOR).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    scopes: Vec<Scope>,
    #[serde(default)]
    label: String,
}

async fn mint_token(
    State(state): State<WorkspaceServeState>,
    _: Operator,
    UrlPath(ws): UrlPath<String>,
    b: Result<Json<NewToken>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match b {
        Ok(b) => b,
        Err(e) => return bad_body(&e, "{\"scopes\": [\"admin\", \"assistant\"], \"label\": \"console\"}"),
    };
    match state
        .workspaces
        .store()
        .mint_token(&ws, &b.scopes, &b.label, OPERATOR_ACTOR)
        .await
    {
        Ok((info, secret)) => {
            let mut v = json!(info);
            v["token"] = json!(secret.expose());
            v["note"] = json!("the token is shown only now; store it safely");
            created(true, v)
        }
        Err(e) => store_error(e),
    }
}

async fn list_tokens(State(state): State<WorkspaceServeState>, _: Operator, UrlPath(ws): UrlPath<String>) -> Response {
    listed(state.workspaces.store().tokens(&ws).await, "tokens")
}

async fn revoke_token(
    State(state): State<WorkspaceServeState>,
    _: Operator,
    UrlPath((ws, id)): UrlPath<(String, String)>,
) -> Response {
    done(state.workspaces.revoke_token(&ws, &id, OPERATOR_ACTOR).await)
}

async fn register_component(
    State(state): State<WorkspaceServeState>,
    _: Operator,
    bytes: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            return error_response(
                e.status(),
                problem(
                    "invalid-input",
                    format_args!(
                        "{}; send the component's bytes (at most {MAX_COMPONENT_UPLOAD} bytes)",
                        e.body_text()
                    ),
                ),
            )
        }
    };
    match state.workspaces.registry().register(&bytes, OPERATOR_ACTOR).await {
        Ok((info, is_new)) => {
            let mut v = json!(info);
            v["reference"] = json!(format!("sha256:{}", info.sha256));
            created(is_new, v)
        }
        Err(e) => match e.downcast_ref::<crate::workspaces::registry::ComponentRefused>() {
            // The check refused it: 422 with every finding.
            Some(refused) => error_response(StatusCode::UNPROCESSABLE_ENTITY, refused.problem()),
            None => error_response(
                StatusCode::BAD_REQUEST,
                problem("invalid-component", format_args!("{e:#}")),
            ),
        },
    }
}

async fn list_components(State(state): State<WorkspaceServeState>, _: Operator) -> Response {
    listed(state.workspaces.store().components().await, "components")
}

#[derive(Deserialize)]
struct AuditQuery {
    workspace: Option<String>,
    since: Option<i64>,
    limit: Option<u32>,
}

async fn operator_audit(
    State(state): State<WorkspaceServeState>,
    _: Operator,
    Query(q): Query<AuditQuery>,
) -> Response {
    audit(&state, q.workspace, q.since, q.limit).await
}

async fn workspace_audit(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, .. }: WorkspaceAdmin,
    Query(q): Query<AuditQuery>,
) -> Response {
    audit(&state, Some(ws), q.since, q.limit).await
}

async fn audit(
    state: &WorkspaceServeState,
    workspace: Option<String>,
    since: Option<i64>,
    limit: Option<u32>,
) -> Response {
    let filter = AuditFilter {
        workspace,
        since_ms: since,
        limit: limit.unwrap_or(100),
    };
    match state.workspaces.store().audit(&filter).await {
        Ok(entries) => Json(json!({ "entries": entries })).into_response(),
        Err(e) => store_error(e),
    }
}

// ---- workspace admin routes

async fn list_integrations(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, .. }: WorkspaceAdmin,
) -> Response {
    listed(state.workspaces.integrations(&ws).await, "integrations")
}

async fn get_integration(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, .. }: WorkspaceAdmin,
    UrlPath((_, name)): UrlPath<(String, String)>,
) -> Response {
    named(state.workspaces.integrations(&ws).await, &name, "integration")
}

async fn put_integration(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, actor }: WorkspaceAdmin,
    UrlPath((_, name)): UrlPath<(String, String)>,
    b: Body,
) -> Response {
    let b = match body(
        b,
        "{\"kind\": \"shipstation\", \"component\": \"sha256:…\", \"api_key\": \"…\", \"timeout\": 10}",
    ) {
        Ok(b) => b,
        Err(r) => return r,
    };
    saved(state.workspaces.put_integration(&ws, &name, b, &actor).await)
}

async fn delete_integration(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, actor }: WorkspaceAdmin,
    UrlPath((_, name)): UrlPath<(String, String)>,
) -> Response {
    done(state.workspaces.delete_integration(&ws, &name, &actor).await)
}

async fn list_actions(State(state): State<WorkspaceServeState>, WorkspaceAdmin { ws, .. }: WorkspaceAdmin) -> Response {
    listed(state.workspaces.actions(&ws).await, "actions")
}

async fn get_action(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, .. }: WorkspaceAdmin,
    UrlPath((_, name)): UrlPath<(String, String)>,
) -> Response {
    named(state.workspaces.actions(&ws).await, &name, "action")
}

async fn put_action(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, actor }: WorkspaceAdmin,
    UrlPath((_, name)): UrlPath<(String, String)>,
    b: Body,
) -> Response {
    let b = match body(b, "{\"integration\": \"main\", \"method\": \"trackOrder\", …}") {
        Ok(b) => b,
        Err(r) => return r,
    };
    saved(state.workspaces.put_action(&ws, &name, b, &actor).await)
}

async fn delete_action(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, actor }: WorkspaceAdmin,
    UrlPath((_, name)): UrlPath<(String, String)>,
) -> Response {
    done(state.workspaces.delete_action(&ws, &name, &actor).await)
}

#[derive(Deserialize)]
struct InvocationQuery {
    action: Option<String>,
    outcome: Option<String>,
    since: Option<i64>,
    limit: Option<u32>,
}

async fn list_invocations(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, .. }: WorkspaceAdmin,
    Query(q): Query<InvocationQuery>,
) -> Response {
    let filter = InvocationFilter {
        action: q.action,
        outcome: q.outcome,
        since_ms: q.since,
        limit: q.limit.unwrap_or(50),
    };
    listed(state.workspaces.store().invocations(&ws, &filter).await, "invocations")
}

async fn get_invocation(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, .. }: WorkspaceAdmin,
    UrlPath((_, id)): UrlPath<(String, i64)>,
) -> Response {
    match state.workspaces.store().invocation(&ws, id).await {
        Ok(Some(inv)) => Json(json!(inv)).into_response(),
        Ok(None) => ws_error(WorkspaceError::NotFound(format!(
            "workspace `{ws}` has no invocation {id}"
        ))),
        Err(e) => store_error(e),
    }
}

// ---- calls: assistant routes, the debugger and the Test button

/// The two holds every call takes: a replica slot and its workspace's quota.
struct CallSlots {
    _replica: OwnedSemaphorePermit,
    _quota: QuotaPermit,
}

/// Take `calls` slots for workspace `ws` now, or refuse with 429.
async fn take_slots(
    state: &WorkspaceServeState,
    ws: &str,
    route: &'static str,
    calls: u32,
) -> Result<CallSlots, Refusal> {
    let gate = state.workspaces.quota_gate(ws).await.map_err(refusal)?;
    let quota = gate.try_enter(calls).map_err(|e| quota_exceeded(state, route, ws, e))?;
    let replica = state.calls.clone().try_acquire_many_owned(calls.max(1)).map_err(|_| {
        state.metrics.saturated(route, ws);
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: problem(
                "saturated",
                format_args!(
                    "this server already has {} calls in flight; retry shortly",
                    state.max_concurrency
                ),
            ),
            retry_after: Some(1),
        }
    })?;
    Ok(CallSlots {
        _replica: replica,
        _quota: quota,
    })
}

fn quota_exceeded(state: &WorkspaceServeState, route: &'static str, ws: &str, e: QuotaExceeded) -> Refusal {
    state.metrics.saturated(route, ws);
    Refusal {
        status: StatusCode::TOO_MANY_REQUESTS,
        error: problem("quota-exceeded", e),
        retry_after: Some(e.retry_after_secs()),
    }
}

async fn tools(
    State(state): State<WorkspaceServeState>,
    Assistant { ws }: Assistant,
    Query(q): Query<ToolsQuery>,
) -> Response {
    let live = match state.workspaces.live(&ws).await {
        Ok(l) => l,
        Err(e) => return ws_error(e),
    };
    let tools = live.catalog.tools(q.phase, q.direction);
    match q.format.as_deref().unwrap_or("json").parse::<ToolFormat>() {
        Ok(format) => Json(present::tools(&tools, format)).into_response(),
        Err(why) => error_response(StatusCode::BAD_REQUEST, problem("invalid-input", why)),
    }
}

/// Run action `name` of `ws` for `route`, record it, and answer with `answer`.
async fn run_action(
    state: &WorkspaceServeState,
    ws: &str,
    name: &str,
    params: &Value,
    route: &'static str,
    answer: fn(&crate::catalog::ActionRun) -> Response,
) -> Response {
    match call_action(state, ws, name, params, route, answer).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

/// Run action `name` of `ws` for `route` (an invoke, a debugger run, an MCP
/// call) within the replica's and the workspace's bounds; make `answer` of
/// the run, then keep the run in the workspace's history.
pub(super) async fn call_action<T>(
    state: &WorkspaceServeState,
    ws: &str,
    name: &str,
    params: &Value,
    route: &'static str,
    answer: impl FnOnce(&crate::catalog::ActionRun) -> T,
) -> Result<T, Refusal> {
    let live = state.workspaces.live(ws).await.map_err(refusal)?;
    if live.catalog.action(name).is_none() {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            problem(
                "unknown-action",
                format_args!("workspace `{ws}` has no action named `{name}`"),
            ),
        ));
    }
    let _slots = take_slots(state, ws, route, 1).await?;
    let _in_flight = state.metrics.start();
    let started = std::time::Instant::now();
    match live.catalog.invoke(name, params).await {
        Ok(run) => {
            let outcome = run
                .report
                .outcome
                .as_ref()
                .err()
                .map_or("ok", actionbox_runtime::error::InvokeError::kind);
            state.metrics.finished(name, outcome, started.elapsed());
            state.metrics.record_outbound(&run.report);
            let answered = answer(&run);
            state.workspaces.history.record(ws, run);
            Ok(answered)
        }
        Err(e) => {
            state.metrics.finished(name, "host", started.elapsed());
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                problem("host", format_args!("{e:#}")),
            ))
        }
    }
}

async fn invoke(
    State(state): State<WorkspaceServeState>,
    Assistant { ws }: Assistant,
    UrlPath((_, name)): UrlPath<(String, String)>,
    b: Result<Json<InvokeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match b {
        Ok(b) => b,
        Err(e) => return bad_body(&e, "{\"params\": {…}}"),
    };
    run_action(&state, &ws, &name, &b.params, "invoke", routes::run_response).await
}

async fn debug_action(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, .. }: WorkspaceAdmin,
    UrlPath((_, name)): UrlPath<(String, String)>,
    b: Result<Json<InvokeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match b {
        Ok(b) => b,
        Err(e) => return bad_body(&e, "{\"params\": {…}}"),
    };
    run_action(&state, &ws, &name, &b.params, "debug", |run| {
        Json(crate::debugger::trace_json(run)).into_response()
    })
    .await
}

async fn session_start(
    State(state): State<WorkspaceServeState>,
    Assistant { ws }: Assistant,
    b: Result<Json<SessionBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match b {
        Ok(b) => b,
        Err(e) => return bad_body(&e, "{\"context\": {…}}"),
    };
    let live = match state.workspaces.live(&ws).await {
        Ok(l) => l,
        Err(e) => return ws_error(e),
    };
    let calls: u32 = routes::session_start_calls(&live.catalog, &b.context).values().sum();
    let _slots = match take_slots(&state, &ws, "session-start", calls).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let _in_flight = state.metrics.start();
    match live.catalog.session_start(&b.context).await {
        Ok(mut report) => {
            for run in std::mem::take(&mut report.runs) {
                state.workspaces.history.record(&ws, run);
            }
            Json(report).into_response()
        }
        Err(e) => error_response(StatusCode::BAD_REQUEST, problem("invalid-input", format_args!("{e:#}"))),
    }
}

async fn test_integration(
    State(state): State<WorkspaceServeState>,
    WorkspaceAdmin { ws, .. }: WorkspaceAdmin,
    UrlPath((_, name)): UrlPath<(String, String)>,
) -> Response {
    match test_call(&state, &ws, &name, routes::test_response).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

/// Press integration `name`'s Test button within the replica's and the
/// workspace's bounds; make `answer` of (base URL, report), then keep the
/// run in the workspace's history.
pub(super) async fn test_call<T>(
    state: &WorkspaceServeState,
    ws: &str,
    name: &str,
    answer: impl FnOnce(&str, &actionbox_runtime::report::InvocationReport) -> T,
) -> Result<T, Refusal> {
    let live = state.workspaces.live(ws).await.map_err(refusal)?;
    if !live.catalog.integration_names().iter().any(|n| n == name) {
        return Err(refusal(WorkspaceError::NotFound(format!(
            "workspace `{ws}` has no integration named `{name}`"
        ))));
    }
    let _slots = take_slots(state, ws, "test", 1).await?;
    let _in_flight = state.metrics.start();
    match live.catalog.test_integration(name).await {
        Ok((base_url, report)) => {
            let answered = answer(&base_url, &report);
            let run = crate::catalog::ActionRun {
                action: TEST_BUTTON_ACTION.to_string(),
                integration: name.to_string(),
                method: TEST_BUTTON_ACTION.to_string(),
                base_url,
                report,
                response_instructions: None,
            };
            state.workspaces.history.record(ws, run);
            Ok(answered)
        }
        Err(e) => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            problem("host", format_args!("{e:#}")),
        )),
    }
}

/// The action name the Test button's runs are kept under in history.
pub const TEST_BUTTON_ACTION: &str = "test-connection";
