//! The [`crate::repo`] traits on Redis: a tenant's agent registry, delegation records, escrow
//! and escalations, in the tenant's slot, read and written by the same fenced unit of work as
//! its ledger ([`super`]), so a delegation's registry reads, its carve, its idempotent
//! response and its ledger holds commit together.
//!
//! A record's key is its kind and id (`grant:ID`); an index has a name of its own
//! (`grant-kids:ID`), so no id a caller sends can name an index and read a set as a record.
//!
//! | key | holds |
//! |---|---|
//! | `P:{T}:authority` | the tenant's authority settings, JSON |
//! | `P:{T}:agent:ID` | a registered agent (with its trust score), JSON |
//! | `P:{T}:agents` | set of the registered agents' ids |
//! | `P:{T}:dlg:KEY` | a stored delegation response under idempotency key `KEY`, JSON |
//! | `P:{T}:dex:ID` | a depth exception, JSON |
//! | `P:{T}:grant:ID` | a grant of a delegation tree with its units, JSON |
//! | `P:{T}:grant-kids:ID` | set of the grant's children's ids |
//! | `P:{T}:chain-grants:C` | set of the ids of chain `C`'s grants |
//! | `P:{T}:chain-root:C` | the id of chain `C`'s root grant (written once: one root a chain) |
//! | `P:{T}:grants` | set of the tenant's grant ids (the escrow audit) |
//! | `P:{T}:esc:ID` | an escalation: its status, assignee and expiry beside the record's JSON text (as SQL's columns, so one whose record cannot be read is still filtered and closed) |
//! | `P:{T}:esc-all` | sorted set of the tenant's escalation ids by expiry |
//! | `P:{T}:esc-pending` | sorted set of its PENDING escalation ids by expiry |
//! | `P:{T}:esctgt:AGENT` | a registered agent escalation target, JSON |
//! | `P:{T}:esctgts` | set of the agents registered as targets |
//! | `P:{T}:thead:C` | chain `C`'s head: its event count and last hash, JSON |
//! | `P:{T}:tev:C:POS` | the event at position `POS` of chain `C`, JSON (written once) |
//! | `P:{T}:trace-seq` | the tenant's last trace sequence number |
//! | `P:{T}:trace-at:SEQ` | where event `SEQ` is: its chain and position, JSON |
//! | `P:{T}:twarn` | the sequence numbers of the tenant's `warning` events (zero-padded, all scored 0, so newest last by lex order) |
//! | `P:{T}:seal:ID` | a seal: its signed record and its tree's leaves, JSON (written in the commit of the unit whose events it signs) |
//!
//! A trace sequence number is the tenant's own (increasing there, read and moved under the
//! tenant's lock); seal ids come from the global counter `P:ids:seal` (`INCR`, at a unit's
//! first event, outside the lock: a unit that does not commit leaves a gap, and no id names
//! two trees). A unit's seal signs only its own events, so every seal lies in one tenant's
//! slot.
//!
//! One index crosses tenants: `P:esc-tenants`, the tenants that have had an escalation (for
//! the expiry sweep), written before the commit like the ledger's indexes and never removed.

use serde::{Deserialize, Serialize};

use super::{Transaction, Write};
use crate::cycles::Unit;
use crate::error::{GatewayError, GatewayResult};
use crate::escalations::{EscalationRecord, Status as EscalationStatus, TargetBody};
use crate::escrow::{Grant, GrantStatus, GrantUnit};
use crate::registry::{AgentRecord, AuthoritySettings};
use crate::repo::{DelegationStore, DepthExceptionRow, EscalationStore, EscrowStore, ExpiredEscalation, RegistryStore, StoredDelegation, TraceStore};
use crate::traces::{self, Record, Seal, SealRecord, SignedHead};
use crate::util::hex;

/// An agent as kept: the record and when it last changed.
#[derive(Serialize, Deserialize)]
struct StoredAgent {
    agent: AgentRecord,
    updated_at_ms: i64,
}

