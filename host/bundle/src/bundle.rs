//! Bundles: build a directory from a policy, sign its manifest, and verify it against a trust
//! store before anything in it runs.
//!
//! A bundle is a directory holding exactly [`MANIFEST_FILE`], [`SIGNATURES_FILE`] and the files
//! the manifest pins (component, configuration, optional weights, canary). [`UnverifiedBundle`]
//! reads it all into memory; only [`UnverifiedBundle::verify`] yields a [`VerifiedBundle`], whose
//! bytes are the ones checked, so a file changed after verification is never loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signature;
use sbd_policy::PolicyConfig;
use sbd_policy::learned::LearnedModel;
use sbd_runtime::{ComponentCache, LoadedPolicy, PolicyRuntime, RuntimeError};

use crate::canary::{Canary, CanaryError};
use crate::encoding::{base64url, sha256_hex, unbase64url};
use crate::fsutil::write_atomic;
use crate::keys::{KeyError, KeyId, KeyPair, TrustStore};
use crate::manifest::{
    ALGORITHM, CANARY_FILE, COMPONENT_FILE, CONFIG_FILE, FileEntry, MANIFEST_FILE, MANIFEST_FORMAT, Manifest,
    SIGNATURES_FILE, SignatureEntry, SignatureFile, WEIGHTS_FILE,
};

/// Why a bundle was not built, signed, verified, loaded or activated. Every variant names the
/// file or field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// A file could not be read or written.
    #[error("cannot access `{path}`: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause (in the message, so not also a `source`).
        cause: std::io::Error,
    },
    /// `manifest.json` is not a manifest of a format this host reads.
    #[error("`{MANIFEST_FILE}` is not a bundle manifest: {0}")]
    MalformedManifest(String),
    /// `signatures.json` is not a signature file.
    #[error("`{SIGNATURES_FILE}` is not a signature file: {0}")]
    MalformedSignatures(String),
    /// No signature at all.
    #[error("the bundle is not signed (`{SIGNATURES_FILE}` lists no signature)")]
    Unsigned,
    /// Signatures, but none by a key in the trust store.
    #[error("no signature is by a trusted key (signed by {key_ids}; see the trust store)")]
    UnknownKey {
        /// The signing keys' ids, comma-separated.
        key_ids: String,
    },
    /// A signature by a trusted key does not verify: the manifest was changed after signing,
    /// or the signature itself was.
    #[error("the signature by trusted key {key_id} does not verify over `{MANIFEST_FILE}`")]
    BadSignature {
        /// The key.
        key_id: KeyId,
    },
    /// A signature uses an algorithm other than Ed25519.
    #[error("`{SIGNATURES_FILE}`: algorithm `{algorithm}` of key `{key_id}` is not `{ALGORITHM}`")]
    UnsupportedAlgorithm {
        /// The key id as written.
        key_id: String,
        /// The algorithm named.
        algorithm: String,
    },
    /// The manifest does not describe the files next to it.
    #[error("the manifest does not match the bundle: {0}")]
    ManifestMismatch(String),
    /// A file's contents differ from the digest the manifest pins.
    #[error("`{file}` was changed: its SHA-256 is {actual}, the manifest pins {pinned}")]
    DigestMismatch {
        /// The file.
        file: String,
        /// The digest in the manifest.
        pinned: String,
        /// The digest of the file as read.
        actual: String,
    },
    /// The configuration inside the bundle is invalid.
    #[error("`{CONFIG_FILE}` is not a valid policy configuration: {0}")]
    InvalidConfig(String),
    /// The canary file is invalid.
    #[error("`{CANARY_FILE}`: {0}")]
    InvalidCanary(CanaryError),
    /// The loaded policy does not give the canary's verdicts.
    #[error("canary failed: {0}")]
    CanaryFailed(CanaryError),
    /// The component could not be loaded or instantiated with the configuration.
    #[error("cannot load the policy: {0}")]
    Load(RuntimeError),
    /// A key file or the trust store could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The offered version is lower than one already activated for this name.
    #[error("rollback refused: `{name}` {offered} is older than {active}, already activated")]
    Rollback {
        /// The policy name.
        name: String,
        /// The offered version.
        offered: String,
        /// The highest version activated for this name.
        active: String,
    },
    /// The same name and version as the active bundle, but different contents.
    #[error("`{name}` {version} is already active with other contents; publish a new version")]
    VersionReused {
        /// The policy name.
        name: String,
        /// The version.
        version: String,
    },
    /// This exact bundle is already active.
    #[error("`{name}` {version} is already active")]
    AlreadyActive {
        /// The policy name.
        name: String,
        /// The version.
        version: String,
    },
    /// Nothing to serve: no last-known-good bundle in the state directory and none offered.
    #[error("no active bundle: the state directory `{0}` holds no last-known-good bundle")]
    NoActiveBundle(PathBuf),
    /// The state directory's bookkeeping is unreadable.
    #[error("state directory `{path}`: {why}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `bundle build` would overwrite something.
    #[error("`{0}` exists and is not an empty directory")]
    OutputExists(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io { path: path.to_path_buf(), cause: source }
}

