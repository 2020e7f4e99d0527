//! The recording file: its format (version 1; see `replay.rs`), read with
//! bounds — a recording is untrusted input, authors share them — and
//! written so that nothing but a previous recording is ever replaced.

use crate::error::guest_text;
use crate::outbound::policy::MAX_REQUEST_TARGET_BYTES;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The recording format this host writes and reads.
pub const RECORDING_VERSION: u64 = 1;
/// Largest recording file read or written, in bytes. A recording is a test
/// fixture of one call (at most `limits.max_outbound_requests` exchanges);
/// the cap keeps a shared or mistaken file from being read into memory whole.
pub const MAX_RECORDING_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Exchanges one recording may hold (read or kept while recording). A call
/// makes at most `limits.max_outbound_requests` (16 by default).
pub const MAX_RECORDED_EXCHANGES: usize = 1024;
/// Header fields one recorded request or response may hold.
pub const MAX_RECORDED_HEADERS: usize = 128;
/// Bytes of one recorded header value.
pub const MAX_RECORDED_HEADER_BYTES: usize = 16 * 1024;
/// Bytes of a recorded method.
pub(super) const MAX_METHOD_BYTES: usize = 32;
/// Bytes of one request (`METHOD path`) shown in a message.
pub(super) const SHOWN_REQUEST_BYTES: usize = 160;

/// One recorded request and its response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedExchange {
    /// The request's method, e.g. `GET`.
    pub method: String,
    /// Path and query as sent (no origin), e.g. `/v2/shipments?page=1`.
    pub path: String,
    /// Request headers as sent, secrets `[redacted]`, without `Host` and trace context.
    #[serde(default)]
    pub request_headers: Vec<(String, String)>,
    /// The request body as sent.
    #[serde(default)]
    pub request_body: RecordedBody,
    /// The response status.
    pub status: u16,
    /// Response headers as the action saw them, `Set-Cookie` `[redacted]`.
    #[serde(default)]
    pub response_headers: Vec<(String, String)>,
    /// The response body as the action read it.
    #[serde(default)]
    pub response_body: RecordedBody,
}

/// A recorded body: its bytes, and whether they are all of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedBody {
    /// The bytes kept.
    pub bytes: Bytes,
    /// Whether the body was cut (a limit, or not read to its end): a
    /// replayed truncated response body fails after these bytes, as the
    /// live one did not end cleanly either.
    pub truncated: bool,
}

impl RecordedBody {
    /// A complete body of `bytes`.
    pub fn complete(bytes: impl Into<Bytes>) -> Self {
        Self {
            bytes: bytes.into(),
            truncated: false,
        }
    }
}

impl Serialize for RecordedBody {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(&self.bytes).ok();
        if let (Some(text), false) = (text, self.truncated) {
            return s.serialize_str(text);
        }
        let mut map = s.serialize_map(None)?;
        match text {
            Some(text) => map.serialize_entry("text", text)?,
            None => map.serialize_entry("base64", &base64_encode(&self.bytes))?,
        }
        if self.truncated {
            map.serialize_entry("truncated", &true)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for RecordedBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(RecordedBodyVisitor)
    }
}

/// Reads a body: a string, or an object with `text` or `base64` and an
/// optional `truncated`.
struct RecordedBodyVisitor;

impl<'de> Visitor<'de> for RecordedBodyVisitor {
    type Value = RecordedBody;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a body: a string, or {"base64": "…"} (optionally with "truncated": true)"#)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<RecordedBody, E> {
        Ok(RecordedBody::complete(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<RecordedBody, E> {
        Ok(RecordedBody::complete(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RecordedBody, A::Error> {
        let mut bytes: Option<Bytes> = None;
        let mut truncated = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "text" | "base64" if bytes.is_some() => {
                    return Err(de::Error::custom("a body has either `text` or `base64`, not both"))
                }
                "text" => bytes = Some(Bytes::from(map.next_value::<String>()?)),
                "base64" => {
                    let encoded = map.next_value::<String>()?;
                    bytes = Some(Bytes::from(base64_decode(&encoded).map_err(de::Error::custom)?));
                }
                "truncated" => truncated = map.next_value()?,
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown body field `{}` (a body has `text` or `base64`, and `truncated`)",
                        guest_text(other, 64)
                    )))
                }
            }
        }
        let bytes = bytes.ok_or_else(|| de::Error::custom("a body object needs `text` or `base64`"))?;
        Ok(RecordedBody { bytes, truncated })
    }
}

