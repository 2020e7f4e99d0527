//! Keeping a live call's exchanges for a recording file: bounded, and never
//! the key — secret headers are kept as `[redacted]`, responses as the action
//! saw them (already scrubbed), and the file is searched for the key before
//! it is written.

use super::recording::{
    write_recording, RecordedBody, RecordedExchange, Recording, MAX_RECORDED_EXCHANGES, MAX_RECORDED_HEADERS,
    MAX_RECORDED_HEADER_BYTES, MAX_RECORDING_FILE_BYTES,
};
use crate::outbound::policy::OutboundPolicy;
use crate::secret::ApiKey;
use anyhow::{bail, Result};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, StatusCode};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Body bytes one recording keeps in all, on top of each body's own cap (the
/// call's limits); past it, bodies are kept cut and marked truncated.
pub const MAX_CAPTURED_BODY_BYTES: usize = 48 * 1024 * 1024;
/// What a secret header value is kept as.
const REDACTED: &str = "[redacted]";

/// The exchanges of live calls, kept for a recording file: bounded, and
/// never holding the key.
pub struct ExchangeCapture {
    state: Mutex<CaptureState>,
}

/// What [`ExchangeCapture`] holds.
#[derive(Default)]
struct CaptureState {
    exchanges: Vec<PendingExchange>,
    /// Exchanges past [`MAX_RECORDED_EXCHANGES`], not kept.
    dropped: u64,
    /// Body bytes kept, against [`MAX_CAPTURED_BODY_BYTES`].
    body_bytes: usize,
    /// The keys the calls sent: the file is searched for them before it is
    /// written (at most a few; one per integration recorded).
    keys: Vec<ApiKey>,
}

/// Keys [`CaptureState::keys`] holds at most.
const MAX_KEYS_CHECKED: usize = 8;

/// One exchange while it happens.
struct PendingExchange {
    method: String,
    path: String,
    request_headers: Vec<(String, String)>,
    request_body: Vec<u8>,
    request_cut: bool,
    /// `None` until the response head arrives; an exchange without one (the
    /// request failed) is not written.
    status: Option<u16>,
    response_headers: Vec<(String, String)>,
    response_body: Vec<u8>,
    response_cut: bool,
    response_ended: bool,
}

impl fmt::Debug for ExchangeCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kept, dropped) = self.state.lock().map_or((0, 0), |s| (s.exchanges.len(), s.dropped));
        f.debug_struct("ExchangeCapture")
            .field("exchanges", &kept)
            .field("dropped", &dropped)
            .finish()
    }
}

impl Default for ExchangeCapture {
    fn default() -> Self {
        Self::new()
    }
}

impl ExchangeCapture {
    /// An empty capture.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(CaptureState::default()),
        }
    }

    /// Start keeping the admitted `request` (as it goes on the wire) that
    /// `policy` admitted; `None` past [`MAX_RECORDED_EXCHANGES`].
    pub(crate) fn start<B>(self: &Arc<Self>, request: &Request<B>, policy: &OutboundPolicy) -> Option<CaptureSlot> {
        let mut state = self.state.lock().ok()?;
        if let Some(key) = &policy.api_key {
            let known = state
                .keys
                .iter()
                .any(|k| k.header_value().as_bytes() == key.header_value().as_bytes());
            if !known && state.keys.len() < MAX_KEYS_CHECKED {
                state.keys.push(key.clone());
            }
        }
        if state.exchanges.len() >= MAX_RECORDED_EXCHANGES {
            if state.dropped == 0 {
                tracing::warn!(
                    target: "actionbox::outbound",
                    "the recording holds {MAX_RECORDED_EXCHANGES} exchanges, all it may; later ones are not recorded"
                );
            }
            state.dropped += 1;
            return None;
        }
        state.exchanges.push(PendingExchange {
            method: request.method().as_str().to_string(),
            path: request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string(),
            request_headers: kept_headers(request.headers(), |name| {
                policy.is_credential_header(name)
                    || *name == http::header::COOKIE
                    || *name == http::header::AUTHORIZATION
                    || *name == http::header::PROXY_AUTHORIZATION
            }),
            request_body: Vec::new(),
            request_cut: false,
            status: None,
            response_headers: Vec::new(),
            response_body: Vec::new(),
            response_cut: false,
            response_ended: false,
        });
        Some(CaptureSlot {
            capture: self.clone(),
            index: state.exchanges.len() - 1,
        })
    }

    /// Exchanges kept so far (with or without a response).
    pub fn len(&self) -> usize {
        self.state.lock().map_or(0, |s| s.exchanges.len())
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The recording so far: every exchange that got a response, in request
    /// order (a request that failed has no answer to replay).
    pub fn recording(&self) -> Recording {
        let Ok(state) = self.state.lock() else {
            return Recording::default();
        };
        let exchanges = state
            .exchanges
            .iter()
            .filter_map(|p| {
                Some(RecordedExchange {
                    method: p.method.clone(),
                    path: p.path.clone(),
                    request_headers: p.request_headers.clone(),
                    request_body: RecordedBody {
                        bytes: Bytes::from(p.request_body.clone()),
                        truncated: p.request_cut,
                    },
                    status: p.status?,
                    response_headers: p.response_headers.clone(),
                    response_body: RecordedBody {
                        bytes: Bytes::from(p.response_body.clone()),
                        truncated: p.response_cut || !p.response_ended,
                    },
                })
            })
            .collect();
        Recording { exchanges }
    }

    /// Write the recording to `path`: refused if the key appears anywhere
    /// in it, or if `path` exists and is not a recording (a previous
    /// recording is replaced); written to a temporary file (mode 0600) in the
    /// same directory, then renamed over `path`. Returns the exchanges written.
    pub fn save(&self, path: &Path) -> Result<usize> {
        let recording = self.recording();
        let text = recording.to_json();
        let keys = self.state.lock().map(|s| s.keys.clone()).unwrap_or_default();
        for key in &keys {
            let raw = key.header_value();
            let raw = String::from_utf8_lossy(raw.as_bytes()).into_owned();
            // Keys too short to scrub are never searched for (they would match
            // ordinary text); the header that carried them is redacted anyway.
            if raw.len() < crate::outbound::body::MIN_SCRUBBED_KEY_BYTES {
                continue;
            }
            let escaped = serde_json::to_string(&raw).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            if text.contains(&raw) || text.contains(escaped) {
                bail!(
                    "not writing {}: the integration's key appears in the recording where nothing redacts it; \
                     nothing was written",
                    path.display()
                );
            }
        }
        if text.len() as u64 > MAX_RECORDING_FILE_BYTES {
            bail!(
                "not writing {}: the recording would be {} bytes, over the {MAX_RECORDING_FILE_BYTES} a recording \
                 may be (it could not be replayed); record a call that fetches less",
                path.display(),
                text.len()
            );
        }
        write_recording(path, &text)?;
        Ok(recording.exchanges.len())
    }

    /// Change exchange `index`.
    fn update(&self, index: usize, change: impl FnOnce(&mut PendingExchange)) {
        if let Ok(mut state) = self.state.lock() {
            if let Some(p) = state.exchanges.get_mut(index) {
                change(p);
            }
        }
    }

    /// Append `data` to one of exchange `index`'s bodies (picked by
    /// `body`), within [`MAX_CAPTURED_BODY_BYTES`] in all; past it the body
    /// is kept cut.
    fn append(&self, index: usize, data: &[u8], body: fn(&mut PendingExchange) -> (&mut Vec<u8>, &mut bool)) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let room = MAX_CAPTURED_BODY_BYTES.saturating_sub(state.body_bytes);
        let kept = data.len().min(room);
        let Some(p) = state.exchanges.get_mut(index) else {
            return;
        };
        let (bytes, cut) = body(p);
        bytes.extend_from_slice(&data[..kept]);
        if kept < data.len() {
            *cut = true;
        }
        state.body_bytes += kept;
    }
}

