//! Components: content-addressed by SHA-256 and shared by every workspace,
//! so 10,000 workspaces using one component store (and compile) it once.

use crate::error::{Result, StoreError};
use crate::records::ComponentInfo;
use crate::secret::sha256;
use crate::store::{json_column, Store};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

const COMPONENT_COLUMNS: &str = "sha256, size, kind, manifest, registered_ms";

impl Store {
    /// Store `bytes` under their SHA-256 (lower-case hex, computed here).
    /// Returns the info and whether it was new; registering the same bytes
    /// again changes nothing and writes no audit entry. `kind` and
    /// `manifest` are what the host's check found.
    pub async fn put_component(
        &self,
        bytes: &[u8],
        kind: &str,
        manifest: &Value,
        actor: &str,
    ) -> Result<(ComponentInfo, bool)> {
        let digest = hex::encode(sha256(bytes));
        if let Some(existing) = self.component(&digest).await? {
            return Ok((existing, false));
        }
        let mut w = self.begin_write().await?;
        let row = sqlx::query(&format!("SELECT {COMPONENT_COLUMNS} FROM components WHERE sha256 = $1"))
            .bind(&digest)
            .fetch_optional(w.conn())
            .await?;
        if let Some(row) = row {
            // Another writer registered it meanwhile.
            return Ok((component_from_row(&row)?, false));
        }
        let info = ComponentInfo {
            sha256: digest,
            size: bytes.len() as u64,
            kind: kind.to_owned(),
            manifest: manifest.clone(),
            registered_ms: w.now_ms,
        };
        let size =
            i64::try_from(bytes.len()).map_err(|_| StoreError::invalid("the component is too large to store"))?;
        sqlx::query(
            "INSERT INTO components (sha256, size, kind, manifest, bytes, registered_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&info.sha256)
        .bind(size)
        .bind(kind)
        .bind(manifest.to_string())
        .bind(bytes)
        .bind(w.now_ms)
        .execute(w.conn())
        .await?;
        let after = json!({ "sha256": info.sha256, "size": info.size, "kind": info.kind });
        w.audit(actor, None, "component.register", &info.sha256, None, Some(&after))
            .await?;
        w.commit().await?;
        Ok((info, true))
    }

    /// Every registered component, oldest first.
    pub async fn components(&self) -> Result<Vec<ComponentInfo>> {
        let rows = sqlx::query(&format!(
            "SELECT {COMPONENT_COLUMNS} FROM components ORDER BY registered_ms, sha256"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(component_from_row).collect()
    }

    /// One component by digest (`"sha256:…"` as in a spec, or the bare hex).
    pub async fn component(&self, sha256: &str) -> Result<Option<ComponentInfo>> {
        let digest = sha256.strip_prefix("sha256:").unwrap_or(sha256);
        let row = sqlx::query(&format!("SELECT {COMPONENT_COLUMNS} FROM components WHERE sha256 = $1"))
            .bind(digest)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(component_from_row).transpose()
    }

    /// A component's bytes by digest (`"sha256:…"` or the bare hex).
    pub async fn component_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let digest = sha256.strip_prefix("sha256:").unwrap_or(sha256);
        Ok(sqlx::query_scalar("SELECT bytes FROM components WHERE sha256 = $1")
            .bind(digest)
            .fetch_optional(self.pool())
            .await?)
    }
}

fn component_from_row(row: &AnyRow) -> Result<ComponentInfo> {
    let size: i64 = row.try_get("size")?;
    Ok(ComponentInfo {
        sha256: row.try_get("sha256")?,
        size: u64::try_from(size).map_err(|_| StoreError::Database(format!("stored size {size} is negative")))?,
        kind: row.try_get("kind")?,
        manifest: json_column(row, "manifest")?,
        registered_ms: row.try_get("registered_ms")?,
    })
}
