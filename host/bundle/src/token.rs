//! Delegation tokens: the signed chain a child presents when it delegates further (AG-396
//! "intermediate": the token is signed at every level, so depth counters and chain history
//! cannot be tampered with; mandate narrowing is re-checked at every level).
//!
//! A token is a chain of blocks, one per allowed delegation. Block `i` (0-based) carries the
//! link (`from` -> `to`), the child's attenuated mandate, its depth and the maximum depth, the
//! tenant it is bound to, the hop's delegation degree alpha, issue and expiry times (the issue
//! time is the link's timestamp, so a chain's deadline cannot be dodged by rewriting it), the
//! chain id, the SHA-256 of block `i - 1` (payload and signature; zeros for the root), the
//! approver of a human-approved block, and the id of its signer.
//!
//! The root is either a **root grant** (depth 0: an operator gave the root mandate to the
//! originating agent, the anchor of a governed chain; `from` names the operator) or, for
//! standalone use without a gateway, the first delegation itself (depth 1). Either way block
//! `i` has depth `root depth + i`. Each block's payload is signed with
//! Ed25519 by a key of the infrastructure (a gateway) that the verifier's trust store holds.
//! Because block `i` signs the hash of block `i - 1`, which signs the hash of `i - 2`, no field
//! of any earlier block can change without breaking a signature.
//!
//! Wire form (then unpadded base64url as text):
//!
//! ```text
//! u8 version (1) | u8 block count | per block: u16 big-endian payload length | payload | 64-byte signature
//! payload = postcard(Block)    signed message = "sbd-token-block-v1\n" | payload
//! ```
//!
//! Typestate: [`UnverifiedToken::decode`] parses without trusting anything; only
//! [`UnverifiedToken::verify`] yields a [`VerifiedToken`], which can be extended with
//! [`VerifiedToken::append`]. Verification checks, cheapest first, each failure its own
//! [`TokenError`] variant: framing and version; chain ids (splicing); the root (truncation);
//! block order; depth counters; depth limits; link continuity; narrowing of every mandate with
//! `sbd_policy::attenuation::check_within` and of expiry; validity at `now`; signer keys in the
//! trust store; and last, all signatures in one batch verification.

use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use sbd_policy::attenuation::check_within;
use sbd_policy::{Grant, Mandate, Reason, Request};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::encoding::{base64url, hex, unbase64url};
use crate::keys::{KeyId, KeyPair, TrustStore};

/// The wire format version this crate writes and reads.
pub const TOKEN_VERSION: u8 = 2;
/// The most blocks a token may have (a chain deeper than any configurable maximum depth).
pub const MAX_BLOCKS: usize = 32;
/// Prepended to a block's payload before signing (domain separation from bundle signatures).
pub const BLOCK_SIGNING_CONTEXT: &[u8] = b"sbd-token-block-v1\n";
/// Prepended to a block's payload and signature when hashing it for the next block's `prev`.
pub const BLOCK_LINK_CONTEXT: &[u8] = b"sbd-token-link-v1\n";
const SIGNATURE_LEN: usize = 64;

/// A chain's identity: 16 random bytes chosen when the root block is issued.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChainId(pub [u8; 16]);

impl ChainId {
    /// A fresh random chain id.
    pub fn random() -> Result<ChainId, TokenError> {
        let mut id = [0; 16];
        getrandom::fill(&mut id).map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(ChainId(id))
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({self})")
    }
}

