//! Property tests: whatever ShipStation (or a caller) sends, the mapping never
//! panics, always answers with the contract's shape or a typed error, and
//! stays within its request bounds.

use actionbox_guest::http::encode_component;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use shipstation_core::input::TrackOrderInput;
use shipstation_core::manifest::manifest;
use shipstation_core::testing::ScriptedTransport;
use shipstation_core::{invoke, test_connection, ActionError};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(Value::String("1001".into())),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the real field names of a V2 type and arbitrary values.
fn shaped(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::option::of(any_json()), keys.len()).prop_map(move |values| {
        let mut m = Map::new();
        for (k, v) in keys.iter().zip(values) {
            if let Some(v) = v {
                m.insert((*k).to_string(), v);
            }
        }
        Value::Object(m)
    })
}

const SHIPMENT: &[&str] = &[
    "shipment_id",
    "shipment_number",
    "external_shipment_id",
    "shipment_status",
    "created_at",
];
const LABEL: &[&str] = &[
    "label_id",
    "status",
    "tracking_number",
    "tracking_url",
    "tracking_status",
    "carrier_code",
    "ship_date",
    "created_at",
    "voided",
    "is_return_label",
];
const TRACK: &[&str] = &[
    "tracking_number",
    "tracking_url",
    "status_code",
    "status_description",
    "carrier_status_description",
    "carrier_code",
    "ship_date",
    "shipped_date",
    "estimated_delivery_date",
    "actual_delivery_date",
    "exception_description",
    "events",
];

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![4 => Just(200u16), 1 => Just(404u16), 1 => Just(401u16), 1 => Just(429u16), 1 => Just(500u16), 1 => 100u16..600]
}

fn body(items_key: &'static str, item: impl Strategy<Value = Value>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (prop::collection::vec(item, 0..4), any_json())
            .prop_map(move |(items, pages)| json!({ items_key: items, "pages": pages }).to_string().into_bytes()),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

const SEED_KEYS: &[&str] = &[
    "tracking_number",
    "tracking_url",
    "status_description",
    "carrier_status_description",
    "ship_date",
    "actual_delivery_date",
    "events",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_upstream_answer_gives_the_contract_shape_or_a_typed_error(
        shipments in (status(), body("shipments", shaped(SHIPMENT))),
        shipment in (status(), shaped(SHIPMENT).prop_map(|v| v.to_string().into_bytes())),
        labels in (status(), body("labels", shaped(LABEL))),
        track in (status(), shaped(TRACK).prop_map(|v| v.to_string().into_bytes())),
        order_id in prop_oneof![Just("1001".to_string()), Just("se-1".to_string()), "[ -~]{1,20}"],
    ) {
        let mut t = ScriptedTransport {
            list_shipments: shipments,
            one_shipment: shipment,
            list_labels: labels,
            track,
            requests: 0,
        };
        let input = json!({ "order_id": order_id }).to_string();
        match invoke("trackOrder", &input, &mut t) {
            Ok(text) => {
                let v: Value = serde_json::from_str(&text).expect("output is JSON");
                let ss = &v["shipstation"];
                prop_assert!(ss["order_id"].is_string());
                prop_assert!(ss["shipped"].is_boolean());
                prop_assert!(ss["shipments"].is_array());
                if let Some(tracking) = ss["tracking"].as_object() {
                    for k in SEED_KEYS {
                        prop_assert!(tracking.contains_key(*k), "missing {}", k);
                    }
                } else {
                    prop_assert!(ss["message"].is_string());
                }
            }
            Err(e) => prop_assert!(!e.kind().is_empty() && !e.to_string().is_empty()),
        }
        // 5 list pages (twice with a '#'), the external lookup, 10 shipments x 5
        // label pages with retries, 10 tracking logs, each possibly retried.
        prop_assert!(t.requests <= 200, "{} requests", t.requests);
    }

    #[test]
    fn any_upstream_answer_to_test_connection_is_ok_json_or_a_typed_error(
        shipments in (status(), body("shipments", shaped(SHIPMENT))),
    ) {
        let mut t = ScriptedTransport { list_shipments: shipments, ..ScriptedTransport::default() };
        match test_connection(&mut t) {
            Ok(text) => {
                let v: Value = serde_json::from_str(&text).expect("output is JSON");
                prop_assert_eq!(&v["ok"], &Value::Bool(true));
                prop_assert!(v["message"].is_string());
            }
            Err(e) => prop_assert!(!e.kind().is_empty() && !e.to_string().is_empty()),
        }
        // One request, plus its retries on throttling or server errors.
        prop_assert!(t.requests >= 1 && t.requests <= 10, "{} requests", t.requests);
    }

    #[test]
    fn input_parsing_never_panics(text in ".{0,64}") {
        let _ = TrackOrderInput::parse(&text);
    }

    #[test]
    fn any_printable_order_id_is_accepted_trimmed(id in "[!-~][ -~]{0,150}[!-~]") {
        let input = json!({ "order_id": format!("  {id} ") }).to_string();
        let parsed = TrackOrderInput::parse(&input).expect("valid id");
        prop_assert_eq!(parsed.order_id, id);
    }

    #[test]
    fn non_string_order_ids_are_invalid_input(v in any_json().prop_filter("not a string", |v| !v.is_string() && !v.is_null())) {
        let input = json!({ "order_id": v }).to_string();
        prop_assert!(matches!(TrackOrderInput::parse(&input), Err(ActionError::InvalidInput(_))));
    }

    #[test]
    fn percent_encoding_is_reversible_and_opaque(s in ".{0,40}") {
        let encoded = encode_component(&s);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        let mut out = Vec::new();
        let bytes = encoded.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&encoded[i + 1..i + 3], 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        prop_assert_eq!(String::from_utf8(out).expect("utf8"), s);
    }
}

/// Every default action must call a method the manifest offers, or the host
/// refuses the component at load.
#[test]
fn every_default_action_names_an_existing_method() {
    let m = manifest();
    assert!(!m.default_actions.is_empty());
    for d in &m.default_actions {
        assert!(
            m.methods
                .iter()
                .any(|s| s.name == d.method || s.display_name == d.method),
            "default action `{}` calls unknown method `{}`",
            d.name,
            d.method
        );
        // And `invoke` dispatches it: an empty input is refused for what it
        // lacks, not for naming an unknown method.
        if let Err(e) = invoke(&d.method, "{}", &mut ScriptedTransport::default()) {
            assert!(!e.to_string().contains("unknown method"), "{e}");
        }
    }
    assert!(
        m.methods.iter().all(|s| s.name != "test-connection"),
        "test-connection is an export, not a method"
    );
}
