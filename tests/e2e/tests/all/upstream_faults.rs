//! Upstream failures injected by the simulator, seen through the real stack.

use actionbox_e2e::{capture_traces, captured_traces, load_action, settings_for};
use actionbox_runtime::{InvocationReport, InvokeError};
use serde_json::json;
use shipstation_sim::{FaultRule, Simulator};
use std::time::{Duration, Instant};

const ORDER: &str = r#"{"order_id":"1001"}"#;

/// Start a simulator with `faults`, track order 1001 through the real
/// component, and check the key leaked nowhere (traces at TRACE level, report).
async fn track_with(faults: Vec<FaultRule>) -> (InvocationReport, Simulator) {
    capture_traces();
    let sim = Simulator::start().await.expect("simulator");
    for f in faults {
        sim.add_fault(f);
    }
    let (_engine, action) = load_action().await;
    let report = action.invoke(&settings_for(&sim, 10), "trackOrder", ORDER).await;
    assert!(!captured_traces().contains(sim.api_key()), "key in traces");
    assert!(
        !serde_json::to_string(&report).expect("json").contains(sim.api_key()),
        "key in report"
    );
    (report, sim)
}

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

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_is_unauthorized() {
    let (report, _sim) = track_with(vec![FaultRule::on("/v2/shipments").status(403)]).await;
    match report.outcome {
        Err(InvokeError::Unauthorized { message }) => assert!(message.contains("403"), "{message}"),
        other => panic!("expected unauthorized, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn not_found_with_and_without_body_is_not_found() {
    for body in [
        "",
        r#"{"request_id":"r-404","errors":[{"error_code":"not_found","message":"nope"}]}"#,
    ] {
        let (report, _sim) = track_with(vec![FaultRule::on("/v2/shipments").status(404).body(body)]).await;
        assert!(
            matches!(report.outcome, Err(InvokeError::NotFound { .. })),
            "{body:?}: {:?}",
            report.outcome
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_gateway_twice_is_upstream_with_request_id() {
    let (report, sim) = track_with(vec![FaultRule::on("/v2/labels").status(502)]).await;
    match report.outcome {
        Err(InvokeError::Upstream {
            status,
            request_id,
            message,
        }) => {
            assert_eq!(status, Some(502));
            assert!(request_id.is_some(), "{message}");
        }
        other => panic!("expected upstream, got {other:?}"),
    }
    assert_eq!(sim.requests().iter().filter(|r| r.raw_path == "/v2/labels").count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn trickling_server_is_a_timeout_at_the_deadline() {
    let trickle = FaultRule {
        trickle_chunk: Some(1),
        trickle_interval_ms: Some(300),
        ..FaultRule::on("/v2/shipments")
    };
    let started = Instant::now();
    let (report, _sim) = track_with(vec![trickle]).await;
    let took = started.elapsed();
    assert!(
        matches!(report.outcome, Err(InvokeError::Timeout { .. })),
        "{:?}",
        report.outcome
    );
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(14),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_body_is_upstream() {
    let truncated = FaultRule {
        truncate_by: Some(100),
        ..FaultRule::on("/v2/shipments")
    };
    let (report, _sim) = track_with(vec![truncated]).await;
    assert!(
        matches!(report.outcome, Err(InvokeError::Upstream { .. })),
        "{:?}",
        report.outcome
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_megabyte_body_is_cut_off() {
    let huge = FaultRule {
        huge_body_bytes: Some(64 * 1024 * 1024),
        ..FaultRule::on("/v2/shipments").status(200)
    };
    let (report, _sim) = track_with(vec![huge]).await;
    match report.outcome {
        Err(InvokeError::LimitExceeded { message }) => assert!(message.contains("8388608"), "{message}"),
        other => panic!("expected limit-exceeded, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn html_instead_of_json_is_upstream() {
    let html = FaultRule {
        content_type: Some("text/html".into()),
        ..FaultRule::on("/v2/shipments").status(200)
    }
    .body("<html><body>Service Unavailable</body></html>");
    let (report, _sim) = track_with(vec![html]).await;
    match report.outcome {
        Err(InvokeError::Upstream { message, .. }) => assert!(message.contains("malformed"), "{message}"),
        other => panic!("expected upstream, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_with_the_wrong_content_type_is_still_read() {
    let plain = FaultRule {
        content_type: Some("text/plain".into()),
        ..FaultRule::on("/v2/")
    };
    let (report, _sim) = track_with(vec![plain]).await;
    report.outcome.expect("the body is JSON, whatever its label");
}

#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_json_is_an_upstream_error_not_a_stack_overflow() {
    // The component's shadow stack is 32 KiB; serde_json alone would recurse
    // 128 levels deep, which traps with such a stack. Each shape below did
    // trap before the depth guard: nesting in an ignored field, inside a
    // matching shipment, and as the list itself.
    let deep_array = format!("{}{}", "[".repeat(127), "]".repeat(127));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(126), "}".repeat(126));
    for body in [
        format!(r#"{{"shipments":[],"x":{deep_array}}}"#),
        format!(r#"{{"shipments":[{{"shipment_id":"se-1","shipment_number":"1001","x":{deep_object}}}]}}"#),
        format!(r#"{{"shipments":{deep_array}}}"#),
    ] {
        let (report, _sim) = track_with(vec![FaultRule::on("/v2/shipments").status(200).body(&body)]).await;
        match report.outcome {
            Err(InvokeError::Upstream { message, .. }) => assert!(message.contains("nested deeper"), "{message}"),
            other => panic!("expected upstream, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_input_is_invalid_input() {
    let (_engine, action) = load_action().await;
    let sim = Simulator::start().await.expect("simulator");
    let input = format!(r#"{{"order_id":"1001","x":{}{}}}"#, "[".repeat(200), "]".repeat(200));
    let report = action.invoke(&settings_for(&sim, 10), "trackOrder", &input).await;
    match report.outcome {
        Err(InvokeError::InvalidInput { message }) => assert!(message.contains("nested deeper"), "{message}"),
        other => panic!("expected invalid-input, got {other:?}"),
    }
}
