//! Escalations (Vorion seed): the human review queue and agent escalation targets.
//!
//! An escalating verdict opens a request with a TTL (default 5 minutes). Its resolution
//! paths are the target the policy named, then every registered agent target whose
//! capabilities cover the task, in descending trust order, skipping targets at their
//! `max_concurrent`. A decision (APPROVED_AND_EXECUTED, APPROVED_WITH_CONSTRAINTS, DENIED,
//! DELEGATED) records who and when; an undecided request past its TTL becomes EXPIRED. Each
//! decision is appended to the chain's trace.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rusqlite::{params, Connection, OptionalExtension};
use sbd_policy::{Escalation, EscalationTarget, Request};
use sbd_bundle::KeyPair;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::cycles::valid_scope_value;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::auth::Principal;
use crate::server::{Body, Shared, Tenant, Q};
use crate::traces::{self, NewEvent};
use crate::util::{new_id, now_ms};

use std::sync::Arc;

use sbd_policy::Mandate;

/// What [`open`] needs.
pub struct NewEscalation<'a> {
    /// Owner.
    pub tenant: &'a str,
    /// The chain.
    pub chain_id: &'a str,
    /// The policy's escalation.
    pub escalation: &'a Escalation,
    /// The request that escalated.
    pub request: &'a Request,
    /// Server time.
    pub now: i64,
    /// Time to live.
    pub ttl_ms: i64,
    /// What approving it performs: the evaluated request, the delegator's token and its grant
    /// (`POST /v1/delegations` stores them; an approval carves and signs from them).
    pub pending: Option<Value>,
}

fn pending_count(conn: &Connection, tenant: &str, assignee: &str) -> ApiResult<i64> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM escalations WHERE tenant_id = ?1 AND assignee = ?2 AND status = 'PENDING'")?
        .query_row(params![tenant, assignee], |r| r.get(0))?)
}

/// The resolution paths for a task of `kind`: registered agent targets covering it, by
/// descending trust, with their capacity.
fn agent_paths(conn: &Connection, tenant: &str, kind: &str) -> ApiResult<Vec<Value>> {
    let mut stmt = conn.prepare_cached("SELECT body FROM escalation_targets WHERE tenant_id = ?1 ORDER BY trust DESC, agent")?;
    let targets: Vec<Value> = stmt
        .query_map([tenant], |r| r.get::<_, String>(0))?
        .filter_map(|b| b.ok().and_then(|b| serde_json::from_str(&b).ok()))
        .collect();
    let mut out = Vec::new();
    for t in targets {
        let caps = t["capabilities"].as_array().cloned().unwrap_or_default();
        // The policy's own pattern rule, so routing and the rules never disagree.
        if !caps.iter().filter_map(Value::as_str).any(|c| sbd_policy::action::permits(c, kind)) {
            continue;
        }
        let agent = t["agent_id"].as_str().unwrap_or_default().to_string();
        let active = pending_count(conn, tenant, &agent)?;
        let max = t["max_concurrent"].as_i64().unwrap_or(1);
        out.push(json!({"kind": "agent", "id": agent, "trust": t["trust"], "tier": t["tier"], "available": active < max}));
    }
    Ok(out)
}

