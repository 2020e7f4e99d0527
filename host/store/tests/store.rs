//! The store against both backends: every test is written once and runs on
//! SQLite in a temp directory and on a real PostgreSQL server (a throwaway
//! cluster shared by this test binary, one fresh database per test).

use actionbox_pgcluster::{PgCluster, NOT_INSTALLED};
use actionbox_store::{
    AuditFilter, Backend, InvocationFilter, KeyUpdate, MasterKey, NewInvocation, Quotas, Retention, Scope, SecretText,
    Store, StoreError,
};
use serde_json::json;
use std::path::PathBuf;

/// One test's database, on one backend.
struct Db {
    backend: Backend,
    url: String,
    /// SQLite: the temp directory holding the file.
    dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the cluster and database name.
    pg: Option<(&'static PgCluster, String)>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("nested/store.db").display());
        Db {
            backend: Backend::Sqlite,
            url,
            dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh database in the shared cluster; None (test skipped, reason
    /// printed) when PostgreSQL is not installed, unless every test is required.
    fn postgres(test: &str) -> Option<Db> {
        let cluster = match PgCluster::shared() {
            Ok(c) => c,
            Err(e) => {
                let why = format!("{e:#}");
                assert!(
                    why.contains(NOT_INSTALLED) && std::env::var_os("ACTIONBOX_REQUIRE_ALL_TESTS").is_none(),
                    "{why}"
                );
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "skipped: {why}");
                return None;
            }
        };
        let name = format!("t_{test}");
        let url = cluster.create_database(&name).unwrap();
        Some(Db {
            backend: Backend::Postgres,
            url,
            dir: None,
            pg: Some((cluster, name)),
        })
    }

    async fn open(&self, master: Option<MasterKey>) -> Store {
        let store = Store::open(&self.url, master).await.unwrap();
        assert_eq!(store.backend(), self.backend);
        store
    }

    fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("nested/store.db"))
    }

    /// Everything the database holds at rest: the SQLite file and its WAL, or a pg_dump.
    fn at_rest(&self) -> Vec<u8> {
        match (&self.pg, self.sqlite_path()) {
            (Some((cluster, name)), _) => cluster.dump_database(name).unwrap().into_bytes(),
            (None, Some(path)) => {
                let mut bytes = std::fs::read(&path).unwrap();
                let wal = PathBuf::from(format!("{}-wal", path.display()));
                if let Ok(w) = std::fs::read(wal) {
                    bytes.extend(w);
                }
                bytes
            }
            (None, None) => unreachable!(),
        }
    }

    /// A raw connection pool for editing the database by hand.
    async fn raw(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match self.sqlite_path() {
            Some(p) => format!("sqlite://{}", p.display()),
            None => self.url.clone(),
        };
        sqlx::AnyPool::connect(&url).await.unwrap()
    }
}

/// Run each named `async fn(&Db)` as one test per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Db::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::Db::postgres(stringify!($name)) else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

on_both_backends!(
    workspaces_are_created_listed_and_deleted,
    invalid_input_is_refused_with_the_rule,
    integration_keys_are_kept_set_cleared_and_unsealed,
    sealed_key_copied_to_another_row_does_not_open,
    wrong_or_missing_master_key_is_reported_as_such,
    rotated_master_key_reseals_every_key,
    rotation_without_downtime_opens_both_keys_meanwhile,
    tokens_authenticate_only_with_their_secret,
    actions_are_created_replaced_and_deleted,
    components_are_content_addressed_and_bytes_roundtrip,
    snapshot_holds_one_consistent_version,
    two_handles_see_each_others_changes_including_deletes,
    concurrent_writers_on_two_handles_all_commit_in_generation_order,
    history_is_filtered_newest_first_and_pruned,
    batches_are_stored_and_trimmed_per_workspace,
    every_change_is_audited_without_secrets,
    newer_schema_is_refused,
    api_key_is_not_at_rest_in_clear,
);

fn key() -> MasterKey {
    MasterKey::from_bytes([0x42; 32])
}

fn spec() -> serde_json::Value {
    json!({ "kind": "shipstation", "component": "sha256:00", "timeout": 10 })
}

