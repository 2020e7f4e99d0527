//! The configured actions: integrations with their components loaded, custom
//! actions checked against what the components offer, the default actions
//! added, and the operations the assistant platform needs — tool definitions,
//! session-start runs, invocations and the Test button.
//!
//! How a catalog is built from a config (engine, components, admission,
//! action resolution) is `catalog/load.rs`; this module is what a built
//! catalog offers.

mod load;

pub use load::{ComponentSource, FileComponents};

use crate::config::{ActionConfig, Direction, Execution, IntegrationConfig, Phase, Trigger};
use actionbox_runtime::component::ActionComponent;
use actionbox_runtime::engine::ActionEngine;
use actionbox_runtime::error::InvokeError;
use actionbox_runtime::integration::IntegrationSettings;
use actionbox_runtime::kinds::IntegrationKind;
use actionbox_runtime::manifest::MethodSpec;
use actionbox_runtime::outbound::OutboundMode;
use actionbox_runtime::report::InvocationReport;
use anyhow::{anyhow, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Pool slots beyond the per-integration bounds: one-shot describes at load
/// and reload, and calls of the library API outside `serve`'s permits.
pub const POOL_SPARE_SLOTS: u32 = 16;

/// An action ready to run.
#[derive(Debug, Clone)]
pub struct CatalogAction {
    /// Its configuration (or the default action's).
    pub config: ActionConfig,
    /// The component method it calls.
    pub method: MethodSpec,
    integration: usize,
}

impl CatalogAction {
    /// The required parameters `context` lacks (absent or null): the one
    /// rule for whether a session-start action runs.
    pub fn missing_in(&self, context: &Map<String, Value>) -> Vec<&str> {
        self.method
            .params
            .iter()
            .filter(|p| p.required && context.get(&p.name).is_none_or(Value::is_null))
            .map(|p| p.name.as_str())
            .collect()
    }
}

struct LoadedIntegration {
    config: IntegrationConfig,
    component: Arc<ActionComponent>,
    /// Its kind from the registry: where its key may go, and in which header.
    kind: IntegrationKind,
}

/// Everything a config file describes, loaded and checked.
pub struct ActionCatalog {
    integrations: Vec<LoadedIntegration>,
    actions: Vec<CatalogAction>,
    /// The workspace it serves, for traces; `None` for a config file.
    workspace: Option<String>,
    /// The engine a config file's catalog owns; `None` when the components
    /// come from a shared registry (workspaces) that owns it.
    _engine: Option<ActionEngine>,
}

/// An LLM tool definition for one action.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ToolDefinition {
    /// Tool name (the action's name).
    pub name: String,
    /// What the tool does.
    pub description: String,
    /// JSON Schema of the arguments, with the customised descriptions.
    pub parameters: Value,
    /// How the assistant should present the result.
    pub response_instructions: Option<String>,
    /// The integration it runs on.
    pub integration: String,
    /// The component method.
    pub method: String,
    /// When it runs.
    pub execution: Execution,
    /// Which messages it is offered for.
    pub trigger: Trigger,
}

impl ToolDefinition {
    /// The description an assistant sees: the action's, then how to present
    /// the result.
    pub fn assistant_description(&self) -> String {
        match &self.response_instructions {
            Some(r) => format!("{}\n\nHow to present the result: {r}", self.description),
            None => self.description.clone(),
        }
    }

    /// OpenAI `tools[]` entry (`{"type": "function", "function": {…}}`).
    pub fn openai(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.assistant_description(),
                "parameters": self.parameters,
            }
        })
    }

    /// MCP `tools/list` entry.
    pub fn mcp(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.assistant_description(),
            "inputSchema": self.parameters,
        })
    }
}

/// One run of a configured action.
#[derive(Debug, Serialize)]
pub struct ActionRun {
    /// The action's name.
    pub action: String,
    /// Its integration's name.
    pub integration: String,
    /// The component method.
    pub method: String,
    /// The base URL it ran against.
    pub base_url: String,
    /// Everything the invocation did.
    pub report: InvocationReport,
    /// The action's response instructions.
    pub response_instructions: Option<String>,
}

