//! The configured interaction actions as MCP tools (rmcp): over stdio for
//! `actionbox mcp`, and over Streamable HTTP for `serve` (`server/mcp_http.rs`).
//!
//! Each action is a tool whose input schema carries the customised parameter
//! descriptions and whose description carries the response instructions. A
//! failed action — and a call refused before it ran, such as a workspace over
//! its quota — is a tool result with `isError: true` (the model can read it);
//! protocol problems (an unknown tool) are JSON-RPC errors. Logs go to stderr,
//! never into the protocol stream.
//!
//! Listing tools is the same everywhere; how a call runs is not (stdio runs it
//! directly, `serve` takes its call slots and keeps its history), so the
//! handler takes an [`ActionRunner`].
//!
//! Over HTTP a 2026-07-28 client may `subscriptions/listen` for
//! `notifications/tools/list_changed` ([`ListChanges`]): the stream says so
//! once the tools it was opened on have been replaced (an admin change, a
//! reload) and then ends, so the client re-lists and listens again. A listen
//! holds a connection, so a replica keeps at most [`MAX_LISTENS`] open, each
//! for at most [`MAX_LISTEN`]; past either, clients rely on the list's
//! `ttlMs`.

use crate::catalog::{ActionCatalog, ActionRun, ToolDefinition};
use crate::config::Phase;
use anyhow::{Context, Result};
use opentelemetry::context::FutureExt as _;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, DiscoverResult, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::model::{ServerNotification, SubscriptionFilter, ToolListChangedNotification};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Listens open at once per server: each holds a connection.
pub const MAX_LISTENS: usize = 256;
/// Longest a listen stays open before it ends gracefully (the client
/// listens again): bounds how long a shutdown waits for one.
pub const MAX_LISTEN: Duration = Duration::from_secs(60);
/// How often a listen checks whether its tools were replaced.
const LISTEN_POLL: Duration = Duration::from_millis(250);

/// Whether the tools a handler was made with are still the ones served.
pub trait CatalogWatch: Send + Sync + 'static {
    /// The catalog has been replaced since the handler was made.
    fn replaced(&self) -> bool;
}

/// What a handler needs to offer `subscriptions/listen`.
#[derive(Clone)]
pub struct ListChanges {
    /// Tells when the tools change.
    pub watch: Arc<dyn CatalogWatch>,
    /// The server's listen slots ([`MAX_LISTENS`]).
    pub slots: Arc<Semaphore>,
}

/// What a tool call that ran answers: the assistant payload, and whether
/// the action failed.
pub struct ToolAnswer {
    /// `{"result", "response_instructions"}` or `{"error": …}`.
    pub payload: Value,
    /// The action failed (the model reads why from the payload).
    pub is_error: bool,
}

impl ToolAnswer {
    /// The answer of `run`.
    pub fn of(run: &ActionRun) -> Self {
        Self {
            payload: run.assistant_payload(),
            is_error: run.report.outcome.is_err(),
        }
    }
}

/// How a tool call runs: `Ok` with its answer, or `Err` with the problem
/// (`{"kind", "message"}`) that kept it from running — a quota, a saturated
/// server, a host fault.
pub trait ActionRunner: Send + Sync + 'static {
    /// Run action `name` with `params`.
    fn run(&self, name: &str, params: Value) -> impl Future<Output = Result<ToolAnswer, Value>> + Send;
}

/// Runs calls straight on a catalog: `actionbox mcp`, one client on stdio.
#[derive(Clone)]
pub struct DirectRunner(pub Arc<ActionCatalog>);

impl ActionRunner for DirectRunner {
    async fn run(&self, name: &str, params: Value) -> Result<ToolAnswer, Value> {
        match self.0.invoke(name, &params).await {
            Ok(run) => Ok(ToolAnswer::of(&run)),
            Err(e) => Err(crate::present::problem("host", format_args!("{e:#}"))),
        }
    }
}

/// The MCP face of an [`ActionCatalog`]: its interaction actions as tools.
#[derive(Clone)]
pub struct McpActions<R> {
    catalog: Arc<ActionCatalog>,
    runner: R,
    /// How long a client may keep a `tools/list` answer (2026-07-28 `ttlMs`):
    /// the longest an admin change takes to reach a client that caches.
    tools_ttl: Duration,
    /// Whether this caller may call tools, not only list them (an OAuth
    /// token may grant listing alone; the HTTP layer refuses such calls
    /// first, this is the second lock).
    may_call: bool,
    /// Change notifications, where the transport can carry them.
    changes: Option<ListChanges>,
}

impl McpActions<DirectRunner> {
    /// Serve `catalog`'s interaction actions, running calls directly.
    pub fn new(catalog: Arc<ActionCatalog>) -> Self {
        Self::with_runner(catalog.clone(), DirectRunner(catalog), Duration::ZERO, true)
    }
}