/// A recording: the exchanges of one call, in the order the action made them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// The exchanges, in request order.
    pub exchanges: Vec<RecordedExchange>,
}

/// The file as written.
#[derive(Serialize)]
struct RecordingFileOut<'a> {
    actionbox_recording: u64,
    exchanges: &'a [RecordedExchange],
}

/// The file's version alone, read before anything else (the rest skipped
/// without being kept), so a file of another version is named as such.
#[derive(Deserialize)]
struct RecordingVersion {
    actionbox_recording: Option<u64>,
}

/// The file as read (after its version was checked).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingFileIn {
    #[serde(rename = "actionbox_recording")]
    _version: u64,
    exchanges: BoundedExchanges,
}

/// The exchanges array, refused as soon as it passes [`MAX_RECORDED_EXCHANGES`]
/// (before the rest is read into memory).
struct BoundedExchanges(Vec<RecordedExchange>);

impl<'de> Deserialize<'de> for BoundedExchanges {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Bounded;
        impl<'de> Visitor<'de> for Bounded {
            type Value = BoundedExchanges;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an array of at most {MAX_RECORDED_EXCHANGES} exchanges")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<BoundedExchanges, A::Error> {
                let mut exchanges = Vec::new();
                while let Some(exchange) = seq.next_element::<RecordedExchange>()? {
                    if exchanges.len() == MAX_RECORDED_EXCHANGES {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_RECORDED_EXCHANGES} exchanges; a recording is one call's requests"
                        )));
                    }
                    exchanges.push(exchange);
                }
                Ok(BoundedExchanges(exchanges))
            }
        }
        d.deserialize_seq(Bounded)
    }
}

impl Recording {
    /// Read a recording from `text`, checking every bound and every method,
    /// path, status and header as HTTP. Errors say where (line and column,
    /// or which exchange) and what is wrong.
    pub fn parse(text: &[u8]) -> Result<Self> {
        if text.len() as u64 > MAX_RECORDING_FILE_BYTES {
            bail!(
                "it is {} bytes, over the {MAX_RECORDING_FILE_BYTES} a recording may be",
                text.len()
            );
        }
        let version: RecordingVersion = serde_json::from_slice(text).map_err(|e| {
            anyhow::anyhow!(
                "it is not an actionbox recording (JSON object with \"actionbox_recording\": {RECORDING_VERSION}): {e}"
            )
        })?;
        match version.actionbox_recording {
            Some(RECORDING_VERSION) => {}
            Some(other) => bail!(
                "it is a version {other} recording; this actionbox reads version {RECORDING_VERSION}: record it again \
                 with this actionbox"
            ),
            None => bail!("it is not an actionbox recording: it has no \"actionbox_recording\" version field"),
        }
        let file: RecordingFileIn = serde_json::from_slice(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let recording = Self {
            exchanges: file.exchanges.0,
        };
        for (i, exchange) in recording.exchanges.iter().enumerate() {
            exchange.check().map_err(|why| {
                anyhow::anyhow!(
                    "exchange {} ({} {}): {why}",
                    i + 1,
                    guest_text(&exchange.method, MAX_METHOD_BYTES),
                    guest_text(&exchange.path, SHOWN_REQUEST_BYTES)
                )
            })?;
        }
        Ok(recording)
    }

    /// Read the recording file at `path` (a regular file of at most
    /// [`MAX_RECORDING_FILE_BYTES`]); errors name the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_bounded(path)?;
        Self::parse(&text).with_context(|| format!("recording {} is unusable", path.display()))
    }

