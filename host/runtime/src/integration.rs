//! An integration's settings: where the upstream API is, how long a call may
//! take, which key to inject and the per-instance limits — everything the
//! operator decides for a call, none of it from the action.
//!
//! The base URL and the credential header are the outbound policy's types
//! (`outbound/base_url.rs`, `outbound/policy.rs`): they are checked where
//! they are enforced.

use crate::deadline::ActionTimeout;
use crate::limits::SandboxLimits;
use crate::outbound::{BaseUrl, CredentialHeader, OutboundMode};
use crate::secret::ApiKey;
use crate::telemetry::CallLabels;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Everything the host needs to run an action for one integration.
#[derive(Debug, Clone)]
pub struct IntegrationSettings {
    /// Where the upstream API lives; the only host the action may reach.
    pub base_url: BaseUrl,
    /// Wall-clock limit of one call (10–180 s).
    pub timeout: ActionTimeout,
    /// The key; `None` sends no key.
    pub api_key: Option<ApiKey>,
    /// The header the key goes in, as the operator names it. `None`: the
    /// built-in kind registry's header for the component's kind
    /// (`KindRegistry::builtin`, `kinds.rs`); for a kind it does not know,
    /// no key is sent and a call that needs one fails.
    pub credential_header: Option<CredentialHeader>,
    /// Per-call sandbox limits.
    pub limits: SandboxLimits,
    /// Addresses to use for host names instead of DNS (like curl's
    /// `--resolve`); the address checks still apply.
    pub pinned_addresses: BTreeMap<String, Vec<IpAddr>>,
    /// Whether outbound requests carry the call's W3C trace context
    /// (`traceparent`) upstream. Off by default: the platform's trace ids
    /// are none of a third-party API's business unless the operator says so.
    pub propagate_trace: bool,
    /// What the call's trace says about it (action, integration, workspace).
    pub labels: CallLabels,
    /// Whether the call's requests go to the upstream (`Live`), go there and
    /// are kept for a recording file (`actionbox debug --record`), or are
    /// answered from one (`actionbox run --replay`). Only the operator's
    /// command line sets it; the policy admits or refuses each request the
    /// same in every mode (`outbound/replay.rs`).
    pub outbound_mode: OutboundMode,
}

impl IntegrationSettings {
    /// Settings with default timeout and limits.
    pub fn new(base_url: BaseUrl, api_key: Option<ApiKey>) -> Self {
        Self {
            base_url,
            timeout: ActionTimeout::default(),
            api_key,
            credential_header: None,
            limits: SandboxLimits::default(),
            pinned_addresses: BTreeMap::new(),
            propagate_trace: false,
            labels: CallLabels::default(),
            outbound_mode: OutboundMode::Live,
        }
    }
}
