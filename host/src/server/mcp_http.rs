//! Remote MCP: a catalog's interaction actions over Streamable HTTP (rmcp,
//! stateless, JSON answers), at `/v1/workspaces/{ws}/mcp` under `--store` and
//! `/mcp` under `--config`.
//!
//! rmcp speaks the protocol; it has no authorization of its own, so every
//! request passes these checks first, in this order, and is answered by
//! actionbox when one fails:
//!
//! | check | refused with |
//! |---|---|
//! | `Host` is the `--public-url`'s (DNS rebinding) | 403 `host-not-allowed` |
//! | `Origin`, when sent, is the public URL's or an `--allowed-origin` | 403 `origin-not-allowed` |
//! | a bearer token: the mode's own (workspace token, `serve` token) or an OAuth JWT for exactly this URL ([`super::oauth`]) | 401 + `WWW-Authenticate: Bearer resource_metadata=…, scope=…` |
//! | the body is at most [`MAX_MCP_BODY_BYTES`] | 413 |
//! | the token's scope covers the JSON-RPC method (`tools/call` needs `actions:call`, the rest `actions:list`) | 403 + `error="insufficient_scope"` |
//!
//! The endpoint is an OAuth 2.1 resource server: RFC 9728 metadata for each
//! MCP URL is at `/.well-known/oauth-protected-resource` + its path, and names
//! the `--oauth-issuer` when there is one. Tokens are checked here and go
//! nowhere else: an action's outbound requests carry only what its
//! integration's kind puts there.
//!
//! No session state is kept (rmcp's stateless mode, no `Mcp-Session-Id`): any
//! replica answers any request, and a client costs nothing between requests.
//! 2026-07-28 clients discover the server (`server/discover`) and send
//! `MCP-Protocol-Version` on every request, which rmcp checks against the
//! request's `_meta`; 2025-11-25 (and 2025-06-18, 2025-03-26) clients
//! initialize, statelessly. A tool list carries `ttlMs` (`--mcp-tools-ttl`),
//! the longest an admin change takes to reach a client that caches it; a
//! 2026-07-28 client may also listen for the change (`crate::mcp`).

// Checks return the finished answer as their error so a handler can return
// it at once (as in `workspace_api.rs`).
#![allow(clippy::result_large_err)]

