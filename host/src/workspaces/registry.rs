//! Registered components, shared by every workspace: compiled once per
//! replica on one engine and kept by content address, so 10,000 workspaces
//! on the ShipStation component hold one compiled component and one
//! pre-instance between them.
//!
//! A component is admitted at registration exactly as a config file's would
//! be at load: it must be an `actionbox:action@0.2.0` component that links
//! against this host, describe itself within bounds, and be of a kind the
//! operator's registry admits. Bytes read back from the store are checked
//! against their SHA-256 before they are compiled, so a row changed behind
//! the server's back is refused rather than run under another name.

use crate::catalog::ComponentSource;
use crate::config::ComponentRef;
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

    /// Check `bytes` as a component this host would run and register it;
    /// `true` when it was new.
    pub async fn register(&self, bytes: &[u8], actor: &str) -> Result<(ComponentInfo, bool)> {
        if bytes.len() > MAX_COMPONENT_BYTES {
            bail!(
                "the component is {} bytes, more than the {MAX_COMPONENT_BYTES} this server accepts",
                bytes.len()
            );
        }
        let sha = hex(&Sha256::digest(bytes));
        let origin = format!("sha256:{sha}");
        let component = self.engine.load_bytes(bytes, Path::new(&origin)).await?;
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
