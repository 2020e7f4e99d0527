//! Registered components, shared by every workspace: compiled once per
//! replica on one engine and kept by content address, so 10,000 workspaces
//! on the ShipStation component hold one compiled component and one
//! pre-instance between them.
//!
//! A component is admitted at registration by the checks `actionbox check`
//! runs (`actionbox_runtime::check`), which include what a config file's
//! component gets at load: it must be an `actionbox:action@0.2.0` component
//! that links against this host, describe itself fast and within bounds, and
//! be of a kind the operator's registry admits. Bytes read back from the store are checked
//! against their SHA-256 before they are compiled, so a row changed behind
//! the server's back is refused rather than run under another name.

use crate::catalog::ComponentSource;
use crate::config::ComponentRef;
use actionbox_runtime::check::{check_bytes, CheckOptions, CheckReport, Level};
use actionbox_runtime::component::ActionComponent;
use actionbox_runtime::engine::ActionEngine;
use actionbox_runtime::kinds::KindRegistry;
use actionbox_store::{ComponentInfo, Store};
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Largest component accepted for registration, in bytes. The ShipStation
/// component is ~230 KB; the cap bounds what one upload makes the server
/// hold and compile.
pub const MAX_COMPONENT_BYTES: usize = 32 * 1024 * 1024;

/// Why registration refused a component: the check's report. The admin API
/// answers it as 422 with the findings (`server/workspace_api.rs`).
#[derive(Debug)]
pub struct ComponentRefused(pub CheckReport);

impl ComponentRefused {
    /// The error body: `{"kind": "component-refused", "message", "request_id"}`
    /// (the shape of every error) with the report's `ok`, `component`,
    /// `asks` and `findings` beside them.
    pub fn problem(&self) -> serde_json::Value {
        let mut body = crate::present::problem("component-refused", self.0.summary());
        if let (Some(body), Ok(serde_json::Value::Object(report))) =
            (body.as_object_mut(), serde_json::to_value(&self.0))
        {
            body.extend(report);
        }
        body
    }
}

impl std::fmt::Display for ComponentRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.summary())
    }
}

impl std::error::Error for ComponentRefused {}

/// The shared, compiled components of this replica.
pub struct ComponentRegistry {
    engine: ActionEngine,
    store: Store,
    kinds: KindRegistry,
    loaded: tokio::sync::Mutex<HashMap<String, Arc<ActionComponent>>>,
}

impl ComponentRegistry {
    /// Components of `store`, compiled on `engine`, admitted by `kinds`.
    pub fn new(engine: ActionEngine, store: Store, kinds: KindRegistry) -> Self {
        Self {
            engine,
            store,
            kinds,
            loaded: Default::default(),
        }
    }

    /// How many distinct components this replica has compiled.
    pub async fn compiled(&self) -> usize {
        self.loaded.lock().await.len()
    }

    /// Check `bytes` as a component this host would run (`actionbox check`'s
    /// checks, the kind registry's kinds only) and register it; `true` when it
    /// was new. A component the check refuses is a [`ComponentRefused`].
    pub async fn register(&self, bytes: &[u8], actor: &str) -> Result<(ComponentInfo, bool)> {
        let sha = hex(&Sha256::digest(bytes));
        let origin = format!("sha256:{sha}");
        let options = CheckOptions {
            max_component_bytes: MAX_COMPONENT_BYTES as u64,
            kinds: &self.kinds,
            unknown_kind: Level::Error,
        };
        let (report, component) = check_bytes(&self.engine, bytes, Path::new(&origin), &options)
            .await
            .into_parts();
        let Some(component) = component else {
            return Err(ComponentRefused(report).into());
        };
        let manifest = component.manifest();
        self.kinds.admit(manifest)?;
        let summary = serde_json::to_value(manifest).context("cannot summarize the manifest")?;
        let (info, created) = self
            .store
            .put_component(bytes, &manifest.integration, &summary, actor)
            .await?;
        if info.sha256 != sha {
            bail!("the store filed the component under another digest; it was not registered");
        }
        self.loaded.lock().await.insert(sha, Arc::new(component));
        Ok((info, created))
    }

    /// The compiled component with digest `sha`, compiled now if this replica
    /// has not yet.
    async fn get(&self, sha: &str) -> Result<Arc<ActionComponent>> {
        let mut loaded = self.loaded.lock().await;
        if let Some(c) = loaded.get(sha) {
            return Ok(c.clone());
        }
        let bytes = self.store.component_bytes(sha).await?.ok_or_else(|| {
            anyhow!("no component is registered as sha256:{sha}; register it (POST /v1/admin/components) first")
        })?;
        if hex(&Sha256::digest(&bytes)) != sha {
            bail!("the stored bytes of sha256:{sha} do not match their digest; register the component again");
        }
        let origin = format!("sha256:{sha}");
        let c = Arc::new(self.engine.load_bytes(&bytes, Path::new(&origin)).await?);
        loaded.insert(sha.to_string(), c.clone());
        Ok(c)
    }
}

impl ComponentSource for ComponentRegistry {
    async fn component(&self, reference: &ComponentRef, at: &str) -> Result<Arc<ActionComponent>> {
        match reference {
            ComponentRef::Registered(sha) => self.get(sha).await.with_context(|| at.to_string()),
            ComponentRef::Path(_) => {
                bail!("{at} field `component`: a workspace names registered components (sha256:…), not files")
            }
        }
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
