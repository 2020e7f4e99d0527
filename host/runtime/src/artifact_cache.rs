//! Precompiled components, cached so a process loads an action without
//! compiling it again — and without letting the cache become a way in.
//!
//! An artifact is named by the SHA-256 of the component bytes and by a hash
//! of the engine's compatibility (wasmtime version and every setting that
//! affects code generation), so a changed component or a differently
//! configured engine never meets a stale or foreign artifact: it simply has
//! another name.
//!
//! # The threat
//!
//! An artifact is native machine code: wasmtime maps it executable and runs
//! it with no further check (that is why deserializing is `unsafe`). Whoever
//! can put a file under an artifact's name in the cache directory therefore
//! runs code as the user of every later `actionbox` process, outside the
//! sandbox, with the merchant's keys in reach. The name is no secret (it is a
//! hash of the public component). So the cache is used only when nobody else
//! can write into it, and every artifact must prove that this user's
//! `actionbox` wrote it.
//!
//! # The checks, and why
//!
//! - **The directory** (`lstat`, never following a link): it must be a real
//!   directory, not a symbolic link (a link can be re-pointed by whoever owns
//!   it), owned by the current user, and not group- or world-writable (anyone
//!   who can create entries can plant an artifact). A missing directory is
//!   created with mode 0700 from the start (no window in which it is open)
//!   and gets a marker file, [`MARKER_FILE`].
//! - **The marker**: the host changes only what it made. It never chmods a
//!   directory, and it prunes, or deletes a rejected artifact, only in a
//!   directory that carries its marker — so pointing [`CACHE_DIR_ENV`] at a
//!   directory of your own never costs you a file.
//! - **The key**: every artifact carries an HMAC-SHA256 tag under a per-user
//!   32-byte random key, [`KEY_FILE`] in the cache directory. It is created
//!   under a temporary name with `O_CREAT|O_EXCL` and mode 0600, then linked
//!   into place (linking fails if another process got there first, and then
//!   that process's key is read: a key file is never seen half written). It is
//!   read with `O_NOFOLLOW` and refused unless it is a regular file owned by
//!   the user, readable and writable by nobody else, and exactly 32 bytes.
//! - **The artifact**: opened with `O_NOFOLLOW` (a link to some other file is
//!   never read), then checked on the open handle (`fstat`, so it cannot be
//!   swapped between check and read): a regular file, owned by the user, not
//!   group- or world-writable, below [`ARTIFACT_MAX_BYTES`]. It is read into
//!   memory and its tag verified in constant time before wasmtime sees a
//!   byte. The tag covers the file name (component digest and engine hash)
//!   and the format version as well as the code, so a genuine artifact moved
//!   to another name, or one sealed under another user's key, does not verify.
//! - **Writing**: a temporary file in the same directory, created with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW` and mode 0600, holding header and code,
//!   synced, then renamed over the final name: readers see a whole artifact or
//!   none.
//!
//! The checks are layered on purpose: even someone who could swap the cache
//! directory's parent cannot forge a file owned by this user, nor a tag
//! without the key.
//!
//! # When a check fails
//!
//! - The directory or the key is refused: one warning per directory per
//!   process, naming the check and the fix (`chmod 700 DIR`, delete the key,
//!   or set [`CACHE_DIR_ENV`]), and components are compiled without caching.
//!   Nothing is written into such a directory.
//! - An artifact is refused (or wasmtime refuses it): a warning naming the
//!   file and what failed; it is deleted if the directory is marked, and the
//!   component is compiled and a fresh artifact stored in its place.
//!
//! A cache directory made by an earlier actionbox carries no marker: it is
//! still used, but never pruned; delete it once and actionbox recreates and
//! manages it. On platforms other than Unix caching is off.
//!
//! The module is long (about 680 lines before its tests) because it is one
//! argument: these docs state the checks, `sealing` and `owner_only` below
//! carry them out in the same order, and they are meant to be read together.

use anyhow::Result;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Environment variable naming the cache directory; `off` disables caching.
pub const CACHE_DIR_ENV: &str = "ACTIONBOX_CACHE_DIR";

/// The file that marks a directory as created (and so managed) by the host:
/// only such a directory is pruned, and only in it are rejected artifacts
/// deleted.
pub const MARKER_FILE: &str = ".actionbox-cache";

/// The per-user HMAC key, in the cache directory: what lets the host tell an
/// artifact it wrote from one planted by someone else.
pub const KEY_FILE: &str = ".hmac-key";

