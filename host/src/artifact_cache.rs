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
            Ok(c) => {
                touch(&path);
                return Ok((c, Provenance::Cached));
            }
            Err(e) => tracing::warn!("ignoring unusable precompiled artifact {}: {e}", path.display()),
        }
    }
    // Compile once: the artifact is both stored and loaded.
    let artifact = engine.precompile_component(bytes).map_err(anyhow::Error::from)?;
    if let Err(e) = store(&artifact, &path) {
        tracing::warn!("could not cache the compiled component in {}: {e:#}", dir.display());
    }
    prune(dir, CACHE_MAX_BYTES);
    // SAFETY: `artifact` was produced just above by this engine.
    let component = unsafe { Component::deserialize(engine, &artifact) }.map_err(anyhow::Error::from)?;
    Ok((component, Provenance::Compiled))
}

/// The cache is trimmed to this size after every store, least recently
/// used artifacts first (a componentize-py action's artifact is ~40 MB).
pub const CACHE_MAX_BYTES: u64 = 1024 * 1024 * 1024;

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    Component::new(engine, bytes).map_err(anyhow::Error::from)
}

/// Mark an artifact as just used (its modification time orders eviction).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Delete the least recently used artifacts until `dir` holds at most
/// `max_bytes` of them, and temporary files left by interrupted writes.
pub fn prune(dir: &Path, max_bytes: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let mut artifacts = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") && modified < hour_ago {
            let _ = std::fs::remove_file(&path);
        } else if name.ends_with(".cwasm") && meta.is_file() {
            artifacts.push((modified, meta.len(), path));
        }
    }
    let mut total: u64 = artifacts.iter().map(|a| a.1).sum();
    artifacts.sort_by_key(|a| a.0);
    for (_, len, path) in artifacts {
        if total <= max_bytes {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            tracing::info!("evicted precompiled artifact {} from the cache", path.display());
            total = total.saturating_sub(len);
        }
    }
}

fn store(artifact: &[u8], path: &Path) -> Result<()> {
    let dir = path.parent().context("artifact path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, artifact).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