/// One level of the chain: what one allowed delegation granted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// The chain this block belongs to (equal in every block).
    pub chain_id: ChainId,
    /// The tenant the chain belongs to (equal in every block; empty outside a gateway).
    pub tenant: String,
    /// This hop's depth: 0 for a root grant, 1 for the first delegation, +1 per block.
    pub depth: u8,
    /// The maximum depth that applied; never raised by a later block.
    pub max_depth: u8,
    /// The delegating agent (the previous block's `to`).
    pub from: String,
    /// The receiving agent, the holder of this block's mandate.
    pub to: String,
    /// The child's attenuated mandate; within the previous block's.
    pub mandate: Mandate,
    /// The delegation degree alpha granted on this hop (0 for a root grant).
    pub alpha: f64,
    /// When the block was issued, Unix milliseconds: the link's timestamp.
    pub issued_at: u64,
    /// The block is void at or after this instant; never later than the previous block's.
    pub expires_at: u64,
    /// SHA-256 of the previous block (payload and signature); zeros in the root block.
    pub prev: [u8; 32],
    /// The human who approved this hop beyond the previous block's maximum depth (an
    /// escalation decision or a depth exception, verified by the issuer); empty otherwise.
    pub approved_by: String,
    /// The key that signs this block.
    pub signer: KeyId,
    /// 16 random bytes: two delegations with equal fields still get distinct blocks (a block's
    /// hash, after its issue time, names the grant it records).
    pub nonce: [u8; 16],
}

/// An allowed delegation, as the block for it records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delegation {
    /// The tenant the chain belongs to (empty outside a gateway).
    pub tenant: String,
    /// The delegation degree granted (the grant's `alpha`).
    pub alpha: f64,
    /// The human who approved the hop beyond the maximum depth, if any.
    pub approved_by: String,
    /// The delegating agent.
    pub from: String,
    /// The receiving agent.
    pub to: String,
    /// The child's mandate (the grant's `child_mandate`).
    pub mandate: Mandate,
    /// The maximum depth that applied (the grant's `max_depth`).
    pub max_depth: u8,
    /// Issue time, Unix milliseconds (the request's `now`).
    pub issued_at: u64,
    /// Expiry of the token block, Unix milliseconds.
    pub expires_at: u64,
}

impl Delegation {
    /// The delegation an allowed `request` with `grant` made; the block expires with the child
    /// mandate or at `expires_at`, whichever is first.
    pub fn from_grant(request: &Request, grant: &Grant, expires_at: u64) -> Delegation {
        Delegation {
            tenant: String::new(),
            alpha: grant.alpha,
            approved_by: String::new(),
            from: request.from.id.clone(),
            to: request.to.id.clone(),
            mandate: grant.child_mandate.clone(),
            max_depth: grant.max_depth,
            issued_at: request.now,
            expires_at: expires_at.min(grant.child_mandate.expires_at),
        }
    }
}

