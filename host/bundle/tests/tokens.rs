//! Delegation tokens against tampering: every single-byte change of a small token, and each
//! kind of attack (truncation, reordering, splicing, a depth counter edit, widening, expiry, an
//! unknown signer, a bad signature) refused with its own reason. Blocks that a trusted key
//! signs although they break the rules (a misbehaving signer) are made with `forge`.
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

use proptest::prelude::*;
use sbd_bundle::token::{BLOCK_LINK_CONTEXT, BLOCK_SIGNING_CONTEXT, TOKEN_VERSION};
use sbd_bundle::{
    Block, ChainId, Delegation, KeyPair, TokenError, TrustStore, UnverifiedToken, VerifiedPrefixes,
    VerifiedToken,
};
use sbd_policy::{Budget, BudgetUnit, Mandate, Reason};
use sha2::{Digest, Sha256};

const NOW: u64 = 1_790_000_000_000;
const HOUR: u64 = 3_600_000;

fn key(seed: u8) -> KeyPair {
    KeyPair::from_secret(&[seed; 32])
}

fn trust() -> TrustStore {
    TrustStore::with_keys([&key(1).public()])
}

fn mandate(dollars: u64, remaining_depth: u8) -> Mandate {
    Mandate {
        value_ceiling: 500 * 100_000_000,
        action_kinds: vec!["payment.*".into(), "crm.read".into()],
        counterparties: vec!["acme".into()],
        budgets: vec![Budget { unit: BudgetUnit::UsdMicrocents, amount: dollars * 100_000_000 }],
        remaining_depth,
        expires_at: NOW + 2 * HOUR,
    }
}