/// An artifact file above this size is refused unread, so a planted file
/// cannot make the host allocate without bound (a componentize-py action's
/// artifact is ~40 MB).
pub const ARTIFACT_MAX_BYTES: u64 = 512 * 1024 * 1024;

/// The cache is trimmed to this size after every store, least recently
/// used artifacts first (a componentize-py action's artifact is ~40 MB).
pub const CACHE_MAX_BYTES: u64 = 1024 * 1024 * 1024;

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

/// Load `bytes` as a component: from its artifact in `dir` when the
/// directory, the key and the artifact pass every check (see the module
/// docs), otherwise by compiling it (and storing a fresh artifact when the
/// directory is usable).
pub fn load(engine: &Engine, bytes: &[u8], dir: Option<&Path>) -> Result<(Component, Provenance)> {
    let Some(dir) = dir else {
        return compile(engine, bytes);
    };
    #[cfg(unix)]
    {
        owner_only::load(engine, bytes, dir)
    }
    #[cfg(not(unix))]
    {
        tracing::debug!(
            "precompiled cache {} not used: it is only checked for safety on Unix",
            dir.display()
        );
        compile(engine, bytes)
    }
}

/// Delete the least recently used artifacts until `dir` holds at most
/// `max_bytes` of them, and temporary files left by interrupted writes —
/// only in a directory the host created (it carries [`MARKER_FILE`]) and
/// passes the ownership checks; symbolic links are skipped, never followed.
pub fn prune(dir: &Path, max_bytes: u64) {
    #[cfg(unix)]
    owner_only::prune(dir, max_bytes);
    #[cfg(not(unix))]
    let _ = (dir, max_bytes);
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<(Component, Provenance)> {
    let component = Component::new(engine, bytes).map_err(anyhow::Error::from)?;
    Ok((component, Provenance::Compiled))
}

/// The artifact file format: a header (magic, format version, tag) before
/// the code. Only the Unix cache uses it; elsewhere caching is off.
#[cfg_attr(not(unix), allow(dead_code))]
mod sealing {
    use ring::hmac;

    /// Identifies the artifact format; a file without it is not ours.
    pub(super) const MAGIC: [u8; 8] = *b"ABOXCWSM";
    /// Bumped when the header or what the tag covers changes.
    pub(super) const FORMAT_VERSION: u32 = 1;
    /// Length of the key and of an HMAC-SHA256 tag.
    pub(super) const KEY_LEN: usize = 32;
    /// Magic, format version (little endian), tag; the code follows.
    pub(super) const HEADER_LEN: usize = MAGIC.len() + 4 + KEY_LEN;

    /// The key an artifact named `name` is tagged under: derived from the
    /// user's key, the format and the name, so the tag binds all three and the
    /// code can be verified in place (one pass, no copy).
    fn artifact_key(key: &[u8; KEY_LEN], name: &str) -> hmac::Key {
        let mut derive = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
        derive.update(&MAGIC);
        derive.update(&FORMAT_VERSION.to_le_bytes());
        derive.update(name.as_bytes());
        hmac::Key::new(hmac::HMAC_SHA256, derive.sign().as_ref())
    }

    /// The header that makes `code` a verifiable artifact named `name`.
    pub(super) fn seal(key: &[u8; KEY_LEN], name: &str, code: &[u8]) -> Vec<u8> {
        let tag = hmac::sign(&artifact_key(key, name), code);
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(tag.as_ref());
        header
    }

    /// The code in `file` (header and code, as read from the artifact named
    /// `name`) once its tag verifies, or what is wrong with it.
    pub(super) fn unseal<'a>(key: &[u8; KEY_LEN], name: &str, file: &'a [u8]) -> Result<&'a [u8], String> {
        if file.len() < HEADER_LEN {
            return Err(format!("it is {} bytes, shorter than an artifact header", file.len()));
        }
        let (header, code) = file.split_at(HEADER_LEN);
        let (magic, rest) = header.split_at(MAGIC.len());
        let (version, tag) = rest.split_at(4);
        if magic != MAGIC {
            return Err("it does not start with the actionbox artifact header".into());
        }
        if version != FORMAT_VERSION.to_le_bytes() {
            return Err("it was written in another artifact format version".into());
        }
        hmac::verify(&artifact_key(key, name), code, tag)
            .map_err(|_| "its authentication tag does not match (it was altered, or not written by this user)")?;
        Ok(code)
    }
}

