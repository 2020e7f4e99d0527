//! What the ShipStation action offers and needs (the WIT `manifest`).

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

/// A parameter of a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// JSON property name.
    pub name: String,
    /// JSON Schema type.
    pub json_type: String,
    /// Default description for the assistant.
    pub description: String,
    /// Whether it must be present.
    pub required: bool,
    /// Example value as JSON text.
    pub example: Option<String>,
}

/// A method of the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSpec {
    /// Machine name (kebab-case).
    pub name: String,
    /// Name users see.
    pub display_name: String,
    /// What it does, for the assistant.
    pub description: String,
    /// Input properties.
    pub params: Vec<ParamSpec>,
}

/// The credential the host injects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSpec {
    /// Human name of the secret.
    pub name: String,
    /// Header it goes in.
    pub header: String,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Integration kind.
    pub integration: String,
    /// Action version.
    pub version: String,
    /// Methods offered.
    pub methods: Vec<MethodSpec>,
    /// Hosts needed (`{base-url}` = the configured base URL's host).
    pub outbound_hosts: Vec<String>,
    /// Default base URL.
    pub default_base_url: String,
    /// Credential injected by the host.
    pub credential: Option<CredentialSpec>,
}

/// The methods this action implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Track an order's shipments.
    TrackOrder,
    /// One cheap authenticated call, for the integration's Test button.
    TestConnection,
}

impl Method {
    /// All methods, in manifest order.
    pub const ALL: [Method; 2] = [Method::TrackOrder, Method::TestConnection];

    /// Machine name.
    pub fn name(self) -> &'static str {
        match self {
            Method::TrackOrder => "track-order",
            Method::TestConnection => "test-connection",
        }
    }

    /// Display name.
    pub fn display_name(self) -> &'static str {
        match self {
            Method::TrackOrder => "trackOrder",
            Method::TestConnection => "testConnection",
        }
    }

    fn spec(self) -> MethodSpec {
        match self {
            Method::TrackOrder => MethodSpec {
                name: self.name().into(),
                display_name: self.display_name().into(),
                description: "Track an order's shipments in ShipStation: carrier status, tracking \
                              number and link, ship, estimated and actual delivery dates, exceptions \
                              and scan events. Use when a customer asks where their order is."
                    .into(),
                params: vec![ParamSpec {
                    name: "order_id".into(),
                    json_type: "string".into(),
                    description: ORDER_ID_DESCRIPTION.into(),
                    required: true,
                    example: Some("\"1001\"".into()),
                }],
            },
            Method::TestConnection => MethodSpec {
                name: self.name().into(),
                display_name: self.display_name().into(),
                description: "Check that the configured ShipStation API V2 key is accepted, with one \
                              cheap authenticated request."
                    .into(),
                params: vec![],
            },
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
    Manifest {
        integration: "shipstation".into(),
        version: VERSION.into(),
        methods: Method::ALL.iter().map(|m| m.spec()).collect(),
        outbound_hosts: vec!["api.shipstation.com".into(), "{base-url}".into()],
        default_base_url: DEFAULT_BASE_URL.into(),
        credential: Some(CredentialSpec {
            name: "ShipStation API V2 key".into(),
            header: CREDENTIAL_HEADER.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_found_by_either_name() {
        assert_eq!(find_method("trackOrder"), Some(Method::TrackOrder));
        assert_eq!(find_method("track-order"), Some(Method::TrackOrder));
        assert_eq!(find_method("test-connection"), Some(Method::TestConnection));
        assert_eq!(find_method("TrackOrder"), None);
    }
}
