//! The `trackOrder` flow: order id → shipments → labels → tracking.
//!
//! 1. An `se-…` id is a shipment id: `GET /v2/shipments/{id}`.
//! 2. Otherwise `GET /v2/shipments?shipment_number=…` (paged), keeping only
//!    exact matches — server-side matching is not trusted (V1 matched by
//!    prefix). A leading `#` (Shopify's `#1001`) is tried without it too.
//! 3. No match: `GET /v2/shipments/external_shipment_id/{id}`.
//! 4. Per shipment `GET /v2/labels?shipment_id=…` (paged); voided labels are
//!    dropped, return labels are marked.
//! 5. Per label `GET /v2/labels/{label_id}/track`; when ShipStation has no
//!    tracking log for a label (404/400/5xx/malformed), the label's own
//!    tracking fields are used instead.
//!
//! The most relevant package becomes `tracking`: outbound before return
//! labels, then exceptions, delivery attempts, packages on the way, unknown,
//! and delivered last; ties go to the most recent ship date.

use crate::api::{Label, LabelList, Shipment, ShipmentList, TrackingInfo};
use crate::client::Client;
use crate::input::TrackOrderInput;
use crate::output::{ConnectionCheck, OrderTracking, ShipmentTracking, TrackOrderOutput, Tracking, TrackingEvent};
use crate::transport::{LogLevel, Transport};
use crate::ActionError;
use actionbox_guest::http::{encode_component, path_with_query};
use std::cmp::Reverse;

/// Page size for shipment and label lists.
pub const PAGE_SIZE: u32 = 100;
/// Pages read at most per list, so a huge account cannot exhaust the budget.
pub const MAX_PAGES: u64 = 5;
/// Shipments of one order examined at most (newest first).
pub const MAX_SHIPMENTS: usize = 10;
/// Labels whose tracking log is fetched at most; further labels are reported
/// from their own fields.
pub const MAX_TRACKED_LABELS: usize = 10;

/// Track an order.
pub fn track_order(input: &TrackOrderInput, transport: &mut impl Transport) -> Result<TrackOrderOutput, ActionError> {
    let mut client = Client::new(transport);
    let order_id = input.order_id.as_str();
    let mut shipments = find_shipments(&mut client, order_id)?;
    if shipments.is_empty() {
        return Err(ActionError::NotFound(format!(
            "no ShipStation order matches `{order_id}` (searched order numbers and external order ids)"
        )));
    }
    shipments.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    if shipments.len() > MAX_SHIPMENTS {
        client.log(
            LogLevel::Warn,
            &format!(
                "order has {} shipments; examining the newest {MAX_SHIPMENTS}",
                shipments.len()
            ),
        );
        shipments.truncate(MAX_SHIPMENTS);
    }

    let mut entries = Vec::new();
    let mut tracked = 0;
    for shipment in &shipments {
        let labels = match shipment.shipment_id.as_deref() {
            Some(id) => labels_of(&mut client, id)?,
            None => Vec::new(),
        };
        if labels.is_empty() {
            entries.push(ShipmentTracking {
                shipment_id: shipment.shipment_id.clone(),
                shipment_number: shipment.shipment_number.clone(),
                shipment_status: shipment.shipment_status.clone(),
                label_id: None,
                is_return_label: false,
                tracking: None,
            });
        }
        for label in labels {
            let tracking = if tracked < MAX_TRACKED_LABELS {
                tracked += 1;
                tracking_of(&mut client, &label)?
            } else {
                from_label(&label)
            };
            entries.push(ShipmentTracking {
                shipment_id: shipment.shipment_id.clone(),
                shipment_number: shipment.shipment_number.clone(),
                shipment_status: shipment.shipment_status.clone(),
                label_id: label.label_id.clone(),
                is_return_label: label.is_return_label,
                tracking: Some(tracking),
            });
        }
    }

    let tracking = most_relevant(&entries).cloned();
    let shipped = tracking.is_some();
    let message = (!shipped).then(|| not_shipped_message(order_id, &shipments));
    Ok(TrackOrderOutput {
        shipstation: OrderTracking {
            order_id: order_id.to_string(),
            shipped,
            message,
            tracking,
            shipments: entries,
        },
    })
}

/// The Test button: one cheap authenticated request.
pub fn test_connection(transport: &mut impl Transport) -> Result<ConnectionCheck, ActionError> {
    let mut client = Client::new(transport);
    let path = path_with_query("/v2/shipments", &[("page", "1"), ("page_size", "1")]);
    let _: ShipmentList = client.get_json(&path, "ShipStation has no /v2/shipments endpoint at this base URL")?;
    Ok(ConnectionCheck {
        ok: true,
        message: "ShipStation accepted the API key (GET /v2/shipments answered 200)".into(),
    })
}

/// Whether `id` has the shape of a ShipStation id: `^se(-[a-z0-9]+)+$`, ≤ 25 chars.
pub fn is_se_id(id: &str) -> bool {
    id.len() <= 25
        && id.strip_prefix("se").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .split('-')
                    .skip(1)
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
                && rest.starts_with('-')
        })
}

