//! Integrations and their sealed API keys, and master key rotation.
//!
//! A key enters through [`KeyUpdate::Set`], is sealed before it reaches SQL,
//! and leaves only through [`Store::unseal`]; listings and audit entries show
//! "set (fingerprint …)" at most.

use crate::error::{Result, StoreError};
use crate::records::{IntegrationRecord, KeyInfo, KeyUpdate};
use crate::secret::{key_fingerprint, MasterKey, SealedKey};
use crate::store::{check_name, check_spec, check_workspace_id, json_column, Store, WriteTx};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

pub(crate) const INTEGRATION_COLUMNS: &str = "workspace_id, name, spec, created_ms, updated_ms, key_fingerprint, \
     key_set_ms, key_master_id, key_nonce, key_ciphertext";

/// The stored key columns of one integration row.
struct StoredKey {
    info: KeyInfo,
    sealed: SealedKey,
}

impl Store {
    /// Create or replace integration `name` in workspace `ws`. `key` says
    /// what happens to its API key (see [`KeyUpdate`]). Returns the record and
    /// whether it was created. [`StoreError::NotFound`] if the workspace does
    /// not exist; [`StoreError::NoMasterKey`] when setting a key without one.
    pub async fn put_integration(
        &self,
        ws: &str,
        name: &str,
        spec: &Value,
        key: KeyUpdate,
        actor: &str,
    ) -> Result<(IntegrationRecord, bool)> {
        check_workspace_id(ws)?;
        check_name("integration name", name)?;
        check_spec("integration", spec)?;
        if let KeyUpdate::Set(secret) = &key {
            if secret.expose().is_empty() {
                return Err(StoreError::invalid(
                    "the API key is empty: give the key, or clear it instead",
                ));
            }
        }
        let mut w = self.begin_write().await?;
        w.require_workspace(ws).await?;
        let existing = fetch_integration(&mut w, ws, name).await?;
        let (created_ms, stored_key) = match &existing {
            Some((record, sealed)) => (
                record.created_ms,
                match (record.key.clone(), sealed.clone()) {
                    (Some(info), Some(sealed)) => Some(StoredKey { info, sealed }),
                    _ => None,
                },
            ),
            None => (w.now_ms, None),
        };
        let new_key = match key {
            KeyUpdate::Keep => stored_key,
            KeyUpdate::Clear => None,
            KeyUpdate::Set(secret) => {
                // Read the master key inside the write: a rotation cannot slip in between.
                let master = self.master_key()?;
                Some(StoredKey {
                    info: KeyInfo {
                        fingerprint: key_fingerprint(&secret),
                        set_ms: w.now_ms,
                    },
                    sealed: master.seal(ws, name, &secret)?,
                })
            }
        };
        let record = IntegrationRecord {
            name: name.to_owned(),
            spec: spec.clone(),
            key: new_key.as_ref().map(|k| k.info.clone()),
            created_ms,
            updated_ms: w.now_ms,
        };
        let sql = if existing.is_some() {
            "UPDATE integrations SET spec = $3, created_ms = $4, updated_ms = $5, key_fingerprint = $6, \
             key_set_ms = $7, key_master_id = $8, key_nonce = $9, key_ciphertext = $10 \
             WHERE workspace_id = $1 AND name = $2"
        } else {
            "INSERT INTO integrations (workspace_id, name, spec, created_ms, updated_ms, key_fingerprint, \
             key_set_ms, key_master_id, key_nonce, key_ciphertext) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        };
        sqlx::query(sql)
            .bind(ws)
            .bind(name)
            .bind(spec.to_string())
            .bind(created_ms)
            .bind(w.now_ms)
            .bind(new_key.as_ref().map(|k| k.info.fingerprint.clone()))
            .bind(new_key.as_ref().map(|k| k.info.set_ms))
            .bind(new_key.as_ref().map(|k| k.sealed.master_id.clone()))
            .bind(new_key.as_ref().map(|k| k.sealed.nonce.clone()))
            .bind(new_key.as_ref().map(|k| k.sealed.ciphertext.clone()))
            .execute(w.conn())
            .await?;
        w.workspace_changed(ws).await?;
        let before = existing.as_ref().map(|(r, _)| integration_audit(r));
        w.audit(
            actor,
            Some(ws),
            "integration.put",
            name,
            before.as_ref(),
            Some(&integration_audit(&record)),
        )
        .await?;
        w.commit().await?;
        Ok((record, existing.is_none()))
    }

    /// Delete integration `name` of workspace `ws` (and its sealed key).
    pub async fn delete_integration(&self, ws: &str, name: &str, actor: &str) -> Result<()> {
        let mut w = self.begin_write().await?;
        let Some((record, _)) = fetch_integration(&mut w, ws, name).await? else {
            return Err(StoreError::not_found(format!(
                "integration \"{name}\" in workspace \"{ws}\""
            )));
        };
        sqlx::query("DELETE FROM integrations WHERE workspace_id = $1 AND name = $2")
            .bind(ws)
            .bind(name)
            .execute(w.conn())
            .await?;
        w.workspace_changed(ws).await?;
        w.audit(
            actor,
            Some(ws),
            "integration.delete",
            name,
            Some(&integration_audit(&record)),
            None,
        )
        .await?;
        w.commit().await
    }

    /// A workspace's integrations, by creation time then name; keys as fingerprints only.
    pub async fn integrations(&self, ws: &str) -> Result<Vec<IntegrationRecord>> {
        self.require_workspace_exists(ws).await?;
        let rows = sqlx::query(&format!(
            "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE workspace_id = $1 ORDER BY created_ms, name"
        ))
        .bind(ws)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| integration_from_row(row).map(|(record, _)| record))
            .collect()
    }