/// A delegation response as kept.
#[derive(Serialize, Deserialize)]
struct StoredResponse {
    #[serde(flatten)]
    stored: StoredDelegation,
    created_at_ms: i64,
}

/// A seal as kept: its signed record and its tree's leaves (hex), from which receipts are
/// made again.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredSeal {
    record: SealRecord,
    leaves: Vec<String>,
}

impl StoredSeal {
    pub(super) fn of(seal: &Seal) -> StoredSeal {
        StoredSeal { record: seal.record.clone(), leaves: seal.leaves().iter().map(|l| hex(l)).collect() }
    }
}

/// An escalation as kept: the columns SQL filters on beside the record's text.
#[derive(Serialize, Deserialize)]
struct StoredEscalation {
    id: String,
    status: String,
    assignee: String,
    expires_at_ms: i64,
    body: String,
}

impl StoredEscalation {
    fn record(&self) -> GatewayResult<EscalationRecord> {
        serde_json::from_str(&self.body).map_err(|e| GatewayError::internal(format!("a stored escalation is unreadable: {e}")))
    }
}

/// A grant as kept; the status by its stored name, as in SQL (an unknown one reads as void).
#[derive(Serialize, Deserialize)]
struct StoredGrant {
    chain_id: String,
    parent_id: Option<String>,
    holder: String,
    depth: i64,
    status: String,
    expires_at_ms: i64,
    created_at_ms: i64,
    settled_at_ms: Option<i64>,
    units: Vec<StoredUnit>,
}

/// One unit of a kept grant.
#[derive(Serialize, Deserialize)]
struct StoredUnit {
    unit: Unit,
    granted: i64,
    carved: i64,
    spent: i64,
    reservation_id: Option<String>,
}

impl StoredGrant {
    fn into_grant(self, grant_id: &str) -> Grant {
        let mut units: Vec<GrantUnit> = self
            .units
            .into_iter()
            .map(|u| GrantUnit {
                unit: u.unit,
                granted: u.granted,
                carved: u.carved,
                spent: u.spent,
                available: u.granted.saturating_sub(u.carved).saturating_sub(u.spent),
                reservation_id: u.reservation_id,
            })
            .collect();
        units.sort_by(|a, b| a.unit.as_str().cmp(b.unit.as_str()));
        Grant {
            grant_id: grant_id.to_string(),
            chain_id: self.chain_id,
            parent_id: self.parent_id,
            holder: self.holder,
            depth: self.depth,
            status: GrantStatus::parse(&self.status),
            expires_at_ms: self.expires_at_ms,
            created_at_ms: self.created_at_ms,
            units,
        }
    }
}

impl Transaction<'_> {
    fn agent_key(&self, tenant: &str, agent_id: &str) -> GatewayResult<String> {
        self.key(tenant, &format!("agent:{agent_id}"))
    }

    fn grant_key(&self, tenant: &str, grant_id: &str) -> GatewayResult<String> {
        self.key(tenant, &format!("grant:{grant_id}"))
    }

    fn stored_grant(&self, tenant: &str, grant_id: &str) -> GatewayResult<(String, StoredGrant)> {
        let key = self.grant_key(tenant, grant_id)?;
        let stored = self.get_json(&key)?.ok_or_else(|| GatewayError::internal(format!("redis: grant `{grant_id}` is missing")))?;
        Ok((key, stored))
    }

    /// The escalations named in the sorted set `index`, as stored, read in one round trip a
    /// thousand.
    fn escalations_in(&self, tenant: &str, index: &str) -> GatewayResult<Vec<StoredEscalation>> {
        let ids = self.members(&self.key(tenant, index)?, true)?;
        let keys = ids.iter().map(|id| self.key(tenant, &format!("esc:{id}"))).collect::<GatewayResult<Vec<_>>>()?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(1_000) {
            self.prefetch(chunk)?;
            for key in chunk {
                let stored = self.get_json(key)?;
                out.push(stored.ok_or_else(|| GatewayError::internal(format!("redis: the escalation index names `{key}`, which is missing")))?);
            }
        }
        Ok(out)
    }

    /// The members of the set `rest`, in order.
    fn sorted_members(&self, tenant: &str, rest: &str) -> GatewayResult<Vec<String>> {
        Ok(self.members(&self.key(tenant, rest)?, false)?.into_iter().collect())
    }
}