async fn workspaces_are_created_listed_and_deleted(db: &Db) {
    let store = db.open(None).await;
    let acme = store.create_workspace("acme", "Acme Inc.", "operator").await.unwrap();
    assert_eq!(acme.quotas, Quotas::default());
    store.create_workspace("beta-2", "Beta", "operator").await.unwrap();
    let err = store.create_workspace("acme", "Again", "operator").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("\"acme\" already exists"), "{err}");

    let ids: Vec<String> = store.workspaces().await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["acme", "beta-2"]);
    assert_eq!(
        store.workspace("acme").await.unwrap().unwrap().display_name,
        "Acme Inc."
    );
    assert!(store.workspace("nope").await.unwrap().is_none());

    let q = Quotas {
        max_concurrent_calls: 2,
        calls_per_minute: 30,
    };
    let updated = store.set_quotas("acme", q, "operator").await.unwrap();
    assert_eq!(updated.quotas, q);
    assert!(updated.version > acme.version);
    assert_eq!(store.workspace("acme").await.unwrap().unwrap().quotas, q);
    assert!(matches!(
        store.set_quotas("nope", q, "operator").await,
        Err(StoreError::NotFound { .. })
    ));

    // Deleting takes the workspace's contents with it.
    store
        .put_integration("acme", "ss", &spec(), KeyUpdate::Keep, "operator")
        .await
        .unwrap();
    store.put_action("acme", "track", &json!({}), "operator").await.unwrap();
    let (_, token) = store.mint_token("acme", &[Scope::Admin], "", "operator").await.unwrap();
    store
        .record_invocation("acme", &invocation("track", "ok", 1))
        .await
        .unwrap();
    store.delete_workspace("acme", "operator").await.unwrap();
    assert!(store.workspace("acme").await.unwrap().is_none());
    assert!(store.authenticate(token.expose()).await.unwrap().is_none());
    let err = store.delete_workspace("acme", "operator").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("workspace \"acme\" does not exist"), "{err}");
    // Re-created, it starts empty.
    store.create_workspace("acme", "Acme again", "operator").await.unwrap();
    assert!(store.integrations("acme").await.unwrap().is_empty());
    assert!(store.actions("acme").await.unwrap().is_empty());
    assert!(store.tokens("acme").await.unwrap().is_empty());
    assert!(store
        .invocations("acme", &InvocationFilter::default())
        .await
        .unwrap()
        .is_empty());
}

async fn invalid_input_is_refused_with_the_rule(db: &Db) {
    let store = db.open(Some(key())).await;
    for bad in ["", "Acme", "-acme", "a b", "a/b", &"a".repeat(64)] {
        let err = store.create_workspace(bad, "x", "operator").await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{bad:?}: {err}");
        assert!(err.to_string().contains("a-z, 0-9"), "{err}");
    }
    store.create_workspace(&"a".repeat(63), "x", "operator").await.unwrap();
    store.create_workspace("acme", "x", "operator").await.unwrap();
    let err = store
        .put_integration("acme", "ss", &json!([1]), KeyUpdate::Keep, "operator")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
    let err = store
        .put_integration("acme", "a\0b", &spec(), KeyUpdate::Keep, "operator")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let err = store
        .put_integration("ghost", "ss", &spec(), KeyUpdate::Keep, "operator")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = store.mint_token("acme", &[], "x", "operator").await.unwrap_err();
    assert!(err.to_string().contains("at least one scope"), "{err}");
    let zero = Quotas {
        max_concurrent_calls: 0,
        calls_per_minute: 1,
    };
    assert!(matches!(
        store.set_quotas("acme", zero, "operator").await,
        Err(StoreError::Invalid { .. })
    ));
}