impl<R: ActionRunner> McpActions<R> {
    /// Serve `catalog`'s interaction actions, running calls with `runner`;
    /// `tools_ttl` goes out with every tool list; `may_call` false refuses
    /// calls.
    pub fn with_runner(catalog: Arc<ActionCatalog>, runner: R, tools_ttl: Duration, may_call: bool) -> Self {
        Self {
            catalog,
            runner,
            tools_ttl,
            may_call,
            changes: None,
        }
    }

    /// Offer `subscriptions/listen` for tool list changes.
    pub fn with_list_changes(mut self, changes: ListChanges) -> Self {
        self.changes = Some(changes);
        self
    }

    fn tools(&self) -> Vec<ToolDefinition> {
        self.catalog.tools(Some(Phase::Interaction), None)
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.tools_ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

impl<R: ActionRunner> ServerHandler for McpActions<R> {
    fn get_info(&self) -> ServerConfig {
        let capabilities = if self.changes.is_some() {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build()
        } else {
            ServerCapabilities::builder().enable_tools().build()
        };
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("actionbox", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Smart actions for customer support, run in the actionbox sandbox. Each tool's description \
                 says how to present its result.",
            )
    }

    async fn discover(&self, _context: RequestContext<RoleServer>) -> Result<DiscoverResult, McpError> {
        Ok(
            DiscoverResult::from_server_info(self.supported_protocol_versions().into_owned(), self.get_info())
                .with_ttl_ms(self.ttl_ms())
                .with_cache_scope(CacheScope::Private),
        )
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        self.changes.as_ref()?;
        let mut accepted = SubscriptionFilter::new();
        accepted.tools_list_changed = requested.tools_list_changed;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let Some(changes) = &self.changes else {
            return Ok(());
        };
        let Ok(_slot) = changes.slots.clone().try_acquire_owned() else {
            return Err(McpError::internal_error(
                format!("this server already holds {MAX_LISTENS} listens; re-list tools when the list's ttlMs passes"),
                None,
            ));
        };
        let until = tokio::time::Instant::now() + MAX_LISTEN;
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                () = tokio::time::sleep(LISTEN_POLL) => {}
            }
            if changes.watch.replaced() {
                let changed = ServerNotification::ToolListChangedNotification(ToolListChangedNotification::default());
                // A client that went away meanwhile needs no notice.
                let _ = context.sink().send(changed).await;
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                return Ok(());
            }
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self
            .tools()
            .into_iter()
            .map(|t| {
                let schema = t.parameters.as_object().cloned().unwrap_or_default();
                Tool::new(t.name.clone(), t.assistant_description(), Arc::new(schema))
            })
            .collect();
        // Private: each workspace (and each token's scopes) sees its own list.
        Ok(ListToolsResult::with_all_items(tools)
            .with_ttl_ms(self.ttl_ms())
            .with_cache_scope(CacheScope::Private))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.to_string();
        let trace = caller_trace(&context);
        let tools = self.tools();
        if !tools.iter().any(|t| t.name == name) {
            let known: Vec<String> = tools.into_iter().map(|t| t.name).collect();
            return Err(McpError::invalid_params(
                format!("unknown tool `{name}`; this server offers: {}", known.join(", ")),
                None,
            ));
        }
        if !self.may_call {
            return Err(McpError::invalid_request(
                "this token may list tools but not call them (scope `actions:call`)",
                None,
            ));
        }
        let params = Value::Object(request.arguments.unwrap_or_default());
        let run = self.runner.run(&name, params);
        let answer = match trace {
            Some(cx) => run.with_context(cx).await,
            None => run.await,
        };
        let result = match answer {
            Ok(ToolAnswer {
                payload,
                is_error: false,
            }) => CallToolResult::structured(payload),
            Ok(ToolAnswer {
                payload,
                is_error: true,
            }) => CallToolResult::structured_error(payload),
            Err(problem) => CallToolResult::structured_error(json!({ "error": problem })),
        };
        Ok(result.into())
    }
}

/// The caller's trace context: `_meta.traceparent` (SEP-414), else the
/// `traceparent` header of the HTTP request that carried the call.
fn caller_trace(context: &RequestContext<RoleServer>) -> Option<opentelemetry::Context> {
    if let Some(traceparent) = context.meta.get_traceparent() {
        return crate::telemetry::context_from(Some(traceparent), context.meta.get_tracestate());
    }
    let parts = context.extensions.get::<http::request::Parts>()?;
    crate::telemetry::context_from_headers(&parts.headers)
}

/// Load `config` and serve MCP on stdin/stdout until the client goes away.
pub async fn run_stdio(config: &Path) -> Result<()> {
    let catalog = Arc::new(ActionCatalog::load(config).await?);
    let service = McpActions::new(catalog)
        .serve(rmcp::transport::stdio())
        .await
        .context("the MCP client did not complete initialization")?;
    service.waiting().await.context("the MCP server task failed")?;
    Ok(())
}
