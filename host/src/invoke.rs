//! Running one call: a fresh `Store`, the deadline armed three ways, the
//! call, and a report of everything that happened.
//!
//! The deadline is enforced by (1) epoch interruption — compiled guest code
//! yields every tick and traps once the deadline has passed, which stops a
//! spinning guest; (2) the outbound hook clamping every network phase to the
//! time left; (3) a timer around the whole call, which stops a guest blocked
//! in a host call.

use crate::bindings::types::CallContext;
use crate::bindings::SmartActionPre;
use crate::deadline::ActionDeadline;
use crate::engine::{ActionComponent, InstanceSlots};
use crate::error::InvokeError;
use crate::integration::IntegrationSettings;
use crate::limits::{MemoryLimitExceeded, SandboxLimits, SandboxViolation};
use crate::manifest::Manifest;
use crate::outbound::{OutboundHooks, OutboundPolicy, OutboundRecord};
use crate::state::{millis, GuestLogLine, HostState};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Store, UpdateDeadline};

/// Time the host keeps for itself: the action is told its budget minus this,
/// so it can give up cleanly (with `timeout`) before the host stops it.
pub const GUEST_BUDGET_RESERVE: Duration = Duration::from_millis(100);
/// Time `describe` may take.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Guest stderr bytes quoted in a trap message.
const STDERR_QUOTE_BYTES: usize = 2048;

/// Everything one invocation did.
#[derive(Debug, Serialize)]
pub struct InvocationReport {
    /// Process-unique id of the invocation.
    pub invocation_id: String,
    /// The method as asked.
    pub method: String,
    /// The JSON result, or why there is none.
    #[serde(serialize_with = "serialize_outcome")]
    pub outcome: Result<serde_json::Value, InvokeError>,
    /// Every outbound request, in order.
    pub outbound: Vec<OutboundRecord>,
    /// The action's log lines.
    pub guest_log: Vec<GuestLogLine>,
    /// Log lines dropped past the log budget.
    pub guest_log_dropped: u64,
    /// Wall-clock time used, in ms.
    pub elapsed_ms: u64,
    /// The deadline, in ms from the start.
    pub deadline_ms: u64,
    /// Highest linear-memory size the action reached, in bytes.
    pub peak_memory_bytes: usize,
    /// What the sandbox stopped during the call.
    pub violations: Vec<SandboxViolation>,
}