/// Why a token was refused. Each tampering has its own variant; `index` is the 0-based block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The text is not unpadded base64url.
    #[error("the token is not unpadded base64url")]
    NotBase64,
    /// The bytes are not a token.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// Another wire version.
    #[error("token version {0} is not supported (this host reads version {TOKEN_VERSION})")]
    UnsupportedVersion(u8),
    /// No block at all.
    #[error("the token has no blocks")]
    Empty,
    /// More blocks than [`MAX_BLOCKS`].
    #[error("the token has {0} blocks; at most {MAX_BLOCKS} are accepted")]
    TooManyBlocks(usize),
    /// A block bound to another tenant than the root's.
    #[error("block {index} is bound to another tenant than the root block")]
    ForeignTenant {
        /// The block.
        index: usize,
    },
    /// A block of another chain was spliced in.
    #[error("block {index} belongs to chain {found}, not {expected}: spliced from another chain")]
    ForeignBlock {
        /// The block.
        index: usize,
        /// The root's chain id.
        expected: ChainId,
        /// The block's chain id.
        found: ChainId,
    },
    /// Blocks are missing: the first is not a root, or a depth is skipped.
    #[error("blocks are missing before block {index} (truncated chain)")]
    Truncated {
        /// The first block after the gap.
        index: usize,
    },
    /// The blocks are in the wrong order.
    #[error("block {index} is out of order: it follows a block that comes after it")]
    Reordered {
        /// The misplaced block.
        index: usize,
    },
    /// A block does not hash-link to the one before: that one was altered.
    #[error("block {index} does not follow block {previous}: an earlier block was altered", previous = index.saturating_sub(1))]
    BrokenLink {
        /// The block whose `prev` does not match.
        index: usize,
    },
    /// A depth counter differs from the block's position.
    #[error("block {index} says depth {found}, but its position makes it depth {expected}")]
    DepthMismatch {
        /// The block.
        index: usize,
        /// The depth written.
        found: u8,
        /// The depth its position implies.
        expected: u8,
    },
    /// Depth plus remaining hops exceed the maximum depth.
    #[error(
        "block {index}: depth {depth} plus {remaining} remaining hops exceeds the maximum depth {max_depth}"
    )]
    DepthExceeded {
        /// The block.
        index: usize,
        /// Its depth.
        depth: u8,
        /// Its mandate's remaining depth.
        remaining: u8,
        /// Its maximum depth.
        max_depth: u8,
    },
    /// A block raises the maximum depth.
    #[error("block {index} raises the maximum depth from {parent} to {child}")]
    MaxDepthRaised {
        /// The block.
        index: usize,
        /// The previous block's maximum.
        parent: u8,
        /// This block's maximum.
        child: u8,
    },
    /// The delegator is not the holder of the previous block.
    #[error("block {index}: `{from}` delegates, but the previous block was granted to `{holder}`")]
    NotHolder {
        /// The block.
        index: usize,
        /// Its delegator.
        from: String,
        /// The previous block's receiver.
        holder: String,
    },
    /// A block's mandate or expiry is wider than the previous block's.
    #[error("block {index} widens the mandate: {message}")]
    Widened {
        /// The block.
        index: usize,
        /// The attenuation rule broken (`budget-widened`, ..., `expiry-widened`).
        reason: Reason,
        /// Which field, and by how much.
        message: String,
    },
    /// A block has expired.
    #[error("block {index} expired at {expires_at} (now {now})")]
    Expired {
        /// The block.
        index: usize,
        /// Its expiry.
        expires_at: u64,
        /// The verification time.
        now: u64,
    },
    /// A block is issued in the future.
    #[error("block {index} is issued at {issued_at}, after now ({now})")]
    NotYetValid {
        /// The block.
        index: usize,
        /// Its issue time.
        issued_at: u64,
        /// The verification time.
        now: u64,
    },
    /// A block's signer is not in the trust store.
    #[error("block {index} is signed by key {key_id}, which is not in the trust store")]
    UnknownSigner {
        /// The block.
        index: usize,
        /// The signer named.
        key_id: KeyId,
    },
    /// A block's signature does not verify.
    #[error("the signature of block {index} does not verify")]
    BadSignature {
        /// The block.
        index: usize,
    },
    /// No randomness for a chain id.
    #[error("no randomness for a chain id: {0}")]
    Random(String),
}

impl TokenError {
    /// A stable kebab-case name per variant, for logs and API error bodies.
    pub fn name(&self) -> &'static str {
        match self {
            TokenError::NotBase64 => "not-base64url",
            TokenError::Malformed(_) => "malformed",
            TokenError::UnsupportedVersion(_) => "unsupported-version",
            TokenError::Empty => "empty",
            TokenError::TooManyBlocks(_) => "too-many-blocks",
            TokenError::ForeignBlock { .. } => "foreign-block",
            TokenError::ForeignTenant { .. } => "foreign-tenant",
            TokenError::Truncated { .. } => "truncated",
            TokenError::Reordered { .. } => "reordered",
            TokenError::BrokenLink { .. } => "broken-link",
            TokenError::DepthMismatch { .. } => "depth-mismatch",
            TokenError::DepthExceeded { .. } => "depth-exceeded",
            TokenError::MaxDepthRaised { .. } => "max-depth-raised",
            TokenError::NotHolder { .. } => "not-holder",
            TokenError::Widened { .. } => "widened",
            TokenError::Expired { .. } => "expired",
            TokenError::NotYetValid { .. } => "not-yet-valid",
            TokenError::UnknownSigner { .. } => "unknown-signer",
            TokenError::BadSignature { .. } => "bad-signature",
            TokenError::Random(_) => "no-randomness",
        }
    }
}

