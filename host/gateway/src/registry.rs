//! The agent registry and each tenant's authority settings (Vorion: registered agents with a
//! trust score, tier and capabilities; `requireExplicitDelegation`).
//!
//! The gateway decides with the registry's trust score, never the caller's: an operator sets it
//! when registering the agent and outcome reports move it. Agent ids are stored in their
//! canonical form ([`sbd_policy::identity`]), so `Agent-A` and `agent-a` are one agent here as
//! in the rules.

use serde::{Deserialize, Serialize};

use crate::error::{GatewayError, GatewayResult};
use crate::repo::RegistryStore;

/// How a delegation naming an agent the registry does not know is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unregistered {
    /// Refused (reason `unregistered-agent`).
    #[default]
    Deny,
    /// Escalated to the tenant's `reviewer`.
    Escalate,
}

/// A tenant's authority settings; every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthoritySettings {
    /// Let an agent start a chain without a root grant, with a root mandate of its own making
    /// (held from the tenant's budgets like a root grant). Off by default: with it on, the root
    /// mandate is the caller's claim, bounded only by the tenant's budgets.
    pub open_roots: bool,
    /// What happens to a delegation from or to an unregistered agent.
    pub unregistered: Unregistered,
    /// Require each delegator's registry entry to list the delegate in `delegates`.
    pub require_explicit_delegation: bool,
    /// The human who reviews delegations escalated for an unregistered agent.
    pub reviewer: String,
}

impl Default for AuthoritySettings {
    fn default() -> Self {
        AuthoritySettings {
            open_roots: false,
            unregistered: Unregistered::Deny,
            require_explicit_delegation: false,
            reviewer: "human-oversight".into(),
        }
    }
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRecord {
    /// Canonical id.
    pub agent_id: String,
    /// Trust score 0-1000 (Vorion); moved by outcome reports.
    pub trust: f64,
    /// Action kinds it may take on (`payment.*`, `*`); informational for escalation routing.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The agents it may delegate to (canonical ids), when the tenant requires explicit
    /// delegation relationships.
    #[serde(default)]
    pub delegates: Vec<String>,
}

impl AgentRecord {
    /// The Vorion tier of its score.
    pub fn tier(&self) -> sbd_policy::TrustTier {
        sbd_policy::TrustTier::of_score(self.trust_score())
    }

    /// Its score as the rules take it.
    pub fn trust_score(&self) -> u16 {
        // INVARIANT: `trust` is kept within 0-1000 by `upsert` and `set_trust`.
        self.trust.round().clamp(0.0, 1000.0) as u16
    }
}

/// Reads `tenant`'s settings (the defaults when none were set).
pub fn settings(store: &dyn RegistryStore, tenant: &str) -> GatewayResult<AuthoritySettings> {
    Ok(store.authority_settings(tenant)?.unwrap_or_default())
}

/// Registers or replaces an agent; its trust must be a score in 0-1000.
pub fn upsert(store: &dyn RegistryStore, tenant: &str, a: &AgentRecord, now: i64) -> GatewayResult<()> {
    if !a.trust.is_finite() || !(0.0..=1000.0).contains(&a.trust) {
        return Err(GatewayError::invalid("`trust` must be a number in 0-1000"));
    }
    store.upsert_agent(tenant, a, now)
}

/// Moves a registered agent's trust score (outcome reports), clamped to 0-1000 (a score that
/// is not a number is 0); unregistered agents are skipped (`false`).
pub fn set_trust(store: &dyn RegistryStore, tenant: &str, agent_id: &str, score: f64, now: i64) -> GatewayResult<bool> {
    let score = if score.is_finite() { score.clamp(0.0, 1000.0) } else { 0.0 };
    store.set_agent_trust(tenant, agent_id, score, now)
}