async fn integration_keys_are_kept_set_cleared_and_unsealed(db: &Db) {
    let store = db.open(Some(key())).await;
    store.create_workspace("acme", "Acme", "operator").await.unwrap();

    // Create without a key.
    let (rec, created) = store
        .put_integration("acme", "ss", &spec(), KeyUpdate::Keep, "operator")
        .await
        .unwrap();
    assert!(created);
    assert!(rec.key.is_none());

    // Set a key: listed as a fingerprint, opened only by unseal.
    let (rec, created) = store
        .put_integration("acme", "ss", &spec(), KeyUpdate::Set("sk_first".into()), "operator")
        .await
        .unwrap();
    assert!(!created);
    let first = rec.key.clone().unwrap();
    assert_eq!(first.fingerprint.len(), 8);
    assert_eq!(unsealed(&store, "acme", "ss").await.as_deref(), Some("sk_first"));

    // Replace the spec, keep the key.
    let new_spec = json!({ "kind": "shipstation", "timeout": 30 });
    let (rec, _) = store
        .put_integration("acme", "ss", &new_spec, KeyUpdate::Keep, "operator")
        .await
        .unwrap();
    assert_eq!(rec.key, Some(first.clone()));
    assert_eq!(rec.spec, new_spec);
    assert_eq!(unsealed(&store, "acme", "ss").await.as_deref(), Some("sk_first"));
    let listed = store.integrations("acme").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].spec, new_spec);
    assert_eq!(listed[0].key, Some(first.clone()));

    // A new key has a new fingerprint.
    let (rec, _) = store
        .put_integration("acme", "ss", &new_spec, KeyUpdate::Set("sk_second".into()), "operator")
        .await
        .unwrap();
    assert_ne!(rec.key.unwrap().fingerprint, first.fingerprint);
    assert_eq!(unsealed(&store, "acme", "ss").await.as_deref(), Some("sk_second"));

    // Clear.
    let (rec, _) = store
        .put_integration("acme", "ss", &new_spec, KeyUpdate::Clear, "operator")
        .await
        .unwrap();
    assert!(rec.key.is_none());
    assert_eq!(unsealed(&store, "acme", "ss").await, None);

    // Ordered by creation, then name; delete.
    store
        .put_integration("acme", "another", &spec(), KeyUpdate::Keep, "operator")
        .await
        .unwrap();
    let names: Vec<String> = store
        .integrations("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["ss", "another"]);
    store.delete_integration("acme", "ss", "operator").await.unwrap();
    let err = store.delete_integration("acme", "ss", "operator").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(matches!(
        store.integrations("ghost").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// The key of integration `name` as the server would get it.
async fn unsealed(store: &Store, ws: &str, name: &str) -> Option<String> {
    let snap = store.snapshot(ws).await.unwrap().unwrap();
    let (_, sealed) = snap.integrations.iter().find(|(r, _)| r.name == name).unwrap();
    sealed.as_ref().map(|s| store.unseal(s).unwrap().expose().to_owned())
}

async fn sealed_key_copied_to_another_row_does_not_open(db: &Db) {
    let store = db.open(Some(key())).await;
    for ws in ["acme", "evil"] {
        store.create_workspace(ws, ws, "operator").await.unwrap();
        store
            .put_integration(
                ws,
                "ss",
                &spec(),
                KeyUpdate::Set(format!("sk_of_{ws}").into()),
                "operator",
            )
            .await
            .unwrap();
    }
    // Someone with write access to the database copies acme's sealed key into evil's row.
    let raw = db.raw().await;
    let row: (String, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT key_master_id, key_nonce, key_ciphertext FROM integrations WHERE workspace_id = 'acme'")
            .fetch_one(&raw)
            .await
            .unwrap();
    sqlx::query(
        "UPDATE integrations SET key_master_id = $1, key_nonce = $2, key_ciphertext = $3 WHERE workspace_id = 'evil'",
    )
    .bind(row.0)
    .bind(row.1)
    .bind(row.2)
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;

    let snap = store.snapshot("evil").await.unwrap().unwrap();
    let sealed = snap.integrations[0].1.as_ref().unwrap();
    let err = store.unseal(sealed).unwrap_err();
    assert!(matches!(err, StoreError::Crypto), "{err}");
    assert!(err.to_string().contains("set the integration's key again"), "{err}");
    assert!(!err.to_string().contains("sk_of"), "{err}");
    // acme's own row still opens.
    assert_eq!(unsealed(&store, "acme", "ss").await.as_deref(), Some("sk_of_acme"));
}

async fn wrong_or_missing_master_key_is_reported_as_such(db: &Db) {
    let right = key();
    let store = db.open(Some(right.clone())).await;
    store.create_workspace("acme", "Acme", "operator").await.unwrap();
    store
        .put_integration("acme", "ss", &spec(), KeyUpdate::Set("sk_live".into()), "operator")
        .await
        .unwrap();

    let wrong = MasterKey::from_bytes([0x24; 32]);
    let other = db.open(Some(wrong.clone())).await;
    let snap = other.snapshot("acme").await.unwrap().unwrap();
    let sealed = snap.integrations[0].1.as_ref().unwrap();
    let err = other.unseal(sealed).unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    let text = err.to_string();
    assert_eq!(
        text,
        format!(
            "sealed under master key {}, this server has {}; set ACTIONBOX_MASTER_KEY_FILE to the key the store \
             was written with",
            right.id(),
            wrong.id()
        )
    );

    let keyless = db.open(None).await;
    let err = keyless.unseal(sealed).unwrap_err();
    assert!(matches!(err, StoreError::NoMasterKey), "{err}");
    assert!(err.to_string().contains("ACTIONBOX_MASTER_KEY_FILE"), "{err}");
    let err = keyless
        .put_integration("acme", "ss", &spec(), KeyUpdate::Set("sk_x".into()), "operator")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoMasterKey), "{err}");
    // Without a key, everything else still works.
    keyless
        .put_integration("acme", "ss", &spec(), KeyUpdate::Keep, "operator")
        .await
        .unwrap();
    assert_eq!(unsealed(&store, "acme", "ss").await.as_deref(), Some("sk_live"));
}

async fn rotation_without_downtime_opens_both_keys_meanwhile(db: &Db) {
    let old = key();
    let new = MasterKey::from_bytes([0x17; 32]);
    let before = db.open(Some(old.clone())).await;
    before.create_workspace("acme", "acme", "operator").await.unwrap();
    before
        .put_integration(
            "acme",
            "sealed-old",
            &spec(),
            KeyUpdate::Set("sk_old".into()),
            "operator",
        )
        .await
        .unwrap();
    // Replicas restarted with the new key and the previous one: they seal
    // under the new key and still open what the old one sealed.
    let during = db.open(Some(new.clone())).await;
    during.also_open_with(old.clone());
    during
        .put_integration(
            "acme",
            "sealed-new",
            &spec(),
            KeyUpdate::Set("sk_new".into()),
            "operator",
        )
        .await
        .unwrap();
    assert_eq!(unsealed(&during, "acme", "sealed-old").await.as_deref(), Some("sk_old"));
    assert_eq!(unsealed(&during, "acme", "sealed-new").await.as_deref(), Some("sk_new"));
    // The rotation re-seals only what is still under the old key.
    let rotator = db.open(Some(old)).await;
    assert_eq!(rotator.rotate_master_key(new.clone(), "operator").await.unwrap(), 1);
    // Afterwards the new key alone opens everything.
    let after = db.open(Some(new)).await;
    assert_eq!(unsealed(&after, "acme", "sealed-old").await.as_deref(), Some("sk_old"));
    assert_eq!(unsealed(&after, "acme", "sealed-new").await.as_deref(), Some("sk_new"));
}

async fn rotated_master_key_reseals_every_key(db: &Db) {
    let old = key();
    let store = db.open(Some(old.clone())).await;
    for ws in ["acme", "beta"] {
        store.create_workspace(ws, ws, "operator").await.unwrap();
        for name in ["one", "two"] {
            store
                .put_integration(
                    ws,
                    name,
                    &spec(),
                    KeyUpdate::Set(format!("sk_{ws}_{name}").into()),
                    "operator",
                )
                .await
                .unwrap();
        }
    }
    store
        .put_integration("beta", "keyless", &spec(), KeyUpdate::Keep, "operator")
        .await
        .unwrap();
    let (generation, _) = store.changes_since(0).await.unwrap();

    let new = MasterKey::from_bytes([0x99; 32]);
    assert_eq!(store.rotate_master_key(new.clone(), "operator").await.unwrap(), 4);
    let (after, changed) = store.changes_since(generation).await.unwrap();
    assert!(after > generation);
    assert_eq!(changed, ["acme", "beta"]);

    // This handle seals and opens under the new key.
    assert_eq!(unsealed(&store, "acme", "two").await.as_deref(), Some("sk_acme_two"));
    store
        .put_integration("acme", "three", &spec(), KeyUpdate::Set("sk_three".into()), "operator")
        .await
        .unwrap();
    // A server started with the new key opens everything; one with the old key is told.
    let fresh = db.open(Some(new.clone())).await;
    for (ws, name, want) in [
        ("acme", "one", "sk_acme_one"),
        ("beta", "two", "sk_beta_two"),
        ("acme", "three", "sk_three"),
    ] {
        assert_eq!(unsealed(&fresh, ws, name).await.as_deref(), Some(want));
    }
    let stale = db.open(Some(old)).await;
    let snap = stale.snapshot("beta").await.unwrap().unwrap();
    let sealed = snap.integrations[0].1.as_ref().unwrap();
    assert!(matches!(stale.unseal(sealed), Err(StoreError::WrongMasterKey { .. })));
    // ... and cannot rotate what it cannot open.
    let err = stale
        .rotate_master_key(MasterKey::generate(), "operator")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    assert_eq!(unsealed(&fresh, "beta", "one").await.as_deref(), Some("sk_beta_one"));

    let audit = store.audit(&AuditFilter::default()).await.unwrap();
    let rotation = audit.iter().find(|e| e.action == "store.rotate_master_key").unwrap();
    assert_eq!(rotation.after.as_ref().unwrap()["resealed"], 4);
    assert_eq!(rotation.after.as_ref().unwrap()["master_key"], new.id());
}

async fn tokens_authenticate_only_with_their_secret(db: &Db) {
    let store = db.open(None).await;
    store.create_workspace("acme", "Acme", "operator").await.unwrap();
    store.create_workspace("beta", "Beta", "operator").await.unwrap();
    let (info, secret) = store
        .mint_token(
            "acme",
            &[Scope::Assistant, Scope::Admin, Scope::Admin],
            "dashboard",
            "operator",
        )
        .await
        .unwrap();
    assert_eq!(info.scopes, [Scope::Admin, Scope::Assistant]);
    assert_eq!(format!("{secret:?}"), "[redacted]");
    let text = secret.expose().to_owned();
    assert!(text.starts_with(&format!("abx_{}_", info.id)), "token format");
    assert_eq!(text.len(), 4 + 12 + 1 + 64);

    assert_eq!(store.authenticate(&text).await.unwrap(), Some(info.clone()));
    // Wrong secret with the right id, each position.
    let mut wrong = text.clone().into_bytes();
    let last = wrong.len() - 1;
    wrong[last] = if wrong[last] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        store.authenticate(std::str::from_utf8(&wrong).unwrap()).await.unwrap(),
        None
    );
    // Malformed or unknown.
    for bad in [
        "",
        "abx_",
        "Bearer x",
        &text[..text.len() - 1],
        &text.to_uppercase(),
        &format!("{text}0"),
        &format!("abx_000000000000_{}", &text[17..]),
    ] {
        assert_eq!(store.authenticate(bad).await.unwrap(), None, "{bad:?}");
    }
    let (beta_token, _) = store
        .mint_token("beta", &[Scope::Assistant], "", "operator")
        .await
        .unwrap();
    assert_eq!(store.tokens("acme").await.unwrap(), std::slice::from_ref(&info));
    // Revoking needs the right workspace.
    assert!(matches!(
        store.revoke_token("beta", &info.id, "operator").await,
        Err(StoreError::NotFound { .. })
    ));
    store.revoke_token("acme", &info.id, "operator").await.unwrap();
    assert_eq!(store.authenticate(&text).await.unwrap(), None);
    assert!(store.tokens("acme").await.unwrap().is_empty());
    assert_eq!(store.tokens("beta").await.unwrap(), [beta_token]);
    assert!(matches!(
        store.mint_token("ghost", &[Scope::Admin], "", "operator").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn actions_are_created_replaced_and_deleted(db: &Db) {
    let store = db.open(None).await;
    store.create_workspace("acme", "Acme", "operator").await.unwrap();
    let spec =
        json!({ "integration": "ss", "method": "track-order", "parameters": { "order_id": { "description": "x" } } });
    let (rec, created) = store.put_action("acme", "track", &spec, "operator").await.unwrap();
    assert!(created);
    let spec2 = json!({ "integration": "ss", "method": "track-order", "description": "new" });
    let (rec2, created) = store.put_action("acme", "track", &spec2, "operator").await.unwrap();
    assert!(!created);
    assert_eq!(rec2.created_ms, rec.created_ms);
    store.put_action("acme", "cancel", &spec, "operator").await.unwrap();
    let actions = store.actions("acme").await.unwrap();
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0].name, "track");
    assert_eq!(actions[0].spec, spec2);
    store.delete_action("acme", "track", "operator").await.unwrap();
    assert!(matches!(
        store.delete_action("acme", "track", "operator").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.put_action("ghost", "x", &spec, "operator").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.actions("acme").await.unwrap().len(), 1);
}

async fn components_are_content_addressed_and_bytes_roundtrip(db: &Db) {
    let store = db.open(None).await;
    // Every byte value, including NUL and invalid UTF-8: blob/bytea must roundtrip exactly.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let manifest = json!({ "name": "shipstation", "default-actions": ["track"] });
    let (info, created) = store
        .put_component(&bytes, "shipstation", &manifest, "operator")
        .await
        .unwrap();
    assert!(created);
    assert_eq!(info.size, 70_000);
    assert_eq!(info.sha256.len(), 64);
    let audited = store.audit(&AuditFilter::default()).await.unwrap().len();
    let (again, created) = store
        .put_component(&bytes, "shipstation", &manifest, "operator")
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, info);
    assert_eq!(store.audit(&AuditFilter::default()).await.unwrap().len(), audited);

    assert_eq!(store.component_bytes(&info.sha256).await.unwrap(), Some(bytes.clone()));
    let prefixed = format!("sha256:{}", info.sha256);
    assert_eq!(store.component(&prefixed).await.unwrap(), Some(info.clone()));
    assert_eq!(store.components().await.unwrap(), [info]);
    assert_eq!(store.component_bytes(&"0".repeat(64)).await.unwrap(), None);
}

async fn snapshot_holds_one_consistent_version(db: &Db) {
    let store = db.open(Some(key())).await;
    assert!(store.snapshot("acme").await.unwrap().is_none());
    store.create_workspace("acme", "Acme", "operator").await.unwrap();
    store
        .put_integration("acme", "ss", &spec(), KeyUpdate::Set("sk".into()), "operator")
        .await
        .unwrap();
    store
        .put_integration("acme", "nokey", &spec(), KeyUpdate::Keep, "operator")
        .await
        .unwrap();
    store.put_action("acme", "track", &json!({}), "operator").await.unwrap();
    let snap = store.snapshot("acme").await.unwrap().unwrap();
    assert_eq!(snap.integrations.len(), 2);
    assert!(snap.integrations[0].1.is_some());
    assert!(snap.integrations[1].1.is_none());
    assert_eq!(snap.actions.len(), 1);
    let (generation, _) = store.changes_since(0).await.unwrap();
    assert_eq!(snap.workspace.version, generation);

    // Snapshots taken while another task writes always agree with their version:
    // version v has exactly the actions written up to v.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                store
                    .put_action("acme", &format!("a{i:02}"), &json!({ "i": i }), "operator")
                    .await
                    .unwrap();
            }
        })
    };
    let mut seen = std::collections::BTreeMap::new();
    loop {
        let done = writer.is_finished();
        let snap = store.snapshot("acme").await.unwrap().unwrap();
        let count = snap.actions.len();
        if let Some(previous) = seen.insert(snap.workspace.version, count) {
            assert_eq!(previous, count, "two snapshots of one version differ");
        }
        if done {
            break;
        }
    }
    writer.await.unwrap();
    assert_eq!(seen.values().last(), Some(&31), "the last snapshot has every action");
    // Versions grow with the number of actions.
    let counts: Vec<usize> = seen.values().copied().collect();
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