/// A block with the exact bytes it was signed as.
#[derive(Debug, Clone, PartialEq)]
struct SignedBlock {
    payload: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
    block: Block,
    /// SHA-256 over the link context, the payload and the signature: what the next block's
    /// `prev` must be.
    hash: [u8; 32],
}

impl SignedBlock {
    fn new(payload: Vec<u8>, signature: [u8; SIGNATURE_LEN], block: Block) -> SignedBlock {
        let mut hasher = Sha256::new();
        hasher.update(BLOCK_LINK_CONTEXT);
        hasher.update(&payload);
        hasher.update(signature);
        SignedBlock { hash: hasher.finalize().into(), payload, signature, block }
    }

    fn message(&self) -> Vec<u8> {
        let mut message = Vec::with_capacity(BLOCK_SIGNING_CONTEXT.len() + self.payload.len());
        message.extend_from_slice(BLOCK_SIGNING_CONTEXT);
        message.extend_from_slice(&self.payload);
        message
    }

    fn sign(block: Block, key: &KeyPair) -> Result<SignedBlock, TokenError> {
        let payload = postcard::to_allocvec(&block)
            .map_err(|e| TokenError::Malformed(format!("cannot encode a block: {e}")))?;
        if payload.len() > usize::from(u16::MAX) {
            return Err(TokenError::Malformed(format!("a block of {} bytes is too large", payload.len())));
        }
        let mut message = BLOCK_SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(&payload);
        let signature = key.sign(&message).to_bytes();
        Ok(SignedBlock::new(payload, signature, block))
    }
}

fn encode_blocks<'a>(blocks: impl Iterator<Item = &'a SignedBlock>, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + count * 256);
    out.push(TOKEN_VERSION);
    // INVARIANT: at most MAX_BLOCKS (32) blocks and payloads under 64 KiB, checked on creation.
    out.push(u8::try_from(count).unwrap_or(u8::MAX));
    for block in blocks {
        out.extend_from_slice(&u16::try_from(block.payload.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&block.payload);
        out.extend_from_slice(&block.signature);
    }
    out
}

/// A token parsed from its wire form, nothing checked beyond the framing. Only
/// [`UnverifiedToken::verify`] makes it usable.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedToken {
    blocks: Vec<SignedBlock>,
}

impl UnverifiedToken {
    /// Parses the text form (unpadded base64url).
    pub fn decode(text: &str) -> Result<UnverifiedToken, TokenError> {
        let bytes = unbase64url(text.trim()).ok_or(TokenError::NotBase64)?;
        UnverifiedToken::from_bytes(&bytes)
    }

    /// Parses the binary form. Refuses trailing bytes and payloads that are not exactly one
    /// block, so each accepted token has one byte form.
    pub fn from_bytes(bytes: &[u8]) -> Result<UnverifiedToken, TokenError> {
        let short = || TokenError::Malformed("the token ends early".into());
        let (&version, rest) = bytes.split_first().ok_or(TokenError::Empty)?;
        if version != TOKEN_VERSION {
            return Err(TokenError::UnsupportedVersion(version));
        }
        let (&count, mut rest) = rest.split_first().ok_or_else(short)?;
        let count = usize::from(count);
        if count == 0 {
            return Err(TokenError::Empty);
        }
        if count > MAX_BLOCKS {
            return Err(TokenError::TooManyBlocks(count));
        }
        let mut blocks = Vec::with_capacity(count);
        for index in 0..count {
            let (len, after) = rest.split_at_checked(2).ok_or_else(short)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let (payload, after) = after.split_at_checked(len).ok_or_else(short)?;
            let (signature, after) = after.split_at_checked(SIGNATURE_LEN).ok_or_else(short)?;
            rest = after;
            let block: Block = match postcard::take_from_bytes::<Block>(payload) {
                Ok((block, [])) => block,
                Ok((_, extra)) => {
                    return Err(TokenError::Malformed(format!(
                        "block {index} has {} trailing bytes",
                        extra.len()
                    )));
                }
                Err(e) => return Err(TokenError::Malformed(format!("block {index}: {e}"))),
            };
            let mut sig = [0; SIGNATURE_LEN];
            sig.copy_from_slice(signature);
            blocks.push(SignedBlock::new(payload.to_vec(), sig, block));
        }
        if !rest.is_empty() {
            return Err(TokenError::Malformed(format!("{} bytes after the last block", rest.len())));
        }
        Ok(UnverifiedToken { blocks })
    }

