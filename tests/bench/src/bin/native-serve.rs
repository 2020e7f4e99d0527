//! The throughput baseline for `make bench`: the same HTTP front as
//! `actionbox serve` (axum on tokio, `POST /v1/actions/{name}/invoke` with a
//! bearer token, a 64 KiB body limit, a per-integration bound answering 429,
//! the same `{"result", "response_instructions"}` envelope) with trackOrder
//! run natively — the ShipStation core and a blocking HTTP client on tokio's
//! blocking pool — instead of in the sandbox.
//!
//! Usage: native-serve LISTEN_ADDR BASE_URL (token in ACTIONBOX_AUTH_TOKEN).

use actionbox_bench::{native_track_order, Connections};
use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::Semaphore;

const MAX_CONCURRENCY: usize = 64;
const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;

struct AppState {
    base_url: String,
    token: String,
    permits: Arc<Semaphore>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeBody {
    #[serde(default)]
    params: Value,
}

async fn require_token(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given != Some(state.token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"kind": "unauthenticated"}})),
        )
            .into_response();
    }
    next.run(request).await
}

async fn invoke(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Json<InvokeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"kind": "invalid-input"}})),
        )
            .into_response();
    };
    if name != "trackOrder" {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"kind": "unknown-action"}})),
        )
            .into_response();
    }
    let Ok(_permit) = state.permits.clone().try_acquire_owned() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": {"kind": "saturated"}})),
        )
            .into_response();
    };
    let base_url = state.base_url.clone();
    let input = body.params.to_string();
    let result =
        tokio::task::spawn_blocking(move || native_track_order(&base_url, &input, Connections::KeepAlive)).await;
    let (status, payload) = match result {
        Ok(Ok(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(v) => (StatusCode::OK, json!({ "result": v, "response_instructions": null })),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": { "kind": "internal", "message": e.to_string() } }),
            ),
        },
        Ok(Err(e)) => (
            StatusCode::BAD_GATEWAY,
            json!({ "error": { "kind": "upstream", "message": format!("{e:?}") } }),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": { "kind": "host", "message": e.to_string() } }),
        ),
    };
    (status, Json(payload)).into_response()
}

async fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(base_url)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: native-serve LISTEN_ADDR BASE_URL (token in ACTIONBOX_AUTH_TOKEN)");
    };
    let token = std::env::var("ACTIONBOX_AUTH_TOKEN").context("set ACTIONBOX_AUTH_TOKEN")?;
    let state = Arc::new(AppState {
        base_url,
        token,
        permits: Arc::new(Semaphore::new(MAX_CONCURRENCY)),
    });
    let app = Router::new()
        .route("/v1/actions/{name}/invoke", post(invoke))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token))
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("native-serve: {e:#}");
            ExitCode::FAILURE
        }
    }
}