impl ActionRun {
    /// What the assistant receives: `{"result", "response_instructions"}` or
    /// `{"error": {"kind", "message", "request_id"}, "response_instructions"}`.
    pub fn assistant_payload(&self) -> Value {
        let mut m = Map::new();
        match &self.report.outcome {
            Ok(v) => {
                m.insert("result".into(), v.clone());
            }
            Err(e) => {
                m.insert("error".into(), crate::present::error(e));
            }
        }
        m.insert("response_instructions".into(), json!(self.response_instructions));
        Value::Object(m)
    }
}

/// Result of `session-start`.
#[derive(Debug, Serialize)]
pub struct SessionStartReport {
    /// Action name → its assistant payload.
    pub results: BTreeMap<String, Value>,
    /// Action name → why it did not run (a parameter the context lacks).
    pub skipped: BTreeMap<String, String>,
    /// The runs themselves, for the history (not part of the answer).
    #[serde(skip)]
    pub runs: Vec<ActionRun>,
}

impl ActionCatalog {
    /// Names of the configured integrations.
    pub fn integration_names(&self) -> Vec<String> {
        self.integrations.iter().map(|i| i.config.name.clone()).collect()
    }

    /// Every action, custom ones first, then defaults.
    pub fn actions(&self) -> &[CatalogAction] {
        &self.actions
    }

    /// The action called `name`.
    pub fn action(&self, name: &str) -> Option<&CatalogAction> {
        self.actions.iter().find(|a| a.config.name == name)
    }

