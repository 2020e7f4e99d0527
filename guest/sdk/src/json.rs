//! JSON in and out of an action: the caller's input (a wrong one is
//! `invalid-input`, the caller's to fix), the result (a failure to encode is
//! `internal`, a bug), and upstream bodies (a malformed one is `upstream`).
//!
//! Every parse is preceded by a nesting guard ([`too_deep`]): serde_json
//! recurses once per level, and an action may run with a small shadow stack
//! (the ShipStation guest uses 32 KiB, `guest/shipstation/build.rs`), which a
//! hostile document nested 100 levels deep would overflow.

use crate::{ActionError, UpstreamFailure};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The deepest nesting of arrays and objects accepted. Real API documents
/// are rarely ten levels deep.
pub const MAX_DEPTH: usize = 32;

/// Whether `text` nests arrays/objects deeper than [`MAX_DEPTH`]. Brackets
/// inside strings do not count. Malformed input is left to the parser.
pub fn too_deep(text: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The method's input (a JSON object as text) decoded as `T`;
/// `invalid-input` saying what is wrong (e.g. ``missing field `id` ``) when
/// it is not.
pub fn parse_input<T: DeserializeOwned>(input: &str) -> Result<T, ActionError> {
    if too_deep(input.as_bytes()) {
        return Err(ActionError::InvalidInput(format!(
            "the input nests arrays or objects deeper than {MAX_DEPTH} levels"
        )));
    }
    serde_json::from_str(input)
        .map_err(|e| ActionError::InvalidInput(format!("the input is not what this method takes: {e}")))
}

/// `value` as the JSON text `invoke` returns; `internal` if it cannot be
/// encoded (a map with non-string keys, a failing `Serialize`).
pub fn to_output<T: Serialize + ?Sized>(value: &T) -> Result<String, ActionError> {
    serde_json::to_string(value).map_err(|e| ActionError::Internal(format!("could not encode the result as JSON: {e}")))
}

/// An upstream body (answered with `status`) decoded as `T`; `upstream`
/// with the status when it is not the JSON expected.
pub(crate) fn from_upstream<T: DeserializeOwned>(body: &[u8], status: u16) -> Result<T, ActionError> {
    let malformed = |detail: String| {
        ActionError::Upstream(UpstreamFailure {
            status: Some(status),
            message: format!("the upstream answered HTTP {status} with a body that is not the JSON expected: {detail}"),
            request_id: None,
        })
    };
    if too_deep(body) {
        return Err(malformed(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn nested(n: usize) -> String {
        format!("{}{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn depth_up_to_the_limit_is_accepted() {
        assert!(!too_deep(nested(MAX_DEPTH).as_bytes()));
        assert!(too_deep(nested(MAX_DEPTH + 1).as_bytes()));
        assert!(too_deep(format!("{{\"a\":{}}}", nested(MAX_DEPTH)).as_bytes()));
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        let text = format!("{{\"a\":\"{}\",\"b\":\"\\\"[[\"}}", "[{".repeat(100));
        assert!(!too_deep(text.as_bytes()));
    }

    #[test]
    fn closing_brackets_restore_depth() {
        assert!(!too_deep(nested(MAX_DEPTH).repeat(50).as_bytes()));
    }

    #[derive(serde::Deserialize, Debug)]
    struct GetItem {
        #[allow(dead_code)]
        id: String,
    }

    #[test]
    fn wrong_input_is_invalid_input_naming_the_problem() {
        match parse_input::<GetItem>(r#"{"item":"42"}"#) {
            Err(ActionError::InvalidInput(m)) => assert!(m.contains("missing field `id`"), "{m}"),
            other => panic!("expected invalid-input, got {other:?}"),
        }
        assert!(matches!(
            parse_input::<GetItem>("not json"),
            Err(ActionError::InvalidInput(_))
        ));
        assert!(parse_input::<GetItem>(r#"{"id":"42"}"#).is_ok());
    }

    #[test]
    fn deeply_nested_input_is_refused_before_parsing() {
        let input = format!("{{\"id\":{}}}", nested(MAX_DEPTH + 1));
        match parse_input::<Value>(&input) {
            Err(ActionError::InvalidInput(m)) => assert!(m.contains("deeper than 32 levels"), "{m}"),
            other => panic!("expected invalid-input, got {other:?}"),
        }
    }

    #[test]
    fn malformed_upstream_bodies_are_upstream_errors_with_the_status() {
        for body in [&b"<html>oops</html>"[..], nested(MAX_DEPTH + 1).as_bytes()] {
            match from_upstream::<Value>(body, 200) {
                Err(ActionError::Upstream(u)) => assert_eq!(u.status, Some(200)),
                other => panic!("expected upstream, got {other:?}"),
            }
        }
        assert_eq!(
            from_upstream::<Value>(br#"{"a":1}"#, 200).ok(),
            Some(serde_json::json!({"a": 1}))
        );
    }

    #[test]
    fn output_is_compact_json() {
        assert_eq!(
            to_output(&serde_json::json!({"ok": true})).ok().as_deref(),
            Some(r#"{"ok":true}"#)
        );
    }
}
