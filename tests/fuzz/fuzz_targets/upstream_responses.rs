//! Arbitrary ShipStation answers (statuses and bodies) through the whole
//! trackOrder mapping and the Test button: they must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shipstation_core::testing::ScriptedTransport;

fuzz_target!(|data: &[u8]| {
    // Four (status, body) answers, bodies separated by 0xFF bytes.
    let mut parts = data.split(|b| *b == 0xFF);
    let mut next = || {
        let part = parts.next().unwrap_or(&[]);
        let status = match part.first() {
            Some(b) => 100 + u16::from(*b) * 2,
            None => 200,
        };
        (status, part.get(1..).unwrap_or(&[]).to_vec())
    };
    let mut transport = ScriptedTransport {
        list_shipments: next(),
        one_shipment: next(),
        list_labels: next(),
        track: next(),
        requests: 0,
    };
    let _ = shipstation_core::invoke("trackOrder", r#"{"order_id":"1001"}"#, &mut transport);
    assert!(transport.requests <= 200);
    let _ = shipstation_core::test_connection(&mut transport);
});