async fn two_handles_see_each_others_changes_including_deletes(db: &Db) {
    let a = db.open(Some(key())).await;
    let b = db.open(Some(key())).await;
    let (start, changed) = a.changes_since(0).await.unwrap();
    assert!(changed.is_empty());
    assert_eq!(b.changes_since(0).await.unwrap().0, start);

    a.create_workspace("acme", "Acme", "replica-a").await.unwrap();
    b.create_workspace("beta", "Beta", "replica-b").await.unwrap();
    let (g1, changed) = b.changes_since(start).await.unwrap();
    assert_eq!(changed, ["acme", "beta"]);
    assert_eq!(a.changes_since(start).await.unwrap(), (g1, changed));

    b.put_integration("acme", "ss", &spec(), KeyUpdate::Set("sk".into()), "replica-b")
        .await
        .unwrap();
    let (g2, changed) = a.changes_since(g1).await.unwrap();
    assert!(g2 > g1);
    assert_eq!(changed, ["acme"]);
    assert_eq!(unsealed(&a, "acme", "ss").await.as_deref(), Some("sk"));
    assert_eq!(a.workspace("acme").await.unwrap().unwrap().version, g2);

    a.delete_workspace("beta", "replica-a").await.unwrap();
    let (g3, changed) = b.changes_since(g2).await.unwrap();
    assert!(g3 > g2);
    assert_eq!(changed, ["beta"]);
    assert!(b.workspace("beta").await.unwrap().is_none());
    // Nothing new: same generation, nothing listed. History is not a change.
    a.record_invocation("acme", &invocation("t", "ok", 1)).await.unwrap();
    assert_eq!(b.changes_since(g3).await.unwrap(), (g3, vec![]));
}

