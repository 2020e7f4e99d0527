//! Why a call failed, in the host's words: a trap or host error turned into
//! the right typed [`InvokeError`].
//!
//! The host classifies by what it saw itself — a stop it asked for, a full
//! resource table, exhausted hostcall fuel, a refused memory growth, the
//! deadline — before it looks at the trap. A trap's own text carries
//! guest-chosen names (its backtrace), so it is never the message; the
//! guest's stderr is quoted only defused and cut to its last
//! [`STDERR_QUOTE_BYTES`].

use crate::deadline::ActionDeadline;
use crate::error::InvokeError;
use crate::limits::{CallStopped, MemoryLimitExceeded};
use crate::state::HostState;

/// Guest stderr bytes quoted in a trap message.
const STDERR_QUOTE_BYTES: usize = 2048;

/// The failure of a call stopped at its deadline.
pub(crate) fn timeout_error(deadline: &ActionDeadline) -> InvokeError {
    InvokeError::Timeout {
        message: format!(
            "the action did not finish within the integration's timeout of {} s and was stopped",
            deadline.limit().as_secs()
        ),
    }
}

/// Whether `e` is wasmtime refusing to copy more than the store's hostcall
/// fuel out of the guest (`limits::SandboxLimits::hostcall_bytes`). wasmtime
/// does not export the error type, so its message is matched; the version is
/// pinned and `tests/e2e/tests/all/hostile.rs` (a 50 MB result) fails if the text
/// changes.
pub(crate) fn is_hostcall_fuel_exhausted(e: &wasmtime::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .to_string()
            .starts_with("too much data is being copied between the host and the guest")
    })
}

/// Turn a trap or host error into the right typed error.
pub(crate) fn classify_failure(e: wasmtime::Error, state: &HostState, deadline: &ActionDeadline) -> InvokeError {
    if let Some(stopped) = e.downcast_ref::<CallStopped>() {
        return InvokeError::LimitExceeded {
            message: stopped.0.clone(),
        };
    }
    let table_full = e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    });
    if is_hostcall_fuel_exhausted(&e) {
        return InvokeError::LimitExceeded {
            message: format!(
                "the action tried to pass more than {} bytes to the host at once (a result over \
                 limits.max_result_kib, or a log line, header list or body write far larger than the sandbox takes) \
                 and was stopped before the host copied it",
                state.limiter.limits().hostcall_bytes()
            ),
        };
    }
    if table_full {
        return InvokeError::LimitExceeded {
            message: format!(
                "the action held more than {} host resources at once (header fields, requests, bodies, streams, \
                 pollables) and was stopped (limits.max_host_resources)",
                state.limiter.limits().max_host_resources
            ),
        };
    }
    if state.limiter.memory_limit_hit || e.downcast_ref::<MemoryLimitExceeded>().is_some() {
        let message = e
            .downcast_ref::<MemoryLimitExceeded>()
            .map_or_else(|| "the action exceeded its memory limit".to_string(), |m| m.to_string());
        return InvokeError::MemoryLimit { message };
    }
    let trap = e.downcast_ref::<wasmtime::Trap>().copied();
    if trap == Some(wasmtime::Trap::Interrupt) || deadline.is_past() {
        return timeout_error(deadline);
    }
    let stderr = state.stderr_text();
    let mut message = match trap {
        Some(wasmtime::Trap::StackOverflow) => "the action overflowed its stack (runaway recursion?)".to_string(),
        Some(t) => format!("the action crashed: {t}"),
        None => format!("the action failed in the host: {}", e.root_cause()),
    };
    if !stderr.is_empty() {
        let start = stderr.len().saturating_sub(STDERR_QUOTE_BYTES);
        let start = (start..stderr.len()).find(|i| stderr.is_char_boundary(*i)).unwrap_or(0);
        message.push_str("; it printed: ");
        message.push_str(&stderr[start..]);
    }
    InvokeError::Trap { message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::SandboxLimits;
    use crate::outbound::{OutboundHooks, OutboundPolicy};
    use std::sync::Arc;
    use std::time::Duration;
    use wasmtime_wasi_config::WasiConfigVariables;

    fn state() -> (HostState, ActionDeadline) {
        let deadline = ActionDeadline::start(Duration::from_secs(10));
        let hooks = OutboundHooks::new(Arc::new(OutboundPolicy::deny_all()), deadline);
        let state = HostState::new(hooks, WasiConfigVariables::new(), SandboxLimits::default(), deadline);
        (state, deadline)
    }

    fn classify(e: wasmtime::Error) -> InvokeError {
        let (state, deadline) = state();
        classify_failure(e, &state, &deadline)
    }

    #[test]
    fn failures_are_classified_by_what_the_host_saw() {
        let e = classify(CallStopped("stopped (limits.max_refused_requests = 16)".into()).into());
        assert_eq!(e.kind(), "limit-exceeded");
        assert!(e.message().contains("max_refused_requests"), "{e}");

        let full = wasmtime::Error::from(wasmtime::component::ResourceTableError::Full).context("[new_fields] pushing");
        let e = classify(full);
        assert_eq!(e.kind(), "limit-exceeded");
        assert!(e.message().contains("limits.max_host_resources"), "{e}");

        let fuel = wasmtime::Error::msg(
            "too much data is being copied between the host and the guest: fuel allocated for hostcalls has been exhausted",
        );
        let e = classify(fuel);
        assert_eq!(e.kind(), "limit-exceeded");
        assert!(e.message().contains("limits.max_result_kib"), "{e}");

        let e = classify(
            MemoryLimitExceeded {
                desired: 80 << 20,
                limit: 64 << 20,
            }
            .into(),
        );
        assert_eq!(e.kind(), "memory-limit");
        assert!(e.message().contains("memory_mib"), "{e}");

        assert_eq!(classify(wasmtime::Trap::Interrupt.into()).kind(), "timeout");
        let e = classify(wasmtime::Trap::StackOverflow.into());
        assert_eq!(e.kind(), "trap");
        assert!(e.message().contains("stack"), "{e}");
        let e = classify(wasmtime::Error::msg("lifting failed"));
        assert_eq!(e.kind(), "trap");
        assert!(e.message().contains("failed in the host: lifting failed"), "{e}");
    }
}
