//! Delegation traces (AG-396 4.6, Advanced level; AG-398 attribution): append-only events with
//! delegator, delegate, depth, time, task context, verdict and policy version, hash-chained per
//! chain and signed by the gateway.
//!
//! Every stored event carries its position in its chain (`pos`, 1-based), the previous event's
//! hash and its own hash:
//!
//! ```text
//! hash = SHA-256("sbd-trace-event-v1\0" || prev_hash || canonical(seq, pos, tenant, chain_id,
//!        delegator, delegate, depth, at_ms, decision, reason_code, policy_version, body))
//! ```
//!
//! where `prev_hash` is 32 zero bytes for the first event, integers are 8 bytes big-endian,
//! strings are an 8-byte big-endian length then their UTF-8 bytes, `reason_code` is a 0 byte
//! (none) or a 1 byte and the code, and `body` is the exact stored JSON text (so the hash never
//! depends on how a JSON library orders keys).
//!
//! **Seals.** The gateway signs once per group commit of the store, not once per event: every
//! event appended in one batch is a leaf of one Merkle tree (RFC 9162, section 2.1: leaves
//! hashed with a 0 byte in front, nodes with a 1 byte), and the batch's seal is an Ed25519
//! signature, with the key its delegation tokens are signed with, over
//!
//! ```text
//! leaf      = SHA-256(0x00 || "sbd-trace-leaf-v1\0" || canonical(tenant, chain_id, pos, event hash))
//! signature = Ed25519("sbd-trace-seal-v1\0" || seal_id || tree_size || root)
//! ```
//!
//! Each event row names its seal and leaf index; `trace_seals` keeps every seal with its
//! leaves, so an export carries, for each event, the audit path from its leaf to a signed root.
//! Every event is therefore individually signed, as before, for one signature per batch
//! instead of one per event (the signature was the largest single cost of a delegation on the
//! store's writer thread: docs/performance.md). Events written before seals carry their own
//! signature of the head they were, and still verify:
//!
//! ```text
//! signature = Ed25519("sbd-trace-head-v1\0" || canonical(tenant, chain_id, count, head_hash))
//! ```
//!
//! A database writer without the gateway's key can edit, delete, insert or reorder rows, or
//! recompute the hashes, but cannot make a leaf's path reach a signed root: [`verify_records`]
//! names the first event that does not verify. The tables also refuse UPDATE and DELETE
//! (triggers); a trace lives in the store file and survives restarts.

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};
use sbd_bundle::{KeyPair, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{ErrorCode, ErrorDetails, GatewayError, GatewayResult};
use crate::repo::TraceStore;
use crate::util::hex;

/// The domain-separation prefix of an event hash.
pub const EVENT_DOMAIN: &[u8] = b"sbd-trace-event-v1\0";
/// The domain-separation prefix of a signed chain head (events before seals).
pub const HEAD_DOMAIN: &[u8] = b"sbd-trace-head-v1\0";
/// The domain-separation prefix of a seal's leaf data.
pub const LEAF_DOMAIN: &[u8] = b"sbd-trace-leaf-v1\0";
/// The domain-separation prefix of a signed seal.
pub const SEAL_DOMAIN: &[u8] = b"sbd-trace-seal-v1\0";
/// The `format` of a chain export (the body of `GET /v1/chains/{id}`): v2 adds seals and audit
/// paths (`proof.inclusions`).
pub const EXPORT_FORMAT: &str = "sbd-trace-v2";
/// The format of exports from before seals, still verified.
pub const EXPORT_FORMAT_V1: &str = "sbd-trace-v1";

/// One event to append.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// The owning tenant.
    pub tenant: &'a str,
    /// The chain.
    pub chain_id: &'a str,
    /// Who delegates (or reports, for non-delegation events).
    pub delegator: &'a str,
    /// To whom.
    pub delegate: &'a str,
    /// Hop depth (1 for the originator's first hand-off).
    pub depth: i64,
    /// Server time.
    pub at_ms: i64,
    /// `allow`, `escalate`, `deny`, or a non-decision kind (`outcome`, `escalation-decision`,
    /// `warning`).
    pub decision: &'a str,
    /// The reason code, if any.
    pub reason_code: Option<u16>,
    /// `name@version` of the policy.
    pub policy_version: &'a str,
    /// Everything else (task, verdict, reservations, ids): a JSON object's text, stored and
    /// hashed exactly as given.
    pub body: String,
}

/// A stored event exactly as it was hashed: every column of its row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Sequence number: unique in its tenant and increasing there (on the embedded store,
    /// across tenants too).
    pub seq: i64,
    /// Position in its chain, from 1.
    pub pos: i64,
    /// The owning tenant.
    pub tenant: String,
    /// The chain.
    pub chain_id: String,
    /// Who delegates (or reports).
    pub delegator: String,
    /// To whom.
    pub delegate: String,
    /// Hop depth.
    pub depth: i64,
    /// Server time.
    pub at_ms: i64,
    /// The decision or event kind.
    pub decision: String,
    /// The reason code, if any.
    pub reason_code: Option<i64>,
    /// `name@version` of the policy.
    pub policy_version: String,
    /// The exact stored JSON text of the rest of the event.
    pub body: String,
    /// Hex SHA-256 of the previous event of the chain (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this event (see the module documentation).
    pub hash: String,
    /// The id of the key that signed the event (its seal, or its head before seals).
    pub key_id: String,
    /// Before seals: hex Ed25519 signature of the chain head ending at this event. Empty for a
    /// sealed event.
    pub signature: String,
    /// The seal covering this event (a stored column, not part of the event hash: the leaf
    /// commits to the hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_id: Option<i64>,
    /// The event's leaf index in its seal's tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf: Option<i64>,
}

/// A signed chain head: the chain had `count` events, the last one hashing to `head_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    /// The owning tenant.
    pub tenant: String,
    /// The chain.
    pub chain_id: String,
    /// How many events the chain had.
    pub count: i64,
    /// Hex hash of its last event.
    pub head_hash: String,
    /// The signing key's id (16 hex).
    pub key_id: String,
    /// Hex Ed25519 signature over [`head_message`].
    pub signature: String,
}

/// What an append returns: the new event's sequence number, position, hash and place in the
/// batch's seal (signed when the batch commits; [`Seal::receipt`] makes the receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// Sequence number (increasing in its tenant).
    pub seq: i64,
    /// Position in the chain, from 1.
    pub pos: i64,
    /// Hex hash of the event.
    pub hash: String,
    /// The seal that will cover it.
    pub seal_id: i64,
    /// Its leaf index in that seal.
    pub leaf: i64,
}

/// A signed seal: the root of one batch's Merkle tree of event leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealRecord {
    /// Its number (increasing).
    pub seal_id: i64,
    /// How many leaves the tree has.
    pub tree_size: i64,
    /// Hex root hash.
    pub root: String,
    /// The signing key's id (16 hex).
    pub key_id: String,
    /// Hex Ed25519 signature over [`seal_message`].
    pub signature: String,
}

/// A client's proof that an event was written: its position and hash, and the audit path from
/// its leaf to a seal signed by the gateway. A client keeps it: a later export with fewer
/// events, or another hash at this position, is proven rolled back ([`verify_receipts`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Sequence number (increasing in its tenant).
    pub seq: i64,
    /// Position in the chain, from 1.
    pub pos: i64,
    /// Hex hash of the event.
    pub hash: String,
    /// Its leaf index in the seal.
    pub leaf: i64,
    /// Hex sibling hashes from the leaf up (RFC 9162, section 2.1.3).
    pub path: Vec<String>,
    /// The signed seal.
    pub seal: SealRecord,
}

