//! Percent-encoding for values placed in URL paths and query strings.

/// Encode `value` so it is one opaque path segment or query value: every byte
/// except the RFC 3986 unreserved set (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`.
/// `A&B/5?#x y` becomes `A%26B%2F5%3F%23x%20y`.
pub fn component(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0x0f)] as char);
        }
    }
    out
}

/// Build `path?k1=v1&k2=v2` with every value encoded by [`component`].
pub fn path_with_query(path: &str, query: &[(&str, &str)]) -> String {
    let mut out = String::from(path);
    for (i, (k, v)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&component(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_escaped() {
        assert_eq!(component("A&B/5?#x y"), "A%26B%2F5%3F%23x%20y");
        assert_eq!(component("se-123_a.b~"), "se-123_a.b~");
        assert_eq!(component("é+%"), "%C3%A9%2B%25");
    }

    #[test]
    fn query_is_joined_in_order() {
        assert_eq!(
            path_with_query("/v2/x", &[("a", "1 2"), ("b", "&")]),
            "/v2/x?a=1%202&b=%26"
        );
        assert_eq!(path_with_query("/v2/x", &[]), "/v2/x");
    }
}
