//! Escalations (Vorion seed): the human review queue and agent escalation targets.
//!
//! An escalating verdict opens a request with a TTL (default 5 minutes). Its resolution
//! paths are the target the policy named, then every registered agent target whose
//! capabilities cover the task, in descending trust order, skipping targets at their
//! `max_concurrent`. A decision (APPROVED_AND_EXECUTED, APPROVED_WITH_CONSTRAINTS, DENIED,
//! DELEGATED) records who and when; an undecided request past its TTL becomes EXPIRED. Each
//! decision is appended to the chain's trace.
//!
//! The rules only: the HTTP endpoints are in [`crate::escalations_api`].

use sbd_policy::{Escalation, EscalationTarget, Request, Task};
use sbd_bundle::KeyPair;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cycles::valid_scope_value;
use crate::escrow::Escrowed;
use crate::error::{GatewayError, GatewayResult, ErrorCode};
use crate::traces::{self, NewEvent};
use crate::repo::{EscalationStore, Tx};
use crate::util::new_id;


use sbd_policy::Mandate;

/// Where an escalation stands: open, closed by a decision, or closed by its TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Waiting for its assignee.
    Pending,
    /// Decided by its assignee.
    Decided,
    /// Undecided past its TTL.
    Expired,
}

impl Status {
    /// The name the API and the `escalations.status` column use.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Decided => "DECIDED",
            Status::Expired => "EXPIRED",
        }
    }

    /// The status named `name` (exactly as written), if any.
    pub fn parse(name: &str) -> Option<Status> {
        [Status::Pending, Status::Decided, Status::Expired].into_iter().find(|s| s.as_str() == name)
    }
}

/// How an escalation was closed (the Vorion seed's decisions, and the TTL's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    /// Approved as requested: the delegation was performed.
    ApprovedAndExecuted,
    /// Approved with narrower constraints: the delegation was performed within them.
    ApprovedWithConstraints,
    /// Refused.
    Denied,
    /// Passed to another reviewer or agent (a new escalation).
    Delegated,
    /// Not decided within its TTL.
    Expired,
}

impl Decision {
    /// The name the API, the metrics and the trace use.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::ApprovedAndExecuted => "APPROVED_AND_EXECUTED",
            Decision::ApprovedWithConstraints => "APPROVED_WITH_CONSTRAINTS",
            Decision::Denied => "DENIED",
            Decision::Delegated => "DELEGATED",
            Decision::Expired => "EXPIRED",
        }
    }
}

/// Who can resolve an escalation: a human reviewer or an agent target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A human reviewer (an approver key's principal).
    Human,
    /// A registered agent escalation target.
    Agent,
}

/// The target the policy named.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// Human or agent.
    pub kind: TargetKind,
    /// Its id.
    pub id: String,
}

/// One resolution path, in the order they are tried.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolutionPath {
    /// Human or agent.
    pub kind: TargetKind,
    /// Its id.
    pub id: String,
    /// A registered agent target's trust score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<u16>,
    /// A registered agent target's tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Whether it had capacity when the escalation opened.
    pub available: bool,
}

/// What approving performs: the escalated request and the delegator's token and grant, as
/// `POST /v1/delegations` evaluated them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingDelegation {
    /// The request the policy escalated.
    pub request: Request,
    /// The delegator's token, verified again at the approval.
    pub parent_token: String,
    /// The delegator's grant, carved at the approval.
    pub parent_grant_id: String,
}

/// The delegation an approval performed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Performed {
    /// The child's grant.
    pub grant_id: String,
    /// The child's signed token.
    pub child_token: String,
    /// The child's mandate.
    pub mandate: Mandate,
    /// What was carved from the parent's escrow, per unit.
    pub escrow: Vec<Escrowed>,
    /// The action mask's spend, when the tenant masks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Vec<crate::delegations::MaskSpend>>,
}

/// What a decision adds besides who and when (absent fields are not written).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// An approval's performed delegation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<Performed>,
    /// An approval's constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
    /// The reviewer's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A delegation's new assignee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_to: Option<String>,
    /// A delegation's new escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_escalation_id: Option<String>,
}

