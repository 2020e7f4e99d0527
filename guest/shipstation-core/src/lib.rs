//! ShipStation API V2 `trackOrder` logic, independent of how HTTP is sent.
//!
//! The wasm component (`guest/shipstation`) is a thin binding that implements
//! [`Transport`] over `wasi:http`; tests, fuzzers and the native benchmark
//! baseline implement it over anything else. Everything that knows about
//! ShipStation lives here:
//!
//! - [`manifest`]: what the action offers and needs (`describe`);
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
//! # Ok(()) }
//! ```

pub mod api;
pub mod client;
pub mod encode;
pub mod error;
pub mod input;
pub mod json;
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
    let method = manifest::find_method(method).ok_or_else(|| {
        let known: Vec<String> = manifest()
            .methods
            .iter()
            .map(|m| format!("{} ({})", m.display_name, m.name))
            .collect();
        ActionError::InvalidInput(format!(
            "unknown method `{method}`; this action offers: {}",
            known.join(", ")
        ))
    })?;
    // Serialized straight from the structs, so fields keep their declared
    // (seed) order.
    let output = match method {
        manifest::Method::TrackOrder => {
            let input = input::TrackOrderInput::parse(input)?;
            serde_json::to_string(&track::track_order(&input, transport)?)
        }
        manifest::Method::TestConnection => {
            input::parse_empty_object(input)?;
            serde_json::to_string(&track::test_connection(transport)?)
        }
    };
    output.map_err(|e| ActionError::Internal(format!("could not encode the result: {e}")))
}
