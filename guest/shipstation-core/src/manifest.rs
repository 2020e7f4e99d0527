//! What the ShipStation action offers and needs: the contract's `manifest`,
//! built with the SDK's builders (`actionbox_guest::manifest`).

pub use actionbox_guest::{
    CredentialSpec, DefaultAction, Execution, JsonType, Manifest, MethodSpec, ParamSpec, ParameterDescription, Trigger,
};

/// Version of this action, from the crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where ShipStation API V2 lives for real users.
pub const DEFAULT_BASE_URL: &str = "https://api.shipstation.com";

/// The header ShipStation V2 reads the API key from.
pub const CREDENTIAL_HEADER: &str = "API-Key";

/// Default description of the `order_id` parameter; integrations may override it.
pub const ORDER_ID_DESCRIPTION: &str = "Order id (e.g., Shopify/WooCommerce/AdobeCommerce order id)";

/// Longest order id accepted, in characters. ShipStation truncates
/// `shipment_number` at 50; external ids are longer but never near this.
pub const MAX_ORDER_ID_CHARS: usize = 200;

/// Response instructions of the `trackOrder` default action: how the assistant
/// should turn the result into an answer. They live here, beside the output
/// they describe, so a host needs no ShipStation knowledge to offer the action.
pub const TRACK_ORDER_INSTRUCTIONS: &str = "Tell the customer where the order is in one or two sentences: \
the status (tracking.status_description), the carrier and tracking number with the tracking_url link, and the \
estimated_delivery_date if it is not delivered yet (actual_delivery_date if it is). If exception_description is set, \
explain the problem plainly and say what happens next. If the order has several shipments, summarise each. If \
shipped is false, say the order has not shipped yet using message. Never invent dates or numbers.";

/// The methods this action implements. (The Test button is not one: it is
/// the contract's own `test-connection` export, [`crate::test_connection`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Track an order's shipments.
    TrackOrder,
}

impl Method {
    /// All methods, in manifest order.
    pub const ALL: [Method; 1] = [Method::TrackOrder];

    /// Machine name.
    pub fn name(self) -> &'static str {
        match self {
            Method::TrackOrder => "track-order",
        }
    }

    /// Display name.
    pub fn display_name(self) -> &'static str {
        match self {
            Method::TrackOrder => "trackOrder",
        }
    }

    fn spec(self) -> MethodSpec {
        match self {
            Method::TrackOrder => MethodSpec::new(
                self.name(),
                self.display_name(),
                "Track an order's shipments in ShipStation: carrier status, tracking number and link, ship, \
                 estimated and actual delivery dates, exceptions and scan events. Use when a customer asks where \
                 their order is.",
            )
            .param(ParamSpec::required("order_id", JsonType::String, ORDER_ID_DESCRIPTION).example("\"1001\"")),
        }
    }
}

/// Find a method by machine or display name.
pub fn find_method(name: &str) -> Option<Method> {
    Method::ALL
        .into_iter()
        .find(|m| m.name() == name || m.display_name() == name)
}

/// The ShipStation action's manifest.
pub fn manifest() -> Manifest {
    let track = Method::TrackOrder.display_name();
    Manifest::new("shipstation", VERSION)
        .method(Method::TrackOrder.spec())
        .default_action(DefaultAction::new(track, track).response_instructions(TRACK_ORDER_INSTRUCTIONS))
        .outbound_host("api.shipstation.com")
        .outbound_host("{base-url}")
        .default_base_url(DEFAULT_BASE_URL)
        .credential("ShipStation API V2 key", CREDENTIAL_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_found_by_either_name() {
        assert_eq!(find_method("trackOrder"), Some(Method::TrackOrder));
        assert_eq!(find_method("track-order"), Some(Method::TrackOrder));
        assert_eq!(find_method("TrackOrder"), None);
    }

    #[test]
    fn test_connection_is_not_a_method() {
        let m = manifest();
        assert!(find_method("test-connection").is_none());
        assert!(find_method("testConnection").is_none());
        assert!(m
            .methods
            .iter()
            .all(|s| s.name != "test-connection" && s.display_name != "testConnection"));
    }

    #[test]
    fn track_order_is_offered_by_default_with_its_instructions() {
        let m = manifest();
        assert_eq!(m.default_actions.len(), 1);
        let d = &m.default_actions[0];
        assert_eq!(d.name, "trackOrder");
        assert_eq!(find_method(&d.method), Some(Method::TrackOrder));
        assert_eq!(d.description, None);
        assert_eq!(d.execution, Execution::DuringInteraction);
        assert_eq!(d.trigger, Trigger::Inbound);
        assert!(d.parameter_descriptions.is_empty());
        // Written out whole, not via the constant: the text moved here from the
        // host's catalog and must stay byte-identical.
        #[rustfmt::skip]
        let expected = "Tell the customer where the order is in one or two sentences: the status (tracking.status_description), the carrier and tracking number with the tracking_url link, and the estimated_delivery_date if it is not delivered yet (actual_delivery_date if it is). If exception_description is set, explain the problem plainly and say what happens next. If the order has several shipments, summarise each. If shipped is false, say the order has not shipped yet using message. Never invent dates or numbers.";
        assert_eq!(d.response_instructions.as_deref(), Some(expected));
    }

    #[test]
    fn default_parameter_descriptions_name_existing_params() {
        // That each default action's method exists is tests/properties.rs's
        // `every_default_action_names_an_existing_method`.
        let m = manifest();
        for d in &m.default_actions {
            let Some(spec) = find_method(&d.method).map(Method::spec) else {
                continue;
            };
            for p in &d.parameter_descriptions {
                assert!(
                    spec.params.iter().any(|s| s.name == p.param),
                    "default action `{}` describes unknown parameter `{}`",
                    d.name,
                    p.param
                );
            }
        }
    }
}