/// An escalation as stored and as `GET /v1/escalations/{id}` answers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EscalationRecord {
    /// `esc_...`.
    pub id: String,
    /// The delegation chain it belongs to.
    pub chain_id: String,
    /// Where it stands.
    pub status: Status,
    /// The target the policy named.
    pub target: Target,
    /// Who decides it: the first available path.
    pub assignee: String,
    /// The resolution paths, in order.
    pub paths: Vec<ResolutionPath>,
    /// The escalating rule's reason code.
    pub reason_code: u16,
    /// Its name.
    pub reason: String,
    /// The policy's message.
    pub message: String,
    /// The delegating agent.
    pub delegator: String,
    /// The agent it would delegate to.
    pub delegate: String,
    /// The task.
    pub task: Task,
    /// Opened at (ms).
    pub created_at_ms: i64,
    /// Expires at (ms).
    pub expires_at_ms: i64,
    /// What approving performs (absent for an escalation opened without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_delegation: Option<PendingDelegation>,
    /// The escalation a DELEGATED decision passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_from: Option<String>,
    /// How it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// By whom (`system:ttl` for an expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at_ms: Option<i64>,
    /// What the decision added.
    #[serde(flatten)]
    pub outcome: Outcome,
}

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
    pub pending: Option<PendingDelegation>,
}

/// The resolution paths for a task of `kind`: the `registered` agent targets covering it, by
/// descending trust, with their capacity.
fn agent_paths(store: &dyn EscalationStore, tenant: &str, registered: &[TargetBody], kind: &str) -> GatewayResult<Vec<ResolutionPath>> {
    let mut out = Vec::new();
    for t in registered {
        // The policy's own pattern rule, so routing and the rules never disagree.
        if !t.capabilities.iter().any(|c| sbd_policy::action::permits(c, kind)) {
            continue;
        }
        let active = store.pending_escalations(tenant, &t.agent_id)?;
        out.push(ResolutionPath {
            kind: TargetKind::Agent,
            available: below(active, t.max_concurrent),
            id: t.agent_id.clone(),
            trust: Some(t.trust),
            tier: Some(t.tier.clone()),
        });
    }
    Ok(out)
}

/// Whether `active` open escalations leave room under a target's `max_concurrent`.
fn below(active: usize, max_concurrent: u32) -> bool {
    usize::try_from(max_concurrent).is_ok_and(|max| active < max)
}

/// Opens an escalation request; returns it. A stored target that cannot be read is an error,
/// not a target silently skipped.
pub fn open(store: &dyn EscalationStore, e: &NewEscalation<'_>) -> GatewayResult<EscalationRecord> {
    let kind = &e.request.task.action_kind;
    let target = match &e.escalation.target {
        EscalationTarget::Human(h) => Target { kind: TargetKind::Human, id: h.clone() },
        EscalationTarget::Agent(a) => Target { kind: TargetKind::Agent, id: a.clone() },
    };
    let registered = store.escalation_targets(e.tenant)?;
    let mut paths = vec![ResolutionPath { kind: target.kind, id: target.id.clone(), trust: None, tier: None, available: true }];
    paths.extend(agent_paths(store, e.tenant, &registered, kind)?.into_iter().filter(|p| p.id != target.id));
    // The first available path takes it; an agent target at capacity passes it on.
    if target.kind == TargetKind::Agent
        && let Some(named) = registered.iter().find(|t| t.agent_id == target.id)
        && let Some(first) = paths.first_mut()
    {
        first.available = below(store.pending_escalations(e.tenant, &target.id)?, named.max_concurrent);
    }
    let assignee = paths.iter().find(|p| p.available).map_or(&target.id, |p| &p.id).clone();
    let expires_at_ms = e
        .now
        .checked_add(e.ttl_ms)
        .ok_or_else(|| GatewayError::internal("the escalation's expiry overflows"))?;
    let record = EscalationRecord {
        id: new_id("esc_"),
        chain_id: e.chain_id.to_string(),
        status: Status::Pending,
        target,
        assignee,
        paths,
        reason_code: e.escalation.reason.code(),
        reason: e.escalation.reason.name().to_string(),
        message: e.escalation.message.clone(),
        delegator: e.request.from.id.clone(),
        delegate: e.request.to.id.clone(),
        task: e.request.task.clone(),
        created_at_ms: e.now,
        expires_at_ms,
        pending_delegation: e.pending.clone(),
        delegated_from: None,
        decision: None,
        decided_by: None,
        decided_at_ms: None,
        outcome: Outcome::default(),
    };
    store.save_escalation(e.tenant, &record)?;
    Ok(record)
}

