//! Per-instance resource limits, enforced through wasmtime's `ResourceLimiter`.

use wasmtime::Result;

/// Default linear-memory cap per instance: enough for the ShipStation action
/// (it peaks at a few MiB) with room for large responses.
pub const DEFAULT_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// Limits of one instance. The numbers are configuration; the limiter state
/// (whether a limit was hit) lives in [`InstanceLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLimits {
    /// Cap on the total linear memory of the instance, in bytes.
    pub memory_bytes: usize,
    /// Cap on table elements (function pointers), per table.
    pub table_elements: usize,
    /// Cap on core instances, tables and memories created by one component.
    pub instances: usize,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            table_elements: 100_000,
            instances: 64,
        }
    }
}

/// The `ResourceLimiter` of one store. Growth past a limit traps at once (the
/// guest's allocator would otherwise loop or abort with a vaguer message), and
/// the limiter remembers that it refused, so the host can report the trap as
/// `memory-limit` rather than a generic crash.
#[derive(Debug)]
pub struct InstanceLimiter {
    limits: InstanceLimits,
    /// Set when a memory growth was refused.
    pub memory_limit_hit: bool,
    /// Highest total memory size granted, in bytes.
    pub peak_memory_bytes: usize,
}

impl InstanceLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: InstanceLimits) -> Self {
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

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the action tried to grow its memory to {} MiB, over its limit of {} MiB",
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