    /// The blocks as written, unverified (for inspection only).
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks.iter().map(|b| &b.block)
    }

    /// Checks everything (see the module documentation) at time `now` (Unix milliseconds)
    /// against the keys in `trust`.
    pub fn verify(self, trust: &TrustStore, now: u64) -> Result<VerifiedToken, TokenError> {
        self.verify_inner(trust, now, None)
    }

    /// [`UnverifiedToken::verify`], skipping the signatures of a prefix that `cache` holds as
    /// verified before (every other check still runs, the signers' trust included), and
    /// remembering this chain. A child presenting the token its parent presented earlier then
    /// costs one signature verification, not one per level.
    pub fn verify_cached(
        self,
        trust: &TrustStore,
        now: u64,
        cache: &VerifiedPrefixes,
    ) -> Result<VerifiedToken, TokenError> {
        self.verify_inner(trust, now, Some(cache))
    }

    fn verify_inner(
        self,
        trust: &TrustStore,
        now: u64,
        cache: Option<&VerifiedPrefixes>,
    ) -> Result<VerifiedToken, TokenError> {
        check_structure(&self.blocks)?;
        for (index, block) in self.blocks.iter().enumerate() {
            let previous = index.checked_sub(1).and_then(|i| self.blocks.get(i)).map(|b| &b.block);
            check_attenuation(previous, &block.block, index)?;
        }
        for (index, block) in self.blocks.iter().enumerate() {
            let block = &block.block;
            if block.expires_at <= now {
                return Err(TokenError::Expired { index, expires_at: block.expires_at, now });
            }
            if block.issued_at > now {
                return Err(TokenError::NotYetValid { index, issued_at: block.issued_at, now });
            }
        }
        let mut keys: Vec<VerifyingKey> = Vec::with_capacity(self.blocks.len());
        for (index, block) in self.blocks.iter().enumerate() {
            let key = trust
                .get(block.block.signer)
                .ok_or(TokenError::UnknownSigner { index, key_id: block.block.signer })?;
            keys.push(*key.verifying_key());
        }
        // INVARIANT: check_structure proved every block's `prev` equals the hash of the block
        // before, and a hash covers the payload (with its own `prev`) and the signature: a
        // cached hash of block k therefore vouches for blocks 0..=k byte for byte.
        let skip = cache.map_or(0, |c| c.verified_prefix(&self.blocks));
        let (fresh_blocks, fresh_keys) =
            (self.blocks.get(skip..).unwrap_or(&[]), keys.get(skip..).unwrap_or(&[]));
        verify_signatures(fresh_blocks, fresh_keys).map_err(|e| match e {
            TokenError::BadSignature { index } => TokenError::BadSignature { index: index + skip },
            other => other,
        })?;
        if let Some(cache) = cache {
            cache.remember(&self.blocks);
        }
        let mut earlier = self.blocks;
        let tip = earlier.pop().ok_or(TokenError::Empty)?;
        Ok(VerifiedToken { earlier, tip })
    }
}