const AGENTS: [&str; 10] = ["orchestrator", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"];

fn hop(level: usize, max_depth: u8) -> Delegation {
    let remaining = max_depth - u8::try_from(level + 1).expect("small");
    Delegation {
        tenant: String::new(),
        alpha: 0.7,
        approved_by: String::new(),
        from: AGENTS[level].into(),
        to: AGENTS[level + 1].into(),
        mandate: mandate(50 - level as u64, remaining),
        max_depth,
        issued_at: NOW - 1_000 + level as u64,
        expires_at: NOW + HOUR - level as u64,
    }
}

/// A valid chain of `levels` blocks signed by the trusted key.
fn chain(levels: usize, chain_id: ChainId) -> VerifiedToken {
    let max_depth = 9;
    let signer = key(1);
    let mut token = VerifiedToken::issue(&signer, chain_id, hop(0, max_depth)).expect("root");
    for level in 1..levels {
        token = token.append(&signer, hop(level, max_depth)).expect("append");
    }
    token
}

/// Splits a token's bytes into (payload, signature) per block.
fn split(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rest = &bytes[2..];
    let mut blocks = Vec::new();
    for _ in 0..bytes[1] {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        blocks.push((rest[2..2 + len].to_vec(), rest[2 + len..2 + len + 64].to_vec()));
        rest = &rest[2 + len + 64..];
    }
    assert!(rest.is_empty());
    blocks
}

/// Joins (payload, signature) pairs into a token's bytes.
fn join(blocks: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![TOKEN_VERSION, u8::try_from(blocks.len()).expect("few")];
    for (payload, signature) in blocks {
        out.extend_from_slice(&u16::try_from(payload.len()).expect("small").to_be_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(signature);
    }
    out
}

fn link_hash(payload: &[u8], signature: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(BLOCK_LINK_CONTEXT);
    hasher.update(payload);
    hasher.update(signature);
    hasher.finalize().into()
}

/// Signs arbitrary blocks the way a (misbehaving) signer would, linking each to the one before
/// unless `keep_prev` is set, and stamping each with its signer's id.
fn forge(mut blocks: Vec<Block>, signers: &[&KeyPair], keep_prev: bool) -> Vec<u8> {
    let mut signed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (i, block) in blocks.iter_mut().enumerate() {
        let signer = signers[i.min(signers.len() - 1)];
        block.signer = signer.id();
        if !keep_prev {
            block.prev = signed.last().map_or([0; 32], |(p, s)| link_hash(p, s));
        }
        let payload = postcard::to_allocvec(&*block).expect("encode");
        let mut message = BLOCK_SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(&payload);
        signed.push((payload, signer.sign(&message).to_bytes().to_vec()));
    }
    join(&signed)
}

fn verify_bytes(bytes: &[u8], now: u64) -> Result<VerifiedToken, TokenError> {
    UnverifiedToken::from_bytes(bytes)?.verify(&trust(), now)
}

#[test]
fn a_chain_verifies_and_reports_its_last_level() {
    let id = ChainId([7; 16]);
    let token = chain(3, id);
    let text = token.encode();
    let verified = UnverifiedToken::decode(&text).and_then(|t| t.verify(&trust(), NOW)).expect("verifies");
    assert_eq!(verified, token);
    assert_eq!((verified.depth(), verified.max_depth(), verified.chain_id()), (3, 9, id));
    assert_eq!(verified.holder(), "a3");
    assert_eq!(verified.mandate(), &mandate(48, 6));
    assert_eq!(verified.blocks().count(), 3);
    // Every prefix is the valid token of an agent earlier in the chain.
    let bytes = token.to_bytes();
    let blocks = split(&bytes);
    for n in 1..=3 {
        assert_eq!(verify_bytes(&join(&blocks[..n]), NOW).map(|t| t.depth()).ok(), Some(n as u8));
    }
}

#[test]
fn every_single_byte_mutation_of_a_small_token_is_rejected() {
    let bytes = chain(2, ChainId([3; 16])).to_bytes();
    assert!(verify_bytes(&bytes, NOW).is_ok());
    let mut tried = 0;
    for at in 0..bytes.len() {
        for value in 0..=255u8 {
            if value == bytes[at] {
                continue;
            }
            let mut changed = bytes.clone();
            changed[at] = value;
            assert!(verify_bytes(&changed, NOW).is_err(), "byte {at} set to {value} was accepted");
            tried += 1;
        }
    }
    assert_eq!(tried, bytes.len() * 255);
    // The same with a cache that has seen the untampered token: nothing is waved through.
    let cache = VerifiedPrefixes::new(64);
    let warm = UnverifiedToken::from_bytes(&bytes).and_then(|t| t.verify_cached(&trust(), NOW, &cache));
    assert!(warm.is_ok());
    for at in 0..bytes.len() {
        for value in 0..=255u8 {
            if value == bytes[at] {
                continue;
            }
            let mut changed = bytes.clone();
            changed[at] = value;
            let outcome =
                UnverifiedToken::from_bytes(&changed).and_then(|t| t.verify_cached(&trust(), NOW, &cache));
            assert!(outcome.is_err(), "byte {at} set to {value} was accepted with a warm cache");
        }
    }
    // And in the text form: every character replaced by every other character of the alphabet.
    let text = chain(2, ChainId([3; 16])).encode();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/";
    for (at, original) in text.char_indices() {
        for other in alphabet.chars().filter(|&c| c != original) {
            let mut changed = text.clone();
            changed.replace_range(at..at + 1, other.encode_utf8(&mut [0; 4]));
            let outcome = UnverifiedToken::decode(&changed).and_then(|t| t.verify(&trust(), NOW));
            assert!(outcome.is_err(), "character {at} set to {other} was accepted");
        }
    }
    // Dropping or adding a byte anywhere is refused too.
    for at in 0..bytes.len() {
        let mut shorter = bytes.clone();
        shorter.remove(at);
        assert!(verify_bytes(&shorter, NOW).is_err(), "removing byte {at} was accepted");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(verify_bytes(&longer, NOW), Err(TokenError::Malformed(_))));
}

#[test]
fn each_tampering_is_rejected_with_its_own_reason() {
    let token = chain(3, ChainId([1; 16]));
    let bytes = token.to_bytes();
    let blocks = split(&bytes);
    let plain: Vec<Block> = token.blocks().cloned().collect();
    let mut reasons = Vec::new();
    let mut expect = |outcome: Result<VerifiedToken, TokenError>, name: &str, what: &str| match outcome {
        Err(e) => {
            assert_eq!(e.name(), name, "{what}: {e}");
            assert!(!e.to_string().is_empty());
            reasons.push(e.name());
        }
        Ok(_) => panic!("{what} was accepted"),
    };

    // Truncation: the root dropped, or a middle block dropped.
    expect(verify_bytes(&join(&blocks[1..]), NOW), "truncated", "dropping the root");
    let without_middle = [blocks[0].clone(), blocks[2].clone()];
    assert!(matches!(verify_bytes(&join(&without_middle), NOW), Err(TokenError::Truncated { index: 1 })));
    // Reordering the last two blocks.
    let swapped = [blocks[0].clone(), blocks[2].clone(), blocks[1].clone()];
    expect(verify_bytes(&join(&swapped), NOW), "reordered", "swapping blocks 1 and 2");
    // Splicing a block of another chain (same signer, otherwise valid).
    let other = split(&chain(3, ChainId([2; 16])).to_bytes());
    let spliced = [blocks[0].clone(), other[1].clone(), blocks[2].clone()];
    expect(verify_bytes(&join(&spliced), NOW), "foreign-block", "splicing another chain's block");
    // Editing a depth counter in place (byte 17 of a payload, after the 16-byte chain id and
    // the empty tenant's length byte).
    let mut edited = blocks.clone();
    edited[2].0[17] = 2;
    expect(verify_bytes(&join(&edited), NOW), "depth-mismatch", "editing the last depth counter");
    // ... and re-signed by the trusted key: still refused for the counter, not the signature.
    let mut redepth = plain.clone();
    redepth[1].depth = 5;
    assert!(matches!(
        verify_bytes(&forge(redepth, &[&key(1)], false), NOW),
        Err(TokenError::DepthMismatch { index: 1, found: 5, expected: 2 })
    ));
    // Widening the mandate, even when the trusted key signs it.
    let mut wider = plain.clone();
    wider[2].mandate.budgets[0].amount = 49 * 100_000_000 + 1;
    expect(verify_bytes(&forge(wider, &[&key(1)], false), NOW), "widened", "widening a budget");
    let mut more_actions = plain.clone();
    more_actions[1].mandate.action_kinds.push("email.send".into());
    assert!(matches!(
        verify_bytes(&forge(more_actions, &[&key(1)], false), NOW),
        Err(TokenError::Widened { index: 1, reason: Reason::ActionKindsWidened, .. })
    ));
    let mut later = plain.clone();
    later[2].expires_at = plain[1].expires_at + 1;
    assert!(matches!(
        verify_bytes(&forge(later, &[&key(1)], false), NOW),
        Err(TokenError::Widened { index: 2, reason: Reason::ExpiryWidened, .. })
    ));
    // An expired block (the last one expires first).
    expect(verify_bytes(&bytes, plain[2].expires_at), "expired", "verifying after expiry");
    // An unknown signer for one block.
    expect(
        verify_bytes(&forge(plain.clone(), &[&key(1), &key(1), &key(2)], false), NOW),
        "unknown-signer",
        "a block signed by an untrusted key",
    );
    // The last block's signature changed; a middle block's (the next block's link breaks).
    let mut bad = blocks.clone();
    bad[2].1[10] ^= 1;
    expect(verify_bytes(&join(&bad), NOW), "bad-signature", "a changed signature");
    let mut middle = blocks.clone();
    middle[1].1[10] ^= 1;
    expect(verify_bytes(&join(&middle), NOW), "broken-link", "a changed earlier signature");
    // Raising the maximum depth; delegating a mandate one does not hold.
    let mut raised = plain.clone();
    raised[2].max_depth = 10;
    expect(verify_bytes(&forge(raised, &[&key(1)], false), NOW), "max-depth-raised", "raising max depth");
    let mut stranger = plain.clone();
    stranger[2].from = "mallory".into();
    expect(verify_bytes(&forge(stranger, &[&key(1)], false), NOW), "not-holder", "a non-holder delegating");
    let mut deep = plain;
    deep[0].mandate.remaining_depth = 9;
    expect(
        verify_bytes(&forge(deep, &[&key(1)], false), NOW),
        "depth-exceeded",
        "more hops than the maximum",
    );

    let mut distinct = reasons.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), reasons.len(), "reasons repeat: {reasons:?}");
}

