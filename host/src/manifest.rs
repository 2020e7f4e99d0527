//! The host's view of an action's manifest (from `describe`), as JSON.

use crate::bindings::types;
use serde::Serialize;

/// A parameter of a method.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ParamSpec {
    /// JSON property name.
    pub name: String,
    /// JSON Schema type.
    pub json_type: String,
    /// Default description.
    pub description: String,
    /// Whether it must be given.
    pub required: bool,
    /// Example value, as JSON text.
    pub example: Option<String>,
}

/// A method of the action.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MethodSpec {
    /// Machine name.
    pub name: String,
    /// Name users see.
    pub display_name: String,
    /// What it does.
    pub description: String,
    /// Input properties.
    pub params: Vec<ParamSpec>,
}

/// The credential the host injects.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CredentialSpec {
    /// Human name.
    pub name: String,
    /// Header it goes in.
    pub header: String,
}

/// What an action is and needs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Manifest {
    /// Integration kind.
    pub integration: String,
    /// Action version.
    pub version: String,
    /// Methods offered.
    pub methods: Vec<MethodSpec>,
    /// Hosts it needs (`{base-url}` = the configured base URL's host).
    pub outbound_hosts: Vec<String>,
    /// Default base URL.
    pub default_base_url: String,
    /// Credential the host injects.
    pub credential: Option<CredentialSpec>,
}

impl Manifest {
    /// The method called `name` (machine or display name).
    pub fn method(&self, name: &str) -> Option<&MethodSpec> {
        self.methods.iter().find(|m| m.name == name || m.display_name == name)
    }

    /// `trackOrder (track-order), …` for messages.
    pub fn method_list(&self) -> String {
        self.methods
            .iter()
            .map(|m| format!("{} ({})", m.display_name, m.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl From<types::Manifest> for Manifest {
    fn from(m: types::Manifest) -> Self {
        Self {
            integration: m.integration,
            version: m.version,
            methods: m
                .methods
                .into_iter()
                .map(|m| MethodSpec {
                    name: m.name,
                    display_name: m.display_name,
                    description: m.description,
                    params: m
                        .params
                        .into_iter()
                        .map(|p| ParamSpec {
                            name: p.name,
                            json_type: p.json_type,
                            description: p.description,
                            required: p.required,
                            example: p.example,
                        })
                        .collect(),
                })
                .collect(),
            outbound_hosts: m.outbound_hosts,
            default_base_url: m.default_base_url,
            credential: m.credential.map(|c| CredentialSpec {
                name: c.name,
                header: c.header,
            }),
        }
    }
}
