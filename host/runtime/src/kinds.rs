//! Integration kinds: where each kind's API lives and which header carries
//! its key. This is the trust boundary for the merchant's key.
//!
//! An action component is untrusted code from an author the operator may not
//! know. If it could choose where the key goes, a component that calls itself
//! `shipstation` and declares `default-base-url = "https://collect.attacker.example"`
//! would receive the merchant's ShipStation key on its first call; one that
//! declares `http://127.0.0.1:NNNN` would reach the operator's loopback
//! services; one that asks for the key in `Origin` or `Referer` would have it
//! reflected back by ordinary upstreams. So the component decides nothing:
//!
//! - the **registry** maps a kind to its API's base URL and credential header:
//!   built in (`shipstation` → `https://api.shipstation.com`, `API-Key`) or
//!   declared by the operator (`[[kind]]` in `actionbox.toml`, or `--base-url`
//!   and `--credential-header` on the command line);
//! - the key is sent only to the operator's base URL (the integration's
//!   `base_url`) or the registry's, in the registry's header;
//! - what the manifest says (`default-base-url`, `credential.header`) is a
//!   *request*: [`KindRegistry::admit`] refuses a component whose request
//!   disagrees with the registry, with an error that names the line to write.
//!   There is no silent fallback to the component's own default.
//!
//! Which headers may carry a key at all (the deny list) is the outbound
//! policy's: [`CredentialHeader`] in `outbound/policy.rs`.

use crate::error::guest_text;
use crate::integration::IntegrationSettings;
use crate::manifest::Manifest;
use crate::outbound::{BaseUrl, CredentialHeader};
use crate::secret::ApiKey;
use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// The credential of a kind: which header, what it is called, and where the
/// CLI reads it by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindCredential {
    /// The header the key is sent in.
    pub header: CredentialHeader,
    /// What people call it, e.g. "ShipStation API V2 key".
    pub name: String,
    /// Environment variable the CLI reads the key from when no other source
    /// is given, e.g. `SHIPSTATION_API_KEY`.
    pub default_env: Option<String>,
}

/// One integration kind: where its API lives and how its key is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationKind {
    /// Kind id, as components name it in their manifest (`shipstation`).
    pub name: String,
    /// Where the kind's API lives; an integration's own `base_url` overrides it.
    pub base_url: BaseUrl,
    /// How the key is sent; `None`: this kind sends no key.
    pub credential: Option<KindCredential>,
    /// Where the operator declared it (`actionbox.toml:12`, `--base-url`);
    /// `None` for built-in kinds. Quoted in errors.
    pub declared_at: Option<String>,
}

impl IntegrationKind {
    /// The settings a call of this kind runs with: `base_url` (the
    /// integration's own, from the operator) or the kind's, the kind's
    /// credential header, and `api_key`; default timeout and limits. The one
    /// place settings are built from a kind, for the CLI and the catalog.
    pub fn settings(&self, base_url: Option<BaseUrl>, api_key: Option<ApiKey>) -> IntegrationSettings {
        let mut settings = IntegrationSettings::new(base_url.unwrap_or_else(|| self.base_url.clone()), api_key);
        settings.credential_header = self.credential.as_ref().map(|c| c.header.clone());
        settings
    }
}

/// The kinds a host knows: built in, plus what the operator declared.
#[derive(Debug, Clone)]
pub struct KindRegistry {
    kinds: BTreeMap<String, IntegrationKind>,
}

/// The built-in ShipStation kind's id.
pub const SHIPSTATION: &str = "shipstation";

impl KindRegistry {
    /// The kinds every host knows.
    pub fn builtin() -> Self {
        let mut kinds = BTreeMap::new();
        let shipstation = IntegrationKind {
            name: SHIPSTATION.into(),
            base_url: BaseUrl {
                scheme: "https".into(),
                host: "api.shipstation.com".into(),
                port: 443,
                path_prefix: String::new(),
            },
            credential: Some(KindCredential {
                header: CredentialHeader::from_static("api-key"),
                name: "ShipStation API V2 key".into(),
                default_env: Some("SHIPSTATION_API_KEY".into()),
            }),
            declared_at: None,
        };
        kinds.insert(shipstation.name.clone(), shipstation);
        Self { kinds }
    }