/// A batch's seal with its tree, to hand out audit paths.
#[derive(Debug, Clone)]
pub struct Seal {
    /// The signed root.
    pub record: SealRecord,
    /// The tree's levels, leaves first; the last level is the root.
    levels: Vec<Vec<[u8; 32]>>,
}

impl Seal {
    /// Signs the Merkle root of `leaves` as seal `seal_id` with `signer`.
    pub(crate) fn sign(seal_id: i64, signer: &KeyPair, leaves: Vec<[u8; 32]>) -> GatewayResult<Seal> {
        let tree_size = i64::try_from(leaves.len()).map_err(GatewayError::internal)?;
        let levels = tree_levels(leaves);
        let root = levels.last().and_then(|l| l.first()).copied().ok_or_else(|| GatewayError::internal("an empty seal tree"))?;
        let record = SealRecord {
            seal_id,
            tree_size,
            root: hex(&root),
            key_id: signer.id().to_string(),
            signature: hex(&signer.sign(&seal_message(seal_id, tree_size, &root)).to_bytes()),
        };
        Ok(Seal { record, levels })
    }

    /// The leaves of the sealed tree, in order.
    pub(crate) fn leaves(&self) -> &[[u8; 32]] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// The receipt of an event appended in this seal's batch.
    pub fn receipt(&self, a: &Appended) -> Receipt {
        debug_assert_eq!(a.seal_id, self.record.seal_id, "a receipt from another batch's seal");
        Receipt {
            seq: a.seq,
            pos: a.pos,
            hash: a.hash.clone(),
            leaf: a.leaf,
            path: audit_path(&self.levels, usize::try_from(a.leaf).unwrap_or(usize::MAX)).iter().map(|h| hex(h)).collect(),
            seal: self.record.clone(),
        }
    }
}

/// A receipt from before seals: the signed head of the chain after the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadReceipt {
    /// Sequence number (increasing in its tenant).
    pub seq: i64,
    /// Position in the chain, from 1.
    pub pos: i64,
    /// Hex hash of the event.
    pub hash: String,
    /// The signed head after it.
    pub head: SignedHead,
}

/// Any receipt a client may hold: a sealed one, or one from before seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClientReceipt {
    /// Made with seals.
    Sealed(Receipt),
    /// Made before seals.
    Head(HeadReceipt),
}

impl ClientReceipt {
    fn event(&self) -> (i64, i64, &str) {
        match self {
            ClientReceipt::Sealed(r) => (r.seq, r.pos, &r.hash),
            ClientReceipt::Head(r) => (r.seq, r.pos, &r.hash),
        }
    }

    /// Whether the receipt proves, under `key`, that chain `chain_id` of `tenant` had its event
    /// at its position.
    pub fn signed(&self, tenant: &str, chain_id: &str, key: &PublicKey) -> bool {
        match self {
            ClientReceipt::Sealed(r) => receipt_signed(r, tenant, chain_id, key),
            ClientReceipt::Head(r) => {
                let h = &r.head;
                head_signature_ok(h, key)
                    && h.tenant == tenant
                    && h.chain_id == chain_id
                    && h.count == r.pos
                    && h.head_hash == r.hash
            }
        }
    }
}

/// An event's audit path in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inclusion {
    /// The event's sequence number.
    pub seq: i64,
    /// Hex sibling hashes from its leaf up.
    pub path: Vec<String>,
}

/// The seals covering a chain's sealed events and each one's audit path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inclusions {
    /// Every seal a record names.
    pub seals: Vec<SealRecord>,
    /// One path per sealed record.
    pub paths: Vec<Inclusion>,
}

/// Where and why a chain does not verify: the first bad event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Break {
    /// The stored sequence number of the first bad event (`None`: events are missing after the
    /// last one, or the head itself is bad).
    pub seq: Option<i64>,
    /// The position in the chain where verification failed.
    pub pos: i64,
    /// `edited`, `unsigned`, `deleted`, `reordered`, `relinked`, `foreign`, `truncated`,
    /// `head`, `view` or `malformed`.
    pub kind: String,
    /// What is wrong, for people.
    pub message: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "broken at seq {seq} (position {}): {}: {}", self.pos, self.kind, self.message),
            None => write!(f, "broken at position {}: {}: {}", self.pos, self.kind, self.message),
        }
    }
}

fn put_int(h: &mut Sha256, v: i64) {
    h.update(v.to_be_bytes());
}

fn put_str(h: &mut Sha256, s: &str) {
    h.update(u64::try_from(s.len()).unwrap_or(u64::MAX).to_be_bytes());
    h.update(s.as_bytes());
}

/// The hash of an event: its canonical bytes after `prev`.
pub fn event_hash(prev: &[u8; 32], r: &Record) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(EVENT_DOMAIN);
    h.update(prev);
    put_int(&mut h, r.seq);
    put_int(&mut h, r.pos);
    put_str(&mut h, &r.tenant);
    put_str(&mut h, &r.chain_id);
    put_str(&mut h, &r.delegator);
    put_str(&mut h, &r.delegate);
    put_int(&mut h, r.depth);
    put_int(&mut h, r.at_ms);
    put_str(&mut h, &r.decision);
    match r.reason_code {
        None => h.update([0u8]),
        Some(c) => {
            h.update([1u8]);
            put_int(&mut h, c);
        }
    }
    put_str(&mut h, &r.policy_version);
    put_str(&mut h, &r.body);
    h.finalize().into()
}

/// The bytes a head signature covers.
pub fn head_message(tenant: &str, chain_id: &str, count: i64, head_hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEAD_DOMAIN.len() + tenant.len() + chain_id.len() + 64);
    m.extend_from_slice(HEAD_DOMAIN);
    m.extend_from_slice(&u64::try_from(tenant.len()).unwrap_or(u64::MAX).to_be_bytes());
    m.extend_from_slice(tenant.as_bytes());
    m.extend_from_slice(&u64::try_from(chain_id.len()).unwrap_or(u64::MAX).to_be_bytes());
    m.extend_from_slice(chain_id.as_bytes());
    m.extend_from_slice(&count.to_be_bytes());
    m.extend_from_slice(head_hash);
    m
}

/// The leaf hash of an event in a seal's tree: `SHA-256(0x00 || LEAF_DOMAIN || canonical(tenant,
/// chain_id, pos, event_hash))` (RFC 9162, section 2.1.1: a 0 byte before leaf data).
pub fn leaf_hash(tenant: &str, chain_id: &str, pos: i64, event_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(LEAF_DOMAIN);
    put_str(&mut h, tenant);
    put_str(&mut h, chain_id);
    put_int(&mut h, pos);
    h.update(event_hash);
    h.finalize().into()
}

/// An interior node: `SHA-256(0x01 || left || right)` (RFC 9162, section 2.1.1).
fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The levels of the RFC 9162 tree over `leaves` (non-empty), leaves first, root last. Pairing
/// left to right and carrying an odd last node up unchanged builds the same tree as the RFC's
/// split at the largest power of two below the size.
fn tree_levels(leaves: Vec<[u8; 32]>) -> Vec<Vec<[u8; 32]>> {
    let mut levels = vec![leaves];
    while levels.last().is_some_and(|l| l.len() > 1) {
        let below = levels.last().map(Vec::as_slice).unwrap_or_default();
        let up = below.chunks(2).map(|p| if let [l, r] = p { node_hash(l, r) } else { p[0] }).collect();
        levels.push(up);
    }
    levels
}

