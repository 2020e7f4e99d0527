//! A loaded action: its pre-instantiated component, its checked manifest, and
//! the call runner — `describe`, `invoke` and `test-connection`, each in a
//! fresh `Store` under its deadline, ending in an [`InvocationReport`].
//!
//! The deadline is enforced by (1) epoch interruption — compiled guest code
//! yields every tick and traps once the deadline has passed, which stops a
//! spinning guest; (2) the outbound hook clamping every network phase to the
//! time left; (3) a timer around the whole call, which stops a guest blocked
//! in a host call.
//!
//! What a call may do is decided here from the operator's settings alone: the
//! outbound policy gets the operator's base URL and key, and the key's header
//! is the operator's or the kind registry's (a component may only ask for
//! that very header, see [`KindRegistry`]). The action reads its non-secret
//! settings (`base_url`) through `wasi:config/store`, never the key.

use crate::artifact_cache::Provenance;
use crate::bindings::types::{ActionError, CallContext};
use crate::bindings::SmartActionPre;
use crate::deadline::ActionDeadline;
use crate::error::InvokeError;
use crate::failure::{classify_failure, is_hostcall_fuel_exhausted, timeout_error};
use crate::integration::IntegrationSettings;
use crate::kinds::KindRegistry;
use crate::limits::{CallStopped, SandboxLimits};
use crate::manifest::Manifest;
use crate::outbound::{ConnectionPool, CredentialHeader, OutboundHooks, OutboundPolicy};
use crate::report::InvocationReport;
use crate::state::{millis, HostState};
use crate::telemetry::CallTrace;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_config::WasiConfigVariables;

/// Time the host keeps for itself: the action is told its budget minus this,
/// so it can give up cleanly (with `timeout`) before the host stops it.
pub const GUEST_BUDGET_RESERVE: Duration = Duration::from_millis(100);
/// Time `describe` may take.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The name of the Test button's call in reports (the contract's export).
pub const TEST_CONNECTION: &str = "test-connection";

/// The pool's free slots, shared by every component of an engine. A call
/// holds a permit for as long as its instance lives.
#[derive(Clone)]
pub(crate) struct InstanceSlots(Option<Arc<Semaphore>>);

impl InstanceSlots {
    /// Slots counted by `pool` (one permit per pooled instance); `None`: the
    /// engine allocates on demand and calls never wait.
    pub(crate) fn new(pool: Option<Arc<Semaphore>>) -> Self {
        Self(pool)
    }

    /// Wait for a slot; `None` when the engine has no pool (or it was closed).
    pub(crate) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        match &self.0 {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        }
    }
}

/// A compiled, pre-instantiated action and its manifest.
pub struct ActionComponent {
    pre: SmartActionPre<HostState>,
    manifest: Manifest,
    origin: PathBuf,
    provenance: Provenance,
    slots: InstanceSlots,
    /// Memory limit for `describe` calls: the engine's largest.
    describe_memory: usize,
    /// Idle keep-alive connections of this action's calls, shared by them
    /// (see `outbound/pool.rs` for when one is reused).
    connections: Arc<ConnectionPool>,
}

impl ActionComponent {
    /// The action `pre` came from `origin`: ask it to describe itself (in
    /// `describe_memory` bytes of memory) and check the manifest before
    /// anything may call it.
    pub(crate) async fn describe_and_check(
        pre: SmartActionPre<HostState>,
        origin: &Path,
        provenance: Provenance,
        slots: InstanceSlots,
        describe_memory: usize,
    ) -> Result<Self> {
        let manifest = describe(&pre, &slots, describe_memory)
            .await
            .with_context(|| format!("{}: describe() failed", origin.display()))?;
        manifest
            .validate()
            .with_context(|| format!("{}: the action's manifest is unusable", origin.display()))?;
        Ok(Self {
            pre,
            manifest,
            origin: origin.to_path_buf(),
            provenance,
            slots,
            describe_memory,
            connections: Arc::new(ConnectionPool::new()),
        })
    }

    /// The manifest the action described itself with at load time.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Where the component came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Whether it was compiled now or loaded precompiled.
    pub fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// The idle keep-alive connections this action's calls may reuse.
    pub fn connection_pool(&self) -> &ConnectionPool {
        &self.connections
    }

    /// Instantiate the action afresh and ask it for its manifest: the
    /// smallest complete call (used by benchmarks and health checks).
    pub async fn describe_fresh(&self) -> Result<Manifest> {
        describe(&self.pre, &self.slots, self.describe_memory).await
    }

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