    /// The built-in kind called `name`, from a registry built once per
    /// process (the invoke path asks on every call).
    pub fn builtin_kind(name: &str) -> Option<&'static IntegrationKind> {
        static BUILTIN: std::sync::OnceLock<KindRegistry> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(Self::builtin).get(name)
    }

    /// Add an operator-declared kind. Built-in kinds cannot be redefined (an
    /// integration's `base_url` points one elsewhere).
    pub fn declare(&mut self, kind: IntegrationKind) -> Result<()> {
        if let Some(existing) = self.kinds.get(&kind.name) {
            match &existing.declared_at {
                None => bail!(
                    "kind `{}` is built in (its API is {}); set `base_url` on the integration instead of declaring the kind",
                    kind.name,
                    existing.base_url
                ),
                Some(at) => bail!("kind `{}` is declared twice (first at {at})", kind.name),
            }
        }
        self.kinds.insert(kind.name.clone(), kind);
        Ok(())
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&IntegrationKind> {
        self.kinds.get(name)
    }

    /// Check what a component asks for against the registry. Returns its
    /// kind; refuses an unknown kind (naming the `[[kind]]` lines to add), a
    /// default base URL other than the kind's, and a credential header other
    /// than the kind's (or one on the deny list, whatever the kind).
    pub fn admit(&self, manifest: &Manifest) -> Result<&IntegrationKind> {
        let kind_id = guest_text(&manifest.integration, 64);
        self.check_requests(manifest)?;
        let Some(kind) = self.get(&manifest.integration) else {
            let header = manifest
                .credential
                .as_ref()
                .map(|c| format!("\ncredential_header = \"{}\"", guest_text(&c.header, 64)))
                .unwrap_or_default();
            bail!(
                "the component is a `{kind_id}` action, a kind this host does not know, so nothing says where its \
                 key may go; declare it in actionbox.toml:\n[[kind]]\nname = \"{kind_id}\"\nbase_url = \"https://…\"{header}\n\
                 (on the command line: --base-url URL and --credential-header NAME)"
            );
        };
        Ok(kind)
    }

    /// The checks of [`KindRegistry::admit`] that need no declaration: a
    /// known kind's requests must match it, and no kind may ask for a denied
    /// header. `actionbox describe` runs only these.
    pub fn check_requests(&self, manifest: &Manifest) -> Result<()> {
        let kind_id = guest_text(&manifest.integration, 64);
        if let Some(cred) = &manifest.credential {
            let requested = guest_text(&cred.header, 64);
            if let Err(e) = CredentialHeader::new(&cred.header) {
                bail!("the component asks to receive its key in `{requested}`, which the host refuses: {e:#}");
            }
            if let Some(kind) = self.get(&manifest.integration) {
                match &kind.credential {
                    Some(k) if k.header.matches(&cred.header) => {}
                    Some(k) => bail!(
                        "the component asks to receive the {} in header `{requested}`, but kind `{kind_id}` sends it \
                         in `{}`{}; the host never lets a component choose; rebuild the component with credential \
                         header `{}`{}",
                        k.name,
                        k.header,
                        origin_note(kind),
                        k.header,
                        fix_note(kind, "credential_header")
                    ),
                    None => bail!(
                        "the component asks for a key in header `{requested}`, but kind `{kind_id}`{} sends no key; \
                         add credential_header to its [[kind]] entry if it needs one",
                        origin_note(kind)
                    ),
                }
            }
        }
        let Some(kind) = self.get(&manifest.integration) else {
            return Ok(());
        };
        let default = manifest.default_base_url.trim();
        if !default.is_empty() {
            let requested = guest_text(default, 128);
            let same = BaseUrl::parse(default).is_ok_and(|d| d.same_origin(&kind.base_url));
            if !same {
                bail!(
                    "the component asks for its default base URL to be `{requested}`, but kind `{kind_id}`'s API is \
                     {}{}; keys go only where the operator or the registry says; rebuild the component with \
                     default-base-url {}{}",
                    kind.base_url,
                    origin_note(kind),
                    kind.base_url,
                    fix_note(kind, "base_url")
                );
            }
        }
        Ok(())
    }
}

fn origin_note(kind: &IntegrationKind) -> String {
    match &kind.declared_at {
        None => " (built in)".into(),
        Some(at) => format!(" (declared at {at})"),
    }
}