use super::oauth::{Scopes, TokenIssuer, TokenRejected, SCOPES_SUPPORTED, SCOPE_CALL, SCOPE_LIST};
use crate::catalog::ActionCatalog;
use crate::mcp::{ActionRunner, CatalogWatch, ListChanges, McpActions};
use crate::present::problem;
use anyhow::{bail, Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest MCP message accepted, in bytes: a tool call's arguments are small
/// (the same bound as the invoke route's body).
pub const MAX_MCP_BODY_BYTES: usize = super::MAX_REQUEST_BODY_BYTES;
/// Default `--mcp-tools-ttl`: a minute of caching saves clients a list per
/// turn, and an admin change reaches them within it.
pub const DEFAULT_TOOLS_TTL: Duration = Duration::from_secs(60);
/// The RFC 9728 well-known prefix.
pub const METADATA_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// How the MCP endpoints are reached and who may call them (`serve`'s flags).
#[derive(Debug, Clone)]
pub struct McpHttpOptions {
    /// `--public-url`: the origin clients reach this server at, or `None`
    /// for `http://` + the listener's address.
    pub public_url: Option<String>,
    /// `--allowed-origin`: browser origins allowed besides the public URL's.
    pub allowed_origins: Vec<String>,
    /// `--oauth-issuer` and `--oauth-jwks`.
    pub oauth: Option<(String, PathBuf)>,
    /// `--mcp-tools-ttl`.
    pub tools_ttl: Duration,
    /// How long the server lets an answer go without progress
    /// (`--header-read-timeout`): a listen stream sends a keep-alive at half
    /// of it, so an idle listen is not taken for a client that stopped
    /// reading.
    pub write_timeout: Duration,
}

/// The public URL: where clients reach the server, as RFC 9728 resource
/// identifiers and JWT audiences name it.
#[derive(Debug, Clone)]
struct PublicUrl {
    /// `scheme://host[:port]`, lower case, without a default port.
    origin: String,
    /// `Host` header values that reach it.
    hosts: Vec<String>,
}

impl PublicUrl {
    fn parse(url: &str) -> Result<Self> {
        let Some(origin) = normalized_origin(url.trim_end_matches('/')) else {
            bail!(
                "--public-url {url:?} must be an origin: http(s)://host[:port], without a path, query or user \
                 (e.g. https://actions.example.com)"
            );
        };
        let uri: Uri = origin.parse().context("--public-url")?;
        let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let mut hosts = vec![authority.clone(), format!("{host}:{port}")];
        if uri.port_u16().is_none() {
            hosts.push(host.clone());
        }
        // A loopback URL is reached under any of its loopback names.
        if ["127.0.0.1", "localhost", "[::1]"].contains(&host.as_str()) {
            for name in ["127.0.0.1", "localhost", "[::1]"] {
                hosts.push(format!("{name}:{port}"));
            }
        }
        hosts.sort();
        hosts.dedup();
        Ok(Self { origin, hosts })
    }
}

/// `scheme://host[:port]` of `url` in lower case without the scheme's
/// default port, or `None` when it is not an http(s) origin.
fn normalized_origin(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some(match authority.port_u16() {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// What a caller may do on one MCP URL.
#[derive(Debug, Clone, Copy)]
pub struct McpAccess {
    /// May discover the server and list tools.
    pub may_list: bool,
    /// May call tools.
    pub may_call: bool,
}

impl McpAccess {
    /// Everything: the mode's own tokens with their assistant rights.
    pub const ALL: Self = Self {
        may_list: true,
        may_call: true,
    };

    fn of(scopes: &Scopes) -> Self {
        let may_call = scopes.contains(SCOPE_CALL);
        Self {
            may_list: may_call || scopes.contains(SCOPE_LIST),
            may_call,
        }
    }
}

/// The MCP endpoints of one server: the checks before rmcp, and rmcp.
pub struct McpHttp {
    public: PublicUrl,
    allowed_origins: Vec<String>,
    issuer: Option<TokenIssuer>,
    tools_ttl: Duration,
    rmcp: StreamableHttpServerConfig,
    /// The mode's own token, as a 401 names it.
    own_token: &'static str,
    /// Listens open at once ([`crate::mcp::MAX_LISTENS`]).
    listen_slots: Arc<tokio::sync::Semaphore>,
}

impl McpHttp {
    /// The endpoints for `options`, on a server listening at `listen`.
    pub fn new(options: &McpHttpOptions, listen: std::net::SocketAddr) -> Result<Self> {
        let public = match &options.public_url {
            Some(url) => PublicUrl::parse(url)?,
            // Listening on every address says nothing of the name clients
            // use: until the operator says it, MCP answers loopback names.
            None if listen.ip().is_unspecified() => {
                tracing::warn!(
                    "no --public-url: MCP answers only to http://127.0.0.1:{0} (and localhost:{0}); pass                      --public-url with the URL clients use",
                    listen.port()
                );
                PublicUrl::parse(&format!("http://127.0.0.1:{}", listen.port()))?
            }
            None => PublicUrl::parse(&format!("http://{listen}"))?,
        };
        let mut allowed_origins = vec![public.origin.clone()];
        for o in &options.allowed_origins {
            match normalized_origin(o.trim_end_matches('/')) {
                Some(o) => allowed_origins.push(o),
                None => bail!("--allowed-origin {o:?} must be an origin: http(s)://host[:port]"),
            }
        }
        let issuer = match &options.oauth {
            Some((issuer, jwks)) => Some(TokenIssuer::load(issuer, jwks)?),
            None => None,
        };
        // Host and Origin are checked before rmcp sees a request (with our
        // answers); rmcp's own copies of those checks are off so there is
        // one rule, not two that could disagree.
        let rmcp = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(Some(options.write_timeout / 2))
            .with_sse_retry(None)
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_max_request_body_bytes(MAX_MCP_BODY_BYTES);
        Ok(Self {
            public,
            allowed_origins,
            issuer,
            tools_ttl: options.tools_ttl,
            rmcp,
            own_token: "a bearer token",
            listen_slots: Arc::new(tokio::sync::Semaphore::new(crate::mcp::MAX_LISTENS)),
        })
    }

    /// Name the serving mode's own token in 401 answers ("a workspace token
    /// with the assistant scope").
    pub fn with_own_token(mut self, own_token: &'static str) -> Self {
        self.own_token = own_token;
        self
    }

    /// The public URL of the MCP endpoint at `path`: its RFC 8707 resource
    /// identifier, and the audience its JWTs must name.
    pub fn resource(&self, path: &str) -> String {
        format!("{}{path}", self.public.origin)
    }

    /// Refuse a request that came through another name (`Host`) or from a
    /// browser page of another origin (`Origin`).
    pub fn check_host_and_origin(&self, headers: &HeaderMap) -> Result<(), Response> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase);
        if !host.as_ref().is_some_and(|h| self.public.hosts.contains(h)) {
            return Err(refused(
                StatusCode::FORBIDDEN,
                "host-not-allowed",
                &format!(
                    "this server answers MCP as {} only (Host header); if that is not how clients reach it, start it \
                     with --public-url",
                    self.public.origin
                ),
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let allowed = origin
                .to_str()
                .ok()
                .and_then(normalized_origin)
                .is_some_and(|o| self.allowed_origins.contains(&o));
            if !allowed {
                return Err(refused(
                    StatusCode::FORBIDDEN,
                    "origin-not-allowed",
                    "requests from this page's origin are refused; the operator allows browser origins with \
                     --allowed-origin",
                ));
            }
        }
        Ok(())
    }

    /// 401 for the MCP URL at `path`: no token, or `rejected` (a token that
    /// is not one), with the RFC 9728 / RFC 6750 challenge.
    pub fn unauthorized(&self, path: &str, rejected: Option<&str>) -> Response {
        let mut challenge = format!(
            "Bearer resource_metadata=\"{}\", scope=\"{}\"",
            self.metadata_url(path),
            SCOPES_SUPPORTED.join(" ")
        );
        if let Some(why) = rejected {
            challenge.push_str(&format!(", error=\"invalid_token\", error_description=\"{why}\""));
        }
        let message = match rejected {
            Some(why) => format!("the bearer token was refused: {why}"),
            None => format!(
                "send Authorization: Bearer <token>: {}{}",
                self.own_token,
                if self.issuer.is_some() {
                    ", or an access token of the authorization server named in this URL's resource metadata"
                } else {
                    ""
                }
            ),
        };
        with_challenge(
            refused(StatusCode::UNAUTHORIZED, "unauthenticated", &message),
            &challenge,
        )
    }

    /// 403: the token is good but its scope does not cover `scope`.
    pub fn insufficient_scope(&self, path: &str, scope: &str) -> Response {
        let challenge = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}\"",
            self.metadata_url(path)
        );
        with_challenge(
            refused(
                StatusCode::FORBIDDEN,
                "insufficient-scope",
                &format!("this token does not grant `{scope}` on this MCP URL; get one that does"),
            ),
            &challenge,
        )
    }

    /// What an OAuth access token grants on the MCP URL at `path`, or the 401.
    pub fn jwt_access(&self, token: &str, path: &str) -> Result<McpAccess, Response> {
        let Some(issuer) = &self.issuer else {
            return Err(self.unauthorized(path, Some("unknown, revoked or malformed token")));
        };
        match issuer.verify(token, &self.resource(path)) {
            Ok(scopes) => Ok(McpAccess::of(&scopes)),
            Err(rejected) => Err(self.unauthorized(path, Some(TokenRejected::description(rejected)))),
        }
    }

    fn metadata_url(&self, path: &str) -> String {
        format!("{}{METADATA_PREFIX}{path}", self.public.origin)
    }

    /// RFC 9728 protected-resource metadata of the MCP URL at `path`.
    pub fn metadata(&self, path: &str, name: &str) -> Response {
        let mut doc = json!({
            "resource": self.resource(path),
            "scopes_supported": SCOPES_SUPPORTED,
            "bearer_methods_supported": ["header"],
            "resource_name": name,
        });
        if let Some(issuer) = &self.issuer {
            doc["authorization_servers"] = json!([issuer.issuer()]);
        }
        let mut response = Json(doc).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
        response
    }

    /// Answer one MCP request with `catalog`'s tools, run by `runner`, for a
    /// caller with `access` — after the scope check, which needs the body.
    /// `watch` tells a listen when the catalog is replaced.
    pub async fn answer<R: ActionRunner + Clone>(
        &self,
        request: Request,
        path: &str,
        access: McpAccess,
        catalog: Arc<ActionCatalog>,
        runner: R,
        watch: Arc<dyn CatalogWatch>,
    ) -> Response {
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_MCP_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) if super::routes::caused_by::<super::connections::BodyTimeout>(&e) => {
                return refused(StatusCode::REQUEST_TIMEOUT, "request-timeout", &e.to_string())
            }
            Err(_) => {
                return refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid-input",
                    &format!("an MCP message may be at most {} KiB", MAX_MCP_BODY_BYTES / 1024),
                )
            }
        };
        let needs_call = calls_tools(&bytes);
        if needs_call && !access.may_call {
            return self.insufficient_scope(path, SCOPE_CALL);
        }
        if !access.may_list {
            return self.insufficient_scope(path, SCOPE_LIST);
        }
        let handler =
            McpActions::with_runner(catalog, runner, self.tools_ttl, access.may_call).with_list_changes(ListChanges {
                watch,
                slots: self.listen_slots.clone(),
            });
        let service = StreamableHttpService::new(
            move || Ok(handler.clone()),
            Arc::new(NeverSessionManager::default()),
            self.rmcp.clone(),
        );
        let response = service.handle(Request::from_parts(parts, Body::from(bytes))).await;
        response.map(Body::new)
    }
}

