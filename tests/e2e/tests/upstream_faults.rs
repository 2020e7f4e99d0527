//! Upstream failures injected by the simulator, seen through the real stack.

use actionbox::InvokeError;
use actionbox_e2e::{load_action, settings_for};
use serde_json::json;
use shipstation_sim::{FaultRule, Simulator};
use std::time::{Duration, Instant};

const ORDER: &str = r#"{"order_id":"1001"}"#;

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_is_waited_out_when_the_budget_allows() {
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(FaultRule::on("/v2/shipments").status(429).retry_after("1").times(1));
    let (_engine, action) = load_action().await;
    let report = action.invoke(&settings_for(&sim, 10), "trackOrder", ORDER).await;
    let out = report.outcome.expect("succeeds after waiting");
    assert_eq!(out["shipstation"]["tracking"]["tracking_number"], "1Z999AA10123456784");
    let lists = sim.requests().iter().filter(|r| r.raw_path == "/v2/shipments").count();
    assert_eq!(lists, 2, "asked again after the 429");
    assert!(
        report.guest_log.iter().any(|l| l.message.contains("429")),
        "the wait is logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_longer_than_the_budget_is_reported_at_once() {
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(FaultRule::on("/v2/shipments").status(429).retry_after("60"));
    let (_engine, action) = load_action().await;
    let started = Instant::now();
    let report = action.invoke(&settings_for(&sim, 10), "trackOrder", ORDER).await;
    match report.outcome {
        Err(InvokeError::RateLimited {
            retry_after_secs,
            message,
        }) => {
            assert_eq!(retry_after_secs, Some(60));
            assert!(message.contains("429"), "{message}");
        }
        other => panic!("expected rate-limited, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(8), "did not sit out the budget");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_error_is_retried_once() {
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(FaultRule::on("/v2/labels").status(503).times(1));
    let (_engine, action) = load_action().await;
    let report = action.invoke(&settings_for(&sim, 10), "trackOrder", ORDER).await;
    report.outcome.expect("second try succeeds");
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_server_error_is_upstream_with_request_id() {
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(FaultRule::on("/v2/shipments").status(500));
    let (_engine, action) = load_action().await;
    let report = action.invoke(&settings_for(&sim, 10), "trackOrder", ORDER).await;
    match report.outcome {
        Err(InvokeError::Upstream { status, request_id, .. }) => {
            assert_eq!(status, Some(500));
            assert!(request_id.is_some_and(|id| id.starts_with("sim-")));
        }
        other => panic!("expected upstream, got {other:?}"),
    }
    let lists = sim.requests().iter().filter(|r| r.raw_path == "/v2/shipments").count();
    assert_eq!(lists, 2, "exactly one retry");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_an_upstream_error_not_a_crash() {
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(FaultRule::on("/v2/shipments").status(200).body(r#"{"shipments": [ {"#));
    let (_engine, action) = load_action().await;
    let report = action.invoke(&settings_for(&sim, 10), "trackOrder", ORDER).await;
    match report.outcome {
        Err(InvokeError::Upstream { message, .. }) => assert!(message.contains("malformed"), "{message}"),
        other => panic!("expected upstream, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_slower_than_the_timeout_is_a_timeout_near_the_deadline() {
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(FaultRule::on("/v2/").delay(Duration::from_secs(60)));
    let (_engine, action) = load_action().await;
    let started = Instant::now();
    let report = action.invoke(&settings_for(&sim, 10), "trackOrder", ORDER).await;
    let took = started.elapsed();
    assert!(
        matches!(report.outcome, Err(InvokeError::Timeout { .. })),
        "{:?}",
        report.outcome
    );
    // Generous margins: the deadline is 10 s.
    assert!(took >= Duration::from_secs(9), "stopped too early: {took:?}");
    assert!(took < Duration::from_secs(14), "stopped too late: {took:?}");
    let json = serde_json::to_value(&report).expect("report serializes");
    assert_eq!(json["outcome"]["error"]["kind"], json!("timeout"));
}