fn load(store: &dyn EscalationStore, tenant: &str, id: &str) -> GatewayResult<EscalationRecord> {
    store.escalation(tenant, id)?.ok_or_else(|| GatewayError::not_found(format!("escalation `{id}` not found")))
}

/// How many expired escalations one sweep of a tenant closes at most (in one unit of work,
/// which on Redis must commit within its lock's lease; the next sweep takes the rest).
const SWEEP_MAX: usize = 1_000;

/// Marks every PENDING request of every tenant past its TTL as EXPIRED; returns how many.
pub fn sweep_expired(conn: &dyn Tx, now: i64, signer: &KeyPair) -> GatewayResult<usize> {
    let mut closed = 0usize;
    for tenant in conn.escalation_tenants()? {
        closed = closed.saturating_add(sweep_tenant(conn, &tenant, now, signer)?);
    }
    Ok(closed)
}

/// Marks `tenant`'s PENDING requests past their TTL as EXPIRED; returns how many.
///
/// One stored escalation that cannot be read must not stop the sweep: it is closed by its
/// status alone (it can then never be approved) and logged, without a trace entry, since
/// there is no record to trace.
pub fn sweep_tenant(store: &dyn Tx, tenant: &str, now: i64, signer: &KeyPair) -> GatewayResult<usize> {
    let expired = store.expired_escalations(tenant, now, SWEEP_MAX)?;
    for (id, record) in &expired {
        match record.clone() {
            Some(mut record) => finish(store, tenant, &mut record, Decision::Expired, "system:ttl", now, Outcome::default(), signer)?,
            None => {
                tracing::error!(tenant = %tenant, escalation = %id, "an unreadable escalation past its TTL is closed as EXPIRED without a trace entry");
                store.expire_unreadable_escalation(tenant, id)?;
            }
        }
    }
    Ok(expired.len())
}

/// The trace entry of a decision.
#[derive(Serialize)]
struct DecisionTrace<'a> {
    escalation_id: &'a str,
    decision: Decision,
    decided_by: &'a str,
    #[serde(flatten)]
    outcome: &'a Outcome,
}

