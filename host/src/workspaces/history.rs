//! Invocation history: every call's debugger trace, written to the store off
//! the call's path. A call hands its record to a bounded queue and returns;
//! one writer task stores what has queued up in one transaction (up to
//! [`BATCH`] records), trims a workspace back to its newest `keep_last`
//! each time it has gained a tenth of that ([`trim_every`]: a trim reads
//! the workspace's whole history, so trimming after every write would cost
//! more than the writes), and drops what is older than `keep_days` now and
//! then. When
//! the store cannot keep up the queue is full and records are dropped and
//! counted (`actionbox_history_dropped_total`), never the calls slowed or
//! the server's memory grown.

use crate::catalog::ActionRun;
use actionbox_runtime::error::InvokeError;
use actionbox_store::{NewInvocation, Retention, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Records waiting for the writer, at most. A trace is at most a few tens of
/// KiB (the recorder's caps), so the queue holds tens of MiB at worst.
pub const HISTORY_QUEUE: usize = 1024;

/// A warning is logged for the first dropped record and every this many after.
const DROP_WARN_EVERY: u64 = 1000;

/// Records stored in one transaction at most.
pub const BATCH: usize = 256;

/// How long the writer waits before it tries a failed batch again.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// How often the writer drops records older than `keep_days`.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// Records a workspace may gain before it is trimmed back to `keep_last`:
/// a tenth of it, so a listing holds at most 10 % more than `keep_last`
/// between trims (and exactly `keep_last` for small values).
pub fn trim_every(keep_last: u32) -> u32 {
    (keep_last / 10).max(1)
}

/// Workspaces whose untrimmed counts the writer tracks at most.
const MAX_TRACKED_WORKSPACES: usize = 100_000;

/// Where records go.
pub struct History {
    queue: mpsc::Sender<(String, ActionRun, i64)>,
    dropped: Arc<AtomicU64>,
}

impl History {
    /// Start the writer for `store`, keeping what `retention` says.
    pub fn start(store: Store, retention: Retention) -> Self {
        let (queue, mut runs) = mpsc::channel::<(String, ActionRun, i64)>(HISTORY_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        tokio::spawn(async move {
            let mut last_prune = tokio::time::Instant::now();
            let mut received = Vec::with_capacity(BATCH);
            // Records written per workspace since it was last trimmed.
            let mut untrimmed: HashMap<String, u32> = HashMap::new();
            while runs.recv_many(&mut received, BATCH).await > 0 {
                // The trace is built here, not on the call's path.
                let batch: Vec<(String, NewInvocation)> = received
                    .drain(..)
                    .map(|(ws, run, ended_ms)| (ws, record_of(&run, ended_ms)))
                    .collect();
                let mut stored = store.record_invocations(&batch).await;
                if stored.is_err() {
                    // Once more after a pause: a busy database is the usual cause.
                    tokio::time::sleep(RETRY_AFTER).await;
                    stored = store.record_invocations(&batch).await;
                }
                if let Err(e) = stored {
                    lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    tracing::warn!("{} invocations were not kept in history: {e}", batch.len());
                }
                if let Some(keep_last) = retention.keep_last {
                    if untrimmed.len() > MAX_TRACKED_WORKSPACES {
                        // Deleted or idle workspaces' counts: forget them (a
                        // workspace then waits a little longer for its trim).
                        untrimmed.clear();
                    }
                    for (ws, _) in &batch {
                        *untrimmed.entry(ws.clone()).or_default() += 1;
                    }
                    let due: Vec<String> = untrimmed
                        .iter()
                        .filter(|(_, n)| **n >= trim_every(keep_last))
                        .map(|(ws, _)| ws.clone())
                        .collect();
                    if !due.is_empty() {
                        match store.keep_last_invocations(&due, keep_last).await {
                            Ok(_) => untrimmed.retain(|ws, _| !due.contains(ws)),
                            Err(e) => tracing::warn!("history could not be trimmed to {keep_last} per workspace: {e}"),
                        }
                    }
                }
                if retention.keep_days.is_some() && last_prune.elapsed() >= PRUNE_EVERY {
                    let by_age = Retention {
                        keep_last: None,
                        keep_days: retention.keep_days,
                    };
                    if let Err(e) = store.prune_invocations(&by_age).await {
                        tracing::warn!(
                            "history older than {:?} days could not be dropped: {e}",
                            retention.keep_days
                        );
                    }
                    last_prune = tokio::time::Instant::now();
                }
            }
        });
        Self { queue, dropped }
    }

    /// Keep `run` of `workspace`: queued as it is, its trace (the
    /// debugger's redacted view, which holds no key) built by the writer.
    pub fn record(&self, workspace: &str, run: ActionRun) {
        let ended_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        if self.queue.try_send((workspace.to_string(), run, ended_ms)).is_err() {
            let before = self.dropped.fetch_add(1, Ordering::Relaxed);
            if before % DROP_WARN_EVERY == 0 {
                tracing::warn!(
                    "the history queue is full: invocations are not being kept ({} so far, \
                     actionbox_history_dropped_total); the store is slower than the calls",
                    before + 1
                );
            }
        }
    }

    /// Records dropped so far (queue full or the store failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The history record of `run`, which ended at `ended_ms`.
fn record_of(run: &ActionRun, ended_ms: i64) -> NewInvocation {
    let outcome = run.report.outcome.as_ref().err().map_or("ok", InvokeError::kind);
    NewInvocation {
        action: run.action.clone(),
        integration: run.integration.clone(),
        method: run.method.clone(),
        outcome: outcome.to_string(),
        started_ms: ended_ms - run.report.elapsed_ms as i64,
        duration_ms: run.report.elapsed_ms as i64,
        trace: crate::debugger::stored_trace_json(run),
    }
}

#[cfg(test)]
mod tests {
    use super::trim_every;

    #[test]
    fn small_histories_are_trimmed_on_every_write_large_ones_every_tenth() {
        assert_eq!(trim_every(1), 1);
        assert_eq!(trim_every(3), 1);
        assert_eq!(trim_every(1000), 100);
    }
}
