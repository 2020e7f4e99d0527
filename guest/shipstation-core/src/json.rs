//! A guard run before JSON is parsed.
//!
//! The component's shadow stack is deliberately small (32 KiB, see
//! `guest/shipstation/build.rs`): a small stack keeps the memory a call
//! touches small, which makes pooled instances cheap to reset. serde_json
//! recurses once per nesting level (up to 128 levels), which such a stack
//! cannot hold for every shape, so anything nested deeper than
//! [`MAX_DEPTH`] is refused before parsing. ShipStation's documents are
//! about six levels deep.

/// The deepest nesting of arrays and objects accepted.
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let text = nested(MAX_DEPTH).repeat(50);
        assert!(!too_deep(text.as_bytes()));
    }
}
