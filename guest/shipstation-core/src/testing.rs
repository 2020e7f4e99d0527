//! A scripted [`Transport`] for property tests, fuzzers and examples: each
//! ShipStation endpoint answers with a fixed response, requests are counted,
//! time never runs out and sleeping is free.

use crate::transport::{HttpResponse, LogLevel, Transport, TransportError};
use std::time::Duration;

/// Which endpoint a request path is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v2/shipments?…`
    ListShipments,
    /// `GET /v2/shipments/{id}` and `/v2/shipments/external_shipment_id/{id}`
    OneShipment,
    /// `GET /v2/labels?…`
    ListLabels,
    /// `GET /v2/labels/{id}/track` (and anything else)
    Track,
}

impl Endpoint {
    /// Classify a request path.
    pub fn of(path: &str) -> Self {
        if path.starts_with("/v2/shipments?") {
            Endpoint::ListShipments
        } else if path.starts_with("/v2/shipments/") {
            Endpoint::OneShipment
        } else if path.starts_with("/v2/labels?") {
            Endpoint::ListLabels
        } else {
            Endpoint::Track
        }
    }
}

/// Answers every request to an endpoint with the same `(status, body)`.
#[derive(Debug, Clone, Default)]
pub struct ScriptedTransport {
    /// Answer of `GET /v2/shipments?…`.
    pub list_shipments: (u16, Vec<u8>),
    /// Answer of the single-shipment lookups.
    pub one_shipment: (u16, Vec<u8>),
    /// Answer of `GET /v2/labels?…`.
    pub list_labels: (u16, Vec<u8>),
    /// Answer of `GET /v2/labels/{id}/track`.
    pub track: (u16, Vec<u8>),
    /// Requests made so far.
    pub requests: usize,
}

impl Transport for ScriptedTransport {
    fn get(&mut self, path: &str) -> Result<HttpResponse, TransportError> {
        self.requests += 1;
        let (status, body) = match Endpoint::of(path) {
            Endpoint::ListShipments => &self.list_shipments,
            Endpoint::OneShipment => &self.one_shipment,
            Endpoint::ListLabels => &self.list_labels,
            Endpoint::Track => &self.track,
        };
        Ok(HttpResponse {
            status: *status,
            headers: vec![("retry-after".into(), "0".into())],
            body: body.clone(),
        })
    }

    fn sleep(&mut self, _: Duration) {}

    fn remaining(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn log(&mut self, _: LogLevel, _: &str) {}
}
