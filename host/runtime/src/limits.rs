//! Every per-integration sandbox limit, its default and why, plus the
//! `ResourceLimiter` that enforces the memory ones.
//!
//! Every limit is per *call*: a call is one store, and everything the host
//! holds for the guest during it — linear memories, tables, resource-table
//! entries (header fields, requests, bodies, streams, pollables), buffered
//! body bytes, outbound records, violations, log lines — is counted against
//! one of these, so no guest can make the host spend without bound.
//!
//! Where each is enforced: memory and tables — [`InstanceLimiter`], summed
//! over every memory and table of the call; resource-table entries —
//! `state.rs` (the table's capacity); outbound requests — `outbound/mod.rs`;
//! refusals, records and violations — `outbound/record.rs`; request and
//! response bodies, body buffering — `outbound/body.rs`; result size —
//! `component.rs`; log volume — `state.rs`; the deadline — `deadline.rs`. The
//! wasm stack is engine-wide (`engine::MAX_WASM_STACK_BYTES`).
//!
//! Host memory one call can make the host hold, at the defaults (README,
//! "Worst case per call"): 64 MiB of guest memory and tables, plus at most
//! [`SandboxLimits::max_host_resources`] × 16 KiB (1024 × 16 KiB = 16 MiB) in
//! header fields and unsent body buffers (each resource holds at most one
//! 16 KiB header map or two 8 KiB body chunks), plus capped records, log
//! and stderr (well under 1 MiB), plus one 8 MiB response body in flight
//! at a time per request the guest reads.

use std::fmt;
use wasmtime::Result;

/// Limits of one integration's calls. Defaults suit ShipStation's trackOrder
/// with a wide margin; a limit hit is reported as `memory-limit` or
/// `limit-exceeded` with the limit's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Cap on the call's memory, bytes: every linear memory plus every
    /// table (at [`TABLE_ELEMENT_BYTES`] an element), summed — a component
    /// may have several memories, so a per-memory cap would not bound the
    /// call. trackOrder peaks at a few MiB.
    pub memory_bytes: usize,
    /// Cap on each table's elements (function references).
    pub table_elements: usize,
    /// Cap on core instances, tables and memories one component may create.
    pub instances: usize,
    /// Outbound requests per call. trackOrder needs 3 for a simple order and
    /// at most about 14 for a split one; more means a loop.
    pub max_outbound_requests: u32,
    /// Bytes of one outbound response body delivered to the guest.
    pub max_response_body_bytes: u64,
    /// Bytes of one outbound request body the guest may send.
    pub max_request_body_bytes: u64,
    /// Bytes of the JSON result the guest may return.
    pub max_result_bytes: usize,
    /// Bytes of log text kept per call; later lines are counted and dropped.
    pub max_log_bytes: usize,
    /// Bytes of one HTTP header field the guest may build or receive
    /// (hostcall data through `wasi:http/types.fields`).
    pub max_header_bytes: usize,
    /// Entries the call's resource table may hold at once: header fields,
    /// requests, bodies, streams, pollables, futures. Each is host memory the
    /// guest's own memory cap does not see; wasmtime's default (a million)
    /// would let one call hold gigabytes. trackOrder needs a few dozen.
    pub max_host_resources: usize,
    /// Requests the sandbox may refuse in one call before the call is
    /// stopped: a guest that keeps knocking on denied doors is broken or
    /// hostile, and each refusal costs a record and a log line.
    pub max_refused_requests: u32,
}

/// The least data the guest may pass to the host in one host call (or one
/// returned value), whatever the result limit: manifests (bounded at load to
/// well under this), log lines, header lists, body writes.
pub const MIN_HOSTCALL_BYTES: usize = 8 * 1024 * 1024;
/// Room for the encoding around a result of `max_result_bytes`.
pub const HOSTCALL_SLACK_BYTES: usize = 64 * 1024;

impl SandboxLimits {
    /// Bytes the guest may make the host copy out of its memory in one host
    /// call or one returned value (wasmtime's "hostcall fuel", checked while
    /// lifting, before anything is allocated). Without it a guest can make the
    /// host copy one string a million times — a `list<string>` whose entries
    /// all point at the same bytes — and wasmtime's default allows 128 MiB a
    /// call. A result may be up to `max_result_bytes`, so the bound is the
    /// larger of that and [`MIN_HOSTCALL_BYTES`], plus slack.
    pub fn hostcall_bytes(&self) -> usize {
        self.max_result_bytes
            .max(MIN_HOSTCALL_BYTES)
            .saturating_add(HOSTCALL_SLACK_BYTES)
    }
}

/// Bytes one table element counts for in [`SandboxLimits::memory_bytes`]
/// (a function reference is at most two words).
pub const TABLE_ELEMENT_BYTES: usize = 16;

/// 64 MiB: the default memory cap.
pub const DEFAULT_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// 4 GiB: the most any integration may configure (all a 32-bit memory can address).
pub const MAX_MEMORY_BYTES: usize = 4096 * 1024 * 1024;

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            table_elements: 100_000,
            instances: 64,
            max_outbound_requests: 16,
            max_response_body_bytes: 8 * 1024 * 1024,
            max_request_body_bytes: 1024 * 1024,
            max_result_bytes: 1024 * 1024,
            max_log_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            max_host_resources: 1024,
            max_refused_requests: 16,
        }
    }
}