async fn concurrent_writers_on_two_handles_all_commit_in_generation_order(db: &Db) {
    let a = db.open(None).await;
    let b = db.open(None).await;
    a.create_workspace("acme", "Acme", "operator").await.unwrap();
    let (start, _) = a.changes_since(0).await.unwrap();
    let mut tasks = Vec::new();
    for (replica, store) in [("a", a.clone()), ("b", b.clone())] {
        for i in 0..10 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .put_action("acme", &format!("{replica}{i}"), &json!({}), replica)
                    .await
                    .unwrap();
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (end, changed) = b.changes_since(start).await.unwrap();
    assert_eq!(end - start, 20, "every write got its own generation");
    assert_eq!(changed, ["acme"]);
    assert_eq!(a.actions("acme").await.unwrap().len(), 20);
    assert_eq!(a.workspace("acme").await.unwrap().unwrap().version, end);
}

fn invocation(action: &str, outcome: &str, started_ms: i64) -> NewInvocation {
    NewInvocation {
        action: action.into(),
        integration: "ss".into(),
        method: "track-order".into(),
        outcome: outcome.into(),
        started_ms,
        duration_ms: 12,
        trace: json!({ "requests": [{ "url": "https://ssapi.example/orders", "status": 200 }], "outcome": outcome }),
    }
}

async fn batches_are_stored_and_trimmed_per_workspace(db: &Db) {
    let store = db.open(None).await;
    store.create_workspace("acme", "Acme", "operator").await.unwrap();
    store.create_workspace("beta", "Beta", "operator").await.unwrap();
    let batch: Vec<(String, NewInvocation)> = (0..7)
        .map(|i| {
            let ws = if i % 2 == 0 { "acme" } else { "beta" };
            (ws.to_string(), invocation("track", "ok", 1_000 + i))
        })
        .chain(std::iter::once(("gone".to_string(), invocation("track", "ok", 5_000))))
        .collect();
    // The record of a workspace that does not exist is skipped, not an error.
    assert_eq!(store.record_invocations(&batch).await.unwrap(), 7);
    let all = InvocationFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.invocations("acme", &all).await.unwrap().len(), 4);
    assert_eq!(store.invocations("beta", &all).await.unwrap().len(), 3);
    assert_eq!(store.keep_last_invocations(&["acme".to_string()], 2).await.unwrap(), 2);
    let kept = store.invocations("acme", &all).await.unwrap();
    assert_eq!(
        kept.iter().map(|i| i.started_ms).collect::<Vec<_>>(),
        [1_006, 1_004],
        "the newest two"
    );
    assert_eq!(
        store.invocations("beta", &all).await.unwrap().len(),
        3,
        "other workspaces untouched"
    );
}

