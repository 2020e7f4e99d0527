//! Minimal outgoing HTTP over `wasi:http`, enough for the attacks.

use crate::wasi::http::outgoing_handler;
use crate::wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use crate::wasi::io::streams::StreamError;

/// What came back: status, headers, how many body bytes were read and the
/// first [`KEPT_BODY_BYTES`] of them.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body_bytes: u64,
    pub body: Vec<u8>,
}

/// Body bytes kept in [`Answer::body`]; the rest is only counted.
const KEPT_BODY_BYTES: usize = 64 * 1024;

/// Send `method url` with `headers` and an optional body of `body_len`
/// bytes (written in chunks, so the guest never holds it whole).
pub fn send(method: Method, url: &str, headers: &[(&str, &[u8])], body_len: u64) -> Result<Answer, String> {
    let (scheme, rest) = url.split_once("://").ok_or("url needs a scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value)
            .map_err(|e| format!("header {name} refused: {e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    request.set_method(&method).map_err(|()| "method")?;
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    request.set_authority(Some(authority)).map_err(|()| "authority")?;
    request.set_path_with_query(Some(path)).map_err(|()| "path")?;
    let body = request.body().map_err(|()| "body")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| describe(&e))?;
    if body_len > 0 {
        let out = body.write().map_err(|()| "body stream")?;
        // blocking-write-and-flush takes at most 4096 bytes per call.
        let chunk = [b'x'; 4096];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if let Err(e) = out.blocking_write_and_flush(&chunk[..n]) {
                drop(out);
                return Err(format!("writing the body failed: {e:?}; {}", outcome(&pending)));
            }
            left -= n as u64;
        }
        drop(out);
    }
    OutgoingBody::finish(body, None).map_err(|e| describe(&e))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(describe(&e)),
        _ => return Err("no response".into()),
    };
    let status = response.status();
    let headers = response.headers().entries();
    let incoming = response.consume().map_err(|()| "consume")?;
    let stream = incoming.stream().map_err(|()| "stream")?;
    let mut body_bytes = 0u64;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                body_bytes += chunk.len() as u64;
                let room = KEPT_BODY_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!(
                    "reading the body failed after {body_bytes} bytes: {}",
                    e.to_debug_string()
                ))
            }
        }
    }
    Ok(Answer {
        status,
        headers,
        body_bytes,
        body,
    })
}

fn outcome(pending: &outgoing_handler::FutureIncomingResponse) -> String {
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Err(e))) => describe(&e),
        _ => "no error reported".into(),
    }
}

fn describe(e: &ErrorCode) -> String {
    format!("{e:?}")
}
