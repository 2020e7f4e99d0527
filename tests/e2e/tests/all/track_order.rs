//! trackOrder through the real component and host against the simulator.

use actionbox_e2e::{capture_traces, captured_traces, load_action, settings_for};
use actionbox_runtime::InvokeError;
use serde_json::{json, Value};
use shipstation_sim::Simulator;

/// Track `order_id` through the real component and host, with every trace
/// event recorded at TRACE level; the key must appear in none of them, nor
/// in the report.
async fn track(order_id: &str) -> (Result<Value, InvokeError>, Simulator) {
    capture_traces();
    let sim = Simulator::start().await.expect("simulator");
    let (_engine, action) = load_action().await;
    let input = json!({ "order_id": order_id }).to_string();
    let report = action.invoke(&settings_for(&sim, 10), "trackOrder", &input).await;
    let traces = captured_traces();
    assert!(
        traces.contains("GET /v2/"),
        "the capture sees the host's TRACE/DEBUG events"
    );
    assert!(!traces.contains(sim.api_key()), "key in traces");
    assert!(
        !serde_json::to_string(&report).expect("json").contains(sim.api_key()),
        "key in report"
    );
    (report.outcome, sim)
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().expect("object").keys().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn delivered_order_matches_the_seed_format_field_for_field() {
    let (outcome, _sim) = track("1001").await;
    let out = outcome.expect("tracked");
    let ss = &out["shipstation"];
    assert_eq!(keys(&out), ["shipstation"]);
    assert_eq!(ss["order_id"], "1001");
    assert_eq!(ss["shipped"], true);
    let t = &ss["tracking"];
    // The seed's fields first, in the seed's meaning, then the extras the
    // response instructions need.
    assert_eq!(
        keys(t),
        [
            "tracking_number",
            "tracking_url",
            "status_code",
            "status_description",
            "carrier_status_description",
            "carrier_code",
            "ship_date",
            "estimated_delivery_date",
            "actual_delivery_date",
            "exception_description",
            "events"
        ]
    );
    assert_eq!(t["tracking_number"], "1Z999AA10123456784");
    assert_eq!(
        t["tracking_url"],
        "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    );
    assert_eq!(t["status_code"], "DE");
    assert_eq!(t["status_description"], "Delivered");
    assert_eq!(t["carrier_status_description"], "Delivered: Front Door");
    assert_eq!(t["carrier_code"], "ups");
    assert_eq!(t["ship_date"], "2025-05-02T00:00:00Z");
    assert_eq!(t["estimated_delivery_date"], "2025-05-06T00:00:00Z");
    assert_eq!(t["actual_delivery_date"], "2025-05-06T15:02:00Z");
    assert_eq!(t["exception_description"], Value::Null);
    let events = t["events"].as_array().expect("events");
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[1],
        json!({
            "carrier_occurred_at": "2025-05-03T02:15:00",
            "description": "Departed from Facility",
            "city_locality": "DALLAS",
            "state_province": "TX",
            "postal_code": "75201",
            "carrier_status_description": "Departed from Facility"
        })
    );
    for e in events {
        assert_eq!(
            keys(e),
            [
                "carrier_occurred_at",
                "description",
                "city_locality",
                "state_province",
                "postal_code",
                "carrier_status_description"
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn split_order_lists_every_shipment_and_tracks_the_one_still_moving() {
    let (outcome, _sim) = track("1002").await;
    let out = outcome.expect("tracked");
    let ss = &out["shipstation"];
    let shipments = ss["shipments"].as_array().expect("shipments");
    assert_eq!(shipments.len(), 2);
    let mut ids: Vec<&str> = shipments
        .iter()
        .map(|s| s["shipment_id"].as_str().expect("id"))
        .collect();
    ids.sort();
    assert_eq!(ids, ["se-100201", "se-100202"]);
    // One delivered, one in transit: the one in transit is the relevant one.
    assert_eq!(ss["tracking"]["tracking_number"], "9400111899223100202");
    assert_eq!(ss["tracking"]["status_code"], "IT");
    // `shipped_date` (the docs' spelling) is read as ship_date.
    assert_eq!(ss["tracking"]["ship_date"], "2025-05-05T00:00:00Z");
}

#[tokio::test(flavor = "multi_thread")]
async fn voided_label_is_ignored() {
    let (outcome, sim) = track("1003").await;
    let out = outcome.expect("tracked");
    let shipments = out["shipstation"]["shipments"].as_array().expect("shipments");
    assert_eq!(shipments.len(), 1);
    assert_eq!(shipments[0]["label_id"], "se-447100301");
    assert_eq!(out["shipstation"]["tracking"]["tracking_number"], "794600001003");
    assert!(
        !sim.requests().iter().any(|r| r.raw_path.contains("se-447100300")),
        "the voided label's tracking must not even be fetched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn order_without_a_label_is_a_success_saying_it_has_not_shipped() {
    let (outcome, _sim) = track("1004").await;
    let out = outcome.expect("an unshipped order is not an error");
    let ss = &out["shipstation"];
    assert_eq!(ss["shipped"], false);
    assert_eq!(ss["tracking"], Value::Null);
    assert!(ss["message"].as_str().expect("message").contains("has not shipped yet"));
    assert_eq!(ss["shipments"][0]["shipment_status"], "pending");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_order_is_not_found() {
    let (outcome, sim) = track("does-not-exist").await;
    match outcome {
        Err(InvokeError::NotFound { message }) => assert!(message.contains("does-not-exist"), "{message}"),
        other => panic!("expected not-found, got {other:?}"),
    }
    // Both lookups were tried: by number, then by external id.
    let paths: Vec<String> = sim.requests().iter().map(|r| r.raw_path.clone()).collect();
    assert!(paths.iter().any(|p| p == "/v2/shipments"));
    assert!(paths
        .iter()
        .any(|p| p == "/v2/shipments/external_shipment_id/does-not-exist"));
}

#[tokio::test(flavor = "multi_thread")]
async fn prefix_matches_from_the_server_are_not_trusted() {
    // The simulator matches shipment_number by prefix, so "1001" also returns "10010".
    let (outcome, _sim) = track("1001").await;
    let out = outcome.expect("tracked");
    let shipments = out["shipstation"]["shipments"].as_array().expect("shipments");
    assert_eq!(shipments.len(), 1);
    assert_eq!(shipments[0]["shipment_number"], "1001");
}

#[tokio::test(flavor = "multi_thread")]
async fn external_order_id_is_found_by_external_shipment_id() {
    let (outcome, _sim) = track("SHOPIFY-123456789").await;
    let out = outcome.expect("tracked");
    assert_eq!(out["shipstation"]["shipments"][0]["shipment_id"], "se-100501");
    assert_eq!(out["shipstation"]["tracking"]["status_code"], "AC");
}

#[tokio::test(flavor = "multi_thread")]
async fn shipment_id_goes_straight_to_the_shipment() {
    let (outcome, sim) = track("se-100201").await;
    let out = outcome.expect("tracked");
    assert_eq!(out["shipstation"]["tracking"]["tracking_number"], "9400111899223100201");
    assert_eq!(sim.requests()[0].raw_path, "/v2/shipments/se-100201");
}

#[tokio::test(flavor = "multi_thread")]
async fn special_characters_reach_the_server_correctly_encoded() {
    let id = "A&B/5?#x y";
    let (outcome, sim) = track(id).await;
    let out = outcome.expect("tracked");
    assert_eq!(out["shipstation"]["order_id"], id);
    assert_eq!(out["shipstation"]["shipments"][0]["shipment_number"], id);
    let list = sim
        .requests()
        .into_iter()
        .find(|r| r.raw_path == "/v2/shipments")
        .expect("list request");
    assert!(
        list.raw_query.contains("shipment_number=A%26B%2F5%3F%23x%20y"),
        "{}",
        list.raw_query
    );
    assert_eq!(list.param("shipment_number"), Some(id));
}

#[tokio::test(flavor = "multi_thread")]
async fn label_without_tracking_log_falls_back_to_the_label() {
    let (outcome, _sim) = track("1007").await;
    let t = outcome.expect("tracked")["shipstation"]["tracking"].clone();
    assert_eq!(t["tracking_number"], "DHL100701");
    assert_eq!(t["status_code"], "IT");
    assert_eq!(t["status_description"], "In Transit");
    assert_eq!(t["tracking_url"], "https://www.dhl.com/track?id=DHL100701");
    assert_eq!(t["events"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn exception_and_return_labels_are_reported() {
    let (outcome, _sim) = track("1006").await;
    let t = outcome.expect("tracked")["shipstation"]["tracking"].clone();
    assert_eq!(t["status_code"], "EX");
    assert!(t["exception_description"]
        .as_str()
        .expect("exception")
        .contains("address is incomplete"));

    let (outcome, _sim) = track("1008").await;
    let ss = outcome.expect("tracked")["shipstation"].clone();
    let returns: Vec<bool> = ss["shipments"]
        .as_array()
        .expect("shipments")
        .iter()
        .map(|s| s["is_return_label"].as_bool().expect("flag"))
        .collect();
    assert_eq!(returns.iter().filter(|r| **r).count(), 1);
    // The outbound package, not the return label, is the relevant one.
    assert_eq!(ss["tracking"]["tracking_number"], "1Z999AA10000100801");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_is_injected_by_the_host_on_every_request() {
    let (outcome, sim) = track("1001").await;
    outcome.expect("tracked");
    let requests = sim.requests();
    assert!(requests.len() >= 3);
    assert!(requests.iter().all(|r| r.authorized), "every request carried the key");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_invalid_input() {
    let sim = Simulator::start().await.expect("simulator");
    let (_engine, action) = load_action().await;
    let long = "9".repeat(1000);
    let long_input = json!({ "order_id": long }).to_string();
    let cases = [
        ("{}", "required"),
        (r#"{"order_id": ""}"#, "empty"),
        (r#"{"order_id": 1001}"#, "must be a string"),
        (long_input.as_str(), "1000 characters"),
        ("{not json", "not valid JSON"),
        (r#"["1001"]"#, "JSON object"),
    ];
    for (input, expected) in cases {
        let report = action.invoke(&settings_for(&sim, 10), "trackOrder", input).await;
        match report.outcome {
            Err(InvokeError::InvalidInput { message }) => {
                assert!(message.contains(expected), "{input}: {message}")
            }
            other => panic!("{input}: expected invalid-input, got {other:?}"),
        }
    }
    assert!(sim.requests().is_empty(), "invalid input never reaches ShipStation");
    let report = action.invoke(&settings_for(&sim, 10), "shipOrder", "{}").await;
    assert!(
        matches!(report.outcome, Err(InvokeError::InvalidInput { .. })),
        "{:?}",
        report.outcome
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn test_connection_proves_the_key_works() {
    let sim = Simulator::start().await.expect("simulator");
    let (_engine, action) = load_action().await;
    let report = action.test_connection(&settings_for(&sim, 10)).await;
    assert_eq!(report.outcome.expect("ok")["ok"], true);
    assert_eq!(sim.requests().len(), 1, "one cheap request");

    let mut wrong = settings_for(&sim, 10);
    wrong.api_key = Some(actionbox_runtime::ApiKey::new("TEST_wrong").expect("key"));
    let report = action.test_connection(&wrong).await;
    assert!(
        matches!(report.outcome, Err(InvokeError::Unauthorized { .. })),
        "{:?}",
        report.outcome
    );
}