impl RegistryStore for Transaction<'_> {
    fn authority_settings(&self, tenant: &str) -> GatewayResult<Option<AuthoritySettings>> {
        self.get_json(&self.key(tenant, "authority")?)
    }

    fn set_authority_settings(&self, tenant: &str, settings: &AuthoritySettings) -> GatewayResult<()> {
        self.set_json(self.key(tenant, "authority")?, settings)
    }

    fn agent(&self, tenant: &str, agent_id: &str) -> GatewayResult<Option<AgentRecord>> {
        Ok(self.get_json::<StoredAgent>(&self.agent_key(tenant, agent_id)?)?.map(|s| s.agent))
    }

    fn agents(&self, tenant: &str) -> GatewayResult<Vec<AgentRecord>> {
        // a BTreeSet: in id order, as the SQL backend's ORDER BY agent_id
        let ids = self.members(&self.key(tenant, "agents")?, false)?;
        let keys = ids.iter().map(|id| self.agent_key(tenant, id)).collect::<GatewayResult<Vec<_>>>()?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(1_000) {
            self.prefetch(chunk)?;
            for key in chunk {
                let stored = self.get_json::<StoredAgent>(key)?;
                out.push(stored.ok_or_else(|| GatewayError::internal(format!("redis: the agent index names `{key}`, which is missing")))?.agent);
            }
        }
        Ok(out)
    }

    fn upsert_agent(&self, tenant: &str, agent: &AgentRecord, now: i64) -> GatewayResult<()> {
        self.set_json(self.agent_key(tenant, &agent.agent_id)?, &StoredAgent { agent: agent.clone(), updated_at_ms: now })?;
        self.add_member(Write::SetAdd(self.key(tenant, "agents")?, agent.agent_id.clone()));
        Ok(())
    }

    fn set_agent_trust(&self, tenant: &str, agent_id: &str, score: f64, now: i64) -> GatewayResult<bool> {
        let key = self.agent_key(tenant, agent_id)?;
        let Some(mut stored) = self.get_json::<StoredAgent>(&key)? else {
            return Ok(false);
        };
        stored.agent.trust = score;
        stored.updated_at_ms = now;
        self.set_json(key, &stored)?;
        Ok(true)
    }
}

impl DelegationStore for Transaction<'_> {
    fn delegation_response(&self, tenant: &str, key: &str) -> GatewayResult<Option<StoredDelegation>> {
        Ok(self.get_json::<StoredResponse>(&self.key(tenant, &format!("dlg:{key}"))?)?.map(|s| s.stored))
    }

    fn insert_delegation_response(&self, tenant: &str, key: &str, stored: &StoredDelegation, now: i64) -> GatewayResult<bool> {
        let key = self.key(tenant, &format!("dlg:{key}"))?;
        // under the tenant's lock: no other gateway can store this key between read and write
        if self.get(&key)?.is_some() {
            return Ok(false);
        }
        self.set_json(key, &StoredResponse { stored: stored.clone(), created_at_ms: now })?;
        Ok(true)
    }

    fn depth_exception(&self, tenant: &str, id: &str) -> GatewayResult<Option<DepthExceptionRow>> {
        self.get_json(&self.key(tenant, &format!("dex:{id}"))?)
    }

    fn insert_depth_exception(&self, tenant: &str, exception: &DepthExceptionRow) -> GatewayResult<()> {
        let key = self.key(tenant, &format!("dex:{}", exception.id))?;
        self.refuse_existing(&key)?;
        self.set_json(key, exception)
    }
}

