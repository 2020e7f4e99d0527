//! The JSON `trackOrder` returns to the assistant.
//!
//! The seed format is kept field for field (`shipstation.order_id`,
//! `shipstation.tracking.{tracking_number, tracking_url, status_description,
//! carrier_status_description, ship_date, actual_delivery_date, events[]}`);
//! fields the response instructions need are added beside them. Every field is
//! always present (`null` when unknown) so the shape never changes.

use serde::Serialize;

/// Top level: `{"shipstation": …}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrackOrderOutput {
    /// The order's tracking.
    pub shipstation: OrderTracking,
}

/// What is known about one order.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrderTracking {
    /// The order id that was asked about.
    pub order_id: String,
    /// Whether at least one (non-voided) label exists.
    pub shipped: bool,
    /// A sentence for the assistant when there is nothing to track yet.
    pub message: Option<String>,
    /// The most relevant package's tracking (see [`crate::track`]), or `null`
    /// when nothing has shipped.
    pub tracking: Option<Tracking>,
    /// Every shipment of the order with each of its labels, for split orders.
    pub shipments: Vec<ShipmentTracking>,
}

/// One package: a shipment's label and its tracking.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ShipmentTracking {
    /// ShipStation `se-…` shipment id.
    pub shipment_id: Option<String>,
    /// The order number on that shipment.
    pub shipment_number: Option<String>,
    /// `pending`, `label_purchased`, `cancelled`, …
    pub shipment_status: Option<String>,
    /// The label, `null` when the shipment has no label yet.
    pub label_id: Option<String>,
    /// A return label goes back to the merchant.
    pub is_return_label: bool,
    /// The label's tracking, `null` when there is no label.
    pub tracking: Option<Tracking>,
}

/// Tracking of one package (the seed's `tracking` object plus extras).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Tracking {
    /// Carrier tracking number.
    pub tracking_number: Option<String>,
    /// Carrier tracking page.
    pub tracking_url: Option<String>,
    /// Two-letter status: `UN`, `AC`, `IT`, `DE`, `EX`, `AT`, `NY`, `SP`.
    pub status_code: Option<String>,
    /// Human text of the status.
    pub status_description: Option<String>,
    /// The carrier's own status text.
    pub carrier_status_description: Option<String>,
    /// Carrier code, e.g. `ups`.
    pub carrier_code: Option<String>,
    /// When it shipped.
    pub ship_date: Option<String>,
    /// The carrier's delivery estimate.
    pub estimated_delivery_date: Option<String>,
    /// When it was delivered.
    pub actual_delivery_date: Option<String>,
    /// What went wrong, for exceptions.
    pub exception_description: Option<String>,
    /// Scan events, as ShipStation orders them (newest first).
    pub events: Vec<TrackingEvent>,
}

/// One scan event (exactly the seed's fields).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrackingEvent {
    /// Carrier-local time.
    pub carrier_occurred_at: Option<String>,
    /// What happened.
    pub description: Option<String>,
    /// City.
    pub city_locality: Option<String>,
    /// State or province.
    pub state_province: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// The carrier's status text.
    pub carrier_status_description: Option<String>,
}

/// Result of `test-connection`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConnectionCheck {
    /// Always true: failures are errors.
    pub ok: bool,
    /// What was checked.
    pub message: String,
}
