//! The `[integration.limits]` table: each knob in the unit an operator
//! writes (MiB, KiB, counts), checked against its bounds and resolved into the
//! sandbox's [`SandboxLimits`].

use super::raw::Locator;
use actionbox_runtime::limits::SandboxLimits;
use anyhow::Result;
use serde::Deserialize;
use toml::Spanned;

/// `[integration.limits]` as written; an absent knob keeps the sandbox's default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    memory_mib: Option<Spanned<u64>>,
    max_outbound_requests: Option<Spanned<u32>>,
    max_response_body_kib: Option<Spanned<u64>>,
    max_request_body_kib: Option<Spanned<u64>>,
    max_result_kib: Option<Spanned<u64>>,
    max_log_kib: Option<Spanned<u64>>,
    max_host_resources: Option<Spanned<u64>>,
    max_refused_requests: Option<Spanned<u64>>,
}

impl RawLimits {
    /// The sandbox limits of integration `integration`: the defaults, with
    /// each knob the file sets checked against its bounds.
    pub(super) fn resolve(&self, at: &Locator<'_>, integration: &str) -> Result<SandboxLimits> {
        let mut limits = SandboxLimits::default();
        let check = |v: &Spanned<u64>, field: &str, min: u64, max: u64| -> Result<u64> {
            let n = *v.get_ref();
            if (min..=max).contains(&n) {
                Ok(n)
            } else {
                Err(at.error(
                    at.line(v.span().start),
                    format!(
                        "integration `{integration}` field `limits.{field}`: {n} is out of range; allowed {min}–{max}"
                    ),
                ))
            }
        };
        if let Some(v) = &self.memory_mib {
            // The same bound the engine checks its memory reservation against.
            let max_mib = (actionbox_runtime::limits::MAX_MEMORY_BYTES >> 20) as u64;
            limits.memory_bytes = usize::try_from(check(v, "memory_mib", 1, max_mib)? * 1024 * 1024)?;
        }
        if let Some(v) = &self.max_outbound_requests {
            let n = *v.get_ref();
            if !(1..=1000).contains(&n) {
                return Err(at.error(
                    at.line(v.span().start),
                    format!(
                        "integration `{integration}` field `limits.max_outbound_requests`: {n} is out of range; allowed 1–1000"
                    ),
                ));
            }
            limits.max_outbound_requests = n;
        }
        if let Some(v) = &self.max_response_body_kib {
            limits.max_response_body_bytes = check(v, "max_response_body_kib", 1, 1024 * 1024)? * 1024;
        }
        if let Some(v) = &self.max_request_body_kib {
            limits.max_request_body_bytes = check(v, "max_request_body_kib", 0, 1024 * 1024)? * 1024;
        }
        if let Some(v) = &self.max_result_kib {
            limits.max_result_bytes = usize::try_from(check(v, "max_result_kib", 1, 64 * 1024)? * 1024)?;
        }
        if let Some(v) = &self.max_log_kib {
            limits.max_log_bytes = usize::try_from(check(v, "max_log_kib", 0, 64 * 1024)? * 1024)?;
        }
        if let Some(v) = &self.max_host_resources {
            limits.max_host_resources = usize::try_from(check(v, "max_host_resources", 64, 65_536)?)?;
        }
        if let Some(v) = &self.max_refused_requests {
            limits.max_refused_requests = u32::try_from(check(v, "max_refused_requests", 1, 1000)?)?;
        }
        Ok(limits)
    }

    /// Refuse a `memory_mib` above `max_bytes` (what a workspace's shared
    /// engine reserves per instance).
    pub(super) fn check_memory_at_most(&self, max_bytes: usize, at: &Locator<'_>, integration: &str) -> Result<()> {
        let max_mib = (max_bytes >> 20) as u64;
        match &self.memory_mib {
            Some(v) if *v.get_ref() > max_mib => Err(at.error(
                at.line(v.span().start),
                format!(
                    "integration `{integration}` field `limits.memory_mib`: {} is more than this server allows \
                     ({max_mib}); lower it (the operator sets the bound with --max-memory-mib)",
                    v.get_ref()
                ),
            )),
            _ => Ok(()),
        }
    }
}
