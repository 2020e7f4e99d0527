//! The console's sign-in, workspace, integration and action pages.

use super::session::{self, Session, Who};
use super::{error_page, path_part, render, Chrome, ConsoleState, Signed};
use crate::server::workspace_api::{refusal, test_call, WorkspaceServeState};
use crate::workspaces::WorkspaceError;
use askama::Template;
use axum::extract::{Form, Path as UrlPath, Query};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// A submitted form's fields.
type Fields = HashMap<String, String>;

/// Field `name` of `form`, trimmed ("" when absent).
fn field<'a>(form: &'a Fields, name: &str) -> &'a str {
    form.get(name).map_or("", |v| v.trim())
}

/// The 403 for a form without this session's CSRF value.
fn csrf_refused(session: &Session, ws: &str) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        Some(session),
        Some(ws),
        "This form was refused (CSRF check): it did not come from this console page, or the page is older than \
         your session. Reload the page and submit it again.",
    )
}

/// The field an API error names (`… field `timeout`: …`), to mark it.
fn invalid_field(message: &str) -> Option<String> {
    let rest = message.split("field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

fn message_of(e: WorkspaceError) -> String {
    refusal(e).error["message"].as_str().unwrap_or_default().to_string()
}

/// The rows of `list`, or none with its error on the page.
fn rows<T>(list: Result<Vec<Value>, WorkspaceError>, chrome: &mut Chrome, row: impl Fn(&Value) -> T) -> Vec<T> {
    match list {
        Ok(list) => list.iter().map(row).collect(),
        Err(e) => {
            chrome.error = Some(message_of(e));
            Vec::new()
        }
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

// ---------------------------------------------------------------- sign in

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    csrf: String,
    error: Option<String>,
}

fn sign_in_form(state: &WorkspaceServeState, status: StatusCode, error: Option<String>) -> Response {
    let Some(sessions) = state.console_sessions() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (csrf, cookie) = sessions.sign_in_csrf();
    let mut response = render(status, &SignInPage { csrf, error });
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /console/sign-in`.
pub(super) async fn sign_in_page(axum::extract::State(state): ConsoleState) -> Response {
    sign_in_form(&state, StatusCode::OK, None)
}

/// `POST /console/sign-in`: the token and the double-submitted CSRF value.
pub(super) async fn sign_in(
    axum::extract::State(state): ConsoleState,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let Some(sessions) = state.console_sessions() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cookie = session::cookie(&headers, session::SIGN_IN_CSRF_COOKIE).unwrap_or_default();
    if cookie.is_empty() || !crate::server::same_token(cookie, field(&form, "csrf")) {
        return sign_in_form(
            &state,
            StatusCode::FORBIDDEN,
            Some("This sign-in form expired (CSRF check). Try again.".into()),
        );
    }
    let token = field(&form, "token");
    let who = match session::who_is(&state, token).await {
        Ok(Some(who)) => who,
        Ok(None) => {
            state.metrics.unauthorized();
            return sign_in_form(
                &state,
                StatusCode::UNAUTHORIZED,
                Some("That token was not accepted. Check it and try again.".into()),
            );
        }
        Err(message) => return sign_in_form(&state, StatusCode::SERVICE_UNAVAILABLE, Some(message)),
    };
    let Some(cookie) = sessions.start(token) else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            None,
            "The session could not be started.",
        );
    };
    let to = match &who {
        Who::Operator => "/console/workspaces".to_string(),
        Who::Admin { ws, .. } => format!("/console/w/{}/integrations", path_part(ws)),
    };
    let mut response = see_other(&to);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// `POST /console/sign-out`.
pub(super) async fn sign_out(axum::extract::State(state): ConsoleState) -> Response {
    let Some(sessions) = state.console_sessions() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Signing out needs no CSRF check: forcing someone out is harmless, and
    // a session that no longer opens must still be able to leave.
    let mut response = see_other("/console/sign-in");
    response.headers_mut().append(header::SET_COOKIE, sessions.end());
    response
}

// ---------------------------------------------------------------- workspaces

#[derive(Template)]
#[template(path = "workspaces.html")]
struct WorkspacesPage {
    chrome: Chrome,
    workspaces: Vec<(String, String)>,
}

/// `GET /console/workspaces`: the operator picks a workspace.
pub(super) async fn workspaces(axum::extract::State(state): ConsoleState, headers: HeaderMap) -> Response {
    let Some(sessions) = state.console_sessions() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let session = match sessions.session(&state, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return session::to_sign_in(),
        Err(message) => return error_page(StatusCode::SERVICE_UNAVAILABLE, None, None, &message),
    };
    if let Who::Admin { ws, .. } = &session.who {
        return see_other(&format!("/console/w/{}/integrations", path_part(ws)));
    }
    let list = match state.workspaces_handle().store().workspaces().await {
        Ok(list) => list,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&session), None, &e.to_string()),
    };
    let chrome = Chrome {
        title: "Workspaces".into(),
        ws: None,
        section: "",
        csrf: session.csrf.clone(),
        operator: true,
        notice: None,
        error: None,
    };
    let workspaces = list.into_iter().map(|w| (w.id, w.display_name)).collect();
    render(StatusCode::OK, &WorkspacesPage { chrome, workspaces })
}

// ---------------------------------------------------------------- integrations

struct IntegrationRow {
    name: String,
    kind: String,
    key: String,
    timeout: String,
}

#[derive(Template)]
#[template(path = "integrations.html")]
struct IntegrationsPage {
    chrome: Chrome,
    rows: Vec<IntegrationRow>,
}

fn key_text(view: &Value) -> String {
    match view["api_key"]["fingerprint"].as_str() {
        Some(fp) if view["api_key"]["set"] == true => format!("set · fingerprint {fp}"),
        _ => "not set".to_string(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `GET …/integrations`.
pub(super) async fn integrations(
    axum::extract::State(state): ConsoleState,
    Signed { session, ws }: Signed,
) -> Response {
    let mut chrome = Chrome::new(&session, &ws, "integrations", "Integrations");
    let rows = rows(state.workspaces_handle().integrations(&ws).await, &mut chrome, |v| {
        IntegrationRow {
            name: text(&v["name"]),
            kind: text(&v["kind"]),
            key: key_text(v),
            timeout: format!("{} s", text(&v["timeout"])),
        }
    });
    render(StatusCode::OK, &IntegrationsPage { chrome, rows })
}

/// A choice in a `<select>`.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "integration.html")]
struct IntegrationPage {
    chrome: Chrome,
    is_new: bool,
    name: String,
    kind: String,
    components: Vec<Choice>,
    key_help: String,
    timeout: String,
    base_url: String,
    invalid: String,
    test: Option<TestResult>,
}

/// What the Test button found.
struct TestResult {
    ok: bool,
    title: String,
    message: String,
    what_to_do: String,
}

/// The integration form, filled from `view` (an existing integration) or
/// from the submitted `form`.
async fn integration_page(
    state: &WorkspaceServeState,
    session: &Session,
    ws: &str,
    name: Option<&str>,
    view: Option<&Value>,
    form: Option<&Fields>,
) -> IntegrationPage {
    let title = match name {
        Some(n) => format!("Integration {n}"),
        None => "Add Integration".to_string(),
    };
    let get = |key: &str| -> String {
        match (form, view) {
            (Some(f), _) => field(f, key).to_string(),
            (None, Some(v)) => text(&v[key]),
            (None, None) => String::new(),
        }
    };
    let chosen = get("component");
    let kind = "shipstation".to_string();
    let mut components: Vec<Choice> = state
        .workspaces_handle()
        .store()
        .components()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.kind == kind)
        .rev()
        .map(|c| {
            let value = format!("sha256:{}", c.sha256);
            Choice {
                label: format!(
                    "{} {} (sha256:{}…)",
                    c.kind,
                    text(&c.manifest["version"]),
                    &c.sha256[..12]
                ),
                selected: value == chosen,
                value,
            }
        })
        .collect();
    if !components.iter().any(|c| c.selected) {
        if let Some(first) = components.first_mut() {
            first.selected = true;
        }
    }
    let timeout = match get("timeout") {
        t if t.is_empty() => actionbox_runtime::deadline::DEFAULT_TIMEOUT_SECS.to_string(),
        t => t,
    };
    IntegrationPage {
        chrome: Chrome::new(session, ws, "integrations", title),
        is_new: name.is_none(),
        name: name.map_or_else(|| get("name"), str::to_string),
        kind,
        components,
        key_help: match view {
            Some(v) if v["api_key"]["set"] == true => {
                format!(
                    "{}; leave empty to keep it, or paste a new key to replace it.",
                    key_text(v)
                )
            }
            _ => "Your ShipStation API V2 key (Settings → Account → API Settings). It is never shown again.".into(),
        },
        timeout,
        base_url: get("base_url"),
        invalid: String::new(),
        test: None,
    }
}

/// `GET …/integrations/new`.
pub(super) async fn new_integration(
    axum::extract::State(state): ConsoleState,
    Signed { session, ws }: Signed,
) -> Response {
    let page = integration_page(&state, &session, &ws, None, None, None).await;
    render(StatusCode::OK, &page)
}

/// The admin API's body for the submitted integration form.
fn integration_body(form: &Fields) -> Result<Value, String> {
    let mut body = Map::new();
    body.insert("kind".into(), json!(field(form, "kind")));
    body.insert("component".into(), json!(field(form, "component")));
    let timeout = field(form, "timeout");
    if !timeout.is_empty() {
        let secs: u64 = timeout
            .parse()
            .map_err(|_| "integration field `timeout`: give a whole number of seconds from 10 to 180".to_string())?;
        body.insert("timeout".into(), json!(secs));
    }
    let base_url = field(form, "base_url");
    if !base_url.is_empty() {
        body.insert("base_url".into(), json!(base_url));
    }
    let key = field(form, "api_key");
    if !key.is_empty() {
        body.insert("api_key".into(), json!(key));
    }
    Ok(Value::Object(body))
}

async fn save_integration(
    state: WorkspaceServeState,
    name: Option<String>,
    Signed { session, ws }: Signed,
    form: Fields,
) -> Response {
    if !session.check_csrf(&form) {
        return csrf_refused(&session, &ws);
    }
    let target = name.clone().unwrap_or_else(|| field(&form, "name").to_string());
    // Adding never replaces: the admin API's PUT would.
    let taken = name.is_none() && current_integration(&state, &ws, &target).await.is_some();
    let result = match integration_body(&form) {
        Ok(_) if taken => Err(format!(
            "integration field `name`: an integration named `{target}` already exists; pick another name, or open \
             it from the list to edit it"
        )),
        Ok(body) => state
            .workspaces_handle()
            .put_integration(&ws, &target, body, &session.actor())
            .await
            .map_err(message_of),
        Err(message) => Err(message),
    };
    match result {
        Ok(_) => see_other(&format!(
            "/console/w/{}/integrations/{}?saved=1",
            path_part(&ws),
            path_part(&target)
        )),
        Err(message) => {
            let existing = match &name {
                Some(n) => current_integration(&state, &ws, n).await,
                None => None,
            };
            let mut page =
                integration_page(&state, &session, &ws, name.as_deref(), existing.as_ref(), Some(&form)).await;
            page.invalid = invalid_field(&message).unwrap_or_default();
            page.chrome.error = Some(message);
            render(StatusCode::BAD_REQUEST, &page)
        }
    }
}

/// `POST …/integrations/new`.
pub(super) async fn create_integration(
    axum::extract::State(state): ConsoleState,
    signed: Signed,
    Form(form): Form<Fields>,
) -> Response {
    save_integration(state, None, signed, form).await
}

/// `POST …/integrations/{name}`: the edit form.
pub(super) async fn update_integration(
    axum::extract::State(state): ConsoleState,
    UrlPath((_, name)): UrlPath<(String, String)>,
    signed: Signed,
    Form(form): Form<Fields>,
) -> Response {
    save_integration(state, Some(name), signed, form).await
}

async fn current_integration(state: &WorkspaceServeState, ws: &str, name: &str) -> Option<Value> {
    state
        .workspaces_handle()
        .integrations(ws)
        .await
        .ok()?
        .into_iter()
        .find(|v| v["name"] == name)
}

#[derive(serde::Deserialize)]
pub(super) struct SavedQuery {
    saved: Option<String>,
}

/// `GET …/integrations/{name}`: its settings, Test and Delete.
pub(super) async fn integration(
    axum::extract::State(state): ConsoleState,
    UrlPath((_, name)): UrlPath<(String, String)>,
    Query(q): Query<SavedQuery>,
    Signed { session, ws }: Signed,
) -> Response {
    let Some(view) = current_integration(&state, &ws, &name).await else {
        return error_page(
            StatusCode::NOT_FOUND,
            Some(&session),
            Some(&ws),
            &format!("This workspace has no integration named `{name}`."),
        );
    };
    let mut page = integration_page(&state, &session, &ws, Some(&name), Some(&view), None).await;
    if q.saved.is_some() {
        page.chrome.notice = Some(format!("Saved integration {name}."));
    }
    render(StatusCode::OK, &page)
}

/// `POST …/integrations/{name}/test`: the Test button.
pub(super) async fn test_integration(
    axum::extract::State(state): ConsoleState,
    UrlPath((_, name)): UrlPath<(String, String)>,
    Signed { session, ws }: Signed,
    Form(form): Form<Fields>,
) -> Response {
    if !session.check_csrf(&form) {
        return csrf_refused(&session, &ws);
    }
    let Some(view) = current_integration(&state, &ws, &name).await else {
        return error_page(
            StatusCode::NOT_FOUND,
            Some(&session),
            Some(&ws),
            &format!("This workspace has no integration named `{name}`."),
        );
    };
    let outcome = test_call(&state, &ws, &name, |_, report| match &report.outcome {
        Ok(v) => TestResult {
            ok: true,
            title: "OK".into(),
            message: v["message"].as_str().unwrap_or("the key works").to_string(),
            what_to_do: String::new(),
        },
        Err(e) => TestResult {
            ok: false,
            title: e.kind().to_string(),
            message: e.message().to_string(),
            what_to_do: super::trace::what_to_do(e.kind()).to_string(),
        },
    })
    .await;
    let test = match outcome {
        Ok(t) => t,
        Err(refused) => {
            let kind = refused.error["kind"].as_str().unwrap_or("host").to_string();
            TestResult {
                ok: false,
                what_to_do: super::trace::what_to_do(&kind).to_string(),
                title: kind,
                message: refused.error["message"].as_str().unwrap_or_default().to_string(),
            }
        }
    };
    let mut page = integration_page(&state, &session, &ws, Some(&name), Some(&view), None).await;
    page.test = Some(test);
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDeletePage {
    chrome: Chrome,
    what: &'static str,
    name: String,
    back: String,
}

async fn confirm_delete(
    name: String,
    Signed { session, ws }: Signed,
    what: &'static str,
    section: &'static str,
) -> Response {
    let chrome = Chrome::new(&session, &ws, section, format!("Delete {what} {name}?"));
    let back = format!("/console/w/{}/{section}/{}", path_part(&ws), path_part(&name));
    render(
        StatusCode::OK,
        &ConfirmDeletePage {
            chrome,
            what,
            name,
            back,
        },
    )
}

/// `GET …/integrations/{name}/delete`: are you sure?
pub(super) async fn confirm_delete_integration(
    UrlPath((_, name)): UrlPath<(String, String)>,
    signed: Signed,
) -> Response {
    confirm_delete(name, signed, "integration", "integrations").await
}

/// `GET …/actions/{name}/delete`.
pub(super) async fn confirm_delete_action(UrlPath((_, name)): UrlPath<(String, String)>, signed: Signed) -> Response {
    confirm_delete(name, signed, "action", "actions").await
}

async fn delete(
    state: WorkspaceServeState,
    name: String,
    Signed { session, ws }: Signed,
    form: Fields,
    what: &'static str,
) -> Response {
    if !session.check_csrf(&form) {
        return csrf_refused(&session, &ws);
    }
    let workspaces = state.workspaces_handle();
    let (result, section) = if what == "integration" {
        (
            workspaces.delete_integration(&ws, &name, &session.actor()).await,
            "integrations",
        )
    } else {
        (workspaces.delete_action(&ws, &name, &session.actor()).await, "actions")
    };
    match result {
        Ok(()) => see_other(&format!("/console/w/{}/{section}", path_part(&ws))),
        Err(e) => error_page(StatusCode::CONFLICT, Some(&session), Some(&ws), &message_of(e)),
    }
}

/// `POST …/integrations/{name}/delete`.
pub(super) async fn delete_integration(
    axum::extract::State(state): ConsoleState,
    UrlPath((_, name)): UrlPath<(String, String)>,
    signed: Signed,
    Form(form): Form<Fields>,
) -> Response {
    delete(state, name, signed, form, "integration").await
}

/// `POST …/actions/{name}/delete`.
pub(super) async fn delete_action(
    axum::extract::State(state): ConsoleState,
    UrlPath((_, name)): UrlPath<(String, String)>,
    signed: Signed,
    Form(form): Form<Fields>,
) -> Response {
    delete(state, name, signed, form, "action").await
}

// ---------------------------------------------------------------- actions

struct ActionRow {
    name: String,
    integration: String,
    method: String,
    execution: String,
    trigger: String,
    default: bool,
}

#[derive(Template)]
#[template(path = "actions.html")]
struct ActionsPage {
    chrome: Chrome,
    rows: Vec<ActionRow>,
}

/// How an execution or trigger value reads.
fn label(value: &str) -> String {
    value.replace('-', " ")
}

/// `GET …/actions`.
pub(super) async fn actions(axum::extract::State(state): ConsoleState, Signed { session, ws }: Signed) -> Response {
    let mut chrome = Chrome::new(&session, &ws, "actions", "Actions");
    let rows = rows(state.workspaces_handle().actions(&ws).await, &mut chrome, |a| {
        ActionRow {
            name: text(&a["name"]),
            integration: text(&a["integration"]),
            method: text(&a["method"]),
            execution: label(&text(&a["execution"])),
            trigger: label(&text(&a["trigger"])),
            default: a["default"] == true,
        }
    });
    render(StatusCode::OK, &ActionsPage { chrome, rows })
}

/// Methods of one integration, for the picker.
struct MethodGroup {
    integration: String,
    methods: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "action_pick.html")]
struct ActionPickPage {
    chrome: Chrome,
    integrations: Vec<String>,
    groups: Vec<MethodGroup>,
}

/// One parameter's input.
pub(super) struct ParamField {
    /// The parameter's name.
    pub name: String,
    /// Its value in the form.
    pub value: String,
    /// Its default description.
    pub placeholder: String,
    /// Whether the method requires it.
    pub required: bool,
}

#[derive(Template)]
#[template(path = "action.html")]
struct ActionPage {
    chrome: Chrome,
    is_new: bool,
    post: String,
    name: String,
    integration: String,
    method: String,
    description: String,
    description_placeholder: String,
    execution: String,
    trigger: String,
    params: Vec<ParamField>,
    response_instructions: String,
    preview: Option<String>,
    invalid: String,
}

#[derive(serde::Deserialize)]
pub(super) struct PickQuery {
    integration: Option<String>,
    method: Option<String>,
}

/// The method `method` of integration `integration` in `ws`'s catalog.
async fn method_of(
    state: &WorkspaceServeState,
    ws: &str,
    integration: &str,
    method: &str,
) -> Result<actionbox_runtime::manifest::MethodSpec, String> {
    let live = state.workspaces_handle().live(ws).await.map_err(message_of)?;
    live.catalog
        .methods()
        .into_iter()
        .find(|(i, m)| i == integration && (m.name == method || m.display_name == method))
        .map(|(_, m)| m)
        .ok_or_else(|| format!("integration `{integration}` has no method `{method}`; pick one from the list"))
}

/// `GET …/actions/new`: pick integration and method, then the form.
pub(super) async fn new_action(
    axum::extract::State(state): ConsoleState,
    Query(q): Query<PickQuery>,
    Signed { session, ws }: Signed,
) -> Response {
    if let (Some(integration), Some(method)) = (&q.integration, &q.method) {
        return match method_of(&state, &ws, integration, method).await {
            Ok(spec) => {
                let page = action_page(&session, &ws, None, integration, &spec, None, None);
                render(StatusCode::OK, &page)
            }
            Err(message) => pick_page(&state, &session, &ws, Some(message)).await,
        };
    }
    pick_page(&state, &session, &ws, None).await
}

async fn pick_page(state: &WorkspaceServeState, session: &Session, ws: &str, error: Option<String>) -> Response {
    let mut chrome = Chrome::new(session, ws, "actions", "Add Action");
    chrome.error = error;
    let methods = match state.workspaces_handle().live(ws).await {
        Ok(live) => live.catalog.methods(),
        Err(e) => {
            chrome.error = Some(message_of(e));
            Vec::new()
        }
    };
    let mut groups: Vec<MethodGroup> = Vec::new();
    for (integration, m) in methods {
        match groups.iter_mut().find(|g| g.integration == integration) {
            Some(g) => g.methods.push((m.name, m.display_name)),
            None => groups.push(MethodGroup {
                integration,
                methods: vec![(m.name, m.display_name)],
            }),
        }
    }
    let integrations = groups.iter().map(|g| g.integration.clone()).collect();
    let status = if chrome.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        status,
        &ActionPickPage {
            chrome,
            integrations,
            groups,
        },
    )
}

/// The action form for `spec`, filled from `existing` (its admin view) or
/// the submitted `form`.
fn action_page(
    session: &Session,
    ws: &str,
    name: Option<&str>,
    integration: &str,
    spec: &actionbox_runtime::manifest::MethodSpec,
    existing: Option<&Value>,
    form: Option<&Fields>,
) -> ActionPage {
    let get = |key: &str| -> String {
        match (form, existing) {
            (Some(f), _) => field(f, key).to_string(),
            (None, Some(v)) => text(&v[key]),
            (None, None) => String::new(),
        }
    };
    let params = spec
        .params
        .iter()
        .map(|p| ParamField {
            value: match (form, existing) {
                (Some(f), _) => field(f, &format!("param-{}", p.name)).to_string(),
                (None, Some(v)) => text(&v["parameters"][&p.name]["description"]),
                (None, None) => String::new(),
            },
            placeholder: p.description.clone(),
            required: p.required,
            name: p.name.clone(),
        })
        .collect();
    let or = |v: String, default: &str| if v.is_empty() { default.to_string() } else { v };
    let post = match name {
        Some(n) => format!("/console/w/{}/actions/{}", path_part(ws), path_part(n)),
        None => format!(
            "/console/w/{}/actions/new?integration={}&method={}",
            path_part(ws),
            path_part(integration),
            path_part(&spec.name)
        ),
    };
    ActionPage {
        chrome: Chrome::new(
            session,
            ws,
            "actions",
            name.map_or_else(|| "Add Action".to_string(), |n| format!("Action {n}")),
        ),
        is_new: name.is_none(),
        post,
        name: name.map_or_else(|| get("name"), str::to_string),
        integration: integration.to_string(),
        method: spec.name.clone(),
        description: get("description"),
        description_placeholder: spec.description.clone(),
        execution: or(get("execution"), "during-interaction"),
        trigger: or(get("trigger"), "inbound"),
        params,
        response_instructions: get("response_instructions"),
        preview: None,
        invalid: String::new(),
    }
}

/// The admin API's body for the submitted action form.
fn action_body(form: &Fields, integration: &str, spec: &actionbox_runtime::manifest::MethodSpec) -> Value {
    let mut body = Map::new();
    body.insert("integration".into(), json!(integration));
    body.insert("method".into(), json!(spec.name));
    for key in ["description", "response_instructions"] {
        let v = field(form, key);
        if !v.is_empty() {
            body.insert(key.into(), json!(v));
        }
    }
    body.insert("execution".into(), json!(field(form, "execution")));
    body.insert("trigger".into(), json!(field(form, "trigger")));
    let parameters: Map<String, Value> = spec
        .params
        .iter()
        .filter_map(|p| {
            let d = field(form, &format!("param-{}", p.name));
            (!d.is_empty()).then(|| (p.name.clone(), json!({ "description": d })))
        })
        .collect();
    if !parameters.is_empty() {
        body.insert("parameters".into(), Value::Object(parameters));
    }
    Value::Object(body)
}

/// Preview or save the action form.
async fn submit_action(
    state: WorkspaceServeState,
    name: Option<String>,
    pick: PickQuery,
    Signed { session, ws }: Signed,
    form: Fields,
) -> Response {
    if !session.check_csrf(&form) {
        return csrf_refused(&session, &ws);
    }
    // Which method: the existing action's, or the picked one.
    let existing = match &name {
        Some(n) => match state.workspaces_handle().actions(&ws).await {
            Ok(list) => list.into_iter().find(|a| a["name"] == n.as_str()),
            Err(e) => {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(&session),
                    Some(&ws),
                    &message_of(e),
                )
            }
        },
        None => None,
    };
    let (integration, method) = match (&existing, &pick.integration, &pick.method) {
        (Some(a), _, _) => (text(&a["integration"]), text(&a["method"])),
        (None, Some(i), Some(m)) => (i.clone(), m.clone()),
        _ => {
            return pick_page(
                &state,
                &session,
                &ws,
                Some("Pick an integration and a method first.".into()),
            )
            .await
        }
    };
    let spec = match method_of(&state, &ws, &integration, &method).await {
        Ok(s) => s,
        Err(message) => return pick_page(&state, &session, &ws, Some(message)).await,
    };
    let target = name.clone().unwrap_or_else(|| field(&form, "name").to_string());
    let body = action_body(&form, &integration, &spec);
    let mut page = action_page(&session, &ws, name.as_deref(), &integration, &spec, None, Some(&form));
    let workspaces = state.workspaces_handle();
    // Adding never replaces a custom action (a default one it may: that is
    // how a default is customised).
    if name.is_none() && field(&form, "intent") == "save" {
        let custom_exists = match workspaces.actions(&ws).await {
            Ok(list) => list
                .iter()
                .any(|a| a["name"] == target.as_str() && a["default"] == false),
            Err(e) => {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(&session),
                    Some(&ws),
                    &message_of(e),
                )
            }
        };
        if custom_exists {
            page.invalid = "name".into();
            page.chrome.error = Some(format!(
                "action field `name`: an action named `{target}` already exists; pick another name, or open it from \
                 the list to edit it"
            ));
            return render(StatusCode::CONFLICT, &page);
        }
    }
    if field(&form, "intent") == "save" {
        match workspaces.put_action(&ws, &target, body, &session.actor()).await {
            Ok(_) => {
                return see_other(&format!(
                    "/console/w/{}/actions/{}?saved=1",
                    path_part(&ws),
                    path_part(&target)
                ))
            }
            Err(e) => {
                let message = message_of(e);
                page.invalid = invalid_field(&message).unwrap_or_default();
                page.chrome.error = Some(message);
                return render(StatusCode::BAD_REQUEST, &page);
            }
        }
    }
    match workspaces.preview_action(&ws, &target, body).await {
        Ok(tool) => {
            page.preview = Some(serde_json::to_string_pretty(&tool.mcp()).unwrap_or_default());
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            let message = message_of(e);
            page.invalid = invalid_field(&message).unwrap_or_default();
            page.chrome.error = Some(message);
            render(StatusCode::BAD_REQUEST, &page)
        }
    }
}

/// `POST …/actions/new?integration=…&method=…`.
pub(super) async fn create_action(
    axum::extract::State(state): ConsoleState,
    Query(pick): Query<PickQuery>,
    signed: Signed,
    Form(form): Form<Fields>,
) -> Response {
    submit_action(state, None, pick, signed, form).await
}

/// `POST …/actions/{name}`.
pub(super) async fn update_action(
    axum::extract::State(state): ConsoleState,
    UrlPath((_, name)): UrlPath<(String, String)>,
    signed: Signed,
    Form(form): Form<Fields>,
) -> Response {
    let pick = PickQuery {
        integration: None,
        method: None,
    };
    submit_action(state, Some(name), pick, signed, form).await
}

/// `GET …/actions/{name}`: the form filled, with its preview.
pub(super) async fn action(
    axum::extract::State(state): ConsoleState,
    UrlPath((_, name)): UrlPath<(String, String)>,
    Query(q): Query<SavedQuery>,
    Signed { session, ws }: Signed,
) -> Response {
    let live = match state.workspaces_handle().live(&ws).await {
        Ok(l) => l,
        Err(e) => {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&session),
                Some(&ws),
                &message_of(e),
            )
        }
    };
    let view = match state.workspaces_handle().actions(&ws).await {
        Ok(list) => list.into_iter().find(|a| a["name"] == name.as_str()),
        Err(e) => {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&session),
                Some(&ws),
                &message_of(e),
            )
        }
    };
    let (Some(view), Some(catalog_action)) = (view, live.catalog.action(&name)) else {
        return error_page(
            StatusCode::NOT_FOUND,
            Some(&session),
            Some(&ws),
            &format!("This workspace has no action named `{name}`."),
        );
    };
    let integration = text(&view["integration"]);
    let mut page = action_page(
        &session,
        &ws,
        Some(&name),
        &integration,
        &catalog_action.method,
        Some(&view),
        None,
    );
    if let Some(tool) = live.catalog.tools(None, None).into_iter().find(|t| t.name == name) {
        page.preview = Some(serde_json::to_string_pretty(&tool.mcp()).unwrap_or_default());
    }
    if q.saved.is_some() {
        page.chrome.notice = Some(format!("Saved action {name}."));
    }
    if view["default"] == true {
        page.chrome.notice = Some(
            "This is a default action of its integration. Saving it stores your version, which replaces the default."
                .into(),
        );
    }
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_an_error_names_is_found() {
        assert_eq!(
            invalid_field("integration `shop` field `timeout`: must be 10 to 180").as_deref(),
            Some("timeout")
        );
        assert_eq!(invalid_field("no field here"), None);
    }
}
