//! The state of one invocation's `Store`: WASI contexts (all capabilities
//! off), the outbound hooks, the settings (`wasi:config/store`), the guest's
//! log and its limiter.
//!
//! Why so little: the only door out is the outbound hook (`outbound/`); the
//! WASI context grants no files, environment, arguments, stdin, sockets or
//! name lookups; the settings never hold the key; and everything the guest
//! can make the host keep here (resource-table entries, log lines, stderr)
//! is bounded by the call's limits.

use crate::bindings::log;
use crate::deadline::ActionDeadline;
use crate::limits::{CallStop, InstanceLimiter, SandboxLimits};
use crate::outbound::OutboundHooks;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Bytes of guest stderr kept (Rust panic messages land there).
pub const STDERR_CAPTURE_BYTES: usize = 16 * 1024;
/// Longest single guest log line kept, in bytes.
pub const GUEST_LOG_LINE_BYTES: usize = 4 * 1024;
/// What each kept log line costs against the log budget on top of its text:
/// the line's own bookkeeping. Without it, empty lines would cost nothing
/// and ten million of them would all be kept (measured: ~900 MB).
pub const GUEST_LOG_LINE_OVERHEAD_BYTES: usize = 64;

/// One line the action logged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GuestLogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The text (cut to [`GUEST_LOG_LINE_BYTES`]).
    pub message: String,
    /// Milliseconds since the invocation started.
    pub at_ms: u64,
}

/// The action's log lines of one invocation, within a byte budget.
#[derive(Debug, Default)]
pub struct GuestLog {
    /// Lines kept.
    pub lines: Vec<GuestLogLine>,
    /// Lines dropped after the budget ran out.
    pub dropped: u64,
    bytes: usize,
    budget: usize,
}

/// Per-invocation store data.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    /// The `wasi:http` outbound hooks (policy, deadline, request log).
    pub outbound: OutboundHooks,
    /// What `wasi:config/store` answers: the operator's non-secret settings
    /// (`base_url`), never the key.
    settings: WasiConfigVariables,
    /// What the action logged.
    pub guest_log: GuestLog,
    /// Memory/table limits and whether they were hit.
    pub limiter: InstanceLimiter,
    /// When this invocation must end.
    pub deadline: ActionDeadline,
    /// The guest's captured stderr.
    pub stderr: MemoryOutputPipe,
    /// Set when the host wants the call stopped (see [`CallStop`]).
    pub stop: CallStop,
}

impl HostState {
    /// State for one invocation. The WASI context grants nothing: no
    /// preopened directories, no environment, no arguments, no stdin, no
    /// sockets or name lookups; stdout is discarded and stderr captured.
    ///
    /// The resource table holds at most `limits.max_host_resources` entries:
    /// every header map, request, body, stream and pollable the guest holds
    /// is host memory that its own memory cap does not see.
    pub fn new(
        outbound: OutboundHooks,
        settings: WasiConfigVariables,
        limits: SandboxLimits,
        deadline: ActionDeadline,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(limits.max_header_bytes);
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_host_resources);
        let stop = outbound.call_stop();
        Self {
            wasi,
            http,
            table,
            stop,
            outbound,
            settings,
            guest_log: GuestLog {
                budget: limits.max_log_bytes,
                ..GuestLog::default()
            },
            limiter: InstanceLimiter::new(limits),
            deadline,
            stderr,
        }
    }

    /// The guest's stderr as text (lossy), trimmed, with line breaks kept as
    /// ` | ` and every other control character escaped.
    pub fn stderr_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr.contents()).trim().to_string();
        let lines: Vec<String> = text
            .lines()
            .map(|l| crate::error::guest_text(l, STDERR_CAPTURE_BYTES))
            .collect();
        lines.join(" | ")
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl HostState {
    /// The `wasi:config/store` view of this call's settings.
    pub fn config(&mut self) -> WasiConfig<'_> {
        WasiConfig::from(&self.settings)
    }
}

impl log::Host for HostState {
    /// Keep the line within the call's log budget (text plus
    /// [`GUEST_LOG_LINE_OVERHEAD_BYTES`] a line; past it, lines are only
    /// counted). Kept lines are also traced at `debug` whatever level the
    /// guest chose: what a guest writes must never decide what the
    /// operator's log shows at its default level. They reach people through
    /// the invocation report and the Action Debugger.
    fn write(&mut self, level: log::Level, message: String) {
        let at_ms = u64::try_from(self.deadline.elapsed().as_millis()).unwrap_or(u64::MAX);
        let log = &mut self.guest_log;
        if log.bytes.saturating_add(GUEST_LOG_LINE_OVERHEAD_BYTES) > log.budget {
            log.dropped += 1;
            return;
        }
        let message = crate::error::guest_text(&message, GUEST_LOG_LINE_BYTES);
        log.bytes += message.len() + GUEST_LOG_LINE_OVERHEAD_BYTES;
        let level_name = match level {
            log::Level::Trace => "trace",
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        tracing::debug!(target: "actionbox::guest", level = level_name, "{message}");
        log.lines.push(GuestLogLine {
            level: level_name,
            message,
            at_ms,
        });
    }
}

/// Milliseconds of a duration, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