fn find_shipments<T: Transport>(client: &mut Client<'_, T>, order_id: &str) -> Result<Vec<Shipment>, ActionError> {
    if is_se_id(order_id) {
        let path = format!("/v2/shipments/{}", encode_component(order_id));
        return Ok(client.get_json_or_404::<Shipment>(&path)?.into_iter().collect());
    }
    let mut numbers = vec![order_id];
    if let Some(stripped) = order_id.strip_prefix('#').filter(|s| !s.is_empty()) {
        numbers.push(stripped);
    }
    for number in &numbers {
        let found = shipments_by_number(client, number)?;
        if !found.is_empty() {
            return Ok(found);
        }
    }
    let path = format!("/v2/shipments/external_shipment_id/{}", encode_component(order_id));
    Ok(client
        .get_json_or_404::<Shipment>(&path)?
        .into_iter()
        .filter(|s| s.external_shipment_id.as_deref().is_none_or(|e| e == order_id))
        .collect())
}

fn shipments_by_number<T: Transport>(client: &mut Client<'_, T>, number: &str) -> Result<Vec<Shipment>, ActionError> {
    let all: Vec<Shipment> = list_all::<T, ShipmentList>(client, "/v2/shipments", ("shipment_number", number))?;
    Ok(all
        .into_iter()
        .filter(|s| s.shipment_number.as_deref() == Some(number))
        .collect())
}

fn labels_of<T: Transport>(client: &mut Client<'_, T>, shipment_id: &str) -> Result<Vec<Label>, ActionError> {
    let all: Vec<Label> = list_all::<T, LabelList>(client, "/v2/labels", ("shipment_id", shipment_id))?;
    let mut labels: Vec<Label> = all
        .into_iter()
        .filter(|l| !l.voided && l.status.as_deref() != Some("voided"))
        .collect();
    labels.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    Ok(labels)
}

/// A page of a V2 list endpoint: its items and the total page count.
trait ListPage: serde::de::DeserializeOwned {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, Option<u64>);
}

impl ListPage for ShipmentList {
    type Item = Shipment;
    fn into_parts(self) -> (Vec<Shipment>, Option<u64>) {
        (self.shipments, self.pages)
    }
}

impl ListPage for LabelList {
    type Item = Label;
    fn into_parts(self) -> (Vec<Label>, Option<u64>) {
        (self.labels, self.pages)
    }
}

/// Every item of `GET path?filter=…`, newest first, reading at most
/// [`MAX_PAGES`] pages of [`PAGE_SIZE`]; a 404 ends the list.
fn list_all<T: Transport, P: ListPage>(
    client: &mut Client<'_, T>,
    path: &str,
    filter: (&str, &str),
) -> Result<Vec<P::Item>, ActionError> {
    let mut items = Vec::new();
    let page_size = PAGE_SIZE.to_string();
    for page in 1..=MAX_PAGES {
        let page_text = page.to_string();
        let url = path_with_query(
            path,
            &[
                filter,
                ("sort_by", "created_at"),
                ("sort_dir", "desc"),
                ("page", &page_text),
                ("page_size", &page_size),
            ],
        );
        let Some(list) = client.get_json_or_404::<P>(&url)? else {
            break;
        };
        let (page_items, pages) = list.into_parts();
        let count = page_items.len();
        items.extend(page_items);
        if count == 0 || pages.is_none_or(|pages| page >= pages) {
            break;
        }
    }
    Ok(items)
}

fn tracking_of<T: Transport>(client: &mut Client<'_, T>, label: &Label) -> Result<Tracking, ActionError> {
    let Some(label_id) = label.label_id.as_deref() else {
        return Ok(from_label(label));
    };
    let path = format!("/v2/labels/{}/track", encode_component(label_id));
    match client.get_json_or_404::<TrackingInfo>(&path) {
        Ok(Some(info)) => Ok(merge(info, label)),
        Ok(None) => {
            client.log(
                LogLevel::Info,
                &format!("no tracking log for label {label_id}; using the label's fields"),
            );
            Ok(from_label(label))
        }
        Err(e @ ActionError::Upstream { .. }) => {
            client.log(
                LogLevel::Warn,
                &format!("tracking log for label {label_id} unavailable ({e}); using the label's fields"),
            );
            Ok(from_label(label))
        }
        Err(e) => Err(e),
    }
}