/// Chain ids, root, order, depth counters and hash links.
fn check_structure(blocks: &[SignedBlock]) -> Result<(), TokenError> {
    let root = blocks.first().ok_or(TokenError::Empty)?;
    let chain = root.block.chain_id;
    if let Some(index) = blocks.iter().position(|b| b.block.chain_id != chain) {
        let found = blocks.get(index).map_or(chain, |b| b.block.chain_id);
        return Err(TokenError::ForeignBlock { index, expected: chain, found });
    }
    if root.block.prev != [0; 32] {
        return Err(TokenError::Truncated { index: 0 });
    }
    if root.block.depth > 1 {
        return Err(TokenError::DepthMismatch { index: 0, found: root.block.depth, expected: 1 });
    }
    if let Some(index) = blocks.iter().position(|b| b.block.tenant != root.block.tenant) {
        return Err(TokenError::ForeignTenant { index });
    }
    let root_depth = usize::from(root.block.depth);
    for (index, pair) in blocks.windows(2).enumerate() {
        let index = index + 1;
        let (before, block) = (&pair[0], &pair[1]);
        let expected = u8::try_from(index + root_depth).unwrap_or(u8::MAX);
        if block.block.prev == before.hash {
            if block.block.depth != expected {
                return Err(TokenError::DepthMismatch { index, found: block.block.depth, expected });
            }
            continue;
        }
        // The link is broken: say why as precisely as the blocks allow.
        if blocks.iter().skip(index).any(|later| later.hash == block.block.prev) {
            return Err(TokenError::Reordered { index });
        }
        if block.block.depth > before.block.depth.saturating_add(1) {
            return Err(TokenError::Truncated { index });
        }
        return Err(TokenError::BrokenLink { index });
    }
    Ok(())
}

/// Depth limits, continuity and narrowing of `block` against the block before it.
fn check_attenuation(previous: Option<&Block>, block: &Block, index: usize) -> Result<(), TokenError> {
    let remaining = block.mandate.remaining_depth;
    if u16::from(block.depth) + u16::from(remaining) > u16::from(block.max_depth) {
        return Err(TokenError::DepthExceeded {
            index,
            depth: block.depth,
            remaining,
            max_depth: block.max_depth,
        });
    }
    let Some(previous) = previous else {
        return Ok(());
    };
    // A human approval (recorded in the block, verified by the gateway that signed it) may
    // raise the maximum depth: AG-396 4.12 exceptions and approved depth-limit escalations.
    if block.max_depth > previous.max_depth && block.approved_by.is_empty() {
        return Err(TokenError::MaxDepthRaised { index, parent: previous.max_depth, child: block.max_depth });
    }
    if block.from != previous.to {
        return Err(TokenError::NotHolder { index, from: block.from.clone(), holder: previous.to.clone() });
    }
    check_within(&previous.mandate, &block.mandate).map_err(|denial| TokenError::Widened {
        index,
        reason: denial.reason,
        message: denial.message,
    })?;
    if block.expires_at > previous.expires_at {
        return Err(TokenError::Widened {
            index,
            reason: Reason::ExpiryWidened,
            message: format!(
                "`expires_at`: {} is later than the previous block's {}",
                block.expires_at, previous.expires_at
            ),
        });
    }
    Ok(())
}

/// Every block's signature, in one batch when there are several; on a batch failure each is
/// checked alone to name the bad one.
fn verify_signatures(blocks: &[SignedBlock], keys: &[VerifyingKey]) -> Result<(), TokenError> {
    if blocks.is_empty() {
        return Ok(());
    }
    let messages: Vec<Vec<u8>> = blocks.iter().map(SignedBlock::message).collect();
    let signatures: Vec<Signature> = blocks.iter().map(|b| Signature::from_bytes(&b.signature)).collect();
    if let ([message], [signature], [key]) = (messages.as_slice(), signatures.as_slice(), keys) {
        return key.verify_strict(message, signature).map_err(|_| TokenError::BadSignature { index: 0 });
    }
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    if ed25519_dalek::verify_batch(&refs, &signatures, keys).is_ok() {
        return Ok(());
    }
    for (index, ((message, signature), key)) in messages.iter().zip(&signatures).zip(keys).enumerate() {
        if key.verify_strict(message, signature).is_err() {
            return Err(TokenError::BadSignature { index });
        }
    }
    // The batch failed but every single verification passed: refuse all the same.
    Err(TokenError::BadSignature { index: 0 })
}

