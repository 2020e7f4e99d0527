//! Workspaces: create, list, delete, quotas, and the consistent snapshot a
//! server builds a workspace's catalog from.

use crate::error::{Result, StoreError};
use crate::integrations::{integration_from_row, INTEGRATION_COLUMNS};
use crate::records::{ActionRecord, Quotas, Workspace, WorkspaceSnapshot};
use crate::store::{check_workspace_id, json_column, Store, WriteTx};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

const WORKSPACE_COLUMNS: &str = "id, display_name, created_ms, version, max_concurrent_calls, calls_per_minute";

impl Store {
    /// Create a workspace with default quotas. [`StoreError::Conflict`] if the id is taken.
    pub async fn create_workspace(&self, id: &str, display_name: &str, actor: &str) -> Result<Workspace> {
        check_workspace_id(id)?;
        if display_name.chars().count() > 200 || display_name.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                "the display name must be at most 200 characters without control characters",
            ));
        }
        let mut w = self.begin_write().await?;
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(w.conn())
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict {
                what: format!("workspace \"{id}\""),
            });
        }
        let quotas = Quotas::default();
        let workspace = Workspace {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            created_ms: w.now_ms,
            version: w.generation,
            quotas,
        };
        sqlx::query(
            "INSERT INTO workspaces (id, display_name, created_ms, version, max_concurrent_calls, calls_per_minute) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(display_name)
        .bind(w.now_ms)
        .bind(w.generation)
        .bind(i64::from(quotas.max_concurrent_calls))
        .bind(i64::from(quotas.calls_per_minute))
        .execute(w.conn())
        .await?;
        w.workspace_changed(id).await?;
        w.audit(
            actor,
            Some(id),
            "workspace.create",
            id,
            None,
            Some(&workspace_audit(&workspace)),
        )
        .await?;
        w.commit().await?;
        Ok(workspace)
    }

    /// Every workspace, ordered by id.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>> {
        let rows = sqlx::query(&format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces ORDER BY id"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(workspace_from_row).collect()
    }

    /// One workspace, if it exists.
    pub async fn workspace(&self, id: &str) -> Result<Option<Workspace>> {
        let row = sqlx::query(&format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    /// Delete a workspace with its integrations, actions, tokens and
    /// invocation history. Its audit entries stay (the log is append-only).
    pub async fn delete_workspace(&self, id: &str, actor: &str) -> Result<()> {
        let mut w = self.begin_write().await?;
        let workspace = fetch_workspace(&mut w, id).await?;
        // Children first, explicitly: the result does not depend on the
        // foreign-key cascade being enabled on the connection.
        for table in ["invocations", "tokens", "actions", "integrations"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE workspace_id = $1"))
                .bind(id)
                .execute(w.conn())
                .await?;
        }
        sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(id)
            .execute(w.conn())
            .await?;
        w.workspace_changed(id).await?;
        w.audit(
            actor,
            Some(id),
            "workspace.delete",
            id,
            Some(&workspace_audit(&workspace)),
            None,
        )
        .await?;
        w.commit().await
    }

    /// Replace a workspace's quotas (each at least 1).
    pub async fn set_quotas(&self, id: &str, quotas: Quotas, actor: &str) -> Result<Workspace> {
        if quotas.max_concurrent_calls == 0 || quotas.calls_per_minute == 0 {
            return Err(StoreError::invalid(
                "quotas must be at least 1 (max_concurrent_calls, calls_per_minute)",
            ));
        }
        let mut w = self.begin_write().await?;
        let before = fetch_workspace(&mut w, id).await?;
        sqlx::query("UPDATE workspaces SET max_concurrent_calls = $1, calls_per_minute = $2 WHERE id = $3")
            .bind(i64::from(quotas.max_concurrent_calls))
            .bind(i64::from(quotas.calls_per_minute))
            .bind(id)
            .execute(w.conn())
            .await?;
        w.workspace_changed(id).await?;
        let after = Workspace {
            quotas,
            version: w.generation,
            ..before.clone()
        };
        w.audit(
            actor,
            Some(id),
            "workspace.quotas",
            id,
            Some(&workspace_audit(&before)),
            Some(&workspace_audit(&after)),
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }

    /// The workspace, its integrations (with sealed keys) and its actions,
    /// read in one transaction so they belong together (the workspace's
    /// `version` says which change they reflect). None if it does not exist.
    pub async fn snapshot(&self, ws: &str) -> Result<Option<WorkspaceSnapshot>> {
        let mut tx = self.begin_snapshot().await?;
        let row = sqlx::query(&format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1"))
            .bind(ws)
            .fetch_optional(&mut *tx)
            .await?;
        let workspace = match row {
            Some(row) => workspace_from_row(&row)?,
            None => return Ok(None),
        };
        let rows = sqlx::query(&format!(
            "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE workspace_id = $1 ORDER BY created_ms, name"
        ))
        .bind(ws)
        .fetch_all(&mut *tx)
        .await?;
        let integrations = rows.iter().map(integration_from_row).collect::<Result<Vec<_>>>()?;
        let rows = sqlx::query(
            "SELECT name, spec, created_ms, updated_ms FROM actions WHERE workspace_id = $1 ORDER BY created_ms, name",
        )
        .bind(ws)
        .fetch_all(&mut *tx)
        .await?;
        let actions = rows.iter().map(action_from_row).collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Some(WorkspaceSnapshot {
            workspace,
            integrations,
            actions,
        }))
    }
}

/// Workspace `id` as this change sees it, or [`StoreError::NotFound`].
async fn fetch_workspace(w: &mut WriteTx, id: &str) -> Result<Workspace> {
    let row = sqlx::query(&format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1"))
        .bind(id)
        .fetch_optional(w.conn())
        .await?;
    match row {
        Some(row) => workspace_from_row(&row),
        None => Err(StoreError::not_found(format!("workspace \"{id}\""))),
    }
}

/// What the audit log shows of a workspace.
fn workspace_audit(w: &Workspace) -> Value {
    json!({ "display_name": w.display_name, "quotas": w.quotas })
}

fn workspace_from_row(row: &AnyRow) -> Result<Workspace> {
    Ok(Workspace {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        created_ms: row.try_get("created_ms")?,
        version: row.try_get("version")?,
        quotas: Quotas {
            max_concurrent_calls: stored_u32(row, "max_concurrent_calls")?,
            calls_per_minute: stored_u32(row, "calls_per_minute")?,
        },
    })
}

/// A u32 the store wrote as BIGINT.
fn stored_u32(row: &AnyRow, column: &str) -> Result<u32> {
    let v: i64 = row.try_get(column)?;
    u32::try_from(v).map_err(|_| StoreError::Database(format!("stored {column} {v} is out of range")))
}

pub(crate) fn action_from_row(row: &AnyRow) -> Result<ActionRecord> {
    Ok(ActionRecord {
        name: row.try_get("name")?,
        spec: json_column(row, "spec")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}
