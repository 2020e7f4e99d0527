//! Lenient models of the ShipStation API V2 responses `trackOrder` reads.
//!
//! Real responses omit fields, send `null`, and disagree with the spec on
//! types (e.g. `carrier_id` is an integer on tracking and a string on labels),
//! so every field is optional, scalars are read as text whatever their JSON
//! type, and unknown fields are ignored.

use serde::{Deserialize, Deserializer};

/// Read a JSON string, number or boolean as text; anything else (null,
/// arrays, objects) as absent. Empty strings count as absent too.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// Read a boolean leniently: `true`/`"true"` are true, anything else false.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(matches!(v, serde_json::Value::Bool(true)) || v.as_str() == Some("true"))
}

/// Read a list leniently: `null` or a non-array is an empty list, and elements
/// that are not objects of the expected shape are skipped.
fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// Read a page counter leniently.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
}

/// `GET /v2/shipments` body.
#[derive(Debug, Default, Deserialize)]
pub struct ShipmentList {
    /// The page of shipments.
    #[serde(default, deserialize_with = "list")]
    pub shipments: Vec<Shipment>,
    /// Total pages (0 when empty).
    #[serde(default, deserialize_with = "count")]
    pub pages: Option<u64>,
}

/// A V2 shipment (the UI's "order"). Only what tracking needs.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Shipment {
    /// `se-…` id.
    #[serde(default, deserialize_with = "text")]
    pub shipment_id: Option<String>,
    /// The UI's order number.
    #[serde(default, deserialize_with = "text")]
    pub shipment_number: Option<String>,
    /// The UI's order key.
    #[serde(default, deserialize_with = "text")]
    pub external_shipment_id: Option<String>,
    /// `pending`, `processing`, `label_purchased`, `cancelled`, …
    #[serde(default, deserialize_with = "text")]
    pub shipment_status: Option<String>,
    /// Creation time, used to order shipments.
    #[serde(default, deserialize_with = "text")]
    pub created_at: Option<String>,
}

/// `GET /v2/labels` body.
#[derive(Debug, Default, Deserialize)]
pub struct LabelList {
    /// The page of labels.
    #[serde(default, deserialize_with = "list")]
    pub labels: Vec<Label>,
    /// Total pages (0 when empty).
    #[serde(default, deserialize_with = "count")]
    pub pages: Option<u64>,
}

/// A V2 label (the UI's "shipment"): where tracking lives.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Label {
    /// `se-…` id.
    #[serde(default, deserialize_with = "text")]
    pub label_id: Option<String>,
    /// `processing`, `completed`, `error`, `voided`.
    #[serde(default, deserialize_with = "text")]
    pub status: Option<String>,
    /// Carrier tracking number.
    #[serde(default, deserialize_with = "text")]
    pub tracking_number: Option<String>,
    /// Carrier tracking page.
    #[serde(default, deserialize_with = "text")]
    pub tracking_url: Option<String>,
    /// `unknown`, `in_transit`, `error`, `delivered`.
    #[serde(default, deserialize_with = "text")]
    pub tracking_status: Option<String>,
    /// e.g. `ups`.
    #[serde(default, deserialize_with = "text")]
    pub carrier_code: Option<String>,
    /// Ship date.
    #[serde(default, deserialize_with = "text")]
    pub ship_date: Option<String>,
    /// Creation time.
    #[serde(default, deserialize_with = "text")]
    pub created_at: Option<String>,
    /// A voided label never shipped.
    #[serde(default, deserialize_with = "flag")]
    pub voided: bool,
    /// A return label goes back to the merchant.
    #[serde(default, deserialize_with = "flag")]
    pub is_return_label: bool,
}

