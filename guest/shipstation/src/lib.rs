//! The ShipStation smart action as a `wasm32-wasip2` component.
//!
//! A thin binding: `shipstation-core` holds the logic and builds the
//! manifest; this crate exports it through the `actionbox-guest` SDK and
//! implements the core's [`Transport`] over the SDK's `wasi:http` client
//! (bound to the operator's `base_url` setting and the call's budget). The API
//! key never passes through here: the host adds it to requests bound for the
//! base URL's host.

use actionbox_guest::http::{BaseUrl, Client};
use actionbox_guest::{export_action, settings, Action, ActionError, CallContext, Manifest};
use shipstation_core::manifest::DEFAULT_BASE_URL;
use shipstation_core::{HttpResponse, LogLevel, Transport, TransportError};
use std::time::Duration;

const USER_AGENT: &str = concat!("actionbox-shipstation/", env!("CARGO_PKG_VERSION"));

struct ShipStationAction;

impl Action for ShipStationAction {
    fn describe() -> Manifest {
        shipstation_core::manifest()
    }

    fn invoke(method: String, input: String, ctx: CallContext) -> Result<String, ActionError> {
        let mut transport = WasiHttpTransport::new(&ctx)?;
        Ok(shipstation_core::invoke(&method, &input, &mut transport)?)
    }

    fn test_connection(ctx: CallContext) -> Result<String, ActionError> {
        let mut transport = WasiHttpTransport::new(&ctx)?;
        Ok(shipstation_core::test_connection(&mut transport)?)
    }
}

export_action!(ShipStationAction);

/// [`Transport`] over the SDK's client: the operator's `base_url` setting
/// (ShipStation's own when the host sets none) and the call's budget.
struct WasiHttpTransport(Client);

impl WasiHttpTransport {
    fn new(ctx: &CallContext) -> Result<Self, ActionError> {
        let base: BaseUrl = settings::base_url(Some(DEFAULT_BASE_URL))?;
        let client = Client::new(base, ctx)
            .header("accept", "application/json")
            .header("user-agent", USER_AGENT);
        Ok(Self(client))
    }
}

impl Transport for WasiHttpTransport {
    fn get(&mut self, path_and_query: &str) -> Result<HttpResponse, TransportError> {
        self.0.get(path_and_query)
    }

    fn sleep(&mut self, duration: Duration) {
        self.0.sleep(duration);
    }

    fn remaining(&self) -> Duration {
        self.0.remaining()
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        actionbox_guest::log::write(level, message);
    }
}
