//! Ed25519 keys, their ids, key files, and the trust store: the public keys whose signatures a
//! host accepts on bundles and delegation tokens.
//!
//! Files are small JSON documents with a `kind` field, so a secret key is never mistaken for a
//! public one:
//!
//! ```text
//! secret key   {"kind": "sbd-ed25519-secret-key", "key_id": "<16 hex>", "secret_key": "<64 hex>"}
//! public key   {"kind": "sbd-ed25519-public-key", "key_id": "<16 hex>", "public_key": "<64 hex>"}
//! trust store  {"keys": [{"key_id": "<16 hex>", "public_key": "<64 hex>", "comment": "..."}]}
//! ```
//!
//! A key id is the first 8 bytes of SHA-256 of the public key. Key rotation is a trust store
//! with both keys: publish with the new key while the old one is still trusted, then remove it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::encoding::{hex, sha256, unhex_array};

/// The `kind` of a secret key file.
pub const SECRET_KEY_KIND: &str = "sbd-ed25519-secret-key";
/// The `kind` of a public key file.
pub const PUBLIC_KEY_KIND: &str = "sbd-ed25519-public-key";

/// Why a key, key file or trust store was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("cannot access `{path}`: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also a `source`).
        cause: std::io::Error,
    },
    /// A file is not the document it should be.
    #[error("`{origin}` is not a {what}: {why}")]
    Malformed {
        /// The file (or other origin) read.
        origin: String,
        /// What it should have been.
        what: &'static str,
        /// What is wrong, naming the field.
        why: String,
    },
    /// A stated key id does not belong to the key next to it.
    #[error("`{origin}`: `key_id` {stated} does not match the key (its id is {actual})")]
    KeyIdMismatch {
        /// The file read.
        origin: String,
        /// The id written in the file.
        stated: String,
        /// The id of the key in the file.
        actual: KeyId,
    },
    /// The same key appears twice in a trust store.
    #[error("`{origin}`: key {key_id} is listed twice")]
    DuplicateKey {
        /// The trust store read.
        origin: String,
        /// The repeated key.
        key_id: KeyId,
    },
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// The id of a public key: the first 8 bytes of its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &VerifyingKey) -> KeyId {
        let digest = sha256(key.as_bytes());
        let mut id = [0; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }

    /// Parses 16 hex digits.
    pub fn from_hex(text: &str) -> Option<KeyId> {
        unhex_array(text).map(KeyId)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A signing key with its id. Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct KeyPair {
    key: SigningKey,
    id: KeyId,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({})", self.id)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyFile {
    kind: String,
    key_id: String,
    secret_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeyFile {
    kind: String,
    key_id: String,
    public_key: String,
}

fn read_file(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), cause: source })
}

fn check_id(origin: &str, stated: &str, actual: KeyId) -> Result<(), KeyError> {
    if KeyId::from_hex(stated) == Some(actual) {
        Ok(())
    } else {
        Err(KeyError::KeyIdMismatch { origin: origin.to_string(), stated: stated.to_string(), actual })
    }
}

impl KeyPair {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<KeyPair, KeyError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(KeyPair::from_secret(&secret))
    }

    /// The key with this 32-byte secret (deterministic: for tests and fixtures).
    pub fn from_secret(secret: &[u8; 32]) -> KeyPair {
        let key = SigningKey::from_bytes(secret);
        let id = KeyId::of(&key.verifying_key());
        KeyPair { key, id }
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey { key: self.key.verifying_key(), id: self.id }
    }

    /// An Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }

    /// The secret key file's text.
    pub fn to_file_text(&self) -> String {
        let file = SecretKeyFile {
            kind: SECRET_KEY_KIND.into(),
            key_id: self.id.to_string(),
            secret_key: hex(self.key.as_bytes()),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default() + "\n"
    }

    /// Parses a secret key file's text; `origin` names it in errors.
    pub fn from_file_text(text: &str, origin: &str) -> Result<KeyPair, KeyError> {
        let malformed =
            |why: String| KeyError::Malformed { origin: origin.into(), what: "secret key file", why };
        let file: SecretKeyFile = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        if file.kind != SECRET_KEY_KIND {
            return Err(malformed(format!("`kind` is `{}`, expected `{SECRET_KEY_KIND}`", file.kind)));
        }
        let secret = unhex_array::<32>(&file.secret_key)
            .ok_or_else(|| malformed("`secret_key` must be 64 hex digits".into()))?;
        let pair = KeyPair::from_secret(&secret);
        check_id(origin, &file.key_id, pair.id)?;
        Ok(pair)
    }

    /// Reads a secret key file.
    pub fn read(path: &Path) -> Result<KeyPair, KeyError> {
        KeyPair::from_file_text(&read_file(path)?, &path.display().to_string())
    }

    /// Writes the secret key file, readable by its owner only (on Unix), refusing to replace
    /// an existing file.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write;
        let io = |source| KeyError::Io { path: path.to_path_buf(), cause: source };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(self.to_file_text().as_bytes()).map_err(io)
    }
}

