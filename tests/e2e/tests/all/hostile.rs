//! Hostile components: each attack must end in a specific typed error within
//! its deadline, while a well-behaved trackOrder call running at the same
//! time on the same host still returns the right result.

use actionbox_e2e::{capture_traces, captured_traces, component_path, hostile_component_path, settings_for};
use actionbox_runtime::{
    ActionComponent, ActionEngine, CredentialHeader, IntegrationSettings, InvocationReport, InvokeError,
};
use shipstation_sim::{FaultRule, Simulator};
use std::time::{Duration, Instant};

struct Host {
    _engine: ActionEngine,
    hostile: ActionComponent,
    good: ActionComponent,
    sim: Simulator,
}

async fn host() -> Host {
    capture_traces();
    let engine = ActionEngine::new().expect("engine");
    let hostile = engine
        .load(&hostile_component_path())
        .await
        .expect("hostile component loads");
    let good = engine
        .load(&component_path())
        .await
        .expect("shipstation component loads");
    let sim = Simulator::start().await.expect("simulator");
    Host {
        _engine: engine,
        hostile,
        good,
        sim,
    }
}

/// Run `method` of the hostile component with `settings`, and a good
/// trackOrder call concurrently; check the good one and return the attack's
/// report and duration.
async fn attack(h: &Host, method: &str, input: &str, settings: &IntegrationSettings) -> (InvocationReport, Duration) {
    // `hostile` is not a built-in kind: the operator names its key header.
    let mut settings = settings.clone();
    if settings.credential_header.is_none() {
        settings.credential_header = Some(CredentialHeader::new("API-Key").expect("header"));
    }
    let settings = &settings;
    let started = Instant::now();
    let good_settings = settings_for(&h.sim, 10);
    let (report, good) = tokio::join!(h.hostile.invoke(settings, method, input), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        h.good
            .invoke(&good_settings, "trackOrder", r#"{"order_id":"1001"}"#)
            .await
    });
    let took = started.elapsed();
    let good = good
        .outcome
        .unwrap_or_else(|e| panic!("the well-behaved call failed during `{method}`: {e}"));
    assert_eq!(good["shipstation"]["tracking"]["tracking_number"], "1Z999AA10123456784");
    assert!(
        took < settings.timeout.duration() + Duration::from_secs(4),
        "`{method}` was not stopped within its deadline: {took:?}"
    );
    let leaked = captured_traces();
    assert!(
        !leaked.contains(h.sim.api_key()),
        "the API key appeared in the host's traces"
    );
    let report_json = serde_json::to_string(&report).expect("report serializes");
    assert!(
        !report_json.contains(h.sim.api_key()),
        "the API key appeared in the report"
    );
    (report, took)
}

