//! Delegation tokens at the gateway: issue root grants, verify the token a delegator presents
//! (signed block chain, `sbd-bundle`'s `token` module: bound to its tenant, anchored in a root
//! grant), and issue the child's token for an allowed hop, signed with the gateway's key.
//!
//! The gateway's Ed25519 key lives in `<data_dir>/gateway.key` (minted on first start, mode
//! 0600); tokens verify against a trust store holding its public key plus, optionally, the
//! keys of a trust-store file (other gateways of the same deployment).

use std::path::Path;

use sbd_bundle::token::{ChainId, Delegation, UnverifiedToken, VerifiedPrefixes, VerifiedToken};
use sbd_bundle::{KeyPair, TrustStore};
use sbd_policy::{Grant, Link, Mandate, Request};

use crate::error::{GatewayError, GatewayResult, ErrorCode};

/// The gateway's signing key and the keys whose tokens it accepts.
pub struct TokenAuthority {
    key: KeyPair,
    trust: TrustStore,
    /// Block hashes whose signatures verified: a child presenting its parent's chain plus one
    /// block costs one signature check, not one per level.
    verified: VerifiedPrefixes,
}

/// How many verified block hashes the cache keeps.
const VERIFIED_CACHE: usize = 100_000;

/// Errors setting up the token authority.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenSetupError {
    /// The key or trust-store file could not be read or written.
    #[error("delegation token keys: {0}")]
    Key(#[from] sbd_bundle::KeyError),
}

impl TokenAuthority {
    /// Loads `<data_dir>/gateway.key`, minting it on first start; trusts its public key and
    /// every key of `extra_trust`.
    pub fn load_or_create(data_dir: &Path, extra_trust: Option<&Path>) -> Result<TokenAuthority, TokenSetupError> {
        let path = data_dir.join("gateway.key");
        let key = if path.exists() {
            KeyPair::read(&path)?
        } else {
            let key = KeyPair::generate()?;
            key.write(&path)?;
            key
        };
        let trust = match extra_trust {
            Some(p) => TrustStore::read(p)?,
            None => TrustStore::new(),
        };
        Ok(TokenAuthority::new(key, trust))
    }

    /// A token authority from a key (tests, embedding).
    pub fn new(key: KeyPair, mut trust: TrustStore) -> TokenAuthority {
        trust.add(key.public(), "this gateway".into());
        TokenAuthority { key, trust, verified: VerifiedPrefixes::new(VERIFIED_CACHE) }
    }

    /// The gateway's signing key (it also signs the trace's chain heads).
    pub fn signing_key(&self) -> &KeyPair {
        &self.key
    }

    /// The gateway's public key: what `sbd trace verify` and token verifiers need.
    pub fn public_key(&self) -> sbd_bundle::PublicKey {
        self.key.public()
    }

    /// Verifies `token` at `now` and that it is usable by `tenant`: signed by a trusted
    /// gateway, bound to `tenant`, and anchored in a root grant. A forged, altered, expired or
    /// foreign token is 401; a valid token of another tenant or an unanchored chain is 403.
    pub fn verify(&self, token: &str, tenant: &str, now: u64) -> GatewayResult<VerifiedToken> {
        let verified = UnverifiedToken::decode(token)
            .and_then(|t| t.verify_cached(&self.trust, now, &self.verified))
            .map_err(|e| GatewayError::new(ErrorCode::Unauthorized, format!("delegation token refused ({}): {e}", e.name())))?;
        if verified.tenant() != tenant {
            return Err(GatewayError::forbidden("the delegation token belongs to another tenant"));
        }
        if !verified.is_anchored() {
            return Err(GatewayError::forbidden(
                "the delegation token is not anchored in a root grant (its chain started from a delegator's own claim)",
            ));
        }
        Ok(verified)
    }

    /// A root grant: `issuer` (an operator) gives `holder` the root `mandate` of a new chain.
    pub fn grant_root(&self, chain_id: ChainId, tenant: &str, issuer: &str, holder: &str, mandate: &Mandate, now: u64) -> GatewayResult<VerifiedToken> {
        let grant = Delegation {
            tenant: tenant.to_string(),
            alpha: 0.0,
            approved_by: String::new(),
            from: issuer.to_string(),
            to: holder.to_string(),
            mandate: mandate.clone(),
            // The root does not cap depth beyond its mandate's `remaining_depth`; the policy's
            // maximum applies from the first delegation on.
            max_depth: u8::MAX,
            issued_at: now,
            expires_at: mandate.expires_at,
        };
        VerifiedToken::grant(&self.key, chain_id, grant)
            .map_err(|e| GatewayError::invalid(format!("cannot grant this root mandate: {e}")))
    }