/// Parses a policy TOML as a bundle carries it: `sbd.model_file`, if present, is answered by
/// the bundle's weights (whatever path it names), and must be present exactly when they are.
pub fn parse_config(text: &str, weights: Option<&[u8]>) -> Result<PolicyConfig, BundleError> {
    let invalid = |why: String| BundleError::InvalidConfig(why);
    let mut table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.message().trim().to_string()))?;
    let names_model = match table.get_mut("sbd").and_then(toml::Value::as_table_mut) {
        Some(sbd) => sbd.remove("model_file").is_some(),
        None => false,
    };
    let mut config: PolicyConfig =
        table.try_into().map_err(|e: toml::de::Error| invalid(e.message().trim().to_string()))?;
    match (names_model, weights) {
        (true, Some(bytes)) => {
            let model: LearnedModel = postcard::from_bytes(bytes)
                .map_err(|e| invalid(format!("`{WEIGHTS_FILE}` is not a trained SBD model: {e}")))?;
            config.sbd.model = Some(model);
        }
        (false, None) => {}
        (true, None) => {
            return Err(BundleError::ManifestMismatch(
                "the configuration names `sbd.model_file` but the bundle carries no weights".into(),
            ));
        }
        (false, Some(_)) => {
            return Err(BundleError::ManifestMismatch(
                "the bundle carries weights the configuration does not use (no `sbd.model_file`)".into(),
            ));
        }
    }
    config.validate().map_err(|e| invalid(e.message().to_string()))?;
    Ok(config)
}

/// The contents of a bundle to build.
#[derive(Debug, Clone)]
pub struct BundleSources {
    /// The policy configuration (TOML); its `name` and `version` become the manifest's.
    pub config_toml: String,
    /// The trained weights the configuration's `sbd.model_file` names, if it names one.
    pub weights: Option<Vec<u8>>,
    /// The policy component.
    pub component: Vec<u8>,
    /// The canary file (JSON).
    pub canary_json: Vec<u8>,
    /// The publisher's key, recorded in the manifest.
    pub key_id: KeyId,
    /// Creation time, Unix milliseconds.
    pub created_at: u64,
}

