//! Precompiled components: reused when the component and engine match,
//! never when either changed, and rebuilt when an artifact is unusable.

use actionbox::artifact_cache::{artifact_path, Provenance};
use actionbox::ActionEngine;
use actionbox_e2e::{component_path, temp_dir};

fn engine(dir: &std::path::Path) -> ActionEngine {
    ActionEngine::new()
        .expect("engine")
        .with_cache_dir(Some(dir.to_path_buf()))
}

#[tokio::test(flavor = "multi_thread")]
async fn second_load_uses_the_artifact_and_changed_bytes_do_not() {
    let dir = temp_dir("artifacts-reuse");
    let _ = std::fs::remove_dir_all(&dir);
    let bytes = std::fs::read(component_path()).expect("component");

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
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_artifact_is_rebuilt() {
    let dir = temp_dir("artifacts-corrupt");
    let _ = std::fs::remove_dir_all(&dir);
    let bytes = std::fs::read(component_path()).expect("component");
    let e = engine(&dir);
    e.load_bytes(&bytes, "a.wasm".as_ref()).await.expect("loads");
    let path = artifact_path(&dir, e.engine(), &bytes);
    std::fs::write(&path, b"not an artifact").expect("corrupt it");
    let again = engine(&dir)
        .load_bytes(&bytes, "a.wasm".as_ref())
        .await
        .expect("still loads");
    assert_eq!(again.provenance(), Provenance::Compiled);
    let after = engine(&dir).load_bytes(&bytes, "a.wasm".as_ref()).await.expect("loads");
    assert_eq!(after.provenance(), Provenance::Cached, "the artifact was replaced");
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
    let dir = temp_dir("artifacts-prune");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let now = SystemTime::now();
    let file = |name: &str, age_secs: u64| {
        let path = dir.join(name);
        std::fs::write(&path, [0u8; 10]).expect("write");
        let f = std::fs::File::options().append(true).open(&path).expect("open");
        f.set_modified(now - Duration::from_secs(age_secs)).expect("mtime");
    };
    file("old.cwasm", 300);
    file("middle.cwasm", 200);
    file("new.cwasm", 100);
    file("x.cwasm.tmp-1", 7200); // left by an interrupted write two hours ago
    file("y.cwasm.tmp-2", 10); // a write in progress
    file("notes.txt", 9999); // not ours

    actionbox::artifact_cache::prune(&dir, 25);
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["middle.cwasm", "new.cwasm", "notes.txt", "y.cwasm.tmp-2"]);
}
