//! Precompiled components: reused when the component and engine match,
//! never when either changed, rebuilt when an artifact is unusable — and
//! never loaded from a place, or in a form, that someone else could have
//! written (an artifact is native code: loading a planted one would run it).

use actionbox_e2e::{capture_traces, captured_traces, component_path, temp_dir};
use actionbox_runtime::artifact_cache::{self, artifact_path, Provenance, CACHE_MAX_BYTES, KEY_FILE, MARKER_FILE};
use actionbox_runtime::ActionEngine;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn engine(dir: &Path) -> ActionEngine {
    ActionEngine::new()
        .expect("engine")
        .with_cache_dir(Some(dir.to_path_buf()))
}

/// A path for a cache directory that does not exist yet.
fn fresh_dir(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn component() -> Vec<u8> {
    std::fs::read(component_path()).expect("component")
}

/// Load the ShipStation component with a fresh engine (as a new process
/// would) caching in `dir`, and say where it came from.
async fn load(dir: &Path) -> Provenance {
    engine(dir)
        .load_bytes(&component(), "a.wasm".as_ref())
        .await
        .expect("the component loads, cached or not")
        .provenance()
}

/// The artifact file of the ShipStation component in `dir`.
fn artifact(dir: &Path) -> PathBuf {
    artifact_path(dir, engine(dir).engine(), &component())
}

/// Names of the entries of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("metadata").mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Assert that a warning naming `path` and saying `why` was logged.
fn assert_warned(path: &Path, why: &str) {
    let traces = captured_traces();
    let shown = path.display().to_string();
    assert!(
        traces
            .lines()
            .any(|l| l.contains("WARN") && l.contains(&shown) && l.contains(why)),
        "no warning about {shown} saying {why:?} in:\n{traces}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn second_load_uses_the_artifact_and_changed_bytes_do_not() {
    let dir = fresh_dir("artifacts-reuse");
    let bytes = component();

    let first = engine(&dir).load_bytes(&bytes, "a.wasm".as_ref()).await.expect("loads");
    assert_eq!(first.provenance(), Provenance::Compiled);
    let second = engine(&dir).load_bytes(&bytes, "a.wasm".as_ref()).await.expect("loads");
    assert_eq!(second.provenance(), Provenance::Cached);
    assert_eq!(first.manifest(), second.manifest());

    // A changed component (here: one more custom section) is another artifact.
    let mut changed = bytes.clone();
    changed.extend_from_slice(&[0, 6, 5, b'n', b'o', b't', b'e', b'!']);
    let third = engine(&dir)
        .load_bytes(&changed, "b.wasm".as_ref())
        .await
        .expect("loads");
    assert_eq!(third.provenance(), Provenance::Compiled);
    let artifacts = entries(&dir).into_iter().filter(|n| n.ends_with(".cwasm")).count();
    assert_eq!(artifacts, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn created_cache_dir_is_owner_only_marked_and_keyed() {
    let dir = fresh_dir("artifacts-created");
    assert_eq!(load(&dir).await, Provenance::Compiled);
    assert_eq!(mode(&dir) & 0o077, 0, "the directory is created owner-only");
    assert!(std::fs::symlink_metadata(dir.join(MARKER_FILE))
        .expect("marker")
        .is_file());
    let key = dir.join(KEY_FILE);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(std::fs::metadata(&key).expect("key").len(), 32);
    assert_eq!(mode(&artifact(&dir)), 0o600);
    assert!(
        !entries(&dir).iter().any(|n| n.contains(".tmp-")),
        "no temporary file is left: {:?}",
        entries(&dir)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_artifact_is_rebuilt() {
    let dir = fresh_dir("artifacts-corrupt");
    assert_eq!(load(&dir).await, Provenance::Compiled);
    std::fs::write(artifact(&dir), b"not an artifact").expect("corrupt it");
    assert_eq!(load(&dir).await, Provenance::Compiled);
    assert_eq!(load(&dir).await, Provenance::Cached, "the artifact was replaced");
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_artifact_is_rebuilt() {
    capture_traces();
    let dir = fresh_dir("artifacts-tampered");
    assert_eq!(load(&dir).await, Provenance::Compiled);
    let path = artifact(&dir);
    let mut bytes = std::fs::read(&path).expect("artifact");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).expect("flip one byte");

    assert_eq!(
        load(&dir).await,
        Provenance::Compiled,
        "a tampered artifact is never loaded"
    );
    assert_warned(&path, "authentication tag does not match");
    assert_ne!(
        std::fs::read(&path).expect("artifact"),
        bytes,
        "a fresh artifact replaced it"
    );
    assert_eq!(load(&dir).await, Provenance::Cached, "the fresh artifact is used");
}

#[tokio::test(flavor = "multi_thread")]
async fn artifact_planted_without_a_valid_tag_is_not_loaded() {
    capture_traces();
    let dir = fresh_dir("artifacts-planted");
    assert_eq!(load(&dir).await, Provenance::Compiled);
    let path = artifact(&dir);

    // A plain wasmtime artifact of the very same component, under the right
    // name: what anyone able to write there could produce.
    let raw = engine(&dir)
        .engine()
        .precompile_component(&component())
        .expect("precompile");
    std::fs::write(&path, &raw).expect("plant a raw artifact");
    assert_eq!(load(&dir).await, Provenance::Compiled);
    assert_warned(&path, "does not start with the actionbox artifact header");

    // A complete actionbox artifact, written by someone else's actionbox
    // (another cache, so another key).
    let theirs = fresh_dir("artifacts-planted-theirs");
    assert_eq!(load(&theirs).await, Provenance::Compiled);
    std::fs::copy(artifact(&theirs), &path).expect("plant their artifact");
    assert_eq!(load(&dir).await, Provenance::Compiled);
    assert_warned(&path, "authentication tag does not match");
    assert_eq!(load(&dir).await, Provenance::Cached, "replaced by one of ours");
}

#[tokio::test(flavor = "multi_thread")]
async fn artifact_replaced_by_a_symlink_is_not_followed() {
    capture_traces();
    let dir = fresh_dir("artifacts-symlink");
    assert_eq!(load(&dir).await, Provenance::Compiled);
    let path = artifact(&dir);
    // The link points at a genuine artifact, valid under this very name and
    // key: only refusing to follow links keeps it from loading.
    let genuine = dir.join("genuine.bin");
    std::fs::rename(&path, &genuine).expect("move the artifact");
    std::os::unix::fs::symlink(&genuine, &path).expect("link to it");

    assert_eq!(load(&dir).await, Provenance::Compiled, "the link is not followed");
    assert_warned(&path, "symbolic link");
    assert!(
        std::fs::symlink_metadata(&path).expect("artifact").is_file(),
        "the link was replaced by a regular artifact"
    );
    assert!(genuine.is_file(), "what the link pointed at is untouched");
    assert_eq!(load(&dir).await, Provenance::Cached);
}

#[tokio::test(flavor = "multi_thread")]
async fn group_or_world_writable_cache_dir_is_not_used() {
    capture_traces();
    for (tag, writable) in [("group", 0o770), ("world", 0o777), ("world-sticky", 0o1777)] {
        let dir = fresh_dir(&format!("artifacts-writable-{tag}"));
        std::fs::create_dir(&dir).expect("dir");
        chmod(&dir, writable);

        assert_eq!(load(&dir).await, Provenance::Compiled);
        assert_eq!(load(&dir).await, Provenance::Compiled, "nothing was cached");
        assert_eq!(
            entries(&dir),
            Vec::<String>::new(),
            "nothing is written into {}",
            dir.display()
        );
        assert_eq!(mode(&dir), writable, "its mode is left alone");
        assert_warned(&dir, &format!("chmod 700 {}", dir.display()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_dir_that_is_a_symlink_is_not_used() {
    capture_traces();
    let real = fresh_dir("artifacts-linked-real");
    assert_eq!(load(&real).await, Provenance::Compiled);
    let before = entries(&real);
    let link = fresh_dir("artifacts-linked");
    std::os::unix::fs::symlink(&real, &link).expect("link");

    // `real` holds a valid artifact: only the refusal of the link keeps it from loading.
    assert_eq!(load(&link).await, Provenance::Compiled);
    assert_warned(&link, "symbolic link");
    assert_eq!(entries(&real), before, "nothing is written through the link");
    assert_eq!(load(&real).await, Provenance::Cached);
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_dir_owned_by_someone_else_is_not_used() {
    capture_traces();
    let probe = temp_dir("artifacts-uid-probe");
    let uid = std::fs::metadata(&probe).expect("probe").uid();
    let dir = if uid == 0 {
        // As root, make a directory that belongs to `nobody`.
        let dir = fresh_dir("artifacts-foreign-owner");
        std::fs::create_dir(&dir).expect("dir");
        chmod(&dir, 0o755);
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown");
        dir
    } else {
        // Otherwise `/`, which belongs to root (and is never written: it is refused).
        PathBuf::from("/")
    };
    let before = entries(&dir);
    assert_eq!(load(&dir).await, Provenance::Compiled);
    assert_eq!(load(&dir).await, Provenance::Compiled);
    assert_eq!(entries(&dir), before, "nothing is written into it");
    assert_warned(&dir, "not by this user");
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_the_host_did_not_create_is_never_chmodded_nor_pruned() {
    let dir = fresh_dir("artifacts-foreign");
    std::fs::create_dir(&dir).expect("dir");
    chmod(&dir, 0o755);
    // Bigger than the whole cache may be, and old: the first thing a prune
    // would delete (sparse, so it costs no disk).
    let big = dir.join("big.cwasm");
    let file = std::fs::File::create(&big).expect("big");
    file.set_len(CACHE_MAX_BYTES + 1).expect("size");
    file.set_modified(std::time::UNIX_EPOCH).expect("mtime");
    let stale = dir.join("x.cwasm.tmp-1");
    let old = std::fs::File::create(&stale).expect("stale");
    old.set_modified(std::time::UNIX_EPOCH).expect("mtime");

    assert_eq!(load(&dir).await, Provenance::Compiled);
    assert_eq!(
        load(&dir).await,
        Provenance::Cached,
        "a directory of your own is still used"
    );
    artifact_cache::prune(&dir, 0);

    assert!(
        big.exists() && stale.exists(),
        "nothing of yours is pruned: {:?}",
        entries(&dir)
    );
    assert_eq!(mode(&dir), 0o755, "its mode is left alone");
    assert!(!dir.join(MARKER_FILE).exists(), "it is not claimed as the host's");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_file_readable_by_others_turns_the_cache_off() {
    capture_traces();
    let dir = fresh_dir("artifacts-key");
    assert_eq!(load(&dir).await, Provenance::Compiled);
    let key = dir.join(KEY_FILE);
    assert_eq!(mode(&key), 0o600);
    let artifact_before = std::fs::read(artifact(&dir)).expect("artifact");

    chmod(&key, 0o644);
    assert_eq!(
        load(&dir).await,
        Provenance::Compiled,
        "a key others can read is not trusted"
    );
    assert_warned(&dir, &format!("{KEY_FILE} is refused: its mode 0644"));
    assert_eq!(
        std::fs::read(artifact(&dir)).expect("artifact"),
        artifact_before,
        "nothing rewritten"
    );
    assert_eq!(mode(&key), 0o644, "the key's mode is left alone");

    chmod(&key, 0o600);
    assert_eq!(
        load(&dir).await,
        Provenance::Cached,
        "the same key, private again, is used"
    );
}

#[test]
fn concurrent_first_loads_agree_on_one_key() {
    let dir = fresh_dir("artifacts-race");
    let bytes = component();
    let engine = wasmtime::Engine::default();
    let start = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                start.wait();
                let (_, provenance) = artifact_cache::load(&engine, &bytes, Some(&dir)).expect("loads");
                assert_eq!(provenance, Provenance::Compiled);
            });
        }
    });
    assert_eq!(std::fs::metadata(dir.join(KEY_FILE)).expect("key").len(), 32);
    assert!(
        !entries(&dir).iter().any(|n| n.contains(".tmp-")),
        "{:?}",
        entries(&dir)
    );
    let (_, provenance) = artifact_cache::load(&engine, &bytes, Some(&dir)).expect("loads");
    assert_eq!(
        provenance,
        Provenance::Cached,
        "every writer used the key that was kept"
    );
}

#[test]
fn differently_configured_engines_never_share_artifacts() {
    let dir = std::path::Path::new("/cache");
    let default = wasmtime::Engine::default();
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    let other = wasmtime::Engine::new(&config).expect("engine");
    assert_ne!(artifact_path(dir, &default, b"x"), artifact_path(dir, &other, b"x"));
    assert_ne!(artifact_path(dir, &default, b"x"), artifact_path(dir, &default, b"y"));
}

#[test]
fn prune_keeps_the_most_recently_used_artifacts_within_the_size_cap() {
    use std::time::{Duration, SystemTime};
    let dir = fresh_dir("artifacts-prune");
    std::fs::create_dir(&dir).expect("dir");
    chmod(&dir, 0o700);
    std::fs::write(dir.join(MARKER_FILE), b"").expect("marker: the host's directory");
    let now = SystemTime::now();
    let file = |path: &Path, age_secs: u64| {
        std::fs::write(path, [0u8; 10]).expect("write");
        let f = std::fs::File::options().append(true).open(path).expect("open");
        f.set_modified(now - Duration::from_secs(age_secs)).expect("mtime");
    };
    file(&dir.join("old.cwasm"), 300);
    file(&dir.join("middle.cwasm"), 200);
    file(&dir.join("new.cwasm"), 100);
    file(&dir.join("x.cwasm.tmp-1"), 7200); // left by an interrupted write two hours ago
    file(&dir.join("y.cwasm.tmp-2"), 10); // a write in progress
    file(&dir.join("notes.txt"), 9999); // not ours
                                        // Links are skipped, never followed: neither they nor their targets go.
    let outside = fresh_dir("artifacts-prune-outside");
    std::fs::create_dir(&outside).expect("dir");
    file(&outside.join("precious.cwasm"), 9999);
    std::os::unix::fs::symlink(outside.join("precious.cwasm"), dir.join("ancient.cwasm")).expect("link");

    artifact_cache::prune(&dir, 25);
    assert_eq!(
        entries(&dir),
        [
            MARKER_FILE,
            "ancient.cwasm",
            "middle.cwasm",
            "new.cwasm",
            "notes.txt",
            "y.cwasm.tmp-2"
        ]
    );
    assert!(outside.join("precious.cwasm").exists());
}
