//! `POST /v1/delegations`: the decision point. Verify, evaluate through the policy
//! component, carve the child's sub-budget in the ledger, queue an escalation, append the
//! trace, answer. The component decides; this module never re-implements a rule: it only
//! adds ledger authority (no budget, no delegation) and bookkeeping.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::Json;
use rusqlite::Connection;
use sbd_policy::{BudgetUnit, Outcome, Request, Verdict};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cycles::{valid_scope_value, Action, Amount, ReserveRequest, Subject, Unit};
use crate::error::{ApiError, ApiResult};
use crate::escalations;
use crate::ledger;
use crate::server::{Body, RequestContext, Shared, Tenant};
use crate::traces::{self, NewEvent};
use crate::tokens;
use crate::util::{new_id, now_ms};

/// The body of `POST /v1/delegations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegationBody {
    /// The chain this hop belongs to; required when `request.chain` is not empty, minted
    /// for a first hop when absent.
    #[serde(default)]
    pub chain_id: Option<String>,
    /// An `sbd_policy::Request`; `now` is set to server time (any client value is replaced).
    pub request: Value,
    /// Extra budgeting levels for the child's reservation (workspace, app, workflow).
    #[serde(default)]
    pub subject: Option<Subject>,
    /// Reservation TTL for the carved sub-budget [default: until the child mandate expires,
    /// clamped to 1 s - 24 h].
    #[serde(default)]
    pub ttl_ms: Option<i64>,
    /// The delegator's delegation token (the signed chain so far); required for every hop after
    /// the first, absent on a first hop.
    #[serde(default)]
    pub token: Option<String>,
}

/// The unit of a mandate budget in the ledger.
fn unit_of(u: BudgetUnit) -> Unit {
    match u {
        BudgetUnit::UsdMicrocents => Unit::UsdMicrocents,
        BudgetUnit::Tokens => Unit::Tokens,
        BudgetUnit::Credits => Unit::Credits,
        BudgetUnit::RiskPoints => Unit::RiskPoints,
    }
}

/// RISK_POINTS one task of `risk` costs against a toolset action mask.
pub fn risk_points(risk: sbd_policy::RiskLevel) -> i64 {
    match risk {
        sbd_policy::RiskLevel::Low => 1,
        sbd_policy::RiskLevel::Medium => 2,
        sbd_policy::RiskLevel::High => 5,
        sbd_policy::RiskLevel::Critical => 10,
    }
}

/// The toolset of an action kind: its family (`payment.refund` -> `payment`).
pub fn toolset_of(action_kind: &str) -> &str {
    action_kind.split('.').next().unwrap_or(action_kind)
}

fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::Allow(_) => "allow",
        Verdict::Escalate(_) => "escalate",
        Verdict::Deny(_) => "deny",
    }
}