/// The audit path of leaf `index`: the sibling at each level where there is one, leaf first.
fn audit_path(levels: &[Vec<[u8; 32]>], mut index: usize) -> Vec<[u8; 32]> {
    let mut path = Vec::new();
    for level in levels.iter().take(levels.len().saturating_sub(1)) {
        let sibling = index ^ 1;
        if let Some(h) = level.get(sibling) {
            path.push(*h);
        }
        index /= 2;
    }
    path
}

/// Whether `path` leads from `leaf` at `index` of a tree of `size` leaves to `root` (RFC 9162,
/// section 2.1.3.2, step by step).
pub fn verify_inclusion(leaf: [u8; 32], index: u64, size: u64, path: &[[u8; 32]], root: &[u8; 32]) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode, mut r) = (index, size - 1, leaf);
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// The bytes a seal's signature covers.
pub fn seal_message(seal_id: i64, tree_size: i64, root: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SEAL_DOMAIN.len() + 48);
    m.extend_from_slice(SEAL_DOMAIN);
    m.extend_from_slice(&seal_id.to_be_bytes());
    m.extend_from_slice(&tree_size.to_be_bytes());
    m.extend_from_slice(root);
    m
}

/// The events appended since the last seal on this thread: the store's writer thread runs one
/// batch at a time, and [`seal_pending`] closes it before the batch commits.
struct Pending {
    seal_id: i64,
    signer: KeyPair,
    leaves: Vec<[u8; 32]>,
}

thread_local! {
    static PENDING: std::cell::RefCell<Option<Pending>> = const { std::cell::RefCell::new(None) };
}

/// How many leaves wait for this thread's next seal (a job's mark, to undo its appends).
pub fn pending_len() -> usize {
    PENDING.with(|p| p.borrow().as_ref().map_or(0, |p| p.leaves.len()))
}

/// Forgets the leaves after the first `len`: their events were rolled back.
pub fn truncate_pending(len: usize) {
    PENDING.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            p.leaves.truncate(len);
        }
    });
}

/// Forgets every unsealed leaf: the transaction that wrote their events did not commit.
pub fn discard_pending() {
    PENDING.with(|p| p.borrow_mut().take());
}

/// Signs the Merkle root of every event appended on this thread since the last seal and
/// stores the seal, in the caller's transaction: to be called once before each commit that
/// may have appended events. `None` when nothing waits.
pub fn seal_pending(conn: &Connection, now_ms: i64) -> GatewayResult<Option<std::sync::Arc<Seal>>> {
    let Some(pending) = PENDING.with(|p| p.borrow_mut().take()) else { return Ok(None) };
    if pending.leaves.is_empty() {
        return Ok(None);
    }
    let seal = Seal::sign(pending.seal_id, &pending.signer, pending.leaves)?;
    let record = &seal.record;
    let leaves: Vec<u8> = seal.leaves().iter().flatten().copied().collect();
    conn.prepare_cached(
        "INSERT INTO trace_seals (seal_id, tree_size, root, leaves, key_id, signature, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![record.seal_id, record.tree_size, record.root, leaves, record.key_id, record.signature, now_ms])?;
    Ok(Some(std::sync::Arc::new(seal)))
}

/// The seal and leaf index the next appended event gets, opening this thread's batch (with
/// the next seal number) at its first event: the embedded store's
/// [`crate::repo::TraceStore::open_trace_leaf`].
pub(crate) fn next_leaf(conn: &Connection, signer: &KeyPair, leaf: [u8; 32]) -> GatewayResult<(i64, i64)> {
    let open = PENDING.with(|p| p.borrow().is_some());
    if !open {
        // One past every number ever handed out (AUTOINCREMENT's counter): a seal id never
        // names two trees, even after its row was deleted.
        let seal_id: i64 = conn
            .prepare_cached(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'trace_seals'), 0), \
                 COALESCE((SELECT MAX(seal_id) FROM trace_seals), 0)) + 1",
            )?
            .query_row([], |r| r.get(0))?;
        PENDING.with(|p| *p.borrow_mut() = Some(Pending { seal_id, signer: signer.clone(), leaves: Vec::new() }));
    }
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let p = p.as_mut().ok_or_else(|| GatewayError::internal("no open seal"))?;
        if p.signer.id() != signer.id() {
            return Err(GatewayError::internal("one batch of trace events signed by two keys"));
        }
        let index = i64::try_from(p.leaves.len()).map_err(GatewayError::internal)?;
        p.leaves.push(leaf);
        Ok((p.seal_id, index))
    })
}

pub(crate) fn unhex32(text: &str) -> Option<[u8; 32]> {
    unhex_n::<32>(text)
}

fn unhex_n<const N: usize>(text: &str) -> Option<[u8; N]> {
    let b = text.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(b[2 * i])? << 4) | digit(b[2 * i + 1])?;
    }
    Some(out)
}

/// Whether `h` (a head signed before seals) carries `key`'s signature over its own fields.
fn head_signature_ok(h: &SignedHead, key: &PublicKey) -> bool {
    h.key_id == key.id().to_string()
        && unhex32(&h.head_hash)
            .is_some_and(|hash| signature_ok(key, &head_message(&h.tenant, &h.chain_id, h.count, &hash), &h.signature))
}

fn signature_ok(key: &PublicKey, message: &[u8], signature_hex: &str) -> bool {
    match unhex_n::<64>(signature_hex) {
        Some(bytes) => key.verify(message, &ed25519_dalek::Signature::from_bytes(&bytes)),
        None => false,
    }
}

/// Signs one event the way events were signed before seals: fills `prev_hash`, `hash`,
/// `key_id` and `signature` of `r` (whose other fields are set) and returns the signed head
/// after it. Such events still verify; [`append`] seals per batch instead.
pub fn seal(r: &mut Record, prev: &[u8; 32], signer: &KeyPair) -> SignedHead {
    r.prev_hash = hex(prev);
    let hash = event_hash(prev, r);
    r.hash = hex(&hash);
    let signature = hex(&signer.sign(&head_message(&r.tenant, &r.chain_id, r.pos, &hash)).to_bytes());
    r.key_id = signer.id().to_string();
    r.signature = signature.clone();
    SignedHead {
        tenant: r.tenant.clone(),
        chain_id: r.chain_id.clone(),
        count: r.pos,
        head_hash: r.hash.clone(),
        key_id: r.key_id.clone(),
        signature,
    }
}

/// Appends `e` to its chain, hash-chained after the chain's head, as a leaf of the unit of
/// work's seal (on the embedded store: this thread's batch, signed by `signer` in
/// [`seal_pending`] before the batch commits); returns the event's sequence number, position,
/// hash and place in the seal.
pub fn append(store: &dyn TraceStore, e: &NewEvent<'_>, signer: &KeyPair) -> GatewayResult<Appended> {
    // The previous head, not the last stored event: a chain whose tail was deleted stays broken
    // (a position gap) instead of being silently continued from the truncated tail.
    let (count, prev) = match store.trace_head(e.tenant, e.chain_id)? {
        None => (0, [0u8; 32]),
        Some(head) if head.count >= 0 => {
            (head.count, unhex32(&head.head_hash).ok_or_else(|| GatewayError::internal("a chain's head hash is not 64 hex digits"))?)
        }
        Some(head) => return Err(GatewayError::internal(format!("chain `{}`'s stored head counts {} events", e.chain_id, head.count))),
    };
    let pos = count.checked_add(1).ok_or_else(|| GatewayError::internal("trace position overflow"))?;
    // the sequence number is part of the hash, so it is chosen before the insert
    let seq = store.next_trace_seq(e.tenant)?;
    let mut record = Record {
        seq,
        pos,
        tenant: e.tenant.to_string(),
        chain_id: e.chain_id.to_string(),
        delegator: e.delegator.to_string(),
        delegate: e.delegate.to_string(),
        depth: e.depth,
        at_ms: e.at_ms,
        decision: e.decision.to_string(),
        reason_code: e.reason_code.map(i64::from),
        policy_version: e.policy_version.to_string(),
        body: e.body.clone(),
        prev_hash: hex(&prev),
        hash: String::new(),
        key_id: signer.id().to_string(),
        signature: String::new(),
        seal_id: None,
        leaf: None,
    };
    let hash = event_hash(&prev, &record);
    record.hash = hex(&hash);
    let (seal_id, leaf) = store.open_trace_leaf(e.tenant, signer, leaf_hash(e.tenant, e.chain_id, pos, &hash))?;
    record.seal_id = Some(seal_id);
    record.leaf = Some(leaf);
    store.insert_trace_event(&record)?;
    Ok(Appended { seq, pos, hash: record.hash, seal_id, leaf })
}