/// The cache's file-system checks, which need Unix owners and modes.
#[cfg(unix)]
mod owner_only {
    use super::sealing::{seal, unseal, HEADER_LEN, KEY_LEN};
    use super::*;
    use ring::rand::SecureRandom;
    use std::fs::{DirBuilder, File, OpenOptions};
    use std::io::{ErrorKind, Read, Write};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    /// Text of the marker file, for whoever finds the directory.
    const MARKER_TEXT: &str = "This directory was created by actionbox: precompiled components, \
        pruned to the most recently used 1 GiB. It is safe to delete.\n";

    /// A cache directory that passed the checks, with its key.
    struct CacheDir {
        path: PathBuf,
        /// Carries [`MARKER_FILE`]: the host created it and may delete in it.
        marked: bool,
        key: [u8; KEY_LEN],
    }

    pub(super) fn load(engine: &Engine, bytes: &[u8], dir: &Path) -> Result<(Component, Provenance)> {
        let cache = match CacheDir::open(dir) {
            Ok(cache) => cache,
            Err(reason) => {
                warn_once(dir, &reason);
                return compile(engine, bytes);
            }
        };
        let path = artifact_path(dir, engine, bytes);
        let name = artifact_name(&path);
        match cache.read(&path, &name) {
            Ok(None) => {}
            Ok(Some((file, contents))) => {
                let code = &contents[HEADER_LEN..];
                // SAFETY: `code` carries a valid tag under this user's key for
                // this artifact's name, so this user's actionbox wrote it from
                // the component with these bytes for this engine (see the
                // module docs); it was read from a regular file this user owns.
                match unsafe { Component::deserialize(engine, code) } {
                    Ok(component) => {
                        // The modification time orders eviction.
                        let _ = file.set_modified(std::time::SystemTime::now());
                        return Ok((component, Provenance::Cached));
                    }
                    Err(e) => {
                        tracing::warn!(
                            "not loading precompiled artifact {}: wasmtime refused it ({e}); compiling the component instead",
                            path.display()
                        );
                        cache.discard(&path);
                    }
                }
            }
            Err(why) => {
                tracing::warn!(
                    "not loading precompiled artifact {}: {why}; compiling the component instead",
                    path.display()
                );
                cache.discard(&path);
            }
        }
        // Compile once: the artifact is both stored and loaded.
        let artifact = engine.precompile_component(bytes).map_err(anyhow::Error::from)?;
        if let Err(e) = cache.store(&path, &name, &artifact) {
            tracing::warn!("could not cache the compiled component in {}: {e:#}", dir.display());
        }
        if cache.marked {
            prune(dir, CACHE_MAX_BYTES);
        }
        // SAFETY: `artifact` was produced just above by this engine.
        let component = unsafe { Component::deserialize(engine, &artifact) }.map_err(anyhow::Error::from)?;
        Ok((component, Provenance::Compiled))
    }

