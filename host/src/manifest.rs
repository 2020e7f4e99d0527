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

/// JSON Schema types a parameter may have.
pub const PARAM_TYPES: [&str; 6] = ["string", "integer", "number", "boolean", "object", "array"];

fn is_identifier(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Manifest {
    /// Check what an untrusted action says about itself before the host
    /// builds tool schemas, headers or messages from it.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::{bail, ensure};
        ensure!(
            is_identifier(&self.integration),
            "the manifest's integration id `{}` is not 1-64 of [A-Za-z0-9_-]",
            self.integration
        );
        ensure!(!self.methods.is_empty(), "the manifest offers no methods");
        let mut names = std::collections::BTreeSet::new();
        for m in &self.methods {
            let own: std::collections::BTreeSet<&String> = [&m.name, &m.display_name].into();
            for name in own {
                ensure!(is_identifier(name), "method name `{name}` is not 1-64 of [A-Za-z0-9_-]");
                ensure!(names.insert(name.clone()), "method name `{name}` is used twice");
            }
            let mut params = std::collections::BTreeSet::new();
            for p in &m.params {
                ensure!(
                    is_identifier(&p.name),
                    "method `{}`: parameter name `{}` is not 1-64 of [A-Za-z0-9_-]",
                    m.name,
                    p.name
                );
                ensure!(
                    params.insert(&p.name),
                    "method `{}`: parameter `{}` is declared twice",
                    m.name,
                    p.name
                );
                if !PARAM_TYPES.contains(&p.json_type.as_str()) {
                    bail!(
                        "method `{}`: parameter `{}` has JSON type `{}`; allowed: {}",
                        m.name,
                        p.name,
                        p.json_type,
                        PARAM_TYPES.join(", ")
                    );
                }
                if let Some(example) = &p.example {
                    ensure!(
                        serde_json::from_str::<serde_json::Value>(example).is_ok(),
                        "method `{}`: parameter `{}` has an example that is not JSON",
                        m.name,
                        p.name
                    );
                }
            }
        }
        if let Some(c) = &self.credential {
            ensure!(
                http::HeaderName::from_bytes(c.header.as_bytes()).is_ok(),
                "the credential header `{}` is not a valid HTTP header name",
                c.header
            );
        }
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(json_type: &str, header: &str) -> Manifest {
        Manifest {
            integration: "shipstation".into(),
            version: "1".into(),
            methods: vec![MethodSpec {
                name: "track-order".into(),
                display_name: "trackOrder".into(),
                description: "d".into(),
                params: vec![ParamSpec {
                    name: "order_id".into(),
                    json_type: json_type.into(),
                    description: "d".into(),
                    required: true,
                    example: Some("\"1\"".into()),
                }],
            }],
            outbound_hosts: vec!["{base-url}".into()],
            default_base_url: "https://api.shipstation.com".into(),
            credential: Some(CredentialSpec {
                name: "key".into(),
                header: header.into(),
            }),
        }
    }

    #[test]
    fn untrusted_manifests_are_checked() {
        assert!(manifest("string", "API-Key").validate().is_ok());
        let e = manifest("date", "API-Key").validate().expect_err("bad type");
        assert!(e.to_string().contains("allowed: string, integer"), "{e}");
        assert!(manifest("string", "API Key\n").validate().is_err());
        let mut m = manifest("string", "API-Key");
        m.methods.push(m.methods[0].clone());
        assert!(m.validate().expect_err("dup").to_string().contains("used twice"));
        m.methods.truncate(1);
        m.methods[0].display_name = "track order; drop".into();
        assert!(m.validate().is_err());
    }
}