impl BundleSources {
    /// Reads a policy TOML (and the weights its `sbd.model_file` names, relative to it), a
    /// component file (the embedded default component when `None`) and a canary file.
    pub fn read(
        config: &Path,
        component: Option<&Path>,
        canary: &Path,
        key_id: KeyId,
        created_at: u64,
    ) -> Result<BundleSources, BundleError> {
        let config_toml = std::fs::read_to_string(config).map_err(io(config))?;
        let table: toml::Table = toml::from_str(&config_toml).map_err(|e| {
            BundleError::InvalidConfig(format!("`{}`: {}", config.display(), e.message().trim()))
        })?;
        let model_file = table.get("sbd").and_then(|s| s.get("model_file")).and_then(toml::Value::as_str);
        let weights = match model_file {
            Some(file) => {
                let path = config.parent().unwrap_or_else(|| Path::new(".")).join(file);
                Some(std::fs::read(&path).map_err(io(&path))?)
            }
            None => None,
        };
        let component = match component {
            Some(path) => std::fs::read(path).map_err(io(path))?,
            None => sbd_runtime::DEFAULT_COMPONENT.to_vec(),
        };
        let canary_json = std::fs::read(canary).map_err(io(canary))?;
        Ok(BundleSources { config_toml, weights, component, canary_json, key_id, created_at })
    }
}

fn entry(path: &str, bytes: &[u8]) -> FileEntry {
    FileEntry { path: path.into(), sha256: sha256_hex(bytes), size: bytes.len() as u64 }
}

/// Builds an unsigned bundle in `out` (created; it must not exist or be empty), after checking
/// that the configuration and canary are valid. Sign it with [`sign`].
pub fn build(sources: &BundleSources, out: &Path) -> Result<Manifest, BundleError> {
    let config = parse_config(&sources.config_toml, sources.weights.as_deref())?;
    semver::Version::parse(&config.version).map_err(|e| {
        BundleError::InvalidConfig(format!("`version` `{}` is not a semantic version: {e}", config.version))
    })?;
    Canary::from_json(&sources.canary_json).map_err(BundleError::InvalidCanary)?;
    if out.exists() {
        let empty = std::fs::read_dir(out).map_err(io(out))?.next().is_none();
        if !empty {
            return Err(BundleError::OutputExists(out.to_path_buf()));
        }
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        name: config.name.clone(),
        version: config.version.clone(),
        created_at: sources.created_at,
        key_id: sources.key_id.to_string(),
        component: entry(COMPONENT_FILE, &sources.component),
        config: entry(CONFIG_FILE, sources.config_toml.as_bytes()),
        weights: sources.weights.as_deref().map(|w| entry(WEIGHTS_FILE, w)),
        canary: entry(CANARY_FILE, &sources.canary_json),
    };
    let mut files: Vec<(&str, &[u8])> = vec![
        (COMPONENT_FILE, &sources.component),
        (CONFIG_FILE, sources.config_toml.as_bytes()),
        (CANARY_FILE, &sources.canary_json),
    ];
    if let Some(weights) = &sources.weights {
        files.push((WEIGHTS_FILE, weights));
    }
    let manifest_text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| BundleError::MalformedManifest(e.to_string()))?
        + "\n";
    let signatures = serde_json::to_string_pretty(&SignatureFile::default())
        .map_err(|e| BundleError::MalformedSignatures(e.to_string()))?
        + "\n";
    files.push((MANIFEST_FILE, manifest_text.as_bytes()));
    files.push((SIGNATURES_FILE, signatures.as_bytes()));
    std::fs::create_dir_all(out).map_err(io(out))?;
    for (name, bytes) in files {
        let path = out.join(name);
        write_atomic(&path, bytes).map_err(io(&path))?;
    }
    Ok(manifest)
}