fn fix_note(kind: &IntegrationKind, field: &str) -> String {
    match &kind.declared_at {
        None => String::new(),
        Some(at) => format!(", or change `{field}` of kind `{}` at {at}", kind.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{CredentialSpec, MethodSpec};

    fn manifest(kind: &str, default: &str, header: Option<&str>) -> Manifest {
        Manifest {
            integration: kind.into(),
            version: "1".into(),
            methods: vec![MethodSpec {
                name: "m".into(),
                display_name: "m".into(),
                description: "d".into(),
                params: vec![],
            }],
            default_actions: vec![],
            outbound_hosts: vec!["{base-url}".into()],
            default_base_url: default.into(),
            credential: header.map(|h| CredentialSpec {
                name: "key".into(),
                header: h.into(),
            }),
        }
    }

    #[test]
    fn built_in_kinds_send_keys_only_in_headers_the_deny_list_accepts() {
        let r = KindRegistry::builtin();
        for kind in r.kinds.values() {
            if let Some(credential) = &kind.credential {
                let checked = CredentialHeader::new(credential.header.name().as_str()).expect("accepted");
                assert_eq!(checked, credential.header, "{}", kind.name);
            }
        }
        assert!(r.get(SHIPSTATION).and_then(|k| k.credential.as_ref()).is_some());
    }

    #[test]
    fn the_shipstation_component_is_admitted() {
        let r = KindRegistry::builtin();
        let kind = r
            .admit(&manifest("shipstation", "https://api.shipstation.com", Some("API-Key")))
            .expect("admitted");
        assert_eq!(kind.base_url.to_string(), "https://api.shipstation.com");
        assert!(r
            .admit(&manifest(
                "shipstation",
                "https://API.shipstation.com:443/",
                Some("api-key")
            ))
            .is_ok());
    }

    #[test]
    fn a_component_cannot_choose_where_the_key_goes() {
        let r = KindRegistry::builtin();
        for default in [
            "https://collect.attacker.example",
            "http://127.0.0.1:9",
            "https://api.shipstation.com:8443",
            "not a url",
        ] {
            let e = r
                .admit(&manifest("shipstation", default, Some("API-Key")))
                .expect_err("foreign default refused");
            assert!(e.to_string().contains("https://api.shipstation.com"), "{e}");
        }
        let e = r
            .admit(&manifest("shipstation", "https://api.shipstation.com", Some("X-Other")))
            .expect_err("other header refused");
        assert!(e.to_string().contains("api-key"), "{e}");
        let e = r
            .admit(&manifest("shipstation", "", Some("Origin")))
            .expect_err("reflected header refused");
        assert!(e.to_string().contains("CORS"), "{e}");
        let e = r
            .admit(&manifest("hostile", "", Some("Referer")))
            .expect_err("denied header refused for unknown kinds too");
        assert!(e.to_string().contains("Referer"), "{e}");
    }

    #[test]
    fn unknown_kinds_need_a_declaration() {
        let mut r = KindRegistry::builtin();
        let e = r
            .admit(&manifest("hostile", "http://127.0.0.1:9", Some("API-Key")))
            .expect_err("unknown kind");
        let text = e.to_string();
        assert!(
            text.contains("[[kind]]") && text.contains("name = \"hostile\""),
            "{text}"
        );
        assert!(text.contains("credential_header = \"API-Key\""), "{text}");
        r.declare(IntegrationKind {
            name: "hostile".into(),
            base_url: BaseUrl::parse("http://127.0.0.1:9").expect("url"),
            credential: Some(KindCredential {
                header: CredentialHeader::new("API-Key").expect("header"),
                name: "test key".into(),
                default_env: None,
            }),
            declared_at: Some("actionbox.toml:3".into()),
        })
        .expect("declared");
        assert!(r
            .admit(&manifest("hostile", "http://127.0.0.1:9", Some("API-Key")))
            .is_ok());
        let e = r
            .admit(&manifest("hostile", "http://127.0.0.1:10", Some("API-Key")))
            .expect_err("other default");
        assert!(e.to_string().contains("actionbox.toml:3"), "{e}");
    }

    #[test]
    fn built_in_kinds_cannot_be_redeclared() {
        let mut r = KindRegistry::builtin();
        let e = r
            .declare(IntegrationKind {
                name: "shipstation".into(),
                base_url: BaseUrl::parse("https://evil.example").expect("url"),
                credential: None,
                declared_at: Some("x:1".into()),
            })
            .expect_err("built in");
        assert!(e.to_string().contains("built in"), "{e}");
    }

    #[test]
    fn refusals_defuse_guest_text() {
        let r = KindRegistry::builtin();
        let evil = format!("https://x\u{1b}[2J{}", "a".repeat(100_000));
        let e = r
            .admit(&manifest("shipstation", &evil, Some("API-Key")))
            .expect_err("refused");
        let text = e.to_string();
        assert!(!text.contains('\u{1b}') && text.len() < 1024, "{}", text.len());
    }
}