/// `POST /v1/delegations`.
pub async fn create(
    State(state): State<Shared>,
    Tenant(tenant): Tenant,
    Body(body): Body<DelegationBody>,
) -> ApiResult<Json<Value>> {
    let now = now_ms();
    let mut raw = body.request;
    let Some(obj) = raw.as_object_mut() else {
        return Err(ApiError::invalid("`request` must be a JSON object (an sbd delegation request)"));
    };
    obj.insert("now".into(), json!(now));
    let mut request: Request = sbd_runtime::json::from_value(raw)
        .map_err(|e| ApiError::invalid(format!("invalid `request`: {}", e.under("$.request"))))?;
    // The chain: a first hop starts one (its id given or fresh); a later hop proves its chain
    // with the token the previous hop issued.
    let parent_token = match (&body.token, request.chain.is_empty()) {
        (Some(_), true) => return Err(ApiError::invalid("a first hop (empty `request.chain`) carries no `token`")),
        (None, true) => None,
        (None, false) => {
            return Err(ApiError::new(
                crate::error::ErrorCode::Unauthorized,
                "`token` (the delegator's delegation token) is required when `request.chain` is not empty",
            ));
        }
        (Some(t), false) => Some(state.tokens.verify_for(
            t,
            &request,
            body.chain_id.as_deref(),
            u64::try_from(now).unwrap_or(0),
        )?),
    };
    let chain = match (&parent_token, &body.chain_id) {
        (Some(t), _) => t.chain_id(),
        (None, Some(id)) => tokens::parse_chain_id(id)
            .ok_or_else(|| ApiError::invalid("`chain_id` must be 32 lowercase hex characters"))?,
        (None, None) => tokens::new_chain_id()?,
    };
    let chain_id = chain.to_string();
    if let Some(s) = &body.subject {
        if s.tenant.is_some() || s.agent.is_some() || s.toolset.is_some() {
            return Err(ApiError::invalid("`subject` may carry only workspace, app and workflow"));
        }
        for (level, v) in s.levels() {
            if let Some(v) = v
                && !valid_scope_value(v) {
                    return Err(ApiError::invalid(format!("`subject.{level}` must match ^[a-zA-Z0-9_.-]+$")));
                }
        }
    }
    if let Some(ttl) = body.ttl_ms
        && !(1000..=86_400_000).contains(&ttl) {
            return Err(ApiError::invalid("`ttl_ms` must be 1000-86400000"));
        }
    // Stored trust (fed by outcome reports) replaces what the caller claims.
    if let Ok(trust) = state.trust.read() {
        for agent in [&mut request.from, &mut request.to] {
            if let Some(score) = trust.get(&(tenant.clone(), agent.id.clone())) {
                agent.trust = score.round().clamp(0.0, 1000.0) as u16;
            }
        }
    }
    let started = Instant::now();
    let (verdict, version) = state.policy.evaluate(&request);
    let label = verdict_name(&verdict);
    state.metrics.decision_seconds.with_label_values(&[label]).observe(started.elapsed().as_secs_f64());
    let reason = verdict.reason().map(|r| r.name()).unwrap_or("none");
    state.metrics.decisions.with_label_values(&[label, reason]).inc();

    let ctx = RequestContext::current();
    let plan = Plan {
        tenant: tenant.clone(),
        chain_id: chain_id.clone(),
        request,
        verdict,
        policy_version: version.label(),
        subject: body.subject.unwrap_or_default(),
        ttl_ms: body.ttl_ms,
        now,
        escalation_ttl_ms: state.config.escalation_ttl_ms,
        request_id: ctx.as_ref().map(|c| c.request_id.clone()),
        trace_id: ctx.map(|c| c.trace_id),
    };
    let (mut outcome, plan) = state.store.run(move |conn| record(conn, &plan).map(|v| (v, plan))).await?;
    if let (Verdict::Allow(grant), Some("allow")) = (&plan.verdict, outcome["decision"].as_str()) {
        let token = state.tokens.issue(parent_token.as_ref(), chain, &plan.request, grant)?;
        outcome["child_token"] = json!(token);
    }
    if let Some(e) = outcome.get("escalation").and_then(|e| e.get("id")) {
        let _ = e;
        state.metrics.escalations.with_label_values(&["CREATED"]).inc();
    }
    if outcome.get("reservations").and_then(Value::as_array).is_some_and(|r| !r.is_empty()) {
        state.metrics.reservations.with_label_values(&["created"]).inc();
    }
    Ok(Json(outcome))
}

struct Plan {
    tenant: String,
    chain_id: String,
    request: Request,
    verdict: Verdict,
    policy_version: String,
    subject: Subject,
    ttl_ms: Option<i64>,
    now: i64,
    escalation_ttl_ms: i64,
    request_id: Option<String>,
    trace_id: Option<String>,
}

/// Whether `tenant` uses toolset RISK_POINTS budgets as action masks (it has at least one).
fn masks_enabled(conn: &Connection, tenant: &str) -> ApiResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM budgets WHERE tenant_id = ?1 AND unit = 'RISK_POINTS' AND scope LIKE '%toolset:%')",
        )?
        .query_row([tenant], |r| r.get::<_, bool>(0))?)
}

