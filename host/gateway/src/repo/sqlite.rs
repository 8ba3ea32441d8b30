//! The [`crate::repo`] traits on the embedded SQLite store: each for a connection inside the
//! writer's savepoint (or a reader's snapshot), with the tables they use.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{ApiError, ApiResult};
use crate::registry::{AgentRecord, AuthoritySettings};
use crate::repo::{DelegationStore, DepthExceptionRow, RegistryStore, StoredDelegation};

/// The registry's tables; applied with the store's schema ([`crate::store::migrate`]).
pub const REGISTRY_SCHEMA: &str = r#"
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

/// The delegation records' tables; applied with the store's schema.
pub const DELEGATION_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS delegation_requests (
    tenant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    trace_seq INTEGER,
    PRIMARY KEY (tenant_id, key)
);
CREATE TABLE IF NOT EXISTS depth_exceptions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    justification TEXT NOT NULL,
    extra_depth INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// An agent from its stored body, with the `trust` column (the one outcome reports move).
fn agent_from(body: &str, trust: f64) -> ApiResult<AgentRecord> {
    let mut agent: AgentRecord = serde_json::from_str(body).map_err(ApiError::internal)?;
    agent.trust = trust;
    Ok(agent)
}

impl RegistryStore for Connection {
    fn authority_settings(&self, tenant: &str) -> ApiResult<Option<AuthoritySettings>> {
        let body: Option<String> = self
            .prepare_cached("SELECT body FROM authority_settings WHERE tenant_id = ?1")?
            .query_row([tenant], |r| r.get(0))
            .optional()?;
        body.map(|b| serde_json::from_str(&b).map_err(ApiError::internal)).transpose()
    }

    fn set_authority_settings(&self, tenant: &str, settings: &AuthoritySettings) -> ApiResult<()> {
        let body = serde_json::to_string(settings).map_err(ApiError::internal)?;
        self.prepare_cached(
            "INSERT INTO authority_settings (tenant_id, body) VALUES (?1, ?2) ON CONFLICT(tenant_id) DO UPDATE SET body = excluded.body",
        )?
        .execute(params![tenant, body])?;
        Ok(())
    }

    fn agent(&self, tenant: &str, agent_id: &str) -> ApiResult<Option<AgentRecord>> {
        let row: Option<(String, f64)> = self
            .prepare_cached("SELECT body, trust FROM agents WHERE tenant_id = ?1 AND agent_id = ?2")?
            .query_row(params![tenant, agent_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(body, trust)| agent_from(&body, trust)).transpose()
    }

    fn agents(&self, tenant: &str) -> ApiResult<Vec<AgentRecord>> {
        let mut stmt = self.prepare_cached("SELECT body, trust FROM agents WHERE tenant_id = ?1 ORDER BY agent_id")?;
        let rows = stmt.query_map([tenant], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (body, trust) = row?;
            out.push(agent_from(&body, trust)?);
        }
        Ok(out)
    }

    fn upsert_agent(&self, tenant: &str, agent: &AgentRecord, now: i64) -> ApiResult<()> {
        let body = serde_json::to_string(agent).map_err(ApiError::internal)?;
        self.prepare_cached(
            "INSERT INTO agents (tenant_id, agent_id, trust, body, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(tenant_id, agent_id) DO UPDATE SET trust = excluded.trust, body = excluded.body, updated_at_ms = excluded.updated_at_ms",
        )?
        .execute(params![tenant, agent.agent_id, agent.trust, body, now])?;
        Ok(())
    }

    fn set_agent_trust(&self, tenant: &str, agent_id: &str, score: f64, now: i64) -> ApiResult<bool> {
        let n = self
            .prepare_cached("UPDATE agents SET trust = ?3, updated_at_ms = ?4 WHERE tenant_id = ?1 AND agent_id = ?2")?
            .execute(params![tenant, agent_id, score, now])?;
        Ok(n > 0)
    }
}

impl DelegationStore for Connection {
    fn delegation_response(&self, tenant: &str, key: &str) -> ApiResult<Option<StoredDelegation>> {
        Ok(self
            .prepare_cached("SELECT request_hash, response, trace_seq FROM delegation_requests WHERE tenant_id = ?1 AND key = ?2")?
            .query_row(params![tenant, key], |r| {
                Ok(StoredDelegation { request_hash: r.get(0)?, response: r.get(1)?, trace_seq: r.get(2)? })
            })
            .optional()?)
    }

    fn insert_delegation_response(&self, tenant: &str, key: &str, stored: &StoredDelegation, now: i64) -> ApiResult<bool> {
        let inserted = self
            .prepare_cached(
                "INSERT INTO delegation_requests (tenant_id, key, request_hash, response, trace_seq, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )?
            .execute(params![tenant, key, stored.request_hash, stored.response, stored.trace_seq, now])?;
        Ok(inserted == 1)
    }

    fn depth_exception(&self, tenant: &str, id: &str) -> ApiResult<Option<DepthExceptionRow>> {
        Ok(self
            .prepare_cached(
                "SELECT id, chain_id, approved_by, justification, extra_depth, expires_at_ms, created_at_ms \
                 FROM depth_exceptions WHERE id = ?1 AND tenant_id = ?2",
            )?
            .query_row(params![id, tenant], |r| {
                Ok(DepthExceptionRow {
                    id: r.get(0)?,
                    chain_id: r.get(1)?,
                    approved_by: r.get(2)?,
                    justification: r.get(3)?,
                    extra_depth: r.get(4)?,
                    expires_at_ms: r.get(5)?,
                    created_at_ms: r.get(6)?,
                })
            })
            .optional()?)
    }

    fn insert_depth_exception(&self, tenant: &str, e: &DepthExceptionRow) -> ApiResult<()> {
        self.prepare_cached(
            "INSERT INTO depth_exceptions (id, tenant_id, chain_id, approved_by, justification, extra_depth, expires_at_ms, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![e.id, tenant, e.chain_id, e.approved_by, e.justification, e.extra_depth, e.expires_at_ms, e.created_at_ms])?;
        Ok(())
    }
}
