//! Key material: the master key, API keys in clear ([`SecretText`]) and
//! sealed ([`SealedKey`]).
//!
//! An API key is sealed with AES-256-GCM under the master key, with a fresh
//! random 96-bit nonce from the OS for every seal, and with associated data
//! `workspace id || "\0" || integration name`: the ciphertext only opens in
//! the row it was written for, so copying it to another workspace's row
//! yields [`StoreError::Crypto`], not that workspace's key. The master key's
//! public id is stored beside each sealed key so a server holding another
//! master key says so instead of reporting a corrupt value.
//!
//! None of these types prints its secret: their `Debug` shows a redaction or
//! a public id, and none implements `Display` or `Serialize`.

use crate::error::{Result, StoreError};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use zeroize::{Zeroize, Zeroizing};

/// Length of the AES-GCM nonce in bytes (96 bits, the standard size).
const NONCE_LEN: usize = 12;

/// The 32-byte key every API key is sealed under. Read from
/// `ACTIONBOX_MASTER_KEY_FILE`; never stored in the database.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl MasterKey {
    /// Read a key from a file holding 64 hex characters (surrounding
    /// whitespace ignored). A file that group or others may read or write is
    /// refused: the key protects every merchant's API keys.
    pub fn from_file(path: &Path) -> Result<MasterKey> {
        let meta = std::fs::metadata(path).map_err(|e| StoreError::io(path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::invalid(format!(
                "master key file {} is accessible to group or others (mode {mode:04o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?);
        let mut bytes = Zeroizing::new([0u8; 32]);
        let trimmed = text.trim();
        if trimmed.len() != 64 || hex::decode_to_slice(trimmed, &mut bytes[..]).is_err() {
            // The content is not echoed: it may be a key in the wrong format.
            return Err(StoreError::invalid(format!(
                "master key file {} must hold exactly 64 hex characters (a 32-byte key): create one with \
                 `actionbox store init-master-key PATH`",
                path.display()
            )));
        }
        Ok(MasterKey { bytes })
    }

    /// A fresh random key from the operating system's generator (for
    /// `actionbox store init-master-key`).
    pub fn generate() -> MasterKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        random_bytes(&mut bytes[..]);
        MasterKey { bytes }
    }

    /// Build a key from raw bytes (tests and tooling that hold the key elsewhere).
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// Write the key as 64 hex characters and a newline to a new file created
    /// with mode 0600. An existing file is never overwritten: losing the old
    /// key would make every sealed API key unreadable.
    pub fn write_new_file(&self, path: &Path) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        let mut text = Zeroizing::new(hex::encode(&self.bytes[..]));
        text.push('\n');
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::io(path, e))
    }

    /// The key's public id: the first 8 hex characters of
    /// SHA-256("actionbox-master-key" || key). Stored beside every sealed key
    /// so a wrong master key is reported as such.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"actionbox-master-key");
        h.update(&self.bytes[..]);
        hex::encode(&h.finalize()[..4])
    }

    fn cipher(&self) -> Aes256Gcm {
        // A 32-byte slice is always a valid AES-256 key.
        Aes256Gcm::new((&*self.bytes).into())
    }

    /// Seal `secret` for the row (`workspace`, `integration`).
    pub(crate) fn seal(&self, workspace: &str, integration: &str, secret: &SecretText) -> Result<SealedKey> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce);
        let aad = associated_data(workspace, integration);
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Crypto)?;
        Ok(SealedKey {
            workspace: workspace.to_owned(),
            integration: integration.to_owned(),
            master_id: self.id(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Open `sealed`; the caller has checked that it was sealed under this key.
    pub(crate) fn open(&self, sealed: &SealedKey) -> Result<SecretText> {
        if sealed.nonce.len() != NONCE_LEN {
            return Err(StoreError::Crypto);
        }
        let aad = associated_data(&sealed.workspace, &sealed.integration);
        let clear = Zeroizing::new(
            self.cipher()
                .decrypt(
                    Nonce::from_slice(&sealed.nonce),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| StoreError::Crypto)?,
        );
        let text = std::str::from_utf8(&clear).map_err(|_| StoreError::Crypto)?;
        Ok(SecretText::new(text))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

/// Seals short values that leave the server and come back — the console's
/// session cookie — under a key derived from the master key, so every
/// replica with the same master key opens them and nobody else can read or
/// forge them. The derived key is SHA-256("actionbox-" || purpose || "\0" ||
/// master key): one purpose's ciphertexts never open as another's, and the
/// master key itself is never used for anything but API keys. A master key
/// rotation ends every value sealed before it (people sign in again).
pub struct ValueSealer {
    key: Zeroizing<[u8; 32]>,
}

impl ValueSealer {
    /// A sealer for `purpose` (e.g. `"console-session"`) under `master`.
    pub fn new(master: &MasterKey, purpose: &str) -> ValueSealer {
        let mut h = Sha256::new();
        h.update(b"actionbox-");
        h.update(purpose.as_bytes());
        h.update([0u8]);
        h.update(&master.bytes[..]);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&h.finalize());
        ValueSealer { key }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.key).into())
    }

    /// `clear` sealed with a fresh random nonce, as lower-case hex
    /// (`nonce || ciphertext || tag`), safe in a cookie.
    pub fn seal(&self, clear: &[u8]) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), clear)
            .map_err(|_| StoreError::Crypto)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(hex::encode(out))
    }

    /// What [`ValueSealer::seal`] sealed, or `None` for anything else
    /// (tampered, truncated, sealed under another key or purpose).
    pub fn open(&self, text: &str) -> Option<Zeroizing<Vec<u8>>> {
        let bytes = hex::decode(text).ok()?;
        if bytes.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), sealed)
            .ok()
            .map(Zeroizing::new)
    }
}

