//! The console's Action Debugger and history pages: a form made from the
//! action's parameter schema, and the trace of a run (`console/trace.rs`).

use super::pages::ParamField;
use super::trace::TraceView;
use super::{error_page, path_part, render, Chrome, ConsoleState, Signed};
use crate::server::workspace_api::call_action;
use actionbox_store::InvocationFilter;
use askama::Template;
use axum::extract::{Form, Path as UrlPath, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};
use std::collections::HashMap;

#[derive(Template)]
#[template(path = "debugger.html")]
struct DebuggerPage {
    chrome: Chrome,
    actions: Vec<(String, bool)>,
    selected: String,
    post: String,
    params: Vec<DebugParam>,
    trace: Option<TraceView>,
}

/// One input of the run form.
struct DebugParam {
    field: ParamField,
    /// JSON type, for the input's kind.
    json_type: String,
    /// The description the assistant sees.
    help: String,
}

#[derive(serde::Deserialize)]
pub(super) struct ActionQuery {
    action: Option<String>,
}

/// The debugger page for `selected` (may be empty), its form filled from `form`.
async fn page(
    state: &crate::server::workspace_api::WorkspaceServeState,
    session: &super::session::Session,
    ws: &str,
    selected: &str,
    form: Option<&HashMap<String, String>>,
) -> Result<DebuggerPage, Response> {
    let live = state
        .workspaces_handle()
        .live(ws)
        .await
        .map_err(|e| error_page(StatusCode::SERVICE_UNAVAILABLE, Some(session), Some(ws), &e.to_string()))?;
    let tools = live.catalog.tools(None, None);
    let actions = tools.iter().map(|t| (t.name.clone(), t.name == selected)).collect();
    let mut params = Vec::new();
    if let Some(tool) = tools.iter().find(|t| t.name == selected) {
        let required: Vec<&str> = tool.parameters["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = tool.parameters["properties"].as_object() {
            for (name, schema) in props {
                let id = format!("param-{name}");
                params.push(DebugParam {
                    field: ParamField {
                        value: form.and_then(|f| f.get(&id)).cloned().unwrap_or_default(),
                        placeholder: schema["examples"][0].as_str().map(str::to_string).unwrap_or_default(),
                        required: required.contains(&name.as_str()),
                        name: name.clone(),
                    },
                    json_type: schema["type"].as_str().unwrap_or("string").to_string(),
                    help: schema["description"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
    }
    Ok(DebuggerPage {
        chrome: Chrome::new(session, ws, "debugger", "Action Debugger"),
        actions,
        selected: selected.to_string(),
        post: format!("/console/w/{}/debugger?action={}", path_part(ws), path_part(selected)),
        params,
        trace: None,
    })
}

/// `GET …/debugger[?action=…]`.
pub(super) async fn debugger(
    axum::extract::State(state): ConsoleState,
    Query(q): Query<ActionQuery>,
    Signed { session, ws }: Signed,
) -> Response {
    match page(&state, &session, &ws, q.action.as_deref().unwrap_or(""), None).await {
        Ok(p) => render(StatusCode::OK, &p),
        Err(r) => r,
    }
}

/// The parameters of the run form as the action's JSON input: each value
/// parsed as its schema's type says (a number field must hold a number).
fn params_of(page: &DebuggerPage, form: &HashMap<String, String>) -> Result<Value, String> {
    let mut params = Map::new();
    for p in &page.params {
        let raw = form.get(&format!("param-{}", p.field.name)).map_or("", |v| v.trim());
        if raw.is_empty() {
            continue;
        }
        let value = match p.json_type.as_str() {
            "string" => Value::String(raw.to_string()),
            _ => serde_json::from_str(raw).map_err(|_| {
                format!(
                    "parameter `{}` must be a JSON {} (e.g. {})",
                    p.field.name,
                    p.json_type,
                    if p.json_type == "boolean" { "true" } else { "42" }
                )
            })?,
        };
        params.insert(p.field.name.clone(), value);
    }
    Ok(Value::Object(params))
}

/// `POST …/debugger?action=…`: run it and draw the trace.
pub(super) async fn run(
    axum::extract::State(state): ConsoleState,
    Query(q): Query<ActionQuery>,
    Signed { session, ws }: Signed,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !session.check_csrf(&form) {
        return error_page(
            StatusCode::FORBIDDEN,
            Some(&session),
            Some(&ws),
            "This form was refused (CSRF check). Reload the page and run again.",
        );
    }
    let action = q.action.unwrap_or_default();
    let mut p = match page(&state, &session, &ws, &action, Some(&form)).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let params = match params_of(&p, &form) {
        Ok(params) => params,
        Err(message) => {
            p.chrome.error = Some(message);
            return render(StatusCode::BAD_REQUEST, &p);
        }
    };
    match call_action(&state, &ws, &action, &params, "debug", crate::debugger::trace_json).await {
        Ok(trace) => {
            p.trace = Some(TraceView::of(&trace));
            render(StatusCode::OK, &p)
        }
        Err(refused) => {
            let message = refused.error["message"].as_str().unwrap_or_default().to_string();
            p.chrome.error = Some(message);
            render(refused.status, &p)
        }
    }
}

struct HistoryRow {
    id: i64,
    time: String,
    action: String,
    outcome: String,
    duration_ms: i64,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    chrome: Chrome,
    rows: Vec<HistoryRow>,
    actions: Vec<(String, bool)>,
    outcomes: Vec<(String, bool)>,
}

#[derive(serde::Deserialize)]
pub(super) struct HistoryQuery {
    action: Option<String>,
    outcome: Option<String>,
}

/// Outcomes a filter can ask for.
const OUTCOMES: [&str; 10] = [
    "ok",
    "invalid-input",
    "unauthorized",
    "not-found",
    "rate-limited",
    "upstream",
    "timeout",
    "denied",
    "limit-exceeded",
    "internal",
];

/// `started_ms` as UTC `YYYY-MM-DD HH:MM:SS`.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `GET …/history[?action=&outcome=]`.
pub(super) async fn history(
    axum::extract::State(state): ConsoleState,
    Query(q): Query<HistoryQuery>,
    Signed { session, ws }: Signed,
) -> Response {
    let action = q.action.filter(|a| !a.is_empty());
    let outcome = q.outcome.filter(|o| !o.is_empty());
    let filter = InvocationFilter {
        action: action.clone(),
        outcome: outcome.clone(),
        limit: 100,
        ..InvocationFilter::default()
    };
    let mut chrome = Chrome::new(&session, &ws, "history", "History");
    let rows = match state.workspaces_handle().store().invocations(&ws, &filter).await {
        Ok(list) => list
            .into_iter()
            .map(|s| HistoryRow {
                id: s.id,
                time: utc(s.started_ms),
                action: s.action,
                outcome: s.outcome,
                duration_ms: s.duration_ms,
            })
            .collect(),
        Err(e) => {
            chrome.error = Some(e.to_string());
            Vec::new()
        }
    };
    let mut names: Vec<String> = match state.workspaces_handle().live(&ws).await {
        Ok(live) => live.catalog.actions().iter().map(|a| a.config.name.clone()).collect(),
        Err(_) => Vec::new(),
    };
    names.push(crate::server::workspace_api::TEST_BUTTON_ACTION.to_string());
    let actions = names
        .into_iter()
        .map(|n| {
            let selected = action.as_deref() == Some(n.as_str());
            (n, selected)
        })
        .collect();
    let outcomes = OUTCOMES
        .iter()
        .map(|o| (o.to_string(), outcome.as_deref() == Some(*o)))
        .collect();
    render(
        StatusCode::OK,
        &HistoryPage {
            chrome,
            rows,
            actions,
            outcomes,
        },
    )
}

#[derive(Template)]
#[template(path = "history_entry.html")]
struct HistoryEntryPage {
    chrome: Chrome,
    action: String,
    time: String,
    trace: Option<TraceView>,
}

/// `GET …/history/{id}`: the trace history kept.
pub(super) async fn history_entry(
    axum::extract::State(state): ConsoleState,
    UrlPath((_, id)): UrlPath<(String, i64)>,
    Signed { session, ws }: Signed,
) -> Response {
    match state.workspaces_handle().store().invocation(&ws, id).await {
        Ok(Some(entry)) => {
            let chrome = Chrome::new(
                &session,
                &ws,
                "history",
                format!("Run {} of {}", entry.summary.id, entry.summary.action),
            );
            render(
                StatusCode::OK,
                &HistoryEntryPage {
                    chrome,
                    action: entry.summary.action.clone(),
                    time: utc(entry.summary.started_ms),
                    trace: Some(TraceView::of(&entry.trace)),
                },
            )
        }
        Ok(None) => error_page(
            StatusCode::NOT_FOUND,
            Some(&session),
            Some(&ws),
            "History has no such run (it may have been trimmed).",
        ),
        Err(e) => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(&session),
            Some(&ws),
            &e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_083_200_000), "2026-12-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03 UTC");
    }
}
