//! ShipStation API V2 `trackOrder` logic, independent of how HTTP is sent.
//!
//! The wasm component (`guest/shipstation`) is a thin binding that implements
//! [`Transport`] over the `actionbox-guest` SDK's `wasi:http` client; tests,
//! fuzzers and the native benchmark baseline implement it over anything else.
//! The contract's types (manifest, errors) and the generic helpers (percent
//! encoding, the JSON nesting guard) are the SDK's. Everything that knows about
//! ShipStation lives here:
//!
//! - [`manifest`]: what the action offers and needs (`describe`), default
//!   actions included;
//! - [`input`]: validation of the caller's JSON input;
//! - [`client`]: requests with retry/rate-limit policy and the one mapping from
//!   HTTP status to [`ActionError`];
//! - [`api`]: lenient models of ShipStation V2 responses;
//! - [`track`]: the order → shipments → labels → tracking flow;
//! - [`output`]: the JSON returned to the assistant.
//!
//! ```no_run
//! # use shipstation_core::*;
//! # fn demo(transport: &mut impl Transport) -> Result<(), ActionError> {
//! let json = invoke("trackOrder", r#"{"order_id":"1001"}"#, transport)?;
//! let check = test_connection(transport)?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod client;
pub mod error;
pub mod input;
pub mod manifest;
pub mod output;
pub mod testing;
pub mod track;
pub mod transport;

pub use error::ActionError;
pub use manifest::{manifest, Manifest};
pub use transport::{HttpResponse, LogLevel, Transport, TransportError};

/// Run one method of the action. `method` may be the machine name
/// (`track-order`) or the display name (`trackOrder`); `input` is JSON text.
/// On success returns the JSON result as text.
pub fn invoke(method: &str, input: &str, transport: &mut impl Transport) -> Result<String, ActionError> {
    let Some(found) = manifest::find_method(method) else {
        let known: Vec<String> = manifest()
            .methods
            .iter()
            .map(|m| format!("{} ({})", m.display_name, m.name))
            .collect();
        // Callers written for contract 0.1.0 invoked the Test button as a method.
        let hint = if matches!(method, "test-connection" | "testConnection") {
            "; the Test button is the contract's own `test-connection` export since actionbox:action@0.2.0"
        } else {
            ""
        };
        return Err(ActionError::InvalidInput(format!(
            "unknown method `{method}`; this action offers: {}{hint}",
            known.join(", ")
        )));
    };
    // Serialized straight from the structs, so fields keep their declared
    // (seed) order.
    let output = match found {
        manifest::Method::TrackOrder => {
            let input = input::TrackOrderInput::parse(input)?;
            serde_json::to_string(&track::track_order(&input, transport)?)
        }
    };
    output.map_err(|e| ActionError::Internal(format!("could not encode the result: {e}")))
}

/// The integration's Test button (the contract's `test-connection` export):
/// one cheap authenticated request that proves the key and base URL work.
/// On success returns `{"ok":true,"message":"…"}` as text.
pub fn test_connection(transport: &mut impl Transport) -> Result<String, ActionError> {
    serde_json::to_string(&track::test_connection(transport)?)
        .map_err(|e| ActionError::Internal(format!("could not encode the result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScriptedTransport;

    fn answering(status: u16, body: &str) -> ScriptedTransport {
        ScriptedTransport {
            list_shipments: (status, body.as_bytes().to_vec()),
            ..ScriptedTransport::default()
        }
    }

    #[test]
    fn test_connection_reports_ok_after_one_request() {
        let mut t = answering(200, r#"{"shipments":[],"pages":0}"#);
        let text = test_connection(&mut t).expect("accepted key");
        assert_eq!(
            text,
            r#"{"ok":true,"message":"ShipStation accepted the API key (GET /v2/shipments answered 200)"}"#
        );
        assert_eq!(t.requests, 1);
    }

    #[test]
    fn test_connection_with_a_rejected_key_is_unauthorized() {
        let mut t = answering(401, r#"{"errors":[{"message":"invalid API key"}]}"#);
        assert!(matches!(test_connection(&mut t), Err(ActionError::Unauthorized(_))));
    }

    #[test]
    fn test_connection_is_no_longer_an_invokable_method() {
        for name in ["test-connection", "testConnection"] {
            let mut t = answering(200, r#"{"shipments":[],"pages":0}"#);
            match invoke(name, "{}", &mut t) {
                Err(ActionError::InvalidInput(m)) => {
                    assert!(m.contains("trackOrder (track-order)"), "{m}");
                    assert!(m.contains("`test-connection` export"), "{m}");
                }
                other => panic!("expected invalid-input for `{name}`, got {other:?}"),
            }
            assert_eq!(t.requests, 0);
        }
    }

    #[test]
    fn unknown_method_lists_what_is_offered() {
        let mut t = ScriptedTransport::default();
        match invoke("cancelOrder", "{}", &mut t) {
            Err(ActionError::InvalidInput(m)) => {
                assert_eq!(
                    m,
                    "unknown method `cancelOrder`; this action offers: trackOrder (track-order)"
                );
            }
            other => panic!("expected invalid-input, got {other:?}"),
        }
    }
}