/// The columns [`record_row`] reads, after `seq, pos, tenant_id, chain_id`.
const RECORD_COLUMNS: &str = "seq, pos, tenant_id, chain_id, delegator, delegate, depth, at_ms, decision, reason_code, \
                              policy_version, body, prev_hash, hash, key_id, signature, seal_id, leaf";

// Columns are read as the type they were written with. A value of another type can only come
// from an edit of the file; it reads as a value no sealed event has (so verification names the
// row as edited or unsigned) instead of failing the read, and the chain is still served.

fn text_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    Ok(match r.get_ref(i)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Null => String::new(),
        other => format!("\u{0}<{} where text is stored>", other.data_type()),
    })
}

fn opt_int_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<i64>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Integer(v) => Some(v),
        ValueRef::Null => None,
        _ => Some(i64::MIN),
    })
}

fn int_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<i64> {
    Ok(opt_int_col(r, i)?.unwrap_or(i64::MIN))
}

fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        seq: r.get(0)?,
        pos: opt_int_col(r, 1)?.unwrap_or(0),
        tenant: text_col(r, 2)?,
        chain_id: text_col(r, 3)?,
        delegator: text_col(r, 4)?,
        delegate: text_col(r, 5)?,
        depth: int_col(r, 6)?,
        at_ms: int_col(r, 7)?,
        decision: text_col(r, 8)?,
        reason_code: opt_int_col(r, 9)?,
        policy_version: text_col(r, 10)?,
        body: text_col(r, 11)?,
        prev_hash: text_col(r, 12)?,
        hash: text_col(r, 13)?,
        key_id: text_col(r, 14)?,
        signature: text_col(r, 15)?,
        seal_id: opt_int_col(r, 16)?,
        leaf: opt_int_col(r, 17)?,
    })
}

/// Every stored row of `chain_id` owned by `tenant`, ordered by `seq` (empty when none).
pub fn load(conn: &Connection, tenant: &str, chain_id: &str) -> GatewayResult<Vec<Record>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM trace_events WHERE tenant_id = ?1 AND chain_id = ?2 ORDER BY seq"
    ))?;
    let rows = stmt.query_map(params![tenant, chain_id], record_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The stored row of event `seq` if `tenant` owns it.
pub(crate) fn load_at(conn: &Connection, tenant: &str, seq: i64) -> GatewayResult<Option<Record>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM trace_events WHERE seq = ?1 AND tenant_id = ?2"))?
        .query_row(params![seq, tenant], record_row)
        .optional()?)
}

/// The stored rows of `tenant`'s latest `warning` events, newest first, at most `limit`.
pub(crate) fn load_warnings(conn: &Connection, tenant: &str, limit: usize) -> GatewayResult<Vec<Record>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM trace_events WHERE tenant_id = ?1 AND decision = 'warning' ORDER BY seq DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![tenant, i64::try_from(limit).unwrap_or(i64::MAX)], record_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// A stored seal with its tree rebuilt from its stored leaves (32 bytes each); `Err` says why
/// it cannot be used (leaves that do not match its size).
pub(crate) fn seal_from_leaves(record: SealRecord, leaves: &[u8]) -> Result<Seal, &'static str> {
    if leaves.is_empty() || leaves.len() % 32 != 0 || i64::try_from(leaves.len() / 32).ok() != Some(record.tree_size) {
        return Err("its seal's stored leaves are malformed");
    }
    let levels = tree_levels(leaves.chunks(32).map(|c| <[u8; 32]>::try_from(c).unwrap_or([0; 32])).collect());
    Ok(Seal { record, levels })
}

/// Seal `seal_id` as stored, with its tree rebuilt from the stored leaves; `Err` says why it
/// cannot be used (missing, or leaves that do not match its size).
pub(crate) fn stored_seal(conn: &Connection, seal_id: i64) -> GatewayResult<Result<Seal, &'static str>> {
    let row = conn
        .prepare_cached("SELECT tree_size, root, leaves, key_id, signature FROM trace_seals WHERE seal_id = ?1")?
        .query_row([seal_id], |x| {
            let leaves = match x.get_ref(2)? {
                ValueRef::Blob(b) => b.to_vec(),
                _ => Vec::new(), // stored as another type: malformed
            };
            Ok((int_col(x, 0)?, text_col(x, 1)?, leaves, text_col(x, 3)?, text_col(x, 4)?))
        })
        .optional()?;
    let Some((tree_size, root, leaves, key_id, signature)) = row else { return Ok(Err("its seal is missing")) };
    Ok(seal_from_leaves(SealRecord { seal_id, tree_size, root, key_id, signature }, &leaves))
}

/// The seals `records` (of `tenant`) name and each sealed record's audit path. A seal that is
/// missing or whose stored leaves are malformed is left out: its records then fail
/// verification.
pub fn inclusions(store: &dyn TraceStore, tenant: &str, records: &[Record]) -> GatewayResult<Inclusions> {
    let mut out = Inclusions::default();
    let mut seals: std::collections::BTreeMap<i64, Option<Seal>> = std::collections::BTreeMap::new();
    for r in records {
        let (Some(seal_id), Some(leaf)) = (r.seal_id, r.leaf) else { continue };
        if !seals.contains_key(&seal_id) {
            let seal = store.trace_seal(tenant, seal_id)?.ok();
            if let Some(seal) = &seal {
                out.seals.push(seal.record.clone());
            }
            seals.insert(seal_id, seal);
        }
        if let Some(Some(seal)) = seals.get(&seal_id) {
            let path = audit_path(&seal.levels, usize::try_from(leaf).unwrap_or(usize::MAX));
            out.paths.push(Inclusion { seq: r.seq, path: path.iter().map(|h| hex(h)).collect() });
        }
    }
    Ok(out)
}

/// The receipt of stored event `seq`, made again from its seal's stored leaves and checked
/// against `key` before it is handed out (a replayed answer must prove what the first did);
/// `None` for an event written before seals (its row carries its own signature) or one that
/// does not exist, or is another tenant's. A sealed event whose seal is missing or does not
/// prove it is a 500.
pub fn receipt(store: &dyn TraceStore, tenant: &str, seq: i64, key: &PublicKey) -> GatewayResult<Option<Receipt>> {
    let Some(event) = store.trace_event_at(tenant, seq)? else { return Ok(None) };
    let (Some(seal_id), Some(leaf)) = (event.seal_id, event.leaf) else { return Ok(None) };
    let broken = |why: &str| GatewayError::internal(format!("trace event {seq}: {why}; its receipt cannot be made"));
    let seal = store.trace_seal(tenant, seal_id)?.map_err(broken)?;
    let receipt = seal.receipt(&Appended { seq: event.seq, pos: event.pos, hash: event.hash, seal_id, leaf });
    if !receipt_signed(&receipt, &event.tenant, &event.chain_id, key) {
        return Err(broken("its seal does not prove it"));
    }
    Ok(Some(receipt))
}