impl fmt::Debug for ValueSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ValueSealer([redacted])")
    }
}

/// Fresh random bytes from the operating system, as lower-case hex (CSRF
/// tokens, nonces a caller needs as text).
pub fn random_hex(len: usize) -> String {
    let mut buf = vec![0u8; len];
    random_bytes(&mut buf);
    hex::encode(buf)
}

/// `workspace || "\0" || integration`: binds a ciphertext to its row. Neither
/// part can contain NUL (workspace ids are checked, integration names too),
/// so distinct rows never share associated data.
fn associated_data(workspace: &str, integration: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(workspace.len() + 1 + integration.len());
    aad.extend_from_slice(workspace.as_bytes());
    aad.push(0);
    aad.extend_from_slice(integration.as_bytes());
    aad
}

/// Fill `buf` from the operating system's random generator.
///
/// A failing OS generator leaves no safe way to make keys, nonces or tokens;
/// it only happens on a broken system, so it stops the process.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    getrandom::getrandom(buf).expect("the operating system's random generator failed");
}

/// An API key or token in clear, as the host hands it to the store and gets
/// it back from [`crate::Store::unseal`] or [`crate::Store::mint_token`].
/// `Debug` prints `[redacted]`; [`SecretText::expose`] is the only way to the
/// text, so every use of the secret is visible in the code.
#[derive(Clone)]
pub struct SecretText(String);

impl SecretText {
    /// Wrap a secret.
    pub fn new(text: impl Into<String>) -> SecretText {
        SecretText(text.into())
    }

    /// The secret itself; call only where it is sent to its one destination.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretText {
    fn from(text: String) -> Self {
        SecretText(text)
    }
}

impl From<&str> for SecretText {
    fn from(text: &str) -> Self {
        SecretText(text.to_owned())
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An API key as stored: AES-256-GCM ciphertext bound to its workspace and
/// integration, with the id of the master key it was sealed under. Only
/// [`crate::Store::unseal`] turns it back into the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub(crate) workspace: String,
    pub(crate) integration: String,
    pub(crate) master_id: String,
    pub(crate) nonce: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
}

impl SealedKey {
    /// Id of the master key this was sealed under (see [`MasterKey::id`]); public.
    pub fn master_id(&self) -> &str {
        &self.master_id
    }
}

impl fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedKey")
            .field("workspace", &self.workspace)
            .field("integration", &self.integration)
            .field("master_id", &self.master_id)
            .finish_non_exhaustive()
    }
}

/// First 8 hex characters of SHA-256(key): enough to tell keys apart in a
/// listing, far too little to find the key from.
pub(crate) fn key_fingerprint(key: &SecretText) -> String {
    hex::encode(&Sha256::digest(key.expose().as_bytes())[..4])
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Compare two digests without an early exit, so the time taken does not
/// tell how many leading bytes matched.
pub(crate) fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_key_opens_only_for_its_row() {
        let key = MasterKey::generate();
        let secret = SecretText::new("sk_live_1234");
        let sealed = key.seal("acme", "shipstation", &secret).unwrap();
        assert_eq!(key.open(&sealed).unwrap().expose(), "sk_live_1234");
        let mut moved = sealed.clone();
        moved.workspace = "other".into();
        assert!(matches!(key.open(&moved), Err(StoreError::Crypto)));
        let mut renamed = sealed.clone();
        renamed.integration = "shipstation2".into();
        assert!(matches!(key.open(&renamed), Err(StoreError::Crypto)));
        let mut tampered = sealed;
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(key.open(&tampered), Err(StoreError::Crypto)));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let key = MasterKey::generate();
        let secret = SecretText::new("same");
        let a = key.seal("w", "i", &secret).unwrap();
        let b = key.seal("w", "i", &secret).unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let key = MasterKey::from_bytes([7; 32]);
        let secret = SecretText::new("sk_live_visible");
        let sealed = key.seal("w", "i", &secret).unwrap();
        let all = format!("{key:?} {secret:?} {sealed:?}");
        assert!(!all.contains("sk_live_visible"));
        assert!(!all.contains(&hex::encode([7u8; 32])));
        assert!(!all.contains(&hex::encode(&sealed.ciphertext)));
        assert!(all.contains(&key.id()));
    }

    #[test]
    fn digest_comparison_checks_every_byte() {
        assert!(digests_equal(&[1, 2, 3], &[1, 2, 3]));
        assert!(!digests_equal(&[1, 2, 3], &[1, 2, 4]));
        assert!(!digests_equal(&[0, 2, 3], &[1, 2, 3]));
        assert!(!digests_equal(&[1, 2], &[1, 2, 3]));
    }

    #[test]
    fn master_key_file_roundtrips_and_refuses_loose_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::generate();
        key.write_new_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(MasterKey::from_file(&path).unwrap().id(), key.id());
        // Never overwritten.
        assert!(matches!(key.write_new_file(&path), Err(StoreError::Io { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn malformed_master_key_file_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(b"not-a-key-but-secret-looking-text\n")
            .unwrap();
        let err = MasterKey::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("64 hex characters"), "{err}");
        assert!(!err.contains("secret-looking"), "{err}");
    }
}