/// The hashes of blocks whose chains verified, so that verifying a token that extends one
/// checks only the new blocks' signatures. Bounded (the oldest entries are forgotten first) and
/// shareable between threads.
#[derive(Debug)]
pub struct VerifiedPrefixes {
    capacity: usize,
    inner: std::sync::Mutex<PrefixSet>,
}

#[derive(Debug, Default)]
struct PrefixSet {
    hashes: std::collections::HashSet<[u8; 32]>,
    order: std::collections::VecDeque<[u8; 32]>,
}

impl VerifiedPrefixes {
    /// A cache of at most `capacity` block hashes.
    pub fn new(capacity: usize) -> VerifiedPrefixes {
        VerifiedPrefixes { capacity, inner: std::sync::Mutex::new(PrefixSet::default()) }
    }

    /// How many block hashes it holds.
    pub fn len(&self) -> usize {
        self.lock().hashes.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PrefixSet> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many leading blocks of `blocks` were verified before.
    fn verified_prefix(&self, blocks: &[SignedBlock]) -> usize {
        let set = self.lock();
        blocks.iter().rposition(|b| set.hashes.contains(&b.hash)).map_or(0, |i| i + 1)
    }

    fn remember(&self, blocks: &[SignedBlock]) {
        let mut set = self.lock();
        for block in blocks {
            if set.hashes.insert(block.hash) {
                set.order.push_back(block.hash);
            }
        }
        while set.order.len() > self.capacity {
            if let Some(old) = set.order.pop_front() {
                set.hashes.remove(&old);
            }
        }
    }
}

/// A verified chain: every check passed at the time given to
/// [`UnverifiedToken::verify`]. What the holder (the last block's `to`) may do is
/// [`VerifiedToken::mandate`].
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// Every block but the last, root first.
    earlier: Vec<SignedBlock>,
    /// The last block (a token always has one).
    tip: SignedBlock,
}

impl VerifiedToken {
    /// Issues the root token for the first delegation of a new chain, signed with `key` (an
    /// unanchored chain: its root mandate is the delegator's claim).
    pub fn issue(
        key: &KeyPair,
        chain_id: ChainId,
        delegation: Delegation,
    ) -> Result<VerifiedToken, TokenError> {
        VerifiedToken::root(key, chain_id, 1, delegation)
    }

    /// Issues a root grant: the anchor of a governed chain, in which `grant.from` (an operator)
    /// gives `grant.to` (the originating agent) the root mandate. Its holder's first delegation
    /// is appended at depth 1.
    pub fn grant(key: &KeyPair, chain_id: ChainId, grant: Delegation) -> Result<VerifiedToken, TokenError> {
        VerifiedToken::root(key, chain_id, 0, grant)
    }

    fn root(key: &KeyPair, chain_id: ChainId, depth: u8, delegation: Delegation) -> Result<VerifiedToken, TokenError> {
        let block = new_block(chain_id, depth, [0; 32], key.id(), delegation)?;
        check_attenuation(None, &block, 0)?;
        check_lifetime(&block, 0)?;
        Ok(VerifiedToken { earlier: Vec::new(), tip: SignedBlock::sign(block, key)? })
    }

