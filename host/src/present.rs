//! What people and assistants see, written once: tool lists in each format,
//! error bodies, and the HTTP status of each failure kind. The CLI, `serve`,
//! MCP and the debugger all print through here, so they cannot drift apart.
//!
//! ```
//! use actionbox::present::{problem, ToolFormat};
//! assert_eq!("openai".parse::<ToolFormat>().ok(), Some(ToolFormat::Openai));
//! assert_eq!(problem("host", "it broke")["kind"], "host");
//! ```

use crate::catalog::ToolDefinition;
use actionbox_runtime::error::InvokeError;
use http::StatusCode;
use serde_json::{json, Value};
use std::fmt;
use std::str::FromStr;

/// How a tool list is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// actionbox's own: every field, including execution, trigger and
    /// response instructions.
    Json,
    /// OpenAI `tools[]` entries (`{"type": "function", "function": …}`).
    Openai,
    /// MCP `tools/list` entries (`{"name", "description", "inputSchema"}`).
    Mcp,
}

impl FromStr for ToolFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "json" => Ok(Self::Json),
            "openai" => Ok(Self::Openai),
            "mcp" => Ok(Self::Mcp),
            other => Err(format!(
                "unknown format `{}`; use json, openai or mcp",
                actionbox_runtime::error::guest_text(other, 32)
            )),
        }
    }
}

/// A tool list: `{"tools": [...]}` in `format`, the same from the CLI and
/// from `serve` (an object, so it can grow fields without breaking readers).
pub fn tools(tools: &[ToolDefinition], format: ToolFormat) -> Value {
    let entries: Vec<Value> = match format {
        ToolFormat::Json => tools.iter().map(|t| json!(t)).collect(),
        ToolFormat::Openai => tools.iter().map(ToolDefinition::openai).collect(),
        ToolFormat::Mcp => tools.iter().map(ToolDefinition::mcp).collect(),
    };
    json!({ "tools": entries })
}

/// A failed call as assistants and clients see it: `{"kind", "message",
/// "request_id"}`.
pub fn error(e: &InvokeError) -> Value {
    json!({ "kind": e.kind(), "message": e.message(), "request_id": e.request_id() })
}

/// A failure that is not the action's (the host's, the request's):
/// `{"kind", "message", "request_id": null}`, the same shape as [`error`].
pub fn problem(kind: &str, message: impl fmt::Display) -> Value {
    json!({ "kind": kind, "message": message.to_string(), "request_id": null })
}

/// The HTTP status `serve` answers a failed call with.
pub fn http_status(e: &InvokeError) -> StatusCode {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Execution, Trigger};

    fn tool() -> ToolDefinition {
        ToolDefinition {
            name: "trackOrder".into(),
            description: "Track an order.".into(),
            parameters: json!({"type": "object"}),
            response_instructions: Some("Be brief.".into()),
            integration: "shop".into(),
            method: "trackOrder".into(),
            execution: Execution::DuringInteraction,
            trigger: Trigger::Inbound,
        }
    }

    #[test]
    fn every_format_is_an_object_with_a_tools_list() {
        let t = [tool()];
        let json = tools(&t, ToolFormat::Json);
        assert_eq!(json["tools"][0]["response_instructions"], "Be brief.");
        let openai = tools(&t, ToolFormat::Openai);
        assert_eq!(openai["tools"][0]["type"], "function");
        assert!(openai["tools"][0]["function"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("Be brief.")));
        let mcp = tools(&t, ToolFormat::Mcp);
        assert_eq!(mcp["tools"][0]["inputSchema"]["type"], "object");
        let e = "yaml".parse::<ToolFormat>().expect_err("unknown");
        assert!(e.contains("json, openai or mcp"), "{e}");
    }

    #[test]
    fn errors_share_one_shape() {
        let e = InvokeError::NotFound {
            message: "no order 9".into(),
        };
        assert_eq!(
            error(&e),
            json!({"kind": "not-found", "message": "no order 9", "request_id": null})
        );
        assert_eq!(
            problem("host", "broken"),
            json!({"kind": "host", "message": "broken", "request_id": null})
        );
        assert_eq!(http_status(&e), StatusCode::NOT_FOUND);
        assert_eq!(
            http_status(&InvokeError::Timeout { message: String::new() }),
            StatusCode::GATEWAY_TIMEOUT
        );
    }
}