    /// Run `call` for `integration` in a fresh instance, within its
    /// deadline, as one trace (`telemetry.rs`); log lines of the call carry
    /// its invocation id and trace id.
    async fn run(&self, integration: &IntegrationSettings, call: Call<'_>) -> InvocationReport {
        let trace = CallTrace::start(call.name(), &integration.labels, integration.propagate_trace);
        let mut report = InvocationReport::new(call.name(), Ok(serde_json::Value::Null));
        report.trace_id = trace.trace_id();
        let log_span = tracing::info_span!(
            "invocation",
            invocation_id = %report.invocation_id,
            trace_id = tracing::field::Empty
        );
        if let Some(id) = &report.trace_id {
            log_span.record("trace_id", id.as_str());
        }
        let report = self
            .run_traced(integration, call, report, &trace)
            .instrument(log_span)
            .await;
        trace.finish(&report);
        report
    }

    /// [`Self::run`] within the call's trace.
    async fn run_traced(
        &self,
        integration: &IntegrationSettings,
        call: Call<'_>,
        mut report: InvocationReport,
        trace: &CallTrace,
    ) -> InvocationReport {
        let deadline = ActionDeadline::start(integration.timeout.duration());
        report.deadline_ms = millis(deadline.limit());
        let state = match self.call_state(integration, deadline, trace) {
            Ok(state) => state,
            Err(message) => {
                report.outcome = Err(InvokeError::Host { message });
                return report;
            }
        };
        let recorder = state.outbound.recorder.clone();
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

        let slot_free = Instant::now();
        let mut ready = None;
        let call = self.instantiate_and_call(&mut store, call, deadline, report.invocation_id.clone(), &mut ready);
        let result = tokio::time::timeout(deadline.remaining(), call).await;
        trace.instantiated(slot_free, ready);
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
        report.memory_limit_bytes = integration.limits.memory_bytes;
        report.elapsed_ms = millis(deadline.elapsed());
        drop(store);
        drop(slot);
        report.take_outbound(&recorder);
        report.prefer_the_hosts_account();
        if let Err(e) = &report.outcome {
            tracing::info!(invocation = %report.invocation_id, kind = e.kind(), "invocation failed: {e}");
        }
        report
    }

    /// Instantiate the action in `store` (noting in `ready` when the instance
    /// was) and make `call`, telling the action the time it has left (minus
    /// [`GUEST_BUDGET_RESERVE`]).
    async fn instantiate_and_call(
        &self,
        store: &mut Store<HostState>,
        call: Call<'_>,
        deadline: ActionDeadline,
        invocation_id: String,
        ready: &mut Option<Instant>,
    ) -> wasmtime::Result<Result<String, ActionError>> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        *ready = Some(Instant::now());
        let action = instance.actionbox_action_action();
        let ctx = CallContext {
            budget_ms: millis(deadline.remaining().saturating_sub(GUEST_BUDGET_RESERVE)),
            invocation_id,
        };
        match call {
            Call::Method { name, input } => action.call_invoke(&mut *store, name, input, &ctx).await,
            Call::TestConnection => action.call_test_connection(&mut *store, &ctx).await,
        }
    }

    /// The store data of one call, from the operator's settings: the
    /// outbound policy (base URL, key and its header, limits, pinned
    /// addresses), hooks that share this component's connections, and what
    /// `wasi:config/store` answers. Fails when the key's header is unsettled.
    fn call_state(
        &self,
        integration: &IntegrationSettings,
        deadline: ActionDeadline,
        trace: &CallTrace,
    ) -> Result<HostState, String> {
        let manifest = self.manifest();
        let credential_header = credential_header(manifest, integration)?;
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
        let hooks = OutboundHooks::new(Arc::new(policy), deadline)
            .with_pool(self.connections.clone())
            .with_trace(trace.requests())
            .with_mode(integration.outbound_mode.clone());
        let mut settings = WasiConfigVariables::new();
        settings.insert("base_url", integration.base_url.to_string());
        Ok(HostState::new(hooks, settings, integration.limits, deadline))
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

/// A store for one call: the memory limiter, the hostcall fuel and the epoch
/// callback that enforces the deadline and the hooks' stop.
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
async fn describe(pre: &SmartActionPre<HostState>, slots: &InstanceSlots, memory_bytes: usize) -> Result<Manifest> {
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

/// The action's result: at most `max_bytes`, and valid JSON.
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
    use crate::manifest::CredentialSpec;
    use crate::outbound::BaseUrl;

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