impl EscrowStore for Transaction<'_> {
    fn grant(&self, tenant: &str, grant_id: &str) -> GatewayResult<Option<Grant>> {
        Ok(self.get_json::<StoredGrant>(&self.grant_key(tenant, grant_id)?)?.map(|g| g.into_grant(grant_id)))
    }

    fn insert_grant(&self, tenant: &str, g: &Grant) -> GatewayResult<bool> {
        let key = self.grant_key(tenant, &g.grant_id)?;
        if self.get(&key)?.is_some() {
            return Ok(false);
        }
        if g.parent_id.is_none() {
            // one root a chain, as SQL's partial unique index: under the tenant's lock no
            // other gateway can write the chain's root between this read and the commit
            let root = self.key(tenant, &format!("chain-root:{}", g.chain_id))?;
            if self.get(&root)?.is_some() {
                return Ok(false);
            }
            self.set_string(root, g.grant_id.clone());
        }
        let stored = StoredGrant {
            chain_id: g.chain_id.clone(),
            parent_id: g.parent_id.clone(),
            holder: g.holder.clone(),
            depth: g.depth,
            status: g.status.as_str().to_string(),
            expires_at_ms: g.expires_at_ms,
            created_at_ms: g.created_at_ms,
            settled_at_ms: None,
            units: g
                .units
                .iter()
                .map(|u| StoredUnit { unit: u.unit, granted: u.granted, carved: u.carved, spent: u.spent, reservation_id: u.reservation_id.clone() })
                .collect(),
        };
        self.set_json(key, &stored)?;
        if let Some(parent) = &g.parent_id {
            self.add_member(Write::SetAdd(self.key(tenant, &format!("grant-kids:{parent}"))?, g.grant_id.clone()));
        }
        self.add_member(Write::SetAdd(self.key(tenant, &format!("chain-grants:{}", g.chain_id))?, g.grant_id.clone()));
        self.add_member(Write::SetAdd(self.key(tenant, "grants")?, g.grant_id.clone()));
        Ok(true)
    }

    fn save_grant_unit(&self, tenant: &str, grant_id: &str, u: &GrantUnit) -> GatewayResult<()> {
        let (key, mut stored) = self.stored_grant(tenant, grant_id)?;
        let held = stored
            .units
            .iter_mut()
            .find(|s| s.unit == u.unit)
            .ok_or_else(|| GatewayError::internal(format!("redis: grant `{grant_id}` holds no {} budget", u.unit.as_str())))?;
        held.carved = u.carved;
        held.spent = u.spent;
        held.reservation_id.clone_from(&u.reservation_id);
        self.set_json(key, &stored)
    }

    fn set_grant_status(&self, tenant: &str, grant_id: &str, status: GrantStatus, at_ms: i64) -> GatewayResult<()> {
        let (key, mut stored) = self.stored_grant(tenant, grant_id)?;
        stored.status = status.as_str().to_string();
        stored.settled_at_ms = Some(at_ms);
        self.set_json(key, &stored)
    }

    fn child_grants(&self, tenant: &str, grant_id: &str) -> GatewayResult<Vec<String>> {
        self.sorted_members(tenant, &format!("grant-kids:{grant_id}"))
    }

    fn chain_grants(&self, tenant: &str, chain_id: &str) -> GatewayResult<Vec<String>> {
        self.sorted_members(tenant, &format!("chain-grants:{chain_id}"))
    }

    fn tenant_grants(&self, tenant: &str) -> GatewayResult<Vec<String>> {
        self.sorted_members(tenant, "grants")
    }
}