/// The stored signed head of a chain, if any: the embedded store's
/// [`TraceStore::trace_head`].
pub(crate) fn stored_head(conn: &Connection, tenant: &str, chain_id: &str) -> GatewayResult<Option<SignedHead>> {
    Ok(conn
        .prepare_cached("SELECT count, head_hash, key_id, signature FROM trace_heads WHERE tenant_id = ?1 AND chain_id = ?2")?
        .query_row(params![tenant, chain_id], |r| {
            Ok(SignedHead {
                tenant: tenant.to_string(),
                chain_id: chain_id.to_string(),
                count: int_col(r, 0)?,
                head_hash: text_col(r, 1)?,
                key_id: text_col(r, 2)?,
                signature: text_col(r, 3)?,
            })
        })
        .optional()?)
}

/// The readable form of a record: its body's fields plus the columns, as
/// `GET /v1/chains/{id}` lists it under `events`.
pub fn view(r: &Record) -> Value {
    let mut v: Value = serde_json::from_str(&r.body).unwrap_or_else(|_| json!({}));
    if !v.is_object() {
        v = json!({ "body": v });
    }
    v["seq"] = json!(r.seq);
    v["pos"] = json!(r.pos);
    v["chain_id"] = json!(r.chain_id);
    v["delegator"] = json!(r.delegator);
    v["delegate"] = json!(r.delegate);
    v["depth"] = json!(r.depth);
    v["at_ms"] = json!(r.at_ms);
    v["decision"] = json!(r.decision);
    v["reason_code"] = json!(r.reason_code);
    v["policy_version"] = json!(r.policy_version);
    v["hash"] = json!(r.hash);
    v
}

/// Checks a chain's records (in stored order) against `key`, the seals and audit paths in
/// `inclusions` and, when given, its stored head; returns the first bad event. Checked per
/// event, in order: it belongs to the chain; its fields hash to its stored hash (else
/// `edited`); its leaf reaches a seal signed by `key` (before seals: the head ending at it is
/// signed by `key`; else `unsigned`); it sits at the next position (ahead: `deleted` events
/// before it; behind: `reordered` or duplicated) after an increasing sequence number; it links
/// to the previous event's hash (`relinked`). Then the head must cover exactly these events
/// (more counted: `truncated`), and a head signed before seals must be signed by `key`.
pub fn verify_records(
    records: &[Record],
    tenant: &str,
    chain_id: &str,
    key: &PublicKey,
    head: Option<&SignedHead>,
    inclusions: &Inclusions,
) -> Result<(), Break> {
    let key_id = key.id().to_string();
    let seals: std::collections::HashMap<i64, &SealRecord> = inclusions.seals.iter().map(|s| (s.seal_id, s)).collect();
    let paths: std::collections::HashMap<i64, &[String]> = inclusions.paths.iter().map(|p| (p.seq, p.path.as_slice())).collect();
    // A seal covers many events: its signature is checked once.
    let mut signed_seals: std::collections::HashMap<i64, bool> = std::collections::HashMap::new();
    let mut sealed = |r: &Record, event_hash: &[u8; 32]| -> bool {
        let (Some(seal_id), Some(leaf)) = (r.seal_id, r.leaf) else { return false };
        let (Some(seal), Some(path)) = (seals.get(&seal_id), paths.get(&r.seq)) else { return false };
        let Some(root) = unhex32(&seal.root) else { return false };
        let signed = *signed_seals.entry(seal_id).or_insert_with(|| {
            seal.key_id == key_id && signature_ok(key, &seal_message(seal_id, seal.tree_size, &root), &seal.signature)
        });
        let path: Option<Vec<[u8; 32]>> = path.iter().map(|h| unhex32(h)).collect();
        signed
            && r.key_id == key_id
            && path.is_some_and(|path| {
                verify_inclusion(
                    leaf_hash(tenant, chain_id, r.pos, event_hash),
                    u64::try_from(leaf).unwrap_or(u64::MAX),
                    u64::try_from(seal.tree_size).unwrap_or(0),
                    &path,
                    &root,
                )
            })
    };
    let mut prev = [0u8; 32];
    let mut last_seq = i64::MIN;
    for (i, r) in records.iter().enumerate() {
        let expected = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
        let bad = |kind: &str, message: String| Break { seq: Some(r.seq), pos: expected, kind: kind.into(), message };
        if r.tenant != tenant || r.chain_id != chain_id {
            return Err(bad("foreign", format!("the event belongs to tenant `{}`, chain `{}`", r.tenant, r.chain_id)));
        }
        let Some(stored_prev) = unhex32(&r.prev_hash) else {
            return Err(bad("edited", "no valid `prev_hash` (an unsealed or altered row)".into()));
        };
        let actual = event_hash(&stored_prev, r);
        if r.hash != hex(&actual) {
            return Err(bad("edited", "its stored fields do not hash to its stored hash (content, seq or position changed)".into()));
        }
        let signed = if r.signature.is_empty() {
            sealed(r, &actual)
        } else {
            r.key_id == key_id && signature_ok(key, &head_message(tenant, chain_id, r.pos, &actual), &r.signature)
        };
        if !signed {
            return Err(bad("unsigned", format!("the event is not signed by key {key_id}: no valid seal covers it (inserted or forged)")));
        }
        let found_later = records.get(i + 1..).is_some_and(|rest| rest.iter().any(|x| x.pos == expected));
        if r.pos > expected && !found_later {
            return Err(bad("deleted", format!("position {expected} expected, found {}: events before it are missing", r.pos)));
        }
        if r.pos != expected || r.seq <= last_seq {
            return Err(bad(
                "reordered",
                format!("position {expected} expected, found {} (seq {} after seq {last_seq}): reordered or duplicated", r.pos, r.seq),
            ));
        }
        if stored_prev != prev {
            return Err(bad("relinked", "its `prev_hash` is not the previous event's hash".into()));
        }
        prev = actual;
        last_seq = r.seq;
    }
    let count = i64::try_from(records.len()).unwrap_or(i64::MAX);
    let Some(head) = head else {
        return Err(Break {
            seq: None,
            pos: count.saturating_add(1),
            kind: "head".into(),
            message: "no signed head for the chain".into(),
        });
    };
    let head_bad = |kind: &str, message: String| Break { seq: None, pos: count.saturating_add(1), kind: kind.into(), message };
    let head_hash = unhex32(&head.head_hash).ok_or_else(|| head_bad("head", "the head hash is not 64 hex digits".into()))?;
    // A head written with seals has no signature of its own: it must name the last event,
    // whose seal was checked above. One written before seals must carry its signature.
    let head_signed = head.signature.is_empty() || head_signature_ok(head, key);
    if head.tenant != tenant || head.chain_id != chain_id || head.key_id != key_id || !head_signed {
        return Err(head_bad("head", format!("the chain head is not signed by key {key_id} for this chain")));
    }
    if head.count > count {
        return Err(head_bad(
            "truncated",
            format!("the signed head counts {} events, {count} are stored: events after the last one are missing", head.count),
        ));
    }
    if head.count < count || head_hash != prev {
        let at = usize::try_from(head.count).unwrap_or(0);
        let r = records.get(at).or(records.last());
        return Err(Break {
            seq: r.map(|r| r.seq),
            pos: head.count.saturating_add(1),
            kind: "head".into(),
            message: format!("the signed head ({} events) does not end where the stored chain ends", head.count),
        });
    }
    Ok(())
}