/// Closes `record` with `decision` (saved, and appended to the chain's trace).
#[allow(clippy::too_many_arguments)]
fn finish(
    store: &dyn Tx,
    tenant: &str,
    record: &mut EscalationRecord,
    decision: Decision,
    by: &str,
    now: i64,
    outcome: Outcome,
    signer: &KeyPair,
) -> GatewayResult<()> {
    record.status = if decision == Decision::Expired { Status::Expired } else { Status::Decided };
    record.decision = Some(decision);
    record.decided_by = Some(by.to_string());
    record.decided_at_ms = Some(now);
    record.outcome = outcome;
    store.save_escalation(tenant, record)?;
    let body = DecisionTrace { escalation_id: &record.id, decision, decided_by: by, outcome: &record.outcome };
    traces::append(store, &NewEvent {
        tenant,
        chain_id: &record.chain_id,
        delegator: &record.delegator,
        delegate: &record.delegate,
        depth: 0,
        at_ms: now,
        decision: "escalation-decision",
        reason_code: Some(record.reason_code),
        policy_version: "",
        body: serde_json::to_string(&body).map_err(GatewayError::internal)?,
    }, signer)?;
    Ok(())
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
    pub fn apply(&self, mandate: &Mandate) -> GatewayResult<Mandate> {
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
            .map_err(|d| GatewayError::invalid(format!("`constraints` must narrow the mandate: {} ({})", d.message, d.reason.name())))?;
        if m.remaining_depth > mandate.remaining_depth {
            return Err(GatewayError::invalid("`constraints.remaining_depth` must narrow the mandate"));
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

/// The review queue of `tenant`, by expiry, after closing what of it is past its TTL.
pub fn queue(
    store: &dyn Tx,
    tenant: &str,
    status: Option<Status>,
    assignee: Option<&str>,
    now: i64,
    signer: &KeyPair,
) -> GatewayResult<Vec<EscalationRecord>> {
    sweep_tenant(store, tenant, now, signer)?;
    store.escalations(tenant, status, assignee)
}

/// One escalation of `tenant`, after closing what of the tenant's is past its TTL.
pub fn get(store: &dyn Tx, tenant: &str, id: &str, now: i64, signer: &KeyPair) -> GatewayResult<EscalationRecord> {
    sweep_tenant(store, tenant, now, signer)?;
    load(store, tenant, id)
}

/// The three decisions a reviewer can post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Approve (with constraints, if the body has them).
    Approve,
    /// Deny.
    Deny,
    /// Pass to another reviewer or agent.
    Delegate,
}

/// A reviewer's decision, checked: what [`decide`] records.
#[derive(Debug, Clone)]
pub struct Ruling {
    /// The verb.
    pub verb: Verb,
    /// What it records.
    pub decision: Decision,
    /// An approval's constraints.
    pub constraints: Option<Constraints>,
    /// The reviewer's note.
    pub note: Option<String>,
    /// A delegation's new assignee.
    pub to: Option<String>,
}

impl Ruling {
    /// Checks a reviewer's body for `verb`: the decider is never a body field, constraints
    /// belong to an approval and a new assignee to a delegation.
    pub fn new(verb: Verb, body: DecisionBody) -> GatewayResult<Ruling> {
        if body.decided_by.is_some() {
            return Err(GatewayError::invalid(
                "`decided_by` is not accepted: the decision is recorded under the approver key's principal",
            ));
        }
        let decision = match verb {
            Verb::Approve if body.constraints.is_some() => Decision::ApprovedWithConstraints,
            Verb::Approve => Decision::ApprovedAndExecuted,
            Verb::Deny => Decision::Denied,
            Verb::Delegate => Decision::Delegated,
        };
        if verb != Verb::Approve && body.constraints.is_some() {
            return Err(GatewayError::invalid("`constraints` belong to an approval"));
        }
        let to = match (verb, body.to) {
            (Verb::Delegate, Some(t)) if valid_scope_value(&t) => Some(t),
            (Verb::Delegate, _) => return Err(GatewayError::invalid("`to` (a reviewer or agent id) is required to delegate")),
            (_, Some(_)) => return Err(GatewayError::invalid("`to` belongs to a delegation")),
            (_, None) => None,
        };
        Ok(Ruling { verb, decision, constraints: body.constraints, note: body.note, to })
    }
}

/// Records `ruling` on escalation `id` of `tenant` by `decided_by` (the approver key's
/// principal). An escalation past its TTL is closed as EXPIRED instead and returned so; the
/// caller refuses the decision then (the expiry is kept). Only the assignee decides; an
/// approval performs the pending delegation.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    conn: &dyn Tx,
    tokens: &crate::tokens::TokenAuthority,
    tenant: &str,
    id: &str,
    decided_by: &str,
    ruling: Ruling,
    now: i64,
    ttl_ms: i64,
) -> GatewayResult<EscalationRecord> {
    let signer = tokens.signing_key();
    let mut record = load(conn, tenant, id)?;
    if record.status == Status::Pending && record.expires_at_ms < now {
        finish(conn, tenant, &mut record, Decision::Expired, "system:ttl", now, Outcome::default(), signer)?;
        return Ok(record);
    }
    if record.status != Status::Pending {
        return Err(GatewayError::new(
            ErrorCode::EscalationClosed,
            format!("escalation `{id}` is already {}", record.decision.map_or("decided", Decision::as_str)),
        ));
    }
    // Only the one it is assigned to decides it (a named human, or the agent target).
    if record.assignee != decided_by {
        return Err(GatewayError::forbidden(format!(
            "escalation `{id}` is assigned to `{}`, not to `{decided_by}`",
            record.assignee
        )));
    }
    let mut outcome = Outcome::default();
    if ruling.verb == Verb::Approve
        && let Some(pending) = &record.pending_delegation
    {
        outcome.delegation = Some(perform(conn, tokens, tenant, &record, pending, ruling.constraints.as_ref(), decided_by, now)?);
    }
    outcome.constraints = ruling.constraints;
    outcome.note = ruling.note;
    if let Some(to) = ruling.to {
        let mut next = record.clone();
        next.id = new_id("esc_");
        next.assignee.clone_from(&to);
        next.delegated_from = Some(record.id.clone());
        next.created_at_ms = now;
        next.expires_at_ms = now.checked_add(ttl_ms).ok_or_else(|| GatewayError::internal("the escalation's expiry overflows"))?;
        conn.save_escalation(tenant, &next)?;
        outcome.delegated_to = Some(to);
        outcome.next_escalation_id = Some(next.id);
    }
    finish(conn, tenant, &mut record, ruling.decision, decided_by, now, outcome, signer)?;
    Ok(record)
}

/// The trace body of a hop an approver let through.
#[derive(Serialize)]
struct ApprovedHopEvent<'a> {
    approved_by: &'a str,
    escalation_id: &'a str,
    grant_id: &'a str,
    mandate: &'a sbd_policy::Mandate,
    parent_grant_id: &'a str,
    task: &'a Task,
}

