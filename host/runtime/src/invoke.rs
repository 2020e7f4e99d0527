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
use crate::kinds::{CredentialHeader, KindRegistry};
use crate::limits::{CallStopped, MemoryLimitExceeded, SandboxLimits, SandboxViolation};
use crate::manifest::Manifest;
use crate::outbound::{OutboundHooks, OutboundPolicy, OutboundRecord};
use crate::state::{millis, GuestLogLine, HostState};
use anyhow::Result;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_config::WasiConfigVariables;

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
    /// Every outbound request, in order (up to `max_outbound_requests +
    /// max_refused_requests`; see `outbound_dropped`).
    pub outbound: Vec<OutboundRecord>,
    /// Requests past the record cap, counted only.
    pub outbound_dropped: u64,
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
    /// What the sandbox stopped during the call (the first
    /// `outbound::MAX_VIOLATIONS_KEPT`).
    pub violations: Vec<SandboxViolation>,
    /// Violations past that cap, counted only.
    pub violations_dropped: u64,
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
            outbound_dropped: 0,
            guest_log: Vec::new(),
            guest_log_dropped: 0,
            elapsed_ms: 0,
            deadline_ms: 0,
            peak_memory_bytes: 0,
            violations: Vec::new(),
            violations_dropped: 0,
        }
    }
}

fn new_store(pre: &SmartActionPre<HostState>, state: HostState) -> Store<HostState> {
    let hostcall_bytes = state.limiter.limits().hostcall_bytes();
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|s| &mut s.limiter);
    // What one host call (or returned value) may make the host copy out of
    // the guest's memory, checked before the host allocates it.
    store.set_hostcall_fuel(hostcall_bytes);
    // Check at the next tick, then every tick: yield to the executor so other
    // calls progress, trap once this call's deadline has passed, or trap when
    // a hook asked for the call to be stopped.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        if let Some(reason) = ctx.data().stop.reason() {
            return Err(CallStopped(reason.to_string()).into());
        }
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
    let _slot = slots.acquire().await;
    let hooks = OutboundHooks::new(Arc::new(OutboundPolicy::deny_all()), deadline);
    let limits = SandboxLimits {
        memory_bytes,
        ..SandboxLimits::default()
    };
    let state = HostState::new(hooks, WasiConfigVariables::new(), limits, deadline);
    let mut store = new_store(pre, state);
    let call = async {
        let instance = pre.instantiate_async(&mut store).await?;
        instance.actionbox_action_action().call_describe(&mut store).await
    };
    match tokio::time::timeout(deadline.remaining(), call).await {
        Ok(Ok(m)) => Ok(m.into()),
        // A trap's text carries guest-chosen names (its backtrace): report
        // what happened in the host's words, with guest text defused.
        Ok(Err(e)) if is_hostcall_fuel_exhausted(&e) => anyhow::bail!(
            "limit-exceeded: describe() returned a manifest of over {} bytes; manifests are bounded far below that \
             (64 methods, 32 parameters a method, 4 KiB descriptions, …)",
            store.data().limiter.limits().hostcall_bytes()
        ),
        Ok(Err(e)) => {
            let failure = classify_failure(e, store.data(), &deadline);
            anyhow::bail!("{}: {}", failure.kind(), failure.message())
        }
        Err(_) => anyhow::bail!("describe() did not return within {} s", DESCRIBE_TIMEOUT.as_secs()),
    }
}

/// What a call runs: a method of the action, or its `test-connection` export.
#[derive(Debug, Clone, Copy)]
enum Call<'a> {
    /// `invoke(method, input)`.
    Method { name: &'a str, input: &'a str },
    /// `test-connection()`: the integration's Test button.
    TestConnection,
}

impl Call<'_> {
    /// The name the invocation report shows.
    fn name(&self) -> &str {
        match self {
            Call::Method { name, .. } => name,
            Call::TestConnection => TEST_CONNECTION,
        }
    }
}

/// The name of the Test button's call in reports (the contract's export).
pub const TEST_CONNECTION: &str = "test-connection";

