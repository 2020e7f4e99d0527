//! Who is signed in to the console, and the proof that a form came from a
//! console page.
//!
//! A session is a cookie holding the token the person signed in with, its
//! CSRF value and its expiry, sealed (AES-256-GCM) under a key derived from
//! the master key ([`actionbox_store::ValueSealer`]): the browser can neither
//! read nor alter it, every replica with the same master key opens it, and
//! nothing is kept server-side. Every request re-checks the token, so a
//! revoked token ends its sessions at once. The cookie is `HttpOnly`
//! (scripts cannot read it), `SameSite=Strict` (no other site's page can send
//! it), `Path=/console`, and `Secure` when the public URL is https.
//!
//! CSRF: every POST form carries the session's CSRF value, compared in
//! constant time; the sign-in form (no session yet) uses a double-submit
//! cookie. A form without the right value is refused before anything runs.

use super::super::workspace_api::{WorkspaceServeState, OPERATOR_ACTOR};
use actionbox_store::{Scope, ValueSealer};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "abx_session";
/// The sign-in form's double-submit cookie.
pub const SIGN_IN_CSRF_COOKIE: &str = "abx_csrf";
/// How long a session lasts: a working day.
const SESSION_LIFETIME_MS: i64 = 8 * 3600 * 1000;
/// Largest cookie value opened, in bytes (a session is about 500).
const MAX_COOKIE_BYTES: usize = 4096;

/// The console's session keys.
pub struct Sessions {
    sealer: ValueSealer,
    /// Mark cookies `Secure` (the public URL is https).
    secure: bool,
}

/// What the sealed cookie holds.
#[derive(Serialize, Deserialize)]
struct Sealed {
    token: String,
    csrf: String,
    exp_ms: i64,
}

impl Drop for Sealed {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The platform's operator: every workspace.
    Operator,
    /// A workspace token with the `admin` scope: its workspace.
    Admin {
        /// The workspace.
        ws: String,
        /// The token's public id, for the audit log.
        token_id: String,
    },
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub who: Who,
    /// The value every form of this session carries.
    pub csrf: String,
}

impl Session {
    /// The audit log's actor.
    pub fn actor(&self) -> String {
        match &self.who {
            Who::Operator => OPERATOR_ACTOR.to_string(),
            Who::Admin { token_id, .. } => format!("token:{token_id}"),
        }
    }

    /// Whether this session may administer workspace `ws`.
    pub fn may(&self, ws: &str) -> bool {
        match &self.who {
            Who::Operator => true,
            Who::Admin { ws: own, .. } => own == ws,
        }
    }

    /// Refuse a form that does not carry this session's CSRF value.
    pub fn check_csrf(&self, form: &HashMap<String, String>) -> bool {
        form.get("csrf")
            .is_some_and(|given| crate::server::same_token(given, &self.csrf))
    }
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Sessions {
    /// Sessions sealed with `sealer`; `secure` marks cookies `Secure`.
    pub fn new(sealer: ValueSealer, secure: bool) -> Self {
        Self { sealer, secure }
    }

    fn cookie_attributes(&self, max_age_secs: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
    }

    /// The `Set-Cookie` of a new session for `token`, or `None` when it
    /// could not be sealed.
    pub fn start(&self, token: &str) -> Option<HeaderValue> {
        let sealed = Sealed {
            token: token.to_string(),
            csrf: actionbox_store::random_hex(16),
            exp_ms: now_ms() + SESSION_LIFETIME_MS,
        };
        let clear = zeroize::Zeroizing::new(serde_json::to_vec(&sealed).ok()?);
        let value = self.sealer.seal(&clear).ok()?;
        let attributes = self.cookie_attributes(SESSION_LIFETIME_MS / 1000);
        HeaderValue::from_str(&format!("{SESSION_COOKIE}={value}{attributes}")).ok()
    }

    /// The `Set-Cookie` that ends a session.
    pub fn end(&self) -> HeaderValue {
        let attributes = self.cookie_attributes(0);
        HeaderValue::from_str(&format!("{SESSION_COOKIE}={attributes}"))
            .unwrap_or_else(|_| HeaderValue::from_static("abx_session=; Path=/console; Max-Age=0"))
    }

    /// A fresh sign-in CSRF value and the `Set-Cookie` that pairs with it.
    pub fn sign_in_csrf(&self) -> (String, Option<HeaderValue>) {
        let value = actionbox_store::random_hex(16);
        let attributes = self.cookie_attributes(3600);
        let cookie = HeaderValue::from_str(&format!("{SIGN_IN_CSRF_COOKIE}={value}{attributes}")).ok();
        (value, cookie)
    }

    /// The session in `headers`' cookie, its token checked now; `None` for
    /// no session, an expired one, or one whose token no longer works;
    /// `Err` when the store cannot say.
    pub async fn session(&self, state: &WorkspaceServeState, headers: &HeaderMap) -> Result<Option<Session>, String> {
        let Some(sealed) = cookie(headers, SESSION_COOKIE)
            .filter(|t| !t.is_empty() && t.len() <= MAX_COOKIE_BYTES)
            .and_then(|text| self.sealer.open(text))
            .and_then(|clear| serde_json::from_slice::<Sealed>(&clear).ok())
            .filter(|sealed| sealed.exp_ms >= now_ms())
        else {
            return Ok(None);
        };
        Ok(who_is(state, &sealed.token).await?.map(|who| Session {
            who,
            csrf: sealed.csrf.clone(),
        }))
    }
}

/// Who `token` is, when it may use the console: the operator, or a
/// workspace token with the `admin` scope; `Err` (what to tell the person)
/// when the store cannot say.
pub async fn who_is(state: &WorkspaceServeState, token: &str) -> Result<Option<Who>, String> {
    if state.is_operator_token(token) {
        return Ok(Some(Who::Operator));
    }
    let info = match state.workspaces_handle().authenticate(token).await {
        Ok(Some(info)) => info,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::warn!("console: the store could not check a token: {e}");
            return Err(
                "The workspace store is not answering, so your sign-in cannot be checked. Try again in a \
                        minute; if it lasts, tell your platform's operator."
                    .to_string(),
            );
        }
    };
    Ok(info.scopes.contains(&Scope::Admin).then(|| Who::Admin {
        ws: info.workspace.clone(),
        token_id: info.id.clone(),
    }))
}

/// The answer for a request without a valid session: to the sign-in page.
pub fn to_sign_in() -> Response {
    Redirect::to("/console/sign-in").into_response()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; abx_session_x=2; abx_session=3"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("3"));
        assert_eq!(cookie(&h, "a"), Some("1"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn a_session_cookie_is_http_only_strict_and_opens_only_with_its_key() {
        let key = actionbox_store::MasterKey::generate();
        let sessions = Sessions::new(ValueSealer::new(&key, "console-session"), true);
        let set = sessions.start("abx_token").expect("sealed");
        let set = set.to_str().expect("ascii");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure"));
        assert!(!set.contains("abx_token"), "the token is sealed");
        let value = set.trim_start_matches("abx_session=").split(';').next().expect("value");
        assert!(sessions.sealer.open(value).is_some());
        let other = ValueSealer::new(&actionbox_store::MasterKey::generate(), "console-session");
        assert!(other.open(value).is_none(), "another key does not open it");
        let purpose = ValueSealer::new(&key, "something-else");
        assert!(purpose.open(value).is_none(), "another purpose does not open it");
    }
}
