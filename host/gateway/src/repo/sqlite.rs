//! The [`crate::repo`] traits on the embedded SQLite store: each for a connection inside the
//! writer's savepoint (or a reader's snapshot), with the tables they use.

use rusqlite::{params, Connection, OptionalExtension};

use crate::cycles::Unit;
use crate::error::{GatewayError, GatewayResult};
use crate::escalations::{EscalationRecord, Status as EscalationStatus, TargetBody};
use crate::escrow::{Grant, GrantStatus, GrantUnit};
use crate::events::{EventCategory, EventFilter, EventRow, EventType, SortBy, SortDir, StoredEvent};
use crate::registry::{AgentRecord, AuthoritySettings};
use crate::cycles::Tenant;
use crate::repo::{
    DelegationStore, DepthExceptionRow, EscalationStore, EscrowStore, EventStore, ExpiredEscalation, RegistryStore, StoredApiKey, StoredDelegation,
    TenantStore, TraceStore, UnitOfWork, WebhookStore,
};
use crate::traces::{self, Record, Seal, SignedHead};
use crate::webhooks::{Delivery, DeliveryFilter, DeliveryStatus, Subscription, SubscriptionStatus};
use sbd_bundle::KeyPair;

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

/// The escrow tables (the delegation trees); applied with the store's schema. The CHECKs
/// repeat the node invariant the rules keep ([`crate::escrow`]).
pub const ESCROW_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    parent_id TEXT,
    holder TEXT NOT NULL,
    depth INTEGER NOT NULL,
    status TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    settled_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS grants_parent ON grants (parent_id);
-- One root per chain in each tenant: chain ids are a tenant's own namespace (an open root's
-- caller names its chain, and a global index told it which ids other tenants use).
DROP INDEX IF EXISTS grants_one_root_per_chain;
CREATE UNIQUE INDEX IF NOT EXISTS grants_one_root_per_tenant_chain ON grants (tenant_id, chain_id) WHERE parent_id IS NULL;
CREATE TABLE IF NOT EXISTS grant_units (
    grant_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    granted INTEGER NOT NULL CHECK (granted >= 0),
    carved INTEGER NOT NULL DEFAULT 0 CHECK (carved >= 0),
    spent INTEGER NOT NULL DEFAULT 0 CHECK (spent >= 0),
    reservation_id TEXT,
    PRIMARY KEY (grant_id, unit),
    CHECK (carved + spent <= granted)
);
"#;

/// An agent from its stored body, with the `trust` column (the one outcome reports move).
fn agent_from(body: &str, trust: f64) -> GatewayResult<AgentRecord> {
    let mut agent: AgentRecord = serde_json::from_str(body).map_err(GatewayError::internal)?;
    agent.trust = trust;
    Ok(agent)
}

impl RegistryStore for Connection {
    fn authority_settings(&self, tenant: &str) -> GatewayResult<Option<AuthoritySettings>> {
        let body: Option<String> = self
            .prepare_cached("SELECT body FROM authority_settings WHERE tenant_id = ?1")?
            .query_row([tenant], |r| r.get(0))
            .optional()?;
        body.map(|b| serde_json::from_str(&b).map_err(GatewayError::internal)).transpose()
    }

    fn set_authority_settings(&self, tenant: &str, settings: &AuthoritySettings) -> GatewayResult<()> {
        let body = serde_json::to_string(settings).map_err(GatewayError::internal)?;
        self.prepare_cached(
            "INSERT INTO authority_settings (tenant_id, body) VALUES (?1, ?2) ON CONFLICT(tenant_id) DO UPDATE SET body = excluded.body",
        )?
        .execute(params![tenant, body])?;
        Ok(())
    }