/// Opens an escalation request; returns it.
pub fn open(conn: &Connection, e: &NewEscalation<'_>) -> ApiResult<Value> {
    let kind = &e.request.task.action_kind;
    let (target_kind, target_id) = match &e.escalation.target {
        EscalationTarget::Human(h) => ("human", h.clone()),
        EscalationTarget::Agent(a) => ("agent", a.clone()),
    };
    let mut paths = vec![json!({"kind": target_kind, "id": target_id, "available": true})];
    for p in agent_paths(conn, e.tenant, kind)? {
        if p["id"] != json!(target_id) {
            paths.push(p);
        }
    }
    // The first available path takes it; an agent target at capacity passes it on.
    if target_kind == "agent" {
        let named_active = pending_count(conn, e.tenant, &target_id)?;
        let named_max: Option<i64> = conn
            .prepare_cached("SELECT body FROM escalation_targets WHERE tenant_id = ?1 AND agent = ?2")?
            .query_row(params![e.tenant, target_id], |r| r.get::<_, String>(0))
            .optional()?
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .and_then(|v| v["max_concurrent"].as_i64());
        if let (Some(max), Some(first)) = (named_max, paths.first_mut()) {
            first["available"] = json!(named_active < max);
        }
    }
    let assignee = paths
        .iter()
        .find(|p| p["available"] == json!(true))
        .and_then(|p| p["id"].as_str())
        .unwrap_or(&target_id)
        .to_string();
    let id = new_id("esc_");
    let v = json!({
        "id": id,
        "chain_id": e.chain_id,
        "status": "PENDING",
        "target": {"kind": target_kind, "id": target_id},
        "assignee": assignee,
        "paths": paths,
        "reason_code": e.escalation.reason.code(),
        "reason": e.escalation.reason.name(),
        "message": e.escalation.message,
        "delegator": e.request.from.id,
        "delegate": e.request.to.id,
        "task": e.request.task,
        "created_at_ms": e.now,
        "expires_at_ms": e.now + e.ttl_ms,
    });
    let mut v = v;
    if let Some(p) = &e.pending {
        v["pending_delegation"] = p.clone();
    }
    save(conn, e.tenant, &v)?;
    Ok(v)
}

fn save(conn: &Connection, tenant: &str, v: &Value) -> ApiResult<()> {
    conn.prepare_cached(
        "INSERT INTO escalations (id, tenant_id, status, assignee, expires_at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT(id) DO UPDATE SET status = excluded.status, assignee = excluded.assignee, body = excluded.body",
    )?
    .execute(params![
        v["id"].as_str(),
        tenant,
        v["status"].as_str(),
        v["assignee"].as_str(),
        v["expires_at_ms"].as_i64(),
        v.to_string()
    ])?;
    Ok(())
}

fn load(conn: &Connection, tenant: &str, id: &str) -> ApiResult<Value> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT tenant_id, body FROM escalations WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        Some((owner, body)) if owner == tenant => serde_json::from_str(&body).map_err(ApiError::internal),
        _ => Err(ApiError::not_found(format!("escalation `{id}` not found"))),
    }
}

/// Marks every PENDING request past its TTL as EXPIRED; returns how many.
pub fn sweep_expired(conn: &Connection, now: i64, signer: &KeyPair) -> ApiResult<usize> {
    let rows: Vec<(String, String)> = conn
        .prepare_cached("SELECT tenant_id, id FROM escalations WHERE status = 'PENDING' AND expires_at_ms < ?1 LIMIT 10000")?
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (tenant, id) in &rows {
        let mut v = load(conn, tenant, id)?;
        finish(conn, tenant, &mut v, "EXPIRED", "system:ttl", now, Map::new(), signer)?;
    }
    Ok(rows.len())
}

#[allow(clippy::too_many_arguments)]
fn finish(conn: &Connection, tenant: &str, v: &mut Value, decision: &str, by: &str, now: i64, extra: Map<String, Value>, signer: &KeyPair) -> ApiResult<()> {
    v["status"] = json!(if decision == "EXPIRED" { "EXPIRED" } else { "DECIDED" });
    v["decision"] = json!(decision);
    v["decided_by"] = json!(by);
    v["decided_at_ms"] = json!(now);
    for (k, x) in &extra {
        v[k] = x.clone();
    }
    save(conn, tenant, v)?;
    let mut body = json!({"escalation_id": v["id"], "decision": decision, "decided_by": by});
    for (k, x) in extra {
        body[k] = x;
    }
    traces::append(conn, &NewEvent {
        tenant,
        chain_id: v["chain_id"].as_str().unwrap_or_default(),
        delegator: v["delegator"].as_str().unwrap_or_default(),
        delegate: v["delegate"].as_str().unwrap_or_default(),
        depth: 0,
        at_ms: now,
        decision: "escalation-decision",
        reason_code: v["reason_code"].as_u64().and_then(|c| u16::try_from(c).ok()),
        policy_version: "",
        body: body.to_string(),
    }, signer)?;
    Ok(())
}

/// Query of the queue.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// PENDING, DECIDED or EXPIRED.
    pub status: Option<String>,
    /// Only those assigned to this reviewer or agent.
    pub assignee: Option<String>,
}

