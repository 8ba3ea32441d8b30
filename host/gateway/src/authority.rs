//! The anchored-authority endpoints: the agent registry and authority settings, root grants,
//! the escrowed grant tree (commit, release, revoke, audit), and depth exceptions.
//!
//! Who may call what is enforced by the caller's role (see `docs/gateway.md`); the approver of
//! a depth exception is the approving key's principal, never a body field.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sbd_policy::Mandate;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cycles::{CommitRequest, Amount, ReleaseRequest, Subject, Unit};
use crate::delegations::{budgets_of, canonical, record_root};
use crate::api_error::{ApiError, ApiResult};
use crate::error::{ErrorCode, GatewayError, GatewayResult};
use crate::escrow::{self, GrantStatus, Settled};
use crate::ledger;
use crate::registry::{self, AgentRecord, AuthoritySettings};
use crate::repo::{DepthExceptionRow, EscrowStore};
use crate::auth::{Permission, Principal};
use crate::server::{Body, Shared};
use crate::tokens;
use crate::util::{new_id, now_ms};

/// `PUT /v1/authority/settings`: replaces the tenant's authority settings.
pub async fn put_settings(State(state): State<Shared>, p: Principal, Body(b): Body<AuthoritySettings>) -> ApiResult<Json<Value>> {
    let tenant = p.tenant.clone();
    let max_text = state.config.limits.request.max_text_bytes;
    // Not blank: the policy's registry rule refuses facts without a reviewer as malformed.
    if b.reviewer.trim().is_empty() || b.reviewer.len() > max_text {
        return Err(ApiError::invalid(format!("`reviewer` must name a human: 1-{max_text} bytes, not only whitespace")));
    }
    let out = serde_json::to_value(&b).map_err(ApiError::internal)?;
    state.store.unit(&tenant.clone(), move |conn| conn.set_authority_settings(&tenant, &b)).await?;
    Ok(Json(out))
}

/// `GET /v1/authority/settings`.
pub async fn get_settings(State(state): State<Shared>, p: Principal) -> ApiResult<Json<Value>> {
    let tenant = p.tenant.clone();
    let s = state.store.unit(&tenant.clone(), move |conn| registry::settings(conn, &tenant)).await?;
    Ok(Json(serde_json::to_value(s).map_err(ApiError::internal)?))
}

/// `POST /v1/agents`: registers (or replaces) an agent; its id is stored canonical.
pub async fn register_agent(State(state): State<Shared>, p: Principal, Body(mut b): Body<AgentRecord>) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = p.tenant.clone();
    b.agent_id = canonical("agent_id", &b.agent_id)?;
    let mut delegates = Vec::with_capacity(b.delegates.len());
    for d in &b.delegates {
        delegates.push(canonical("delegates", d)?);
    }
    b.delegates = delegates;
    let limits = state.config.limits.request;
    if b.capabilities.len() > limits.max_list_entries || b.delegates.len() > limits.max_list_entries {
        return Err(ApiError::invalid(format!(
            "`capabilities` and `delegates` take at most {} entries each",
            limits.max_list_entries
        )));
    }
    if b.capabilities.iter().any(|c| c.is_empty() || c.len() > limits.max_text_bytes) {
        return Err(ApiError::invalid(format!("`capabilities` entries must be 1-{} bytes", limits.max_text_bytes)));
    }
    let now = now_ms();
    let out = json!({"agent_id": b.agent_id, "trust": b.trust, "tier": b.tier(), "capabilities": b.capabilities, "delegates": b.delegates});
    state.store.unit(&tenant.clone(), move |conn| registry::upsert(conn, &tenant, &b, now)).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /v1/agents`.
pub async fn list_agents(State(state): State<Shared>, p: Principal) -> ApiResult<Json<Value>> {
    let tenant = p.tenant.clone();
    let agents = state.store.unit(&tenant.clone(), move |conn| conn.agents(&tenant)).await?;
    let items: Vec<Value> = agents
        .iter()
        .map(|a| json!({"agent_id": a.agent_id, "trust": a.trust, "tier": a.tier(), "capabilities": a.capabilities, "delegates": a.delegates}))
        .collect();
    Ok(Json(json!({"agents": items})))
}

/// The body of `POST /v1/root-grants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootGrantBody {
    /// The originating agent (registered).
    pub agent_id: String,
    /// The root mandate: everything the chain may ever do; its budgets are held from the
    /// tenant's now.
    pub mandate: Mandate,
    /// Extra budgeting levels the hold is made at (workspace, app, workflow).
    #[serde(default)]
    pub subject: Option<Subject>,
}

