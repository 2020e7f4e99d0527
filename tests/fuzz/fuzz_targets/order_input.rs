//! Arbitrary caller input to trackOrder, and under any method name: typed errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shipstation_core::testing::ScriptedTransport;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut transport = ScriptedTransport {
        list_shipments: (200, br#"{"shipments":[],"pages":0}"#.to_vec()),
        one_shipment: (404, Vec::new()),
        ..ScriptedTransport::default()
    };
    let _ = shipstation_core::input::TrackOrderInput::parse(text);
    let _ = shipstation_core::invoke("trackOrder", text, &mut transport);
    let _ = shipstation_core::invoke(text, "{}", &mut transport);
});