fn serialize_outcome<S: serde::Serializer>(
    outcome: &Result<serde_json::Value, InvokeError>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Outcome<'a> {
        Ok(&'a serde_json::Value),
        Error(&'a InvokeError),
    }
    match outcome {
        Ok(v) => Outcome::Ok(v).serialize(s),
        Err(e) => Outcome::Error(e).serialize(s),
    }
}

static NEXT_INVOCATION: AtomicU64 = AtomicU64::new(1);

fn next_invocation_id() -> String {
    format!("inv-{}", NEXT_INVOCATION.fetch_add(1, Ordering::Relaxed))
}

impl InvocationReport {
    /// A report for a call refused before any instance ran.
    pub fn refused(method: &str, error: InvokeError) -> Self {
        Self {
            invocation_id: next_invocation_id(),
            method: method.to_string(),
            outcome: Err(error),
            outbound: Vec::new(),
            guest_log: Vec::new(),
            guest_log_dropped: 0,
            elapsed_ms: 0,
            deadline_ms: 0,
            peak_memory_bytes: 0,
            violations: Vec::new(),
        }
    }
}

fn new_store(pre: &SmartActionPre<HostState>, state: HostState) -> Store<HostState> {
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|s| &mut s.limiter);
    // Check at the next tick, then every tick: yield to the executor so other
    // calls progress, or trap once this call's deadline has passed.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        if ctx.data().deadline.is_past() {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

/// Ask a pre-instantiated action for its manifest. Runs with every outbound
/// request refused, default limits and `memory_bytes` of memory.
pub(crate) async fn describe(
    pre: &SmartActionPre<HostState>,
    slots: &InstanceSlots,
    memory_bytes: usize,
) -> Result<Manifest> {
    let deadline = ActionDeadline::start(DESCRIBE_TIMEOUT);
    let call = async {
        let _slot = slots.acquire().await;
        let hooks = OutboundHooks::new(Arc::new(OutboundPolicy::deny_all()), deadline);
        let limits = SandboxLimits {
            memory_bytes,
            ..SandboxLimits::default()
        };
        let state = HostState::new(hooks, BTreeMap::new(), limits, deadline);
        let mut store = new_store(pre, state);
        let action = pre.instantiate_async(&mut store).await?;
        action.call_describe(&mut store).await
    };
    match tokio::time::timeout(deadline.remaining(), call).await {
        Ok(Ok(m)) => Ok(m.into()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => anyhow::bail!("describe() did not return within {} s", DESCRIBE_TIMEOUT.as_secs()),
    }
}

impl ActionComponent {
    /// Run `method` with JSON `input` for `integration`, in a fresh instance.
    pub async fn invoke(&self, integration: &IntegrationSettings, method: &str, input: &str) -> InvocationReport {
        let invocation_id = next_invocation_id();
        let deadline = ActionDeadline::start(integration.timeout.duration());
        let mut report = InvocationReport {
            invocation_id: invocation_id.clone(),
            method: method.to_string(),
            outcome: Ok(serde_json::Value::Null),
            outbound: Vec::new(),
            guest_log: Vec::new(),
            guest_log_dropped: 0,
            elapsed_ms: 0,
            deadline_ms: millis(deadline.limit()),
            peak_memory_bytes: 0,
            violations: Vec::new(),
        };
        let manifest = self.manifest();
        if manifest.method(method).is_none() {
            report.outcome = Err(InvokeError::InvalidInput {
                message: format!(
                    "this action has no method `{method}`; it offers: {}",
                    manifest.method_list()
                ),
            });
            return report;
        }
        let policy = match OutboundPolicy::new(
            integration.base_url.clone(),
            &manifest.outbound_hosts,
            manifest.credential.as_ref().map(|c| c.header.as_str()),
            integration.api_key.clone(),
            &integration.limits,
        ) {
            Ok(mut p) => {
                p.pinned_addresses = integration.pinned_addresses.clone();
                p
            }
            Err(e) => {
                report.outcome = Err(InvokeError::Host {
                    message: format!("{e:#}"),
                });
                return report;
            }
        };
        if !policy.manifest_allows_base {
            tracing::warn!(
                "the action's manifest declares hosts {:?}, not the base URL host `{}`; every request it makes will be denied",
                manifest.outbound_hosts,
                integration.base_url.host
            );
        }
        let hooks = OutboundHooks::new(Arc::new(policy), deadline).with_pool(self.connections.clone());
        let outbound_log = hooks.log.clone();
        let violations = hooks.violations.clone();
        let settings = BTreeMap::from([("base-url".to_string(), integration.base_url.to_string())]);
        let state = HostState::new(hooks, settings, integration.limits, deadline);
        // With a pool, wait for a free slot first; the wait counts against
        // the deadline like everything else.
        let slot = match tokio::time::timeout(deadline.remaining(), self.slots.acquire()).await {
            Ok(slot) => slot,
            Err(_) => {
                report.outcome = Err(InvokeError::Timeout {
                    message: format!(
                        "every instance slot of this host stayed busy for the integration's whole timeout of {} s; \
                         raise the pool size (actionbox serve --max-concurrency) or the timeout",
                        deadline.limit().as_secs()
                    ),
                });
                report.elapsed_ms = millis(deadline.elapsed());
                return report;
            }
        };
        let mut store = new_store(&self.pre, state);

        let call = async {
            let action = self.pre.instantiate_async(&mut store).await?;
            let ctx = CallContext {
                budget_ms: millis(deadline.remaining().saturating_sub(GUEST_BUDGET_RESERVE)),
                invocation_id,
            };
            action.call_invoke(&mut store, method, input, &ctx).await
        };
        let result = tokio::time::timeout(deadline.remaining(), call).await;
        let state = store.data();
        report.outcome = match result {
            Err(_elapsed) => Err(timeout_error(&deadline)),
            Ok(Err(e)) => Err(classify_failure(e, state, &deadline)),
            Ok(Ok(Err(action_error))) => Err(action_error.into()),
            Ok(Ok(Ok(text))) => parse_result(&text, integration.limits.max_result_bytes),
        };
        report.guest_log = state.guest_log.lines.clone();
        report.guest_log_dropped = state.guest_log.dropped;
        report.peak_memory_bytes = state.limiter.peak_memory_bytes;
        report.elapsed_ms = millis(deadline.elapsed());
        drop(store);
        drop(slot);
        report.outbound = outbound_log.lock().map(|l| l.clone()).unwrap_or_default();
        report.violations = violations.lock().map(|v| v.clone()).unwrap_or_default();
        // The host knows exactly what it stopped; when the call failed after
        // that, its account replaces the guest's (e.g. a guest that reports
        // "connection failed" after its request was refused).
        if let (Err(e), Some(v)) = (&report.outcome, report.violations.first()) {
            if !matches!(e, InvokeError::Timeout { .. } | InvokeError::MemoryLimit { .. }) {
                report.outcome = Err(match v.clone() {
                    SandboxViolation::Denied { message } => InvokeError::Denied { message },
                    SandboxViolation::LimitExceeded { message } => InvokeError::LimitExceeded { message },
                });
            }
        }
        if let Err(e) = &report.outcome {
            tracing::info!(invocation = %report.invocation_id, kind = e.kind(), "invocation failed: {e}");
        }
        report
    }
}

fn timeout_error(deadline: &ActionDeadline) -> InvokeError {
    InvokeError::Timeout {
        message: format!(
            "the action did not finish within the integration's timeout of {} s and was stopped",
            deadline.limit().as_secs()
        ),
    }
}

/// Turn a trap or host error into the right typed error.
fn classify_failure(e: wasmtime::Error, state: &HostState, deadline: &ActionDeadline) -> InvokeError {
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

fn parse_result(text: &str, max_bytes: usize) -> Result<serde_json::Value, InvokeError> {
    if text.len() > max_bytes {
        return Err(InvokeError::LimitExceeded {
            message: format!(
                "the action returned a {} byte result; results are limited to {max_bytes} bytes (limits.max_result_bytes)",
                text.len()
            ),
        });
    }
    serde_json::from_str(text).map_err(|e| InvokeError::InvalidOutput {
        message: format!("the action's result is not valid JSON: {e}"),
    })
}
