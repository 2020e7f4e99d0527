//! Custom actions: `actionbox.toml`'s `[[action]]` entries per workspace.

use crate::error::{Result, StoreError};
use crate::records::ActionRecord;
use crate::store::{check_name, check_spec, check_workspace_id, Store, WriteTx};
use crate::workspaces::action_from_row;
use serde_json::Value;

impl Store {
    /// Create or replace action `name` in workspace `ws`; returns the record
    /// and whether it was created. [`StoreError::NotFound`] if the workspace does not exist.
    pub async fn put_action(&self, ws: &str, name: &str, spec: &Value, actor: &str) -> Result<(ActionRecord, bool)> {
        check_workspace_id(ws)?;
        check_name("action name", name)?;
        check_spec("action", spec)?;
        let mut w = self.begin_write().await?;
        w.require_workspace(ws).await?;
        let existing = fetch_action(&mut w, ws, name).await?;
        let record = ActionRecord {
            name: name.to_owned(),
            spec: spec.clone(),
            created_ms: existing.as_ref().map_or(w.now_ms, |e| e.created_ms),
            updated_ms: w.now_ms,
        };
        let sql = if existing.is_some() {
            "UPDATE actions SET spec = $3, created_ms = $4, updated_ms = $5 WHERE workspace_id = $1 AND name = $2"
        } else {
            "INSERT INTO actions (workspace_id, name, spec, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5)"
        };
        sqlx::query(sql)
            .bind(ws)
            .bind(name)
            .bind(spec.to_string())
            .bind(record.created_ms)
            .bind(record.updated_ms)
            .execute(w.conn())
            .await?;
        w.workspace_changed(ws).await?;
        w.audit(
            actor,
            Some(ws),
            "action.put",
            name,
            existing.as_ref().map(|e| &e.spec),
            Some(spec),
        )
        .await?;
        w.commit().await?;
        Ok((record, existing.is_none()))
    }

    /// Delete action `name` of workspace `ws`.
    pub async fn delete_action(&self, ws: &str, name: &str, actor: &str) -> Result<()> {
        let mut w = self.begin_write().await?;
        let Some(existing) = fetch_action(&mut w, ws, name).await? else {
            return Err(StoreError::not_found(format!(
                "action \"{name}\" in workspace \"{ws}\""
            )));
        };
        sqlx::query("DELETE FROM actions WHERE workspace_id = $1 AND name = $2")
            .bind(ws)
            .bind(name)
            .execute(w.conn())
            .await?;
        w.workspace_changed(ws).await?;
        w.audit(actor, Some(ws), "action.delete", name, Some(&existing.spec), None)
            .await?;
        w.commit().await
    }

    /// A workspace's actions, by creation time then name.
    pub async fn actions(&self, ws: &str) -> Result<Vec<ActionRecord>> {
        self.require_workspace_exists(ws).await?;
        let rows = sqlx::query(
            "SELECT name, spec, created_ms, updated_ms FROM actions WHERE workspace_id = $1 ORDER BY created_ms, name",
        )
        .bind(ws)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(action_from_row).collect()
    }
}

/// Action `name` of workspace `ws` as this change sees it.
async fn fetch_action(w: &mut WriteTx, ws: &str, name: &str) -> Result<Option<ActionRecord>> {
    let row =
        sqlx::query("SELECT name, spec, created_ms, updated_ms FROM actions WHERE workspace_id = $1 AND name = $2")
            .bind(ws)
            .bind(name)
            .fetch_optional(w.conn())
            .await?;
    row.as_ref().map(action_from_row).transpose()
}