/// `POST /v1/root-grants`: an operator gives an originating agent a root mandate. The budgets
/// are held from the tenant's (a Cycles reservation per unit), a new chain is opened (its id
/// is never reused), and the signed root token is returned: the agent's authority to delegate.
pub async fn create_root_grant(
    State(state): State<Shared>,
    p: Principal,
    Body(b): Body<RootGrantBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = p.tenant.clone();
    let now = now_ms();
    let now_u = u64::try_from(now).unwrap_or(0);
    let agent = canonical("agent_id", &b.agent_id)?;
    let m = &b.mandate;
    if m.expires_at <= now_u {
        return Err(ApiError::invalid("`mandate.expires_at` is not in the future"));
    }
    let limits = state.config.limits;
    if m.expires_at > now_u.saturating_add(limits.max_root_grant_ms) {
        return Err(ApiError::invalid(format!(
            "`mandate.expires_at` is more than {} ms away (`limits.max_root_grant_ms`: a root grant's hold lasts at most 24 hours)",
            limits.max_root_grant_ms
        )));
    }
    for (field, len) in [("action_kinds", m.action_kinds.len()), ("counterparties", m.counterparties.len()), ("budgets", m.budgets.len())] {
        if len > limits.request.max_list_entries {
            return Err(ApiError::invalid(format!(
                "`mandate.{field}` has {len} entries; at most {}",
                limits.request.max_list_entries
            )));
        }
    }
    let budgets = budgets_of(m)?;
    for (i, (unit, _)) in budgets.iter().enumerate() {
        if budgets.iter().skip(i + 1).any(|(u, _)| u == unit) {
            return Err(ApiError::invalid(format!("`mandate.budgets` lists {} twice", unit.as_str())));
        }
    }
    if let Some(s) = &b.subject
        && (s.tenant.is_some() || s.agent.is_some() || s.toolset.is_some())
    {
        return Err(ApiError::invalid("`subject` may carry only workspace, app and workflow"));
    }
    let chain = tokens::new_chain_id()?;
    // The operator issuing it: the key's principal.
    let issuer = format!("operator:{}", p.name);
    let token = state.tokens.grant_root(chain, &tenant, &issuer, &agent, m, now_u)?;
    let version = state.policy.version().label();
    let subject = b.subject.unwrap_or_default();
    let (t, tok, a) = (tenant.clone(), token.clone(), agent.clone());
    let signer = state.tokens.signing_key().clone();
    let recorded = state
        .store
        .unit(&tenant.clone(), move |conn| {
            if conn.agent(&t, &a)?.is_none() {
                return Err(GatewayError::forbidden(format!("`{a}` is not in this tenant's agent registry: register it first")));
            }
            record_root(conn, &t, &tok, &subject, &version, now, &signer)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "chain_id": chain.to_string(),
            "grant_id": recorded.grant_id,
            "agent_id": agent,
            "token": token.encode(),
            "expires_at": m.expires_at,
            "reservations": recorded.reservations,
        })),
    ))
}

/// `GET /v1/grants/{grant_id}`.
pub async fn get_grant(State(state): State<Shared>, p: Principal, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let tenant = p.tenant.clone();
    let g = state.store.unit(&tenant.clone(), move |conn| conn.grant(&tenant, &id)).await?;
    match g {
        Some(g) => Ok(Json(serde_json::to_value(g).map_err(ApiError::internal)?)),
        None => Err(ApiError::not_found("grant not found")),
    }
}