/// Adds (or replaces) `key`'s signature over the bundle's manifest in `signatures.json`.
pub fn sign(dir: &Path, key: &KeyPair) -> Result<Manifest, BundleError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest_bytes = std::fs::read(&manifest_path).map_err(io(&manifest_path))?;
    let manifest = parse_manifest(&manifest_bytes)?;
    let signatures_path = dir.join(SIGNATURES_FILE);
    let mut signatures = match std::fs::read(&signatures_path) {
        Ok(bytes) => parse_signatures(&bytes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SignatureFile::default(),
        Err(e) => return Err(io(&signatures_path)(e)),
    };
    let signature = key.sign(&Manifest::signing_message(&manifest_bytes));
    let id = key.id().to_string();
    signatures.signatures.retain(|s| s.key_id != id);
    signatures.signatures.push(SignatureEntry {
        key_id: id,
        algorithm: ALGORITHM.into(),
        signature: base64url(&signature.to_bytes()),
    });
    let text = serde_json::to_string_pretty(&signatures)
        .map_err(|e| BundleError::MalformedSignatures(e.to_string()))?
        + "\n";
    write_atomic(&signatures_path, text.as_bytes()).map_err(io(&signatures_path))?;
    Ok(manifest)
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest, BundleError> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| BundleError::MalformedManifest(e.to_string()))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(BundleError::MalformedManifest(format!(
            "`format` is {}, this host reads {MANIFEST_FORMAT}",
            manifest.format
        )));
    }
    if manifest.name.is_empty() {
        return Err(BundleError::MalformedManifest("`name` is empty".into()));
    }
    manifest.semver().map_err(|e| {
        BundleError::MalformedManifest(format!(
            "`version` `{}` is not a semantic version: {e}",
            manifest.version
        ))
    })?;
    let mut seen = Vec::new();
    for (role, file) in manifest.files() {
        let plain = !file.path.is_empty()
            && !file.path.contains(['/', '\\'])
            && file.path != "."
            && file.path != ".."
            && file.path != MANIFEST_FILE
            && file.path != SIGNATURES_FILE;
        if !plain || seen.contains(&file.path) {
            return Err(BundleError::MalformedManifest(format!(
                "`{role}.path` `{}` must be a distinct plain file name",
                file.path
            )));
        }
        seen.push(file.path.clone());
    }
    Ok(manifest)
}

fn parse_signatures(bytes: &[u8]) -> Result<SignatureFile, BundleError> {
    serde_json::from_slice(bytes).map_err(|e| BundleError::MalformedSignatures(e.to_string()))
}

/// A bundle read from disk, not yet checked: nothing in it may run.
#[derive(Debug, Clone)]
pub struct UnverifiedBundle {
    dir: PathBuf,
    manifest_bytes: Vec<u8>,
    signatures_bytes: Vec<u8>,
    files: BTreeMap<String, Vec<u8>>,
}

impl UnverifiedBundle {
    /// Reads every file of the bundle directory `dir` into memory.
    pub fn open(dir: &Path) -> Result<UnverifiedBundle, BundleError> {
        let mut files = BTreeMap::new();
        for item in std::fs::read_dir(dir).map_err(io(dir))? {
            let item = item.map_err(io(dir))?;
            let path = item.path();
            let name = item.file_name().to_string_lossy().into_owned();
            let kind = item.file_type().map_err(io(&path))?;
            if !kind.is_file() {
                return Err(BundleError::ManifestMismatch(format!(
                    "`{name}` is not a plain file; a bundle holds only the files its manifest pins"
                )));
            }
            files.insert(name, std::fs::read(&path).map_err(io(&path))?);
        }
        UnverifiedBundle::from_files(dir, files)
    }

    /// A bundle from its files' names and contents (received over the network, say); `origin`
    /// names it in errors.
    pub fn from_files(
        origin: &Path,
        mut files: BTreeMap<String, Vec<u8>>,
    ) -> Result<UnverifiedBundle, BundleError> {
        let manifest_bytes = files.remove(MANIFEST_FILE).ok_or_else(|| BundleError::Io {
            path: origin.join(MANIFEST_FILE),
            cause: std::io::ErrorKind::NotFound.into(),
        })?;
        let signatures_bytes = files.remove(SIGNATURES_FILE).unwrap_or_default();
        Ok(UnverifiedBundle { dir: origin.to_path_buf(), manifest_bytes, signatures_bytes, files })
    }

    /// The directory it was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest as written, unchecked (for `inspect`).
    pub fn manifest_unverified(&self) -> Result<Manifest, BundleError> {
        parse_manifest(&self.manifest_bytes)
    }

