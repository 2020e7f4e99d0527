//! Workspace mode's admin side end to end (issue 13): validation that names
//! the field, tokens and their scopes, and the audit log. Helpers in
//! `workspaces.rs`.

use crate::workspaces::*;
use actionbox_e2e::legacy_action_path;
use serde_json::{json, Value};
use shipstation_sim::{Fixtures, Simulator};

// ---------------------------------------------------------------- 3. validation

#[tokio::test(flavor = "multi_thread")]
async fn validation_errors_name_the_field() {
    let dir = fresh_dir("validation");
    let store = TestStore::sqlite(&dir);
    let sim = Simulator::start().await.expect("simulator");
    let master = new_master_key(&dir, "master.key").await;
    // No --allow-private-base-urls: the server of a real platform.
    let serve = StoreServe::up(ServeSpec::new(&store, &master, &dir).args(&[])).await;
    let api = serve.api();
    create_workspace(api, "shop").await;
    let component = register_shipstation(api).await;
    let (_, admin) = mint(api, "shop", &["admin"], "console").await;
    let path = "/v1/workspaces/shop/integrations/main";
    let spec = |extra: Value| {
        let mut v = json!({ "kind": "shipstation", "component": component, "api_key": "k-0123456789" });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        v
    };

    let invalid = |r: &Reply, field: &str| {
        assert_eq!(r.status, 400, "{r}");
        assert!(r.error_message().contains(field), "the message names `{field}`: {r}");
    };

    for timeout in [5, 181] {
        let r = api.put(&admin, path, spec(json!({ "timeout": timeout }))).await;
        invalid(&r, "timeout");
        let m = r.error_message();
        assert!(
            m.contains("10") && m.contains("180"),
            "the message gives the range: {r}"
        );
    }
    let r = api.put(&admin, path, spec(json!({ "api_key_env": "HOME" }))).await;
    invalid(&r, "api_key_env");
    let r = api
        .put(&admin, path, spec(json!({ "api_key_file": "/etc/shadow" })))
        .await;
    invalid(&r, "api_key_file");
    for private in [
        sim.base_url(),
        "http://10.1.2.3".to_string(),
        "http://169.254.169.254".to_string(),
    ] {
        let r = api.put(&admin, path, spec(json!({ "base_url": private }))).await;
        invalid(&r, "base_url");
    }
    let r = api
        .put(
            &admin,
            path,
            spec(json!({ "component": format!("sha256:{}", "0".repeat(64)) })),
        )
        .await;
    invalid(&r, "component");
    let r = api.put(&admin, path, spec(json!({ "kind": "fedex" }))).await;
    invalid(&r, "kind");
    let r = api.put(&admin, path, spec(json!({ "timeuot": 20 }))).await;
    invalid(&r, "timeuot");
    assert!(
        api.get(&admin, "/v1/workspaces/shop/integrations")
            .await
            .expect(200)
            .json()["integrations"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "a refused PUT stores nothing"
    );

    // A valid one (the kind's own public base URL) is accepted.
    api.put(&admin, path, spec(json!({ "timeout": 180 }))).await.expect(201);

    let action = |extra: Value| {
        let mut v = json!({ "integration": "main", "method": "trackOrder" });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        v
    };
    let apath = "/v1/workspaces/shop/actions/custom";
    let r = api.put(&admin, apath, action(json!({ "method": "shipIt" }))).await;
    invalid(&r, "method");
    assert!(r.error_message().contains("trackOrder"), "it lists the methods: {r}");
    let r = api
        .put(
            &admin,
            apath,
            action(json!({ "parameters": { "customer_email": { "description": "the email" } } })),
        )
        .await;
    invalid(&r, "customer_email");
    let r = api.put(&admin, apath, action(json!({ "integration": "nope" }))).await;
    invalid(&r, "integration");
    let r = api
        .put(&admin, apath, action(json!({ "execution": "sometimes" })))
        .await;
    invalid(&r, "execution");
    api.put(&admin, apath, action(json!({}))).await.expect(201);

    // The operator's side: workspace ids and components actionbox would refuse.
    let r = api
        .post(
            OPERATOR,
            "/v1/admin/workspaces",
            json!({ "id": "Bad Id!", "display_name": "x" }),
        )
        .await;
    invalid(&r, "id");
    let r = api
        .post(
            OPERATOR,
            "/v1/admin/workspaces",
            json!({ "id": "shop", "display_name": "again" }),
        )
        .await;
    assert_eq!(r.status, 409, "{r}");
    let legacy = std::fs::read(legacy_action_path()).expect("legacy component");
    for (what, bytes) in [("0.1.0 component", legacy), ("not wasm", b"not a component".to_vec())] {
        let r = api
            .raw(
                "POST",
                "/v1/admin/components",
                Some(OPERATOR),
                Some(("application/wasm", &bytes)),
            )
            .await;
        // Refused by `actionbox check`, the upload gate: 422 with its findings.
        assert_eq!(r.status, 422, "{what}: {r}");
        assert!(!r.error_message().is_empty(), "{what}: the reason is given: {r}");
    }
    let components = api.get(OPERATOR, "/v1/admin/components").await.expect(200).json();
    assert_eq!(
        components["components"].as_array().map(Vec::len),
        Some(1),
        "refused components are not stored: {components}"
    );
}

// ---------------------------------------------------------------- 4. tokens

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_scopes() {
    let dir = fresh_dir("tokens");
    let store = TestStore::sqlite(&dir);
    let sim = Simulator::start().await.expect("simulator");
    let master = new_master_key(&dir, "master.key").await;
    let serve = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let api = serve.api();
    let a = merchant(api, "alpha", &sim, sim.api_key()).await;
    let b = merchant(api, "beta", &sim, sim.api_key()).await;

    // No token, a wrong one, a malformed one: 401 with a Bearer challenge.
    for token in [
        None,
        Some("abx_000000000000_wrongwrongwrongwrongwrong"),
        Some("nonsense"),
    ] {
        let r = api.send("GET", "/v1/workspaces/alpha/tools", token, None).await;
        assert_eq!(r.status, 401, "{token:?}: {r}");
        assert!(
            r.header("www-authenticate").is_some_and(|v| v.starts_with("bearer")),
            "{r}"
        );
        assert_eq!(r.error_kind(), "unauthenticated", "{r}");
        let r = api.send("GET", "/v1/admin/workspaces", token, None).await;
        assert_eq!(r.status, 401, "{token:?}: {r}");
    }

    // The assistant scope: tools and invoke, nothing of the admin's.
    assert_eq!(api.tool_names(&a.assistant, "alpha").await, ["trackOrder"]);
    api.invoke(&a.assistant, "alpha", "trackOrder", "1001")
        .await
        .expect(200);
    let r = api
        .put(
            &a.assistant,
            "/v1/workspaces/alpha/integrations/main",
            shipstation_spec(&a.component, "stolen-0123456789", &sim.base_url()),
        )
        .await;
    assert_eq!(r.status, 403, "{r}");
    assert_eq!(r.error_kind(), "forbidden", "{r}");
    for path in ["/v1/workspaces/alpha/integrations", "/v1/workspaces/alpha/audit"] {
        assert_eq!(api.get(&a.assistant, path).await.status, 403, "{path}");
    }
    let r = api
        .put(
            &a.assistant,
            "/v1/workspaces/alpha/actions/sneaky",
            json!({ "integration": "main", "method": "trackOrder" }),
        )
        .await;
    assert_eq!(r.status, 403, "{r}");

    // A workspace's tokens open nothing of another workspace's.
    for (token, other) in [(&a.admin, "beta"), (&a.assistant, "beta"), (&b.admin, "alpha")] {
        for r in [
            api.get(token, &format!("/v1/workspaces/{other}/integrations")).await,
            api.get(token, &format!("/v1/workspaces/{other}/tools")).await,
            api.invoke(token, other, "trackOrder", "1001").await,
            api.delete(token, &format!("/v1/workspaces/{other}/integrations/main"))
                .await,
        ] {
            assert!(r.status == 403 || r.status == 404, "{r}");
        }
    }
    assert_eq!(
        api.get(&b.admin, "/v1/workspaces/beta/integrations").await.status,
        200,
        "beta's integration is still there"
    );

    // Workspace tokens are not the operator's.
    for r in [
        api.get(&a.admin, "/v1/admin/workspaces").await,
        api.post(
            &a.admin,
            "/v1/admin/workspaces",
            json!({ "id": "mine", "display_name": "x" }),
        )
        .await,
        api.post(
            &a.admin,
            "/v1/admin/workspaces/alpha/tokens",
            json!({ "scopes": ["admin"], "label": "more" }),
        )
        .await,
        api.get(&a.admin, "/v1/admin/audit").await,
        api.delete(&a.admin, "/v1/admin/workspaces/beta").await,
    ] {
        assert_eq!(r.status, 403, "{r}");
    }

    // The operator token works on every workspace's admin routes.
    api.get(OPERATOR, "/v1/workspaces/alpha/integrations").await.expect(200);
    api.get(OPERATOR, "/v1/workspaces/beta/actions").await.expect(200);

    // Secrets are shown once: the list has ids and labels only.
    let (extra_id, extra) = mint(api, "alpha", &["assistant"], "to-revoke").await;
    let listed = api.get(OPERATOR, "/v1/admin/workspaces/alpha/tokens").await.expect(200);
    let tokens = listed.json()["tokens"].clone();
    assert_eq!(tokens.as_array().map(Vec::len), Some(3), "{listed}");
    assert!(names_by(&tokens, "id").contains(&extra_id), "{listed}");
    for secret in [&a.admin, &a.assistant, &extra] {
        // `abx_<id>_<secret>`: the id is public, the rest is not.
        let hidden = secret.splitn(3, '_').nth(2).unwrap_or(secret);
        assert!(!listed.body.contains(hidden), "a token secret is listed: {listed}");
    }
    for t in tokens.as_array().cloned().unwrap_or_default() {
        assert!(t.get("token").is_none(), "{t}");
    }

    // Revoked: 401 at once; another workspace cannot revoke it.
    api.get(&extra, "/v1/workspaces/alpha/tools").await.expect(200);
    let r = api
        .delete(OPERATOR, &format!("/v1/admin/workspaces/beta/tokens/{extra_id}"))
        .await;
    assert_eq!(r.status, 404, "{r}");
    api.delete(OPERATOR, &format!("/v1/admin/workspaces/alpha/tokens/{extra_id}"))
        .await
        .expect(204);
    let r = api.get(&extra, "/v1/workspaces/alpha/tools").await.expect(401);
    assert_eq!(r.error_kind(), "unauthenticated", "{r}");
    api.get(&a.assistant, "/v1/workspaces/alpha/tools").await.expect(200);

    // A deleted workspace takes its tokens with it.
    let r = api.delete(OPERATOR, "/v1/admin/workspaces/beta").await;
    assert!(r.status == 204 || r.status == 200, "{r}");
    let r = api.get(&b.admin, "/v1/workspaces/beta/integrations").await;
    assert_eq!(r.status, 401, "{r}");
    api.get(OPERATOR, "/v1/admin/workspaces/beta").await.expect(404);
    api.invoke(&a.assistant, "alpha", "trackOrder", "1001")
        .await
        .expect(200);
}

// ---------------------------------------------------------------- 7. audit

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_records_admin_changes() {
    let dir = fresh_dir("audit");
    let store = TestStore::sqlite(&dir);
    let sim = Simulator::start_with(Fixtures::default_set(), RECOGNIZABLE_KEY, 0)
        .await
        .expect("simulator");
    let master = new_master_key(&dir, "master.key").await;
    let serve = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let api = serve.api();

    create_workspace(api, "acme").await;
    let component = register_shipstation(api).await;
    let (admin_id, admin) = mint(api, "acme", &["admin"], "console").await;
    let (revoked_id, _) = mint(api, "acme", &["assistant"], "short-lived").await;
    let mut put = shipstation_spec(&component, RECOGNIZABLE_KEY, &sim.base_url());
    put["timeout"] = json!(10);
    api.put(&admin, "/v1/workspaces/acme/integrations/main", put.clone())
        .await
        .expect(201);
    put["timeout"] = json!(30);
    if let Some(o) = put.as_object_mut() {
        o.remove("api_key");
    }
    api.put(&admin, "/v1/workspaces/acme/integrations/main", put.clone())
        .await
        .expect(200);
    put["timeout"] = json!(5);
    api.put(&admin, "/v1/workspaces/acme/integrations/main", put)
        .await
        .expect(400);
    api.put(
        &admin,
        "/v1/workspaces/acme/actions/custom",
        json!({ "integration": "main", "method": "trackOrder" }),
    )
    .await
    .expect(201);
    api.delete(&admin, "/v1/workspaces/acme/actions/custom")
        .await
        .expect(204);
    api.put(
        OPERATOR,
        "/v1/admin/workspaces/acme/quotas",
        json!({ "max_concurrent_calls": 4, "calls_per_minute": 100 }),
    )
    .await
    .expect(200);
    api.delete(OPERATOR, &format!("/v1/admin/workspaces/acme/tokens/{revoked_id}"))
        .await
        .expect(204);

    let answer = api.get(OPERATOR, "/v1/admin/audit?workspace=acme").await.expect(200);
    assert!(
        !answer.body.contains(RECOGNIZABLE_KEY),
        "a key in the audit log: {answer}"
    );
    let entries = answer.json()["entries"].as_array().cloned().unwrap_or_default();
    let seqs: Vec<i64> = entries.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert_eq!(seqs.len(), entries.len(), "every entry has a seq: {answer}");
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {answer}");
    for e in &entries {
        assert_eq!(e["workspace"], "acme", "{e}");
        assert!(e["at_ms"].as_i64().is_some_and(|t| t > 0), "{e}");
    }

    // Each change, oldest first: (actor, what the action names, what the target names).
    let expected: [(&str, &[&str], &str); 9] = [
        ("operator", &["workspace"], "acme"),
        ("operator", &["token"], &admin_id),
        ("operator", &["token"], &revoked_id),
        (&admin_id, &["integration"], "main"),
        (&admin_id, &["integration"], "main"),
        (&admin_id, &["action"], "custom"),
        (&admin_id, &["action", "delete"], "custom"),
        ("operator", &["quota"], "acme"),
        ("operator", &["token"], &revoked_id),
    ];
    let mut chronological = entries.clone();
    chronological.reverse();
    let mut from = 0;
    let mut matched = Vec::new();
    for (actor, words, target) in expected {
        // The actor is `operator` or the token's id (written `token:<id>`).
        let by = |e: &Value| e["actor"] == actor || e["actor"] == format!("token:{actor}");
        let found = chronological[from..].iter().position(|e| {
            by(e)
                && words
                    .iter()
                    .all(|w| e["action"].as_str().unwrap_or_default().contains(w))
                && e["target"].as_str().unwrap_or_default().contains(target)
        });
        let at = found.unwrap_or_else(|| panic!("no entry ({actor}, {words:?}, {target}) after #{from} in:\n{answer}"));
        matched.push(chronological[from + at].clone());
        from += at + 1;
    }
    let (first_put, second_put) = (&matched[3], &matched[4]);
    assert!(first_put["before"].is_null(), "created: {first_put}");
    assert_eq!(first_put["after"]["spec"]["timeout"], 10, "{first_put}");
    assert_eq!(second_put["before"]["spec"]["timeout"], 10, "{second_put}");
    assert_eq!(second_put["after"]["spec"]["timeout"], 30, "{second_put}");
    assert!(
        second_put["after"]
            .to_string()
            .contains(&sha256_hex(RECOGNIZABLE_KEY.as_bytes())[..8]),
        "the key is described by its fingerprint: {second_put}"
    );
    let deleted = &matched[6];
    assert!(
        !deleted["before"].is_null(),
        "a delete keeps what was deleted: {deleted}"
    );
    assert!(
        entries.iter().all(|e| e["after"]["spec"]["timeout"] != 5),
        "a refused change is not recorded: {answer}"
    );

    // The component registration is the operator's, outside any workspace.
    let all = api.get(OPERATOR, "/v1/admin/audit").await.expect(200);
    let hex = component.trim_start_matches("sha256:");
    assert!(
        all.json()["entries"].as_array().is_some_and(|l| l
            .iter()
            .any(|e| e["actor"] == "operator" && e["target"].as_str().unwrap_or_default().contains(hex))),
        "{all}"
    );

    // The workspace's admin sees its own log; limit bounds it.
    let own = api.get(&admin, "/v1/workspaces/acme/audit").await.expect(200).json();
    assert_eq!(own["entries"].as_array().map(Vec::len), Some(entries.len()), "{own}");
    let two = api
        .get(OPERATOR, "/v1/admin/audit?workspace=acme&limit=2")
        .await
        .expect(200)
        .json();
    assert_eq!(two["entries"].as_array().map(Vec::len), Some(2), "{two}");
    // Append-only: nothing deletes entries.
    let r = api.delete(OPERATOR, "/v1/admin/audit").await;
    assert!(r.status == 404 || r.status == 405, "{r}");
    let again = api
        .get(OPERATOR, "/v1/admin/audit?workspace=acme")
        .await
        .expect(200)
        .json();
    assert_eq!(again["entries"].as_array().map(Vec::len), Some(entries.len()));
}