    pub(super) fn prune(dir: &Path, max_bytes: u64) {
        match inspect(dir) {
            Ok(Some(true)) => {}
            Ok(Some(false)) => {
                tracing::debug!(
                    "not pruning {}: actionbox did not create it (no {MARKER_FILE})",
                    dir.display()
                );
                return;
            }
            Ok(None) | Err(_) => return,
        }
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let mut artifacts = Vec::new();
        for entry in entries.flatten() {
            // Neither `file_type` nor `metadata` of an entry follows a link.
            let Ok(kind) = entry.file_type() else { continue };
            if !kind.is_file() {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let path = entry.path();
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".tmp-") && modified < hour_ago {
                let _ = std::fs::remove_file(&path);
            } else if name.ends_with(".cwasm") {
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

    impl CacheDir {
        /// Check `dir` (creating it when missing) and read or create its key;
        /// the error says which check failed and how to fix it.
        fn open(dir: &Path) -> Result<Self, String> {
            let marked = match inspect(dir)? {
                Some(marked) => marked,
                None => {
                    create(dir)?;
                    inspect(dir)?.ok_or_else(|| "it vanished right after it was created".to_string())?
                }
            };
            let key = read_or_create_key(dir)?;
            Ok(Self {
                path: dir.to_path_buf(),
                marked,
                key,
            })
        }

        /// The verified contents of the artifact at `path` (header and code)
        /// and its open handle, `None` when there is none, or why it is refused.
        fn read(&self, path: &Path, name: &str) -> Result<Option<(File, Vec<u8>)>, String> {
            let mut file = match open_no_follow(path) {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(open_failure(path, &e)),
            };
            let meta = file.metadata().map_err(|e| format!("cannot inspect it: {e}"))?;
            if let Some(why) = file_refusal(meta.is_file(), meta.uid(), current_uid(), meta.mode(), 0o022) {
                return Err(why);
            }
            if meta.len() > ARTIFACT_MAX_BYTES {
                return Err(format!(
                    "it is {} bytes, above the {ARTIFACT_MAX_BYTES}-byte cap",
                    meta.len()
                ));
            }
            let mut contents = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
            (&mut file)
                .take(ARTIFACT_MAX_BYTES + 1)
                .read_to_end(&mut contents)
                .map_err(|e| format!("cannot read it: {e}"))?;
            if contents.len() as u64 > ARTIFACT_MAX_BYTES {
                return Err(format!("it grew above the {ARTIFACT_MAX_BYTES}-byte cap while read"));
            }
            unseal(&self.key, name, &contents)?;
            Ok(Some((file, contents)))
        }

        /// Delete a refused artifact, in a directory the host created only.
        fn discard(&self, path: &Path) {
            if !self.marked {
                return;
            }
            // `remove_file` removes a link itself, never what it points to.
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot delete refused artifact {}: {e}", path.display()),
            }
        }

        /// Write `artifact` with its header under a temporary name and rename
        /// it over `path`.
        fn store(&self, path: &Path, name: &str, artifact: &[u8]) -> Result<()> {
            let size = (HEADER_LEN + artifact.len()) as u64;
            anyhow::ensure!(
                size <= ARTIFACT_MAX_BYTES,
                "the artifact is {size} bytes, above the {ARTIFACT_MAX_BYTES}-byte cap; it would be refused when read"
            );
            let header = seal(&self.key, name, artifact);
            let (mut file, tmp) = create_temporary(&self.path, name)?;
            let written = file
                .write_all(&header)
                .and_then(|()| file.write_all(artifact))
                .and_then(|()| file.sync_all())
                .and_then(|()| std::fs::rename(&tmp, path));
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                anyhow::bail!("cannot write {}: {e}", path.display());
            }
            Ok(())
        }
    }

    /// `None` when `dir` does not exist; otherwise whether it carries the
    /// marker, or which check it fails and how to fix it.
    fn inspect(dir: &Path) -> Result<Option<bool>, String> {
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot inspect it ({e}): {}", set_env_advice())),
        };
        let is_symlink = meta.file_type().is_symlink();
        if let Some(why) = dir_refusal(dir, is_symlink, meta.is_dir(), meta.uid(), current_uid(), meta.mode()) {
            return Err(why);
        }
        let marked = std::fs::symlink_metadata(dir.join(MARKER_FILE)).is_ok_and(|m| m.is_file());
        Ok(Some(marked))
    }

    /// Which directory check fails, with its fix, or `None` when all pass.
    pub(super) fn dir_refusal(
        dir: &Path,
        is_symlink: bool,
        is_dir: bool,
        owner: u32,
        uid: u32,
        mode: u32,
    ) -> Option<String> {
        if is_symlink {
            Some(format!(
                "it is a symbolic link, which whoever owns it can re-point: {}",
                set_env_advice()
            ))
        } else if !is_dir {
            Some(format!("it is not a directory: {}", set_env_advice()))
        } else if owner != uid {
            Some(format!(
                "it is owned by uid {owner}, not by this user (uid {uid}), who could plant native code in it: {}",
                set_env_advice()
            ))
        } else if mode & 0o022 != 0 {
            Some(format!(
                "it is group- or world-writable (mode {:04o}), so other users could plant native code in it: \
                 run `chmod 700 {}` or {}",
                mode & 0o7777,
                dir.display(),
                set_env_advice()
            ))
        } else {
            None
        }
    }

    /// Why a file (an artifact, or the key with `forbidden_mode` 0o077) is
    /// refused on its `fstat`, or `None`.
    pub(super) fn file_refusal(is_file: bool, owner: u32, uid: u32, mode: u32, forbidden_mode: u32) -> Option<String> {
        if !is_file {
            Some("it is not a regular file".into())
        } else if owner != uid {
            Some(format!("it is owned by uid {owner}, not by this user (uid {uid})"))
        } else if mode & forbidden_mode != 0 {
            Some(format!(
                "its mode {:04o} lets other users {}",
                mode & 0o7777,
                if forbidden_mode & 0o044 != 0 {
                    "read or change it"
                } else {
                    "change it"
                }
            ))
        } else {
            None
        }
    }

