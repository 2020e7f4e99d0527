//! Workspace tokens: `abx_<id>_<secret>`, with a public 12-hex id and a
//! 64-hex secret (32 random bytes). The store keeps the id, the workspace,
//! the scopes, a label and SHA-256(secret) — never the secret, which the
//! caller of [`Store::mint_token`] shows once.

use crate::error::{Result, StoreError};
use crate::records::{Scope, TokenInfo};
use crate::secret::{digests_equal, random_bytes, sha256, SecretText};
use crate::store::{check_name, check_workspace_id, Store};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

/// How every workspace token begins, so a server can tell them from other
/// bearer tokens (OAuth access tokens) before any lookup.
pub const TOKEN_PREFIX: &str = "abx_";
const ID_HEX_LEN: usize = 12;
const SECRET_HEX_LEN: usize = 64;

impl Store {
    /// Mint a token for workspace `ws` with `scopes` (at least one). Returns
    /// its info and its text, which exists nowhere else: show it once.
    pub async fn mint_token(
        &self,
        ws: &str,
        scopes: &[Scope],
        label: &str,
        actor: &str,
    ) -> Result<(TokenInfo, SecretText)> {
        check_workspace_id(ws)?;
        if scopes.is_empty() {
            return Err(StoreError::invalid(
                "a token needs at least one scope: \"admin\" or \"assistant\"",
            ));
        }
        if !label.is_empty() {
            check_name("token label", label)?;
        }
        let mut scopes_sorted = scopes.to_vec();
        scopes_sorted.sort_by_key(|s| s.as_str());
        scopes_sorted.dedup();
        let mut id_bytes = [0u8; ID_HEX_LEN / 2];
        random_bytes(&mut id_bytes);
        let mut secret_bytes = zeroize::Zeroizing::new([0u8; SECRET_HEX_LEN / 2]);
        random_bytes(&mut secret_bytes[..]);
        let id = hex::encode(id_bytes);
        let secret_hex = zeroize::Zeroizing::new(hex::encode(&secret_bytes[..]));
        let text = SecretText::new(format!("{TOKEN_PREFIX}{id}_{}", secret_hex.as_str()));

        let mut w = self.begin_write().await?;
        w.require_workspace(ws).await?;
        let info = TokenInfo {
            id: id.clone(),
            workspace: ws.to_owned(),
            scopes: scopes_sorted,
            label: label.to_owned(),
            created_ms: w.now_ms,
        };
        sqlx::query(
            "INSERT INTO tokens (id, workspace_id, scopes, label, secret_sha256, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(ws)
        .bind(scopes_text(&info.scopes))
        .bind(label)
        .bind(sha256(secret_hex.as_bytes()).to_vec())
        .bind(w.now_ms)
        .execute(w.conn())
        .await?;
        w.workspace_changed(ws).await?;
        w.audit(actor, Some(ws), "token.mint", &id, None, Some(&token_audit(&info)))
            .await?;
        w.commit().await?;
        Ok((info, text))
    }

    /// The token `presented` stands for: None if it is malformed, unknown or
    /// revoked. The secret's digest is compared in constant time; the token
    /// is never logged.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<TokenInfo>> {
        let Some((id, secret)) = parse_token(presented) else {
            return Ok(None);
        };
        let row =
            sqlx::query("SELECT id, workspace_id, scopes, label, created_ms, secret_sha256 FROM tokens WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: Vec<u8> = row.try_get("secret_sha256")?;
        if !digests_equal(&sha256(secret.as_bytes()), &stored) {
            return Ok(None);
        }
        token_from_row(&row).map(Some)
    }

    /// A workspace's live tokens, oldest first (never their secrets).
    pub async fn tokens(&self, ws: &str) -> Result<Vec<TokenInfo>> {
        self.require_workspace_exists(ws).await?;
        let rows = sqlx::query(
            "SELECT id, workspace_id, scopes, label, created_ms FROM tokens WHERE workspace_id = $1 \
             ORDER BY created_ms, id",
        )
        .bind(ws)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revoke token `id` of workspace `ws`: it stops authenticating at once,
    /// on every replica (authentication reads the database).
    pub async fn revoke_token(&self, ws: &str, id: &str, actor: &str) -> Result<()> {
        let mut w = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT id, workspace_id, scopes, label, created_ms FROM tokens WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws)
        .bind(id)
        .fetch_optional(w.conn())
        .await?;
        let Some(info) = row.as_ref().map(token_from_row).transpose()? else {
            return Err(StoreError::not_found(format!("token {id} in workspace \"{ws}\"")));
        };
        sqlx::query("DELETE FROM tokens WHERE workspace_id = $1 AND id = $2")
            .bind(ws)
            .bind(id)
            .execute(w.conn())
            .await?;
        w.workspace_changed(ws).await?;
        w.audit(actor, Some(ws), "token.revoke", id, Some(&token_audit(&info)), None)
            .await?;
        w.commit().await
    }
}

/// Split `abx_<12 hex>_<64 hex>` into id and secret; None if it is anything else.
fn parse_token(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let lower_hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (lower_hex(id, ID_HEX_LEN) && lower_hex(secret, SECRET_HEX_LEN)).then_some((id, secret))
}

fn scopes_text(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

/// What the audit log shows of a token (no secret, no digest).
fn token_audit(info: &TokenInfo) -> Value {
    json!({ "id": info.id, "scopes": info.scopes, "label": info.label })
}

fn token_from_row(row: &AnyRow) -> Result<TokenInfo> {
    let scopes: String = row.try_get("scopes")?;
    let scopes = scopes
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Scope::parse(s).ok_or_else(|| StoreError::Database(format!("stored token scope {s:?} is unknown"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(TokenInfo {
        id: row.try_get("id")?,
        workspace: row.try_get("workspace_id")?,
        scopes,
        label: row.try_get("label")?,
        created_ms: row.try_get("created_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_token;

    #[test]
    fn only_well_formed_tokens_parse() {
        let id = "0123456789ab";
        let secret = "a".repeat(64);
        assert_eq!(parse_token(&format!("abx_{id}_{secret}")), Some((id, secret.as_str())));
        assert_eq!(parse_token(&format!("abx_{id}_{}", "A".repeat(64))), None);
        assert_eq!(parse_token(&format!("abx_{id}_{}", "a".repeat(63))), None);
        assert_eq!(parse_token(&format!("abx_{id}x_{secret}")), None);
        assert_eq!(parse_token(&format!("xyz_{id}_{secret}")), None);
        assert_eq!(parse_token(""), None);
        assert_eq!(parse_token("abx_"), None);
    }
}
