//! `actionbox mcp`: the configured interaction actions as an MCP server over
//! stdio (rmcp). Each action is a tool whose input schema carries the
//! customised parameter descriptions and whose description carries the
//! response instructions. A failed action is a tool result with `isError:
//! true` (the model can read it); protocol problems (an unknown tool) are
//! JSON-RPC errors. Logs go to stderr, never into the protocol stream.

use crate::catalog::ActionCatalog;
use crate::config::Phase;
use anyhow::{Context, Result};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// The MCP face of an [`ActionCatalog`].
pub struct McpActions {
    catalog: Arc<ActionCatalog>,
}

impl McpActions {
    /// Serve `catalog`'s interaction actions.
    pub fn new(catalog: Arc<ActionCatalog>) -> Self {
        Self { catalog }
    }

    fn tools(&self) -> Vec<crate::catalog::ToolDefinition> {
        self.catalog.tools(Some(Phase::Interaction), None)
    }
}

impl ServerHandler for McpActions {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("actionbox", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Smart actions for customer support, run in the actionbox sandbox. Each tool's description \
                 says how to present its result.",
            )
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
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.to_string();
        if !self.tools().iter().any(|t| t.name == name) {
            let known: Vec<String> = self.tools().into_iter().map(|t| t.name).collect();
            return Err(McpError::invalid_params(
                format!("unknown tool `{name}`; this server offers: {}", known.join(", ")),
                None,
            ));
        }
        let params = Value::Object(request.arguments.unwrap_or_default());
        let result = match self.catalog.invoke(&name, &params).await {
            Ok(run) => match run.report.outcome {
                Ok(_) => CallToolResult::structured(run.assistant_payload()),
                Err(_) => CallToolResult::structured_error(run.assistant_payload()),
            },
            Err(e) => CallToolResult::structured_error(json!({
                "error": crate::present::problem("host", format_args!("{e:#}"))
            })),
        };
        Ok(result.into())
    }
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