    fn agent(&self, tenant: &str, agent_id: &str) -> GatewayResult<Option<AgentRecord>> {
        let row: Option<(String, f64)> = self
            .prepare_cached("SELECT body, trust FROM agents WHERE tenant_id = ?1 AND agent_id = ?2")?
            .query_row(params![tenant, agent_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(body, trust)| agent_from(&body, trust)).transpose()
    }

    fn agents(&self, tenant: &str) -> GatewayResult<Vec<AgentRecord>> {
        let mut stmt = self.prepare_cached("SELECT body, trust FROM agents WHERE tenant_id = ?1 ORDER BY agent_id")?;
        let rows = stmt.query_map([tenant], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (body, trust) = row?;
            out.push(agent_from(&body, trust)?);
        }
        Ok(out)
    }

    fn upsert_agent(&self, tenant: &str, agent: &AgentRecord, now: i64) -> GatewayResult<()> {
        let body = serde_json::to_string(agent).map_err(GatewayError::internal)?;
        self.prepare_cached(
            "INSERT INTO agents (tenant_id, agent_id, trust, body, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(tenant_id, agent_id) DO UPDATE SET trust = excluded.trust, body = excluded.body, updated_at_ms = excluded.updated_at_ms",
        )?
        .execute(params![tenant, agent.agent_id, agent.trust, body, now])?;
        Ok(())
    }

    fn set_agent_trust(&self, tenant: &str, agent_id: &str, score: f64, now: i64) -> GatewayResult<bool> {
        let n = self
            .prepare_cached("UPDATE agents SET trust = ?3, updated_at_ms = ?4 WHERE tenant_id = ?1 AND agent_id = ?2")?
            .execute(params![tenant, agent_id, score, now])?;
        Ok(n > 0)
    }
}

impl DelegationStore for Connection {
    fn delegation_response(&self, tenant: &str, key: &str) -> GatewayResult<Option<StoredDelegation>> {
        Ok(self
            .prepare_cached("SELECT request_hash, response, trace_seq FROM delegation_requests WHERE tenant_id = ?1 AND key = ?2")?
            .query_row(params![tenant, key], |r| {
                Ok(StoredDelegation { request_hash: r.get(0)?, response: r.get(1)?, trace_seq: r.get(2)? })
            })
            .optional()?)
    }