impl EscalationStore for Transaction<'_> {
    fn escalation(&self, tenant: &str, id: &str) -> GatewayResult<Option<EscalationRecord>> {
        self.get_json::<StoredEscalation>(&self.key(tenant, &format!("esc:{id}"))?)?.map(|s| s.record()).transpose()
    }

    fn save_escalation(&self, tenant: &str, record: &EscalationRecord) -> GatewayResult<()> {
        let stored = StoredEscalation {
            id: record.id.clone(),
            status: record.status.as_str().to_string(),
            assignee: record.assignee.clone(),
            expires_at_ms: record.expires_at_ms,
            body: serde_json::to_string(record).map_err(super::json_error)?,
        };
        self.set_json(self.key(tenant, &format!("esc:{}", record.id))?, &stored)?;
        let (all, pending) = (self.key(tenant, "esc-all")?, self.key(tenant, "esc-pending")?);
        self.add_member(Write::SortedAdd(all, record.expires_at_ms, record.id.clone()));
        if record.status == EscalationStatus::Pending {
            self.add_member(Write::SortedAdd(pending, record.expires_at_ms, record.id.clone()));
        } else {
            self.remove_member(pending, record.id.clone());
        }
        self.indexes.borrow_mut().push(Write::SetAdd(format!("{}:esc-tenants", self.prefix), tenant.to_string()));
        Ok(())
    }

    fn pending_escalations(&self, tenant: &str, assignee: &str) -> GatewayResult<usize> {
        let pending = self.escalations_in(tenant, "esc-pending")?;
        Ok(pending.iter().filter(|e| e.status == EscalationStatus::Pending.as_str() && e.assignee == assignee).count())
    }

    fn escalations(&self, tenant: &str, status: Option<EscalationStatus>, assignee: Option<&str>) -> GatewayResult<Vec<EscalationRecord>> {
        let mut matching: Vec<StoredEscalation> = self
            .escalations_in(tenant, "esc-all")?
            .into_iter()
            .filter(|e| status.is_none_or(|s| e.status == s.as_str()) && assignee.is_none_or(|a| e.assignee == a))
            .collect();
        matching.sort_by(|a, b| (a.expires_at_ms, &a.id).cmp(&(b.expires_at_ms, &b.id)));
        matching.iter().map(StoredEscalation::record).collect()
    }

    fn expired_escalations(&self, tenant: &str, now: i64, max: usize) -> GatewayResult<Vec<ExpiredEscalation>> {
        let mut expired: Vec<StoredEscalation> = self
            .escalations_in(tenant, "esc-pending")?
            .into_iter()
            .filter(|e| e.status == EscalationStatus::Pending.as_str() && e.expires_at_ms < now)
            .collect();
        expired.sort_by(|a, b| (a.expires_at_ms, &a.id).cmp(&(b.expires_at_ms, &b.id)));
        Ok(expired.into_iter().take(max).map(|e| (e.id.clone(), e.record().ok())).collect())
    }

    fn expire_unreadable_escalation(&self, tenant: &str, id: &str) -> GatewayResult<()> {
        let key = self.key(tenant, &format!("esc:{id}"))?;
        let Some(mut stored) = self.get_json::<StoredEscalation>(&key)? else {
            return Ok(());
        };
        stored.status = EscalationStatus::Expired.as_str().to_string();
        self.set_json(key, &stored)?;
        self.remove_member(self.key(tenant, "esc-pending")?, id.to_string());
        Ok(())
    }

    fn escalation_tenants(&self) -> GatewayResult<Vec<String>> {
        let index = format!("{}:esc-tenants", self.prefix);
        let stored: Vec<String> = redis::Commands::smembers(&mut **self.connection.borrow_mut(), &index).map_err(super::redis_error)?;
        let mut tenants: std::collections::BTreeSet<String> = stored.into_iter().collect();
        tenants.extend(self.indexes.borrow().iter().filter_map(|w| match w {
            Write::SetAdd(key, tenant) if *key == index => Some(tenant.clone()),
            _ => None,
        }));
        Ok(tenants.into_iter().collect())
    }

    fn escalation_targets(&self, tenant: &str) -> GatewayResult<Vec<TargetBody>> {
        let agents = self.members(&self.key(tenant, "esctgts")?, false)?;
        let keys = agents.iter().map(|a| self.key(tenant, &format!("esctgt:{a}"))).collect::<GatewayResult<Vec<_>>>()?;
        self.prefetch(&keys)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in &keys {
            let text = self.get(key)?.ok_or_else(|| GatewayError::internal(format!("redis: the target index names `{key}`, which is missing")))?;
            out.push(serde_json::from_str::<TargetBody>(&text).map_err(|e| GatewayError::internal(format!("a stored escalation target is unreadable: {e}")))?);
        }
        out.sort_by(|a, b| b.trust.cmp(&a.trust).then_with(|| a.agent_id.cmp(&b.agent_id)));
        Ok(out)
    }

    fn save_escalation_target(&self, tenant: &str, target: &TargetBody) -> GatewayResult<()> {
        self.set_json(self.key(tenant, &format!("esctgt:{}", target.agent_id))?, target)?;
        self.add_member(Write::SetAdd(self.key(tenant, "esctgts")?, target.agent_id.clone()));
        Ok(())
    }
}