async fn history_is_filtered_newest_first_and_pruned(db: &Db) {
    let store = db.open(None).await;
    store.create_workspace("acme", "Acme", "operator").await.unwrap();
    store.create_workspace("beta", "Beta", "operator").await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 24 * 60 * 60 * 1000;
    let mut ids = Vec::new();
    for (i, (action, outcome)) in [
        ("track", "ok"),
        ("track", "unauthorized"),
        ("cancel", "ok"),
        ("track", "ok"),
        ("cancel", "timeout"),
    ]
    .into_iter()
    .enumerate()
    {
        // 10.5, 9.5, 8.5, 7.5 and 6.5 days ago: no row sits on a day boundary.
        let started = now - (10 - i as i64) * day - day / 2;
        ids.push(
            store
                .record_invocation("acme", &invocation(action, outcome, started))
                .await
                .unwrap(),
        );
    }
    for i in 0..3 {
        store
            .record_invocation("beta", &invocation("track", "ok", now - i))
            .await
            .unwrap();
    }
    assert!(matches!(
        store.record_invocation("ghost", &invocation("t", "ok", now)).await,
        Err(StoreError::NotFound { .. })
    ));

    let all = store.invocations("acme", &InvocationFilter::default()).await.unwrap();
    let listed: Vec<i64> = all.iter().map(|s| s.id).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    let filter = |action: Option<&str>, outcome: Option<&str>, since_ms: Option<i64>, limit: u32| InvocationFilter {
        action: action.map(Into::into),
        outcome: outcome.map(Into::into),
        since_ms,
        limit,
    };
    let track = store
        .invocations("acme", &filter(Some("track"), None, None, 100))
        .await
        .unwrap();
    assert_eq!(track.iter().map(|s| s.id).collect::<Vec<_>>(), [ids[3], ids[1], ids[0]]);
    let track_ok = store
        .invocations("acme", &filter(Some("track"), Some("ok"), None, 100))
        .await
        .unwrap();
    assert_eq!(track_ok.len(), 2);
    let recent = store
        .invocations("acme", &filter(None, None, Some(now - 8 * day), 100))
        .await
        .unwrap();
    assert_eq!(recent.iter().map(|s| s.id).collect::<Vec<_>>(), [ids[4], ids[3]]);
    // Limit is clamped to at least 1.
    assert_eq!(
        store
            .invocations("acme", &filter(None, None, None, 0))
            .await
            .unwrap()
            .len(),
        1
    );
    let one = store.invocation("acme", ids[1]).await.unwrap().unwrap();
    assert_eq!(one.summary.outcome, "unauthorized");
    assert_eq!(one.trace["requests"][0]["status"], 200);
    // Another workspace's id is not visible here.
    assert!(store.invocation("beta", ids[1]).await.unwrap().is_none());

    // keep_last per workspace: acme keeps 3, beta (3 rows) loses none.
    let deleted = store
        .prune_invocations(&Retention {
            keep_last: Some(3),
            keep_days: None,
        })
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let left: Vec<i64> = store
        .invocations("acme", &InvocationFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, [ids[4], ids[3], ids[2]]);
    assert_eq!(
        store
            .invocations("beta", &InvocationFilter::default())
            .await
            .unwrap()
            .len(),
        3
    );
    // keep_days 7: acme's rows from 8.5 and 7.5 days ago go, the one from 6.5 days ago stays.
    let deleted = store
        .prune_invocations(&Retention {
            keep_last: None,
            keep_days: Some(7),
        })
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let left: Vec<i64> = store
        .invocations("acme", &InvocationFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, [ids[4]]);
    assert_eq!(
        store
            .invocations("beta", &InvocationFilter::default())
            .await
            .unwrap()
            .len(),
        3
    );
}