    /// The file's text: JSON, version first, one field a line with each
    /// header list and body object on one line.
    pub fn to_json(&self) -> String {
        let file = RecordingFileOut {
            actionbox_recording: RECORDING_VERSION,
            exchanges: &self.exchanges,
        };
        let mut text = Vec::new();
        let mut writer = serde_json::Serializer::with_formatter(&mut text, RecordingFormatter::default());
        // Strings, numbers and booleans into memory: serializing cannot fail.
        let _ = file.serialize(&mut writer);
        text.push(b'\n');
        String::from_utf8(text).unwrap_or_default()
    }
}

impl RecordedExchange {
    /// Whether it can be replayed: a method token, a path within what the
    /// policy sends, an HTTP status, and bounded, valid headers.
    fn check(&self) -> std::result::Result<(), String> {
        if self.method.is_empty()
            || self.method.len() > MAX_METHOD_BYTES
            || http::Method::from_bytes(self.method.as_bytes()).is_err()
        {
            return Err("the method is not an HTTP method".into());
        }
        if !self.path.starts_with('/') {
            return Err("the path must start with `/` (path and query only, no origin)".into());
        }
        if self.path.len() > MAX_REQUEST_TARGET_BYTES {
            return Err(format!(
                "the path is {} bytes, over the {MAX_REQUEST_TARGET_BYTES} the sandbox sends",
                self.path.len()
            ));
        }
        if self.path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err("the path is not a valid HTTP path and query".into());
        }
        if !(100..=599).contains(&self.status) {
            return Err(format!("status {} is not an HTTP status (100-599)", self.status));
        }
        check_headers("request", &self.request_headers)?;
        check_headers("response", &self.response_headers)?;
        Ok(())
    }

    /// `METHOD path`, defused and cut, for messages.
    pub(super) fn shown(&self) -> String {
        format!(
            "{} {}",
            guest_text(&self.method, MAX_METHOD_BYTES),
            guest_text(&self.path, SHOWN_REQUEST_BYTES)
        )
    }
}

/// Check `headers` of a recorded `which` (request or response).
fn check_headers(which: &str, headers: &[(String, String)]) -> std::result::Result<(), String> {
    if headers.len() > MAX_RECORDED_HEADERS {
        return Err(format!(
            "{} {which} headers, over the {MAX_RECORDED_HEADERS} a recorded message may have",
            headers.len()
        ));
    }
    for (name, value) in headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("`{}` is not a valid {which} header name", guest_text(name, 64)));
        }
        if value.len() > MAX_RECORDED_HEADER_BYTES {
            return Err(format!(
                "{which} header `{}` is {} bytes, over the {MAX_RECORDED_HEADER_BYTES} kept",
                guest_text(name, 64),
                value.len()
            ));
        }
        if HeaderValue::from_bytes(value.as_bytes()).is_err() {
            return Err(format!(
                "{which} header `{}` has a value that cannot be sent in HTTP (control characters)",
                guest_text(name, 64)
            ));
        }
    }
    Ok(())
}

/// The content of the file at `path`: a regular file of at most
/// [`MAX_RECORDING_FILE_BYTES`] (a FIFO or device is refused, not read).
fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read recording {}", path.display()))?;
    if !meta.is_file() {
        bail!("recording {} is not a regular file", path.display());
    }
    if meta.len() > MAX_RECORDING_FILE_BYTES {
        bail!(
            "recording {} is {} bytes, over the {MAX_RECORDING_FILE_BYTES} a recording may be",
            path.display(),
            meta.len()
        );
    }
    let file = std::fs::File::open(path).with_context(|| format!("cannot read recording {}", path.display()))?;
    let mut text = Vec::new();
    file.take(MAX_RECORDING_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .with_context(|| format!("cannot read recording {}", path.display()))?;
    if text.len() as u64 > MAX_RECORDING_FILE_BYTES {
        bail!(
            "recording {} grew past the {MAX_RECORDING_FILE_BYTES} bytes a recording may be while it was read",
            path.display()
        );
    }
    Ok(text)
}