/// The proof part of a chain export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// `sha256-chain+merkle-seal+ed25519`.
    pub algorithm: String,
    /// Every stored event exactly as hashed.
    pub records: Vec<Record>,
    /// The chain's head, as stored.
    pub head: Option<SignedHead>,
    /// The seals covering the records and each record's audit path (absent in exports from
    /// before seals).
    #[serde(default)]
    pub inclusions: Inclusions,
    /// The gateway key's id.
    pub key_id: String,
    /// The gateway's public key (hex), for convenience: a verifier uses its own copy.
    pub public_key: String,
}

/// A chain export: the body of `GET /v1/chains/{id}`, verifiable offline with
/// [`verify_export`], which reads it as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ChainExport {
    /// The chain.
    pub chain_id: String,
    /// Each event's readable form ([`view`]: its body's fields and its columns), in order.
    pub events: Vec<Value>,
    /// [`EXPORT_FORMAT`].
    pub format: &'static str,
    /// `ok`, or the first break, for people.
    pub integrity: String,
    /// The first break, when the chain does not verify.
    pub integrity_break: Option<Break>,
    /// What a verifier checks: the records as hashed, the head, the seals and audit paths.
    pub proof: Proof,
    /// The tenant that owns the chain.
    pub tenant: String,
}

impl ChainExport {
    /// Whether the stored chain verified when the export was made.
    pub fn verified(&self) -> bool {
        self.integrity_break.is_none()
    }
}

/// Makes the export of a chain's `records` (in stored order), checking them on the way.
pub fn export(
    records: &[Record],
    head: Option<SignedHead>,
    inclusions: Inclusions,
    tenant: &str,
    chain_id: &str,
    key: &PublicKey,
) -> ChainExport {
    let integrity = verify_records(records, tenant, chain_id, key, head.as_ref(), &inclusions);
    let proof = Proof {
        algorithm: "sha256-chain+merkle-seal+ed25519".into(),
        records: records.to_vec(),
        head,
        inclusions,
        key_id: key.id().to_string(),
        public_key: hex(&key.to_bytes()),
    };
    ChainExport {
        chain_id: chain_id.to_string(),
        events: records.iter().map(view).collect(),
        format: EXPORT_FORMAT,
        integrity: match &integrity {
            Ok(()) => "ok".to_string(),
            Err(b) => b.to_string(),
        },
        integrity_break: integrity.err(),
        proof,
        tenant: tenant.to_string(),
    }
}

/// Verifies an export offline against `key` (never the key the export names): the proof's
/// records and head, and that every readable event is its record's view. Returns the number
/// of verified events, or the first bad one.
pub fn verify_export(export: &Value, key: &PublicKey) -> Result<usize, Break> {
    let malformed = |message: String| Break { seq: None, pos: 0, kind: "malformed".into(), message };
    if !matches!(export.get("format").and_then(Value::as_str), Some(EXPORT_FORMAT | EXPORT_FORMAT_V1)) {
        return Err(malformed(format!("`format` is not `{EXPORT_FORMAT}` (or `{EXPORT_FORMAT_V1}`)")));
    }
    let tenant = export.get("tenant").and_then(Value::as_str).ok_or_else(|| malformed("no `tenant`".into()))?;
    let chain_id = export.get("chain_id").and_then(Value::as_str).ok_or_else(|| malformed("no `chain_id`".into()))?;
    let proof: Proof = serde_json::from_value(export.get("proof").cloned().unwrap_or(Value::Null))
        .map_err(|e| malformed(format!("`proof`: {e}")))?;
    verify_records(&proof.records, tenant, chain_id, key, proof.head.as_ref(), &proof.inclusions)?;
    let events = export.get("events").and_then(Value::as_array).ok_or_else(|| malformed("no `events` array".into()))?;
    for (i, r) in proof.records.iter().enumerate() {
        if events.get(i) != Some(&view(r)) {
            return Err(Break {
                seq: Some(r.seq),
                pos: r.pos,
                kind: "view".into(),
                message: "the readable event differs from its signed record".into(),
            });
        }
    }
    if events.len() != proof.records.len() {
        return Err(Break {
            seq: None,
            pos: i64::try_from(proof.records.len()).unwrap_or(i64::MAX).saturating_add(1),
            kind: "view".into(),
            message: format!("{} readable events for {} signed records", events.len(), proof.records.len()),
        });
    }
    Ok(proof.records.len())
}

/// Checks an export against receipts a client kept (the `receipt` of delegation and outcome
/// answers): each receipt's leaf must reach a seal signed by `key` for this chain's event at
/// the receipt's position, and the export must still hold, at that position, the event with
/// the receipt's hash. This catches what the stored data alone cannot: a rollback to an older,
/// validly signed prefix (`rolled-back`). The export itself is checked with [`verify_export`]
/// first.
pub fn verify_receipts(export: &Value, key: &PublicKey, receipts: &[ClientReceipt]) -> Result<(), Break> {
    verify_export(export, key)?;
    let proof: Proof = serde_json::from_value(export.get("proof").cloned().unwrap_or(Value::Null)).map_err(|e| Break {
        seq: None,
        pos: 0,
        kind: "malformed".into(),
        message: format!("`proof`: {e}"),
    })?;
    let (tenant, chain_id) = (export["tenant"].as_str().unwrap_or(""), export["chain_id"].as_str().unwrap_or(""));
    for rc in receipts {
        let (seq, pos, hash) = rc.event();
        let bad = |kind: &str, message: String| Break { seq: Some(seq), pos, kind: kind.into(), message };
        if !rc.signed(tenant, chain_id, key) {
            return Err(bad("receipt", "the receipt is not an event of this chain signed by the key".into()));
        }
        match proof.records.iter().find(|r| r.pos == pos) {
            Some(r) if r.hash == hash && r.seq == seq => {}
            Some(_) => {
                return Err(bad("rolled-back", format!("position {pos} holds another event than the receipt's")));
            }
            None => {
                return Err(bad(
                    "rolled-back",
                    format!("the receipt proves position {pos} existed; the export has {} events", proof.records.len()),
                ));
            }
        }
    }
    Ok(())
}

/// Whether `rc` proves, with `key`'s signature, that chain `chain_id` of `tenant` had the event
/// with the receipt's hash at the receipt's position.
pub fn receipt_signed(rc: &Receipt, tenant: &str, chain_id: &str, key: &PublicKey) -> bool {
    let (Some(hash), Some(root)) = (unhex32(&rc.hash), unhex32(&rc.seal.root)) else { return false };
    let path: Option<Vec<[u8; 32]>> = rc.path.iter().map(|h| unhex32(h)).collect();
    rc.seal.key_id == key.id().to_string()
        && signature_ok(key, &seal_message(rc.seal.seal_id, rc.seal.tree_size, &root), &rc.seal.signature)
        && path.is_some_and(|path| {
            verify_inclusion(
                leaf_hash(tenant, chain_id, rc.pos, &hash),
                u64::try_from(rc.leaf).unwrap_or(u64::MAX),
                u64::try_from(rc.seal.tree_size).unwrap_or(0),
                &path,
                &root,
            )
        })
}

