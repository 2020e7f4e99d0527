//! The console: the merchant's dashboard at `/console` of `serve --store` —
//! integrations (add, edit, Test, delete), actions (add with a preview of the
//! tool the assistant will see, edit, delete), the Action Debugger drawn as a
//! timeline, and history. It is a face of the workspace API: every change
//! goes through the same `Workspaces` calls as the admin routes (so through
//! the same validation, audit and change feed), every run through the same
//! call slots, quotas and history.
//!
//! Server-rendered HTML (askama templates in `console/templates`, escaped by
//! default), one stylesheet and one small script embedded in the binary; no
//! inline script or style, so the Content-Security-Policy below allows only
//! this origin's two files. Sessions and CSRF: `console/session.rs`.
//!
//! | route | page |
//! |---|---|
//! | `/console/sign-in`, `/console/sign-out` | a workspace admin token or the operator token |
//! | `/console/workspaces` | the operator's list of workspaces |
//! | `/console/w/{ws}/integrations[/new│/{name}[/test│/delete]]` | integrations |
//! | `/console/w/{ws}/actions[/new│/{name}[/delete]]` | actions |
//! | `/console/w/{ws}/debugger[?action=…]` | the Action Debugger |
//! | `/console/w/{ws}/history[/{id}]` | history |

// Handlers return the finished page as their error (as in `workspace_api.rs`).
#![allow(clippy::result_large_err)]

mod debugger;
mod pages;
pub mod session;
mod trace;

use super::workspace_api::WorkspaceServeState;
use askama::Template;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use session::Session;

/// Every console answer's Content-Security-Policy: this origin's stylesheet
/// and script only, no inline code, no framing, forms only to this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("console/assets/console.css");
const JS: &str = include_str!("console/assets/console.js");

/// The console's routes.
pub(super) fn router() -> Router<WorkspaceServeState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/sign-in") }))
        .route("/console/", get(|| async { Redirect::to("/console/sign-in") }))
        .route("/console/assets/{file}", get(asset))
        .route("/console/sign-in", get(pages::sign_in_page).post(pages::sign_in))
        .route("/console/sign-out", post(pages::sign_out))
        .route("/console/workspaces", get(pages::workspaces))
        .route("/console/w/{ws}", get(workspace_home))
        .route("/console/w/{ws}/integrations", get(pages::integrations))
        .route(
            "/console/w/{ws}/integrations/new",
            get(pages::new_integration).post(pages::create_integration),
        )
        .route(
            "/console/w/{ws}/integrations/{name}",
            get(pages::integration).post(pages::update_integration),
        )
        .route(
            "/console/w/{ws}/integrations/{name}/test",
            post(pages::test_integration),
        )
        .route(
            "/console/w/{ws}/integrations/{name}/delete",
            get(pages::confirm_delete_integration).post(pages::delete_integration),
        )
        .route("/console/w/{ws}/actions", get(pages::actions))
        .route(
            "/console/w/{ws}/actions/new",
            get(pages::new_action).post(pages::create_action),
        )
        .route(
            "/console/w/{ws}/actions/{name}",
            get(pages::action).post(pages::update_action),
        )
        .route(
            "/console/w/{ws}/actions/{name}/delete",
            get(pages::confirm_delete_action).post(pages::delete_action),
        )
        .route("/console/w/{ws}/debugger", get(debugger::debugger).post(debugger::run))
        .route("/console/w/{ws}/history", get(debugger::history))
        .route("/console/w/{ws}/history/{id}", get(debugger::history_entry))
        .layer(axum::middleware::map_response(security_headers))
}

/// The headers every console answer carries: the CSP, no sniffing, no
/// framing, no referrer, and no caching (pages show workspace data).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The stylesheet and the script.
async fn asset(UrlPath(file): UrlPath<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("max-age=300")),
        ],
        body,
    )
        .into_response()
}

async fn workspace_home(UrlPath(ws): UrlPath<String>) -> Response {
    Redirect::to(&format!("/console/w/{}/integrations", path_part(&ws))).into_response()
}

/// What every signed-in page shows around its content.
pub struct Chrome {
    /// The page's `<h1>` and title.
    pub title: String,
    /// The workspace, on a workspace's pages.
    pub ws: Option<String>,
    /// Which nav entry is current.
    pub section: &'static str,
    /// The session's CSRF value (for the sign-out form and every other form).
    pub csrf: String,
    /// The operator is signed in (show "All workspaces").
    pub operator: bool,
    /// What just happened.
    pub notice: Option<String>,
    /// What went wrong, and what to do.
    pub error: Option<String>,
}

impl Chrome {
    /// The chrome of a page of workspace `ws` for `session`.
    pub fn new(session: &Session, ws: &str, section: &'static str, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ws: Some(ws.to_string()),
            section,
            csrf: session.csrf.clone(),
            operator: session.who == session::Who::Operator,
            notice: None,
            error: None,
        }
    }
}

/// The page rendered, or a plain 500 when a template fails (it cannot with
/// checked templates, but a page is never half-written).
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("console template failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be drawn").into_response()
        }
    }
}

/// A page that says what went wrong.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Title and error.
    pub chrome: Chrome,
}

/// `status` with `message` as the page's error, inside the chrome when there
/// is a session.
pub fn error_page(status: StatusCode, session: Option<&Session>, ws: Option<&str>, message: &str) -> Response {
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        _ => "Something went wrong",
    };
    let chrome = Chrome {
        title: title.into(),
        ws: ws.map(str::to_string),
        section: "",
        csrf: session.map(|s| s.csrf.clone()).unwrap_or_default(),
        operator: session.is_some_and(|s| s.who == session::Who::Operator),
        notice: None,
        error: Some(message.to_string()),
    };
    render(status, &MessagePage { chrome })
}

/// `s` for a URL path segment: ids and names here are `[A-Za-z0-9_.-]`,
/// anything else is percent-encoded.
pub fn path_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request to a page of workspace `{ws}` by someone signed in and allowed
/// there: a handler that takes it cannot run for anyone else (it answers
/// the sign-in redirect or 403 instead).
pub struct Signed {
    /// Who.
    pub session: Session,
    /// The path's workspace.
    pub ws: String,
}

impl axum::extract::FromRequestParts<WorkspaceServeState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &WorkspaceServeState,
    ) -> Result<Self, Response> {
        let ws = super::workspace_api::path_workspace(parts, state).await?;
        // Only a well-formed id reaches a page (it is written into its links).
        if !actionbox_store::is_workspace_id(&ws) {
            return Err(StatusCode::NOT_FOUND.into_response());
        }
        let session = workspace_session(state, &parts.headers, &ws).await?;
        Ok(Self { session, ws })
    }
}

/// The session of a request to a page of workspace `ws`: signed in, and
/// allowed there.
async fn workspace_session(
    state: &WorkspaceServeState,
    headers: &axum::http::HeaderMap,
    ws: &str,
) -> Result<Session, Response> {
    let Some(sessions) = state.console_sessions() else {
        return Err(StatusCode::NOT_FOUND.into_response());
    };
    let session = match sessions.session(state, headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return Err(session::to_sign_in()),
        Err(message) => return Err(error_page(StatusCode::SERVICE_UNAVAILABLE, None, None, &message)),
    };
    if !session.may(ws) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            Some(&session),
            None,
            "You are signed in to another workspace. Sign out and sign in with this workspace's admin token.",
        ));
    }
    Ok(session)
}

/// `State` for handlers.
pub(super) type ConsoleState = State<WorkspaceServeState>;
