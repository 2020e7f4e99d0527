//! Keep-alive connection reuse on the outbound path, through the real
//! component and host against the simulator (which counts the TCP
//! connections it accepts).

use actionbox_e2e::{capture_traces, captured_traces, load_action, settings_for};
use actionbox_runtime::limits::SandboxViolation;
use actionbox_runtime::{ActionComponent, ApiKey, IntegrationSettings, InvocationReport, InvokeError};
use shipstation_sim::{FaultRule, Simulator};

const ORDER: &str = r#"{"order_id":"1001"}"#;

/// Track order 1001 and check the key leaked into neither the traces nor the report.
async fn track(action: &ActionComponent, settings: &IntegrationSettings, sim: &Simulator) -> InvocationReport {
    let report = action.invoke(settings, "trackOrder", ORDER).await;
    assert!(!captured_traces().contains(sim.api_key()), "key in traces");
    let json = serde_json::to_string(&report).expect("json");
    assert!(!json.contains(sim.api_key()), "key in report");
    report
}

fn reused(report: &InvocationReport) -> Vec<bool> {
    report.outbound.iter().map(|r| r.reused_connection).collect()
}

/// Requests that opened a connection of their own.
fn new_connections(reports: &[&InvocationReport]) -> u64 {
    reports
        .iter()
        .flat_map(|r| r.outbound.iter())
        .filter(|r| r.status.is_some() && !r.reused_connection)
        .count() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_of_a_call_and_consecutive_calls_share_one_connection() {
    capture_traces();
    let sim = Simulator::start().await.expect("simulator");
    let (_engine, action) = load_action().await;
    let settings = settings_for(&sim, 10);

    let first = track(&action, &settings, &sim).await;
    first.outcome.as_ref().expect("tracks");
    assert_eq!(reused(&first), [false, true, true], "{:?}", first.outbound);
    assert_eq!(sim.connections_accepted(), 1);

    let second = track(&action, &settings, &sim).await;
    assert_eq!(first.outcome.as_ref().ok(), second.outcome.as_ref().ok());
    assert_eq!(reused(&second), [true, true, true], "{:?}", second.outbound);
    assert_eq!(sim.connections_accepted(), 1, "the next call reused it too");
    assert_eq!(action.connection_pool().idle_connections(), 1);
    assert_eq!(sim.requests().len(), 6);
    assert!(
        sim.requests().iter().all(|r| r.authorized),
        "every request carried the key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_cut_by_the_body_limit_is_not_reused() {
    capture_traces();
    let sim = Simulator::start().await.expect("simulator");
    let (_engine, action) = load_action().await;
    let mut settings = settings_for(&sim, 10);
    settings.limits.max_response_body_bytes = 64 * 1024;

    let warm = track(&action, &settings, &sim).await;
    warm.outcome.as_ref().expect("tracks");
    assert_eq!(sim.connections_accepted(), 1);

    sim.add_fault(FaultRule {
        huge_body_bytes: Some(4 * 1024 * 1024),
        ..FaultRule::on("/v2/shipments").status(200).times(1)
    });
    let cut = track(&action, &settings, &sim).await;
    // The action retries a failed read once, on a new connection, and so
    // may still succeed; the sandbox recorded the cut either way.
    assert!(
        cut.violations
            .iter()
            .any(|v| matches!(v, SandboxViolation::LimitExceeded { message } if message.contains("65536"))),
        "{:?}",
        cut.violations
    );
    assert!(cut.outbound[0].response_bytes > 64 * 1024, "{:?}", cut.outbound[0]);
    assert!(
        cut.outbound[0].reused_connection,
        "the cut request went over the warm connection"
    );

    let after = track(&action, &settings, &sim).await;
    assert_eq!(warm.outcome.as_ref().ok(), after.outcome.as_ref().ok(), "tracks again");
    // The request right after the cut one (in whichever call) had no
    // connection to reuse: the only one was cut and closed.
    let next = cut
        .outbound
        .iter()
        .skip(1)
        .chain(after.outbound.iter())
        .next()
        .expect("a later request");
    assert!(!next.reused_connection, "{next:?}");
    assert_eq!(
        sim.connections_accepted(),
        new_connections(&[&warm, &cut, &after]),
        "every connection accepted was opened by a request that did not reuse one"
    );
    assert_eq!(sim.connections_accepted(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_cut_by_the_deadline_is_not_reused() {
    capture_traces();
    let sim = Simulator::start().await.expect("simulator");
    let (_engine, action) = load_action().await;
    let settings = settings_for(&sim, 10);

    let warm = track(&action, &settings, &sim).await;
    warm.outcome.as_ref().expect("tracks");
    assert_eq!(sim.connections_accepted(), 1);

    sim.add_fault(FaultRule {
        trickle_chunk: Some(1),
        trickle_interval_ms: Some(300),
        ..FaultRule::on("/v2/shipments").times(1)
    });
    let cut = track(&action, &settings, &sim).await;
    assert!(
        matches!(cut.outcome, Err(InvokeError::Timeout { .. })),
        "{:?}",
        cut.outcome
    );
    assert!(cut.outbound[0].reused_connection);
    assert_eq!(
        action.connection_pool().idle_connections(),
        0,
        "the cut connection was closed"
    );

    let after = track(&action, &settings, &sim).await;
    assert_eq!(warm.outcome.as_ref().ok(), after.outcome.as_ref().ok(), "tracks again");
    assert_eq!(reused(&after), [false, true, true], "{:?}", after.outbound);
    assert_eq!(sim.connections_accepted(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn different_base_urls_and_keys_never_share_connections() {
    capture_traces();
    let a = Simulator::start().await.expect("simulator a");
    let b = Simulator::start().await.expect("simulator b");
    assert_ne!(a.addr().port(), b.addr().port());
    let (_engine, action) = load_action().await;
    let (settings_a, settings_b) = (settings_for(&a, 10), settings_for(&b, 10));

    let a1 = track(&action, &settings_a, &a).await;
    let b1 = track(&action, &settings_b, &b).await;
    let a2 = track(&action, &settings_a, &a).await;
    let b2 = track(&action, &settings_b, &b).await;
    for r in [&a1, &b1, &a2, &b2] {
        r.outcome.as_ref().expect("tracks");
    }
    assert_eq!(
        reused(&b1),
        [false, true, true],
        "b's first call could not use a's connection"
    );
    assert_eq!(reused(&a2), [true, true, true]);
    assert_eq!(reused(&b2), [true, true, true]);
    assert_eq!((a.connections_accepted(), b.connections_accepted()), (1, 1));
    // Each simulator got exactly its own calls' requests.
    assert_eq!((a.requests().len(), b.requests().len()), (6, 6));

    // Another key for the same base URL: a connection of its own.
    let mut other_key = settings_for(&a, 10);
    other_key.api_key = Some(ApiKey::new("TEST_some_other_key").expect("key"));
    let wrong = action.invoke(&other_key, "trackOrder", ORDER).await;
    assert!(
        matches!(wrong.outcome, Err(InvokeError::Unauthorized { .. })),
        "{:?}",
        wrong.outcome
    );
    assert!(!wrong.outbound[0].reused_connection);
    assert_eq!(a.connections_accepted(), 2);
    assert!(!captured_traces().contains("TEST_some_other_key"), "key in traces");
}