#[test]
fn the_prefix_cache_skips_only_signatures_it_has_verified() {
    let cache = VerifiedPrefixes::new(8);
    let parent = chain(2, ChainId([5; 16]));
    let verify_cached = |bytes: &[u8], trust: &TrustStore| {
        UnverifiedToken::from_bytes(bytes).and_then(|t| t.verify_cached(trust, NOW, &cache))
    };
    assert!(verify_cached(&parent.to_bytes(), &trust()).is_ok());
    assert_eq!(cache.len(), 2);
    // The child's token: the parent's blocks are known, the new one is checked.
    let child = parent.append(&key(1), hop(2, 9)).expect("append");
    assert!(verify_cached(&child.to_bytes(), &trust()).is_ok());
    // A new last block with a bad signature is still caught, and named by its index.
    let mut blocks = split(&parent.append(&key(1), hop(2, 9)).expect("append").to_bytes());
    blocks[2].1[0] ^= 1;
    let fresh = VerifiedPrefixes::new(8);
    let _ =
        UnverifiedToken::from_bytes(&parent.to_bytes()).and_then(|t| t.verify_cached(&trust(), NOW, &fresh));
    assert!(matches!(
        UnverifiedToken::from_bytes(&join(&blocks)).and_then(|t| t.verify_cached(&trust(), NOW, &fresh)),
        Err(TokenError::BadSignature { index: 2 })
    ));
    // Cached blocks by a key that is no longer trusted are refused.
    let retired = TrustStore::with_keys([&key(2).public()]);
    assert!(matches!(
        verify_cached(&child.to_bytes(), &retired),
        Err(TokenError::UnknownSigner { index: 0, .. })
    ));
    // The cache stays within its capacity.
    for seed in 0..4 {
        assert!(verify_cached(&chain(3, ChainId([seed + 10; 16])).to_bytes(), &trust()).is_ok());
    }
    assert!(cache.len() <= 8);
}