impl ActionComponent {
    /// Run `method` with JSON `input` for `integration`, in a fresh instance.
    pub async fn invoke(&self, integration: &IntegrationSettings, method: &str, input: &str) -> InvocationReport {
        if self.manifest().method(method).is_none() {
            return InvocationReport::refused(
                method,
                InvokeError::InvalidInput {
                    message: format!(
                        "this action has no method `{method}`; it offers: {}",
                        self.manifest().method_list()
                    ),
                },
            );
        }
        self.run(integration, Call::Method { name: method, input }).await
    }

    /// The integration's Test button: the action's `test-connection` export,
    /// one cheap authenticated request that proves the key and base URL work.
    pub async fn test_connection(&self, integration: &IntegrationSettings) -> InvocationReport {
        self.run(integration, Call::TestConnection).await
    }

    /// Run `call` for `integration` in a fresh instance, within its deadline.
    async fn run(&self, integration: &IntegrationSettings, call: Call<'_>) -> InvocationReport {
        let invocation_id = next_invocation_id();
        let deadline = ActionDeadline::start(integration.timeout.duration());
        let mut report = InvocationReport {
            invocation_id: invocation_id.clone(),
            method: call.name().to_string(),
            outcome: Ok(serde_json::Value::Null),
            outbound: Vec::new(),
            outbound_dropped: 0,
            guest_log: Vec::new(),
            guest_log_dropped: 0,
            elapsed_ms: 0,
            deadline_ms: millis(deadline.limit()),
            peak_memory_bytes: 0,
            violations: Vec::new(),
            violations_dropped: 0,
        };
        let manifest = self.manifest();
        let credential_header = match credential_header(manifest, integration) {
            Ok(h) => h,
            Err(message) => {
                report.outcome = Err(InvokeError::Host { message });
                return report;
            }
        };
        let mut policy = OutboundPolicy::new(
            integration.base_url.clone(),
            &manifest.outbound_hosts,
            credential_header,
            integration.api_key.clone(),
            &integration.limits,
        );
        policy.pinned_addresses = integration.pinned_addresses.clone();
        if !policy.manifest_allows_base {
            tracing::warn!(
                "the action's manifest does not declare the base URL host `{}`; every request it makes will be denied",
                integration.base_url.host
            );
        }
        let hooks = OutboundHooks::new(Arc::new(policy), deadline).with_pool(self.connections.clone());
        let recorder = hooks.recorder.clone();
        let mut settings = WasiConfigVariables::new();
        settings.insert("base_url", integration.base_url.to_string());
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
            let instance = self.pre.instantiate_async(&mut store).await?;
            let action = instance.actionbox_action_action();
            let ctx = CallContext {
                budget_ms: millis(deadline.remaining().saturating_sub(GUEST_BUDGET_RESERVE)),
                invocation_id,
            };
            match call {
                Call::Method { name, input } => action.call_invoke(&mut store, name, input, &ctx).await,
                Call::TestConnection => action.call_test_connection(&mut store, &ctx).await,
            }
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
        report.outbound = recorder.records();
        report.outbound_dropped = recorder.records_dropped();
        report.violations = recorder.violations();
        report.violations_dropped = recorder.violations_dropped();
        // The host knows exactly what it stopped; when the call failed after
        // that, its account replaces the guest's (e.g. a guest that reports
        // "connection failed" after its request was refused). A reflected key
        // is the upstream's doing, never the call's outcome; a call the host
        // stopped or cut off keeps that account.
        let first_stop = report.violations.iter().find_map(|v| match v {
            SandboxViolation::Denied { message } => Some(InvokeError::Denied {
                message: message.clone(),
            }),
            SandboxViolation::LimitExceeded { message } => Some(InvokeError::LimitExceeded {
                message: message.clone(),
            }),
            SandboxViolation::KeyReflected { .. } => None,
        });
        if let (Err(e), Some(stop)) = (&report.outcome, first_stop) {
            if !matches!(
                e,
                InvokeError::Timeout { .. } | InvokeError::MemoryLimit { .. } | InvokeError::LimitExceeded { .. }
            ) {
                report.outcome = Err(stop);
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

/// The header the key goes in for this call: the operator's, or the
/// built-in registry's for the component's kind. A component may only ask
/// for that very header; a call that needs a key nobody placed fails.
fn credential_header(
    manifest: &Manifest,
    integration: &IntegrationSettings,
) -> Result<Option<CredentialHeader>, String> {
    let header = integration.credential_header.clone().or_else(|| {
        KindRegistry::builtin_kind(&manifest.integration).and_then(|k| k.credential.as_ref().map(|c| c.header.clone()))
    });
    let Some(requested) = &manifest.credential else {
        // The action asked for no key: none is sent.
        return Ok(None);
    };
    match header {
        Some(h) if h.matches(&requested.header) => Ok(Some(h)),
        Some(h) => Err(format!(
            "the action asks for its key in header `{}`, but the operator's credential header is `{h}`; the key is \
             sent only where the operator says",
            crate::error::guest_text(&requested.header, 64)
        )),
        None if integration.api_key.is_none() => Ok(None),
        None => Err(format!(
            "no credential header is named for kind `{}`, which this host does not know; declare the kind \
             ([[kind]] with credential_header in actionbox.toml, or --credential-header)",
            crate::error::guest_text(&manifest.integration, 64)
        )),
    }
}

/// Whether `e` is wasmtime refusing to copy more than the store's hostcall
/// fuel out of the guest (`limits::SandboxLimits::hostcall_bytes`). wasmtime
/// does not export the error type, so its message is matched; the version is
/// pinned and `tests/e2e/tests/hostile.rs` (a 50 MB result) fails if the text
/// changes.
fn is_hostcall_fuel_exhausted(e: &wasmtime::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .to_string()
            .starts_with("too much data is being copied between the host and the guest")
    })
}

/// Turn a trap or host error into the right typed error.
fn classify_failure(e: wasmtime::Error, state: &HostState, deadline: &ActionDeadline) -> InvokeError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integration::BaseUrl;
    use crate::manifest::CredentialSpec;

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

    #[test]
    fn results_are_size_checked_then_parsed() {
        assert_eq!(parse_result(r#"{"a":1}"#, 100), Ok(serde_json::json!({"a": 1})));
        let e = parse_result(&format!("\"{}\"", "x".repeat(200)), 100).expect_err("too big");
        assert_eq!(e.kind(), "limit-exceeded");
        assert!(
            e.message().contains("202 byte result") && e.message().contains("100 bytes"),
            "{e}"
        );
        let e = parse_result("this is { not JSON", 100).expect_err("not JSON");
        assert_eq!(e.kind(), "invalid-output");
    }

    fn manifest(kind: &str, header: Option<&str>) -> Manifest {
        Manifest {
            integration: kind.into(),
            version: "1".into(),
            methods: vec![],
            default_actions: vec![],
            outbound_hosts: vec!["{base-url}".into()],
            default_base_url: String::new(),
            credential: header.map(|h| CredentialSpec {
                name: "key".into(),
                header: h.into(),
            }),
        }
    }

    #[test]
    fn the_key_header_is_the_operators_or_the_registrys() {
        let base = BaseUrl::parse("https://api.example.com").expect("url");
        let key = Some(crate::secret::ApiKey::new("TEST_key_123456").expect("key"));
        let mut settings = IntegrationSettings::new(base, key);
        // Built-in kind: the registry's header.
        let h = credential_header(&manifest("shipstation", Some("API-Key")), &settings).expect("ok");
        assert_eq!(h.map(|h| h.to_string()), Some("api-key".into()));
        // The component asks for another header than the registry's.
        let e = credential_header(&manifest("shipstation", Some("X-Other")), &settings).expect_err("mismatch");
        assert!(e.contains("X-Other") && e.contains("api-key"), "{e}");
        // Unknown kind, a key, and nobody named a header: no call.
        let e = credential_header(&manifest("acme", Some("X-Api-Key")), &settings).expect_err("no header");
        assert!(e.contains("acme") && e.contains("credential_header"), "{e}");
        // The operator names it.
        settings.credential_header = Some(CredentialHeader::new("X-Api-Key").expect("header"));
        let h = credential_header(&manifest("acme", Some("x-api-key")), &settings).expect("ok");
        assert_eq!(h.map(|h| h.to_string()), Some("x-api-key".into()));
        // An action that asks for no key gets none sent.
        assert_eq!(credential_header(&manifest("acme", None), &settings), Ok(None));
    }
}
