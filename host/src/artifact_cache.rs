//! Precompiled components, cached so a process loads an action without
//! compiling it again.
//!
//! An artifact is named by the SHA-256 of the component bytes and by a hash
//! of the engine's compatibility (wasmtime version and every setting that
//! affects code generation), so a changed component or a differently
//! configured engine never meets a stale or foreign artifact: it simply has
//! another name. Loading native code is `unsafe` in wasmtime; this module only
//! ever loads files it wrote itself, into a directory it creates with owner-
//! only permissions. An artifact that fails to load is recompiled and
//! replaced.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Environment variable naming the cache directory; `off` disables caching.
pub const CACHE_DIR_ENV: &str = "ACTIONBOX_CACHE_DIR";

/// Where artifacts live, or `None` when caching is off.
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os(CACHE_DIR_ENV) {
        Some(v) if v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("actionbox")),
    }
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Compiled now (and, if caching is on, stored).
    Compiled,
    /// Loaded from a precompiled artifact.
    Cached,
}

/// The artifact file for `bytes` under `engine` in `dir`.
pub fn artifact_path(dir: &Path, engine: &Engine, bytes: &[u8]) -> PathBuf {
    let digest = Sha256::digest(bytes);
    let component: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{component}-{:016x}.cwasm", h.finish()))
}

/// Load `bytes` as a component: from its artifact when one exists and loads,
/// otherwise by compiling it (and storing the artifact when `dir` is set).
pub fn load(engine: &Engine, bytes: &[u8], dir: Option<&Path>) -> Result<(Component, Provenance)> {
    let Some(dir) = dir else {
        return Ok((compile(engine, bytes)?, Provenance::Compiled));
    };
    let path = artifact_path(dir, engine, bytes);
    if path.exists() {
        // SAFETY: the file is named by the SHA-256 of these component bytes
        // and the engine's compatibility hash, and only `store` writes such
        // files (atomically, in a directory only this user can write).
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok((c, Provenance::Cached)),
            Err(e) => tracing::warn!("ignoring unusable precompiled artifact {}: {e}", path.display()),
        }
    }
    let component = compile(engine, bytes)?;
    if let Err(e) = store(engine, bytes, &path) {
        tracing::warn!("could not cache the compiled component in {}: {e:#}", dir.display());
    }
    Ok((component, Provenance::Compiled))
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    Component::new(engine, bytes).map_err(anyhow::Error::from)
}

fn store(engine: &Engine, bytes: &[u8], path: &Path) -> Result<()> {
    let dir = path.parent().context("artifact path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let artifact = engine.precompile_component(bytes).map_err(anyhow::Error::from)?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, artifact).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