    /// The child's token: `parent` plus one block for the allowed hop.
    pub fn append(&self, parent: &VerifiedToken, delegation: Delegation) -> GatewayResult<VerifiedToken> {
        parent.append(&self.key, delegation).map_err(|e| GatewayError::internal(format!("cannot issue the child token: {e}")))
    }

    /// The child's token for an allowed hop (`grant`) of `request` under `parent`, bound to
    /// `tenant`; `approved_by` names the human whose verified approval let the hop exceed the
    /// parent's maximum depth.
    pub fn issue(&self, parent: &VerifiedToken, tenant: &str, request: &Request, grant: &Grant, approved_by: Option<&str>) -> GatewayResult<VerifiedToken> {
        let mut delegation = Delegation::from_grant(request, grant, grant.child_mandate.expires_at);
        delegation.tenant = tenant.to_string();
        delegation.approved_by = approved_by.unwrap_or_default().to_string();
        self.append(parent, delegation)
    }
}

/// The completed hops a verified token records (its blocks below the root grant), as the
/// rules take them: the link timestamps and degrees are the signed ones, not the caller's.
pub fn links_of(token: &VerifiedToken) -> Vec<Link> {
    token
        .blocks()
        .filter(|b| b.depth > 0)
        .map(|b| Link { from: b.from.clone(), to: b.to.clone(), depth: b.depth, alpha: b.alpha, at: b.issued_at, reason: String::new() })
        .collect()
}

/// The id of the grant a token's last block records: 64 lowercase hex digits, the block's
/// issue time (12 digits of Unix milliseconds) then the first 26 bytes of its hash (payload
/// and signature).
///
/// The time comes first so that new grants sort after old ones: the grant tables' keys are
/// appended at the end of their B-trees. A bare hash put every insert on a random page, one
/// write-ahead-log page per key per commit (docs/performance.md). The hash part (208 bits)
/// keeps ids unique and unpredictable; only the keys of the gateway's trust store sign blocks,
/// so an id cannot be chosen by a caller.
pub fn grant_id(token: &VerifiedToken) -> String {
    use std::fmt::Write as _;
    // 12 hex digits hold every millisecond up to the year 10889.
    let time = token.issued_at().min((1 << 48) - 1);
    let mut id = String::with_capacity(64);
    let _ = write!(id, "{time:012x}");
    for b in &token.tip_hash()[..26] {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// The id a token's grant had before ids led with the issue time: the full block hash in hex.
/// Grants stored then are still found under it ([`grant_ids`]), and a delegation's
/// idempotency hash uses it (it names the block without the time prefix).
pub fn block_hash_id(token: &VerifiedToken) -> String {
    token.tip_hash().iter().map(|b| format!("{b:02x}")).collect()
}

/// The ids a token's grant may be stored under, current form first: a store written before
/// time-ordered ids keeps its grants under [`block_hash_id`].
pub fn grant_ids(token: &VerifiedToken) -> [String; 2] {
    [grant_id(token), block_hash_id(token)]
}

/// A chain id from its text form: exactly 32 lowercase hex digits, the one spelling the
/// gateway writes. (`from_str_radix` alone also takes `A-F` and a `+` sign, so one id would
/// have many spellings, and a depth exception recorded under another spelling would never
/// match its chain.)
pub fn parse_chain_id(text: &str) -> Option<ChainId> {
    if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(ChainId(id))
}

/// A fresh random chain id.
pub fn new_chain_id() -> GatewayResult<ChainId> {
    ChainId::random().map_err(|e| GatewayError::internal(format!("chain id: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_round_trip_through_their_text() {
        let id = ChainId([7; 16]);
        assert_eq!(parse_chain_id(&id.to_string()).map(|c| c.0), Some([7; 16]));
        assert!(parse_chain_id("xyz").is_none());
        assert!(parse_chain_id(&"g".repeat(32)).is_none());
        // one spelling only: no capitals, no sign
        let lettered = ChainId([0xab; 16]).to_string();
        assert_eq!(parse_chain_id(&lettered).map(|c| c.0), Some([0xab; 16]));
        assert!(parse_chain_id(&lettered.to_uppercase()).is_none());
        assert!(parse_chain_id(&"+7".repeat(16)).is_none());
        assert_eq!(parse_chain_id(&"07".repeat(16)).map(|c| c.0), Some([7; 16]));
    }
}