/// Every event of `chain_id` owned by `tenant`, in order; 404 when there is none, and a 500
/// (the break in `details`) when the chain does not verify against `key`: nothing is decided
/// on altered history.
pub fn verified_records(store: &dyn TraceStore, tenant: &str, chain_id: &str, key: &PublicKey) -> GatewayResult<Vec<Record>> {
    let records = store.trace_events(tenant, chain_id)?;
    if records.is_empty() {
        return Err(GatewayError::not_found(format!("chain `{chain_id}` not found")));
    }
    let head = store.trace_head(tenant, chain_id)?;
    let inclusions = inclusions(store, tenant, &records)?;
    if let Err(b) = verify_records(&records, tenant, chain_id, key, head.as_ref(), &inclusions) {
        tracing::error!(%tenant, %chain_id, integrity = %b, "trace integrity check failed");
        return Err(GatewayError::new(ErrorCode::InternalError, format!("the stored trace of chain `{chain_id}` is {b}"))
            .with_details(ErrorDetails::Integrity { integrity_break: b }));
    }
    Ok(records)
}

/// The latest `warning` events of `tenant` (newest first, at most `limit`), for operators.
pub fn warnings(store: &dyn TraceStore, tenant: &str, limit: usize) -> GatewayResult<Vec<Value>> {
    Ok(store.warning_events(tenant, limit)?.iter().map(view).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn record(seq: i64, pos: i64, decision: &str) -> Record {
        Record {
            seq,
            pos,
            tenant: "acme".into(),
            chain_id: "c1".into(),
            delegator: "a".into(),
            delegate: "b".into(),
            depth: pos,
            at_ms: 1000 + seq,
            decision: decision.into(),
            reason_code: None,
            policy_version: "p@1".into(),
            body: "{\"x\":1}".into(),
            prev_hash: String::new(),
            hash: String::new(),
            key_id: String::new(),
            signature: String::new(),
            seal_id: None,
            leaf: None,
        }
    }

    fn sealed(n: i64, key: &KeyPair) -> (Vec<Record>, SignedHead) {
        let mut prev = [0u8; 32];
        let mut out = Vec::new();
        let mut head = None;
        for i in 1..=n {
            let mut r = record(i * 3, i, "allow");
            head = Some(seal(&mut r, &prev, key));
            prev = unhex32(&r.hash).unwrap_or_default();
            out.push(r);
        }
        (out, head.unwrap_or_else(|| panic!("n > 0")))
    }

    #[test]
    fn an_untouched_chain_verifies_and_each_kind_of_tamper_names_its_event() {
        let key = KeyPair::from_secret(&[9; 32]);
        let public = key.public();
        let (records, head) = sealed(4, &key);
        let none = Inclusions::default();
        assert_eq!(verify_records(&records, "acme", "c1", &public, Some(&head), &none), Ok(()));

        let mut edited = records.clone();
        edited[1].delegate = "mallory".into();
        let b = verify_records(&edited, "acme", "c1", &public, Some(&head), &none).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(6), "edited"));

        // Edited and re-hashed from there on: the signature still catches it.
        let mut rehashed = records.clone();
        rehashed[1].body = "{\"x\":2}".into();
        let mut prev = unhex32(&rehashed[0].hash).unwrap_or_default();
        for r in rehashed.iter_mut().skip(1) {
            r.prev_hash = hex(&prev);
            prev = event_hash(&prev, r);
            r.hash = hex(&prev);
        }
        let b = verify_records(&rehashed, "acme", "c1", &public, Some(&head), &none).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(6), "unsigned"));

        let mut deleted = records.clone();
        deleted.remove(2);
        let b = verify_records(&deleted, "acme", "c1", &public, Some(&head), &none).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(12), "deleted"));

        let mut swapped = records.clone();
        swapped.swap(1, 2);
        let b = verify_records(&swapped, "acme", "c1", &public, Some(&head), &none).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(9), "reordered"));
        let mut reseq = records.clone();
        reseq[1].seq = 9;
        reseq[2].seq = 6;
        reseq.sort_by_key(|r| r.seq);
        let b = verify_records(&reseq, "acme", "c1", &public, Some(&head), &none).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(6), "edited"));

        let mut truncated = records.clone();
        truncated.pop();
        let b = verify_records(&truncated, "acme", "c1", &public, Some(&head), &none).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str(), b.pos), (None, "truncated", 4));

        let mut inserted = records.clone();
        let mut fake = record(7, 3, "allow");
        fake.prev_hash = records[1].hash.clone();
        fake.hash = hex(&event_hash(&unhex32(&fake.prev_hash).unwrap_or_default(), &fake));
        fake.key_id = records[1].key_id.clone();
        fake.signature = records[1].signature.clone();
        inserted.insert(2, fake);
        let b = verify_records(&inserted, "acme", "c1", &public, Some(&head), &none).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(7), "unsigned"));

        let other = KeyPair::from_secret(&[8; 32]);
        let b = verify_records(&records, "acme", "c1", &other.public(), Some(&head), &none).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(3), "unsigned"));
        let b = verify_records(&records, "acme", "c2", &public, Some(&head), &none).unwrap_err();
        assert_eq!(b.kind, "foreign");
        assert_eq!(verify_records(&records, "acme", "c1", &public, None, &none).unwrap_err().kind, "head");
    }

    #[test]
    fn an_export_verifies_offline_and_its_readable_view_is_checked() {
        let key = KeyPair::from_secret(&[9; 32]);
        let (records, head) = sealed(3, &key);
        let export = export(&records, Some(head), Inclusions::default(), "acme", "c1", &key.public());
        assert!(export.verified() && export.integrity == "ok");
        let text = serde_json::to_string(&export).unwrap_or_default();
        let back: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(verify_export(&back, &key.public()), Ok(3));
        let mut forged = back.clone();
        forged["events"][1]["decision"] = json!("deny");
        let b = verify_export(&forged, &key.public()).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(6), "view"));
    }

    #[test]
    fn a_receipt_kept_from_before_seals_still_proves_its_event() {
        let key = KeyPair::from_secret(&[9; 32]);
        let (records, head) = sealed(3, &key);
        let full = export(&records, Some(head.clone()), Inclusions::default(), "acme", "c1", &key.public());
        let last = records.last().unwrap();
        let text = serde_json::to_string(&json!({"seq": last.seq, "pos": last.pos, "hash": last.hash, "head": head})).unwrap();
        let kept: ClientReceipt = serde_json::from_str(&text).unwrap();
        assert!(matches!(kept, ClientReceipt::Head(_)), "read as a head receipt: {kept:?}");
        let full = serde_json::to_value(&full).unwrap();
        assert_eq!(verify_receipts(&full, &key.public(), std::slice::from_ref(&kept)), Ok(()));
        // A consistent shorter prefix (head rolled back with it) is caught by the receipt.
        let (short_records, short_head) = sealed(2, &key);
        let shorter = export(&short_records, Some(short_head), Inclusions::default(), "acme", "c1", &key.public());
        let shorter = serde_json::to_value(&shorter).unwrap();
        assert_eq!(verify_receipts(&shorter, &key.public(), &[kept]).unwrap_err().kind, "rolled-back");
    }

    /// RFC 9162's definition of the tree hash, recursively: the split at the largest power of
    /// two below the size.
    fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let mut k = 1;
        while k * 2 < leaves.len() {
            k *= 2;
        }
        node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
    }

    #[test]
    fn every_leaf_of_every_tree_size_has_a_path_to_the_rfc_root_and_nothing_else_does() {
        for size in 1..=40usize {
            let leaves: Vec<[u8; 32]> = (0..size).map(|i| leaf_hash("t", "c", i as i64, &[i as u8; 32])).collect();
            let levels = tree_levels(leaves.clone());
            let root = levels.last().unwrap()[0];
            assert_eq!(root, mth(&leaves), "size {size}: the levels build RFC 9162's tree");
            let n = size as u64;
            for (i, leaf) in leaves.iter().enumerate() {
                let path = audit_path(&levels, i);
                assert!(verify_inclusion(*leaf, i as u64, n, &path, &root), "size {size}, leaf {i}");
                let other = (i + 1) % size;
                if other != i {
                    assert!(!verify_inclusion(*leaf, other as u64, n, &path, &root), "size {size}: leaf {i} at index {other}");
                    assert!(!verify_inclusion(leaves[other], i as u64, n, &path, &root), "size {size}: another leaf on {i}'s path");
                }
                if let Some(first) = path.first() {
                    let mut bent = path.clone();
                    bent[0] = node_hash(first, first);
                    assert!(!verify_inclusion(*leaf, i as u64, n, &bent, &root), "size {size}: a changed sibling");
                }
            }
        }
    }

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::SCHEMA).unwrap();
        conn
    }

    fn event<'a>(chain: &'a str, n: i64) -> NewEvent<'a> {
        NewEvent {
            tenant: "acme",
            chain_id: chain,
            delegator: "a",
            delegate: "b",
            depth: n,
            at_ms: 1_000 + n,
            decision: "allow",
            reason_code: None,
            policy_version: "p@1",
            body: format!("{{\"n\":{n}}}"),
        }
    }

    fn chain_proof(conn: &Connection, chain: &str) -> (Vec<Record>, Option<SignedHead>, Inclusions) {
        let records = load(conn, "acme", chain).unwrap();
        let head = conn.trace_head("acme", chain).unwrap();
        let inc = inclusions(conn, "acme", &records).unwrap();
        (records, head, inc)
    }

    #[test]
    fn one_signature_per_batch_still_signs_every_event_and_names_the_first_bad_one() {
        let key = KeyPair::from_secret(&[9; 32]);
        let public = key.public();
        let conn = db();
        discard_pending();
        // Two batches; the first mixes two chains.
        let mut appended = Vec::new();
        for n in 1..=5 {
            appended.push(append(&conn, &event("c1", n), &key).unwrap());
            append(&conn, &event("c2", n), &key).unwrap();
        }
        let first = seal_pending(&conn, 10).unwrap().unwrap();
        assert_eq!(first.record.tree_size, 10);
        for n in 6..=8 {
            appended.push(append(&conn, &event("c1", n), &key).unwrap());
        }
        let second = seal_pending(&conn, 20).unwrap().unwrap();
        assert_eq!((second.record.seal_id, second.record.tree_size), (first.record.seal_id + 1, 3));
        assert!(seal_pending(&conn, 30).unwrap().is_none(), "nothing waits");
        let seals: i64 = conn.query_row("SELECT COUNT(*) FROM trace_seals", [], |r| r.get(0)).unwrap();
        assert_eq!(seals, 2, "two signatures for thirteen events");

        let (records, head, inc) = chain_proof(&conn, "c1");
        assert_eq!(records.len(), 8);
        assert_eq!(verify_records(&records, "acme", "c1", &public, head.as_ref(), &inc), Ok(()));
        let export = export(&records, head.clone(), inc.clone(), "acme", "c1", &public);
        let back: Value = serde_json::from_str(&serde_json::to_string(&export).unwrap()).unwrap();
        assert_eq!(verify_export(&back, &public), Ok(8));

        // Receipts: each event's, from its batch's seal.
        let receipts: Vec<Receipt> = appended
            .iter()
            .map(|a| if a.seal_id == first.record.seal_id { first.receipt(a) } else { second.receipt(a) })
            .collect();
        assert!(receipts.iter().all(|r| receipt_signed(r, "acme", "c1", &public)));
        let kept: Vec<ClientReceipt> = receipts.iter().cloned().map(ClientReceipt::Sealed).collect();
        assert_eq!(verify_receipts(&back, &public, &kept), Ok(()));
        // The receipt handed out again for a replay is the same, checked against the key.
        assert_eq!(receipt(&conn, "acme", appended[6].seq, &public).unwrap(), Some(receipts[6].clone()));
        assert_eq!(receipt(&conn, "globex", appended[6].seq, &public).unwrap(), None, "another tenant's event");
        assert!(receipt(&conn, "acme", appended[6].seq, &KeyPair::from_secret(&[8; 32]).public()).is_err());
        assert!(!receipt_signed(&receipts[0], "acme", "c2", &public), "a receipt names its chain");
        let mut moved = receipts[1].clone();
        moved.pos = 1;
        assert!(!receipt_signed(&moved, "acme", "c1", &public), "a receipt names its position");

        // Edited and re-hashed from there on: no path reaches the seal, at the edited event.
        let mut rehashed = records.clone();
        rehashed[2].body = "{\"n\":99}".into();
        let mut prev = unhex32(&rehashed[1].hash).unwrap();
        for r in rehashed.iter_mut().skip(2) {
            r.prev_hash = hex(&prev);
            prev = event_hash(&prev, r);
            r.hash = hex(&prev);
        }
        let b = verify_records(&rehashed, "acme", "c1", &public, head.as_ref(), &inc).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(records[2].seq), "unsigned"));

        // An inserted event claiming another's seal and leaf.
        let mut inserted = records.clone();
        let mut fake = Record { seq: records[2].seq + 1, pos: 4, ..records[2].clone() };
        fake.prev_hash = records[2].hash.clone();
        fake.hash = hex(&event_hash(&unhex32(&fake.prev_hash).unwrap(), &fake));
        inserted.insert(3, fake.clone());
        let mut inc_fake = inc.clone();
        inc_fake.paths.push(Inclusion { seq: fake.seq, path: inc.paths[2].path.clone() });
        let b = verify_records(&inserted, "acme", "c1", &public, head.as_ref(), &inc_fake).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(fake.seq), "unsigned"));

        // A forged seal signature, a missing path, another key.
        let mut forged = inc.clone();
        forged.seals[0].signature = "00".repeat(64);
        assert_eq!(verify_records(&records, "acme", "c1", &public, head.as_ref(), &forged).unwrap_err().kind, "unsigned");
        let mut pathless = inc.clone();
        pathless.paths.retain(|p| p.seq != records[6].seq);
        let b = verify_records(&records, "acme", "c1", &public, head.as_ref(), &pathless).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(records[6].seq), "unsigned"));
        let other = KeyPair::from_secret(&[8; 32]).public();
        assert_eq!(verify_records(&records, "acme", "c1", &other, head.as_ref(), &inc).unwrap_err().kind, "unsigned");

        // Truncated: the stored head still counts eight.
        let b = verify_records(&records[..7], "acme", "c1", &public, head.as_ref(), &inc).unwrap_err();
        assert_eq!(b.kind, "truncated");
    }

    #[test]
    fn a_rolled_back_job_leaves_no_leaf_in_the_seal() {
        let key = KeyPair::from_secret(&[9; 32]);
        let conn = db();
        discard_pending();
        append(&conn, &event("c1", 1), &key).unwrap();
        let mark = pending_len();
        conn.execute_batch("SAVEPOINT job").unwrap();
        append(&conn, &event("c1", 2), &key).unwrap();
        conn.execute_batch("ROLLBACK TO job; RELEASE job").unwrap();
        truncate_pending(mark);
        let a = append(&conn, &event("c1", 2), &key).unwrap();
        assert_eq!(a.leaf, 1, "the rolled-back event's leaf was given back");
        let seal = seal_pending(&conn, 5).unwrap().unwrap();
        assert_eq!(seal.record.tree_size, 2);
        let (records, head, inc) = chain_proof(&conn, "c1");
        assert_eq!(verify_records(&records, "acme", "c1", &key.public(), head.as_ref(), &inc), Ok(()));
    }
}
