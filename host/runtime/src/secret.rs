//! The integration's API key: loaded once, never printed.
//!
//! Whoever reads the key can spend the merchant's account, so [`ApiKey`]
//! prints as `[redacted]` and reaches the wire only as a sensitive header
//! value, placed by the outbound policy in the operator's credential header
//! for the base URL's origin (`outbound/policy.rs`). A key file is checked
//! as ssh checks a private key, and no error quotes a key or a value that
//! might be one.

use anyhow::{anyhow, bail, Context, Result};
use std::fmt;
use std::path::Path;

/// Largest API key file accepted, in bytes. A key is a few dozen bytes; the
/// cap keeps a mistaken path (a log, `/dev/zero` behind a regular name, a
/// file that keeps growing) from being read into memory whole.
pub const MAX_KEY_FILE_BYTES: u64 = 4 * 1024;

/// Longest environment variable name accepted, in bytes: far above any real
/// name, low enough that an error quoting it stays one readable line.
pub const MAX_ENV_VAR_NAME_BYTES: usize = 256;

/// Whether `name` can be an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`,
/// at most [`MAX_ENV_VAR_NAME_BYTES`]. `api_key_env` names a variable; a value
/// that is not such a name is most likely the key itself pasted in by mistake,
/// and anything with `=` or NUL cannot be looked up at all.
pub fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    name.len() <= MAX_ENV_VAR_NAME_BYTES
        && (first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An API key. `Debug` and `Display` print `[redacted]`; the only way to the
/// bytes is [`ApiKey::header_value`], used by the outbound hook when it adds
/// the credential header to a request bound for the integration's host.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Accept `raw` (surrounding whitespace, e.g. a file's trailing newline, is
    /// dropped). Refuses empty keys and bytes not allowed in an HTTP header.
    pub fn new(raw: &str) -> Result<Self> {
        let key = raw.trim();
        if key.is_empty() {
            bail!("the API key is empty");
        }
        if key.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            bail!("the API key contains characters that cannot be sent in an HTTP header (control or non-ASCII)");
        }
        Ok(Self(key.to_string()))
    }

    /// Read the key from a file (e.g. a mounted secret).
    ///
    /// The file is checked as ssh checks a private key, because whoever can
    /// read it can spend the merchant's account and whoever can write it or
    /// swap it decides what the host sends: on Unix it must be a regular file
    /// (not a symlink, FIFO or device), readable and writable by its owner
    /// only (no bit of `0o077`), and at most [`MAX_KEY_FILE_BYTES`]. No error
    /// quotes the file's content.
    pub fn from_file(path: &Path) -> Result<Self> {
        let raw = read_key_file(path)?;
        // `new`'s errors describe the key without quoting it.
        Self::new(&raw).with_context(|| format!("API key file {}", path.display()))
    }

    /// Read the key from environment variable `var`; `None` when it is unset.
    /// `var` must be a variable *name* ([`is_env_var_name`]); a refusal
    /// quotes neither the text given nor the variable's value.
    pub fn from_env(var: &str) -> Result<Option<Self>> {
        if !is_env_var_name(var) {
            // Not quoted: a value that is not a name is most likely the key.
            bail!(
                "the value given is not an environment variable name (letters, digits and `_`, not starting with \
                 a digit, at most {MAX_ENV_VAR_NAME_BYTES} bytes; not shown, in case it is the key itself); give \
                 the name of the variable that holds the key, e.g. MY_API_KEY"
            );
        }
        match std::env::var(var) {
            Ok(raw) => Self::new(&raw)
                .map(Some)
                .with_context(|| format!("environment variable {var}")),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("environment variable {var} is not valid UTF-8")
            }
        }
    }

    /// The key's text, for sealing it into the workspace store (the admin
    /// API and `workspace import` hand a checked key to the store, which
    /// encrypts it at once). Nothing else should call this: the wire gets
    /// the key through [`ApiKey::header_value`] only.
    pub fn reveal_for_sealing(&self) -> &str {
        &self.0
    }

    /// The key as a header value marked sensitive (hyper never logs it).
    pub(crate) fn header_value(&self) -> http::HeaderValue {
        // `new` admitted only visible ASCII and spaces, which are valid header bytes.
        let mut v = http::HeaderValue::from_str(&self.0).unwrap_or_else(|_| http::HeaderValue::from_static(""));
        v.set_sensitive(true);
        v
    }
}