/// A public key with its id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PublicKey {
    /// The key from its 32 bytes; `None` if they are not a valid, non-weak Ed25519 point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<PublicKey> {
        let key = VerifyingKey::from_bytes(bytes).ok()?;
        if key.is_weak() {
            return None;
        }
        Some(PublicKey { id: KeyId::of(&key), key })
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The 32 bytes of the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The dalek key, for verification.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verifies one signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        self.key.verify_strict(message, signature).is_ok()
    }

    /// The public key file's text.
    pub fn to_file_text(&self) -> String {
        let file = PublicKeyFile {
            kind: PUBLIC_KEY_KIND.into(),
            key_id: self.id.to_string(),
            public_key: hex(self.key.as_bytes()),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default() + "\n"
    }

    /// Parses a public key file's text, or a secret key file's (taking its public half).
    pub fn from_file_text(text: &str, origin: &str) -> Result<PublicKey, KeyError> {
        if text.contains(SECRET_KEY_KIND) {
            return KeyPair::from_file_text(text, origin).map(|pair| pair.public());
        }
        let malformed =
            |why: String| KeyError::Malformed { origin: origin.into(), what: "public key file", why };
        let file: PublicKeyFile = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        if file.kind != PUBLIC_KEY_KIND {
            return Err(malformed(format!("`kind` is `{}`, expected `{PUBLIC_KEY_KIND}`", file.kind)));
        }
        let key = parse_public(&file.public_key)
            .ok_or_else(|| malformed("`public_key` must be 64 hex digits of a valid Ed25519 key".into()))?;
        check_id(origin, &file.key_id, key.id)?;
        Ok(key)
    }

    /// Reads a public key file (or a secret key file, taking its public half).
    pub fn read(path: &Path) -> Result<PublicKey, KeyError> {
        PublicKey::from_file_text(&read_file(path)?, &path.display().to_string())
    }
}

fn parse_public(text: &str) -> Option<PublicKey> {
    PublicKey::from_bytes(&unhex_array::<32>(text)?)
}

/// One trusted key and why it is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The key.
    pub key: PublicKey,
    /// A note for people (whose key, since when).
    pub comment: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustStoreFile {
    keys: Vec<TrustStoreEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustStoreEntry {
    key_id: String,
    public_key: String,
    #[serde(default)]
    comment: String,
}

/// The public keys a host accepts signatures from, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustStore {
    keys: BTreeMap<KeyId, TrustedKey>,
}