/// Performs the delegation an approval decides: the child's mandate is the requested one
/// narrowed to what the parent's escrow still has (and by `constraints`), carved from the
/// parent's grant, signed into the child's token with the approver recorded, and traced as an
/// allowed hop. A hop past the parent's maximum depth (a depth-limit escalation) becomes a
/// terminal hop: the approver extends the chain by this one delegation only.
#[allow(clippy::too_many_arguments)]
fn perform(
    conn: &dyn Tx,
    tokens: &crate::tokens::TokenAuthority,
    tenant: &str,
    escalation: &EscalationRecord,
    pending: &PendingDelegation,
    constraints: Option<&Constraints>,
    approver: &str,
    now: i64,
) -> GatewayResult<Performed> {
    use crate::delegations::budgets_of;
    use crate::escrow::{self, NewGrant};
    use crate::tokens::grant_id;

    let mut request = pending.request.clone();
    // An approval overrides the escalating rule, not the tenant's action mask: its rule runs
    // again on today's facts (a structural escalation never reached it), and the points are
    // spent with the grant below.
    crate::delegations::recheck_mask(conn, tenant, &mut request)?;
    let parent = tokens
        .verify(&pending.parent_token, tenant, u64::try_from(now).unwrap_or(0))
        .map_err(|e| GatewayError::new(ErrorCode::EscalationClosed, format!("the delegator's token can no longer delegate: {}", e.message)))?;
    let grant = escrow::load_any(conn, tenant, &crate::tokens::grant_ids(&parent))?
        .ok_or_else(|| GatewayError::new(ErrorCode::EscalationClosed, "the delegator's grant is gone"))?;
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
    let child = tokens.append(&parent, sbd_bundle::token::Delegation {
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
        chain_id: &escalation.chain_id,
        parent_id: Some(&parent_id),
        holder: &request.to.id,
        depth: i64::from(depth),
        expires_at_ms: i64::try_from(mandate.expires_at).unwrap_or(i64::MAX),
        now,
        budgets: &budgets,
    })?;
    let chain_id = escalation.chain_id.as_str();
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
        body: serde_json::to_string(&ApprovedHopEvent {
            approved_by: approver,
            escalation_id: &escalation.id,
            grant_id: &child_id,
            mandate: &mandate,
            parent_grant_id: &parent_id,
            task: &request.task,
        })
        .map_err(GatewayError::internal)?,
    }, tokens.signing_key())?;
    Ok(Performed {
        grant_id: child_id,
        child_token: child.encode(),
        mandate,
        escrow: budgets.iter().map(|(unit, amount)| Escrowed { unit: unit.as_str().to_string(), amount: *amount }).collect(),
        reservations: mask.map(|m| vec![m]),
    })
}

/// An agent escalation target, as registered and as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

impl TargetBody {
    /// Checks each field, naming the one that is wrong.
    pub fn validate(&self) -> GatewayResult<()> {
        if !valid_scope_value(&self.agent_id) {
            return Err(GatewayError::invalid("`agent_id` must match ^[a-zA-Z0-9_.-]+$"));
        }
        if self.trust > 1000 {
            return Err(GatewayError::invalid("`trust` must be 0-1000"));
        }
        if !matches!(self.tier.as_str(), "T0" | "T1" | "T2" | "T3" | "T4" | "T5" | "T6" | "T7") {
            return Err(GatewayError::invalid("`tier` must be one of T0-T7"));
        }
        if self.max_concurrent == 0 {
            return Err(GatewayError::invalid("`max_concurrent` must be at least 1"));
        }
        if self.capabilities.is_empty() {
            return Err(GatewayError::invalid("`capabilities` must name at least one action kind pattern"));
        }
        Ok(())
    }
}