/// `GET /v1/escalations`: the review queue, oldest first.
pub async fn list(State(state): State<Shared>, Tenant(tenant): Tenant, Q(q): Q<ListQuery>) -> ApiResult<Json<Value>> {
    if let Some(s) = &q.status
        && !matches!(s.as_str(), "PENDING" | "DECIDED" | "EXPIRED") {
            return Err(ApiError::invalid("`status` must be PENDING, DECIDED or EXPIRED"));
        }
    let now = now_ms();
    let signer = state.tokens.signing_key().clone();
    state
        .store
        .run(move |conn| {
            sweep_expired(conn, now, &signer)?;
            let mut stmt = conn.prepare_cached(
                "SELECT body FROM escalations WHERE tenant_id = ?1 AND (?2 IS NULL OR status = ?2) \
                 AND (?3 IS NULL OR assignee = ?3) ORDER BY expires_at_ms, id",
            )?;
            let items: Vec<Value> = stmt
                .query_map(params![tenant, q.status, q.assignee], |r| r.get::<_, String>(0))?
                .filter_map(|b| b.ok().and_then(|b| serde_json::from_str(&b).ok()))
                .collect();
            Ok(Json(json!({"escalations": items})))
        })
        .await
}

/// `GET /v1/escalations/{id}`.
pub async fn get_one(State(state): State<Shared>, Tenant(tenant): Tenant, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let now = now_ms();
    let signer = state.tokens.signing_key().clone();
    state
        .store
        .run(move |conn| {
            sweep_expired(conn, now, &signer)?;
            load(conn, &tenant, &id).map(Json)
        })
        .await
}

/// The constraints of an APPROVED_WITH_CONSTRAINTS decision: each given field replaces the
/// child mandate's and must narrow it.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// A lower value ceiling.
    #[serde(default)]
    pub value_ceiling: Option<u64>,
    /// Fewer action kinds.
    #[serde(default)]
    pub action_kinds: Option<Vec<String>>,
    /// Fewer counterparties.
    #[serde(default)]
    pub counterparties: Option<Vec<String>>,
    /// Smaller budgets.
    #[serde(default)]
    pub budgets: Option<Vec<sbd_policy::Budget>>,
    /// Less remaining depth.
    #[serde(default)]
    pub remaining_depth: Option<u8>,
    /// An earlier expiry.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

impl Constraints {
    /// `mandate` narrowed by these constraints; refused (naming the field) unless every given
    /// field narrows.
    pub fn apply(&self, mandate: &Mandate) -> ApiResult<Mandate> {
        let mut m = mandate.clone();
        if let Some(v) = self.value_ceiling {
            m.value_ceiling = v;
        }
        if let Some(v) = &self.action_kinds {
            m.action_kinds = v.clone();
        }
        if let Some(v) = &self.counterparties {
            m.counterparties = v.clone();
        }
        if let Some(v) = &self.budgets {
            m.budgets = v.clone();
        }
        if let Some(v) = self.remaining_depth {
            m.remaining_depth = v;
        }
        if let Some(v) = self.expires_at {
            m.expires_at = v;
        }
        // Within the mandate in every dimension; an equal remaining depth is allowed here (the
        // rules' strict narrowing of depth is between parent and child, not for constraints).
        let mut reference = mandate.clone();
        reference.remaining_depth = reference.remaining_depth.saturating_add(1);
        sbd_policy::attenuation::check_within(&reference, &m)
            .map_err(|d| ApiError::invalid(format!("`constraints` must narrow the mandate: {} ({})", d.message, d.reason.name())))?;
        if m.remaining_depth > mandate.remaining_depth {
            return Err(ApiError::invalid("`constraints.remaining_depth` must narrow the mandate"));
        }
        Ok(m)
    }
}

/// A reviewer's decision. Who decides is the approver key's principal, never a body field:
/// a `decided_by` in the body is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Refused when present (the decider is the key's principal).
    #[serde(default)]
    pub decided_by: Option<Value>,
    /// Constraints of an approval: present makes it APPROVED_WITH_CONSTRAINTS.
    #[serde(default)]
    pub constraints: Option<Constraints>,
    /// A note.
    #[serde(default)]
    pub note: Option<String>,
    /// DELEGATED: the reviewer or agent it passes to.
    #[serde(default)]
    pub to: Option<String>,
}