async fn every_change_is_audited_without_secrets(db: &Db) {
    let store = db.open(Some(key())).await;
    store.create_workspace("acme", "Acme", "op").await.unwrap();
    store
        .set_quotas(
            "acme",
            Quotas {
                max_concurrent_calls: 1,
                calls_per_minute: 2,
            },
            "op",
        )
        .await
        .unwrap();
    let (rec, _) = store
        .put_integration("acme", "ss", &spec(), KeyUpdate::Set("sk_audit_secret".into()), "tok1")
        .await
        .unwrap();
    let fingerprint = rec.key.unwrap().fingerprint;
    store
        .put_integration("acme", "ss", &spec(), KeyUpdate::Clear, "tok1")
        .await
        .unwrap();
    store
        .put_action("acme", "track", &json!({ "m": 1 }), "tok1")
        .await
        .unwrap();
    store.delete_action("acme", "track", "tok1").await.unwrap();
    let (token, secret) = store.mint_token("acme", &[Scope::Admin], "ci", "op").await.unwrap();
    store.revoke_token("acme", &token.id, "op").await.unwrap();
    store.delete_integration("acme", "ss", "tok1").await.unwrap();
    store.put_component(b"\0asm", "k", &json!({}), "op").await.unwrap();
    store.rotate_master_key(MasterKey::generate(), "op").await.unwrap();
    store.create_workspace("beta", "Beta", "op").await.unwrap();
    store.delete_workspace("beta", "op").await.unwrap();

    let all = store.audit(&AuditFilter::default()).await.unwrap();
    let actions: Vec<&str> = all.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "workspace.create",
            "workspace.quotas",
            "integration.put",
            "integration.put",
            "action.put",
            "action.delete",
            "token.mint",
            "token.revoke",
            "integration.delete",
            "component.register",
            "store.rotate_master_key",
            "workspace.create",
            "workspace.delete",
        ]
    );
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let put = &all[all.len() - 3];
    assert_eq!(put.actor, "tok1");
    assert_eq!(put.workspace.as_deref(), Some("acme"));
    assert_eq!(put.target, "ss");
    assert!(put.before.is_none());
    assert_eq!(
        put.after.as_ref().unwrap()["api_key"],
        format!("set (fingerprint {fingerprint})")
    );
    let clear = &all[all.len() - 4];
    assert_eq!(clear.after.as_ref().unwrap()["api_key"], "not set");
    assert_eq!(
        clear.before.as_ref().unwrap()["api_key"],
        format!("set (fingerprint {fingerprint})")
    );

    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains("sk_audit_secret"), "the API key is in the audit log");
    assert!(
        !text.contains(&secret.expose()[17..]),
        "the token secret is in the audit log"
    );

    // Filters: workspace, since, limit.
    let beta = store
        .audit(&AuditFilter {
            workspace: Some("beta".into()),
            since_ms: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(beta.len(), 2);
    assert_eq!(beta[0].before.as_ref().unwrap()["display_name"], "Beta");
    let two = store
        .audit(&AuditFilter {
            workspace: None,
            since_ms: Some(0),
            limit: 2,
        })
        .await
        .unwrap();
    assert_eq!(two.len(), 2);
    let future = store
        .audit(&AuditFilter {
            workspace: None,
            since_ms: Some(i64::MAX),
            limit: 2,
        })
        .await
        .unwrap();
    assert!(future.is_empty());
}

async fn newer_schema_is_refused(db: &Db) {
    let store = db.open(None).await;
    store.create_workspace("acme", "Acme", "operator").await.unwrap();
    drop(store);
    // Reopening the current version is fine and keeps the data.
    assert!(db.open(None).await.workspace("acme").await.unwrap().is_some());

    let raw = db.raw().await;
    sqlx::query("UPDATE actionbox_meta SET value = $1 WHERE key = 'schema_version'")
        .bind(Store::SCHEMA_VERSION + 1)
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let err = match Store::open(&db.url, None).await {
        Ok(_) => panic!("a newer schema was accepted"),
        Err(e) => e,
    };
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, known } if found == known + 1),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the store's schema is version {}, newer than this actionbox (knows {}): upgrade actionbox, or point \
             --store at another database",
            Store::SCHEMA_VERSION + 1,
            Store::SCHEMA_VERSION
        )
    );
}