impl super::RedisLedger {
    /// The escalation sweep on Redis: [`crate::escalations::sweep_tenant`] for each tenant
    /// with a PENDING escalation past its TTL, each in its own tenant's unit (a tenant with
    /// none is not locked; the index of tenants is read outside any unit). A tenant that fails does not
    /// stop the others; the first failure is answered after all were tried.
    pub fn sweep_escalations(&self, now: i64, signer: &sbd_bundle::KeyPair) -> GatewayResult<usize> {
        let tenants: Vec<String> = {
            let mut connection = self.connection()?;
            let tenants = redis::Commands::smembers(&mut connection, format!("{}:esc-tenants", self.prefix)).map_err(super::redis_error)?;
            self.reuse(connection);
            tenants
        };
        let (mut closed, mut first_error) = (0usize, None);
        for tenant in tenants {
            // the pending set is scored by expiry: a tenant with nothing past its TTL is skipped
            let swept = self.any_before(&tenant, "esc-pending", now).and_then(|due| {
                if due { self.run(&tenant, |tx| crate::escalations::sweep_tenant(tx, &tenant, now, signer)) } else { Ok(0) }
            });
            match swept {
                Ok(n) => closed = closed.saturating_add(n),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(closed), Err)
    }
}

impl TraceStore for Transaction<'_> {
    fn trace_head(&self, tenant: &str, chain_id: &str) -> GatewayResult<Option<SignedHead>> {
        self.get_json(&self.key(tenant, &format!("thead:{chain_id}"))?)
    }

    fn next_trace_seq(&self, tenant: &str) -> GatewayResult<i64> {
        let key = self.key(tenant, "trace-seq")?;
        let last = match self.get(&key)? {
            Some(text) => text.parse::<i64>().map_err(|_| GatewayError::internal(format!("redis: `{key}` is not a number")))?,
            None => 0,
        };
        let next = last.checked_add(1).ok_or_else(|| GatewayError::internal("trace sequence overflow"))?;
        self.set_string(key, next.to_string());
        Ok(next)
    }

    fn open_trace_leaf(&self, tenant: &str, signer: &sbd_bundle::KeyPair, leaf: [u8; 32]) -> GatewayResult<(i64, i64)> {
        if tenant != self.tenant {
            return Err(GatewayError::internal(format!("redis: a trace event of `{tenant}` appended under `{}`'s lock", self.tenant)));
        }
        let mut trace = self.trace.borrow_mut();
        let batch = match trace.as_mut() {
            Some(batch) => batch,
            None => {
                let seal_id: i64 = redis::cmd("INCR")
                    .arg(format!("{}:ids:seal", self.prefix))
                    .query(&mut **self.connection.borrow_mut())
                    .map_err(super::redis_error)?;
                // a counter that went back (a failover lost its last increments) must not let
                // a seal replace another: the tenant's lock keeps this check true until the commit
                if self.get(&self.key(tenant, &format!("seal:{seal_id}"))?)?.is_some() {
                    return Err(GatewayError::internal(format!("redis: seal id {seal_id} is taken; the seal counter went back")));
                }
                trace.insert(super::TraceBatch { seal_id, signer: signer.clone(), leaves: Vec::new() })
            }
        };
        if batch.signer.id() != signer.id() {
            return Err(GatewayError::internal("one unit's trace events signed by two keys"));
        }
        let index = i64::try_from(batch.leaves.len()).map_err(GatewayError::internal)?;
        batch.leaves.push(leaf);
        Ok((batch.seal_id, index))
    }

