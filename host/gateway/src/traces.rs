//! Delegation traces (AG-396 4.6): append-only events with delegator, delegate, depth, time,
//! task context, verdict and policy version. The table refuses UPDATE and DELETE (triggers),
//! so a trace can only grow; it lives in the store file and survives restarts.

use rusqlite::{params, Connection};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

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
    /// `allow`, `escalate`, `deny`, or a non-decision kind (`outcome`, `escalation-decision`).
    pub decision: &'a str,
    /// The reason code, if any.
    pub reason_code: Option<u16>,
    /// `name@version` of the policy.
    pub policy_version: &'a str,
    /// Everything else (task, verdict, reservations, ids).
    pub body: Value,
}

/// Appends `e`; returns its sequence number.
pub fn append(conn: &Connection, e: &NewEvent<'_>) -> ApiResult<i64> {
    conn.prepare_cached(
        "INSERT INTO trace_events (tenant_id, chain_id, delegator, delegate, depth, at_ms, decision, reason_code, \
         policy_version, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        e.tenant,
        e.chain_id,
        e.delegator,
        e.delegate,
        e.depth,
        e.at_ms,
        e.decision,
        e.reason_code,
        e.policy_version,
        e.body.to_string()
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Every event of `chain_id` owned by `tenant`, in order; 404 when there is none.
pub fn chain(conn: &Connection, tenant: &str, chain_id: &str) -> ApiResult<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, delegator, delegate, depth, at_ms, decision, reason_code, policy_version, body \
         FROM trace_events WHERE tenant_id = ?1 AND chain_id = ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![tenant, chain_id], |r| {
        let body: String = r.get(8)?;
        let mut v: Value = serde_json::from_str(&body).unwrap_or_else(|_| json!({}));
        v["seq"] = json!(r.get::<_, i64>(0)?);
        v["chain_id"] = json!(chain_id);
        v["delegator"] = json!(r.get::<_, String>(1)?);
        v["delegate"] = json!(r.get::<_, String>(2)?);
        v["depth"] = json!(r.get::<_, i64>(3)?);
        v["at_ms"] = json!(r.get::<_, i64>(4)?);
        v["decision"] = json!(r.get::<_, String>(5)?);
        v["reason_code"] = json!(r.get::<_, Option<i64>>(6)?);
        v["policy_version"] = json!(r.get::<_, String>(7)?);
        Ok(v)
    })?;
    let events = rows.collect::<Result<Vec<_>, _>>()?;
    if events.is_empty() {
        return Err(ApiError::not_found(format!("chain `{chain_id}` not found")));
    }
    Ok(events)
}

/// Whether `chain_id` already has events for `tenant`.
pub fn exists(conn: &Connection, tenant: &str, chain_id: &str) -> ApiResult<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM trace_events WHERE tenant_id = ?1 AND chain_id = ?2)")?
        .query_row(params![tenant, chain_id], |r| r.get::<_, bool>(0))?)
}
