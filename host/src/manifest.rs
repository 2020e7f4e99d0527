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

/// The method an integration's Test button calls: one cheap authenticated
/// request that proves the key works.
pub const TEST_CONNECTION_METHOD: &str = "test-connection";

/// JSON Schema types a parameter may have.
pub const PARAM_TYPES: [&str; 6] = ["string", "integer", "number", "boolean", "object", "array"];

// Bounds on a manifest. It is guest output that the host turns into tool
// definitions (sent to every assistant, kept per catalog entry), schemas and
// messages, so an action must not be able to make any of those arbitrarily
// large. Each bound is far above what a real integration needs.

/// Most methods one action may offer: a tool list longer than this is no
/// longer one integration, and every method becomes a tool definition.
pub const MAX_METHODS: usize = 64;
/// Most parameters one method may take (each becomes a schema property).
pub const MAX_PARAMS_PER_METHOD: usize = 32;
/// Longest integration id, method or parameter name, and version, in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// Longest method description, in bytes: a few paragraphs for an assistant.
pub const MAX_METHOD_DESCRIPTION_BYTES: usize = 4 * 1024;
/// Longest parameter description, in bytes.
pub const MAX_PARAM_DESCRIPTION_BYTES: usize = 1024;
/// Longest parameter example (JSON text), in bytes.
pub const MAX_EXAMPLE_BYTES: usize = 1024;
/// Most outbound host entries: an integration talks to a handful of hosts.
pub const MAX_OUTBOUND_HOSTS: usize = 16;
/// Longest outbound host entry, in bytes: the DNS limit for a name.
pub const MAX_HOST_BYTES: usize = 253;
/// Longest default base URL, in bytes: a URL with room for a path prefix.
pub const MAX_BASE_URL_BYTES: usize = 2 * 1024;
/// Longest credential name (what the operator is asked for), in bytes.
pub const MAX_CREDENTIAL_NAME_BYTES: usize = 128;
/// Longest credential header name, in bytes.
pub const MAX_CREDENTIAL_HEADER_BYTES: usize = 64;
/// How much of a refused guest string an error message quotes, in bytes
/// (escaped by [`guest_text`](crate::error::guest_text), then cut).
pub const QUOTED_GUEST_TEXT_BYTES: usize = 64;

