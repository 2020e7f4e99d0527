//! Reading the audit log. Entries are written only by the change that they
//! describe (`WriteTx::audit`, same transaction); nothing updates or deletes them.

use crate::error::Result;
use crate::records::{AuditEntry, AuditFilter};
use crate::store::{clamp_limit, optional_json_column, Store};
use sqlx::Row;

impl Store {
    /// Audit entries matching `filter`, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        // Only placeholders are added to the text; every value is bound.
        let mut sql = String::from(
            "SELECT seq, at_ms, actor, workspace_id, action, target, before_json, after_json FROM audit_log WHERE 1 = 1",
        );
        let mut n = 0;
        if filter.workspace.is_some() {
            n += 1;
            sql.push_str(&format!(" AND workspace_id = ${n}"));
        }
        if filter.since_ms.is_some() {
            n += 1;
            sql.push_str(&format!(" AND at_ms >= ${n}"));
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql);
        if let Some(ws) = &filter.workspace {
            query = query.bind(ws);
        }
        if let Some(since) = filter.since_ms {
            query = query.bind(since);
        }
        let rows = query.bind(clamp_limit(filter.limit)).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    seq: row.try_get("seq")?,
                    at_ms: row.try_get("at_ms")?,
                    actor: row.try_get("actor")?,
                    workspace: row.try_get("workspace_id")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    before: optional_json_column(row, "before_json")?,
                    after: optional_json_column(row, "after_json")?,
                })
            })
            .collect()
    }
}
