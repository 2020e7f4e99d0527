//! The embedded schema: one logical schema, its DDL written once per
//! backend, applied in order at open inside one transaction.
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
    sqlite: &'static [&'static str],
    postgres: &'static [&'static str],
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sqlite: &[
        "CREATE TABLE workspaces (
            id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            version INTEGER NOT NULL,
            max_concurrent_calls INTEGER NOT NULL,
            calls_per_minute INTEGER NOT NULL)",
        "CREATE TABLE components (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            kind TEXT NOT NULL,
            manifest TEXT NOT NULL,
            bytes BLOB NOT NULL,
            registered_ms INTEGER NOT NULL)",
        "CREATE TABLE integrations (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            key_fingerprint TEXT,
            key_set_ms INTEGER,
            key_master_id TEXT,
            key_nonce BLOB,
            key_ciphertext BLOB,
            PRIMARY KEY (workspace_id, name))",
        "CREATE TABLE actions (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (workspace_id, name))",
        "CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            scopes TEXT NOT NULL,
            label TEXT NOT NULL,
            secret_sha256 BLOB NOT NULL,
            created_ms INTEGER NOT NULL)",
        "CREATE INDEX tokens_by_workspace ON tokens (workspace_id)",
        "CREATE TABLE invocations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            action TEXT NOT NULL,
            integration TEXT NOT NULL,
            method TEXT NOT NULL,
            outcome TEXT NOT NULL,
            started_ms INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            trace TEXT NOT NULL)",
        "CREATE INDEX invocations_by_workspace ON invocations (workspace_id, started_ms, id)",
        "CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at_ms INTEGER NOT NULL,
            actor TEXT NOT NULL,
            workspace_id TEXT,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            before_json TEXT,
            after_json TEXT)",
        "CREATE INDEX audit_by_workspace ON audit_log (workspace_id, seq)",
        "CREATE TABLE workspace_changes (
            generation INTEGER NOT NULL,
            workspace_id TEXT NOT NULL,
            at_ms INTEGER NOT NULL)",
        "CREATE INDEX workspace_changes_by_generation ON workspace_changes (generation)",
        "CREATE INDEX workspace_changes_by_time ON workspace_changes (at_ms)",
    ],
    postgres: &[
        "CREATE TABLE workspaces (
            id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            version BIGINT NOT NULL,
            max_concurrent_calls BIGINT NOT NULL,
            calls_per_minute BIGINT NOT NULL)",
        "CREATE TABLE components (
            sha256 TEXT PRIMARY KEY,
            size BIGINT NOT NULL,
            kind TEXT NOT NULL,
            manifest TEXT NOT NULL,
            bytes BYTEA NOT NULL,
            registered_ms BIGINT NOT NULL)",
        "CREATE TABLE integrations (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            updated_ms BIGINT NOT NULL,
            key_fingerprint TEXT,
            key_set_ms BIGINT,
            key_master_id TEXT,
            key_nonce BYTEA,
            key_ciphertext BYTEA,
            PRIMARY KEY (workspace_id, name))",
        "CREATE TABLE actions (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            updated_ms BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, name))",
        "CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            scopes TEXT NOT NULL,
            label TEXT NOT NULL,
            secret_sha256 BYTEA NOT NULL,
            created_ms BIGINT NOT NULL)",
        "CREATE INDEX tokens_by_workspace ON tokens (workspace_id)",
        "CREATE TABLE invocations (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            action TEXT NOT NULL,
            integration TEXT NOT NULL,
            method TEXT NOT NULL,
            outcome TEXT NOT NULL,
            started_ms BIGINT NOT NULL,
            duration_ms BIGINT NOT NULL,
            trace TEXT NOT NULL)",
        "CREATE INDEX invocations_by_workspace ON invocations (workspace_id, started_ms, id)",
        "CREATE TABLE audit_log (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at_ms BIGINT NOT NULL,
            actor TEXT NOT NULL,
            workspace_id TEXT,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            before_json TEXT,
            after_json TEXT)",
        "CREATE INDEX audit_by_workspace ON audit_log (workspace_id, seq)",
        "CREATE TABLE workspace_changes (
            generation BIGINT NOT NULL,
            workspace_id TEXT NOT NULL,
            at_ms BIGINT NOT NULL)",
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
        let statements = match backend {
            Backend::Sqlite => migration.sqlite,
            Backend::Postgres => migration.postgres,
        };
        for statement in statements {
            sqlx::query(statement).execute(&mut **tx).await?;
        }
        sqlx::query("UPDATE actionbox_meta SET value = $1 WHERE key = 'schema_version'")
            .bind(migration.version)
            .execute(&mut **tx)
            .await?;
        tracing::info!(version = migration.version, "store schema migrated");
    }
    Ok(())
}