    /// Re-seal every stored API key under `new` in one transaction and make
    /// `new` this store's key; returns how many keys were re-sealed. Keys
    /// already under `new` are left as they are; every other key must open
    /// under the current key (or the previous one, [`Store::also_open_with`]),
    /// or nothing changes.
    pub async fn rotate_master_key(&self, new: MasterKey, actor: &str) -> Result<usize> {
        let mut w = self.begin_write().await?;
        let current = self.master_key()?;
        let rows = sqlx::query(&format!(
            "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE key_ciphertext IS NOT NULL \
             ORDER BY workspace_id, name"
        ))
        .fetch_all(w.conn())
        .await?;
        let mut resealed = Vec::with_capacity(rows.len());
        for row in &rows {
            let (_, sealed) = integration_from_row(row)?;
            let Some(sealed) = sealed else { continue };
            if sealed.master_id == new.id() {
                // Sealed under the new key already (by a replica that runs
                // with it while the rotation is under way): nothing to do.
                continue;
            }
            // Under the current key, or the previous one this store also opens.
            let secret = self.unseal(&sealed)?;
            resealed.push(new.seal(&sealed.workspace, &sealed.integration, &secret)?);
        }
        let mut changed_workspaces: Vec<&str> = Vec::new();
        for sealed in &resealed {
            sqlx::query(
                "UPDATE integrations SET key_master_id = $1, key_nonce = $2, key_ciphertext = $3 \
                 WHERE workspace_id = $4 AND name = $5",
            )
            .bind(&sealed.master_id)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(&sealed.workspace)
            .bind(&sealed.integration)
            .execute(w.conn())
            .await?;
            if changed_workspaces.last() != Some(&sealed.workspace.as_str()) {
                changed_workspaces.push(&sealed.workspace);
            }
        }
        for ws in changed_workspaces {
            w.workspace_changed(ws).await?;
        }
        let count = resealed.len();
        w.audit(
            actor,
            None,
            "store.rotate_master_key",
            "master key",
            Some(&json!({ "master_key": current.id() })),
            Some(&json!({ "master_key": new.id(), "resealed": count })),
        )
        .await?;
        // Switch before committing: writers queued behind this transaction
        // must seal under the new key. Undone if the commit fails.
        let old = self.install_master_key(new);
        if let Err(e) = w.commit().await {
            self.restore_master_key(old);
            return Err(e);
        }
        tracing::info!(count, "master key rotated");
        Ok(count)
    }

    /// NotFound unless the workspace exists (for listings).
    pub(crate) async fn require_workspace_exists(&self, ws: &str) -> Result<()> {
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM workspaces WHERE id = $1")
            .bind(ws)
            .fetch_optional(self.pool())
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::not_found(format!("workspace \"{ws}\""))),
        }
    }
}

async fn fetch_integration(
    w: &mut WriteTx,
    ws: &str,
    name: &str,
) -> Result<Option<(IntegrationRecord, Option<SealedKey>)>> {
    let row = sqlx::query(&format!(
        "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE workspace_id = $1 AND name = $2"
    ))
    .bind(ws)
    .bind(name)
    .fetch_optional(w.conn())
    .await?;
    row.as_ref().map(integration_from_row).transpose()
}

/// What the audit log shows of an integration: its spec and whether a key is set.
fn integration_audit(record: &IntegrationRecord) -> Value {
    let api_key = match &record.key {
        Some(k) => format!("set (fingerprint {})", k.fingerprint),
        None => "not set".to_owned(),
    };
    json!({ "spec": record.spec, "api_key": api_key })
}

/// An integration row ([`INTEGRATION_COLUMNS`]) as its record and sealed key.
pub(crate) fn integration_from_row(row: &AnyRow) -> Result<(IntegrationRecord, Option<SealedKey>)> {
    let workspace: String = row.try_get("workspace_id")?;
    let name: String = row.try_get("name")?;
    let fingerprint: Option<String> = row.try_get("key_fingerprint")?;
    let set_ms: Option<i64> = row.try_get("key_set_ms")?;
    let master_id: Option<String> = row.try_get("key_master_id")?;
    let nonce: Option<Vec<u8>> = row.try_get("key_nonce")?;
    let ciphertext: Option<Vec<u8>> = row.try_get("key_ciphertext")?;
    let (key, sealed) = match (fingerprint, set_ms, master_id, nonce, ciphertext) {
        (Some(fingerprint), Some(set_ms), Some(master_id), Some(nonce), Some(ciphertext)) => (
            Some(KeyInfo { fingerprint, set_ms }),
            Some(SealedKey {
                workspace: workspace.clone(),
                integration: name.clone(),
                master_id,
                nonce,
                ciphertext,
            }),
        ),
        _ => (None, None),
    };
    Ok((
        IntegrationRecord {
            name,
            spec: json_column(row, "spec")?,
            key,
            created_ms: row.try_get("created_ms")?,
            updated_ms: row.try_get("updated_ms")?,
        },
        sealed,
    ))
}