/// The content of an API key file, after the checks [`ApiKey::from_file`] lists.
#[cfg(unix)]
fn read_key_file(path: &Path) -> Result<String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let shown = path.display();
    // O_NOFOLLOW: a symlink could be re-pointed by whoever owns its directory;
    // O_NONBLOCK: opening a FIFO must not hang the host (it is refused below).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                anyhow!(
                    "the API key file {shown} is a symbolic link; point api_key_file (or --api-key-file) \
                     at the file itself, not a symlink (`realpath {shown}` prints where it leads)"
                )
            } else {
                anyhow!("cannot read the API key file {shown}: {e}")
            }
        })?;
    // fstat on the opened file: the checks and the read see the same file.
    let meta = file
        .metadata()
        .with_context(|| format!("cannot inspect the API key file {shown}"))?;
    if !meta.is_file() {
        bail!(
            "the API key file {shown} is not a regular file; point api_key_file (or --api-key-file) \
             at a plain file that holds only the key"
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "the API key file {shown} can be accessed by group or others (mode {mode:03o}); \
             anyone who reads it can use the key. Run `chmod 600 {shown}`"
        );
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        bail!(
            "the API key file {shown} is {} bytes, over the {MAX_KEY_FILE_BYTES}-byte limit for a key file; \
             point api_key_file (or --api-key-file) at a file that holds only the key",
            meta.len()
        );
    }
    read_capped(file, &shown.to_string())
}

/// The content of an API key file (no owner or mode checks off Unix).
#[cfg(not(unix))]
fn read_key_file(path: &Path) -> Result<String> {
    let shown = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("cannot read the API key file {shown}"))?;
    read_capped(file, &shown.to_string())
}

