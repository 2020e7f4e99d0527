//! The change feed replicas poll: a generation counter bumped by every
//! change (see `store.rs`) and the workspaces each generation touched.

use crate::error::Result;
use crate::store::Store;

impl Store {
    /// The current generation and the ids of the workspaces changed after
    /// generation `since` (deleted ones included), sorted. A replica keeps
    /// the generation it last saw and reloads the listed workspaces. Rows
    /// older than a day are pruned; a replica that was away longer reloads
    /// everything. Invocation history is not a change and does not appear.
    pub async fn changes_since(&self, since: i64) -> Result<(i64, Vec<String>)> {
        let mut tx = self.begin_snapshot().await?;
        let generation: i64 = sqlx::query_scalar("SELECT value FROM actionbox_meta WHERE key = 'generation'")
            .fetch_one(&mut *tx)
            .await?;
        let changed: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT workspace_id FROM workspace_changes WHERE generation > $1 ORDER BY workspace_id",
        )
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((generation, changed))
    }
}