/// Write a recording's `text` to `path`: refused if `path` exists and is not
/// a recording; written to a temporary file (mode 0600) beside it, then
/// renamed over it.
pub(super) fn write_recording(path: &Path, text: &str) -> Result<()> {
    refuse_to_replace_other_files(path)?;
    write_atomically(path, text.as_bytes())
}

/// Refuse to replace anything at `path` but a previous recording: a typo in
/// `--record` must not overwrite a config file or a source file.
fn refuse_to_replace_other_files(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot check {}", path.display())),
    };
    if !meta.is_file() {
        bail!(
            "not writing {}: it exists and is not a regular file; choose another path",
            path.display()
        );
    }
    if let Err(e) = read_bounded(path).and_then(|text| Recording::parse(&text)) {
        bail!(
            "not writing {}: it exists and is not an actionbox recording ({}); choose another path, or delete it \
             first",
            path.display(),
            crate::error::guest_text(&format!("{e:#}"), 200)
        );
    }
    Ok(())
}

/// Write `bytes` to a new temporary file (mode 0600) beside `path`, then
/// rename it over `path`: a reader never sees half a recording.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recording".into());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&temp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("cannot write recording {}", path.display()));
    }
    Ok(())
}

/// Writes a recording for people to read and edit: one field a line, but
/// each header list and each body object on one line (`[["accept",
/// "application/json"], …]`), as the format's example shows.
#[derive(Default)]
struct RecordingFormatter {
    /// The open arrays and objects, outermost first.
    open: Vec<OpenContainer>,
}

/// An array or object being written.
struct OpenContainer {
    /// Written on one line.
    inline: bool,
    /// Holds at least one value.
    filled: bool,
}

impl RecordingFormatter {
    /// Containers this deep (the file, `exchanges`, an exchange) get a line
    /// a value; deeper ones are written inline.
    const LINED_DEPTH: usize = 3;

    fn begin<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        let inline = self.open.len() >= Self::LINED_DEPTH;
        self.open.push(OpenContainer { inline, filled: false });
        w.write_all(bracket)
    }

    fn end<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        if let Some(closed) = self.open.pop() {
            if !closed.inline && closed.filled {
                w.write_all(b"\n")?;
                w.write_all(&b"  ".repeat(self.open.len()))?;
            }
        }
        w.write_all(bracket)
    }

    fn value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        let depth = self.open.len();
        let Some(container) = self.open.last_mut() else {
            return Ok(());
        };
        container.filled = true;
        if container.inline {
            return w.write_all(if first { b"" } else { b", " });
        }
        w.write_all(if first { b"\n" } else { b",\n" })?;
        w.write_all(&b"  ".repeat(depth))
    }
}