    fn insert_delegation_response(&self, tenant: &str, key: &str, stored: &StoredDelegation, now: i64) -> GatewayResult<bool> {
        let inserted = self
            .prepare_cached(
                "INSERT INTO delegation_requests (tenant_id, key, request_hash, response, trace_seq, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )?
            .execute(params![tenant, key, stored.request_hash, stored.response, stored.trace_seq, now])?;
        Ok(inserted == 1)
    }

    fn depth_exception(&self, tenant: &str, id: &str) -> GatewayResult<Option<DepthExceptionRow>> {
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

    fn insert_depth_exception(&self, tenant: &str, e: &DepthExceptionRow) -> GatewayResult<()> {
        self.prepare_cached(
            "INSERT INTO depth_exceptions (id, tenant_id, chain_id, approved_by, justification, extra_depth, expires_at_ms, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![e.id, tenant, e.chain_id, e.approved_by, e.justification, e.extra_depth, e.expires_at_ms, e.created_at_ms])?;
        Ok(())
    }
}

pub(super) const GRANT_SQL: &str = "SELECT chain_id, parent_id, holder, depth, status, expires_at_ms, created_at_ms FROM grants \
                         WHERE grant_id = ?1 AND tenant_id = ?2";

// No `ORDER BY unit` here: with it, SQLite prepared the statement again on every run on a
// connection without QPSG (`store::configure` sets it; a test counts on a plain connection);
// the units are sorted after reading instead.
pub(super) const UNITS_SQL: &str = "SELECT unit, granted, carved, spent, reservation_id FROM grant_units WHERE grant_id = ?1";

fn grant_units(conn: &Connection, grant_id: &str) -> GatewayResult<Vec<GrantUnit>> {
    let mut stmt = conn.prepare_cached(UNITS_SQL)?;
    let rows = stmt.query_map([grant_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, r.get(4)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (unit, granted, carved, spent, reservation_id) = row?;
        let unit = Unit::parse(&unit).ok_or_else(|| GatewayError::internal(format!("grant unit `{unit}` is unknown")))?;
        out.push(GrantUnit { unit, granted, carved, spent, available: granted - carved - spent, reservation_id });
    }
    out.sort_by(|a, b| a.unit.as_str().cmp(b.unit.as_str()));
    Ok(out)
}

fn ids(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> GatewayResult<Vec<String>> {
    Ok(conn.prepare_cached(sql)?.query_map(params, |r| r.get(0))?.collect::<Result<_, _>>()?)
}

impl EscrowStore for Connection {
    fn grant(&self, tenant: &str, grant_id: &str) -> GatewayResult<Option<Grant>> {
        let row = self
            .prepare_cached(GRANT_SQL)?
            .query_row(params![grant_id, tenant], |r| {
                Ok(Grant {
                    grant_id: grant_id.to_string(),
                    chain_id: r.get(0)?,
                    parent_id: r.get(1)?,
                    holder: r.get(2)?,
                    depth: r.get(3)?,
                    status: GrantStatus::parse(&r.get::<_, String>(4)?),
                    expires_at_ms: r.get(5)?,
                    created_at_ms: r.get(6)?,
                    units: Vec::new(),
                })
            })
            .optional()?;
        let Some(mut grant) = row else { return Ok(None) };
        grant.units = grant_units(self, grant_id)?;
        Ok(Some(grant))
    }

    fn insert_grant(&self, tenant: &str, g: &Grant) -> GatewayResult<bool> {
        // a taken id, or a second root of the chain (the partial unique index), inserts nothing
        let inserted = self
            .prepare_cached(
                "INSERT INTO grants (grant_id, tenant_id, chain_id, parent_id, holder, depth, status, expires_at_ms, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
            )?
            .execute(params![g.grant_id, tenant, g.chain_id, g.parent_id, g.holder, g.depth, g.status.as_str(), g.expires_at_ms, g.created_at_ms])?;
        if inserted == 0 {
            return Ok(false);
        }
        for u in &g.units {
            self.prepare_cached("INSERT INTO grant_units (grant_id, unit, granted, carved, spent, reservation_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                .execute(params![g.grant_id, u.unit.as_str(), u.granted, u.carved, u.spent, u.reservation_id])?;
        }
        Ok(true)
    }

    fn save_grant_unit(&self, tenant: &str, grant_id: &str, u: &GrantUnit) -> GatewayResult<()> {
        self.prepare_cached(
            "UPDATE grant_units SET carved = ?3, spent = ?4, reservation_id = ?5 WHERE grant_id = ?1 AND unit = ?2 \
             AND EXISTS (SELECT 1 FROM grants WHERE grant_id = ?1 AND tenant_id = ?6)",
        )?
        .execute(params![grant_id, u.unit.as_str(), u.carved, u.spent, u.reservation_id, tenant])?;
        Ok(())
    }

    fn set_grant_status(&self, tenant: &str, grant_id: &str, status: GrantStatus, at_ms: i64) -> GatewayResult<()> {
        self.prepare_cached("UPDATE grants SET status = ?3, settled_at_ms = ?4 WHERE grant_id = ?1 AND tenant_id = ?2")?
            .execute(params![grant_id, tenant, status.as_str(), at_ms])?;
        Ok(())
    }

    fn child_grants(&self, tenant: &str, grant_id: &str) -> GatewayResult<Vec<String>> {
        ids(self, "SELECT grant_id FROM grants WHERE parent_id = ?1 AND tenant_id = ?2 ORDER BY grant_id", params![grant_id, tenant])
    }

    fn chain_grants(&self, tenant: &str, chain_id: &str) -> GatewayResult<Vec<String>> {
        ids(self, "SELECT grant_id FROM grants WHERE tenant_id = ?1 AND chain_id = ?2 ORDER BY grant_id", params![tenant, chain_id])
    }

    fn tenant_grants(&self, tenant: &str) -> GatewayResult<Vec<String>> {
        ids(self, "SELECT grant_id FROM grants WHERE tenant_id = ?1 ORDER BY grant_id", params![tenant])
    }
}

fn escalation_from(body: &str) -> GatewayResult<EscalationRecord> {
    serde_json::from_str(body).map_err(|e| GatewayError::internal(format!("a stored escalation is unreadable: {e}")))
}

impl EscalationStore for Connection {
    fn escalation(&self, tenant: &str, id: &str) -> GatewayResult<Option<EscalationRecord>> {
        let body: Option<String> = self
            .prepare_cached("SELECT body FROM escalations WHERE id = ?1 AND tenant_id = ?2")?
            .query_row(params![id, tenant], |r| r.get(0))
            .optional()?;
        body.map(|b| escalation_from(&b)).transpose()
    }

    fn save_escalation(&self, tenant: &str, record: &EscalationRecord) -> GatewayResult<()> {
        let body = serde_json::to_string(record).map_err(GatewayError::internal)?;
        self.prepare_cached(
            "INSERT INTO escalations (id, tenant_id, status, assignee, expires_at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT(id) DO UPDATE SET status = excluded.status, assignee = excluded.assignee, body = excluded.body",
        )?
        .execute(params![record.id, tenant, record.status.as_str(), record.assignee, record.expires_at_ms, body])?;
        Ok(())
    }

    fn pending_escalations(&self, tenant: &str, assignee: &str) -> GatewayResult<usize> {
        let n: i64 = self
            .prepare_cached("SELECT COUNT(*) FROM escalations WHERE tenant_id = ?1 AND assignee = ?2 AND status = 'PENDING'")?
            .query_row(params![tenant, assignee], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn escalations(&self, tenant: &str, status: Option<EscalationStatus>, assignee: Option<&str>) -> GatewayResult<Vec<EscalationRecord>> {
        let mut stmt = self.prepare_cached(
            "SELECT body FROM escalations WHERE tenant_id = ?1 AND (?2 IS NULL OR status = ?2) \
             AND (?3 IS NULL OR assignee = ?3) ORDER BY expires_at_ms, id",
        )?;
        let bodies: Vec<String> = stmt
            .query_map(params![tenant, status.map(EscalationStatus::as_str), assignee], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        bodies.iter().map(|b| escalation_from(b)).collect()
    }

    fn expired_escalations(&self, tenant: &str, now: i64, max: usize) -> GatewayResult<Vec<ExpiredEscalation>> {
        let rows: Vec<(String, String)> = self
            .prepare_cached(
                "SELECT id, body FROM escalations WHERE status = 'PENDING' AND expires_at_ms < ?1 AND tenant_id = ?2 \
                 ORDER BY expires_at_ms, id LIMIT ?3",
            )?
            .query_map(params![now, tenant, i64::try_from(max).unwrap_or(i64::MAX)], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows.into_iter().map(|(id, body)| (id, serde_json::from_str(&body).ok())).collect())
    }

    fn expire_unreadable_escalation(&self, tenant: &str, id: &str) -> GatewayResult<()> {
        self.prepare_cached("UPDATE escalations SET status = ?3 WHERE id = ?1 AND tenant_id = ?2")?
            .execute(params![id, tenant, EscalationStatus::Expired.as_str()])?;
        Ok(())
    }

    fn escalation_tenants(&self) -> GatewayResult<Vec<String>> {
        ids(self, "SELECT DISTINCT tenant_id FROM escalations WHERE status = 'PENDING' ORDER BY tenant_id", [])
    }

    fn escalation_targets(&self, tenant: &str) -> GatewayResult<Vec<TargetBody>> {
        let mut stmt = self.prepare_cached("SELECT body FROM escalation_targets WHERE tenant_id = ?1 ORDER BY trust DESC, agent")?;
        let bodies: Vec<String> = stmt.query_map([tenant], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
        bodies
            .iter()
            .map(|b| serde_json::from_str(b).map_err(|e| GatewayError::internal(format!("a stored escalation target is unreadable: {e}"))))
            .collect()
    }

    fn save_escalation_target(&self, tenant: &str, target: &TargetBody) -> GatewayResult<()> {
        let body = serde_json::to_string(target).map_err(GatewayError::internal)?;
        self.prepare_cached(
            "INSERT INTO escalation_targets (tenant_id, agent, trust, body) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(tenant_id, agent) DO UPDATE SET trust = excluded.trust, body = excluded.body",
        )?
        .execute(params![tenant, target.agent_id, target.trust, body])?;
        Ok(())
    }
}

impl TraceStore for Connection {
    fn trace_head(&self, tenant: &str, chain_id: &str) -> GatewayResult<Option<SignedHead>> {
        traces::stored_head(self, tenant, chain_id)
    }

    fn next_trace_seq(&self, _tenant: &str) -> GatewayResult<i64> {
        // one past every number ever handed out (AUTOINCREMENT's counter, so deleted rows are
        // never reused), across tenants
        let last: i64 = self
            .prepare_cached(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'trace_events'), 0), \
                 COALESCE((SELECT MAX(seq) FROM trace_events), 0))",
            )?
            .query_row([], |r| r.get(0))?;
        last.checked_add(1).ok_or_else(|| GatewayError::internal("trace sequence overflow"))
    }

    fn open_trace_leaf(&self, _tenant: &str, signer: &KeyPair, leaf: [u8; 32]) -> GatewayResult<(i64, i64)> {
        traces::next_leaf(self, signer, leaf)
    }

    fn insert_trace_event(&self, r: &Record) -> GatewayResult<()> {
        self.prepare_cached(
            "INSERT INTO trace_events (seq, tenant_id, chain_id, delegator, delegate, depth, at_ms, decision, reason_code, \
             policy_version, body, pos, prev_hash, hash, key_id, signature, seal_id, leaf) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )?
        .execute(params![
            r.seq,
            r.tenant,
            r.chain_id,
            r.delegator,
            r.delegate,
            r.depth,
            r.at_ms,
            r.decision,
            r.reason_code,
            r.policy_version,
            r.body,
            r.pos,
            r.prev_hash,
            r.hash,
            r.key_id,
            r.signature,
            r.seal_id,
            r.leaf
        ])?;
        // The head row carries no signature of its own any more: it is checked against the last
        // event, whose seal signs it.
        self.prepare_cached(
            "INSERT INTO trace_heads (tenant_id, chain_id, count, head_hash, key_id, signature, at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, '', ?6) ON CONFLICT(tenant_id, chain_id) DO UPDATE SET \
             count = excluded.count, head_hash = excluded.head_hash, key_id = excluded.key_id, \
             signature = excluded.signature, at_ms = excluded.at_ms",
        )?
        .execute(params![r.tenant, r.chain_id, r.pos, r.hash, r.key_id, r.at_ms])?;
        Ok(())
    }

    fn trace_events(&self, tenant: &str, chain_id: &str) -> GatewayResult<Vec<Record>> {
        traces::load(self, tenant, chain_id)
    }

    fn trace_event_at(&self, tenant: &str, seq: i64) -> GatewayResult<Option<Record>> {
        traces::load_at(self, tenant, seq)
    }

    fn warning_events(&self, tenant: &str, limit: usize) -> GatewayResult<Vec<Record>> {
        traces::load_warnings(self, tenant, limit)
    }

    fn trace_seal(&self, _tenant: &str, seal_id: i64) -> GatewayResult<Result<Seal, &'static str>> {
        // a batch's seal signs every tenant's events of the batch
        traces::stored_seal(self, seal_id)
    }
}

/// An event row as the listings read it (the event and its seq).
fn stored_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    let event_type: String = r.get(2)?;
    Ok(StoredEvent {
        event_id: r.get(0)?,
        tenant_id: r.get(1)?,
        // An unknown stored type cannot be written by this gateway; it reads as a system
        // event, which no tenant subscription receives (fail closed).
        event_type: EventType::parse(&event_type).unwrap_or(EventType::SystemHighLatency),
        scope: r.get(3)?,
        trace_id: r.get(4)?,
        at_ms: r.get(5)?,
        body: r.get(6)?,
    })
}

const EVENT_COLUMNS: &str = "event_id, tenant_id, event_type, scope, trace_id, at_ms, body";

impl EventStore for Connection {
    fn insert_event(&self, row: &EventRow) -> GatewayResult<()> {
        let e = &row.event;
        self.prepare_cached(
            "INSERT INTO events (event_id, tenant_id, event_type, category, scope, correlation_id, trace_id, request_id, at_ms, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            e.event_id,
            e.tenant_id,
            e.event_type.as_str(),
            e.event_type.category().as_str(),
            e.scope,
            row.correlation_id,
            e.trace_id,
            row.request_id,
            e.at_ms,
            e.body
        ])?;
        Ok(())
    }

    fn event(&self, event_id: &str) -> GatewayResult<Option<StoredEvent>> {
        Ok(self
            .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?1"))?
            .query_row([event_id], stored_event)
            .optional()?)
    }

    fn matching_events(&self, f: &EventFilter, offset: usize, count: usize) -> GatewayResult<Vec<String>> {
        let column = match f.sort_by {
            SortBy::Timestamp => "seq",
            SortBy::EventType => "event_type",
            SortBy::Category => "category",
            SortBy::Scope => "scope",
            SortBy::TenantId => "tenant_id",
        };
        let dir = match f.sort_dir {
            SortDir::Asc => "ASC",
            SortDir::Desc => "DESC",
        };
        let open: Vec<&str> = EventCategory::ALL.iter().filter(|c| c.tenant_accessible()).map(|c| c.as_str()).collect();
        // A LIKE pattern matching the search text literally (its `%`, `_` and `\` escaped).
        let search = f.search.as_ref().map(|s| {
            let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        let sql = format!(
            "SELECT body FROM events WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR event_type = ?2) \
             AND (?3 IS NULL OR category = ?3) AND (?4 IS NULL OR substr(scope, 1, length(?4)) = ?4) \
             AND (?5 IS NULL OR correlation_id = ?5) AND (?6 IS NULL OR trace_id = ?6) AND (?7 IS NULL OR request_id = ?7) \
             AND (?8 IS NULL OR at_ms >= ?8) AND (?9 IS NULL OR at_ms <= ?9) \
             AND (?10 IS NULL OR lower(coalesce(correlation_id, '')) LIKE ?10 ESCAPE '\\' OR lower(coalesce(scope, '')) LIKE ?10 ESCAPE '\\') \
             AND (?11 = 0 OR category IN ('{}')) \
             ORDER BY {column} {dir}, seq {dir} LIMIT ?12 OFFSET ?13",
            open.join("','")
        );
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                f.tenant_id,
                f.event_type.map(EventType::as_str),
                f.category.map(EventCategory::as_str),
                f.scope_prefix,
                f.correlation_id,
                f.trace_id,
                f.request_id,
                f.from_ms,
                f.to_ms,
                search,
                i64::from(f.tenant_accessible_only),
                i64::try_from(count).unwrap_or(i64::MAX),
                i64::try_from(offset).unwrap_or(i64::MAX)
            ],
            |r| r.get::<_, String>(0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn event_window(&self, tenant: Option<&str>, from_ms: i64, to_ms: i64, count: usize) -> GatewayResult<Vec<StoredEvent>> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE (?1 IS NULL OR tenant_id = ?1) AND at_ms >= ?2 AND at_ms <= ?3 \
             ORDER BY seq ASC LIMIT ?4"
        ))?;
        let rows = stmt.query_map(params![tenant, from_ms, to_ms, i64::try_from(count).unwrap_or(i64::MAX)], stored_event)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn subscription_from(body: &str) -> GatewayResult<Subscription> {
    serde_json::from_str(body).map_err(|e| GatewayError::internal(format!("a stored webhook subscription is unreadable: {e}")))
}

const DELIVERY_COLUMNS: &str = "delivery_id, subscription_id, event_id, event_type, status, attempts, created_at_ms, attempted_at_ms, \
     completed_at_ms, next_attempt_at_ms, lease_until_ms, response_status, response_time_ms, error_message, trace_id, replay_id";

fn delivery_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Delivery, String)> {
    let status: String = r.get(4)?;
    Ok((
        Delivery {
            delivery_id: r.get(0)?,
            subscription_id: r.get(1)?,
            event_id: r.get(2)?,
            event_type: r.get(3)?,
            // checked below, where an error can say which row
            status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Failed),
            attempts: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
            created_at_ms: r.get(6)?,
            attempted_at_ms: r.get(7)?,
            completed_at_ms: r.get(8)?,
            next_attempt_at_ms: r.get(9)?,
            lease_until_ms: r.get(10)?,
            response_status: r.get(11)?,
            response_time_ms: r.get(12)?,
            error_message: r.get(13)?,
            trace_id: r.get(14)?,
            replay_id: r.get(15)?,
        },
        status,
    ))
}

/// A read delivery, or an error naming it when its stored status is not one.
fn checked_delivery((delivery, status): (Delivery, String)) -> GatewayResult<Delivery> {
    match DeliveryStatus::parse(&status) {
        Some(_) => Ok(delivery),
        None => Err(GatewayError::internal(format!("delivery `{}` has an unknown status `{status}`", delivery.delivery_id))),
    }
}

impl WebhookStore for Connection {
    fn subscription(&self, id: &str) -> GatewayResult<Option<Subscription>> {
        self.prepare_cached("SELECT body FROM webhook_subscriptions WHERE subscription_id = ?1")?
            .query_row([id], |r| r.get::<_, String>(0))
            .optional()?
            .map(|b| subscription_from(&b))
            .transpose()
    }

    fn save_subscription(&self, sub: &Subscription) -> GatewayResult<()> {
        let body = serde_json::to_string(sub).map_err(GatewayError::internal)?;
        self.prepare_cached(
            "INSERT INTO webhook_subscriptions (subscription_id, tenant_id, status, body) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (subscription_id) DO UPDATE SET status = excluded.status, body = excluded.body",
        )?
        .execute(params![sub.subscription_id, sub.tenant_id, sub.status.as_str(), body])?;
        Ok(())
    }

    fn delete_subscription(&self, sub: &Subscription) -> GatewayResult<()> {
        self.prepare_cached("DELETE FROM webhook_subscriptions WHERE subscription_id = ?1")?.execute([&sub.subscription_id])?;
        self.prepare_cached("DELETE FROM webhook_deliveries WHERE subscription_id = ?1 AND status IN ('PENDING', 'RETRYING')")?
            .execute([&sub.subscription_id])?;
        Ok(())
    }

    fn subscriptions(&self, tenant: Option<&str>, status: Option<SubscriptionStatus>) -> GatewayResult<Vec<Subscription>> {
        let mut stmt = self.prepare_cached(
            "SELECT body FROM webhook_subscriptions WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR status = ?2) \
             ORDER BY subscription_id",
        )?;
        let rows = stmt.query_map(params![tenant, status.map(SubscriptionStatus::as_str)], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(subscription_from(&row?)?);
        }
        Ok(out)
    }

    fn insert_delivery(&self, _tenant: &str, d: &Delivery) -> GatewayResult<()> {
        self.prepare_cached(&format!(
            "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        ))?
        .execute(params![
            d.delivery_id,
            d.subscription_id,
            d.event_id,
            d.event_type,
            d.status.as_str(),
            d.attempts,
            d.created_at_ms,
            d.attempted_at_ms,
            d.completed_at_ms,
            d.next_attempt_at_ms,
            d.lease_until_ms,
            d.response_status,
            d.response_time_ms,
            d.error_message,
            d.trace_id,
            d.replay_id
        ])?;
        Ok(())
    }

    fn delivery(&self, _tenant: &str, id: &str) -> GatewayResult<Option<Delivery>> {
        self.prepare_cached(&format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE delivery_id = ?1"))?
            .query_row([id], delivery_from)
            .optional()?
            .map(checked_delivery)
            .transpose()
    }

    fn save_delivery(&self, _tenant: &str, d: &Delivery) -> GatewayResult<()> {
        self.prepare_cached(
            "UPDATE webhook_deliveries SET status = ?2, attempts = ?3, attempted_at_ms = ?4, completed_at_ms = ?5, \
             next_attempt_at_ms = ?6, lease_until_ms = ?7, response_status = ?8, response_time_ms = ?9, error_message = ?10 \
             WHERE delivery_id = ?1",
        )?
        .execute(params![
            d.delivery_id,
            d.status.as_str(),
            d.attempts,
            d.attempted_at_ms,
            d.completed_at_ms,
            d.next_attempt_at_ms,
            d.lease_until_ms,
            d.response_status,
            d.response_time_ms,
            d.error_message
        ])?;
        Ok(())
    }

    fn delete_delivery(&self, _tenant: &str, d: &Delivery) -> GatewayResult<()> {
        self.prepare_cached("DELETE FROM webhook_deliveries WHERE delivery_id = ?1")?.execute([&d.delivery_id])?;
        Ok(())
    }

    fn subscription_deliveries(&self, sub: &Subscription, f: &DeliveryFilter, offset: usize, count: usize) -> GatewayResult<Vec<Delivery>> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE subscription_id = ?1 AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR created_at_ms >= ?3) \
             AND (?4 IS NULL OR created_at_ms <= ?4) ORDER BY created_at_ms DESC, delivery_id DESC LIMIT ?5 OFFSET ?6"
        ))?;
        let rows = stmt.query_map(
            params![
                sub.subscription_id,
                f.status,
                f.from_ms,
                f.to_ms,
                i64::try_from(count).unwrap_or(i64::MAX),
                i64::try_from(offset).unwrap_or(i64::MAX)
            ],
            delivery_from,
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(checked_delivery(row?)?);
        }
        Ok(out)
    }

    fn replay_owed(&self, sub: &Subscription) -> GatewayResult<bool> {
        Ok(self
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE subscription_id = ?1 AND replay_id IS NOT NULL \
                 AND status IN ('PENDING', 'RETRYING'))",
            )?
            .query_row([&sub.subscription_id], |r| r.get(0))?)
    }

    fn due_deliveries(&self, tenant: &str, now: i64, max: usize) -> GatewayResult<Vec<Delivery>> {
        deliveries_where(
            self,
            "e.tenant_id = ?1 AND d.status IN ('PENDING', 'RETRYING') AND d.next_attempt_at_ms <= ?2 \
             AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= ?2) ORDER BY d.next_attempt_at_ms, d.delivery_id LIMIT ?3",
            params![tenant, now, i64::try_from(max).unwrap_or(i64::MAX)],
        )
    }

    fn defer_delivery(&self, _tenant: &str, _delivery: &Delivery, _until: i64) -> GatewayResult<()> {
        // the embedded dispatcher's query leaves out deliveries to inactive subscriptions
        Ok(())
    }

    fn leased_deliveries(&self, tenant: &str, now: i64) -> GatewayResult<usize> {
        let n: i64 = self
            .prepare_cached(
                "SELECT COUNT(*) FROM webhook_deliveries d JOIN events e ON e.event_id = d.event_id \
                 WHERE e.tenant_id = ?1 AND d.status IN ('PENDING', 'RETRYING') AND d.lease_until_ms > ?2",
            )?
            .query_row(params![tenant, now], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn stale_deliveries(&self, tenant: &str, before: i64, now: i64, max: usize) -> GatewayResult<Vec<Delivery>> {
        deliveries_where(
            self,
            "e.tenant_id = ?1 AND d.status IN ('PENDING', 'RETRYING') AND d.created_at_ms < ?2 \
             AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= ?3) ORDER BY d.created_at_ms, d.delivery_id LIMIT ?4",
            params![tenant, before, now, i64::try_from(max).unwrap_or(i64::MAX)],
        )
    }

    fn finished_deliveries(&self, tenant: &str, before: i64, max: usize) -> GatewayResult<Vec<Delivery>> {
        deliveries_where(
            self,
            "e.tenant_id = ?1 AND d.status IN ('SUCCESS', 'FAILED') AND d.completed_at_ms < ?2 \
             ORDER BY d.completed_at_ms, d.delivery_id LIMIT ?3",
            params![tenant, before, i64::try_from(max).unwrap_or(i64::MAX)],
        )
    }

    fn delivery_tenants(&self) -> GatewayResult<Vec<String>> {
        let mut stmt = self.prepare_cached(
            "SELECT DISTINCT e.tenant_id FROM webhook_deliveries d JOIN events e ON e.event_id = d.event_id ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The deliveries that `filter` selects, over `d` (the deliveries) and `e` (their events: a
/// test probe has no event and is never selected).
fn deliveries_where(conn: &Connection, filter: &str, params: &[&dyn rusqlite::ToSql]) -> GatewayResult<Vec<Delivery>> {
    let columns = DELIVERY_COLUMNS.split(", ").map(|c| format!("d.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {columns} FROM webhook_deliveries d JOIN events e ON e.event_id = d.event_id WHERE {filter}"
    ))?;
    let rows = stmt.query_map(params, delivery_from)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(checked_delivery(row?)?);
    }
    Ok(out)
}

fn tenant_from(id: &str, body: &str) -> GatewayResult<Tenant> {
    // a record this server cannot read fails the caller, naming it
    serde_json::from_str(body).map_err(|e| GatewayError::internal(format!("the stored record of tenant `{id}` is unreadable: {e}")))
}

const KEY_COLUMNS: &str = "key_id, tenant_id, key_hash, status, expires_at_ms, role, principal, body";

fn key_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredApiKey> {
    Ok(StoredApiKey {
        key_id: r.get(0)?,
        tenant_id: r.get(1)?,
        key_hash: r.get(2)?,
        status: r.get(3)?,
        expires_at_ms: r.get(4)?,
        role: r.get(5)?,
        principal: r.get(6)?,
        body: r.get(7)?,
    })
}

impl TenantStore for Connection {
    fn tenant_record(&self, tenant: &str) -> GatewayResult<Option<Tenant>> {
        let body: Option<String> =
            self.prepare_cached("SELECT body FROM tenants WHERE tenant_id = ?1")?.query_row([tenant], |r| r.get(0)).optional()?;
        body.map(|b| tenant_from(tenant, &b)).transpose()
    }

    fn save_tenant_record(&self, tenant: &Tenant) -> GatewayResult<()> {
        let body = serde_json::to_string(tenant).map_err(GatewayError::internal)?;
        self.prepare_cached(
            "INSERT INTO tenants (tenant_id, status, body) VALUES (?1, ?2, ?3) \
             ON CONFLICT(tenant_id) DO UPDATE SET status = excluded.status, body = excluded.body",
        )?
        .execute(params![tenant.tenant_id, tenant.status.as_str(), body])?;
        Ok(())
    }

    fn tenant_records(&self) -> GatewayResult<Vec<Tenant>> {
        let mut stmt = self.prepare_cached("SELECT tenant_id, body FROM tenants ORDER BY tenant_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row?;
            out.push(tenant_from(&id, &body)?);
        }
        Ok(out)
    }

    fn insert_api_key(&self, k: &StoredApiKey) -> GatewayResult<()> {
        self.prepare_cached(&format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"))?
            .execute(params![k.key_id, k.tenant_id, k.key_hash, k.status, k.expires_at_ms, k.role, k.principal, k.body])?;
        Ok(())
    }

    fn api_key(&self, key_id: &str) -> GatewayResult<Option<StoredApiKey>> {
        Ok(self.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?1"))?.query_row([key_id], key_from).optional()?)
    }

    fn api_key_by_hash(&self, key_hash: &str) -> GatewayResult<Option<StoredApiKey>> {
        Ok(self.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1"))?.query_row([key_hash], key_from).optional()?)
    }

    fn save_api_key(&self, k: &StoredApiKey) -> GatewayResult<()> {
        self.prepare_cached("UPDATE api_keys SET status = ?2, body = ?3, principal = ?4 WHERE key_id = ?1")?
            .execute(params![k.key_id, k.status, k.body, k.principal])?;
        Ok(())
    }

    fn api_keys(&self, tenant: Option<&str>) -> GatewayResult<Vec<StoredApiKey>> {
        let mut stmt = self.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY key_id"))?;
        let rows = stmt.query_map([tenant], key_from)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl UnitOfWork for Connection {
    fn rollback(&self) -> GatewayResult<()> {
        // back to the savepoint the writer opened for this job, its trace leaves with it
        crate::store::rollback_job(self)
    }
}