/// `GET /v1/chains/{chain_id}/grants`: the chain's escrow tree, root first.
pub async fn chain_grants(State(state): State<Shared>, p: Principal, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let tenant = p.tenant.clone();
    let c = id.clone();
    let grants = state.store.unit(&tenant.clone(), move |conn| escrow::chain(conn, &tenant, &c)).await?;
    if grants.is_empty() {
        return Err(ApiError::not_found(format!("chain `{id}` has no grants")));
    }
    Ok(Json(json!({"chain_id": id, "grants": grants})))
}

/// `GET /v1/escrow/audit`: every broken escrow invariant of the tenant (none, when sound).
pub async fn audit(State(state): State<Shared>, p: Principal) -> ApiResult<Json<Value>> {
    let tenant = p.tenant.clone();
    let v = state.store.unit(&tenant.clone(), move |conn| escrow::violations(conn, &tenant)).await?;
    Ok(Json(json!({"sound": v.is_empty(), "violations": v})))
}

/// One unit's amount.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spent {
    /// The unit.
    pub unit: Unit,
    /// How much, >= 0.
    pub amount: i64,
}

/// The body of `POST /v1/grants/{id}/commit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitBody {
    /// What the holder spent itself, per unit (children's consumption is already counted).
    pub spent: Vec<Spent>,
}

/// Settles a root grant's Cycles reservations with what its tree consumed.
fn settle_root(conn: &dyn crate::repo::Tx, tenant: &str, settled: &Settled, now: i64) -> GatewayResult<()> {
    for (unit, reservation, consumed) in &settled.root_reservations {
        let r = conn.reservation(reservation)?;
        if r.is_none_or(|r| r.status != "ACTIVE") {
            // Expired by its TTL: the hold already went back to the tenant.
            continue;
        }
        let finished = if *consumed > 0 {
            let req = CommitRequest { idempotency_key: new_id("root_"), actual: Amount::new(*unit, *consumed), metrics: None, metadata: None };
            let hash = ledger::request_hash(&req, reservation)?;
            ledger::commit(conn, tenant, reservation, &req, &hash, now)?.map(drop)
        } else {
            let req = ReleaseRequest { idempotency_key: new_id("root_"), reason: Some("root grant settled unspent".into()) };
            let hash = ledger::request_hash(&req, reservation)?;
            ledger::release(conn, tenant, reservation, &req, &hash, now)?.map(drop)
        };
        match finished {
            ledger::Finished::Done(_) => {}
            // Found past its TTL and grace just now, and expired on the spot: as above, the
            // hold went back to the tenant, and the settlement of the tree stands.
            ledger::Finished::RefusedKeepingChanges(refusal) if refusal.code == ErrorCode::ReservationExpired => {}
            ledger::Finished::RefusedKeepingChanges(refusal) => return Err(refusal),
        }
    }
    Ok(())
}

fn settled_json(s: &Settled) -> Value {
    json!({"settled": s.grants, "root_reservations": s.root_reservations.iter().map(|(u, r, c)| json!({"unit": u.as_str(), "reservation_id": r, "consumed": c})).collect::<Vec<_>>()})
}

/// `POST /v1/grants/{id}/commit`: the holder reports what it spent; the rest returns to the
/// parent (for a root grant, the Cycles reservation is committed with what the tree consumed).
pub async fn commit_grant(State(state): State<Shared>, p: Principal, Path(id): Path<String>, Body(b): Body<CommitBody>) -> ApiResult<Json<Value>> {
    let tenant = p.tenant.clone();
    let now = now_ms();
    let spent: Vec<(Unit, i64)> = b.spent.iter().map(|s| (s.unit, s.amount)).collect();
    for (i, (unit, amount)) in spent.iter().enumerate() {
        if *amount < 0 {
            return Err(ApiError::invalid(format!("`spent[{i}].amount` must be >= 0")));
        }
        if spent.iter().skip(i + 1).any(|(u, _)| u == unit) {
            return Err(ApiError::invalid(format!("`spent` lists {} twice", unit.as_str())));
        }
    }
    let settled = state
        .store
        .unit(&tenant.clone(), move |conn| {
            may_settle(conn, &p, &id)?;
            let s = escrow::commit(conn, &tenant, &id, &spent, now)?;
            settle_root(conn, &tenant, &s, now)?;
            Ok(s)
        })
        .await?;
    Ok(Json(settled_json(&settled)))
}