impl serde_json::ser::Formatter for RecordingFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.begin(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.end(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.value(w, first)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.begin(w, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.end(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.value(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// The standard base64 alphabet (RFC 4648 §4).
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in padded standard base64.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of standard base64 `text` (padding optional).
fn base64_decode(text: &str) -> std::result::Result<Vec<u8>, String> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return Err("`base64` is not valid base64 (its length is wrong)".into());
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let Some(v) = BASE64.iter().position(|&b| b == c) else {
            return Err("`base64` is not valid base64 (a character outside A-Z a-z 0-9 + /)".into());
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An exchange answering `method path` with 200 and `body` (the replay
    /// tests use it too).
    pub(in crate::outbound::replay) fn exchange(method: &str, path: &str, body: &str) -> RecordedExchange {
        RecordedExchange {
            method: method.into(),
            path: path.into(),
            request_headers: vec![("accept".into(), "application/json".into())],
            request_body: RecordedBody::default(),
            status: 200,
            response_headers: vec![("content-type".into(), "application/json".into())],
            response_body: RecordedBody::complete(body.to_string()),
        }
    }

    #[test]
    fn base64_round_trips_every_length() {
        for len in 0..40u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37).wrapping_add(200)).collect();
            let text = base64_encode(&bytes);
            assert_eq!(text.len() % 4, 0);
            assert_eq!(base64_decode(&text).expect("decodes"), bytes);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("Zm9v!mFy").is_err());
        assert!(base64_decode("Z").is_err());
    }

    #[test]
    fn a_recording_round_trips_with_binary_and_truncated_bodies() {
        let mut binary = exchange("POST", "/v2/labels?x=1", "");
        binary.request_body = RecordedBody::complete(vec![0xff, 0x00, 0x80]);
        binary.response_body = RecordedBody {
            bytes: Bytes::from_static(b"partial"),
            truncated: true,
        };
        let recording = Recording {
            exchanges: vec![exchange("GET", "/v2/shipments?page=1", "{\"a\":1}"), binary],
        };
        let text = recording.to_json();
        assert!(text.contains("\"actionbox_recording\": 1"), "{text}");
        assert!(text.contains("\"base64\": \"/wCA\""), "{text}");
        assert!(text.contains("\"truncated\": true"), "{text}");
        assert_eq!(Recording::parse(text.as_bytes()).expect("parses"), recording);
    }

    #[test]
    fn hostile_recordings_are_refused_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("{not json", "not an actionbox recording"),
            ("[]", "not an actionbox recording"),
            ("{\"exchanges\": []}", "no \"actionbox_recording\""),
            ("{\"actionbox_recording\": 2, \"exchanges\": []}", "version 2"),
            (
                "{\"actionbox_recording\": 1, \"exchanges\": [], \"extra\": 1}",
                "unknown field",
            ),
            (
                r#"{"actionbox_recording": 1, "exchanges": [{"method": "GET", "path": "http://evil/x", "status": 200}]}"#,
                "must start with `/`",
            ),
            (
                r#"{"actionbox_recording": 1, "exchanges": [{"method": "G ET", "path": "/x", "status": 200}]}"#,
                "not an HTTP method",
            ),
            (
                r#"{"actionbox_recording": 1, "exchanges": [{"method": "GET", "path": "/x", "status": 1000}]}"#,
                "not an HTTP status",
            ),
            (
                r#"{"actionbox_recording": 1, "exchanges": [{"method": "GET", "path": "/x", "status": 200,
                   "response_headers": [["bad name", "v"]]}]}"#,
                "not a valid response header name",
            ),
            (
                r#"{"actionbox_recording": 1, "exchanges": [{"method": "GET", "path": "/x", "status": 200,
                   "response_headers": [["x", "a\nb"]]}]}"#,
                "cannot be sent in HTTP",
            ),
            (
                r#"{"actionbox_recording": 1, "exchanges": [{"method": "GET", "path": "/x", "status": 200,
                   "response_body": {"base64": "@@@"}}]}"#,
                "not valid base64",
            ),
            (
                r#"{"actionbox_recording": 1, "exchanges": [{"method": "GET", "path": "/x", "status": 200,
                   "response_body": {"text": "a", "base64": "YQ=="}}]}"#,
                "not both",
            ),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", Recording::parse(text.as_bytes()).expect_err(text));
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn too_many_exchanges_are_refused_before_they_are_kept() {
        let one = r#"{"method":"GET","path":"/","status":200}"#;
        let many = vec![one; MAX_RECORDED_EXCHANGES + 1].join(",");
        let text = format!("{{\"actionbox_recording\": 1, \"exchanges\": [{many}]}}");
        let err = format!("{:#}", Recording::parse(text.as_bytes()).expect_err("too many"));
        assert!(
            err.contains(&format!("more than {MAX_RECORDED_EXCHANGES} exchanges")),
            "{err}"
        );
        let at_cap = vec![one; MAX_RECORDED_EXCHANGES].join(",");
        let text = format!("{{\"actionbox_recording\": 1, \"exchanges\": [{at_cap}]}}");
        assert_eq!(
            Recording::parse(text.as_bytes()).expect("at the cap").exchanges.len(),
            MAX_RECORDED_EXCHANGES
        );
    }
}