/// The `ResourceLimiter` of one store (= one call). Growth past a limit
/// traps at once (the guest's allocator would otherwise loop or abort with a
/// vaguer message), and the limiter remembers that it refused, so the host
/// reports `memory-limit` rather than a generic crash.
#[derive(Debug)]
pub struct InstanceLimiter {
    limits: SandboxLimits,
    /// Set when a memory or table growth was refused for the call's cap.
    pub memory_limit_hit: bool,
    /// Highest call memory granted (memories + tables), in bytes.
    pub peak_memory_bytes: usize,
    /// Call memory granted so far (memories + tables), in bytes.
    used_bytes: usize,
}

impl InstanceLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: SandboxLimits) -> Self {
        Self {
            limits,
            memory_limit_hit: false,
            peak_memory_bytes: 0,
            used_bytes: 0,
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// Grant a change from `current` to `desired` bytes of one memory or
    /// table, if the call's total stays within the cap. wasmtime calls the
    /// hooks with `current = 0` when a memory or table is created, so the
    /// total covers every one of them.
    fn grow(&mut self, current: usize, desired: usize) -> Result<()> {
        let total = self.used_bytes.saturating_sub(current).saturating_add(desired);
        if total > self.limits.memory_bytes {
            self.memory_limit_hit = true;
            return Err(MemoryLimitExceeded {
                desired: total,
                limit: self.limits.memory_bytes,
            }
            .into());
        }
        self.used_bytes = total;
        self.peak_memory_bytes = self.peak_memory_bytes.max(total);
        Ok(())
    }
}

/// The error a refused memory growth traps with.
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    /// Bytes the call would have used (all memories and tables).
    pub desired: usize,
    /// The cap.
    pub limit: usize,
}

impl fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the action tried to use {} MiB of memory in one call (all its memories and tables together), over \
             its limit of {} MiB (limits.memory_mib)",
            self.desired.div_ceil(1024 * 1024),
            self.limit / (1024 * 1024)
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

impl wasmtime::ResourceLimiter for InstanceLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        self.grow(current, desired)?;
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        if desired > self.limits.table_elements {
            return Ok(false);
        }
        self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )?;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.instances
    }

    fn tables(&self) -> usize {
        self.limits.instances
    }

    fn memories(&self) -> usize {
        self.limits.instances
    }
}

/// Something the sandbox stopped during a call. When the call then fails,
/// the host reports this (it knows exactly what happened) instead of the
/// guest's own, vaguer account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SandboxViolation {
    /// A capability was refused (host not allowed, blocked address, …).
    Denied {
        /// What was refused and which setting would allow it.
        message: String,
    },
    /// A limit was reached.
    LimitExceeded {
        /// Which limit, its value, and what the guest tried.
        message: String,
    },
    /// The upstream sent the integration's key back (in a response header or
    /// body); the host replaced it with `[redacted]` before the action saw
    /// it. Not the action's doing, so it never becomes the call's outcome.
    KeyReflected {
        /// Where the key was found.
        message: String,
    },
}

/// A request from the host's side of a call to stop it: set by a hook
/// that saw the guest cross a line it may not keep crossing (e.g. too many
/// refused requests), read by the epoch callback, which then traps the guest
/// within one tick. Shared between the store's data and the hooks.
#[derive(Debug, Clone, Default)]
pub struct CallStop(std::sync::Arc<std::sync::OnceLock<String>>);

impl CallStop {
    /// Ask for the call to be stopped; the first reason wins.
    pub fn stop(&self, reason: String) {
        let _ = self.0.set(reason);
    }

    /// Why the call was asked to stop, if it was.
    pub fn reason(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// The trap a stopped call ends with; `failure.rs` reports it as
/// `limit-exceeded` with this message.
#[derive(Debug)]
pub struct CallStopped(pub String);

impl fmt::Display for CallStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CallStopped {}

impl SandboxViolation {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::Denied { message } | Self::LimitExceeded { message } | Self::KeyReflected { message } => message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_is_capped_per_call_not_per_memory() {
        const MIB: usize = 1024 * 1024;
        let mut l = InstanceLimiter::new(SandboxLimits::default());
        // Two memories created at 1 MiB each, then each grown to 40 MiB.
        assert!(l.memory_growing(0, MIB, None).expect("first memory"));
        assert!(l.memory_growing(0, MIB, None).expect("second memory"));
        assert!(l.memory_growing(MIB, 40 * MIB, None).expect("first grows"));
        let e = l
            .memory_growing(MIB, 40 * MIB, None)
            .expect_err("the sum passes 64 MiB");
        assert!(
            e.to_string().contains("80 MiB") && e.to_string().contains("memory_mib"),
            "{e}"
        );
        assert!(l.memory_limit_hit);
        assert_eq!(l.peak_memory_bytes, 41 * MIB);
    }

    #[test]
    fn tables_count_against_the_call_memory() {
        let limits = SandboxLimits {
            memory_bytes: 1024 * 1024,
            ..SandboxLimits::default()
        };
        let mut l = InstanceLimiter::new(limits);
        assert!(l.table_growing(0, 1000, None).expect("small table"));
        assert!(!l.table_growing(1000, 200_000, None).expect("over the element cap"));
        assert!(
            l.table_growing(1000, 90_000, None).is_err(),
            "1.4 MiB of table is over 1 MiB"
        );
    }
}