/// Whether the JSON-RPC message (or batch) in `body` calls a tool. A body
/// that is not JSON calls nothing (rmcp answers it with a parse error).
fn calls_tools(body: &Bytes) -> bool {
    let is_call = |m: &Value| m.get("method").and_then(Value::as_str) == Some("tools/call");
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(batch)) => batch.iter().any(is_call),
        Ok(message) => is_call(&message),
        Err(_) => false,
    }
}

fn refused(status: StatusCode, kind: &str, message: &str) -> Response {
    super::routes::error_response(status, problem(kind, message))
}

fn with_challenge(mut response: Response, challenge: &str) -> Response {
    // Every part of a challenge is ours (origins are normalized, ids checked,
    // descriptions are constants), so it is always a valid header value.
    if let Ok(value) = HeaderValue::from_str(challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(public: &str, allowed: &[&str]) -> McpHttp {
        let options = McpHttpOptions {
            public_url: Some(public.into()),
            allowed_origins: allowed.iter().map(|s| s.to_string()).collect(),
            oauth: None,
            tools_ttl: DEFAULT_TOOLS_TTL,
            write_timeout: Duration::from_secs(10),
        };
        McpHttp::new(&options, "127.0.0.1:1".parse().expect("addr")).expect("valid options")
    }

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("origin"));
        }
        h
    }

    #[test]
    fn only_the_public_names_and_origins_pass() {
        let mcp = endpoint("https://Actions.Example.com/", &["https://console.example.com:443"]);
        assert_eq!(mcp.resource("/mcp"), "https://actions.example.com/mcp");
        for ok in ["actions.example.com", "actions.example.com:443", "ACTIONS.example.com"] {
            assert!(mcp.check_host_and_origin(&headers(ok, None)).is_ok(), "{ok}");
        }
        for bad in ["evil.example", "actions.example.com:8443", "127.0.0.1:443", ""] {
            assert!(mcp.check_host_and_origin(&headers(bad, None)).is_err(), "{bad}");
        }
        let host = "actions.example.com";
        for ok in ["https://actions.example.com", "https://console.example.com"] {
            assert!(mcp.check_host_and_origin(&headers(host, Some(ok))).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "http://actions.example.com",
            "null",
            "https://console.example.com:444",
        ] {
            assert!(mcp.check_host_and_origin(&headers(host, Some(bad))).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_loopback_url_answers_to_every_loopback_name_on_its_port() {
        let mcp = endpoint("http://127.0.0.1:8080", &[]);
        for ok in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
            assert!(mcp.check_host_and_origin(&headers(ok, None)).is_ok(), "{ok}");
        }
        assert!(mcp.check_host_and_origin(&headers("localhost:8081", None)).is_err());
        assert!(mcp.check_host_and_origin(&headers("evil.example:8080", None)).is_err());
    }

    #[test]
    fn a_public_url_with_a_path_or_user_is_refused() {
        for bad in [
            "https://x.example/mcp",
            "ftp://x.example",
            "https://u@x.example",
            "x.example",
            "https://x?y",
        ] {
            let options = McpHttpOptions {
                public_url: Some(bad.into()),
                allowed_origins: vec![],
                oauth: None,
                tools_ttl: DEFAULT_TOOLS_TTL,
                write_timeout: Duration::from_secs(10),
            };
            assert!(
                McpHttp::new(&options, "127.0.0.1:1".parse().expect("addr")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_tools_call_needs_the_call_scope() {
        assert!(calls_tools(&Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#
        )));
        assert!(calls_tools(&Bytes::from_static(
            br#"[{"method":"tools/list"},{"method":"tools/call"}]"#
        )));
        assert!(!calls_tools(&Bytes::from_static(br#"{"method":"tools/list"}"#)));
        assert!(!calls_tools(&Bytes::from_static(b"not json")));
    }

    #[test]
    fn challenges_name_the_metadata_and_scopes() {
        let mcp = endpoint("https://a.example", &[]);
        let r = mcp.unauthorized("/v1/workspaces/w/mcp", Some(TokenRejected::Expired.description()));
        let challenge = r.headers()[header::WWW_AUTHENTICATE].to_str().expect("ascii");
        assert!(challenge.contains(
            "resource_metadata=\"https://a.example/.well-known/oauth-protected-resource/v1/workspaces/w/mcp\""
        ));
        assert!(challenge.contains("scope=\"actions:list actions:call\""));
        assert!(challenge.contains("error=\"invalid_token\""));
    }
}
