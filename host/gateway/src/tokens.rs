//! Delegation tokens at the gateway: verify the token a delegator presents (signed block
//! chain, `sbd-bundle`'s `token` module), check that it is the chain the request claims, and
//! issue the child's token for an allowed hop, signed with the gateway's key.
//!
//! The gateway's Ed25519 key lives in `<data_dir>/gateway.key` (minted on first start, mode
//! 0600); tokens verify against a trust store holding its public key plus, optionally, the
//! keys of a trust-store file (other gateways of the same deployment).

use std::path::Path;

use sbd_bundle::token::{ChainId, Delegation, UnverifiedToken, VerifiedToken};
use sbd_bundle::{KeyPair, TrustStore};
use sbd_policy::{Grant, Request};

use crate::error::{ApiError, ApiResult, ErrorCode};

/// The gateway's signing key and the keys whose tokens it accepts.
pub struct TokenAuthority {
    key: KeyPair,
    trust: TrustStore,
}

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
        let mut trust = match extra_trust {
            Some(p) => TrustStore::read(p)?,
            None => TrustStore::new(),
        };
        trust.add(key.public(), "this gateway".into());
        Ok(TokenAuthority { key, trust })
    }

    /// A token authority from a key (tests, embedding).
    pub fn new(key: KeyPair, mut trust: TrustStore) -> TokenAuthority {
        trust.add(key.public(), "this gateway".into());
        TokenAuthority { key, trust }
    }

    /// The gateway's signing key (it also signs the trace's chain heads).
    pub fn signing_key(&self) -> &KeyPair {
        &self.key
    }

    /// The gateway's public key: what `sbd trace verify` and token verifiers need.
    pub fn public_key(&self) -> sbd_bundle::PublicKey {
        self.key.public()
    }

    /// Verifies `token` at `now` and checks it is the chain `request` claims: the same links
    /// (from, to, depth) in order, held by the delegator, whose mandate is the request's parent
    /// mandate, and (when given) the same chain id. A refusal is 401 (the token itself) or 403
    /// (a valid token for another chain).
    pub fn verify_for(&self, token: &str, request: &Request, chain_id: Option<&str>, now: u64) -> ApiResult<VerifiedToken> {
        let verified = UnverifiedToken::decode(token)
            .and_then(|t| t.verify(&self.trust, now))
            .map_err(|e| ApiError::new(ErrorCode::Unauthorized, format!("delegation token refused ({}): {e}", e.name())))?;
        let mismatch = |what: &str| ApiError::forbidden(format!("the delegation token does not match the request: {what}"));
        if let Some(id) = chain_id
            && verified.chain_id().to_string() != id
        {
            return Err(mismatch("another chain id"));
        }
        if verified.holder() != request.from.id {
            return Err(mismatch("the delegator does not hold it"));
        }
        if verified.mandate() != &request.parent_mandate {
            return Err(mismatch("the parent mandate is not the token's mandate"));
        }
        let links: Vec<(&str, &str, u8)> =
            request.chain.iter().map(|l| (l.from.as_str(), l.to.as_str(), l.depth)).collect();
        let blocks: Vec<(&str, &str, u8)> = verified.blocks().map(|b| (b.from.as_str(), b.to.as_str(), b.depth)).collect();
        if links != blocks {
            return Err(mismatch("the chain's links are not the token's blocks"));
        }
        Ok(verified)
    }

    /// The child's token for an allowed hop: a new root for a first hop, else `parent` plus
    /// one block.
    pub fn issue(&self, parent: Option<&VerifiedToken>, chain_id: ChainId, request: &Request, grant: &Grant) -> ApiResult<String> {
        let delegation = Delegation::from_grant(request, grant, grant.child_mandate.expires_at);
        let token = match parent {
            Some(p) => p.append(&self.key, delegation),
            None => VerifiedToken::issue(&self.key, chain_id, delegation),
        }
        .map_err(|e| ApiError::internal(format!("cannot issue the child token: {e}")))?;
        Ok(token.encode())
    }
}

/// A chain id from its 32-hex text form.
pub fn parse_chain_id(text: &str) -> Option<ChainId> {
    if text.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(ChainId(id))
}

/// A fresh random chain id.
pub fn new_chain_id() -> ApiResult<ChainId> {
    ChainId::random().map_err(|e| ApiError::internal(format!("chain id: {e}")))
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
    }
}
