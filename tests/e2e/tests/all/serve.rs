//! `actionbox serve` end to end (every route, auth, saturation, graceful
//! shutdown) and `actionbox mcp` with a real MCP client. The load run is in
//! `load.rs`, its own process, so nothing else shares its memory.

use actionbox_e2e::api::{http, start, TOKEN};
use actionbox_e2e::{
    actionbox_bin, capture_traces, captured_traces, python_with_mcp, shipstation_integration, workspace_root,
    write_config,
};
use serde_json::Value;
use shipstation_sim::{FaultRule, Simulator};
use std::time::Duration;

const ORDER: &str = r#"{"params":{"order_id":"1001"}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_with_a_token() {
    capture_traces();
    let sim = Simulator::start().await.expect("simulator");
    let s = start(&sim, 8).await;
    let t = Some(TOKEN);

    let health = http(s.addr, "GET", "/healthz", None, None).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let tools = http(s.addr, "GET", "/v1/tools?phase=interaction&direction=inbound", t, None).await;
    assert_eq!(tools.status, 200);
    let names: Vec<String> = tools.json()["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(
        names,
        ["trackOrder"],
        "the session-start action is not offered during interaction"
    );
    let openai = http(s.addr, "GET", "/v1/tools?format=openai", t, None).await.json();
    assert_eq!(openai["tools"][0]["type"], "function");
    let mcp = http(s.addr, "GET", "/v1/tools?format=mcp&phase=session-start", t, None)
        .await
        .json();
    assert_eq!(mcp["tools"][0]["name"], "greet_with_status");
    assert!(mcp["tools"][0]["inputSchema"].is_object());

    let ok = http(s.addr, "POST", "/v1/actions/trackOrder/invoke", t, Some(ORDER)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let v = ok.json();
    assert_eq!(v["result"]["shipstation"]["tracking"]["status_code"], "DE");
    assert!(v["response_instructions"].is_string());

    let missing = http(
        s.addr,
        "POST",
        "/v1/actions/trackOrder/invoke",
        t,
        Some(r#"{"params":{"order_id":"nope"}}"#),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["kind"], "not-found");

    let bad = http(
        s.addr,
        "POST",
        "/v1/actions/trackOrder/invoke",
        t,
        Some(r#"{"params":{"order_id":7}}"#),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["kind"], "invalid-input");

    let unknown = http(s.addr, "POST", "/v1/actions/shipIt/invoke", t, Some(ORDER)).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["kind"], "unknown-action");

    let session = http(
        s.addr,
        "POST",
        "/v1/sessions/start",
        t,
        Some(r#"{"context":{"order_id":"1002"}}"#),
    )
    .await;
    assert_eq!(session.status, 200, "{}", session.body);
    let v = session.json();
    assert_eq!(
        v["results"]["greet_with_status"]["result"]["shipstation"]["order_id"],
        "1002"
    );
    assert_eq!(
        v["results"]["greet_with_status"]["response_instructions"],
        "Greet with the status."
    );

    let test = http(s.addr, "POST", "/v1/integrations/shop/test", t, None).await;
    assert_eq!(test.status, 200, "{}", test.body);
    assert_eq!(test.json()["ok"], true);
    let no_such = http(s.addr, "POST", "/v1/integrations/nope/test", t, None).await;
    assert_eq!(no_such.status, 404);

    let metrics = http(s.addr, "GET", "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    for needle in [
        "actionbox_invocations_total{action=\"trackOrder\",outcome=\"ok\"} 1",
        "actionbox_invocations_total{action=\"trackOrder\",outcome=\"not-found\"} 1",
        "actionbox_invocation_duration_seconds_count",
        "actionbox_outbound_requests_total{status=\"200\"}",
        "actionbox_timeouts_total 0",
        "actionbox_denials_total 0",
        "actionbox_in_flight 0",
    ] {
        assert!(
            metrics.body.contains(needle),
            "missing `{needle}` in:\n{}",
            metrics.body
        );
    }
    assert!(!captured_traces().contains(sim.api_key()), "key in traces");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_wrong_token_is_401_before_any_work() {
    let sim = Simulator::start().await.expect("simulator");
    let s = start(&sim, 8).await;
    for token in [None, Some("wrong-token-0123456789abcdef"), Some("")] {
        let r = http(s.addr, "POST", "/v1/actions/trackOrder/invoke", token, Some(ORDER)).await;
        assert_eq!(r.status, 401, "{token:?}");
        assert!(r.headers.contains("www-authenticate: bearer"));
        assert_eq!(r.json()["error"]["kind"], "unauthenticated");
        let r = http(s.addr, "GET", "/v1/tools", token, None).await;
        assert_eq!(r.status, 401);
    }
    assert!(sim.requests().is_empty(), "no action ran");
    let metrics = http(s.addr, "GET", "/metrics", None, None).await;
    assert!(
        metrics.body.contains("actionbox_unauthenticated_total 6"),
        "{}",
        metrics.body
    );
}

/// A server with one permit per integration, and a trackOrder call holding
/// it: the simulator delays its first shipments answer by `delay`.
async fn hold_the_only_permit(
    sim: &Simulator,
    delay: Duration,
) -> (
    actionbox_e2e::api::Server,
    tokio::task::JoinHandle<actionbox_e2e::api::Answer>,
) {
    sim.add_fault(FaultRule::on("/v2/shipments").delay(delay).times(1));
    let s = start(sim, 1).await;
    let addr = s.addr;
    let holder =
        tokio::spawn(
            async move { http(addr, "POST", "/v1/actions/trackOrder/invoke", Some(TOKEN), Some(ORDER)).await },
        );
    tokio::time::sleep(Duration::from_millis(400)).await;
    (s, holder)
}

#[tokio::test(flavor = "multi_thread")]
async fn saturation_is_429_with_retry_after_not_a_queue() {
    let sim = Simulator::start().await.expect("simulator");
    let (s, first) = hold_the_only_permit(&sim, Duration::from_millis(1500)).await;
    let second = http(
        s.addr,
        "POST",
        "/v1/actions/trackOrder/invoke",
        Some(TOKEN),
        Some(ORDER),
    )
    .await;
    assert_eq!(second.status, 429, "{}", second.body);
    assert!(second.headers.contains("retry-after: 1"), "{}", second.headers);
    assert_eq!(second.json()["error"]["kind"], "saturated");
    let first = first.await.expect("join");
    assert_eq!(first.status, 200, "{}", first.body);
    let metrics = http(s.addr, "GET", "/metrics", None, None).await;
    assert!(
        metrics
            .body
            .contains("actionbox_saturated_total{route=\"invoke\",integration=\"shop\"} 1"),
        "{}",
        metrics.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_start_and_test_button_take_the_integrations_permits() {
    let sim = Simulator::start().await.expect("simulator");
    let (s, holder) = hold_the_only_permit(&sim, Duration::from_millis(2500)).await;
    assert_eq!(s.state.metrics.in_flight(), 1, "the invoke holds shop's only permit");
    let upstream_before = sim.requests().len();

    let session = http(
        s.addr,
        "POST",
        "/v1/sessions/start",
        Some(TOKEN),
        Some(r#"{"context":{"order_id":"1002"}}"#),
    )
    .await;
    assert_eq!(session.status, 429, "{}", session.body);
    assert!(session.headers.contains("retry-after: 1"), "{}", session.headers);
    assert_eq!(session.json()["error"]["kind"], "saturated");
    assert!(session.json()["error"]["message"]
        .as_str()
        .expect("message")
        .contains("`shop`"));

    let test = http(s.addr, "POST", "/v1/integrations/shop/test", Some(TOKEN), None).await;
    assert_eq!(test.status, 429, "{}", test.body);
    assert!(test.headers.contains("retry-after: 1"), "{}", test.headers);
    assert_eq!(test.json()["error"]["kind"], "saturated");
    assert_eq!(
        sim.requests().len(),
        upstream_before,
        "the refused calls sent nothing upstream"
    );

    // A context that runs no action touches no integration: nothing to refuse.
    let nothing_to_run = http(
        s.addr,
        "POST",
        "/v1/sessions/start",
        Some(TOKEN),
        Some(r#"{"context":{}}"#),
    )
    .await;
    assert_eq!(nothing_to_run.status, 200, "{}", nothing_to_run.body);
    assert!(nothing_to_run.json()["skipped"]["greet_with_status"].is_string());
    // An unknown integration is still a 404, saturated or not.
    let unknown = http(s.addr, "POST", "/v1/integrations/nope/test", Some(TOKEN), None).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    let held = holder.await.expect("join");
    assert_eq!(held.status, 200, "{}", held.body);
    let session = http(
        s.addr,
        "POST",
        "/v1/sessions/start",
        Some(TOKEN),
        Some(r#"{"context":{"order_id":"1002"}}"#),
    )
    .await;
    assert_eq!(session.status, 200, "the permit is back: {}", session.body);
    let test = http(s.addr, "POST", "/v1/integrations/shop/test", Some(TOKEN), None).await;
    assert_eq!(test.status, 200, "the permit is back: {}", test.body);

    let metrics = http(s.addr, "GET", "/metrics", None, None).await.body;
    for needle in [
        "actionbox_saturated_total{route=\"session-start\",integration=\"shop\"} 1",
        "actionbox_saturated_total{route=\"test\",integration=\"shop\"} 1",
    ] {
        assert!(metrics.contains(needle), "missing `{needle}` in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_finishes_the_call_in_flight() {
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(
        FaultRule::on("/v2/shipments")
            .delay(Duration::from_millis(1500))
            .times(1),
    );
    let mut s = start(&sim, 8).await;
    let addr = s.addr;
    let call =
        tokio::spawn(
            async move { http(addr, "POST", "/v1/actions/trackOrder/invoke", Some(TOKEN), Some(ORDER)).await },
        );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.state.metrics.in_flight(), 1);
    if let Some(stop) = s.stop.take() {
        let _ = stop.send(());
    }
    let answer = call.await.expect("join");
    assert_eq!(answer.status, 200, "the in-flight call completed: {}", answer.body);
    assert_eq!(answer.json()["result"]["shipstation"]["order_id"], "1001");
    tokio::time::timeout(Duration::from_secs(5), s.task)
        .await
        .expect("server stopped")
        .expect("join")
        .expect("clean");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_body_is_refused() {
    let sim = Simulator::start().await.expect("simulator");
    let s = start(&sim, 8).await;
    let big = format!(r#"{{"params":{{"order_id":"{}"}}}}"#, "x".repeat(100 * 1024));
    let r = http(s.addr, "POST", "/v1/actions/trackOrder/invoke", Some(TOKEN), Some(&big)).await;
    assert_eq!(r.status, 413);
    assert!(sim.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_client_lists_the_tools_and_calls_track_order() {
    actionbox_e2e::require!(actionbox_e2e::python_with_mcp(), actionbox_e2e::PYTHON_MCP_MADE_BY);
    let sim = Simulator::start().await.expect("simulator");
    let text = format!(
        "{}\n[[action]]\nname = \"track_shopify_order\"\nintegration = \"shop\"\nmethod = \"trackOrder\"\nresponse_instructions = \"Always give the tracking link.\"\n[action.parameters.order_id]\ndescription = 'Track order by Shopify order id, format: \"SHOPIFY-123456789\"'\n\n[[action]]\nname = \"at_start_only\"\nintegration = \"shop\"\nmethod = \"trackOrder\"\nexecution = \"session-start\"\n",
        shipstation_integration(&sim.base_url())
    );
    let config = write_config("mcp", &text);
    let script = workspace_root().join("tests/e2e/mcp/client.py");
    let key = sim.api_key().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python_with_mcp())
            .arg(script)
            .arg(actionbox_bin())
            .arg(config)
            .env("SHIPSTATION_API_KEY", key)
            .env("RUST_LOG", "warn")
            .output()
            .expect("python runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client failed:\n{stderr}");
    let seen: Value = serde_json::from_str(stdout.trim()).expect("client output is JSON");
    assert_eq!(seen["server_name"], "actionbox");
    let tools = seen["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["track_shopify_order", "trackOrder"], "interaction actions only");
    assert_eq!(
        tools[0]["inputSchema"]["properties"]["order_id"]["description"],
        "Track order by Shopify order id, format: \"SHOPIFY-123456789\""
    );
    assert!(tools[0]["description"]
        .as_str()
        .expect("d")
        .contains("Always give the tracking link."));
    assert_eq!(seen["ok"]["isError"], false);
    assert_eq!(
        seen["ok"]["structured"]["result"]["shipstation"]["tracking"]["status_code"],
        "DE"
    );
    assert_eq!(seen["missing"]["isError"], true);
    assert_eq!(seen["missing"]["structured"]["error"]["kind"], "not-found");
    let unknown = seen["unknown_tool"].as_str().expect("protocol error text");
    assert!(unknown.contains("unknown tool `noSuchTool`"), "{unknown}");
    assert!(!stdout.contains(sim.api_key()) && !stderr.contains(sim.api_key()));
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_swaps_the_config_and_keeps_it_when_the_new_one_is_broken() {
    let sim = Simulator::start().await.expect("simulator");
    let s = start(&sim, 8).await;
    let config = s.config.clone();
    let original = std::fs::read_to_string(&config).expect("config");
    let tool_names = |v: Value| -> Vec<String> {
        v["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].as_str().expect("n").to_string())
            .collect()
    };

    std::fs::write(
        &config,
        format!("{original}\n[[action]]\nname = \"added_later\"\nintegration = \"shop\"\nmethod = \"trackOrder\"\n"),
    )
    .expect("write");
    s.state.reload().await.expect("reload");
    let names = tool_names(http(s.addr, "GET", "/v1/tools", Some(TOKEN), None).await.json());
    assert!(names.contains(&"added_later".to_string()), "{names:?}");

    std::fs::write(&config, "this is = = not toml").expect("write");
    assert!(s.state.reload().await.is_err());
    let names = tool_names(http(s.addr, "GET", "/v1/tools", Some(TOKEN), None).await.json());
    assert!(
        names.contains(&"added_later".to_string()),
        "the previous config stays in service"
    );
    let ok = http(
        s.addr,
        "POST",
        "/v1/actions/added_later/invoke",
        Some(TOKEN),
        Some(ORDER),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}