impl TrustStore {
    /// A store that trusts nothing (every signature is refused).
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// A store trusting exactly `keys`.
    pub fn with_keys<'a>(keys: impl IntoIterator<Item = &'a PublicKey>) -> TrustStore {
        let mut store = TrustStore::new();
        for key in keys {
            store.add(key.clone(), String::new());
        }
        store
    }

    /// Trusts `key` (replacing the comment if it is already trusted).
    pub fn add(&mut self, key: PublicKey, comment: String) {
        self.keys.insert(key.id, TrustedKey { key, comment });
    }

    /// Stops trusting the key with `id`; whether it was trusted.
    pub fn remove(&mut self, id: KeyId) -> bool {
        self.keys.remove(&id).is_some()
    }

    /// The trusted key with `id`.
    pub fn get(&self, id: KeyId) -> Option<&PublicKey> {
        self.keys.get(&id).map(|t| &t.key)
    }

    /// Every trusted key, by id.
    pub fn keys(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.values()
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Parses a trust store file's text.
    pub fn from_file_text(text: &str, origin: &str) -> Result<TrustStore, KeyError> {
        let malformed = |why: String| KeyError::Malformed { origin: origin.into(), what: "trust store", why };
        let file: TrustStoreFile = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        let mut store = TrustStore::new();
        for (i, entry) in file.keys.into_iter().enumerate() {
            let key = parse_public(&entry.public_key).ok_or_else(|| {
                malformed(format!("`keys[{i}].public_key` must be 64 hex digits of a valid Ed25519 key"))
            })?;
            check_id(origin, &entry.key_id, key.id)?;
            if store.keys.contains_key(&key.id) {
                return Err(KeyError::DuplicateKey { origin: origin.into(), key_id: key.id });
            }
            store.add(key, entry.comment);
        }
        Ok(store)
    }

    /// Reads a trust store file.
    pub fn read(path: &Path) -> Result<TrustStore, KeyError> {
        TrustStore::from_file_text(&read_file(path)?, &path.display().to_string())
    }

    /// The trust store file's text.
    pub fn to_file_text(&self) -> String {
        let file = TrustStoreFile {
            keys: self
                .keys
                .values()
                .map(|t| TrustStoreEntry {
                    key_id: t.key.id.to_string(),
                    public_key: hex(t.key.key.as_bytes()),
                    comment: t.comment.clone(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default() + "\n"
    }

    /// Writes the trust store file (through a temporary file and a rename).
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        crate::fsutil::write_atomic(path, self.to_file_text().as_bytes())
            .map_err(|source| KeyError::Io { path: path.to_path_buf(), cause: source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_ids_are_checked() {
        let pair = KeyPair::from_secret(&[7; 32]);
        let back = KeyPair::from_file_text(&pair.to_file_text(), "k").map(|p| p.id());
        assert_eq!(back.ok(), Some(pair.id()));
        let public = PublicKey::from_file_text(&pair.public().to_file_text(), "p").ok();
        assert_eq!(public, Some(pair.public()));
        // A secret key file also yields its public half.
        assert_eq!(PublicKey::from_file_text(&pair.to_file_text(), "k").ok(), Some(pair.public()));
        let other = KeyPair::from_secret(&[8; 32]);
        let forged = pair.public().to_file_text().replace(&pair.id().to_string(), &other.id().to_string());
        assert!(matches!(PublicKey::from_file_text(&forged, "p"), Err(KeyError::KeyIdMismatch { .. })));
        assert!(format!("{pair:?}").find(&hex(&[7; 32])).is_none(), "Debug leaks the secret");
    }

    #[test]
    fn trust_store_round_trips_and_refuses_duplicates() {
        let (a, b) = (KeyPair::from_secret(&[1; 32]), KeyPair::from_secret(&[2; 32]));
        let mut store = TrustStore::with_keys([&a.public(), &b.public()]);
        store.add(a.public(), "a, 2026".into());
        let text = store.to_file_text();
        let back = TrustStore::from_file_text(&text, "t");
        assert_eq!(back.as_ref().ok(), Some(&store));
        assert_eq!(store.get(a.id()), Some(&a.public()));
        let twice = text.replacen(&b.id().to_string(), &a.id().to_string(), 1).replacen(
            &hex(&b.public().to_bytes()),
            &hex(&a.public().to_bytes()),
            1,
        );
        assert!(matches!(TrustStore::from_file_text(&twice, "t"), Err(KeyError::DuplicateKey { .. })));
        assert!(store.remove(a.id()));
        assert_eq!(store.get(a.id()), None);
    }

    #[test]
    fn generated_keys_differ() {
        let (a, b) = (KeyPair::generate(), KeyPair::generate());
        assert!(matches!((a, b), (Ok(a), Ok(b)) if a.id() != b.id()));
    }
}