    /// The signature entries as written, unchecked (for `inspect`).
    pub fn signatures_unverified(&self) -> Result<SignatureFile, BundleError> {
        if self.signatures_bytes.is_empty() {
            return Ok(SignatureFile::default());
        }
        parse_signatures(&self.signatures_bytes)
    }

    /// Checks, in this order: at least one signature; every signature by a trusted key verifies
    /// over the manifest's exact bytes and at least one is by a trusted key; the manifest is
    /// well-formed; the directory holds exactly the files it pins, each with its digest and
    /// size; the configuration parses, validates and carries the manifest's name and version;
    /// the canary parses. Signatures by keys not in `trust` are ignored.
    pub fn verify(self, trust: &TrustStore) -> Result<VerifiedBundle, BundleError> {
        let signatures = self.signatures_unverified()?;
        if signatures.signatures.is_empty() {
            return Err(BundleError::Unsigned);
        }
        let message = Manifest::signing_message(&self.manifest_bytes);
        let mut signers = Vec::new();
        for entry in &signatures.signatures {
            if entry.algorithm != ALGORITHM {
                return Err(BundleError::UnsupportedAlgorithm {
                    key_id: entry.key_id.clone(),
                    algorithm: entry.algorithm.clone(),
                });
            }
            let id = KeyId::from_hex(&entry.key_id).ok_or_else(|| {
                BundleError::MalformedSignatures(format!(
                    "`key_id` `{}` is not 16 lowercase hex digits",
                    entry.key_id
                ))
            })?;
            let signature = unbase64url(&entry.signature)
                .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
                .map(|bytes| Signature::from_bytes(&bytes))
                .ok_or_else(|| {
                    BundleError::MalformedSignatures(format!(
                        "`signature` of key {id} is not 64 bytes of unpadded base64url"
                    ))
                })?;
            if signers.contains(&id) {
                return Err(BundleError::MalformedSignatures(format!("key {id} signs twice")));
            }
            // Signatures by keys this host does not trust are ignored: during a rotation the
            // bundle carries a signature by a key not every host trusts yet.
            let Some(key) = trust.get(id) else {
                continue;
            };
            if !key.verify(&message, &signature) {
                return Err(BundleError::BadSignature { key_id: id });
            }
            signers.push(id);
        }
        if signers.is_empty() {
            let ids: Vec<&str> = signatures.signatures.iter().map(|s| s.key_id.as_str()).collect();
            return Err(BundleError::UnknownKey { key_ids: ids.join(", ") });
        }
        let manifest = parse_manifest(&self.manifest_bytes)?;
        let mut files = self.files;
        let mut pinned = BTreeMap::new();
        for (role, file) in manifest.files() {
            let Some(bytes) = files.remove(&file.path) else {
                return Err(BundleError::ManifestMismatch(format!(
                    "`{}` ({role}) is pinned but missing",
                    file.path
                )));
            };
            let actual = sha256_hex(&bytes);
            if actual != file.sha256 || bytes.len() as u64 != file.size {
                return Err(BundleError::DigestMismatch {
                    file: file.path.clone(),
                    pinned: file.sha256.clone(),
                    actual,
                });
            }
            pinned.insert(role, bytes);
        }
        if let Some(extra) = files.keys().next() {
            return Err(BundleError::ManifestMismatch(format!(
                "`{extra}` is in the bundle but not in the manifest"
            )));
        }
        let mut take = |role: &str| {
            pinned.remove(role).ok_or_else(|| BundleError::ManifestMismatch(format!("no {role} file")))
        };
        let component = take("component")?;
        let config_bytes = take("config")?;
        let canary_bytes = take("canary")?;
        let weights = pinned.remove("weights");
        let config_text = std::str::from_utf8(&config_bytes)
            .map_err(|_| BundleError::InvalidConfig("the file is not UTF-8".into()))?;
        let config = parse_config(config_text, weights.as_deref())?;
        if config.name != manifest.name {
            return Err(BundleError::ManifestMismatch(format!(
                "`name` is `{}` in the manifest but `{}` in `{}`",
                manifest.name, config.name, manifest.config.path
            )));
        }
        if config.version != manifest.version {
            return Err(BundleError::ManifestMismatch(format!(
                "`version` is `{}` in the manifest but `{}` in `{}`",
                manifest.version, config.version, manifest.config.path
            )));
        }
        let canary = Canary::from_json(&canary_bytes).map_err(BundleError::InvalidCanary)?;
        let raw = RawFiles {
            manifest: self.manifest_bytes,
            signatures: self.signatures_bytes,
            config: config_bytes,
            canary: canary_bytes,
        };
        Ok(VerifiedBundle { dir: self.dir, manifest, config, canary, component, weights, signers, raw })
    }
}