    fn set_env_advice() -> String {
        format!("set {CACHE_DIR_ENV} to a directory only you can write (or `off`)")
    }

    /// Create `dir` with mode 0700 from the start (parents as usual) and
    /// mark it as the host's.
    fn create(dir: &Path) -> Result<(), String> {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {} ({e}): {}", parent.display(), set_env_advice()))?;
        }
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            // Another process created it first; it is checked like any other.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(format!("cannot create it ({e}): {}", set_env_advice())),
        }
        let mut marker = create_exclusive(&dir.join(MARKER_FILE))
            .map_err(|e| format!("cannot create its {MARKER_FILE} marker ({e}): {}", set_env_advice()))?;
        marker
            .write_all(MARKER_TEXT.as_bytes())
            .map_err(|e| format!("cannot write its {MARKER_FILE} marker ({e}): {}", set_env_advice()))?;
        Ok(())
    }

    /// This user's key from `dir`, created first when there is none.
    fn read_or_create_key(dir: &Path) -> Result<[u8; KEY_LEN], String> {
        let path = dir.join(KEY_FILE);
        match read_key(&path) {
            Err(KeyError::Missing) => {
                create_key(dir, &path)?;
                read_key(&path).map_err(|e| e.describe(&path))
            }
            other => other.map_err(|e| e.describe(&path)),
        }
    }

    enum KeyError {
        Missing,
        Refused(String),
    }

    impl KeyError {
        fn describe(self, path: &Path) -> String {
            match self {
                KeyError::Missing => format!("its key file {} vanished right after it was created", path.display()),
                KeyError::Refused(why) => format!(
                    "its key file {} is refused: {why}; delete it (a new key is made and every artifact rebuilt) \
                     or {}",
                    path.display(),
                    set_env_advice()
                ),
            }
        }
    }

    fn read_key(path: &Path) -> Result<[u8; KEY_LEN], KeyError> {
        let mut file = match open_no_follow(path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(KeyError::Missing),
            Err(e) => return Err(KeyError::Refused(open_failure(path, &e))),
        };
        let meta = file
            .metadata()
            .map_err(|e| KeyError::Refused(format!("cannot inspect it: {e}")))?;
        if let Some(why) = file_refusal(meta.is_file(), meta.uid(), current_uid(), meta.mode(), 0o077) {
            return Err(KeyError::Refused(why));
        }
        if meta.len() != KEY_LEN as u64 {
            return Err(KeyError::Refused(format!("it is {} bytes, not {KEY_LEN}", meta.len())));
        }
        let mut key = [0u8; KEY_LEN];
        file.read_exact(&mut key)
            .map_err(|e| KeyError::Refused(format!("cannot read it: {e}")))?;
        Ok(key)
    }

    /// Write a fresh key under a temporary name, then link it into place:
    /// linking fails when another process published its key first, and that
    /// key is then the one read. Nobody ever reads a half-written key.
    fn create_key(dir: &Path, path: &Path) -> Result<(), String> {
        let mut key = [0u8; KEY_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| "the system's random number source failed while making its key".to_string())?;
        let (mut file, tmp) = create_temporary(dir, KEY_FILE).map_err(|e| format!("{e:#}: {}", set_env_advice()))?;
        let published =
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .and_then(|()| match std::fs::hard_link(&tmp, path) {
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
                    other => other,
                });
        let _ = std::fs::remove_file(&tmp);
        published.map_err(|e| {
            format!(
                "cannot create its key file {} ({e}): {}",
                path.display(),
                set_env_advice()
            )
        })
    }

    /// A new file `<name>.tmp-<pid>-<n>` in `dir`, created exclusively.
    fn create_temporary(dir: &Path, name: &str) -> Result<(File, PathBuf)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            "{name}.tmp-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = create_exclusive(&tmp).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", tmp.display()))?;
        Ok((file, tmp))
    }

    /// `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600: a new file, never an existing
    /// one or a link's target, readable by this user only.
    fn create_exclusive(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    }

    /// Open for reading without following a final symbolic link, and without
    /// blocking on a FIFO planted under the name.
    fn open_no_follow(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    }

    /// Why opening `path` failed, naming a symbolic link as such (Linux and
    /// macOS report `ELOOP`, the BSDs `EMLINK`).
    fn open_failure(path: &Path, e: &std::io::Error) -> String {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            "it is a symbolic link, and cache files are never read through links".into()
        } else {
            format!("cannot open it: {e}")
        }
    }

    /// The file name an artifact's tag is bound to.
    fn artifact_name(path: &Path) -> String {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn current_uid() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    /// Warn about a refused directory once per process (every load would
    /// otherwise repeat it); later refusals are logged at debug level.
    fn warn_once(dir: &Path, reason: &str) {
        static WARNED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
        let first = WARNED.lock().map_or(true, |mut warned| {
            if warned.iter().any(|d| d == dir) {
                false
            } else {
                warned.push(dir.to_path_buf());
                true
            }
        });
        if first {
            tracing::warn!(
                "not using the precompiled cache {}: {reason}; compiling components without caching",
                dir.display()
            );
        } else {
            tracing::debug!("not using the precompiled cache {}: {reason}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sealing::*;
    use super::*;

    const KEY: [u8; KEY_LEN] = [7; KEY_LEN];
    const NAME: &str = "00ff-0123456789abcdef.cwasm";

    fn sealed(key: &[u8; KEY_LEN], name: &str, code: &[u8]) -> Vec<u8> {
        let mut file = seal(key, name, code);
        file.extend_from_slice(code);
        file
    }

    #[test]
    fn sealed_artifact_unseals_to_its_code() {
        let file = sealed(&KEY, NAME, b"native code");
        assert_eq!(unseal(&KEY, NAME, &file), Ok(&b"native code"[..]));
    }

    #[test]
    fn any_flipped_byte_fails_verification() {
        let file = sealed(&KEY, NAME, b"native code");
        for i in 0..file.len() {
            let mut tampered = file.clone();
            tampered[i] ^= 1;
            assert!(
                unseal(&KEY, NAME, &tampered).is_err(),
                "byte {i} flipped still verified"
            );
        }
    }

    #[test]
    fn tag_is_bound_to_the_key_and_the_name() {
        let file = sealed(&KEY, NAME, b"native code");
        let err = unseal(&[8; KEY_LEN], NAME, &file).expect_err("another key");
        assert!(err.contains("authentication tag"), "{err}");
        assert!(unseal(&KEY, "other-0123456789abcdef.cwasm", &file).is_err());
    }

    #[test]
    fn short_or_foreign_files_are_refused() {
        assert!(unseal(&KEY, NAME, b"").expect_err("empty").contains("shorter"));
        let raw = vec![0u8; 100];
        assert!(unseal(&KEY, NAME, &raw).expect_err("raw").contains("header"));
        let mut other_version = sealed(&KEY, NAME, b"x");
        other_version[MAGIC.len()] = 9;
        assert!(unseal(&KEY, NAME, &other_version)
            .expect_err("version")
            .contains("format version"));
    }

    #[cfg(unix)]
    #[test]
    fn directory_checks_name_the_failure_and_the_fix() {
        use owner_only::dir_refusal;
        let dir = Path::new("/c");
        assert_eq!(dir_refusal(dir, false, true, 5, 5, 0o700), None);
        assert_eq!(dir_refusal(dir, false, true, 5, 5, 0o755), None);
        assert!(dir_refusal(dir, true, false, 5, 5, 0o700).is_some_and(|m| m.contains("symbolic link")));
        assert!(dir_refusal(dir, false, false, 5, 5, 0o700).is_some_and(|m| m.contains("not a directory")));
        assert!(dir_refusal(dir, false, true, 0, 5, 0o700).is_some_and(|m| m.contains("owned by uid 0")));
        for mode in [0o770, 0o702, 0o1777] {
            let why = dir_refusal(dir, false, true, 5, 5, mode).expect("writable by others");
            assert!(why.contains("chmod 700 /c") && why.contains(CACHE_DIR_ENV), "{why}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_must_be_private_and_artifacts_not_writable_by_others() {
        use owner_only::file_refusal;
        assert_eq!(file_refusal(true, 5, 5, 0o600, 0o077), None);
        assert!(file_refusal(true, 5, 5, 0o644, 0o077).is_some());
        assert!(file_refusal(true, 5, 5, 0o640, 0o077).is_some());
        assert!(file_refusal(false, 5, 5, 0o600, 0o077).is_some());
        assert!(file_refusal(true, 6, 5, 0o600, 0o077).is_some());
        assert_eq!(file_refusal(true, 5, 5, 0o644, 0o022), None);
        assert!(file_refusal(true, 5, 5, 0o664, 0o022).is_some());
    }
}
