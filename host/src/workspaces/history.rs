//! Invocation history: every call's debugger trace, written to the store off
//! the call's path. A call hands its record to a bounded queue and returns;
//! one writer task stores what has queued up in one transaction (up to
//! [`BATCH`] records), keeps the newest `keep_last` of each workspace it
//! wrote to, and drops what is older than `keep_days` now and then. When
//! the store cannot keep up the queue is full and records are dropped and
//! counted (`actionbox_history_dropped_total`), never the calls slowed or
//! the server's memory grown.

use crate::catalog::ActionRun;
use actionbox_runtime::error::InvokeError;
use actionbox_store::{NewInvocation, Retention, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Records waiting for the writer, at most. A trace is at most a few tens of
/// KiB (the recorder's caps), so the queue holds tens of MiB at worst.
pub const HISTORY_QUEUE: usize = 1024;

/// Records stored in one transaction at most.
pub const BATCH: usize = 256;

/// How often the writer drops records older than `keep_days`.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// Where records go.
pub struct History {
    queue: mpsc::Sender<(String, NewInvocation)>,
    dropped: Arc<AtomicU64>,
}

impl History {
    /// Start the writer for `store`, keeping what `retention` says.
    pub fn start(store: Store, retention: Retention) -> Self {
        let (queue, mut records) = mpsc::channel::<(String, NewInvocation)>(HISTORY_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        tokio::spawn(async move {
            let mut last_prune = tokio::time::Instant::now();
            let mut batch = Vec::with_capacity(BATCH);
            while records.recv_many(&mut batch, BATCH).await > 0 {
                if let Err(e) = store.record_invocations(&batch, retention.keep_last).await {
                    lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    tracing::warn!("{} invocations were not kept in history: {e}", batch.len());
                }
                batch.clear();
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

    /// Keep `run` of `workspace` (its trace, which holds no key: the
    /// debugger's redacted view).
    pub fn record(&self, workspace: &str, run: &ActionRun) {
        let outcome = run.report.outcome.as_ref().err().map_or("ok", InvokeError::kind);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let record = NewInvocation {
            action: run.action.clone(),
            integration: run.integration.clone(),
            method: run.method.clone(),
            outcome: outcome.to_string(),
            started_ms: now_ms - run.report.elapsed_ms as i64,
            duration_ms: run.report.elapsed_ms as i64,
            trace: crate::debugger::trace_json(run),
        };
        if self.queue.try_send((workspace.to_string(), record)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped so far (queue full or the store failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