/// An exchange being kept: what the hook and the body guards report into.
#[derive(Clone)]
pub(crate) struct CaptureSlot {
    capture: Arc<ExchangeCapture>,
    index: usize,
}

impl CaptureSlot {
    /// Bytes of the request body, as sent.
    pub(crate) fn request_data(&self, data: &[u8]) {
        self.capture
            .append(self.index, data, |p| (&mut p.request_body, &mut p.request_cut));
    }

    /// The request body was cut (its limit) or failed.
    pub(crate) fn request_cut(&self) {
        self.capture.update(self.index, |p| p.request_cut = true);
    }

    /// The response head, as the action gets it (key already scrubbed).
    pub(crate) fn response_head(&self, status: StatusCode, headers: &HeaderMap) {
        let kept = kept_headers(headers, |name| {
            *name == http::header::SET_COOKIE
                || *name == http::header::COOKIE
                || *name == http::header::AUTHORIZATION
                || *name == http::header::PROXY_AUTHORIZATION
        });
        self.capture.update(self.index, |p| {
            p.status = Some(status.as_u16());
            p.response_headers = kept;
        });
    }

    /// Bytes of the response body, as the action gets them.
    pub(crate) fn response_data(&self, data: &[u8]) {
        self.capture
            .append(self.index, data, |p| (&mut p.response_body, &mut p.response_cut));
    }

    /// The response body reached its end cleanly.
    pub(crate) fn response_end(&self) {
        self.capture.update(self.index, |p| p.response_ended = true);
    }
}

/// `headers` as a recording keeps them: without `Host` (the origin is not
/// recorded) and trace context, secret ones (`secret`, or marked sensitive)
/// as `[redacted]`, at most [`MAX_RECORDED_HEADERS`], values cut to
/// [`MAX_RECORDED_HEADER_BYTES`].
fn kept_headers(headers: &HeaderMap, secret: impl Fn(&HeaderName) -> bool) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "host" | "traceparent" | "tracestate"))
        .take(MAX_RECORDED_HEADERS)
        .map(|(name, value)| {
            let kept = if value.is_sensitive() || secret(name) {
                REDACTED.to_string()
            } else {
                let text = String::from_utf8_lossy(value.as_bytes());
                cut_at_char_boundary(&text, MAX_RECORDED_HEADER_BYTES).to_string()
            };
            (name.as_str().to_string(), kept)
        })
        .collect()
}

/// The longest prefix of `text` of at most `max` bytes.
fn cut_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn secrets_and_the_origin_are_not_kept_in_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9"));
        headers.insert("traceparent", HeaderValue::from_static("00-abc"));
        headers.insert("cookie", HeaderValue::from_static("session=1"));
        let mut key = HeaderValue::from_static("SECRET_value_123");
        key.set_sensitive(true);
        headers.insert("x-anything", key);
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let kept = kept_headers(&headers, |n| *n == http::header::COOKIE);
        assert_eq!(
            kept,
            vec![
                ("cookie".to_string(), "[redacted]".to_string()),
                ("x-anything".to_string(), "[redacted]".to_string()),
                ("accept".to_string(), "application/json".to_string()),
            ]
        );
    }
}