    fn action_names(&self) -> String {
        self.actions
            .iter()
            .map(|a| a.config.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every method each integration's component offers, as `(integration,
    /// method)`: what a custom action may call.
    pub fn methods(&self) -> Vec<(String, MethodSpec)> {
        self.integrations
            .iter()
            .flat_map(|i| {
                i.component
                    .manifest()
                    .methods
                    .iter()
                    .map(|m| (i.config.name.clone(), m.clone()))
            })
            .collect()
    }

    /// The tool definitions to offer now: actions that run in `phase` and
    /// fire on `direction` (each filter optional).
    pub fn tools(&self, phase: Option<Phase>, direction: Option<Direction>) -> Vec<ToolDefinition> {
        self.actions
            .iter()
            .filter(|a| phase.is_none_or(|p| p.admits(a.config.execution)))
            .filter(|a| direction.is_none_or(|d| d.admits(a.config.trigger)))
            .map(|a| self.tool(a))
            .collect()
    }

    fn tool(&self, a: &CatalogAction) -> ToolDefinition {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for p in &a.method.params {
            let description = a.config.parameter_descriptions.get(&p.name).unwrap_or(&p.description);
            let mut schema = json!({ "type": p.json_type, "description": description });
            if let Some(example) = p.example.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()) {
                schema["examples"] = json!([example]);
            }
            properties.insert(p.name.clone(), schema);
            if p.required {
                required.push(p.name.clone());
            }
        }
        ToolDefinition {
            name: a.config.name.clone(),
            description: a
                .config
                .description
                .clone()
                .unwrap_or_else(|| a.method.description.clone()),
            parameters: json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            }),
            response_instructions: a.config.response_instructions.clone(),
            integration: a.config.integration.clone(),
            method: a.method.display_name.clone(),
            execution: a.config.execution,
            trigger: a.config.trigger,
        }
    }

    /// The settings a call on integration `index` runs with (the key is read
    /// now): the integration's base URL or its kind's, and the kind's
    /// credential header — never anything the component chose.
    fn settings(&self, index: usize) -> Result<IntegrationSettings> {
        let integ = &self.integrations[index];
        let api_key = integ.config.key_source.load(&integ.config.name)?;
        let mut settings = integ.kind.settings(integ.config.base_url.clone(), api_key);
        settings.timeout = integ.config.timeout;
        settings.limits = integ.config.limits;
        settings.propagate_trace = integ.config.propagate_trace;
        settings.labels.integration = Some(integ.config.name.clone());
        settings.labels.workspace = self.workspace.clone();
        Ok(settings)
    }

    /// Run action `name` with JSON object `params`. Errors are setup problems
    /// (unknown action, missing key); the call's own failure is in the report.
    pub async fn invoke(&self, name: &str, params: &Value) -> Result<ActionRun> {
        self.invoke_with(name, params, OutboundMode::Live).await
    }

    /// [`Self::invoke`], its requests recorded or answered from a recording
    /// (`outbound_mode`; the CLI's `--record` and `--replay`).
    pub async fn invoke_with(&self, name: &str, params: &Value, outbound_mode: OutboundMode) -> Result<ActionRun> {
        let action = self
            .action(name)
            .ok_or_else(|| anyhow!("no action is named `{name}`; configured: {}", self.action_names()))?;
        let mut settings = self.settings(action.integration)?;
        settings.labels.action = Some(action.config.name.clone());
        settings.outbound_mode = outbound_mode;
        let integ = &self.integrations[action.integration];
        let report = if params.is_object() {
            integ
                .component
                .invoke(&settings, &action.method.name, &params.to_string())
                .await
        } else {
            InvocationReport::refused(
                &action.method.name,
                InvokeError::InvalidInput {
                    message: "params must be a JSON object, e.g. {\"order_id\": \"1001\"}".into(),
                },
            )
        };
        Ok(ActionRun {
            action: action.config.name.clone(),
            integration: integ.config.name.clone(),
            method: action.method.display_name.clone(),
            base_url: settings.base_url.to_string(),
            report,
            response_instructions: action.config.response_instructions.clone(),
        })
    }

    /// The session-start actions that a session starting with `context`
    /// runs: those whose required parameters it provides (what
    /// [`ActionCatalog::session_start`] runs; `serve` counts them to take
    /// one call slot each).
    pub fn session_start_runs<'a>(
        &'a self,
        context: &'a Map<String, Value>,
    ) -> impl Iterator<Item = &'a CatalogAction> + 'a {
        self.actions
            .iter()
            .filter(|a| Phase::SessionStart.admits(a.config.execution))
            .filter(|a| a.missing_in(context).is_empty())
    }

    /// Run every session-start action whose required parameters `context`
    /// provides, concurrently.
    pub async fn session_start(&self, context: &Value) -> Result<SessionStartReport> {
        let context = context
            .as_object()
            .ok_or_else(|| anyhow!("the session context must be a JSON object"))?;
        let mut skipped = BTreeMap::new();
        let mut runs = Vec::new();
        for a in self
            .actions
            .iter()
            .filter(|a| Phase::SessionStart.admits(a.config.execution))
        {
            let missing = a.missing_in(context);
            if !missing.is_empty() {
                skipped.insert(
                    a.config.name.clone(),
                    format!("the context has no {}", missing.join(", ")),
                );
                continue;
            }
            let params: Map<String, Value> = a
                .method
                .params
                .iter()
                .filter_map(|p| {
                    context
                        .get(&p.name)
                        .filter(|v| !v.is_null())
                        .map(|v| (p.name.clone(), v.clone()))
                })
                .collect();
            runs.push(async move {
                (
                    a.config.name.clone(),
                    self.invoke(&a.config.name, &Value::Object(params)).await,
                )
            });
        }
        let mut results = BTreeMap::new();
        let mut done = Vec::new();
        for (name, run) in futures::future::join_all(runs).await {
            let payload = match run {
                Ok(run) => {
                    let payload = run.assistant_payload();
                    done.push(run);
                    payload
                }
                Err(e) => json!({ "error": crate::present::problem("host", format_args!("{e:#}")) }),
            };
            results.insert(name, payload);
        }
        Ok(SessionStartReport {
            results,
            skipped,
            runs: done,
        })
    }

    /// The Test button of integration `name`: its component's `test-connection`.
    pub async fn test_integration(&self, name: &str) -> Result<(String, InvocationReport)> {
        let index = self
            .integrations
            .iter()
            .position(|i| i.config.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.integrations.iter().map(|i| i.config.name.as_str()).collect();
                anyhow!("no integration is named `{name}`; configured: {}", known.join(", "))
            })?;
        let integ = &self.integrations[index];
        let settings = self.settings(index)?;
        let report = integ.component.test_connection(&settings).await;
        Ok((settings.base_url.to_string(), report))
    }
}