fn expect_kind(report: &InvocationReport, kind: &str) -> String {
    match &report.outcome {
        Err(e) if e.kind() == kind => e.message().to_string(),
        other => panic!("expected {kind}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn infinite_loop_is_stopped_at_the_deadline() {
    let h = host().await;
    let (report, took) = attack(&h, "infinite-loop", "{}", &settings_for(&h.sim, 10)).await;
    expect_kind(&report, "timeout");
    assert!(took >= Duration::from_secs(9), "stopped before the deadline: {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn allocating_loop_is_stopped_at_the_deadline() {
    let h = host().await;
    let (report, took) = attack(&h, "allocating-loop", "{}", &settings_for(&h.sim, 10)).await;
    expect_kind(&report, "timeout");
    assert!(took >= Duration::from_secs(9), "stopped before the deadline: {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_hits_the_memory_limit() {
    let h = host().await;
    let (report, _) = attack(&h, "memory-bomb", "{}", &settings_for(&h.sim, 10)).await;
    let message = expect_kind(&report, "memory-limit");
    assert!(message.contains("64 MiB"), "{message}");
    assert!(report.peak_memory_bytes <= 64 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_recursion_is_a_stack_overflow_trap() {
    let h = host().await;
    let (report, _) = attack(&h, "deep-recursion", "{}", &settings_for(&h.sim, 10)).await;
    let message = expect_kind(&report, "trap");
    assert!(message.contains("stack"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_to_a_host_not_allowed_is_denied() {
    let h = host().await;
    let (report, _) = attack(&h, "disallowed-host", "{}", &settings_for(&h.sim, 10)).await;
    let message = expect_kind(&report, "denied");
    assert!(
        message.contains("example.com") && message.contains("base_url"),
        "{message}"
    );
    assert!(
        captured_traces().contains("example.com"),
        "the operator log names the denied host"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_literal_and_private_range_are_denied() {
    let h = host().await;
    let (report, _) = attack(&h, "ip-literal", "{}", &settings_for(&h.sim, 10)).await;
    assert!(expect_kind(&report, "denied").contains("93.184.216.34"));
    let (report, _) = attack(&h, "private-range", "{}", &settings_for(&h.sim, 10)).await;
    assert!(expect_kind(&report, "denied").contains("169.254.169.254"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_pointing_inside_is_denied() {
    let h = host().await;
    // The base URL names a host, not an address; it resolves to loopback.
    let mut settings = settings_for(&h.sim, 10);
    settings.base_url =
        actionbox_runtime::BaseUrl::parse(&format!("https://shipstation.internal.test:{}", h.sim.addr().port()))
            .expect("url");
    settings.pinned_addresses.insert(
        "shipstation.internal.test".into(),
        vec![std::net::Ipv4Addr::LOCALHOST.into()],
    );
    let (report, _) = attack(&h, "base-url-request", "{}", &settings).await;
    let message = expect_kind(&report, "denied");
    assert!(message.contains("non-public address 127.0.0.1"), "{message}");
    assert!(
        h.sim
            .requests()
            .iter()
            .all(|r| r.raw_path != "/v2/shipments" || r.authorized),
        "nothing else got in"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_read_env_read_and_sockets_are_denied() {
    let h = host().await;
    let settings = settings_for(&h.sim, 10);
    let (report, _) = attack(&h, "file-read", "{}", &settings).await;
    expect_kind(&report, "denied");
    let (report, _) = attack(&h, "env-read", "{}", &settings).await;
    expect_kind(&report, "denied");
    let input = format!(r#"{{"addr": "{}"}}"#, h.sim.addr());
    let before = h.sim.requests().len();
    let (report, _) = attack(&h, "socket-open", &input, &settings).await;
    expect_kind(&report, "denied");
    // Only the concurrent good call's requests reached the simulator.
    assert!(h.sim.requests()[before..].iter().all(|r| r.authorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_requests_hit_the_request_limit() {
    let h = host().await;
    let settings = settings_for(&h.sim, 10);
    let (report, _) = attack(&h, "many-requests", "{}", &settings).await;
    let message = expect_kind(&report, "limit-exceeded");
    assert!(message.contains("more than 16 outbound requests"), "{message}");
    assert_eq!(report.outbound.len(), 17, "16 sent, the 17th refused");
    assert!(report.outbound[16].error.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_response_is_cut_off() {
    let h = host().await;
    h.sim.add_fault(FaultRule {
        huge_body_bytes: Some(64 * 1024 * 1024),
        ..FaultRule::on("/huge").status(200)
    });
    let (report, _) = attack(&h, "huge-response", "{}", &settings_for(&h.sim, 10)).await;
    let message = expect_kind(&report, "limit-exceeded");
    assert!(message.contains("response body passed 8388608 bytes"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_request_body_is_refused() {
    let h = host().await;
    let (report, _) = attack(&h, "huge-request-body", "{}", &settings_for(&h.sim, 10)).await;
    let message = expect_kind(&report, "limit-exceeded");
    assert!(message.contains("request body passed 1048576 bytes"), "{message}");
    assert!(
        h.sim.requests().iter().all(|r| r.body_bytes <= 1024 * 1024),
        "the server never got more than the limit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_megabyte_result_is_refused() {
    let h = host().await;
    let (report, _) = attack(&h, "huge-result", "{}", &settings_for(&h.sim, 10)).await;
    let message = expect_kind(&report, "limit-exceeded");
    // Refused while lifting, before the host copies 50 MB out of the guest.
    assert!(
        message.contains("more than 8454144 bytes") && message.contains("limits.max_result_kib"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_cannot_send_its_own_key_header() {
    let h = host().await;
    let before = h.sim.requests().len();
    let (report, _) = attack(&h, "steal-key-header", "{}", &settings_for(&h.sim, 10)).await;
    let message = expect_kind(&report, "denied");
    assert!(message.to_lowercase().contains("forbidden"), "{message}");
    // Whatever reached the simulator carried the host's key, never the guest's.
    assert!(h.sim.requests()[before..].iter().all(|r| r.authorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_is_a_trap_with_the_panic_message() {
    let h = host().await;
    let (report, _) = attack(&h, "panic", "{}", &settings_for(&h.sim, 10)).await;
    let message = expect_kind(&report, "trap");
    assert!(message.contains("hostile guest panicked on purpose"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn output_that_is_not_json_is_invalid_output() {
    let h = host().await;
    let (report, _) = attack(&h, "invalid-json", "{}", &settings_for(&h.sim, 10)).await;
    expect_kind(&report, "invalid-output");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_method_is_invalid_input() {
    let h = host().await;
    let report = h
        .hostile
        .invoke(&settings_for(&h.sim, 10), "no-such-attack", "{}")
        .await;
    assert!(matches!(report.outcome, Err(InvokeError::InvalidInput { .. })));
}
