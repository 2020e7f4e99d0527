//! The typed outcome of a failed invocation: the action's own `action-error`
//! cases plus what only the host can see (memory limit, trap, bad output).
//!
//! Every message that carries text from the action goes through
//! [`guest_text`] first: an untrusted action must not be able to forge log
//! lines, hide or reorder what a person reads, or make the host print
//! megabytes.

use crate::bindings::types::ActionError;
use serde::Serialize;
use std::fmt;

/// Why an invocation failed. `kind` names are stable (kebab-case) and each
/// maps to a distinct CLI exit code ([`InvokeError::exit_code`]).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum InvokeError {
    /// The input was wrong (bad JSON, missing or malformed parameter, unknown method).
    InvalidInput {
        /// What was wrong.
        message: String,
    },
    /// The upstream rejected the integration's credential.
    Unauthorized {
        /// What happened.
        message: String,
    },
    /// The thing asked about does not exist upstream.
    NotFound {
        /// What was not found.
        message: String,
    },
    /// The upstream is throttling.
    RateLimited {
        /// What happened.
        message: String,
        /// Seconds to wait, when the upstream said.
        retry_after_secs: Option<u32>,
    },
    /// The upstream failed or answered with something unusable.
    Upstream {
        /// What happened.
        message: String,
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// The upstream's request id.
        request_id: Option<String>,
    },
    /// The call ran out of time (the action gave up, or the host stopped it).
    Timeout {
        /// What happened.
        message: String,
    },
    /// The sandbox refused something the action tried.
    Denied {
        /// What was refused.
        message: String,
    },
    /// The action reported an internal error.
    Internal {
        /// What happened.
        message: String,
    },
    /// The action tried to use more memory than its limit.
    MemoryLimit {
        /// What happened.
        message: String,
    },
    /// The action crashed (trap or panic).
    Trap {
        /// The trap, with the guest's panic message when it printed one.
        message: String,
    },
    /// A sandbox limit was reached (requests, body or result size, …).
    LimitExceeded {
        /// Which limit and what the action tried.
        message: String,
    },
    /// The action returned something that is not valid JSON.
    InvalidOutput {
        /// What was wrong.
        message: String,
    },
    /// The host could not run the action at all (instantiation failed, …).
    Host {
        /// What went wrong.
        message: String,
    },
}