#[test]
fn append_refuses_what_verification_would() {
    let token = chain(2, ChainId([4; 16]));
    let signer = key(1);
    let mut wider = hop(2, 9);
    wider.mandate.value_ceiling += 1;
    assert!(matches!(token.append(&signer, wider), Err(TokenError::Widened { index: 2, .. })));
    let mut stranger = hop(2, 9);
    stranger.from = "mallory".into();
    assert!(matches!(token.append(&signer, stranger), Err(TokenError::NotHolder { .. })));
    let mut stale = hop(2, 9);
    stale.expires_at = stale.issued_at;
    assert!(matches!(token.append(&signer, stale), Err(TokenError::Expired { .. })));
    assert!(token.append(&signer, hop(2, 9)).is_ok());
}

#[test]
fn a_grant_becomes_a_delegation() {
    let request = sbd_e2e::allowed_request();
    let config = sbd_policy::PolicyConfig::named("default", "1");
    let policy = sbd_policy::Policy::new(config).expect("valid");
    let sbd_policy::Verdict::Allow(grant) = policy.evaluate(&request) else { panic!("allowed") };
    let delegation = Delegation::from_grant(&request, &grant, u64::MAX);
    assert_eq!((delegation.from.as_str(), delegation.to.as_str()), ("ledger-agent", "fx-agent"));
    assert_eq!(delegation.mandate, grant.child_mandate);
    assert_eq!(delegation.expires_at, grant.child_mandate.expires_at);
    assert_eq!(delegation.max_depth, grant.max_depth);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Chains built by appending narrowed grants always verify, at any depth up to 9; the
    /// same chain is refused once any block's budget is widened past its parent's.
    #[test]
    fn appended_chains_verify_and_widened_ones_do_not(levels in 1usize..=9, widen in 1usize..9, seed in any::<[u8; 16]>()) {
        let token = chain(levels, ChainId(seed));
        prop_assert!(verify_bytes(&token.to_bytes(), NOW).is_ok());
        if widen < levels {
            let mut blocks: Vec<Block> = token.blocks().cloned().collect();
            blocks[widen].mandate.budgets[0].amount = blocks[widen - 1].mandate.budgets[0].amount + 1;
            let outcome = verify_bytes(&forge(blocks, &[&key(1)], false), NOW);
            let is_widened = matches!(outcome, Err(TokenError::Widened { index, .. }) if index == widen);
            prop_assert!(is_widened);
        }
    }
}