    fn insert_trace_event(&self, r: &Record) -> GatewayResult<()> {
        let key = self.key(&r.tenant, &format!("tev:{}:{}", r.chain_id, r.pos))?;
        let at = self.key(&r.tenant, &format!("trace-at:{}", r.seq))?;
        // both are new (checked by the commit): a sequence counter that went back must not
        // repoint another event's number
        self.create_json(key, r)?;
        self.create_json(at, &(&r.chain_id, r.pos))?;
        if r.decision == "warning" {
            let seq = u64::try_from(r.seq).map_err(|_| GatewayError::internal(format!("a trace event numbered {}", r.seq)))?;
            self.add_member(Write::SortedAdd(self.key(&r.tenant, "twarn")?, 0, format!("{seq:020}")));
        }
        // as on the embedded store, the head carries no signature of its own: the last event's
        // seal signs it
        let head = SignedHead {
            tenant: r.tenant.clone(),
            chain_id: r.chain_id.clone(),
            count: r.pos,
            head_hash: r.hash.clone(),
            key_id: r.key_id.clone(),
            signature: String::new(),
        };
        self.set_json(self.key(&r.tenant, &format!("thead:{}", r.chain_id))?, &head)
    }

    fn trace_events(&self, tenant: &str, chain_id: &str) -> GatewayResult<Vec<Record>> {
        let Some(SignedHead { count, .. }) = self.trace_head(tenant, chain_id)? else { return Ok(Vec::new()) };
        if count < 0 {
            return Err(GatewayError::internal(format!("redis: chain `{chain_id}`'s head counts {count} events")));
        }
        let keys = (1..=count).map(|pos| self.key(tenant, &format!("tev:{chain_id}:{pos}"))).collect::<GatewayResult<Vec<_>>>()?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(1_000) {
            self.prefetch(chunk)?;
            for key in chunk {
                // a missing position stays missing: verification reports the chain broken there
                out.extend(self.get_json::<Record>(key)?);
            }
        }
        Ok(out)
    }

    fn warning_events(&self, tenant: &str, limit: usize) -> GatewayResult<Vec<Record>> {
        let mut out = Vec::new();
        for member in self.lex_range(&self.key(tenant, "twarn")?, "-", "+", true, limit)? {
            let seq: i64 = member.parse().map_err(|_| GatewayError::internal(format!("redis: `{member}` in the warning index is not a number")))?;
            out.extend(self.trace_event_at(tenant, seq)?);
        }
        Ok(out)
    }

    fn trace_event_at(&self, tenant: &str, seq: i64) -> GatewayResult<Option<Record>> {
        let Some((chain_id, pos)) = self.get_json::<(String, i64)>(&self.key(tenant, &format!("trace-at:{seq}"))?)? else {
            return Ok(None);
        };
        // the index must name the event of this number, or it names none
        Ok(self.get_json::<Record>(&self.key(tenant, &format!("tev:{chain_id}:{pos}"))?)?.filter(|r| r.seq == seq))
    }

    fn trace_seal(&self, tenant: &str, seal_id: i64) -> GatewayResult<Result<Seal, &'static str>> {
        let Some(stored) = self.get_json::<StoredSeal>(&self.key(tenant, &format!("seal:{seal_id}"))?)? else {
            return Ok(Err("its seal is missing"));
        };
        let mut leaves = Vec::with_capacity(stored.leaves.len() * 32);
        for leaf in &stored.leaves {
            match traces::unhex32(leaf) {
                Some(bytes) => leaves.extend_from_slice(&bytes),
                None => return Ok(Err("its seal's stored leaves are malformed")),
            }
        }
        Ok(traces::seal_from_leaves(stored.record, &leaves))
    }
}