/// Whether `name` is an id the host accepts for kinds, methods, parameters
/// and actions: 1–64 of `A-Z a-z 0-9 _ -`, the rule OpenAI and MCP clients
/// share for tool names (so any of them can become one).
pub fn is_identifier(name: &str) -> bool {
    (1..=MAX_ID_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Guest text as an error message may quote it: escaped and short, so a
/// refusal never prints terminal escapes or megabytes.
fn quoted(text: &str) -> String {
    crate::error::guest_text(text, QUOTED_GUEST_TEXT_BYTES)
}

/// Refuse `text` (called `what`) when it is longer than `max` bytes.
fn ensure_len(what: &dyn std::fmt::Display, text: &str, max: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        text.len() <= max,
        "{what} is {} bytes, over the limit of {max} bytes",
        text.len()
    );
    Ok(())
}

/// Refuse `count` items of `what` when there are more than `max`.
fn ensure_count(what: &dyn std::fmt::Display, count: usize, max: usize) -> anyhow::Result<()> {
    anyhow::ensure!(count <= max, "{what}: {count}, over the limit of {max}");
    Ok(())
}

impl Manifest {
    /// Check what an untrusted action says about itself before the host
    /// builds tool schemas, headers or messages from it: the shape (names,
    /// types, JSON examples) and the size (every `MAX_*` bound above). An
    /// error quotes guest text only through [`guest_text`](crate::error::guest_text),
    /// cut to [`QUOTED_GUEST_TEXT_BYTES`].
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::{bail, ensure};
        ensure!(
            is_identifier(&self.integration),
            "the manifest's integration id `{}` ({} bytes) is not 1-{MAX_ID_BYTES} of [A-Za-z0-9_-]",
            quoted(&self.integration),
            self.integration.len()
        );
        ensure_len(&"the manifest's version", &self.version, MAX_ID_BYTES)?;
        ensure_count(&"the manifest's number of methods", self.methods.len(), MAX_METHODS)?;
        ensure!(!self.methods.is_empty(), "the manifest offers no methods");
        ensure_count(
            &"the manifest's number of outbound hosts",
            self.outbound_hosts.len(),
            MAX_OUTBOUND_HOSTS,
        )?;
        for host in &self.outbound_hosts {
            ensure_len(&format_args!("outbound host `{}`", quoted(host)), host, MAX_HOST_BYTES)?;
        }
        ensure_len(
            &format_args!("the default base URL `{}`", quoted(&self.default_base_url)),
            &self.default_base_url,
            MAX_BASE_URL_BYTES,
        )?;
        let mut names = std::collections::BTreeSet::new();
        for m in &self.methods {
            let own: std::collections::BTreeSet<&String> = [&m.name, &m.display_name].into();
            for name in own {
                ensure!(
                    is_identifier(name),
                    "method name `{}` ({} bytes) is not 1-{MAX_ID_BYTES} of [A-Za-z0-9_-]",
                    quoted(name),
                    name.len()
                );
                ensure!(names.insert(name.clone()), "method name `{name}` is used twice");
            }
            ensure_len(
                &format_args!("method `{}`: the description", m.name),
                &m.description,
                MAX_METHOD_DESCRIPTION_BYTES,
            )?;
            ensure_count(
                &format_args!("method `{}`: number of parameters", m.name),
                m.params.len(),
                MAX_PARAMS_PER_METHOD,
            )?;
            let mut params = std::collections::BTreeSet::new();
            for p in &m.params {
                ensure!(
                    is_identifier(&p.name),
                    "method `{}`: parameter name `{}` ({} bytes) is not 1-{MAX_ID_BYTES} of [A-Za-z0-9_-]",
                    m.name,
                    quoted(&p.name),
                    p.name.len()
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
                        quoted(&p.json_type),
                        PARAM_TYPES.join(", ")
                    );
                }
                ensure_len(
                    &format_args!("method `{}`: parameter `{}`: the description", m.name, p.name),
                    &p.description,
                    MAX_PARAM_DESCRIPTION_BYTES,
                )?;
                if let Some(example) = &p.example {
                    ensure_len(
                        &format_args!("method `{}`: parameter `{}`: the example", m.name, p.name),
                        example,
                        MAX_EXAMPLE_BYTES,
                    )?;
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
            ensure_len(&"the credential name", &c.name, MAX_CREDENTIAL_NAME_BYTES)?;
            ensure_len(
                &format_args!("the credential header `{}`", quoted(&c.header)),
                &c.header,
                MAX_CREDENTIAL_HEADER_BYTES,
            )?;
            ensure!(
                http::HeaderName::from_bytes(c.header.as_bytes()).is_ok(),
                "the credential header `{}` is not a valid HTTP header name",
                quoted(&c.header)
            );
        }
        Ok(())
    }

    /// Bytes of text the manifest holds (every string summed), for callers
    /// that keep or forward manifests and want to account for them.
    pub fn approx_bytes(&self) -> usize {
        let methods: usize = self
            .methods
            .iter()
            .map(|m| {
                let params: usize = m
                    .params
                    .iter()
                    .map(|p| {
                        p.name.len()
                            + p.json_type.len()
                            + p.description.len()
                            + p.example.as_ref().map_or(0, String::len)
                    })
                    .sum();
                m.name.len() + m.display_name.len() + m.description.len() + params
            })
            .sum();
        let hosts: usize = self.outbound_hosts.iter().map(String::len).sum();
        let credential = self.credential.as_ref().map_or(0, |c| c.name.len() + c.header.len());
        self.integration.len() + self.version.len() + methods + hosts + self.default_base_url.len() + credential
    }

    /// The method behind an integration's Test button, if the action has one.
    pub fn test_connection(&self) -> Option<&MethodSpec> {
        self.method(TEST_CONNECTION_METHOD)
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

    fn ok() -> Manifest {
        manifest("string", "API-Key")
    }

    /// The refusal of `m`, checked to name `needle`.
    fn refusal(m: &Manifest, needle: &str) -> String {
        let e = m.validate().expect_err(needle).to_string();
        assert!(e.contains(needle), "{e}");
        e
    }

    #[test]
    fn counts_over_their_bound_are_refused() {
        let mut m = ok();
        m.methods = (0..MAX_METHODS)
            .map(|i| MethodSpec {
                name: format!("m{i}"),
                display_name: format!("d{i}"),
                ..ok().methods[0].clone()
            })
            .collect();
        m.validate().expect("exactly MAX_METHODS");
        m.methods.push(MethodSpec {
            name: "one-more".into(),
            display_name: "oneMore".into(),
            ..ok().methods[0].clone()
        });
        refusal(&m, "methods: 65, over the limit of 64");

        let mut m = ok();
        let param = m.methods[0].params[0].clone();
        m.methods[0].params = (0..MAX_PARAMS_PER_METHOD)
            .map(|i| ParamSpec {
                name: format!("p{i}"),
                ..param.clone()
            })
            .collect();
        m.validate().expect("exactly MAX_PARAMS_PER_METHOD");
        m.methods[0].params.push(ParamSpec {
            name: "extra".into(),
            ..param
        });
        refusal(
            &m,
            "method `track-order`: number of parameters: 33, over the limit of 32",
        );

        let mut m = ok();
        m.outbound_hosts = vec!["api.example.com".into(); MAX_OUTBOUND_HOSTS];
        m.validate().expect("exactly MAX_OUTBOUND_HOSTS");
        m.outbound_hosts.push("one.more.example".into());
        refusal(&m, "outbound hosts: 17, over the limit of 16");
    }

    #[test]
    fn texts_over_their_bound_are_refused() {
        type Setter = fn(&mut Manifest, String);
        let cases: [(Setter, usize, &str); 9] = [
            (
                |m, t| m.version = t,
                MAX_ID_BYTES,
                "version is 65 bytes, over the limit of 64",
            ),
            (
                |m, t| m.methods[0].description = t,
                MAX_METHOD_DESCRIPTION_BYTES,
                "method `track-order`: the description is 4097 bytes, over the limit of 4096",
            ),
            (
                |m, t| m.methods[0].params[0].description = t,
                MAX_PARAM_DESCRIPTION_BYTES,
                "parameter `order_id`: the description is 1025 bytes, over the limit of 1024",
            ),
            (
                // A JSON string of exactly the given length.
                |m, t| m.methods[0].params[0].example = Some(format!("\"{}\"", &t[2..])),
                MAX_EXAMPLE_BYTES,
                "parameter `order_id`: the example is 1025 bytes, over the limit of 1024",
            ),
            (
                |m, t| m.outbound_hosts[0] = t,
                MAX_HOST_BYTES,
                "bytes, over the limit of 253",
            ),
            (
                |m, t| m.default_base_url = format!("https://{}", &t[8..]),
                MAX_BASE_URL_BYTES,
                "the default base URL `https://",
            ),
            (
                |m, t| m.credential.as_mut().expect("credential").name = t,
                MAX_CREDENTIAL_NAME_BYTES,
                "the credential name is 129 bytes, over the limit of 128",
            ),
            (
                |m, t| m.credential.as_mut().expect("credential").header = t,
                MAX_CREDENTIAL_HEADER_BYTES,
                "the credential header `",
            ),
            (
                |m, t| m.methods[0].name = t,
                MAX_ID_BYTES,
                "(65 bytes) is not 1-64 of [A-Za-z0-9_-]",
            ),
        ];
        for (set, max, needle) in cases {
            let mut m = ok();
            set(&mut m, "a".repeat(max));
            m.validate()
                .unwrap_or_else(|e| panic!("{max} bytes is allowed ({needle}): {e}"));
            let mut m = ok();
            set(&mut m, "a".repeat(max + 1));
            refusal(&m, needle);
        }
    }

    #[test]
    fn refusals_quote_guest_text_escaped_and_short() {
        let hostile = format!("\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}{}", "x".repeat(1024 * 1024));
        type Setter = fn(&mut Manifest, String);
        // (field, setter, whether `validate` checks its content, not only its length)
        let fields: [(&str, Setter, bool); 9] = [
            ("integration", |m, t| m.integration = t, true),
            ("version", |m, t| m.version = t, false),
            ("method name", |m, t| m.methods[0].name = t, true),
            ("display name", |m, t| m.methods[0].display_name = t, true),
            ("parameter name", |m, t| m.methods[0].params[0].name = t, true),
            ("JSON type", |m, t| m.methods[0].params[0].json_type = t, true),
            ("outbound host", |m, t| m.outbound_hosts[0] = t, false),
            ("default base URL", |m, t| m.default_base_url = t, false),
            (
                "credential header",
                |m, t| m.credential.as_mut().expect("credential").header = t,
                true,
            ),
        ];
        for (field, set, content_checked) in fields {
            let mut m = ok();
            set(&mut m, hostile.clone());
            let e = format!("{:#}", m.validate().expect_err(field));
            assert!(e.len() < 1024, "{field}: {} bytes", e.len());
            assert!(
                !e.contains('\u{1b}') && !e.contains('\u{7}') && !e.contains('\u{202e}'),
                "{field}: {e}"
            );
            if !content_checked {
                continue;
            }
            // A short hostile value is refused for its content, quoted escaped.
            let mut m = ok();
            set(&mut m, "\u{1b}[2Jx\u{202e}".into());
            let e = format!("{:#}", m.validate().expect_err(field));
            assert!(!e.contains('\u{1b}') && !e.contains('\u{202e}'), "{field}: {e}");
        }
    }

    #[test]
    fn approx_bytes_sums_every_string() {
        let m = ok();
        // shipstation 11 + "1" 1 + track-order 11 + trackOrder 10 + "d" 1
        // + order_id 8 + string 6 + "d" 1 + "\"1\"" 3 + {base-url} 10
        // + https://api.shipstation.com 27 + key 3 + API-Key 7
        assert_eq!(m.approx_bytes(), 99);
        let mut bigger = m.clone();
        bigger.methods[0].params[0].description = "x".repeat(1000);
        assert_eq!(bigger.approx_bytes(), 99 + 999);
    }
}