async fn decide(state: Shared, who: Principal, id: String, body: DecisionBody, kind: &'static str) -> ApiResult<Json<Value>> {
    if body.decided_by.is_some() {
        return Err(ApiError::invalid(
            "`decided_by` is not accepted: the decision is recorded under the approver key's principal",
        ));
    }
    let (tenant, decided_by) = (who.tenant, who.name);
    let decision = match kind {
        "approve" if body.constraints.is_some() => "APPROVED_WITH_CONSTRAINTS",
        "approve" => "APPROVED_AND_EXECUTED",
        "deny" => "DENIED",
        _ => "DELEGATED",
    };
    if kind != "approve" && body.constraints.is_some() {
        return Err(ApiError::invalid("`constraints` belong to an approval"));
    }
    let to = match (kind, &body.to) {
        ("delegate", Some(t)) if valid_scope_value(t) => Some(t.clone()),
        ("delegate", _) => return Err(ApiError::invalid("`to` (a reviewer or agent id) is required to delegate")),
        (_, Some(_)) => return Err(ApiError::invalid("`to` belongs to a delegation")),
        _ => None,
    };
    let now = now_ms();
    let ttl = state.config.escalation_ttl_ms;
    let authority = Arc::clone(&state);
    let signer = state.tokens.signing_key().clone();
    let result = state
        .store
        .run(move |conn| {
            let mut v = load(conn, &tenant, &id)?;
            if v["status"] == json!("PENDING") && v["expires_at_ms"].as_i64().is_some_and(|e| e < now) {
                finish(conn, &tenant, &mut v, "EXPIRED", "system:ttl", now, Map::new(), &signer)?;
                return Ok(v);
            }
            if v["status"] != json!("PENDING") {
                return Err(ApiError::new(
                    ErrorCode::EscalationClosed,
                    format!("escalation `{id}` is already {}", v["decision"].as_str().unwrap_or("decided")),
                ));
            }
            // Only the one it is assigned to decides it (a named human, or the agent target).
            if v["assignee"].as_str() != Some(decided_by.as_str()) {
                return Err(ApiError::forbidden(format!(
                    "escalation `{id}` is assigned to `{}`, not to `{decided_by}`",
                    v["assignee"].as_str().unwrap_or_default()
                )));
            }
            let mut extra = Map::new();
            if kind == "approve"
                && let Some(pending) = v.get("pending_delegation").cloned()
            {
                let performed = perform(conn, &authority, &tenant, &v, &pending, body.constraints.as_ref(), &decided_by, now)?;
                extra.insert("delegation".into(), performed);
            }
            if let Some(c) = body.constraints {
                extra.insert("constraints".into(), serde_json::to_value(c).map_err(ApiError::internal)?);
            }
            if let Some(n) = body.note {
                extra.insert("note".into(), json!(n));
            }
            if let Some(to) = &to {
                let mut next = v.clone();
                let next_id = new_id("esc_");
                next["id"] = json!(next_id);
                next["assignee"] = json!(to);
                next["delegated_from"] = v["id"].clone();
                next["created_at_ms"] = json!(now);
                next["expires_at_ms"] = json!(now + ttl);
                save(conn, &tenant, &next)?;
                extra.insert("delegated_to".into(), json!(to));
                extra.insert("next_escalation_id".into(), json!(next_id));
            }
            finish(conn, &tenant, &mut v, decision, &decided_by, now, extra, &signer)?;
            Ok(v)
        })
        .await?;
    let d = result["decision"].as_str().unwrap_or("EXPIRED").to_string();
    state.metrics.escalations.with_label_values(&[d.as_str()]).inc();
    if d == "EXPIRED" {
        return Err(ApiError::new(ErrorCode::EscalationClosed, "the escalation expired before this decision (EXPIRED)")
            .with_details(result));
    }
    Ok(Json(result))
}

/// `POST /v1/escalations/{id}/approve`.
pub async fn approve(State(s): State<Shared>, p: Principal, Path(id): Path<String>, Body(b): Body<DecisionBody>) -> ApiResult<Json<Value>> {
    decide(s, p, id, b, "approve").await
}