async fn api_key_is_not_at_rest_in_clear(db: &Db) {
    let api_key = "sk_live_RECOGNIZABLE_0123456789_key";
    let store = db.open(Some(key())).await;
    store.create_workspace("acme", "Acme", "operator").await.unwrap();
    let (rec, _) = store
        .put_integration(
            "acme",
            "ss",
            &spec(),
            KeyUpdate::Set(SecretText::new(api_key)),
            "operator",
        )
        .await
        .unwrap();
    let fingerprint = rec.key.unwrap().fingerprint;
    let (_, token) = store.mint_token("acme", &[Scope::Admin], "", "operator").await.unwrap();
    let token_secret = token.expose()[17..].to_owned();

    let bytes = db.at_rest();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(fingerprint.as_bytes()),
        "the fingerprint should be stored (test sanity)"
    );
    assert!(contains(b"shipstation"), "the spec should be stored (test sanity)");
    for form in [
        api_key.as_bytes().to_vec(),
        hex_lower(api_key.as_bytes()).into_bytes(),
        hex_lower(api_key.as_bytes()).to_uppercase().into_bytes(),
        base64(api_key.as_bytes()).into_bytes(),
        token_secret.clone().into_bytes(),
    ] {
        assert!(!contains(&form), "{} found at rest", String::from_utf8_lossy(&form));
    }
    // The master key is not in the database either.
    assert!(!contains(&[0x42; 32]));
    assert!(!contains(hex_lower(&[0x42; 32]).as_bytes()));
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    // Without padding: a prefix match is enough.
    out
}

#[tokio::test]
async fn sqlite_file_and_directory_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let db = Db::sqlite();
    let store = db.open(Some(key())).await;
    store.create_workspace("acme", "Acme", "operator").await.unwrap();
    let path = db.sqlite_path().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    assert!(wal.exists(), "WAL mode is on");
    assert_eq!(mode(&wal), 0o600);
}

#[tokio::test]
async fn unknown_store_url_is_refused_with_the_forms() {
    for url in ["mysql://x", "sqlite::memory:", "sqlite:"] {
        let err = match Store::open(url, None).await {
            Ok(_) => panic!("{url} accepted"),
            Err(e) => e,
        };
        assert!(matches!(err, StoreError::Invalid { .. }), "{url}: {err}");
        assert!(err.to_string().contains("sqlite:PATH"), "{err}");
    }
}