impl InvokeError {
    /// Stable machine name, e.g. `not-found`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid-input",
            Self::Unauthorized { .. } => "unauthorized",
            Self::NotFound { .. } => "not-found",
            Self::RateLimited { .. } => "rate-limited",
            Self::Upstream { .. } => "upstream",
            Self::Timeout { .. } => "timeout",
            Self::Denied { .. } => "denied",
            Self::Internal { .. } => "internal",
            Self::MemoryLimit { .. } => "memory-limit",
            Self::Trap { .. } => "trap",
            Self::InvalidOutput { .. } => "invalid-output",
            Self::LimitExceeded { .. } => "limit-exceeded",
            Self::Host { .. } => "host",
        }
    }

    /// The CLI's exit code for this kind (documented in README).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Host { .. } => 1,
            Self::InvalidInput { .. } => 10,
            Self::Unauthorized { .. } => 11,
            Self::NotFound { .. } => 12,
            Self::RateLimited { .. } => 13,
            Self::Upstream { .. } => 14,
            Self::Timeout { .. } => 15,
            Self::Denied { .. } => 16,
            Self::Internal { .. } => 17,
            Self::MemoryLimit { .. } => 18,
            Self::Trap { .. } => 19,
            Self::InvalidOutput { .. } => 20,
            Self::LimitExceeded { .. } => 21,
        }
    }

    /// The upstream request id, when there is one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Upstream { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The human message.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidInput { message }
            | Self::Unauthorized { message }
            | Self::NotFound { message }
            | Self::RateLimited { message, .. }
            | Self::Upstream { message, .. }
            | Self::Timeout { message }
            | Self::Denied { message }
            | Self::Internal { message }
            | Self::MemoryLimit { message }
            | Self::Trap { message }
            | Self::InvalidOutput { message }
            | Self::LimitExceeded { message }
            | Self::Host { message } => message,
        }
    }
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())?;
        match self {
            Self::RateLimited {
                retry_after_secs: Some(s),
                ..
            } => write!(f, " (retry after {s} s)"),
            Self::Upstream { status, request_id, .. } => {
                if let Some(s) = status {
                    write!(f, " (HTTP {s})")?;
                }
                if let Some(id) = request_id {
                    if !self.message().contains(id.as_str()) {
                        write!(f, " [request_id {id}]")?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for InvokeError {}

/// Longest message taken from a guest, in bytes.
pub const MAX_GUEST_MESSAGE_BYTES: usize = 4 * 1024;

/// A message on one line: an error chain's line breaks (the host's own;
/// guest text in it was defused where it was quoted) become ` | `.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Make text that came from an untrusted action safe to print: characters
/// that can forge, hide or reorder what a person reads become `\u{..}`
/// escapes (see [`needs_escape`]), and it is cut to `max` bytes (then `…`).
pub fn guest_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        if out.len() >= max {
            out.push('…');
            break;
        }
        if needs_escape(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters [`guest_text`] escapes, and why:
/// - `char::is_control`: C0 (ESC starts terminal escape sequences, CR/LF forge
///   log lines), DEL, and C1 (U+0080–U+009F; U+009B is a one-byte CSI and
///   U+0085 NEL a line break on some terminals);
/// - U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR: line breaks in
///   JavaScript, JSON viewers and some log tools, so they forge lines too;
/// - bidirectional controls — U+061C ARABIC LETTER MARK, U+200E/U+200F
///   LRM/RLM, U+202A–U+202E embeddings and overrides, U+2066–U+2069 isolates:
///   they reorder the text shown around them ("Trojan Source", CVE-2021-42574),
///   so a message can display something other than what it says;
/// - invisible format characters — U+200B–U+200D zero width space, non-joiner
///   and joiner, U+2060–U+2064 word joiner and invisible operators, U+FEFF
///   zero width no-break space (BOM): they hide text or make two different
///   strings look the same.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

impl From<ActionError> for InvokeError {
    fn from(e: ActionError) -> Self {
        let clean = |m: String| guest_text(&m, MAX_GUEST_MESSAGE_BYTES);
        match e {
            ActionError::InvalidInput(m) => Self::InvalidInput { message: clean(m) },
            ActionError::Unauthorized(m) => Self::Unauthorized { message: clean(m) },
            ActionError::NotFound(m) => Self::NotFound { message: clean(m) },
            ActionError::RateLimited(r) => Self::RateLimited {
                message: clean(r.message),
                retry_after_secs: r.retry_after_secs,
            },
            ActionError::Upstream(u) => Self::Upstream {
                message: clean(u.message),
                status: u.status,
                request_id: u.request_id.map(|id| guest_text(&id, 128)),
            },
            ActionError::Timeout(m) => Self::Timeout { message: clean(m) },
            ActionError::Denied(m) => Self::Denied { message: clean(m) },
            ActionError::Internal(m) => Self::Internal { message: clean(m) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_text_is_defused() {
        assert_eq!(guest_text("a\u{1b}[2Jb\nc", 100), "a\\u{1b}[2Jb\\u{a}c");
        assert_eq!(guest_text("héllo wörld", 4), "hél…");
        assert_eq!(guest_text("plain", 100), "plain");
    }

    #[test]
    fn c1_controls_are_escaped() {
        // U+009B is a one-byte CSI: `\u{9b}2J` clears some terminals.
        assert_eq!(guest_text("a\u{9b}2Jb", 100), "a\\u{9b}2Jb");
        assert_eq!(guest_text("a\u{85}b", 100), "a\\u{85}b");
        assert_eq!(guest_text("\u{80}\u{9f}\u{7f}", 100), "\\u{80}\\u{9f}\\u{7f}");
    }

    #[test]
    fn bidi_and_invisible_format_characters_are_escaped() {
        let escaped = [
            0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
            0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0x2066, 0x2067, 0x2068, 0x2069, 0xFEFF,
        ];
        for code in escaped {
            let c = char::from_u32(code).expect("scalar");
            assert_eq!(
                guest_text(&format!("x{c}y"), 100),
                format!("x\\u{{{code:x}}}y"),
                "U+{code:04X}"
            );
        }
        // Neighbours of the ranges are ordinary text and pass through.
        for code in [
            0x061B, 0x061D, 0x200A, 0x2010, 0x2027, 0x202F, 0x205F, 0x2065, 0x206A, 0xFEFE, 0xFF00,
        ] {
            let c = char::from_u32(code).expect("scalar");
            assert_eq!(guest_text(&format!("x{c}y"), 100), format!("x{c}y"), "U+{code:04X}");
        }
    }

    #[test]
    fn trojan_source_override_cannot_reorder_a_message() {
        let shown = guest_text("order 1001 \u{202E}dednufer\u{202C} shipped", 100);
        assert_eq!(shown, "order 1001 \\u{202e}dednufer\\u{202c} shipped");
        assert!(!shown.chars().any(needs_escape));
    }

    #[test]
    fn escaping_keeps_the_length_cap() {
        let out = guest_text(&"\u{202E}".repeat(1000), 64);
        assert!(out.len() <= 64 + "\\u{202e}".len() + '…'.len_utf8(), "{}", out.len());
        assert!(out.ends_with('…'));
        assert_eq!(guest_text(&"a".repeat(10), 10), "aaaaaaaaaa");
        assert_eq!(guest_text(&"a".repeat(11), 10), "aaaaaaaaaa…");
    }
}