/// Registers (or replaces) an agent escalation target of `tenant`, checked.
pub fn register_target(store: &dyn EscalationStore, tenant: &str, target: &TargetBody) -> GatewayResult<()> {
    target.validate()?;
    store.save_escalation_target(tenant, target)
}


#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rusqlite::{params, Connection};
    use sbd_policy::action::permits as covers;
    use serde_json::{json, Value};

    use super::{Decision, EscalationRecord, Status};
    use crate::repo::EscalationStore;

    /// A stored record, read as the store reads it.
    fn parse(body: &str) -> crate::error::GatewayResult<EscalationRecord> {
        let conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&conn).unwrap();
        conn.execute("INSERT INTO escalations (id, tenant_id, status, assignee, expires_at_ms, body) VALUES ('x', 't', 'PENDING', 'a', 0, ?1)", [body])
            .unwrap();
        Ok(conn.escalation("t", "x")?.expect("the row just written"))
    }
    use crate::error::ErrorCode;

    fn mandate(depth: u8) -> Value {
        json!({"value_ceiling": 1000, "action_kinds": ["payment.*"], "counterparties": ["acme"],
               "budgets": [{"unit": "TOKENS", "amount": 500}], "remaining_depth": depth, "expires_at": 9_000})
    }

    /// A decided escalation as the untyped code wrote it (`json!` objects): every field the
    /// queue, an approval and a delegation set.
    fn stored_before_the_types() -> Value {
        let task = json!({"id": "t1", "action_kind": "payment.refund", "risk": "high", "value": 500,
                          "counterparty": "acme", "completable_locally": true});
        json!({
            "id": "esc_1", "chain_id": "chain-1", "status": "DECIDED",
            "target": {"kind": "human", "id": "risk-officer"}, "assignee": "risk-officer",
            "paths": [{"kind": "human", "id": "risk-officer", "available": true},
                      {"kind": "agent", "id": "bot", "trust": 800, "tier": "T5", "available": false}],
            "reason_code": 2002, "reason": "value-review", "message": "over the review threshold",
            "delegator": "orchestrator", "delegate": "payments", "task": task,
            "created_at_ms": 1_000, "expires_at_ms": 301_000,
            "pending_delegation": {
                "request": {"from": {"id": "orchestrator", "trust": 900}, "to": {"id": "payments", "trust": 700},
                            "task": task, "parent_mandate": mandate(3), "requested_mandate": mandate(2),
                            "chain": [], "state": [], "depth_exception": null, "action_mask": null, "now": 1_000},
                "parent_token": "tok", "parent_grant_id": "grant-root"},
            "delegated_from": "esc_0",
            "decision": "APPROVED_WITH_CONSTRAINTS", "decided_by": "risk-officer", "decided_at_ms": 2_000,
            "delegation": {"grant_id": "grant-1", "child_token": "tok-1", "mandate": mandate(2),
                           "escrow": [{"unit": "TOKENS", "amount": 500}],
                           "reservations": [{"kind": "action-mask", "reservation_id": "res_1",
                                             "spent": {"unit": "RISK_POINTS", "amount": 40}}]},
            "constraints": {"value_ceiling": 100, "action_kinds": null, "counterparties": null, "budgets": null,
                            "remaining_depth": null, "expires_at": null},
            "note": "fine", "delegated_to": "carol", "next_escalation_id": "esc_2"
        })
    }

    /// `stored` as written back: unchanged, but for the pending request's `registry` facts
    /// (added to the policy's request later), written as none.
    fn written_back(mut stored: Value) -> Value {
        stored["pending_delegation"]["request"]["registry"] = Value::Null;
        stored
    }

    #[test]
    fn a_record_stored_before_the_types_reads_and_writes_back_unchanged() {
        let stored = stored_before_the_types();
        let record = parse(&stored.to_string()).expect("the stored shape reads");
        assert_eq!(record.status, Status::Decided);
        assert_eq!(serde_json::to_value(&record).unwrap(), written_back(stored.clone()));
        // An open one: no decision fields are written.
        let mut open = stored.clone();
        let open_map = open.as_object_mut().unwrap();
        for k in ["delegated_from", "decision", "decided_by", "decided_at_ms", "delegation", "constraints", "note",
                  "delegated_to", "next_escalation_id"] {
            open_map.remove(k);
        }
        open_map.insert("status".into(), json!("PENDING"));
        assert_eq!(serde_json::to_value(parse(&open.to_string()).unwrap()).unwrap(), written_back(open));
    }

    #[test]
    fn the_names_the_column_and_the_metrics_use_are_the_serialised_ones() {
        for status in [Status::Pending, Status::Decided, Status::Expired] {
            assert_eq!(serde_json::to_value(status).unwrap(), json!(status.as_str()));
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        for decision in [Decision::ApprovedAndExecuted, Decision::ApprovedWithConstraints, Decision::Denied, Decision::Delegated, Decision::Expired] {
            assert_eq!(serde_json::to_value(decision).unwrap(), json!(decision.as_str()));
        }
        assert_eq!(Status::parse("pending"), None);
    }

    #[test]
    fn a_status_decision_or_target_kind_outside_the_lists_is_refused() {
        for (field, value) in [("status", json!("MAYBE")), ("decision", json!("APPROVED")), ("target", json!({"kind": "robot", "id": "x"}))] {
            let mut v = stored_before_the_types();
            v[field] = value;
            let e = parse(&v.to_string()).expect_err(field);
            assert_eq!(e.code, ErrorCode::InternalError, "{field}: {}", e.message);
        }
        assert!(serde_json::from_value::<EscalationRecord>(json!({"id": "esc_1"})).is_err());
    }

    #[test]
    fn an_unreadable_escalation_past_its_ttl_is_closed_and_does_not_stop_the_sweep() {
        let conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&conn).unwrap();
        let signer = sbd_bundle::KeyPair::generate().unwrap();
        let insert = |tenant: &str, id: &str, body: &str| {
            conn.execute(
                "INSERT INTO escalations (id, tenant_id, status, assignee, expires_at_ms, body) VALUES (?1, ?2, 'PENDING', 'risk-officer', 301000, ?3)",
                params![id, tenant, body],
            )
            .unwrap();
        };
        // Another tenant's row that no longer reads as an escalation (valid JSON, wrong shape).
        insert("other", "esc_bad", r#"{"id": "esc_bad", "status": "PENDING"}"#);
        let mut good = stored_before_the_types();
        for k in ["delegated_from", "decision", "decided_by", "decided_at_ms", "delegation", "constraints", "note",
                  "delegated_to", "next_escalation_id"] {
            good.as_object_mut().unwrap().remove(k);
        }
        good["status"] = json!("PENDING");
        insert("acme", "esc_1", &good.to_string());

        assert_eq!(super::sweep_expired(&conn, 400_000, &signer).unwrap(), 2);
        let status = |id: &str| -> String {
            conn.query_row("SELECT status FROM escalations WHERE id = ?1", [id], |r| r.get(0)).unwrap()
        };
        assert_eq!((status("esc_bad").as_str(), status("esc_1").as_str()), ("EXPIRED", "EXPIRED"));
        let record = super::load(&conn, "acme", "esc_1").unwrap();
        assert_eq!((record.decision, record.decided_by.as_deref()), (Some(Decision::Expired), Some("system:ttl")));
        // Nothing is left to sweep.
        assert_eq!(super::sweep_expired(&conn, 400_000, &signer).unwrap(), 0);
    }

    #[test]
    fn a_stored_target_that_cannot_be_read_is_an_error_not_a_skipped_path() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::SCHEMA).unwrap();
        let insert = |agent: &str, trust: u16, body: &str| {
            conn.execute(
                "INSERT INTO escalation_targets (tenant_id, agent, trust, body) VALUES ('acme', ?1, ?2, ?3)",
                params![agent, trust, body],
            )
            .unwrap();
        };
        insert("bot", 800, r#"{"agent_id":"bot","capabilities":["payment.*"],"trust":800,"tier":"T5","max_concurrent":2}"#);
        let read = conn.escalation_targets("acme").unwrap();
        assert_eq!((read.len(), read[0].agent_id.as_str(), read[0].max_concurrent), (1, "bot", 2));
        // The untyped reader dropped such a row, and with it a resolution path.
        insert("broken", 900, r#"{"agent_id":"broken","capabilities":"payment.*"}"#);
        let e = conn.escalation_targets("acme").expect_err("an unreadable target");
        assert_eq!(e.code, ErrorCode::InternalError, "{}", e.message);
    }

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
