//! Opening a store and the one way every change is written.
//!
//! Every write goes through [`WriteTx`]: its first statement bumps the
//! `generation` counter row. On PostgreSQL that row lock serializes writers
//! until commit; on SQLite the transaction is `BEGIN IMMEDIATE`, which takes
//! the database's write lock at once. Either way writers run one at a time,
//! commit order equals generation order, and a check-then-insert inside a
//! write (workspace exists? name taken?) cannot race another replica. The
//! audit entry and the change-feed row are written in the same transaction
//! as the change, so there is no change without them.

use crate::error::{Result, StoreError};
use crate::records::Backend;
use crate::schema;
use crate::secret::{MasterKey, SealedKey, SecretText};
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, RwLock};

/// How long change-feed rows are kept. A replica polls about every second;
/// one that was away longer than this reloads everything when it starts.
const CHANGES_KEPT_MS: i64 = 24 * 60 * 60 * 1000;

/// How long an SQLite connection waits for another writer before failing.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// The workspace store: a connection pool and the master key. Cheap to
/// clone; clones share the pool and the key.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    keys: RwLock<MasterKeys>,
}

/// The master key in use, and the one it replaced: after a rotation commits,
/// readers holding a snapshot taken before it can still open what they read.
#[derive(Default)]
struct MasterKeys {
    current: Option<MasterKey>,
    retired: Option<MasterKey>,
}

static INSTALL_DRIVERS: Once = Once::new();

impl Store {
    /// The newest schema version this binary knows.
    pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

    /// Open (and migrate) the store at `url`: `sqlite:PATH` (the file and
    /// its parent directories are created if missing, directories 0700, file
    /// 0600) or `postgres://…` / `postgresql://…`. A database with a newer
    /// schema than this binary knows is refused ([`StoreError::SchemaTooNew`]).
    /// Without a master key everything works except setting and opening API
    /// keys ([`StoreError::NoMasterKey`]).
    pub async fn open(url: &str, master: Option<MasterKey>) -> Result<Store> {
        INSTALL_DRIVERS.call_once(sqlx::any::install_default_drivers);
        let (backend, connect_url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            (Backend::Sqlite, prepare_sqlite_file(rest)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::invalid(
                "the store URL must be sqlite:PATH or postgres://USER@HOST/DATABASE: fix --store",
            ));
        };
        let mut options = AnyPoolOptions::new().max_connections(10);
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers work while one writer commits; the
                    // pragmas are per connection except journal_mode.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute(&*format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&connect_url).await?;
        let store = Store {
            inner: Arc::new(Inner {
                pool,
                backend,
                keys: RwLock::new(MasterKeys {
                    current: master,
                    retired: None,
                }),
            }),
        };
        let mut tx = store.begin_exclusive().await?;
        schema::migrate(&mut tx, backend).await?;
        tx.commit().await?;
        Ok(store)
    }

    /// Also open keys sealed under `previous` (sealing stays with the current
    /// key). For a rotation without downtime: restart every replica with the
    /// new key and this one, run `rotate-master-key`, then drop the old key.
    pub fn also_open_with(&self, previous: MasterKey) {
        let mut keys = self.inner.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.retired = Some(previous);
    }

    /// Whether the database answers (a readiness probe).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    /// Which database this store speaks to.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// A transaction that writes: on SQLite it takes the write lock at once,
    /// so it never has to upgrade a read lock (which fails under contention).
    pub(crate) async fn begin_exclusive(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.inner.backend {
            Backend::Sqlite => self.inner.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.inner.pool.begin().await?,
        })
    }

    /// A read-only transaction that sees one consistent state of the database.
    pub(crate) async fn begin_snapshot(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.inner.backend {
            // In WAL mode a deferred transaction reads one snapshot, taken at its first read.
            Backend::Sqlite => self.inner.pool.begin().await?,
            Backend::Postgres => {
                self.inner
                    .pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        })
    }

    /// Start a change: bump the generation (serializing writers) and drop
    /// change-feed rows older than [`CHANGES_KEPT_MS`].
    pub(crate) async fn begin_write(&self) -> Result<WriteTx> {
        let mut tx = self.begin_exclusive().await?;
        let generation: i64 =
            sqlx::query_scalar("UPDATE actionbox_meta SET value = value + 1 WHERE key = 'generation' RETURNING value")
                .fetch_one(&mut *tx)
                .await?;
        let now_ms = now_ms();
        sqlx::query("DELETE FROM workspace_changes WHERE at_ms < $1")
            .bind(now_ms - CHANGES_KEPT_MS)
            .execute(&mut *tx)
            .await?;
        Ok(WriteTx { tx, generation, now_ms })
    }

    /// The current master key, or [`StoreError::NoMasterKey`].
    pub(crate) fn master_key(&self) -> Result<MasterKey> {
        let keys = self.inner.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.current.clone().ok_or(StoreError::NoMasterKey)
    }

    /// A sealer for values of `purpose` under the current master key, or
    /// [`StoreError::NoMasterKey`].
    pub fn value_sealer(&self, purpose: &str) -> Result<crate::ValueSealer> {
        Ok(crate::ValueSealer::new(&self.master_key()?, purpose))
    }

    /// Make `new` the key for sealing; the old one stays available for opening.
    pub(crate) fn install_master_key(&self, new: MasterKey) -> Option<MasterKey> {
        let mut keys = self.inner.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = keys.current.replace(new);
        keys.retired = old.clone();
        old
    }

    /// Undo [`Store::install_master_key`] when the rotation did not commit.
    pub(crate) fn restore_master_key(&self, old: Option<MasterKey>) {
        let mut keys = self.inner.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.current = old;
        keys.retired = None;
    }

    /// Decrypt a sealed key (AES-256-GCM, bound to its workspace and
    /// integration, so a ciphertext copied to another row does not open).
    /// Fails with [`StoreError::NoMasterKey`] without a master key and with
    /// [`StoreError::WrongMasterKey`] when it was sealed under another one.
    pub fn unseal(&self, sealed: &SealedKey) -> Result<SecretText> {
        let keys = self.inner.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = keys.current.as_ref().ok_or(StoreError::NoMasterKey)?;
        let key = [Some(current), keys.retired.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id() == sealed.master_id)
            .ok_or_else(|| StoreError::WrongMasterKey {
                sealed_with: sealed.master_id.clone(),
                have: current.id(),
            })?;
        key.open(sealed)
    }
}

