//! The embedded schema: one schema, its DDL written once with the few type
//! names the backends spell differently left as placeholders, applied in
//! order at open inside one transaction.
//!
//! `actionbox_meta` holds `schema_version` (the last migration applied) and
//! `generation` (the change counter, see `changes.rs`). A database whose
//! version is newer than [`SCHEMA_VERSION`] is refused rather than guessed at.
//!
//! Types are limited to what both backends and sqlx's Any driver map the same
//! way: BIGINT/INTEGER (i64), TEXT (JSON is stored as text), BLOB/BYTEA.

use crate::error::{Result, StoreError};
use crate::records::Backend;
use sqlx::{Any, Transaction};

/// The newest schema version this binary knows.
pub const SCHEMA_VERSION: i64 = 1;

/// One migration: the statements that take the schema from `version - 1` to `version`.
struct Migration {
    version: i64,
    statements: &'static [&'static str],
}

/// `statement` in `backend`'s spelling: a 64-bit integer, a byte string,
/// and an auto-numbered 64-bit primary key.
fn dialect(statement: &str, backend: Backend) -> String {
    let (int, blob, serial) = match backend {
        Backend::Sqlite => ("INTEGER", "BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT"),
        Backend::Postgres => ("BIGINT", "BYTEA", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
    };
    statement
        .replace("{serial}", serial)
        .replace("{int}", int)
        .replace("{blob}", blob)
}

/// The migrations, written once: `{int}`, `{blob}` and `{serial}` stand
/// for the types the backends spell differently ([`dialect`]).
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    statements: &[
        "CREATE TABLE workspaces (
            id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            created_ms {int} NOT NULL,
            version {int} NOT NULL,
            max_concurrent_calls {int} NOT NULL,
            calls_per_minute {int} NOT NULL)",
        "CREATE TABLE components (
            sha256 TEXT PRIMARY KEY,
            size {int} NOT NULL,
            kind TEXT NOT NULL,
            manifest TEXT NOT NULL,
            bytes {blob} NOT NULL,
            registered_ms {int} NOT NULL)",
        "CREATE TABLE integrations (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_ms {int} NOT NULL,
            updated_ms {int} NOT NULL,
            key_fingerprint TEXT,
            key_set_ms {int},
            key_master_id TEXT,
            key_nonce {blob},
            key_ciphertext {blob},
            PRIMARY KEY (workspace_id, name))",
        "CREATE TABLE actions (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_ms {int} NOT NULL,
            updated_ms {int} NOT NULL,
            PRIMARY KEY (workspace_id, name))",
        "CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            scopes TEXT NOT NULL,
            label TEXT NOT NULL,
            secret_sha256 {blob} NOT NULL,
            created_ms {int} NOT NULL)",
        "CREATE INDEX tokens_by_workspace ON tokens (workspace_id)",
        "CREATE TABLE invocations (
            id {serial},
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            action TEXT NOT NULL,
            integration TEXT NOT NULL,
            method TEXT NOT NULL,
            outcome TEXT NOT NULL,
            started_ms {int} NOT NULL,
            duration_ms {int} NOT NULL,
            trace TEXT NOT NULL)",
        "CREATE INDEX invocations_by_workspace ON invocations (workspace_id, started_ms, id)",
        "CREATE TABLE audit_log (
            seq {serial},
            at_ms {int} NOT NULL,
            actor TEXT NOT NULL,
            workspace_id TEXT,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            before_json TEXT,
            after_json TEXT)",
        "CREATE INDEX audit_by_workspace ON audit_log (workspace_id, seq)",
        "CREATE TABLE workspace_changes (
            generation {int} NOT NULL,
            workspace_id TEXT NOT NULL,
            at_ms {int} NOT NULL)",
        "CREATE INDEX workspace_changes_by_generation ON workspace_changes (generation)",
        "CREATE INDEX workspace_changes_by_time ON workspace_changes (at_ms)",
    ],
}];

/// Key of an arbitrary but fixed advisory lock that serializes replicas
/// migrating the same PostgreSQL database at the same time.
const PG_MIGRATION_LOCK: i64 = 0x6163_7469_6f6e_6278; // "actionbx"

/// Bring the schema to [`SCHEMA_VERSION`] in `tx`, or refuse a newer one.
pub(crate) async fn migrate(tx: &mut Transaction<'static, Any>, backend: Backend) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS actionbox_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)")
        .execute(&mut **tx)
        .await?;
    let found: Option<i64> = sqlx::query_scalar("SELECT value FROM actionbox_meta WHERE key = 'schema_version'")
        .fetch_optional(&mut **tx)
        .await?;
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found == 0 {
        sqlx::query("INSERT INTO actionbox_meta (key, value) VALUES ('schema_version', 0), ('generation', 0)")
            .execute(&mut **tx)
            .await?;
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        for statement in migration.statements {
            sqlx::query(&dialect(statement, backend)).execute(&mut **tx).await?;
        }
        sqlx::query("UPDATE actionbox_meta SET value = $1 WHERE key = 'schema_version'")
            .bind(migration.version)
            .execute(&mut **tx)
            .await?;
        tracing::info!(version = migration.version, "store schema migrated");
    }
    Ok(())
}
