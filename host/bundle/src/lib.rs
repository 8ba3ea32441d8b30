//! Signed policy bundles, hot swap while serving, and signed delegation tokens.
//!
//! ```text
//! keys      KeyPair (Ed25519), PublicKey, KeyId, TrustStore (a JSON file of trusted keys)
//! manifest  manifest.json: name, semver, created_at, key_id, SHA-256 + size of every file
//! bundle    build -> sign -> UnverifiedBundle::open -> verify(&TrustStore) -> VerifiedBundle
//!           -> load (compile, instantiate, run the canary) -> LoadedPolicy
//! canary    golden requests and the verdicts a bundle must give before it serves
//! hot       HotPolicy: ArcSwap of the active policy, activate (rollback check, canary,
//!           last-known-good persisted), start from the last-known-good, directory watcher
//! token     delegation tokens: a hash-linked chain of Ed25519-signed blocks, one per allowed
//!           delegation; verification re-checks that every block only narrows the one before
//! ```
//!
//! Everything that can be refused is refused with its own error variant naming the file, field
//! or block at fault, and a refusal never changes what is serving.
//!
//! A gateway issues the root token for an originator's allowed delegation, and the child's token
//! when the holder delegates further; whoever receives a token verifies it against the trust
//! store:
//!
//! ```
//! use sbd_bundle::{ChainId, Delegation, KeyPair, TokenError, TrustStore, UnverifiedToken, VerifiedToken};
//! use sbd_policy::Mandate;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let gateway = KeyPair::generate()?;
//! let trust = TrustStore::with_keys([&gateway.public()]);
//! let now = 1_790_000_000_000;
//! let mandate = |ceiling, remaining_depth| Mandate {
//!     value_ceiling: ceiling,
//!     action_kinds: vec!["payment.refund".into()],
//!     counterparties: vec!["acme".into()],
//!     budgets: vec![],
//!     remaining_depth,
//!     expires_at: now + 60_000,
//! };
//! let hop = |from: &str, to: &str, ceiling, remaining| Delegation {
//!     tenant: String::new(), alpha: 0.7, approved_by: String::new(),
//!     from: from.into(), to: to.into(), mandate: mandate(ceiling, remaining),
//!     max_depth: 3, issued_at: now, expires_at: now + 60_000,
//! };
//! let root = VerifiedToken::issue(&gateway, ChainId::random()?, hop("planner", "refunds", 100, 2))?;
//! let child = root.append(&gateway, hop("refunds", "ledger", 50, 1))?.encode();
//!
//! // The receiver: decode, verify, and use the last level.
//! let verified = UnverifiedToken::decode(&child)?.verify(&trust, now + 1)?;
//! assert_eq!((verified.depth(), verified.holder()), (2, "ledger"));
//! assert_eq!(verified.mandate().value_ceiling, 50);
//!
//! // Widening is refused when issuing, and so is a token from a key the store does not hold.
//! assert!(matches!(root.append(&gateway, hop("refunds", "ledger", 500, 1)), Err(TokenError::Widened { .. })));
//! let other = TrustStore::with_keys([&KeyPair::generate()?.public()]);
//! assert!(matches!(UnverifiedToken::decode(&child)?.verify(&other, now + 1), Err(TokenError::UnknownSigner { .. })));
//! # Ok(())
//! # }
//! ```

pub mod bundle;
pub mod canary;
mod encoding;
mod fsutil;
pub mod hot;
pub mod keys;
pub mod manifest;
pub mod token;

pub use bundle::{BundleError, BundleSources, UnverifiedBundle, VerifiedBundle};
pub use canary::{Canary, CanaryError};
pub use hot::{Activation, ActivePolicy, DirectoryScanner, HotOptions, HotPolicy, WatchEvent, Watcher};
pub use keys::{KeyError, KeyId, KeyPair, PublicKey, TrustStore};
pub use manifest::Manifest;
pub use token::{Block, ChainId, Delegation, TokenError, UnverifiedToken, VerifiedPrefixes, VerifiedToken};
