//! Record and replay: a call's outbound exchanges saved to a file
//! (`actionbox debug … --record FILE`), and answered from one instead of the
//! network (`actionbox run … --replay FILE`), so an author can test an action
//! offline and get the same answer every time.
//!
//! Only the exchange itself is replaced. A replayed request is admitted by
//! the same policy as a live one (`policy.rs`: the operator's base URL, the
//! declared hosts, the request count, its headers), its body is bounded the
//! same (`limits.max_request_body_bytes`), and the recorded response reaches
//! the action through the same body checks as a live one (`body.rs`: cut at
//! `limits.max_response_body_bytes`, the key scrubbed). Instead of resolving
//! and connecting, the first unused exchange with the same method and path
//! answers; nothing is dialled, so no address check is needed. A request the
//! recording lacks is refused as a denied one, and the violation (the call's
//! outcome, when the action fails after it) names it, what the recording
//! has, and how to record it.
//!
//! A recording never holds the key. The credential header's value and
//! `Authorization`, `Proxy-Authorization`, `Cookie` and `Set-Cookie` are kept
//! as `[redacted]`; responses are kept as the action saw them, already
//! scrubbed; the origin (`Host`) and the trace context are not kept, so a
//! recording made against the simulator replays for any base URL; and the
//! file is searched for the key before it is written. What a recording keeps
//! is bounded: [`MAX_RECORDED_EXCHANGES`] exchanges, bodies within the call's
//! limits (a body cut there, or not read to its end, is marked
//! `"truncated": true`) and [`MAX_CAPTURED_BODY_BYTES`] of bodies in all.
//!
//! A recording is untrusted input — authors share them — so it is read with
//! bounds ([`MAX_RECORDING_FILE_BYTES`], [`MAX_RECORDED_EXCHANGES`],
//! [`MAX_RECORDED_HEADERS`] a message), every method, path, status and header
//! checked as HTTP before the first call, and errors that say where.
//!
//! The file (version 1):
//!
//! ```json
//! {"actionbox_recording": 1,
//!  "exchanges": [
//!    {"method": "GET", "path": "/v2/shipments?shipment_number=1001&page=1",
//!     "request_headers": [["accept", "application/json"], ["api-key", "[redacted]"]],
//!     "request_body": "", "status": 200,
//!     "response_headers": [["content-type", "application/json"]],
//!     "response_body": "{\"shipments\": []}"}
//!  ]}
//! ```
//!
//! A body is a string (UTF-8), or `{"base64": "…"}` for other bytes; a cut
//! body is `{"text": "…", "truncated": true}` (or `base64` and `truncated`).

mod capture;
mod recording;

pub(crate) use capture::CaptureSlot;
pub use capture::ExchangeCapture;
pub use capture::MAX_CAPTURED_BODY_BYTES;
pub use recording::{
    RecordedBody, RecordedExchange, Recording, MAX_RECORDED_EXCHANGES, MAX_RECORDED_HEADERS, MAX_RECORDED_HEADER_BYTES,
    MAX_RECORDING_FILE_BYTES, RECORDING_VERSION,
};

use super::body::ResponseBodyChecks;
use crate::error::guest_text;
use anyhow::Result;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use recording::{MAX_METHOD_BYTES, SHOWN_REQUEST_BYTES};
use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// Bytes a replayed body is handed to the body checks in, as a live body
/// arrives in chunks.
const REPLAY_CHUNK_BYTES: usize = 16 * 1024;
/// Requests a "not in the recording" message lists.
const SHOWN_REQUESTS: usize = 6;

/// What a call's outbound exchanges do besides passing the policy: go to the
/// network, go to the network and be recorded, or be answered from a
/// recording instead. The policy applies the same in every mode.
#[derive(Debug, Clone, Default)]
pub enum OutboundMode {
    /// Sent to the upstream; nothing kept beyond the call's records.
    #[default]
    Live,
    /// Sent to the upstream, and each exchange kept (without the key) for a
    /// recording file.
    Record(Arc<ExchangeCapture>),
    /// Answered from a recording; nothing is resolved or dialled.
    Replay(Arc<Replay>),
}

/// A recording being replayed: each exchange answers once, in order.
pub struct Replay {
    /// Where it came from, for messages (`not in the recording FILE`).
    source: String,
    exchanges: Vec<RecordedExchange>,
    used: Mutex<Vec<bool>>,
}

impl fmt::Debug for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("source", &self.source)
            .field("exchanges", &self.exchanges.len())
            .finish()
    }
}

impl Replay {
    /// Replay `recording`, which came from `source` (a path, shown in messages).
    pub fn new(recording: Recording, source: &str) -> Self {
        let used = Mutex::new(vec![false; recording.exchanges.len()]);
        Self {
            source: source.to_string(),
            exchanges: recording.exchanges,
            used,
        }
    }

    /// Replay the recording file at `path` ([`Recording::load`]).
    pub fn load(path: &Path) -> Result<Self> {
        Ok(Self::new(Recording::load(path)?, &path.display().to_string()))
    }

    /// Exchanges that have not answered yet.
    pub fn unused(&self) -> usize {
        self.used.lock().map_or(0, |u| u.iter().filter(|used| !**used).count())
    }

