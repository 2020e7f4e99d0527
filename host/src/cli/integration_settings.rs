//! The settings `run` and `test-connection` call a component with, from
//! their flags ([`IntegrationArgs`]) and the built-in kind registry. Where
//! the key goes is the operator's call or the registry's, never the
//! component's: a built-in kind sends its key in its own header, to its own
//! API unless `--base-url` says otherwise; for a kind the host does not know,
//! the operator names the base URL and, if a key is needed, the header.

use super::IntegrationArgs;
use actionbox_runtime::component::ActionComponent;
use actionbox_runtime::deadline::ActionTimeout;
use actionbox_runtime::integration::IntegrationSettings;
use actionbox_runtime::kinds::{IntegrationKind, KindCredential, KindRegistry};
use actionbox_runtime::outbound::{BaseUrl, CredentialHeader, OutboundMode, Replay};
use actionbox_runtime::secret::ApiKey;
use anyhow::{bail, Context, Result};
use std::sync::Arc;

impl IntegrationArgs {
    /// The operator's settings for `action`: base URL and credential header
    /// from these flags or the kind registry, the key from the named source.
    pub(super) fn settings(&self, action: &ActionComponent) -> Result<IntegrationSettings> {
        let manifest = action.manifest();
        let timeout = ActionTimeout::from_secs(self.timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
        let registry = KindRegistry::builtin();
        let operator_base = self
            .base_url
            .as_deref()
            .map(|b| BaseUrl::parse(b).context("--base-url"))
            .transpose()?;
        let (kind, operator_base) = match registry.get(&manifest.integration) {
            Some(_) => {
                let kind = registry.admit(manifest)?;
                if let (Some(given), Some(cred)) = (&self.credential_header, &kind.credential) {
                    if !cred.header.matches(given) {
                        bail!(
                            "--credential-header: kind `{}` sends its key in `{}`; the flag is only for kinds this \
                             host does not know",
                            kind.name,
                            cred.header
                        );
                    }
                }
                (kind.clone(), operator_base)
            }
            None => (self.undeclared_kind(&registry, manifest, operator_base)?, None),
        };
        let credential = kind.credential.clone();
        let api_key = match (&self.api_key_file, &self.api_key_env) {
            (Some(path), _) => Some(ApiKey::from_file(path)?),
            (None, Some(var)) => ApiKey::from_env(var).context("--api-key-env")?,
            (None, None) => match credential.as_ref().and_then(|c| c.default_env.as_deref()) {
                Some(var) => ApiKey::from_env(var)?,
                None => None,
            },
        };
        // A replayed call sends nothing, so it needs no key.
        if let (None, Some(wanted), None) = (&api_key, &manifest.credential, &self.replay) {
            let env = credential
                .as_ref()
                .and_then(|c| c.default_env.clone())
                .map(|var| format!("set the {var} environment variable, "))
                .unwrap_or_default();
            bail!(
                "this action needs a {}: {env}pass --api-key-env VAR or --api-key-file PATH",
                credential.as_ref().map_or_else(
                    || actionbox_runtime::error::guest_text(&wanted.name, 64),
                    |c| c.name.clone()
                )
            );
        }
        let mut settings = kind.settings(operator_base, api_key);
        settings.timeout = timeout;
        if let Some(path) = &self.replay {
            settings.outbound_mode = OutboundMode::Replay(Arc::new(Replay::load(path).context("--replay")?));
        }
        Ok(settings)
    }

    /// A kind the host does not know: the operator must say where its API
    /// is (`--base-url`) and, if it needs a key, the header
    /// (`--credential-header`); the component's own default is never used.
    fn undeclared_kind(
        &self,
        registry: &KindRegistry,
        manifest: &actionbox_runtime::manifest::Manifest,
        operator_base: Option<BaseUrl>,
    ) -> Result<IntegrationKind> {
        registry.check_requests(manifest)?;
        let kind = actionbox_runtime::error::guest_text(&manifest.integration, 64);
        let Some(base) = operator_base else {
            bail!(
                "the component is a `{kind}` action, a kind this host does not know, so nothing says where its key \
                 may go; pass --base-url URL{}",
                if manifest.credential.is_some() {
                    " and --credential-header NAME"
                } else {
                    ""
                }
            );
        };
        let credential = match (&manifest.credential, &self.credential_header) {
            (None, _) => None,
            (Some(wanted), None) => bail!(
                "the `{kind}` action needs a key; pass --credential-header NAME to say which header carries it \
                 (the component asks for `{}`)",
                actionbox_runtime::error::guest_text(&wanted.header, 64)
            ),
            (Some(wanted), Some(given)) => {
                let header = CredentialHeader::new(given).context("--credential-header")?;
                if !header.matches(&wanted.header) {
                    bail!(
                        "--credential-header is `{header}` but the component asks for its key in `{}`; the key is \
                         sent only in the header you name, so the action would not work",
                        actionbox_runtime::error::guest_text(&wanted.header, 64)
                    );
                }
                Some(KindCredential {
                    header,
                    name: actionbox_runtime::error::guest_text(&wanted.name, 64),
                    default_env: None,
                })
            }
        };
        Ok(IntegrationKind {
            name: manifest.integration.clone(),
            base_url: base,
            credential,
            declared_at: Some("the command line (--base-url, --credential-header)".into()),
        })
    }
}
