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
//! depends on how a JSON library orders keys). After each append the gateway signs the chain's
//! head with its Ed25519 key (the key its delegation tokens are signed with):
//!
//! ```text
//! signature = Ed25519("sbd-trace-head-v1\0" || canonical(tenant, chain_id, count, head_hash))
//! ```
//!
//! and stores that signature in the event's row (so each event is individually signed as the
//! head it was) and in `trace_heads` (the latest head of every chain). A database writer
//! without the gateway's key can edit, delete, insert or reorder rows, or recompute the
//! hashes, but cannot make the signatures match: [`verify_records`] names the first event that
//! does not verify. The table also refuses UPDATE and DELETE (triggers); a trace lives in the
//! store file and survives restarts.

use rusqlite::{params, Connection, OptionalExtension};
use sbd_bundle::{KeyPair, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::util::hex;

/// The domain-separation prefix of an event hash.
pub const EVENT_DOMAIN: &[u8] = b"sbd-trace-event-v1\0";
/// The domain-separation prefix of a signed chain head.
pub const HEAD_DOMAIN: &[u8] = b"sbd-trace-head-v1\0";
/// The `format` of a chain export (the body of `GET /v1/chains/{id}`).
pub const EXPORT_FORMAT: &str = "sbd-trace-v1";

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
    /// Global sequence number (unique across chains, increasing).
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
    /// The id of the key that signed the head at this event.
    pub key_id: String,
    /// Hex Ed25519 signature of the chain head ending at this event.
    pub signature: String,
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

/// What an append returns: the new event's sequence number, position and hash, and the chain's
/// signed head after it (a client keeps it as a receipt: a later export with fewer events, or
/// another hash at this position, is proven rolled back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// Global sequence number.
    pub seq: i64,
    /// Position in the chain, from 1.
    pub pos: i64,
    /// Hex hash of the event.
    pub hash: String,
    /// The signed head after this event.
    pub head: SignedHead,
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

fn unhex32(text: &str) -> Option<[u8; 32]> {
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

fn signature_ok(key: &PublicKey, message: &[u8], signature_hex: &str) -> bool {
    match unhex_n::<64>(signature_hex) {
        Some(bytes) => key.verify(message, &ed25519_dalek::Signature::from_bytes(&bytes)),
        None => false,
    }
}

/// Seals one event: fills `prev_hash`, `hash`, `key_id` and `signature` of `r` (whose other
/// fields are set) and returns the signed head after it. Pure: [`append`] stores the result.
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

/// Appends `e` to its chain, hash-chained after the chain's signed head, and signs the new
/// head with `signer`; returns the event's sequence number, position, hash and signed head.
pub fn append(conn: &Connection, e: &NewEvent<'_>, signer: &KeyPair) -> ApiResult<Appended> {
    // The previous head, not the last stored row: a chain whose tail was deleted stays broken
    // (a position gap) instead of being silently continued from the truncated tail.
    let head: Option<(i64, String)> = conn
        .prepare_cached("SELECT count, head_hash FROM trace_heads WHERE tenant_id = ?1 AND chain_id = ?2")?
        .query_row(params![e.tenant, e.chain_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (count, prev) = match head {
        None => (0, [0u8; 32]),
        Some((count, hash)) => {
            (count, unhex32(&hash).ok_or_else(|| ApiError::internal("trace_heads: a head hash is not 64 hex digits"))?)
        }
    };
    let pos = count.checked_add(1).ok_or_else(|| ApiError::internal("trace position overflow"))?;
    // The sequence number is part of the hash, so it is chosen before the insert: one past
    // every number ever handed out (AUTOINCREMENT's counter, so deleted rows are never reused).
    let last: i64 = conn
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'trace_events'), 0), \
             COALESCE((SELECT MAX(seq) FROM trace_events), 0))",
        )?
        .query_row([], |r| r.get(0))?;
    let seq = last.checked_add(1).ok_or_else(|| ApiError::internal("trace sequence overflow"))?;
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
        prev_hash: String::new(),
        hash: String::new(),
        key_id: String::new(),
        signature: String::new(),
    };
    let head = seal(&mut record, &prev, signer);
    conn.prepare_cached(
        "INSERT INTO trace_events (seq, tenant_id, chain_id, delegator, delegate, depth, at_ms, decision, reason_code, \
         policy_version, body, pos, prev_hash, hash, key_id, signature) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        record.seq,
        record.tenant,
        record.chain_id,
        record.delegator,
        record.delegate,
        record.depth,
        record.at_ms,
        record.decision,
        record.reason_code,
        record.policy_version,
        record.body,
        record.pos,
        record.prev_hash,
        record.hash,
        record.key_id,
        record.signature
    ])?;
    conn.prepare_cached(
        "INSERT INTO trace_heads (tenant_id, chain_id, count, head_hash, key_id, signature, at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(tenant_id, chain_id) DO UPDATE SET \
         count = excluded.count, head_hash = excluded.head_hash, key_id = excluded.key_id, \
         signature = excluded.signature, at_ms = excluded.at_ms",
    )?
    .execute(params![head.tenant, head.chain_id, head.count, head.head_hash, head.key_id, head.signature, e.at_ms])?;
    Ok(Appended { seq, pos, hash: record.hash, head })
}