    /// The first unused exchange for `method` `path`, now used; or why there
    /// is none, naming the request, what the recording has, and what to do.
    pub(crate) fn take(&self, method: &str, path: &str) -> std::result::Result<RecordedExchange, String> {
        let Ok(mut used) = self.used.lock() else {
            return Err("the recording is unavailable (a call panicked while replaying it)".into());
        };
        let mut answered = 0;
        for (i, exchange) in self.exchanges.iter().enumerate() {
            if exchange.method == method && exchange.path == path {
                if !used[i] {
                    used[i] = true;
                    return Ok(exchange.clone());
                }
                answered += 1;
            }
        }
        let asked = format!(
            "{} {}",
            guest_text(method, MAX_METHOD_BYTES),
            guest_text(path, SHOWN_REQUEST_BYTES)
        );
        let has = if answered > 0 {
            format!("it has that request {answered} time(s), every one already answered")
        } else {
            format!("it has: {}", self.listing())
        };
        Err(format!(
            "not in the recording {}: {asked} ({has}); record it again with actionbox debug … --record {}",
            self.source, self.source
        ))
    }

    /// The distinct requests of the recording, the first few.
    fn listing(&self) -> String {
        let mut shown: Vec<String> = Vec::new();
        for exchange in &self.exchanges {
            let s = exchange.shown();
            if !shown.contains(&s) {
                shown.push(s);
            }
        }
        if shown.is_empty() {
            return "no exchanges".into();
        }
        let more = shown.len().saturating_sub(SHOWN_REQUESTS);
        shown.truncate(SHOWN_REQUESTS);
        let mut text = shown.join(", ");
        if more > 0 {
            text.push_str(&format!(", … {more} more"));
        }
        text
    }
}

/// The response of a recorded `exchange`, as the action gets it: its status
/// and headers (framing headers replaced: the body is the recorded bytes),
/// and its body through `checks` — the same size cap and key scrubber as a
/// live body.
pub(crate) fn replayed_response(exchange: RecordedExchange, mut checks: ResponseBodyChecks) -> Response<WasiBody> {
    let status = StatusCode::from_u16(exchange.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (name, value) in &exchange.response_headers {
        // Checked when the recording was read.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    for framing in [
        http::header::CONTENT_LENGTH,
        http::header::TRANSFER_ENCODING,
        http::header::CONNECTION,
        HeaderName::from_static("keep-alive"),
    ] {
        headers.remove(framing);
    }
    let body = exchange.response_body;
    if !body.truncated {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.bytes.len()));
    }
    checks.check_head(status, &mut headers);
    let mut response = Response::new(
        ReplayedBody {
            rest: body.bytes,
            truncated: body.truncated,
            ended: false,
            checks,
        }
        .boxed_unsync(),
    );
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A recorded response body, handed to the action in chunks through the
/// same checks as a live one. A truncated one fails after its bytes.
struct ReplayedBody {
    rest: Bytes,
    truncated: bool,
    ended: bool,
    checks: ResponseBodyChecks,
}

impl Body for ReplayedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        loop {
            if !this.rest.is_empty() {
                let chunk = this.rest.split_to(this.rest.len().min(REPLAY_CHUNK_BYTES));
                match this.checks.pass_data(chunk) {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(None) => continue,
                    Err(e) => {
                        this.rest = Bytes::new();
                        this.truncated = false;
                        this.ended = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            if this.ended {
                if std::mem::take(&mut this.truncated) {
                    return Poll::Ready(Some(Err(HttpError::HttpResponseIncomplete)));
                }
                return Poll::Ready(None);
            }
            this.ended = true;
            // What the scrubber held back can no longer start the key.
            let tail = this.checks.finish();
            if !tail.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(tail))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.rest.is_empty() && !self.truncated
    }
}

#[cfg(test)]
mod tests {
    use super::recording::tests::exchange;
    use super::*;

    #[test]
    fn each_exchange_answers_once_and_a_missing_one_says_what_to_do() {
        let replay = Replay::new(
            Recording {
                exchanges: vec![
                    exchange("GET", "/v2/shipments?page=1", "one"),
                    exchange("GET", "/v2/shipments?page=1", "two"),
                    exchange("GET", "/v2/labels", "labels"),
                ],
            },
            "rec.json",
        );
        let first = replay.take("GET", "/v2/shipments?page=1").expect("first");
        assert_eq!(first.response_body.bytes, "one");
        let second = replay.take("GET", "/v2/shipments?page=1").expect("second");
        assert_eq!(second.response_body.bytes, "two");
        let again = replay.take("GET", "/v2/shipments?page=1").expect_err("used up");
        assert!(again.contains("already answered"), "{again}");
        let missing = replay.take("GET", "/v2/shipments?page=2").expect_err("missing");
        assert!(
            missing.starts_with("not in the recording rec.json: GET /v2/shipments?page=2 (it has: GET /v2/shipments?page=1, GET /v2/labels); record it again with actionbox debug … --record rec.json"),
            "{missing}"
        );
        assert!(replay.take("POST", "/v2/labels").is_err(), "the method must match too");
        assert_eq!(replay.unused(), 1);
    }

    #[test]
    fn guest_chosen_paths_in_the_message_are_defused() {
        let replay = Replay::new(Recording::default(), "rec.json");
        let missing = replay.take("GET", "/x\u{1b}[31m\nforged").expect_err("missing");
        assert!(!missing.contains('\u{1b}') && !missing.contains('\n'), "{missing}");
        assert!(missing.contains("it has: no exchanges"), "{missing}");
    }
}