/// One change in progress: the transaction, its generation and its time.
pub(crate) struct WriteTx {
    pub(crate) tx: Transaction<'static, Any>,
    pub(crate) generation: i64,
    pub(crate) now_ms: i64,
}

impl WriteTx {
    /// The executor for this transaction's statements.
    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Record that `workspace` changed in this generation (it may have been
    /// deleted: the change-feed row is kept either way).
    pub(crate) async fn workspace_changed(&mut self, workspace: &str) -> Result<()> {
        sqlx::query("UPDATE workspaces SET version = $1 WHERE id = $2")
            .bind(self.generation)
            .bind(workspace)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("INSERT INTO workspace_changes (generation, workspace_id, at_ms) VALUES ($1, $2, $3)")
            .bind(self.generation)
            .bind(workspace)
            .bind(self.now_ms)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Append the audit entry for this change. `before`/`after` must already
    /// be free of secrets (callers build them from public fields only).
    pub(crate) async fn audit(
        &mut self,
        actor: &str,
        workspace: Option<&str>,
        action: &str,
        target: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at_ms, actor, workspace_id, action, target, before_json, after_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(self.now_ms)
        .bind(actor)
        .bind(workspace)
        .bind(action)
        .bind(target)
        .bind(before.map(Value::to_string))
        .bind(after.map(Value::to_string))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Fail with NotFound unless `workspace` exists (checked inside the write, so it cannot race).
    pub(crate) async fn require_workspace(&mut self, workspace: &str) -> Result<()> {
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM workspaces WHERE id = $1")
            .bind(workspace)
            .fetch_optional(&mut *self.tx)
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::not_found(format!("workspace \"{workspace}\""))),
        }
    }

    /// Commit the change.
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// Create the SQLite file (and its parent directories) with owner-only
/// permissions before SQLite opens it, so the database never exists with
/// looser ones; SQLite gives its -wal and -shm files the database's mode.
/// Returns the URL for sqlx.
fn prepare_sqlite_file(rest: &str) -> Result<String> {
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() || path.starts_with(':') || path.contains('?') {
        return Err(StoreError::invalid(format!(
            "\"sqlite:{rest}\" is not a store file: use sqlite:PATH with a plain file path (no in-memory \
             database, no ?options)"
        )));
    }
    let path = Path::new(path);
    let path: PathBuf = if path.is_absolute() {
        path.to_owned()
    } else {
        let cwd = std::env::current_dir().map_err(|e| StoreError::io(".", e))?;
        cwd.join(path)
    };
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| StoreError::io(parent, e))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    let text = path.to_str().ok_or_else(|| {
        StoreError::invalid(format!(
            "the store path {} is not valid UTF-8: pick a path with UTF-8 characters only",
            path.display()
        ))
    })?;
    // sqlx percent-decodes the path; escape what would end it early.
    let escaped = text.replace('%', "%25").replace('#', "%23").replace(' ', "%20");
    Ok(format!("sqlite://{escaped}"))
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Check a workspace id: `[a-z0-9][a-z0-9_-]{0,62}` (it appears in URLs and paths).
/// Whether `id` is a well-formed workspace id (1–63 of a-z, 0-9, `_`, `-`,
/// starting with a letter or digit): safe in a URL path and a header.
pub fn is_workspace_id(id: &str) -> bool {
    check_workspace_id(id).is_ok()
}

pub(crate) fn check_workspace_id(id: &str) -> Result<()> {
    let mut chars = id.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && id.len() <= 63 {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "workspace id {id:?} is invalid: use 1 to 63 characters a-z, 0-9, '_' or '-', starting with a letter or \
             digit"
        )))
    }
}

/// Check a name (integration, action) or label: 1 to 200 characters, no
/// control characters (NUL would blur the sealed key's associated data).
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(StoreError::invalid(format!(
            "{what} {name:?} is invalid: use 1 to 200 characters without control characters"
        )));
    }
    Ok(())
}

/// Check that a spec is a JSON object (what the host's validation produces).
pub(crate) fn check_spec(what: &str, spec: &Value) -> Result<()> {
    if spec.is_object() {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "the {what} spec must be a JSON object with the actionbox.toml fields"
        )))
    }
}

/// Parse a JSON column the store wrote.
pub(crate) fn parse_json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(format!("a stored JSON value does not parse: {e}")))
}

/// Read a JSON text column.
pub(crate) fn json_column(row: &AnyRow, column: &str) -> Result<Value> {
    let text: String = row.try_get(column)?;
    parse_json(&text)
}

/// Read an optional JSON text column.
pub(crate) fn optional_json_column(row: &AnyRow, column: &str) -> Result<Option<Value>> {
    let text: Option<String> = row.try_get(column)?;
    text.as_deref().map(parse_json).transpose()
}

/// Clamp a listing limit to 1..=500: one request cannot read a whole table.
pub(crate) fn clamp_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, 500))
}