    /// The token for the child of an allowed delegation by this token's holder: a new block
    /// signed with `key`, refused unless it only narrows the last block (continuity, depth,
    /// mandate, expiry).
    pub fn append(&self, key: &KeyPair, delegation: Delegation) -> Result<VerifiedToken, TokenError> {
        let index = self.earlier.len() + 1;
        if index >= MAX_BLOCKS {
            return Err(TokenError::TooManyBlocks(index + 1));
        }
        let last = self.last();
        let depth = last.depth.saturating_add(1);
        let prev = self.tip.hash;
        let block = new_block(last.chain_id, depth, prev, key.id(), delegation)?;
        check_attenuation(Some(last), &block, index)?;
        check_lifetime(&block, index)?;
        let tip = SignedBlock::sign(block, key)?;
        let mut earlier = self.earlier.clone();
        earlier.push(self.tip.clone());
        Ok(VerifiedToken { earlier, tip })
    }

    fn last(&self) -> &Block {
        &self.tip.block
    }

    fn all(&self) -> impl Iterator<Item = &SignedBlock> {
        self.earlier.iter().chain(std::iter::once(&self.tip))
    }

    /// The chain id.
    pub fn chain_id(&self) -> ChainId {
        self.last().chain_id
    }

    /// The depth of the last delegation (0 for a bare root grant).
    pub fn depth(&self) -> u8 {
        self.last().depth
    }

    /// The maximum depth in force.
    pub fn max_depth(&self) -> u8 {
        self.last().max_depth
    }

    /// The agent the token was last granted to: the one who may present it.
    pub fn holder(&self) -> &str {
        &self.last().to
    }

    /// The holder's mandate: the parent mandate of its next delegation.
    pub fn mandate(&self) -> &Mandate {
        &self.last().mandate
    }

    /// When the last block was issued (Unix milliseconds): the holder's grant time.
    pub fn issued_at(&self) -> u64 {
        self.last().issued_at
    }

    /// When the token stops being valid (the last block's expiry; earlier blocks expire no
    /// sooner, since expiry only narrows).
    pub fn expires_at(&self) -> u64 {
        self.last().expires_at
    }

    /// Every block, root first.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.all().map(|b| &b.block)
    }

    /// Whether the root is a root grant (depth 0), i.e. the chain is anchored in an operator's
    /// grant rather than in its first delegator's claim.
    pub fn is_anchored(&self) -> bool {
        self.all().next().is_some_and(|b| b.block.depth == 0)
    }

    /// The tenant the chain is bound to.
    pub fn tenant(&self) -> &str {
        &self.last().tenant
    }

    /// SHA-256 of every block (payload and signature), root first: the blocks' identities.
    pub fn block_hashes(&self) -> impl Iterator<Item = [u8; 32]> + '_ {
        self.all().map(|b| b.hash)
    }

    /// SHA-256 of the last block: the identity of the holder's grant.
    pub fn tip_hash(&self) -> [u8; 32] {
        self.tip.hash
    }

    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_blocks(self.all(), self.earlier.len() + 1)
    }

    /// The text form: unpadded base64url of [`VerifiedToken::to_bytes`].
    pub fn encode(&self) -> String {
        base64url(&self.to_bytes())
    }
}

impl fmt::Display for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

fn new_block(chain_id: ChainId, depth: u8, prev: [u8; 32], signer: KeyId, d: Delegation) -> Result<Block, TokenError> {
    let mut nonce = [0; 16];
    getrandom::fill(&mut nonce).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(Block {
        nonce,
        chain_id,
        tenant: d.tenant,
        alpha: d.alpha,
        approved_by: d.approved_by,
        depth,
        max_depth: d.max_depth,
        from: d.from,
        to: d.to,
        mandate: d.mandate,
        issued_at: d.issued_at,
        expires_at: d.expires_at,
        prev,
        signer,
    })
}

fn check_lifetime(block: &Block, index: usize) -> Result<(), TokenError> {
    if block.expires_at <= block.issued_at {
        return Err(TokenError::Expired { index, expires_at: block.expires_at, now: block.issued_at });
    }
    Ok(())
}
