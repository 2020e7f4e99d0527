//! Workspace mode's operations end to end (issue 13): quotas, replicas on
//! one PostgreSQL, the store CLI (master key, rotation, export/import) and
//! history retention. Helpers in `workspaces.rs`.

use crate::workspaces::*;
use serde_json::json;
use shipstation_sim::{FaultRule, Fixtures, Simulator};
use std::time::Duration;

// ---------------------------------------------------------------- 5. quotas

#[tokio::test(flavor = "multi_thread")]
async fn quotas_isolate_workspaces() {
    let dir = fresh_dir("quotas");
    let store = TestStore::sqlite(&dir);
    let sim = Simulator::start().await.expect("simulator");
    let master = new_master_key(&dir, "master.key").await;
    let serve = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let api = serve.api();
    let busy = merchant(api, "busy", &sim, sim.api_key()).await;
    let flooded = merchant(api, "flooded", &sim, sim.api_key()).await;
    let calm = merchant(api, "calm", &sim, sim.api_key()).await;

    // Concurrency: `flooded` may hold two calls at once; a slow upstream for
    // its order keeps them busy while calm's calls go through.
    api.put(
        OPERATOR,
        "/v1/admin/workspaces/flooded/quotas",
        json!({ "max_concurrent_calls": 2, "calls_per_minute": 600 }),
    )
    .await
    .expect(200);
    sim.add_fault(
        FaultRule::on("/v2/shipments")
            .query("shipment_number=1003")
            .delay(Duration::from_secs(3)),
    );
    let mut flood = Vec::new();
    for _ in 0..8 {
        let token = flooded.assistant.clone();
        flood.push(tokio::spawn(async move {
            api.invoke(&token, "flooded", "trackOrder", "1003").await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut calm_answers = Vec::new();
    for order in ["1001", "1002", "1004", "1005", "1001"] {
        calm_answers.push(api.invoke(&calm.assistant, "calm", "trackOrder", order).await);
    }
    let mut refused = 0;
    let mut served = 0;
    let mut flood_answers = Vec::new();
    for call in flood {
        let r = call.await.expect("join");
        flood_answers.push(r.to_string());
        match r.status {
            429 => {
                assert_eq!(r.error_kind(), "quota-exceeded", "{r}");
                assert!(r.error_message().contains("max_concurrent_calls"), "{r}");
                assert_retry_after(&r, 60);
                refused += 1;
            }
            200 | 404 => served += 1,
            _ => panic!("a flood call neither served nor refused: {r}"),
        }
    }
    for r in &calm_answers {
        assert_eq!(r.status, 200, "calm's call during the flood: {r}");
    }
    assert!(
        refused >= 1,
        "the flood beyond 2 concurrent calls is refused: {flood_answers:#?}"
    );
    assert!(
        served >= 1,
        "the first calls of the flood are served: {flood_answers:#?}"
    );
    sim.clear_faults();
    api.invoke(&flooded.assistant, "flooded", "trackOrder", "1001")
        .await
        .expect(200);

    // Calls per minute: five pass, the sixth is refused with a Retry-After.
    let q = api
        .put(
            OPERATOR,
            "/v1/admin/workspaces/busy/quotas",
            json!({ "max_concurrent_calls": 2, "calls_per_minute": 5 }),
        )
        .await
        .expect(200);
    assert_eq!(q.json()["quotas"]["calls_per_minute"], 5, "{q}");
    for _ in 0..5 {
        api.invoke(&busy.assistant, "busy", "trackOrder", "1001")
            .await
            .expect(200);
    }
    let upstream_before = sim.requests().len();
    let over = api
        .invoke(&busy.assistant, "busy", "trackOrder", "1001")
        .await
        .expect(429);
    assert_eq!(over.error_kind(), "quota-exceeded", "{over}");
    assert_retry_after(&over, 60);
    assert_eq!(
        sim.requests().len(),
        upstream_before,
        "a refused call sends nothing upstream"
    );
    // The other workspaces are untouched, and kept their own quotas.
    api.invoke(&calm.assistant, "calm", "trackOrder", "1001")
        .await
        .expect(200);
    let calm_ws = api.get(OPERATOR, "/v1/admin/workspaces/calm").await.expect(200).json();
    assert_eq!(calm_ws["quotas"]["calls_per_minute"], 600, "{calm_ws}");

    // The operator raises busy's quota: it applies to the next calls (six
    // of the 600 are used this minute).
    api.put(
        OPERATOR,
        "/v1/admin/workspaces/busy/quotas",
        json!({ "max_concurrent_calls": 16, "calls_per_minute": 600 }),
    )
    .await
    .expect(200);
    for _ in 0..10 {
        api.invoke(&busy.assistant, "busy", "trackOrder", "1001")
            .await
            .expect(200);
    }
}

/// `r` carries `Retry-After: N` seconds with 1 ≤ N ≤ `max`.
#[track_caller]
fn assert_retry_after(r: &Reply, max: u64) {
    let secs: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After seconds: {}\n{}", r, r.headers));
    assert!((1..=max).contains(&secs), "Retry-After {secs}: {r}");
}

// ---------------------------------------------------------------- 6. replicas

#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_a_second_replica() {
    let dir = fresh_dir("replicas");
    let Some(store) = TestStore::new(Backend::Postgres, &dir).await else {
        return;
    };
    let sim = Simulator::start().await.expect("simulator");
    let master = new_master_key(&dir, "master.key").await;
    let one = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let two = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let (r1, r2) = (one.api(), two.api());

    // Set up through replica 1; replica 2 authenticates the tokens and serves the workspace.
    let m = merchant(r1, "shared", &sim, sim.api_key()).await;
    wait_for_tools(r2, &m.assistant, "shared", |names| {
        names.contains(&"trackOrder".to_string())
    })
    .await;
    r2.invoke(&m.assistant, "shared", "trackOrder", "1001")
        .await
        .expect(200);

    r1.put(
        &m.admin,
        "/v1/workspaces/shared/actions/track_shopify_order",
        json!({ "integration": "main", "method": "trackOrder",
                "parameters": { "order_id": { "description": SHOPIFY_DESCRIPTION } } }),
    )
    .await
    .expect(201);
    wait_for_tools(r2, &m.assistant, "shared", |names| {
        names.contains(&"track_shopify_order".to_string())
    })
    .await;
    let tools = r2
        .get(&m.assistant, "/v1/workspaces/shared/tools")
        .await
        .expect(200)
        .json();
    assert_eq!(
        named(&tools["tools"], "track_shopify_order")["parameters"]["properties"]["order_id"]["description"],
        SHOPIFY_DESCRIPTION,
        "{tools}"
    );
    r2.invoke(&m.assistant, "shared", "track_shopify_order", "1001")
        .await
        .expect(200);

    r2.delete(&m.admin, "/v1/workspaces/shared/actions/track_shopify_order")
        .await
        .expect(204);
    wait_for_tools(r1, &m.assistant, "shared", |names| {
        !names.contains(&"track_shopify_order".to_string())
    })
    .await;
    let gone = r1
        .invoke(&m.assistant, "shared", "track_shopify_order", "1001")
        .await
        .expect(404);
    assert_eq!(gone.error_kind(), "unknown-action", "{gone}");

    // A token revoked on one replica stops working on the other.
    let listed = r2
        .get(OPERATOR, "/v1/admin/workspaces/shared/tokens")
        .await
        .expect(200)
        .json();
    let assistant_id = listed["tokens"]
        .as_array()
        .and_then(|l| l.iter().find(|t| t["label"] == "assistant"))
        .map(|t| id_text(&t["id"]))
        .unwrap_or_else(|| panic!("{listed}"));
    r2.delete(OPERATOR, &format!("/v1/admin/workspaces/shared/tokens/{assistant_id}"))
        .await
        .expect(204);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = r1.get(&m.assistant, "/v1/workspaces/shared/tools").await;
        if r.status == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still accepted after 10 s: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll `api`'s tools of `ws` (up to 10 s) until `done` holds for their names.
async fn wait_for_tools(api: Api, token: &str, ws: &str, done: impl Fn(&[String]) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = api.get(token, &format!("/v1/workspaces/{ws}/tools")).await;
        if r.status == 200 && done(&names(&r.json()["tools"])) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change did not reach the replica within 10 s: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------- 8. store CLI

#[tokio::test(flavor = "multi_thread")]
async fn master_key_file_is_created_private_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = fresh_dir("master-key");
    let path = new_master_key(&dir, "master.key").await;
    let meta = std::fs::metadata(&path).expect("key file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "created 0600");
    let content = std::fs::read_to_string(&path).expect("key file");
    assert_eq!(content.trim().len(), 64, "64 hex characters");
    assert!(content.trim().chars().all(|c| c.is_ascii_hexdigit()));

    let again = cli(&["store", "init-master-key", text(&path)], &[]).await;
    assert_ne!(again.code, 0, "overwrote the master key: {}", again.stderr);
    assert!(
        again.stderr.contains(text(&path)),
        "the error names the file: {}",
        again.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).expect("key file"), content, "unchanged");
    assert!(!again.stderr.contains(content.trim()) && !again.stdout.contains(content.trim()));

    // A readable key file, or a short operator token, stops serve at start.
    let store = TestStore::sqlite(&dir);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = match StoreServe::start(ServeSpec::new(&store, &path, &dir)).await {
        Err(refused) => refused,
        Ok(_) => panic!("serve started with a world-readable (0644) master key"),
    };
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("chmod 600"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(content.trim()), "{}", refused.stderr);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut short = ServeSpec::new(&store, &path, &dir);
    short.operator_token = "short".to_string();
    let refused = match StoreServe::start(short).await {
        Err(refused) => refused,
        Ok(_) => panic!("serve started with a 5-character operator token"),
    };
    assert!(
        refused.stderr.contains("ACTIONBOX_OPERATOR_TOKEN"),
        "{}",
        refused.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_master_key_and_exported_workspace_keep_working() {
    let dir = fresh_dir("rotate-export");
    let store = TestStore::sqlite(&dir);
    let sim = Simulator::start_with(Fixtures::default_set(), RECOGNIZABLE_KEY, 0)
        .await
        .expect("simulator");
    let old = new_master_key(&dir, "old.key").await;
    let serve = StoreServe::up(ServeSpec::new(&store, &old, &dir)).await;
    let api = serve.api();
    let m = merchant(api, "acme", &sim, RECOGNIZABLE_KEY).await;
    api.put(
        &m.admin,
        "/v1/workspaces/acme/actions/track_shopify_order",
        json!({ "integration": "main", "method": "trackOrder", "description": "Track a Shopify order.",
                "parameters": { "order_id": { "description": SHOPIFY_DESCRIPTION } },
                "response_instructions": "Always give the tracking link." }),
    )
    .await
    .expect(201);
    api.invoke(&m.assistant, "acme", "trackOrder", "1001").await.expect(200);
    let tools_before = api
        .get(&m.assistant, "/v1/workspaces/acme/tools")
        .await
        .expect(200)
        .json();
    drop(serve);

    // Export: the workspace as actionbox.toml, the key by reference only.
    let export = cli(
        &["workspace", "export", "--store", &store.url, "acme"],
        &[("ACTIONBOX_MASTER_KEY_FILE", text(&old))],
    )
    .await;
    assert_eq!(export.code, 0, "export failed: {}", export.stderr);
    assert!(!export.stdout.contains(RECOGNIZABLE_KEY), "the key is in the export");
    assert!(!export.stderr.contains(RECOGNIZABLE_KEY));
    assert!(export.stdout.contains("[[integration]]"), "{}", export.stdout);
    assert!(export.stdout.contains(SHOPIFY_DESCRIPTION), "{}", export.stdout);
    let key_var = export
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("api_key_env"))
        .map(|rest| rest.trim().trim_start_matches('=').trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("the export names no api_key_env:\n{}", export.stdout));
    let exported = dir.join("acme.toml");
    std::fs::write(&exported, &export.stdout).expect("write export");

    // Rotate: every key re-sealed under the new master key.
    let new = new_master_key(&dir, "new.key").await;
    let rotate = cli(
        &[
            "store",
            "rotate-master-key",
            "--store",
            &store.url,
            "--new-key-file",
            text(&new),
        ],
        &[("ACTIONBOX_MASTER_KEY_FILE", text(&old))],
    )
    .await;
    assert_eq!(rotate.code, 0, "rotate failed: {}{}", rotate.stdout, rotate.stderr);
    assert!(!rotate.stdout.contains(RECOGNIZABLE_KEY) && !rotate.stderr.contains(RECOGNIZABLE_KEY));

    // Import into a new workspace, its key from the variable the export names.
    let import = cli(
        &[
            "workspace",
            "import",
            "--store",
            &store.url,
            "--allow-private-base-urls",
            "copy",
            text(&exported),
        ],
        &[("ACTIONBOX_MASTER_KEY_FILE", text(&new)), (&key_var, RECOGNIZABLE_KEY)],
    )
    .await;
    assert_eq!(import.code, 0, "import failed: {}{}", import.stdout, import.stderr);
    assert!(!import.stdout.contains(RECOGNIZABLE_KEY) && !import.stderr.contains(RECOGNIZABLE_KEY));
    assert!(
        !contains_bytes(&store.at_rest().await, RECOGNIZABLE_KEY),
        "the imported key is at rest in clear"
    );

    // The new key opens everything: the original and the copy.
    let serve = StoreServe::up(ServeSpec::new(&store, &new, &dir)).await;
    let api = serve.api();
    api.invoke(&m.assistant, "acme", "trackOrder", "1001").await.expect(200);
    let (_, copy) = mint(api, "copy", &["assistant"], "assistant").await;
    let tools_copy = api.get(&copy, "/v1/workspaces/copy/tools").await.expect(200).json();
    assert_eq!(tools_copy, tools_before, "the imported workspace offers the same tools");
    api.invoke(&copy, "copy", "track_shopify_order", "1001")
        .await
        .expect(200);
    drop(serve);

    // The old master key no longer opens the store's keys.
    match StoreServe::start(ServeSpec::new(&store, &old, &dir)).await {
        Err(refused) => assert!(refused.stderr.contains("master key"), "{}", refused.stderr),
        Ok(serve) => {
            let r = serve.api().invoke(&m.assistant, "acme", "trackOrder", "1001").await;
            assert_ne!(r.status, 200, "the old master key still opens the key: {r}");
            assert!(r.body.contains("master key"), "{r}");
        }
    }
}

// ---------------------------------------------------------------- 9. history

#[tokio::test(flavor = "multi_thread")]
async fn history_retention_keeps_the_last_n() {
    let dir = fresh_dir("history");
    let store = TestStore::sqlite(&dir);
    let sim = Simulator::start().await.expect("simulator");
    let master = new_master_key(&dir, "master.key").await;
    let spec = ServeSpec::new(&store, &master, &dir).args(&["--allow-private-base-urls", "--history-keep-last", "3"]);
    let serve = StoreServe::up(spec).await;
    let api = serve.api();
    let m = merchant(api, "acme", &sim, sim.api_key()).await;

    for order in ["1001", "1002"] {
        api.invoke(&m.assistant, "acme", "trackOrder", order).await.expect(200);
    }
    let first_two: Vec<String> = history_of(api, &m.admin, "acme", "", 2)
        .await
        .iter()
        .map(|e| id_text(&e["id"]))
        .collect();
    assert_eq!(first_two.len(), 2, "{first_two:?}");
    for order in ["1003", "1004", "1005"] {
        let r = api.invoke(&m.assistant, "acme", "trackOrder", order).await;
        assert!(r.status == 200 || r.status == 404, "{r}");
    }
    // History is written just after the answers, and pruning may follow
    // the write: wait (bounded) for the three new calls, then for the prune.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let kept = loop {
        let kept = history(api, &m.admin, "acme", "").await;
        let new = kept.iter().filter(|e| !first_two.contains(&id_text(&e["id"]))).count();
        if (new == 3 && kept.len() <= 3) || std::time::Instant::now() >= deadline {
            break kept;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(kept.len(), 3, "{kept:?}");
    for e in &kept {
        assert!(
            !first_two.contains(&id_text(&e["id"])),
            "an old call was kept: {kept:?}"
        );
    }
    // The kept ones still open with their traces.
    let newest = id_text(&kept[0]["id"]);
    let one = api
        .get(&m.admin, &format!("/v1/workspaces/acme/invocations/{newest}"))
        .await
        .expect(200);
    assert!(one.json()["trace"].is_object(), "{one}");
    api.get(&m.admin, &format!("/v1/workspaces/acme/invocations/{}", first_two[0]))
        .await
        .expect(404);
}
