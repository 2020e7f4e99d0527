//! Invocation history: every call's debugger trace (already without
//! secrets), queryable per workspace and pruned by retention.
//!
//! Recording is one INSERT and does not bump the change generation: history
//! is not configuration, and writing it must not serialize calls.

use crate::error::{Result, StoreError};
use crate::records::{Invocation, InvocationFilter, InvocationSummary, NewInvocation, Retention};
use crate::store::{clamp_limit, json_column, now_ms, Store};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Rows (or workspace ids) per statement of a batch: 256 rows × 8 values
/// stay far below both backends' limits on bound parameters.
const MAX_ROWS_PER_STATEMENT: usize = 256;

const SUMMARY_COLUMNS: &str = "id, action, integration, method, outcome, started_ms, duration_ms";

impl Store {
    /// Store one invocation of workspace `ws`; returns its id.
    pub async fn record_invocation(&self, ws: &str, record: &NewInvocation) -> Result<i64> {
        // One statement: the row is inserted only if the workspace exists.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO invocations \
             (workspace_id, action, integration, method, outcome, started_ms, duration_ms, trace) \
             SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM workspaces WHERE id = $1 RETURNING id",
        )
        .bind(ws)
        .bind(&record.action)
        .bind(&record.integration)
        .bind(&record.method)
        .bind(&record.outcome)
        .bind(record.started_ms)
        .bind(record.duration_ms)
        .bind(record.trace.to_string())
        .fetch_optional(self.pool())
        .await?;
        id.ok_or_else(|| StoreError::not_found(format!("workspace \"{ws}\"")))
    }

    /// Store a batch of invocations in one transaction (one commit, so one
    /// fsync on SQLite, for the whole batch). Records of workspaces that no
    /// longer exist are skipped. Returns how many were stored.
    pub async fn record_invocations(&self, batch: &[(String, NewInvocation)]) -> Result<u64> {
        // A writing transaction from its start: on SQLite a transaction that
        // read first could not become a writer once another one committed.
        let mut tx = self.begin_exclusive().await?;
        // Which of the batch's workspaces still exist: one query, then one
        // multi-row INSERT, so a batch costs two round trips to the database
        // (each is a hop to sqlx's worker thread on SQLite), not one per call.
        let mut touched: Vec<&str> = batch.iter().map(|(ws, _)| ws.as_str()).collect();
        touched.sort_unstable();
        touched.dedup();
        let mut existing: Vec<String> = Vec::new();
        for chunk in touched.chunks(MAX_ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id FROM workspaces WHERE id IN ({})",
                (1..=chunk.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for ws in chunk {
                query = query.bind(*ws);
            }
            existing.extend(query.fetch_all(&mut *tx).await?);
        }
        let rows: Vec<&(String, NewInvocation)> = batch.iter().filter(|(ws, _)| existing.contains(ws)).collect();
        let mut stored = 0;
        for chunk in rows.chunks(MAX_ROWS_PER_STATEMENT) {
            let values = (0..chunk.len())
                .map(|r| {
                    let b = r * 8;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7,
                        b + 8
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO invocations \
                 (workspace_id, action, integration, method, outcome, started_ms, duration_ms, trace) VALUES {values}"
            );
            let mut query = sqlx::query(&sql);
            for (ws, record) in chunk {
                query = query
                    .bind(ws)
                    .bind(&record.action)
                    .bind(&record.integration)
                    .bind(&record.method)
                    .bind(&record.outcome)
                    .bind(record.started_ms)
                    .bind(record.duration_ms)
                    .bind(record.trace.to_string());
            }
            stored += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Keep only the newest `keep_last` invocations of each of `workspaces`
    /// (by the listing's own order; the index on (workspace_id, started_ms,
    /// id) serves both sides). Returns how many rows were deleted.
    pub async fn keep_last_invocations(&self, workspaces: &[String], keep_last: u32) -> Result<u64> {
        let mut tx = self.begin_exclusive().await?;
        let mut deleted = 0;
        for ws in workspaces {
            deleted += sqlx::query(
                "DELETE FROM invocations WHERE workspace_id = $1 AND id NOT IN \
                 (SELECT id FROM invocations WHERE workspace_id = $1 ORDER BY started_ms DESC, id DESC LIMIT $2)",
            )
            .bind(ws)
            .bind(i64::from(keep_last))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// A workspace's invocations matching `filter`, newest first.
    pub async fn invocations(&self, ws: &str, filter: &InvocationFilter) -> Result<Vec<InvocationSummary>> {
        self.require_workspace_exists(ws).await?;
        // Only placeholders are added to the text; every value is bound.
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM invocations WHERE workspace_id = $1");
        let mut n = 1;
        let mut next = || {
            n += 1;
            n
        };
        if filter.action.is_some() {
            sql.push_str(&format!(" AND action = ${}", next()));
        }
        if filter.outcome.is_some() {
            sql.push_str(&format!(" AND outcome = ${}", next()));
        }
        if filter.since_ms.is_some() {
            sql.push_str(&format!(" AND started_ms >= ${}", next()));
        }
        sql.push_str(&format!(" ORDER BY started_ms DESC, id DESC LIMIT ${}", next()));
        let mut query = sqlx::query(&sql).bind(ws);
        if let Some(action) = &filter.action {
            query = query.bind(action);
        }
        if let Some(outcome) = &filter.outcome {
            query = query.bind(outcome);
        }
        if let Some(since) = filter.since_ms {
            query = query.bind(since);
        }
        let rows = query.bind(clamp_limit(filter.limit)).fetch_all(self.pool()).await?;
        rows.iter().map(summary_from_row).collect()
    }

    /// One invocation of workspace `ws` with its trace.
    pub async fn invocation(&self, ws: &str, id: i64) -> Result<Option<Invocation>> {
        let row = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS}, trace FROM invocations WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(ws)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(Invocation {
                summary: summary_from_row(&row)?,
                trace: json_column(&row, "trace")?,
            })
        })
        .transpose()
    }

    /// Delete history beyond `retention`: per workspace, all but the newest
    /// `keep_last` rows, and every row that started more than `keep_days`
    /// days ago. Returns how many rows were deleted.
    pub async fn prune_invocations(&self, retention: &Retention) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        let mut deleted = 0;
        if let Some(keep_last) = retention.keep_last {
            deleted += sqlx::query(
                "DELETE FROM invocations WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
                 (PARTITION BY workspace_id ORDER BY started_ms DESC, id DESC) AS rn FROM invocations) ranked \
                 WHERE rn > $1)",
            )
            .bind(i64::from(keep_last))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if let Some(keep_days) = retention.keep_days {
            let cutoff = now_ms() - i64::from(keep_days) * 24 * 60 * 60 * 1000;
            deleted += sqlx::query("DELETE FROM invocations WHERE started_ms < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

fn summary_from_row(row: &AnyRow) -> Result<InvocationSummary> {
    Ok(InvocationSummary {
        id: row.try_get("id")?,
        action: row.try_get("action")?,
        integration: row.try_get("integration")?,
        method: row.try_get("method")?,
        outcome: row.try_get("outcome")?,
        started_ms: row.try_get("started_ms")?,
        duration_ms: row.try_get("duration_ms")?,
    })
}