/// `POST /v1/grants/{id}/release`: the holder gives the grant back unspent, with its live
/// subtree.
pub async fn release_grant(State(state): State<Shared>, p: Principal, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    settle(state, p, id, GrantStatus::Released).await
}

/// `POST /v1/grants/{id}/revoke`: voids the grant and its whole subtree at once; every token
/// below it stops working.
pub async fn revoke_grant(State(state): State<Shared>, p: Principal, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    settle(state, p, id, GrantStatus::Revoked).await
}

/// Whether `p` may settle grant `id`: its holder, or a key that revokes grants (an operator).
fn may_settle(conn: &dyn EscrowStore, p: &Principal, id: &str) -> GatewayResult<()> {
    if p.has(Permission::GrantsWrite) {
        return Ok(());
    }
    let grant = conn.grant(&p.tenant, id)?.ok_or_else(|| GatewayError::not_found(format!("grant `{id}` not found")))?;
    let holder = canonical("principal", &p.name).unwrap_or_default();
    if grant.holder != holder {
        return Err(GatewayError::forbidden(format!("grant `{id}` is held by `{}`, not by `{}`", grant.holder, p.name)));
    }
    Ok(())
}

async fn settle(state: Shared, p: Principal, id: String, status: GrantStatus) -> ApiResult<Json<Value>> {
    let now = now_ms();
    let settled = state
        .store
        .unit(&p.tenant.clone(), move |conn| {
            let tenant = p.tenant.clone();
            may_settle(conn, &p, &id)?;
            let s = escrow::settle_subtree(conn, &tenant, &id, status, now)?;
            settle_root(conn, &tenant, &s, now)?;
            Ok(s)
        })
        .await?;
    Ok(Json(settled_json(&settled)))
}

/// The body of `POST /v1/depth-exceptions` (AG-396 4.12).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthExceptionBody {
    /// The chain it applies to.
    pub chain_id: String,
    /// Extra hops permitted (the policy caps it).
    pub extra_depth: u8,
    /// The documented justification.
    pub justification: String,
    /// How long it lasts, milliseconds (at most 24 hours).
    pub ttl_ms: i64,
}

/// `POST /v1/depth-exceptions`: an approver records a temporary depth increase for one chain.
/// The approver is the key's principal, never a body field; delegations name the record by id.
pub async fn create_depth_exception(
    State(state): State<Shared>,
    p: Principal,
    Body(b): Body<DepthExceptionBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (tenant, approver) = (p.tenant.clone(), p.name.clone());
    if tokens::parse_chain_id(&b.chain_id).is_none() {
        return Err(ApiError::invalid("`chain_id` must be 32 lowercase hex characters"));
    }
    if b.justification.trim().is_empty() || b.justification.len() > 1024 {
        return Err(ApiError::invalid("`justification` must be 1-1024 characters"));
    }
    if b.extra_depth == 0 {
        return Err(ApiError::invalid("`extra_depth` must be at least 1"));
    }
    if !(1000..=86_400_000).contains(&b.ttl_ms) {
        return Err(ApiError::invalid("`ttl_ms` must be 1000-86400000"));
    }
    let now = now_ms();
    let id = new_id("dex_");
    let out = json!({"id": id, "chain_id": b.chain_id, "approved_by": approver, "justification": b.justification,
                     "extra_depth": b.extra_depth, "expires_at_ms": now + b.ttl_ms});
    let row = DepthExceptionRow {
        id,
        chain_id: b.chain_id,
        approved_by: approver,
        justification: b.justification,
        extra_depth: i64::from(b.extra_depth),
        expires_at_ms: now + b.ttl_ms,
        created_at_ms: now,
    };
    state.store.unit(&tenant.clone(), move |conn| conn.insert_depth_exception(&tenant, &row)).await?;
    Ok((StatusCode::CREATED, Json(out)))
}