/// `POST /v1/escalations/{id}/deny`.
pub async fn deny(State(s): State<Shared>, p: Principal, Path(id): Path<String>, Body(b): Body<DecisionBody>) -> ApiResult<Json<Value>> {
    decide(s, p, id, b, "deny").await
}

/// `POST /v1/escalations/{id}/delegate`.
pub async fn delegate(State(s): State<Shared>, p: Principal, Path(id): Path<String>, Body(b): Body<DecisionBody>) -> ApiResult<Json<Value>> {
    decide(s, p, id, b, "delegate").await
}

/// Performs the delegation an approval decides: the child's mandate is the requested one
/// narrowed to what the parent's escrow still has (and by `constraints`), carved from the
/// parent's grant, signed into the child's token with the approver recorded, and traced as an
/// allowed hop. A hop past the parent's maximum depth (a depth-limit escalation) becomes a
/// terminal hop: the approver extends the chain by this one delegation only.
#[allow(clippy::too_many_arguments)]
fn perform(
    conn: &Connection,
    state: &crate::server::AppState,
    tenant: &str,
    escalation: &Value,
    pending: &Value,
    constraints: Option<&Constraints>,
    approver: &str,
    now: i64,
) -> ApiResult<Value> {
    use crate::delegations::budgets_of;
    use crate::escrow::{self, NewGrant};
    use crate::tokens::grant_id;

    let mut request: Request = serde_json::from_value(pending["request"].clone())
        .map_err(|e| ApiError::internal(format!("stored escalation request: {e}")))?;
    // An approval overrides the escalating rule, not the tenant's action mask: its rule runs
    // again on today's facts (a structural escalation never reached it), and the points are
    // spent with the grant below.
    crate::delegations::recheck_mask(conn, tenant, &mut request)?;
    let token = pending["parent_token"].as_str().unwrap_or_default();
    let parent = state
        .tokens
        .verify(token, tenant, u64::try_from(now).unwrap_or(0))
        .map_err(|e| ApiError::new(ErrorCode::EscalationClosed, format!("the delegator's token can no longer delegate: {}", e.message)))?;
    let grant = escrow::load_any(conn, tenant, &crate::tokens::grant_ids(&parent))?
        .ok_or_else(|| ApiError::new(ErrorCode::EscalationClosed, "the delegator's grant is gone"))?;
    let parent_id = grant.grant_id.clone();
    let mut available = parent.mandate().clone();
    for b in &mut available.budgets {
        let left = grant.units.iter().find(|u| u.unit == crate::delegations::unit_of(b.unit)).map_or(0, |u| u.available);
        b.amount = b.amount.min(u64::try_from(left).unwrap_or(0));
    }
    let mut mandate = sbd_policy::attenuation::narrow(&available, &request.requested_mandate);
    if let Some(c) = constraints {
        mandate = c.apply(&mandate)?;
    }
    let depth = parent.depth().saturating_add(1);
    let (max_depth, approved_by) = if depth > parent.max_depth() {
        mandate.remaining_depth = 0;
        (depth, approver.to_string())
    } else {
        mandate.remaining_depth = mandate.remaining_depth.min(parent.max_depth() - depth);
        (parent.max_depth(), approver.to_string())
    };
    let child = state.tokens.append(&parent, sbd_bundle::token::Delegation {
        tenant: tenant.to_string(),
        // A human took the decision: no delegation degree was granted by the policy.
        alpha: 0.0,
        approved_by,
        from: request.from.id.clone(),
        to: request.to.id.clone(),
        mandate: mandate.clone(),
        max_depth,
        issued_at: u64::try_from(now).unwrap_or(0),
        expires_at: mandate.expires_at,
    })?;
    let child_id = grant_id(&child);
    let budgets = budgets_of(&mandate)?;
    escrow::insert(conn, &NewGrant {
        tenant,
        grant_id: &child_id,
        chain_id: escalation["chain_id"].as_str().unwrap_or_default(),
        parent_id: Some(&parent_id),
        holder: &request.to.id,
        depth: i64::from(depth),
        expires_at_ms: i64::try_from(mandate.expires_at).unwrap_or(i64::MAX),
        now,
        budgets: &budgets,
    })?;
    let chain_id = escalation["chain_id"].as_str().unwrap_or_default();
    let mask = crate::delegations::spend_mask(conn, tenant, chain_id, &request, now)?;
    traces::append(conn, &NewEvent {
        tenant,
        chain_id,
        delegator: &request.from.id,
        delegate: &request.to.id,
        depth: i64::from(depth),
        at_ms: now,
        decision: "allow",
        reason_code: None,
        policy_version: "",
        body: json!({"task": request.task, "approved_by": approver, "escalation_id": escalation["id"], "grant_id": child_id,
                     "parent_grant_id": parent_id, "mandate": mandate}).to_string(),
    }, state.tokens.signing_key())?;
    let mut performed = json!({"grant_id": child_id, "child_token": child.encode(), "mandate": mandate,
              "escrow": budgets.iter().map(|(u, a)| json!({"unit": u.as_str(), "amount": a})).collect::<Vec<_>>()});
    if let Some(m) = mask {
        performed["reservations"] = json!([m]);
    }
    Ok(performed)
}

