//! The agent registry and each tenant's authority settings (Vorion: registered agents with a
//! trust score, tier and capabilities; `requireExplicitDelegation`).
//!
//! The gateway decides with the registry's trust score, never the caller's: an operator sets it
//! when registering the agent and outcome reports move it. Agent ids are stored in their
//! canonical form ([`sbd_policy::identity`]), so `Agent-A` and `agent-a` are one agent here as
//! in the rules.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};

/// The registry tables; created with the store's schema.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS agents (
    tenant_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    trust REAL NOT NULL,
    body TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, agent_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS authority_settings (
    tenant_id TEXT PRIMARY KEY,
    body TEXT NOT NULL
) WITHOUT ROWID;
"#;

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
pub fn settings(conn: &Connection, tenant: &str) -> ApiResult<AuthoritySettings> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM authority_settings WHERE tenant_id = ?1")?
        .query_row([tenant], |r| r.get(0))
        .optional()?;
    match body {
        Some(b) => serde_json::from_str(&b).map_err(ApiError::internal),
        None => Ok(AuthoritySettings::default()),
    }
}

/// Replaces `tenant`'s settings.
pub fn set_settings(conn: &Connection, tenant: &str, s: &AuthoritySettings) -> ApiResult<()> {
    let body = serde_json::to_string(s).map_err(ApiError::internal)?;
    conn.prepare_cached(
        "INSERT INTO authority_settings (tenant_id, body) VALUES (?1, ?2) ON CONFLICT(tenant_id) DO UPDATE SET body = excluded.body",
    )?
    .execute(params![tenant, body])?;
    Ok(())
}

/// Registers or replaces an agent.
pub fn upsert(conn: &Connection, tenant: &str, a: &AgentRecord, now: i64) -> ApiResult<()> {
    if !a.trust.is_finite() || !(0.0..=1000.0).contains(&a.trust) {
        return Err(ApiError::invalid("`trust` must be a number in 0-1000"));
    }
    let body = serde_json::to_string(a).map_err(ApiError::internal)?;
    conn.prepare_cached(
        "INSERT INTO agents (tenant_id, agent_id, trust, body, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT(tenant_id, agent_id) DO UPDATE SET trust = excluded.trust, body = excluded.body, updated_at_ms = excluded.updated_at_ms",
    )?
    .execute(params![tenant, a.agent_id, a.trust, body, now])?;
    Ok(())
}

/// The agent `agent_id` (canonical) of `tenant`, if registered.
pub fn get(conn: &Connection, tenant: &str, agent_id: &str) -> ApiResult<Option<AgentRecord>> {
    let row: Option<(String, f64)> = conn
        .prepare_cached("SELECT body, trust FROM agents WHERE tenant_id = ?1 AND agent_id = ?2")?
        .query_row(params![tenant, agent_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        Some((body, trust)) => {
            let mut a: AgentRecord = serde_json::from_str(&body).map_err(ApiError::internal)?;
            a.trust = trust;
            Ok(Some(a))
        }
        None => Ok(None),
    }
}

/// Every agent of `tenant`, by id.
pub fn list(conn: &Connection, tenant: &str) -> ApiResult<Vec<AgentRecord>> {
    let mut stmt = conn.prepare_cached("SELECT body, trust FROM agents WHERE tenant_id = ?1 ORDER BY agent_id")?;
    let rows = stmt.query_map([tenant], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (body, trust) = row?;
        let mut a: AgentRecord = serde_json::from_str(&body).map_err(ApiError::internal)?;
        a.trust = trust;
        out.push(a);
    }
    Ok(out)
}

/// Moves a registered agent's trust score (outcome reports); unregistered agents are skipped.
pub fn set_trust(conn: &Connection, tenant: &str, agent_id: &str, score: f64, now: i64) -> ApiResult<bool> {
    let score = if score.is_finite() { score.clamp(0.0, 1000.0) } else { 0.0 };
    let n = conn
        .prepare_cached("UPDATE agents SET trust = ?3, updated_at_ms = ?4 WHERE tenant_id = ?1 AND agent_id = ?2")?
        .execute(params![tenant, agent_id, score, now])?;
    Ok(n > 0)
}