/// The ledger side of an allowed hop, all or nothing: one reservation per child budget on the
/// child's scope, and the RISK_POINTS mask of the task's toolset.
fn carve(conn: &Connection, p: &Plan, grant: &sbd_policy::Grant) -> ApiResult<Vec<Value>> {
    let mut out = Vec::new();
    let ttl = p
        .ttl_ms
        .unwrap_or_else(|| i64::try_from(grant.child_mandate.expires_at).unwrap_or(i64::MAX).saturating_sub(p.now))
        .clamp(1000, 86_400_000);
    let task = &p.request.task;
    let action = Action { kind: task.action_kind.clone(), name: task.id.clone(), tags: None };
    let mut reserve = |subject: Subject, estimate: Amount, what: &str| -> ApiResult<()> {
        let req = ReserveRequest {
            idempotency_key: new_id("dlg_"),
            subject,
            action: action.clone(),
            estimate,
            ttl_ms: Some(ttl),
            grace_period_ms: None,
            overage_policy: None,
            dry_run: None,
            metadata: Some(
                json!({"chain_id": p.chain_id, "delegator": p.request.from.id, "delegate": p.request.to.id, "kind": what})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        };
        let hash = ledger::request_hash(&req, "")?;
        let r = ledger::reserve(conn, &p.tenant, &req, &hash, p.now)?;
        out.push(json!({
            "kind": what,
            "reservation_id": r.reservation_id,
            "reserved": estimate,
            "expires_at_ms": r.response.get("expires_at_ms"),
            "scope_path": r.response.get("scope_path"),
        }));
        Ok(())
    };
    for b in &grant.child_mandate.budgets {
        let amount = i64::try_from(b.amount).map_err(|_| ApiError::invalid("a child budget exceeds int64"))?;
        let subject = Subject {
            tenant: Some(p.tenant.clone()),
            workspace: p.subject.workspace.clone(),
            app: p.subject.app.clone(),
            workflow: p.subject.workflow.clone(),
            agent: Some(p.request.to.id.clone()),
            ..Subject::default()
        };
        reserve(subject, Amount::new(unit_of(b.unit), amount), "sub-budget")?;
    }
    if masks_enabled(conn, &p.tenant)? {
        let toolset = toolset_of(&task.action_kind).to_string();
        let scope = format!("tenant:{}/toolset:{toolset}", p.tenant);
        if ledger::load_budget(conn, &p.tenant, &scope, Unit::RiskPoints)?.is_none() {
            return Err(ApiError::forbidden(format!(
                "action mask: no RISK_POINTS budget at `{scope}`, so `{}` is not permitted",
                task.action_kind
            )));
        }
        let subject = Subject { tenant: Some(p.tenant.clone()), toolset: Some(toolset), ..Subject::default() };
        reserve(subject, Amount::new(Unit::RiskPoints, risk_points(task.risk)), "action-mask")?;
    }
    Ok(out)
}

fn record(conn: &Connection, p: &Plan) -> ApiResult<Value> {
    let r = &p.request;
    let mut decision = verdict_name(&p.verdict).to_string();
    let mut reservations = Vec::new();
    let mut ledger_refusal = None;
    let mut escalation = None;
    match &p.verdict {
        Verdict::Allow(grant) => {
            // A refusal by the ledger must not leave half the reservations behind: run the
            // carve in its own savepoint.
            conn.execute_batch("SAVEPOINT carve")?;
            match carve(conn, p, grant) {
                Ok(made) => {
                    conn.execute_batch("RELEASE carve")?;
                    reservations = made;
                }
                Err(e) if e.code == crate::error::ErrorCode::InternalError => {
                    conn.execute_batch("ROLLBACK TO carve; RELEASE carve")?;
                    return Err(e);
                }
                Err(e) => {
                    conn.execute_batch("ROLLBACK TO carve; RELEASE carve")?;
                    decision = "deny".into();
                    ledger_refusal = Some(json!({"error": e.code.as_str(), "message": e.message}));
                }
            }
        }
        Verdict::Escalate(esc) => {
            escalation = Some(escalations::open(conn, &escalations::NewEscalation {
                tenant: &p.tenant,
                chain_id: &p.chain_id,
                escalation: esc,
                request: r,
                now: p.now,
                ttl_ms: p.escalation_ttl_ms,
            })?);
        }
        Verdict::Deny(_) => {}
    }
    let verdict = serde_json::to_value(&p.verdict).map_err(ApiError::internal)?;
    let mut body = json!({
        "task": r.task,
        "delegator_trust": r.from.trust,
        "delegate_trust": r.to.trust,
        "verdict": verdict,
        "reservations": reservations,
        "request_id": p.request_id,
        "trace_id": p.trace_id,
    });
    if let Some(l) = &ledger_refusal {
        body["ledger_refusal"] = l.clone();
    }
    if let Some(e) = &escalation {
        body["escalation_id"] = e["id"].clone();
    }
    let seq = traces::append(conn, &NewEvent {
        tenant: &p.tenant,
        chain_id: &p.chain_id,
        delegator: &r.from.id,
        delegate: &r.to.id,
        depth: i64::try_from(r.hop_depth()).unwrap_or(i64::MAX),
        at_ms: p.now,
        decision: &decision,
        reason_code: p.verdict.reason().map(|x| x.code()),
        policy_version: &p.policy_version,
        body,
    })?;
    let mut out = json!({
        "chain_id": p.chain_id,
        "seq": seq,
        "decision": decision,
        "verdict": verdict,
        "policy_version": p.policy_version,
        "reservations": reservations,
    });
    if let Some(l) = ledger_refusal {
        out["ledger_refusal"] = l;
    }
    if let Some(e) = escalation {
        out["escalation"] = e;
    }
    Ok(out)
}

/// `GET /v1/chains/{chain_id}`: the full chain, oldest event first.
pub async fn get_chain(
    State(state): State<Shared>,
    Tenant(tenant): Tenant,
    Path(chain_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = chain_id.clone();
    let events = state.store.run(move |conn| traces::chain(conn, &tenant, &id)).await?;
    Ok(Json(json!({"chain_id": chain_id, "events": events})))
}

/// The body of an outcome report.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeBody {
    /// `success` or `failure`.
    pub outcome: String,
    /// Trust gained (success) or the penalty (failure), 0-1000.
    pub magnitude: f64,
    /// Who reports.
    #[serde(default)]
    pub reported_by: Option<String>,
}

/// `POST /v1/chains/{chain_id}/outcome`: penalty propagation through the policy's
/// `trust-deltas`, applied to the stored trust scores; the report is appended to the trace.
pub async fn report_outcome(
    State(state): State<Shared>,
    Tenant(tenant): Tenant,
    Path(chain_id): Path<String>,
    Body(body): Body<OutcomeBody>,
) -> ApiResult<Json<Value>> {
    if !body.magnitude.is_finite() || !(0.0..=1000.0).contains(&body.magnitude) {
        return Err(ApiError::invalid("`magnitude` must be a number in 0-1000"));
    }
    let outcome = match body.outcome.as_str() {
        "success" => Outcome::Success(body.magnitude),
        "failure" => Outcome::Failure(body.magnitude),
        other => return Err(ApiError::invalid(format!("`outcome` must be `success` or `failure`, got `{other}`"))),
    };
    let (t, id) = (tenant.clone(), chain_id.clone());
    let events = state.store.run(move |conn| traces::chain(conn, &t, &id)).await?;
    // The executed chain: the originator, then every delegate an allowed hop handed to.
    let mut chain: Vec<String> = Vec::new();
    let mut base: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for e in events.iter().filter(|e| e["decision"] == "allow") {
        let (from, to) = (e["delegator"].as_str().unwrap_or(""), e["delegate"].as_str().unwrap_or(""));
        if chain.is_empty() {
            chain.push(from.to_string());
        }
        if !chain.iter().any(|a| a == to) {
            chain.push(to.to_string());
        }
        base.insert(from.to_string(), e["delegator_trust"].as_f64().unwrap_or(0.0));
        base.insert(to.to_string(), e["delegate_trust"].as_f64().unwrap_or(0.0));
    }
    if chain.is_empty() {
        return Err(ApiError::invalid(format!("chain `{chain_id}` has no allowed hop to report an outcome for")));
    }
    let deltas = state.policy.trust_deltas(&chain, outcome).map_err(|e| ApiError::internal(format!("policy: {e}")))?;
    let version = state.policy.version().label();
    let now = now_ms();
    let mut scores = Vec::new();
    {
        let trust = state.trust.read().map_err(|_| ApiError::internal("trust cache poisoned"))?;
        for d in &deltas {
            let current = trust.get(&(tenant.clone(), d.agent.clone())).copied().or_else(|| base.get(&d.agent).copied());
            let new = (current.unwrap_or(0.0) + d.delta).clamp(0.0, 1000.0);
            scores.push((d.agent.clone(), d.delta, new));
        }
    }
    let (t, id, sc) = (tenant.clone(), chain_id.clone(), scores.clone());
    let reported_by = body.reported_by.clone();
    let outcome_name = body.outcome.clone();
    let magnitude = body.magnitude;
    let seq = state
        .store
        .run(move |conn| {
            for (agent, _, score) in &sc {
                conn.prepare_cached(
                    "INSERT INTO agent_trust (tenant_id, agent, score, updated_at_ms) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT(tenant_id, agent) DO UPDATE SET score = excluded.score, updated_at_ms = excluded.updated_at_ms",
                )?
                .execute(rusqlite::params![t, agent, score, now])?;
            }
            let deltas: Vec<Value> = sc.iter().map(|(a, d, s)| json!({"agent": a, "delta": d, "score": s})).collect();
            traces::append(conn, &NewEvent {
                tenant: &t,
                chain_id: &id,
                delegator: reported_by.as_deref().unwrap_or(""),
                delegate: "",
                depth: 0,
                at_ms: now,
                decision: "outcome",
                reason_code: None,
                policy_version: &version,
                body: json!({"outcome": outcome_name, "magnitude": magnitude, "trust_deltas": deltas}),
            })
        })
        .await?;
    if let Ok(mut trust) = state.trust.write() {
        for (agent, _, score) in &scores {
            trust.insert((tenant.clone(), agent.clone()), *score);
        }
    }
    let deltas: Vec<Value> = scores.iter().map(|(a, d, s)| json!({"agent": a, "delta": d, "score": s})).collect();
    Ok(Json(json!({"chain_id": chain_id, "seq": seq, "chain": chain, "trust_deltas": deltas})))
}

/// `GET /v1/agents/{agent_id}/trust`: the stored score.
pub async fn get_trust(
    State(state): State<Shared>,
    Tenant(tenant): Tenant,
    Path(agent): Path<String>,
) -> ApiResult<Json<Value>> {
    let trust = state.trust.read().map_err(|_| ApiError::internal("trust cache poisoned"))?;
    match trust.get(&(tenant, agent.clone())) {
        Some(score) => Ok(Json(json!({"agent": agent, "score": score}))),
        None => Err(ApiError::not_found(format!("no stored trust score for `{agent}`"))),
    }
}

/// Loads every stored trust score.
pub fn load_trust(conn: &Connection) -> ApiResult<std::collections::HashMap<(String, String), f64>> {
    let mut stmt = conn.prepare("SELECT tenant_id, agent, score FROM agent_trust")?;
    let rows = stmt.query_map([], |r| Ok(((r.get::<_, String>(0)?, r.get::<_, String>(1)?), r.get::<_, f64>(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
