//! The [`crate::repo`] traits on Redis: the agent registry and the delegation records of a
//! tenant, in the tenant's slot, read and written by the same fenced unit of work as its
//! ledger ([`super`]), so a delegation's registry reads, its idempotent response and its
//! ledger holds commit together.
//!
//! | key | holds |
//! |---|---|
//! | `P:{T}:authority` | the tenant's authority settings, JSON |
//! | `P:{T}:agent:ID` | a registered agent (with its trust score), JSON |
//! | `P:{T}:agents` | set of the registered agents' ids |
//! | `P:{T}:dlg:KEY` | a stored delegation response under idempotency key `KEY`, JSON |
//! | `P:{T}:dex:ID` | a depth exception, JSON |

use serde::{Deserialize, Serialize};

use super::{Transaction, Write};
use crate::error::{ApiError, ApiResult};
use crate::registry::{AgentRecord, AuthoritySettings};
use crate::repo::{DelegationStore, DepthExceptionRow, RegistryStore, StoredDelegation};

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

impl Transaction<'_> {
    fn agent_key(&self, tenant: &str, agent_id: &str) -> ApiResult<String> {
        self.key(tenant, &format!("agent:{agent_id}"))
    }
}

impl RegistryStore for Transaction<'_> {
    fn authority_settings(&self, tenant: &str) -> ApiResult<Option<AuthoritySettings>> {
        self.get_json(&self.key(tenant, "authority")?)
    }

    fn set_authority_settings(&self, tenant: &str, settings: &AuthoritySettings) -> ApiResult<()> {
        self.set_json(self.key(tenant, "authority")?, settings)
    }

    fn agent(&self, tenant: &str, agent_id: &str) -> ApiResult<Option<AgentRecord>> {
        Ok(self.get_json::<StoredAgent>(&self.agent_key(tenant, agent_id)?)?.map(|s| s.agent))
    }

    fn agents(&self, tenant: &str) -> ApiResult<Vec<AgentRecord>> {
        // a BTreeSet: in id order, as the SQL backend's ORDER BY agent_id
        let ids = self.members(&self.key(tenant, "agents")?, false)?;
        let keys = ids.iter().map(|id| self.agent_key(tenant, id)).collect::<ApiResult<Vec<_>>>()?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(1_000) {
            self.prefetch(chunk)?;
            for key in chunk {
                let stored = self.get_json::<StoredAgent>(key)?;
                out.push(stored.ok_or_else(|| ApiError::internal(format!("redis: the agent index names `{key}`, which is missing")))?.agent);
            }
        }
        Ok(out)
    }

    fn upsert_agent(&self, tenant: &str, agent: &AgentRecord, now: i64) -> ApiResult<()> {
        self.set_json(self.agent_key(tenant, &agent.agent_id)?, &StoredAgent { agent: agent.clone(), updated_at_ms: now })?;
        self.add_member(Write::SetAdd(self.key(tenant, "agents")?, agent.agent_id.clone()));
        Ok(())
    }

    fn set_agent_trust(&self, tenant: &str, agent_id: &str, score: f64, now: i64) -> ApiResult<bool> {
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
    fn delegation_response(&self, tenant: &str, key: &str) -> ApiResult<Option<StoredDelegation>> {
        Ok(self.get_json::<StoredResponse>(&self.key(tenant, &format!("dlg:{key}"))?)?.map(|s| s.stored))
    }

    fn insert_delegation_response(&self, tenant: &str, key: &str, stored: &StoredDelegation, now: i64) -> ApiResult<bool> {
        let key = self.key(tenant, &format!("dlg:{key}"))?;
        // under the tenant's lock: no other gateway can store this key between read and write
        if self.get(&key)?.is_some() {
            return Ok(false);
        }
        self.set_json(key, &StoredResponse { stored: stored.clone(), created_at_ms: now })?;
        Ok(true)
    }

    fn depth_exception(&self, tenant: &str, id: &str) -> ApiResult<Option<DepthExceptionRow>> {
        self.get_json(&self.key(tenant, &format!("dex:{id}"))?)
    }

    fn insert_depth_exception(&self, tenant: &str, exception: &DepthExceptionRow) -> ApiResult<()> {
        let key = self.key(tenant, &format!("dex:{}", exception.id))?;
        self.refuse_existing(&key)?;
        self.set_json(key, exception)
    }
}
