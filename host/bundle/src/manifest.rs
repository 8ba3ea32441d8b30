//! The bundle manifest (`manifest.json`) and its detached signatures (`signatures.json`).
//!
//! The manifest names the policy, its semantic version and creation time, the publisher's key,
//! and the SHA-256 and size of every other file of the bundle. Signatures are Ed25519 over
//! [`SIGNING_CONTEXT`] followed by the manifest file's exact bytes: the verifier checks the bytes
//! it read, never a re-serialisation, so JSON's lack of a canonical form does not matter.

use serde::{Deserialize, Serialize};

/// The manifest's file name inside a bundle directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The signatures' file name inside a bundle directory.
pub const SIGNATURES_FILE: &str = "signatures.json";
/// The manifest format this crate writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;
/// Prepended to the manifest bytes before signing (domain separation: a bundle signature can
/// never be replayed as a token signature or the reverse).
pub const SIGNING_CONTEXT: &[u8] = b"sbd-bundle-manifest-v1\n";
/// The only signature algorithm accepted.
pub const ALGORITHM: &str = "ed25519";

/// The component's file name in a bundle.
pub const COMPONENT_FILE: &str = "component.wasm";
/// The policy configuration's (the constraint set's) file name in a bundle.
pub const CONFIG_FILE: &str = "policy.toml";
/// The trained weights' file name in a bundle, when there are weights.
pub const WEIGHTS_FILE: &str = "weights.postcard";
/// The canary's file name in a bundle.
pub const CANARY_FILE: &str = "canary.json";

/// One file of the bundle, as the manifest pins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// The file's name in the bundle directory (a plain name, no directories).
    pub path: String,
    /// Lowercase hex SHA-256 of its contents.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What a bundle is and which exact files make it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The policy's name; equal to `name` in the configuration.
    pub name: String,
    /// The policy's semantic version; equal to `version` in the configuration.
    pub version: String,
    /// Creation time, Unix milliseconds.
    pub created_at: u64,
    /// Id of the publisher's key. Hosts accept any signature by a key they trust, so a key
    /// rotation adds a signature without rebuilding the bundle.
    pub key_id: String,
    /// The policy component (WebAssembly).
    pub component: FileEntry,
    /// The policy configuration: the constraint set (TOML).
    pub config: FileEntry,
    /// Trained SBD weights (postcard `LearnedModel`), when the configuration uses a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<FileEntry>,
    /// Golden requests and the verdicts the bundle must give them before it is activated.
    pub canary: FileEntry,
}

impl Manifest {
    /// The version as semver (the manifest is only accepted when it parses).
    pub fn semver(&self) -> Result<semver::Version, semver::Error> {
        semver::Version::parse(&self.version)
    }

    /// Every file the manifest pins, with its role.
    pub fn files(&self) -> Vec<(&'static str, &FileEntry)> {
        let mut files = vec![("component", &self.component), ("config", &self.config)];
        if let Some(weights) = &self.weights {
            files.push(("weights", weights));
        }
        files.push(("canary", &self.canary));
        files
    }

    /// The message a signature covers: [`SIGNING_CONTEXT`] then the manifest file's bytes.
    pub fn signing_message(manifest_bytes: &[u8]) -> Vec<u8> {
        let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + manifest_bytes.len());
        message.extend_from_slice(SIGNING_CONTEXT);
        message.extend_from_slice(manifest_bytes);
        message
    }
}

/// `signatures.json`: every signature over the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// The signatures, one per key.
    pub signatures: Vec<SignatureEntry>,
}

/// One signature over the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// Id of the signing key (16 hex digits).
    pub key_id: String,
    /// Always [`ALGORITHM`]: there is no algorithm negotiation to attack.
    pub algorithm: String,
    /// The 64-byte signature, unpadded base64url.
    pub signature: String,
}