/// Tracking from the tracking log, with the label filling gaps.
fn merge(info: TrackingInfo, label: &Label) -> Tracking {
    let status_code = info.status_code.or_else(|| {
        label
            .tracking_status
            .as_deref()
            .and_then(code_of_label_status)
            .map(String::from)
    });
    let status_description = info
        .status_description
        .or_else(|| status_code.as_deref().and_then(describe_status).map(String::from));
    Tracking {
        tracking_number: info.tracking_number.or_else(|| label.tracking_number.clone()),
        tracking_url: info.tracking_url.or_else(|| label.tracking_url.clone()),
        status_code,
        status_description,
        carrier_status_description: info.carrier_status_description,
        carrier_code: info.carrier_code.or_else(|| label.carrier_code.clone()),
        ship_date: info.ship_date.or(info.shipped_date).or_else(|| label.ship_date.clone()),
        estimated_delivery_date: info.estimated_delivery_date,
        actual_delivery_date: info.actual_delivery_date,
        exception_description: info.exception_description,
        events: info
            .events
            .into_iter()
            .map(|e| TrackingEvent {
                carrier_occurred_at: e.carrier_occurred_at.or(e.occurred_at),
                description: e.description,
                city_locality: e.city_locality,
                state_province: e.state_province,
                postal_code: e.postal_code,
                carrier_status_description: e.carrier_status_description,
            })
            .collect(),
    }
}

/// Tracking from the label alone (no tracking log available).
fn from_label(label: &Label) -> Tracking {
    merge(TrackingInfo::default(), label)
}

/// Two-letter status for a label's `tracking_status`.
fn code_of_label_status(status: &str) -> Option<&'static str> {
    Some(match status {
        "in_transit" => "IT",
        "delivered" => "DE",
        "error" => "EX",
        "unknown" => "UN",
        "delivered_to_service_point" => "SP",
        _ => return None,
    })
}

/// ShipStation's description of a two-letter status.
pub fn describe_status(code: &str) -> Option<&'static str> {
    Some(match code {
        "UN" => "Unknown",
        "AC" => "Accepted",
        "IT" => "In Transit",
        "DE" => "Delivered",
        "EX" => "Exception",
        "AT" => "Delivery Attempt",
        "NY" => "Not Yet In System",
        "SP" => "Delivered To Collection Location",
        _ => return None,
    })
}

/// Lower is more relevant to "where is my order?".
fn status_rank(code: Option<&str>) -> u8 {
    match code {
        Some("EX") => 0,
        Some("AT") => 1,
        Some("IT") | Some("AC") => 2,
        Some("NY") => 3,
        Some("DE") | Some("SP") => 5,
        _ => 4,
    }
}

fn most_relevant(entries: &[ShipmentTracking]) -> Option<&Tracking> {
    entries
        .iter()
        .filter_map(|e| e.tracking.as_ref().map(|t| (e, t)))
        .min_by_key(|(e, t)| {
            (
                e.is_return_label,
                status_rank(t.status_code.as_deref()),
                Reverse(t.ship_date.clone()),
            )
        })
        .map(|(_, t)| t)
}

fn not_shipped_message(order_id: &str, shipments: &[Shipment]) -> String {
    if shipments
        .iter()
        .all(|s| s.shipment_status.as_deref() == Some("cancelled"))
    {
        format!("Order {order_id} was cancelled in ShipStation; nothing was shipped.")
    } else {
        format!(
            "Order {order_id} was found in ShipStation but has not shipped yet: no shipping label has been created."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn se_ids_are_recognised() {
        assert!(is_se_id("se-28529731"));
        assert!(is_se_id("se-abc-123"));
        assert!(!is_se_id("se-"));
        assert!(!is_se_id("se"));
        assert!(!is_se_id("se-ABC"));
        assert!(!is_se_id("sea-1"));
        assert!(!is_se_id("1001"));
        assert!(!is_se_id("se-1--2"));
        assert!(!is_se_id("se-11111111111111111111111"));
    }

    fn entry(ret: bool, code: &str, ship: &str) -> ShipmentTracking {
        let label = Label {
            tracking_status: None,
            ship_date: Some(ship.into()),
            ..Label::default()
        };
        let mut t = from_label(&label);
        t.status_code = Some(code.into());
        ShipmentTracking {
            shipment_id: None,
            shipment_number: None,
            shipment_status: None,
            label_id: None,
            is_return_label: ret,
            tracking: Some(t),
        }
    }

    #[test]
    fn relevance_prefers_outbound_undelivered_recent() {
        let entries = vec![
            entry(false, "DE", "2025-05-03"),
            entry(true, "EX", "2025-05-04"),
            entry(false, "IT", "2025-05-01"),
            entry(false, "IT", "2025-05-02"),
        ];
        let best = most_relevant(&entries).expect("some");
        assert_eq!(best.status_code.as_deref(), Some("IT"));
        assert_eq!(best.ship_date.as_deref(), Some("2025-05-02"));
    }

    #[test]
    fn label_status_fills_missing_tracking() {
        let label = Label {
            tracking_status: Some("delivered".into()),
            tracking_number: Some("1Z".into()),
            ..Label::default()
        };
        let t = from_label(&label);
        assert_eq!(t.status_code.as_deref(), Some("DE"));
        assert_eq!(t.status_description.as_deref(), Some("Delivered"));
        assert_eq!(t.tracking_number.as_deref(), Some("1Z"));
    }
}