/// `GET /v2/labels/{label_id}/track` body (`tracking_information`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct TrackingInfo {
    /// Carrier tracking number.
    #[serde(default, deserialize_with = "text")]
    pub tracking_number: Option<String>,
    /// Carrier tracking page.
    #[serde(default, deserialize_with = "text")]
    pub tracking_url: Option<String>,
    /// Two-letter normalized status (`IT`, `DE`, …).
    #[serde(default, deserialize_with = "text")]
    pub status_code: Option<String>,
    /// Human text of `status_code`.
    #[serde(default, deserialize_with = "text")]
    pub status_description: Option<String>,
    /// The carrier's own status text.
    #[serde(default, deserialize_with = "text")]
    pub carrier_status_description: Option<String>,
    /// e.g. `ups`.
    #[serde(default, deserialize_with = "text")]
    pub carrier_code: Option<String>,
    /// Ship date (the spec's name).
    #[serde(default, deserialize_with = "text")]
    pub ship_date: Option<String>,
    /// Ship date (the docs sample's name).
    #[serde(default, deserialize_with = "text")]
    pub shipped_date: Option<String>,
    /// Carrier's estimate.
    #[serde(default, deserialize_with = "text")]
    pub estimated_delivery_date: Option<String>,
    /// When it was delivered.
    #[serde(default, deserialize_with = "text")]
    pub actual_delivery_date: Option<String>,
    /// What went wrong, for `EX`.
    #[serde(default, deserialize_with = "text")]
    pub exception_description: Option<String>,
    /// Scan events, newest first as ShipStation sends them.
    #[serde(default, deserialize_with = "list")]
    pub events: Vec<TrackingEvent>,
}

/// One carrier scan.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct TrackingEvent {
    /// Carrier-local time.
    #[serde(default, deserialize_with = "text")]
    pub carrier_occurred_at: Option<String>,
    /// UTC time.
    #[serde(default, deserialize_with = "text")]
    pub occurred_at: Option<String>,
    /// What happened.
    #[serde(default, deserialize_with = "text")]
    pub description: Option<String>,
    /// City.
    #[serde(default, deserialize_with = "text")]
    pub city_locality: Option<String>,
    /// State or province.
    #[serde(default, deserialize_with = "text")]
    pub state_province: Option<String>,
    /// Postal code.
    #[serde(default, deserialize_with = "text")]
    pub postal_code: Option<String>,
    /// The carrier's status text.
    #[serde(default, deserialize_with = "text")]
    pub carrier_status_description: Option<String>,
}

/// ShipStation's error body: `{"request_id", "errors": [{"error_code", "message", …}]}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// Quote this to ShipStation support.
    #[serde(default, deserialize_with = "text")]
    pub request_id: Option<String>,
    /// The individual errors.
    #[serde(default, deserialize_with = "list")]
    pub errors: Vec<ErrorDetail>,
}

/// One entry of an [`ErrorBody`].
#[derive(Debug, Default, Deserialize)]
pub struct ErrorDetail {
    /// e.g. `invalid_identifier`.
    #[serde(default, deserialize_with = "text")]
    pub error_code: Option<String>,
    /// Human text (do not code against it).
    #[serde(default, deserialize_with = "text")]
    pub message: Option<String>,
}

impl ErrorBody {
    /// Parse an error body; anything unparsable gives an empty one.
    pub fn parse(body: &[u8]) -> Self {
        if actionbox_guest::json::too_deep(body) {
            return Self::default();
        }
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// The first error's message and code, e.g. `shipment not found (invalid_identifier)`.
    pub fn summary(&self) -> Option<String> {
        let e = self.errors.first()?;
        match (&e.message, &e.error_code) {
            (Some(m), Some(c)) => Some(format!("{m} ({c})")),
            (Some(m), None) => Some(m.clone()),
            (None, Some(c)) => Some(c.clone()),
            (None, None) => None,
        }
    }

    /// Whether any error carries `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.error_code.as_deref() == Some(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_accepts_nulls_numbers_and_missing_fields() {
        let t: TrackingInfo = serde_json::from_str(
            r#"{"tracking_number": 123, "carrier_id": 3, "status_code": null,
                "shipped_date": "2025-05-02T00:00:00Z", "events": [{"description": ""}, 7, null]}"#,
        )
        .expect("lenient parse");
        assert_eq!(t.tracking_number.as_deref(), Some("123"));
        assert_eq!(t.status_code, None);
        assert_eq!(t.shipped_date.as_deref(), Some("2025-05-02T00:00:00Z"));
        assert_eq!(t.events.len(), 1);
        assert_eq!(t.events[0].description, None);
    }

    #[test]
    fn error_body_summary() {
        let e = ErrorBody::parse(
            br#"{"request_id":"r-1","errors":[{"error_code":"invalid_identifier","message":"nope"}]}"#,
        );
        assert_eq!(e.request_id.as_deref(), Some("r-1"));
        assert_eq!(e.summary().as_deref(), Some("nope (invalid_identifier)"));
        assert!(e.has_code("invalid_identifier"));
        assert!(ErrorBody::parse(b"<html>").summary().is_none());
    }
}