#[derive(Debug, Clone)]
struct RawFiles {
    manifest: Vec<u8>,
    signatures: Vec<u8>,
    config: Vec<u8>,
    canary: Vec<u8>,
}

/// A bundle whose signatures, digests, configuration and canary were checked. Holds the exact
/// bytes that were checked.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    dir: PathBuf,
    manifest: Manifest,
    config: PolicyConfig,
    canary: Canary,
    component: Vec<u8>,
    weights: Option<Vec<u8>>,
    signers: Vec<KeyId>,
    raw: RawFiles,
}

impl VerifiedBundle {
    /// Where it was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Hex SHA-256 of the manifest's bytes: the bundle's identity (it pins every file).
    pub fn digest(&self) -> String {
        sha256_hex(&self.raw.manifest)
    }

    /// The parsed, validated configuration (with the weights in it).
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The canary.
    pub fn canary(&self) -> &Canary {
        &self.canary
    }

    /// The component's bytes.
    pub fn component(&self) -> &[u8] {
        &self.component
    }

    /// The trusted keys whose signatures verified.
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }

    /// Compiles (or loads from `cache`) the component, instantiates it with the configuration
    /// and runs the canary on it; the policy is returned only when every case passes.
    pub fn load(
        &self,
        runtime: &PolicyRuntime,
        cache: Option<&ComponentCache>,
    ) -> Result<LoadedPolicy, BundleError> {
        let component = match cache {
            Some(cache) => runtime.load_cached(&self.component, cache),
            None => runtime.load_component(&self.component),
        }
        .map_err(BundleError::Load)?;
        let config =
            self.config.to_bytes().map_err(|e| BundleError::InvalidConfig(e.message().to_string()))?;
        let policy = runtime.instantiate(&component, &config).map_err(BundleError::Load)?;
        self.canary.run(|request| policy.evaluate(request)).map_err(BundleError::CanaryFailed)?;
        Ok(policy)
    }

    /// Writes the checked bytes as a bundle directory `out` (which must not exist): the
    /// last-known-good copy. Written to a temporary sibling first, then renamed.
    pub fn write_to(&self, out: &Path) -> Result<(), BundleError> {
        let temp = crate::fsutil::temp_sibling(out);
        let result = (|| {
            std::fs::create_dir_all(&temp).map_err(io(&temp))?;
            let mut files: Vec<(&str, &[u8])> = vec![
                (MANIFEST_FILE, &self.raw.manifest),
                (SIGNATURES_FILE, &self.raw.signatures),
                (&self.manifest.component.path, &self.component),
                (&self.manifest.config.path, &self.raw.config),
                (&self.manifest.canary.path, &self.raw.canary),
            ];
            if let (Some(entry), Some(weights)) = (&self.manifest.weights, &self.weights) {
                files.push((&entry.path, weights));
            }
            for (name, bytes) in files {
                let path = temp.join(name);
                write_atomic(&path, bytes).map_err(io(&path))?;
            }
            std::fs::rename(&temp, out).map_err(io(out))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&temp);
        }
        result
    }
}