/// Every stored row of `chain_id` owned by `tenant`, ordered by `seq` (empty when none).
pub fn load(conn: &Connection, tenant: &str, chain_id: &str) -> ApiResult<Vec<Record>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, pos, delegator, delegate, depth, at_ms, decision, reason_code, policy_version, body, \
         prev_hash, hash, key_id, signature \
         FROM trace_events WHERE tenant_id = ?1 AND chain_id = ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![tenant, chain_id], |r| {
        Ok(Record {
            seq: r.get(0)?,
            pos: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
            tenant: tenant.to_string(),
            chain_id: chain_id.to_string(),
            delegator: r.get(2)?,
            delegate: r.get(3)?,
            depth: r.get(4)?,
            at_ms: r.get(5)?,
            decision: r.get(6)?,
            reason_code: r.get(7)?,
            policy_version: r.get(8)?,
            body: r.get(9)?,
            prev_hash: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
            hash: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
            key_id: r.get::<_, Option<String>>(12)?.unwrap_or_default(),
            signature: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The stored signed head of a chain, if any.
pub fn stored_head(conn: &Connection, tenant: &str, chain_id: &str) -> ApiResult<Option<SignedHead>> {
    Ok(conn
        .prepare_cached("SELECT count, head_hash, key_id, signature FROM trace_heads WHERE tenant_id = ?1 AND chain_id = ?2")?
        .query_row(params![tenant, chain_id], |r| {
            Ok(SignedHead {
                tenant: tenant.to_string(),
                chain_id: chain_id.to_string(),
                count: r.get(0)?,
                head_hash: r.get(1)?,
                key_id: r.get(2)?,
                signature: r.get(3)?,
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

/// Checks a chain's records (in stored order) against `key` and, when given, its signed head;
/// returns the first bad event. Checked per event, in order: it belongs to the chain; its
/// fields hash to its stored hash (else `edited`); the head ending at it is signed by `key`
/// (else `unsigned`); it sits at the next position (ahead: `deleted` events before it; behind:
/// `reordered` or duplicated) after an increasing sequence number; it links to the previous
/// event's hash (`relinked`). Then the head must be signed by `key` and cover exactly these
/// events (more counted: `truncated`).
pub fn verify_records(
    records: &[Record],
    tenant: &str,
    chain_id: &str,
    key: &PublicKey,
    head: Option<&SignedHead>,
) -> Result<(), Break> {
    let key_id = key.id().to_string();
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
        if r.key_id != key_id || !signature_ok(key, &head_message(tenant, chain_id, r.pos, &actual), &r.signature) {
            return Err(bad(
                "unsigned",
                format!("the head ending at this event is not signed by key {key_id} (inserted or forged)"),
            ));
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
    if head.tenant != tenant
        || head.chain_id != chain_id
        || head.key_id != key_id
        || !signature_ok(key, &head_message(tenant, chain_id, head.count, &head_hash), &head.signature)
    {
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
    /// `sha256-chain+ed25519`.
    pub algorithm: String,
    /// Every stored event exactly as hashed.
    pub records: Vec<Record>,
    /// The chain's signed head, as stored.
    pub head: Option<SignedHead>,
    /// The gateway key's id.
    pub key_id: String,
    /// The gateway's public key (hex), for convenience: a verifier uses its own copy.
    pub public_key: String,
}

/// A chain export: the body of `GET /v1/chains/{id}`.
pub fn export(records: &[Record], head: Option<SignedHead>, tenant: &str, chain_id: &str, key: &PublicKey) -> Value {
    let integrity = verify_records(records, tenant, chain_id, key, head.as_ref());
    let proof = Proof {
        algorithm: "sha256-chain+ed25519".into(),
        records: records.to_vec(),
        head,
        key_id: key.id().to_string(),
        public_key: hex(&key.to_bytes()),
    };
    json!({
        "format": EXPORT_FORMAT,
        "tenant": tenant,
        "chain_id": chain_id,
        "integrity": match &integrity { Ok(()) => "ok".to_string(), Err(b) => b.to_string() },
        "integrity_break": integrity.err(),
        "events": records.iter().map(view).collect::<Vec<_>>(),
        "proof": proof,
    })
}

/// Verifies an export offline against `key` (never the key the export names): the proof's
/// records and head, and that every readable event is its record's view. Returns the number
/// of verified events, or the first bad one.
pub fn verify_export(export: &Value, key: &PublicKey) -> Result<usize, Break> {
    let malformed = |message: String| Break { seq: None, pos: 0, kind: "malformed".into(), message };
    if export.get("format").and_then(Value::as_str) != Some(EXPORT_FORMAT) {
        return Err(malformed(format!("`format` is not `{EXPORT_FORMAT}`")));
    }
    let tenant = export.get("tenant").and_then(Value::as_str).ok_or_else(|| malformed("no `tenant`".into()))?;
    let chain_id = export.get("chain_id").and_then(Value::as_str).ok_or_else(|| malformed("no `chain_id`".into()))?;
    let proof: Proof = serde_json::from_value(export.get("proof").cloned().unwrap_or(Value::Null))
        .map_err(|e| malformed(format!("`proof`: {e}")))?;
    verify_records(&proof.records, tenant, chain_id, key, proof.head.as_ref())?;
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
/// answers): each receipt must be a head signed by `key` for this chain, and the export must
/// still hold, at the receipt's position, the event with the receipt's hash. This catches what
/// the stored data alone cannot: a rollback to an older, validly signed prefix (`rolled-back`).
/// The export itself is checked with [`verify_export`] first.
pub fn verify_receipts(export: &Value, key: &PublicKey, receipts: &[Appended]) -> Result<(), Break> {
    verify_export(export, key)?;
    let proof: Proof = serde_json::from_value(export.get("proof").cloned().unwrap_or(Value::Null)).map_err(|e| Break {
        seq: None,
        pos: 0,
        kind: "malformed".into(),
        message: format!("`proof`: {e}"),
    })?;
    let (tenant, chain_id) = (export["tenant"].as_str().unwrap_or(""), export["chain_id"].as_str().unwrap_or(""));
    for rc in receipts {
        let bad = |kind: &str, message: String| Break { seq: Some(rc.seq), pos: rc.pos, kind: kind.into(), message };
        let h = &rc.head;
        let signed = unhex32(&h.head_hash).is_some_and(|hash| {
            h.key_id == key.id().to_string()
                && signature_ok(key, &head_message(&h.tenant, &h.chain_id, h.count, &hash), &h.signature)
        });
        if !signed || h.tenant != tenant || h.chain_id != chain_id || h.count != rc.pos || h.head_hash != rc.hash {
            return Err(bad("receipt", "the receipt is not a head of this chain signed by the key".into()));
        }
        match proof.records.iter().find(|r| r.pos == rc.pos) {
            Some(r) if r.hash == rc.hash && r.seq == rc.seq => {}
            Some(_) => {
                return Err(bad("rolled-back", format!("position {} holds another event than the receipt's", rc.pos)));
            }
            None => {
                return Err(bad(
                    "rolled-back",
                    format!("the receipt proves position {} existed; the export has {} events", rc.pos, proof.records.len()),
                ));
            }
        }
    }
    Ok(())
}

/// Every event of `chain_id` owned by `tenant`, in order, as readable values; 404 when there is
/// none. Does not verify: callers that act on the history use [`verified_chain`].
pub fn chain(conn: &Connection, tenant: &str, chain_id: &str) -> ApiResult<Vec<Value>> {
    let records = load(conn, tenant, chain_id)?;
    if records.is_empty() {
        return Err(ApiError::not_found(format!("chain `{chain_id}` not found")));
    }
    Ok(records.iter().map(view).collect())
}

/// Like [`chain`], but refuses (500 with the break in `details`) a chain that does not verify
/// against `key`: nothing is decided on altered history.
pub fn verified_chain(conn: &Connection, tenant: &str, chain_id: &str, key: &PublicKey) -> ApiResult<Vec<Value>> {
    let records = load(conn, tenant, chain_id)?;
    if records.is_empty() {
        return Err(ApiError::not_found(format!("chain `{chain_id}` not found")));
    }
    let head = stored_head(conn, tenant, chain_id)?;
    if let Err(b) = verify_records(&records, tenant, chain_id, key, head.as_ref()) {
        tracing::error!(%tenant, %chain_id, integrity = %b, "trace integrity check failed");
        return Err(ApiError::new(ErrorCode::InternalError, format!("the stored trace of chain `{chain_id}` is {b}"))
            .with_details(json!({ "integrity_break": b })));
    }
    Ok(records.iter().map(view).collect())
}

/// Whether `chain_id` already has events for `tenant`.
pub fn exists(conn: &Connection, tenant: &str, chain_id: &str) -> ApiResult<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM trace_events WHERE tenant_id = ?1 AND chain_id = ?2)")?
        .query_row(params![tenant, chain_id], |r| r.get::<_, bool>(0))?)
}

/// The latest `warning` events of `tenant` (newest first, at most `limit`), for operators.
pub fn warnings(conn: &Connection, tenant: &str, limit: i64) -> ApiResult<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, pos, chain_id, delegator, delegate, depth, at_ms, decision, reason_code, policy_version, body, \
         prev_hash, hash, key_id, signature FROM trace_events WHERE tenant_id = ?1 AND decision = 'warning' \
         ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![tenant, limit], |r| {
        Ok(Record {
            seq: r.get(0)?,
            pos: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
            tenant: tenant.to_string(),
            chain_id: r.get(2)?,
            delegator: r.get(3)?,
            delegate: r.get(4)?,
            depth: r.get(5)?,
            at_ms: r.get(6)?,
            decision: r.get(7)?,
            reason_code: r.get(8)?,
            policy_version: r.get(9)?,
            body: r.get(10)?,
            prev_hash: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
            hash: r.get::<_, Option<String>>(12)?.unwrap_or_default(),
            key_id: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
            signature: r.get::<_, Option<String>>(14)?.unwrap_or_default(),
        })
    })?;
    Ok(rows.map(|r| r.map(|r| view(&r))).collect::<Result<Vec<_>, _>>()?)
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
        assert_eq!(verify_records(&records, "acme", "c1", &public, Some(&head)), Ok(()));

        let mut edited = records.clone();
        edited[1].delegate = "mallory".into();
        let b = verify_records(&edited, "acme", "c1", &public, Some(&head)).unwrap_err();
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
        let b = verify_records(&rehashed, "acme", "c1", &public, Some(&head)).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(6), "unsigned"));

        let mut deleted = records.clone();
        deleted.remove(2);
        let b = verify_records(&deleted, "acme", "c1", &public, Some(&head)).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(12), "deleted"));

        let mut swapped = records.clone();
        swapped.swap(1, 2);
        let b = verify_records(&swapped, "acme", "c1", &public, Some(&head)).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(9), "reordered"));
        let mut reseq = records.clone();
        reseq[1].seq = 9;
        reseq[2].seq = 6;
        reseq.sort_by_key(|r| r.seq);
        let b = verify_records(&reseq, "acme", "c1", &public, Some(&head)).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(6), "edited"));

        let mut truncated = records.clone();
        truncated.pop();
        let b = verify_records(&truncated, "acme", "c1", &public, Some(&head)).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str(), b.pos), (None, "truncated", 4));

        let mut inserted = records.clone();
        let mut fake = record(7, 3, "allow");
        fake.prev_hash = records[1].hash.clone();
        fake.hash = hex(&event_hash(&unhex32(&fake.prev_hash).unwrap_or_default(), &fake));
        fake.key_id = records[1].key_id.clone();
        fake.signature = records[1].signature.clone();
        inserted.insert(2, fake);
        let b = verify_records(&inserted, "acme", "c1", &public, Some(&head)).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(7), "unsigned"));

        let other = KeyPair::from_secret(&[8; 32]);
        let b = verify_records(&records, "acme", "c1", &other.public(), Some(&head)).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(3), "unsigned"));
        let b = verify_records(&records, "acme", "c2", &public, Some(&head)).unwrap_err();
        assert_eq!(b.kind, "foreign");
        assert_eq!(verify_records(&records, "acme", "c1", &public, None).unwrap_err().kind, "head");
    }

    #[test]
    fn an_export_verifies_offline_and_its_readable_view_is_checked() {
        let key = KeyPair::from_secret(&[9; 32]);
        let (records, head) = sealed(3, &key);
        let export = export(&records, Some(head), "acme", "c1", &key.public());
        assert_eq!(export["integrity"], "ok");
        let text = serde_json::to_string(&export).unwrap_or_default();
        let back: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(verify_export(&back, &key.public()), Ok(3));
        let mut forged = back.clone();
        forged["events"][1]["decision"] = json!("deny");
        let b = verify_export(&forged, &key.public()).unwrap_err();
        assert_eq!((b.seq, b.kind.as_str()), (Some(6), "view"));
    }
}