/// An agent escalation target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    /// The agent.
    pub agent_id: String,
    /// Action kinds it can take over (`payment.*`, `*`).
    pub capabilities: Vec<String>,
    /// Trust score 0-1000.
    pub trust: u16,
    /// Tier label (T0-T7).
    pub tier: String,
    /// How many open escalations it takes at once.
    pub max_concurrent: u32,
}

/// `POST /v1/escalation-targets`: registers or replaces a target.
pub async fn register_target(State(state): State<Shared>, Tenant(tenant): Tenant, Body(b): Body<TargetBody>) -> ApiResult<(StatusCode, Json<Value>)> {
    if !valid_scope_value(&b.agent_id) {
        return Err(ApiError::invalid("`agent_id` must match ^[a-zA-Z0-9_.-]+$"));
    }
    if b.trust > 1000 {
        return Err(ApiError::invalid("`trust` must be 0-1000"));
    }
    if !matches!(b.tier.as_str(), "T0" | "T1" | "T2" | "T3" | "T4" | "T5" | "T6" | "T7") {
        return Err(ApiError::invalid("`tier` must be one of T0-T7"));
    }
    if b.max_concurrent == 0 {
        return Err(ApiError::invalid("`max_concurrent` must be at least 1"));
    }
    if b.capabilities.is_empty() {
        return Err(ApiError::invalid("`capabilities` must name at least one action kind pattern"));
    }
    let v = json!({"agent_id": b.agent_id, "capabilities": b.capabilities, "trust": b.trust, "tier": b.tier, "max_concurrent": b.max_concurrent});
    let out = v.clone();
    state
        .store
        .run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO escalation_targets (tenant_id, agent, trust, body) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(tenant_id, agent) DO UPDATE SET trust = excluded.trust, body = excluded.body",
            )?
            .execute(params![tenant, b.agent_id, b.trust, v.to_string()])?;
            Ok(())
        })
        .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /v1/escalation-targets`: by descending trust.
pub async fn list_targets(State(state): State<Shared>, Tenant(tenant): Tenant) -> ApiResult<Json<Value>> {
    state
        .store
        .run(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM escalation_targets WHERE tenant_id = ?1 ORDER BY trust DESC, agent")?;
            let items: Vec<Value> = stmt
                .query_map([tenant], |r| r.get::<_, String>(0))?
                .filter_map(|b| b.ok().and_then(|b| serde_json::from_str(&b).ok()))
                .collect();
            Ok(Json(json!({"targets": items})))
        })
        .await
}

#[cfg(test)]
mod tests {
    use sbd_policy::action::permits as covers;

    #[test]
    fn capability_patterns() {
        assert!(covers("payment.*", "payment.refund"));
        assert!(!covers("payment.*", "paymentx.refund"));
        assert!(covers("*", "crm.read"));
        assert!(covers("crm.read", "crm.read"));
        assert!(!covers("crm.read", "crm.write"));
        // The family needs a member: `payment.` is no action under `payment.*` (the copy this
        // replaced said it was, so routing disagreed with the rules).
        assert!(!covers("payment.*", "payment."));
        assert!(!covers("payment.*", "payment"));
    }
}
