//! Every per-integration sandbox limit, its default and why, plus the
//! `ResourceLimiter` that enforces the memory ones.
//!
//! Where each is enforced: memory and tables — [`InstanceLimiter`]; outbound
//! requests, request and response bodies — `outbound.rs`; result size —
//! `invoke.rs`; log volume — `state.rs`; the deadline — `deadline.rs`. The
//! wasm stack is engine-wide (`engine::MAX_WASM_STACK_BYTES`).

use std::fmt;
use wasmtime::Result;

/// Limits of one integration's calls. Defaults suit ShipStation's trackOrder
/// with a wide margin; a limit hit is reported as `memory-limit` or
/// `limit-exceeded` with the limit's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Cap on each linear memory, bytes. trackOrder peaks at a few MiB.
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
}

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
        }
    }
}

/// The `ResourceLimiter` of one store. Growth past a limit traps at once (the
/// guest's allocator would otherwise loop or abort with a vaguer message), and
/// the limiter remembers that it refused, so the host reports `memory-limit`
/// rather than a generic crash.
#[derive(Debug)]
pub struct InstanceLimiter {
    limits: SandboxLimits,
    /// Set when a memory growth was refused.
    pub memory_limit_hit: bool,
    /// Highest memory size granted, in bytes.
    pub peak_memory_bytes: usize,
}

impl InstanceLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: SandboxLimits) -> Self {
        Self {
            limits,
            memory_limit_hit: false,
            peak_memory_bytes: 0,
        }
    }
}

/// The error a refused memory growth traps with.
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    /// Bytes the guest asked for.
    pub desired: usize,
    /// The cap.
    pub limit: usize,
}

impl fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the action tried to grow its memory to {} MiB, over its limit of {} MiB (limits.memory_bytes)",
            self.desired / (1024 * 1024),
            self.limit / (1024 * 1024)
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

impl wasmtime::ResourceLimiter for InstanceLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        if desired > self.limits.memory_bytes {
            self.memory_limit_hit = true;
            return Err(MemoryLimitExceeded {
                desired,
                limit: self.limits.memory_bytes,
            }
            .into());
        }
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        Ok(desired <= self.limits.table_elements)
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
}