/// At most [`MAX_KEY_FILE_BYTES`] of `file` as UTF-8: one byte more is read,
/// so a file that grew after its size was checked is still refused. Errors
/// name the file, never its content.
fn read_capped(file: std::fs::File, shown: &str) -> Result<String> {
    use std::io::Read;
    let mut raw = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut raw)
        .with_context(|| format!("cannot read the API key file {shown}"))?;
    if raw.len() as u64 > MAX_KEY_FILE_BYTES {
        bail!(
            "the API key file {shown} is over the {MAX_KEY_FILE_BYTES}-byte limit for a key file; \
             point api_key_file (or --api-key-file) at a file that holds only the key"
        );
    }
    // `from_utf8`'s error carries the bytes; only say what is wrong.
    String::from_utf8(raw)
        .map_err(|_| anyhow!("the API key file {shown} is not UTF-8 text; it should hold only the key"))
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_never_formatted() {
        let k = ApiKey::new(" TEST_secret\n").expect("valid");
        assert_eq!(format!("{k} {k:?}"), "[redacted] ApiKey([redacted])");
        assert_eq!(k.header_value().to_str().ok(), Some("TEST_secret"));
        assert!(k.header_value().is_sensitive());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(ApiKey::new("  ").is_err());
        assert!(ApiKey::new("a\u{7}b").is_err());
        assert!(ApiKey::new("ключ").is_err());
    }

    #[test]
    fn env_var_names_are_recognised() {
        for ok in [
            "SHIPSTATION_API_KEY",
            "_x",
            "a",
            "A1_b2",
            &"V".repeat(MAX_ENV_VAR_NAME_BYTES),
        ] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        let too_long = "V".repeat(MAX_ENV_VAR_NAME_BYTES + 1);
        for bad in [
            "",
            "1ABC",
            "A-B",
            "A B",
            "A=B",
            "A\0B",
            "KEY\n",
            "ключ",
            "$HOME",
            too_long.as_str(),
        ] {
            assert!(!is_env_var_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn invalid_env_var_name_is_refused_without_quoting_it() {
        // Most likely the key itself, pasted where its variable's name belongs.
        let e = ApiKey::from_env("sk-live-0123456789abcdef").expect_err("not a name");
        let text = format!("{e:#}");
        assert!(text.contains("not an environment variable name"), "{text}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(ApiKey::from_env("").is_err());
        let e = ApiKey::from_env("A\u{1b}[2J").expect_err("not a name");
        assert!(!format!("{e:#}").contains('\u{1b}'), "{e:#}");
    }

    #[test]
    fn unset_env_var_is_no_key() {
        let key = ApiKey::from_env("ACTIONBOX_TEST_SURELY_UNSET_VARIABLE_7F3A").expect("valid name");
        assert!(key.is_none());
    }

    #[cfg(unix)]
    mod key_file {
        use super::super::*;
        use std::os::unix::fs::PermissionsExt;
        use std::path::PathBuf;

        /// A fresh directory under the system temp dir, removed on drop.
        struct TempDir(PathBuf);

        impl TempDir {
            fn new(tag: &str) -> Self {
                static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let dir = std::env::temp_dir().join(format!("actionbox-secret-{tag}-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).expect("temp dir");
                Self(dir)
            }

            /// Write `content` to `name` with `mode`.
            fn file(&self, name: &str, content: &[u8], mode: u32) -> PathBuf {
                let path = self.0.join(name);
                std::fs::write(&path, content).expect("write");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
                path
            }
        }

        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }

        fn refusal(path: &Path) -> String {
            format!("{:#}", ApiKey::from_file(path).expect_err("refused"))
        }

        #[test]
        fn owner_only_key_file_is_read() {
            let dir = TempDir::new("ok");
            let path = dir.file("key", b"TEST_file_key\n", 0o600);
            let key = ApiKey::from_file(&path).expect("read");
            assert_eq!(key.header_value().as_bytes(), b"TEST_file_key");
            let path = dir.file("key-ro", b"TEST_file_key", 0o400);
            assert!(ApiKey::from_file(&path).is_ok());
        }

        #[test]
        fn group_or_world_accessible_key_file_is_refused() {
            let dir = TempDir::new("mode");
            for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601] {
                let path = dir.file("key", b"TEST_file_key", mode);
                let e = refusal(&path);
                assert!(e.contains(&format!("mode {mode:03o}")), "{e}");
                assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
                assert!(!e.contains("TEST_file_key"), "{e}");
            }
        }

        #[test]
        fn symlinked_key_file_is_refused() {
            let dir = TempDir::new("link");
            let target = dir.file("real-key", b"TEST_file_key", 0o600);
            let link = dir.0.join("key");
            std::os::unix::fs::symlink(&target, &link).expect("symlink");
            let e = refusal(&link);
            assert!(e.contains("is a symbolic link"), "{e}");
            assert!(e.contains("not a symlink"), "{e}");
            assert!(e.contains(&link.display().to_string()), "{e}");
        }

        #[test]
        fn key_file_that_is_not_a_regular_file_is_refused() {
            let dir = TempDir::new("dir");
            let sub = dir.0.join("a-directory");
            std::fs::create_dir(&sub).expect("mkdir");
            std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).expect("chmod");
            assert!(refusal(&sub).contains("is not a regular file"));
            // A character device: reading it would never end.
            assert!(refusal(Path::new("/dev/zero")).contains("is not a regular file"));
        }

        #[test]
        fn fifo_key_file_is_refused_without_blocking() {
            let dir = TempDir::new("fifo");
            let fifo = dir.0.join("key");
            let status = std::process::Command::new("mkfifo")
                .arg("-m")
                .arg("600")
                .arg(&fifo)
                .status()
                .expect("mkfifo runs");
            assert!(status.success());
            // Without O_NONBLOCK this open would wait for a writer forever.
            assert!(refusal(&fifo).contains("is not a regular file"));
        }

        #[test]
        fn oversized_key_file_is_refused() {
            let dir = TempDir::new("big");
            let size = MAX_KEY_FILE_BYTES as usize;
            let path = dir.file("key", "k".repeat(size).as_bytes(), 0o600);
            assert!(ApiKey::from_file(&path).is_ok(), "exactly the cap is accepted");
            let path = dir.file("key", "k".repeat(size + 1).as_bytes(), 0o600);
            let e = refusal(&path);
            assert!(e.contains("4097 bytes, over the 4096-byte limit"), "{e}");
            assert!(!e.contains("kkkk"), "{e}");
        }

        #[test]
        fn unusable_key_file_content_is_never_echoed() {
            let dir = TempDir::new("content");
            for content in [
                "TEST_secret\u{7}value".as_bytes(),
                "TEST_secret ключ".as_bytes(),
                b"TEST_secret\xff\xfe",
                b"   \n",
            ] {
                let path = dir.file("key", content, 0o600);
                let e = refusal(&path);
                assert!(e.contains(&path.display().to_string()), "{e}");
                assert!(!e.contains("TEST_secret"), "{e}");
            }
        }

        #[test]
        fn missing_key_file_is_reported_with_its_path() {
            let dir = TempDir::new("missing");
            let e = refusal(&dir.0.join("nope"));
            assert!(e.contains("cannot read the API key file") && e.contains("nope"), "{e}");
        }
    }
}
