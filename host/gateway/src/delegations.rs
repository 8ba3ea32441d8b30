//! `POST /v1/delegations`: the decision point.
//!
//! The request that reaches the policy is assembled from verified facts; the caller only
//! describes the task, the delegate and the mandate it asks for:
//!
//! | fact | source |
//! |---|---|
//! | chain, link times and degrees, parent mandate, delegator | the presented token (signed, bound to the tenant, anchored in an operator's root grant) |
//! | what the parent can still hand down | the escrow (its grant minus what its children hold and it spent) |
//! | trust scores; whether each agent is registered and the delegator lists the delegate | the agent registry |
//! | the action mask (toolset risk-point budgets) | the tenant's ledger |
//! | a depth exception | an approver's stored record, named by id |
//! | agent identity | the canonical form ([`sbd_policy::identity`]) |
//! | `now` | the gateway's clock |
//!
//! A caller's own claim of any of these (trust, `action_mask`, `registry`) is replaced. Then the
//! policy component decides (the registry's refusals too: the facts above, its rules), and on
//! allow the child's budget is carved from its parent's escrow, the child's token signed, the
//! trace event and the idempotency record written: all in one store transaction, or nothing.
//!
//! This module holds the rules of the gateway's side and knows nothing of HTTP: the handlers
//! in [`crate::delegations_api`] turn a request into a [`DelegationCall`] and the answer's
//! JSON text into a response. The rules that decide are the policy component's
//! (`guest/policy/src/evaluate.rs`), reached through [`Delegations::policy`].

use std::time::Instant;

use sbd_bundle::token::VerifiedToken;
use sbd_policy::{
    Denial, DepthException, Mandate, Outcome, Reason, RegistryFacts, Request, UnregisteredRule,
    Verdict,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cycles::{valid_scope_value, Action, Amount, CommitRequest, ReserveRequest, Subject, Unit};
use crate::error::{GatewayError, GatewayResult, ErrorCode};
use crate::escrow::{self, Escrowed, NewGrant};
use crate::limits::RequestLimits;
use crate::registry::{self, AgentRecord, AuthoritySettings, Unregistered};
use crate::repo::{DelegationStore, StoredDelegation as Stored, Tx};
use crate::principal::{Principal, Role};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::PolicyHandle;
use crate::backend::Backend;
use crate::traces::{self, NewEvent};
use crate::tokens::{self, grant_id, TokenAuthority};
use crate::util::{new_id, now_ms, sha256_hex};
use crate::{escalations, ledger};

/// The body of `POST /v1/delegations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegationBody {
    /// The delegator's token: its root grant, or the token its own delegation gave it.
    #[serde(default)]
    pub token: Option<String>,
    /// The task, the delegate and the requested mandate, as an `sbd_policy::Request`. `chain`
    /// may be omitted (it comes from the token; when given it must match it), `now` is the
    /// gateway's, trust scores are the registry's, and `depth_exception` is refused (name an
    /// approved one with `depth_exception_id`).
    pub request: Value,
    /// Only for an open root (see `AuthoritySettings::open_roots`): the new chain's id, which
    /// must not exist. With a token, the chain is the token's.
    #[serde(default)]
    pub chain_id: Option<String>,
    /// A depth exception an approver recorded for this chain (`POST /v1/depth-exceptions`).
    #[serde(default)]
    pub depth_exception_id: Option<String>,
    /// Extra budgeting levels (workspace, app, workflow) for an open root's reservations. The
    /// action mask spends on the tenant's own toolset budget whatever these name.
    #[serde(default)]
    pub subject: Option<Subject>,
}

impl RequestLimits {
    /// Refuses a delegation request over any bound, naming the field.
    pub fn check(&self, r: &Request) -> GatewayResult<()> {
        let text = |field: &str, s: &str| {
            if s.len() > self.max_text_bytes {
                Err(GatewayError::invalid(format!("`request.{field}` is {} bytes; at most {} are accepted", s.len(), self.max_text_bytes)))
            } else {
                Ok(())
            }
        };
        text("task.id", &r.task.id)?;
        text("task.action_kind", &r.task.action_kind)?;
        if let Some(c) = &r.task.counterparty {
            text("task.counterparty", c)?;
        }
        for (name, m) in [("parent_mandate", &r.parent_mandate), ("requested_mandate", &r.requested_mandate)] {
            for (field, len) in [("action_kinds", m.action_kinds.len()), ("counterparties", m.counterparties.len()), ("budgets", m.budgets.len())] {
                if len > self.max_list_entries {
                    return Err(GatewayError::invalid(format!("`request.{name}.{field}` has {len} entries; at most {} are accepted", self.max_list_entries)));
                }
            }
            for s in m.action_kinds.iter().chain(&m.counterparties) {
                text(&format!("{name} entry"), s)?;
            }
        }
        if r.state.len() > self.max_state_len {
            return Err(GatewayError::invalid(format!("`request.state` has {} entries; at most {}", r.state.len(), self.max_state_len)));
        }
        if r.chain.len() > self.max_list_entries {
            return Err(GatewayError::invalid(format!("`request.chain` has {} links; at most {}", r.chain.len(), self.max_list_entries)));
        }
        Ok(())
    }
}

/// The unit of a mandate budget in the ledger.
pub fn unit_of(u: sbd_policy::BudgetUnit) -> Unit {
    match u {
        sbd_policy::BudgetUnit::UsdMicrocents => Unit::UsdMicrocents,
        sbd_policy::BudgetUnit::Tokens => Unit::Tokens,
        sbd_policy::BudgetUnit::Credits => Unit::Credits,
        sbd_policy::BudgetUnit::RiskPoints => Unit::RiskPoints,
    }
}

/// A mandate's budgets as ledger amounts; an amount beyond int64 is refused.
pub fn budgets_of(m: &Mandate) -> GatewayResult<Vec<(Unit, i64)>> {
    m.budgets
        .iter()
        .map(|b| {
            i64::try_from(b.amount)
                .map(|a| (unit_of(b.unit), a))
                .map_err(|_| GatewayError::invalid(format!("a {:?} budget of {} exceeds int64", b.unit, b.amount)))
        })
        .collect()
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

/// The toolset of an action kind: the policy's definition (its family, `payment.refund` ->
/// `payment`), so the mask the gateway holds is the one the rule checked.
pub use sbd_policy::attenuation::toolset_of;

fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::Allow(_) => "allow",
        Verdict::Escalate(_) => "escalate",
        Verdict::Deny(_) => "deny",
    }
}

/// The canonical form of an agent id, or a 400 naming the field and the reason.
pub fn canonical(field: &str, id: &str) -> GatewayResult<String> {
    sbd_policy::identity::canonical_agent_id(id).map_err(|d| {
        GatewayError::invalid(format!("`{field}` is not an acceptable agent id: {} ({}): {}", d.reason.name(), d.reason.code(), d.message))
    })
}

/// A delegation request as the caller sent it, read and checked by [`Delegations::claimed`].
struct Claimed {
    /// The request, with the gateway's `now`.
    request: Request,
    /// `request.from.id` in canonical form.
    from_id: String,
    /// `request.to.id` in canonical form.
    to_id: String,
    /// Whether `request.chain` was sent non-empty (it must then equal the token's links).
    chain_given: bool,
}

/// What [`Delegations::facts`] looks up.
struct FactsQuery {
    tenant: String,
    from_id: String,
    to_id: String,
    /// The task's risk, which prices it against the action mask.
    risk: sbd_policy::RiskLevel,
    /// The presented token's grant ids (current and earlier forms).
    parent_ids: Option<[String; 2]>,
    exception_id: Option<String>,
    chain_id: String,
    idem_key: String,
    request_hash: String,
}

/// The digest of what the caller asked: the token's block and everything it sent (the request
/// without the server-set `now`, the exception, an open root's chain id and the subject). A
/// delegation sent without an explicit key is recorded under it, so the same token and
/// request return the original response; under an explicit key it tells a retry from a reuse
/// of the key with another request (a mismatch).
fn request_hash(
    presented: Option<&VerifiedToken>,
    claimed: &Request,
    depth_exception_id: Option<&str>,
    open_chain_id: Option<&str>,
    subject: Option<&Subject>,
) -> GatewayResult<String> {
    let mut normalised = claimed.clone();
    normalised.now = 0;
    // The registry's facts are the gateway's, set after this digest, so a caller's claim of
    // them changes nothing and is left out: the material is the request's text as it was
    // before the field existed, and a retry across that upgrade is still a replay.
    normalised.registry = None;
    let text = serde_json::to_string(&normalised).map_err(GatewayError::internal)?;
    let text = text
        .strip_suffix(r#","registry":null,"now":0}"#)
        .map(|head| format!(r#"{head},"now":0}}"#))
        .ok_or_else(|| GatewayError::internal("a delegation request no longer ends with `registry` and `now`"))?;
    let mut material = format!(
        "{}\n{}\n{}",
        presented.map(tokens::block_hash_id).unwrap_or_default(),
        depth_exception_id.unwrap_or_default(),
        text
    );
    // Hashed only when sent, so a request without them keeps the hash an earlier gateway
    // stored it under: a retry across an upgrade is still a replay, not a second hop.
    if open_chain_id.is_some() || subject.is_some() {
        material.push_str(&format!(
            "\n{}\n{}",
            open_chain_id.unwrap_or_default(),
            serde_json::to_string(&subject).map_err(GatewayError::internal)?
        ));
    }
    Ok(sha256_hex(material.as_bytes()))
}

/// The request the rules see: the caller's task and requested mandate, with every fact the
/// gateway verified in place of what the caller claimed (module docs' table).
fn assembled(claimed: Claimed, facts: &Facts, parent_token: &VerifiedToken, parent_grant: Option<&escrow::Grant>) -> Request {
    let mut request = claimed.request;
    request.from.id = claimed.from_id;
    request.to.id = claimed.to_id;
    request.chain = tokens::links_of(parent_token);
    request.depth_exception = facts.exception.clone();
    // Facts, never the caller's: the mask the tenant's ledger holds (or none), and what the
    // tenant's registry says of the two agents.
    request.action_mask = facts.mask.clone();
    let registry = registry_facts(&facts.settings, facts.from.as_ref(), facts.to.as_ref(), &request.to.id);
    request.registry = Some(registry);
    if let Some(grant) = parent_grant {
        request.parent_mandate = available_mandate(parent_token.mandate(), grant);
    }
    request.from.trust = facts.from.as_ref().map_or(0, AgentRecord::trust_score);
    request.to.trust = facts.to.as_ref().map_or(0, AgentRecord::trust_score);
    request
}

/// What the gateway's records say about one delegation, read in one snapshot.
struct Facts {
    settings: AuthoritySettings,
    from: Option<AgentRecord>,
    to: Option<AgentRecord>,
    parent: Option<escrow::Grant>,
    exception: Option<DepthException>,
    /// The tenant's action mask (its toolset RISK_POINTS budgets), the facts of the policy's
    /// action-mask rule; `None` when the tenant masks nothing.
    mask: Option<sbd_policy::ActionMask>,
    replay: Option<Stored>,
}

/// Stores the response sent under idempotency `key` and the trace event its receipt is of;
/// `false` when the key has one already (a concurrent twin committed first).
fn store_response(store: &dyn DelegationStore, tenant: &str, key: &str, request_hash: &str, response: &str, trace_seq: i64, now: i64) -> GatewayResult<bool> {
    let stored = Stored { request_hash: request_hash.into(), response: response.into(), trace_seq: Some(trace_seq) };
    store.insert_delegation_response(tenant, key, &stored, now)
}

/// `body` (a JSON object's text) with `"receipt"` added as its last member.
fn with_receipt(body: String, receipt: Option<&traces::Receipt>) -> GatewayResult<String> {
    let Some(receipt) = receipt else { return Ok(body) };
    let Some(open) = body.strip_suffix('}') else {
        return Err(GatewayError::internal("a stored delegation response is not a JSON object"));
    };
    let receipt = serde_json::to_string(receipt).map_err(GatewayError::internal)?;
    let separator = if open.trim_end().ends_with('{') { "" } else { "," };
    Ok(format!("{open}{separator}\"receipt\":{receipt}}}"))
}

/// The idempotency key of a delegation named by its token and request alone.
fn implicit_key(request_hash: &str) -> String {
    format!("implicit:{request_hash}")
}

/// Where a delegation sent with `X-Idempotency-Key: key` by API key `key_id` is recorded. An
/// explicit key is its sender's own: were the names shared by the tenant, one key holder
/// could take a name another is about to use (every request of the other under it refused as
/// a mismatch), or send `implicit:<digest>` and take another's token-and-request record.
/// A hop that changed state is also recorded under its implicit key, so a retry of it is a
/// replay whatever key it carries.
fn explicit_key_of(key_id: &str, key: &str) -> String {
    format!("explicit:{key_id}:{key}")
}

/// The stored response for `key`, else, for an explicit key, the one stored for the same token
/// and request: a fresh `X-Idempotency-Key` does not make a replayed delegation new.
fn stored_replay(store: &dyn DelegationStore, tenant: &str, key: &str, request_hash: &str) -> GatewayResult<Option<Stored>> {
    if let Some(stored) = store.delegation_response(tenant, key)? {
        return Ok(Some(stored));
    }
    let implicit = implicit_key(request_hash);
    if key == implicit {
        return Ok(None);
    }
    store.delegation_response(tenant, &implicit)
}

/// Loads depth exception `id` for `tenant` and `chain`, as the policy takes it.
pub fn load_exception(store: &dyn DelegationStore, tenant: &str, chain: &str, id: &str) -> GatewayResult<DepthException> {
    let Some(row) = store.depth_exception(tenant, id)? else {
        return Err(GatewayError::not_found(format!("depth exception `{id}` not found")));
    };
    if row.chain_id != chain {
        return Err(GatewayError::forbidden(format!("depth exception `{id}` was approved for another chain")));
    }
    Ok(DepthException {
        approved_by: row.approved_by,
        justification: row.justification,
        extra_depth: u8::try_from(row.extra_depth).unwrap_or(0),
        expires_at: u64::try_from(row.expires_at_ms).unwrap_or(0),
    })
}

/// What the tenant's registry says of a hop's two agents (`to`: the delegate's canonical id),
/// the facts of the policy's registry rule, which decides on them.
fn registry_facts(s: &AuthoritySettings, from: Option<&AgentRecord>, to_record: Option<&AgentRecord>, to: &str) -> RegistryFacts {
    RegistryFacts {
        delegator_registered: from.is_some(),
        delegate_registered: to_record.is_some(),
        unregistered: match s.unregistered {
            Unregistered::Deny => UnregisteredRule::Deny,
            Unregistered::Escalate => UnregisteredRule::Escalate,
        },
        reviewer: s.reviewer.clone(),
        explicit_delegation: s.require_explicit_delegation,
        delegate_listed: from.is_some_and(|f| f.delegates.iter().any(|d| d == to)),
    }
}

/// The parent mandate the rules see: the token's, with each budget cut to what the parent's
/// escrow still has (a sibling's hold or the parent's own spend is no longer available).
fn available_mandate(token_mandate: &Mandate, parent: &escrow::Grant) -> Mandate {
    let mut m = token_mandate.clone();
    for b in &mut m.budgets {
        let left = parent.units.iter().find(|u| u.unit == unit_of(b.unit)).map_or(0, |u| u.available);
        b.amount = b.amount.min(u64::try_from(left).unwrap_or(0));
    }
    m
}

/// The gateway's parts that a delegation is decided and recorded with.
pub struct Delegations<'a> {
    /// The store: registry, escrow, exceptions, idempotency records, trace.
    pub store: &'a Backend,
    /// The active policy: the component whose rules decide.
    pub policy: &'a dyn PolicyHandle,
    /// Verifies presented tokens, signs children's.
    pub tokens: &'a TokenAuthority,
    /// The limits and the escalation TTL.
    pub config: &'a Config,
    /// Decision counters and timings.
    pub metrics: &'a Metrics,
}

/// One `POST /v1/delegations` as the API layer hands it over.
pub struct DelegationCall {
    /// The body.
    pub body: DelegationBody,
    /// The caller's `X-Idempotency-Key` as sent, if one was (checked here: 1-256 bytes).
    pub idempotency_key: Option<String>,
    /// The HTTP request's id, kept with an escalation this delegation queues.
    pub request_id: Option<String>,
    /// The HTTP request's trace id, likewise.
    pub trace_id: Option<String>,
}

impl Delegations<'_> {
    /// Decides one delegation for `principal` and records it: the answer's JSON text (the
    /// verdict, the grant, the child's token and the trace receipt), the same bytes for the
    /// first answer and every replay of it.
    ///
    /// The steps, in order: read the caller's request ([`Self::claimed`]); verify the presented
    /// token; read the facts the rules decide on ([`Self::facts`]), answering a replay from
    /// its stored response; anchor the hop in its parent grant ([`Self::anchor`]); assemble
    /// the request the rules see ([`Self::assembled`]); decide ([`Self::decide`]); sign the
    /// child's token on allow; and record everything in one store transaction ([`record`]).
    pub async fn delegate(&self, principal: &Principal, call: DelegationCall) -> GatewayResult<String> {
        let DelegationCall { body, idempotency_key: explicit_key, request_id, trace_id } = call;
        let DelegationBody { token, request, chain_id: open_chain_id, depth_exception_id, subject } = body;
        let tenant = principal.tenant.as_str();
        let now = now_ms();
        let now_u = u64::try_from(now).unwrap_or(0);
        let claimed = self.claimed(principal, request, subject.as_ref(), now)?;

        // The chain's authority: the presented token (or, where the tenant allows open roots, a
        // root grant minted now from the caller's own parent mandate).
        let presented = match &token {
            Some(t) => {
                if open_chain_id.is_some() {
                    return Err(GatewayError::invalid("`chain_id` comes from the token; send one or the other"));
                }
                Some(self.tokens.verify(t, tenant, now_u)?)
            }
            None => None,
        };
        let request_hash =
            request_hash(presented.as_ref(), &claimed.request, depth_exception_id.as_deref(), open_chain_id.as_deref(), subject.as_ref())?;
        if explicit_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
            return Err(GatewayError::invalid("`X-Idempotency-Key` must be 1-256 characters"));
        }
        let idem_key = match &explicit_key {
            Some(key) => explicit_key_of(&principal.key_id, key),
            None => implicit_key(&request_hash),
        };
        let chain = match (&presented, &open_chain_id) {
            (Some(t), _) => t.chain_id(),
            (None, Some(id)) => tokens::parse_chain_id(id).ok_or_else(|| GatewayError::invalid("`chain_id` must be 32 lowercase hex characters"))?,
            (None, None) => tokens::new_chain_id()?,
        };
        let chain_id = chain.to_string();

        let mut facts = self.facts(FactsQuery {
            tenant: tenant.to_string(),
            from_id: claimed.from_id.clone(),
            to_id: claimed.to_id.clone(),
            risk: claimed.request.task.risk,
            parent_ids: presented.as_ref().map(tokens::grant_ids),
            exception_id: depth_exception_id,
            chain_id: chain_id.clone(),
            idem_key: idem_key.clone(),
            request_hash: request_hash.clone(),
        })
        .await?;
        if let Some(stored) = facts.replay.take() {
            return self.replayed(tenant, stored, &request_hash).await;
        }
        let (parent_token, parent_grant) = self.anchor(presented, facts.parent.take(), &facts.settings, &claimed, chain, tenant, now_u)?;
        let request = assembled(claimed, &facts, &parent_token, parent_grant.as_ref());
        let (verdict, version) = self.decide(&request);

        // Sign the child's token before the write (off the store's thread); it is handed out only
        // if the write commits, and is unusable otherwise (its grant would not exist).
        let child = match &verdict {
            Verdict::Allow(grant) => {
                let approved_by = facts
                    .exception
                    .as_ref()
                    .filter(|_| grant.max_depth > parent_token.max_depth())
                    .map(|e| e.approved_by.as_str());
                Some(self.tokens.issue(&parent_token, tenant, &request, grant, approved_by)?)
            }
            _ => None,
        };
        let plan = Plan {
            tenant: tenant.to_string(),
            chain_id,
            request,
            verdict,
            policy_version: version.label(),
            subject: subject.unwrap_or_default(),
            now,
            escalation_ttl_ms: self.config.escalation_ttl_ms,
            request_id,
            trace_id,
            open_root: if parent_grant.is_none() { Some(parent_token.clone()) } else { None },
            // The id the parent's grant is stored under (a store from before time-ordered ids
            // keeps the former form); an open root's is minted now.
            parent_grant_id: parent_grant.as_ref().map_or_else(|| grant_id(&parent_token), |g| g.grant_id.clone()),
            parent_token,
            child,
            idem_key,
            request_hash: request_hash.clone(),
            store_idempotency: explicit_key.is_some(),
            signer: self.tokens.signing_key().clone(),
        };
        let (recorded, seal) = self.store.unit_sealed(&plan.tenant.clone(), move |conn| record(conn, &plan)).await?;
        let (body, receipt, decision, reason, warnings) = match recorded {
            Recorded::Replay(stored) => return self.replayed(tenant, stored, &request_hash).await,
            Recorded::Decided { body, appended, decision, reason, warnings } => {
                let seal = seal.ok_or_else(|| GatewayError::internal("a delegation's trace event was committed without a seal"))?;
                (body, seal.receipt(&appended), decision, reason, warnings)
            }
        };
        self.metrics.decisions.with_label_values(&[decision, reason.unwrap_or("none")]).inc();
        if decision == "escalate" {
            self.metrics.escalations.with_label_values(&["CREATED"]).inc();
        }
        // Warnings of a granted hop (1101 depth-warning at 75% of the limit) are trace events
        // (appended by `record`) and a counter, so operators see them, not only the caller.
        for name in warnings {
            self.metrics.delegation_warnings.with_label_values(&[name]).inc();
        }
        with_receipt(body, Some(&receipt))
    }

    /// Reads and checks the caller's request: strict JSON with the gateway's clock as `now`,
    /// within the request limits, the subject's levels, canonical agent ids, and an agent key
    /// delegating only as its own agent.
    fn claimed(&self, principal: &Principal, mut raw: Value, subject: Option<&Subject>, now: i64) -> GatewayResult<Claimed> {
        let Some(obj) = raw.as_object_mut() else {
            return Err(GatewayError::invalid("`request` must be a JSON object (an sbd delegation request)"));
        };
        if obj.get("depth_exception").is_some_and(|v| !v.is_null()) {
            return Err(GatewayError::invalid(
                "`request.depth_exception` is set by the gateway from an approver's record: name it with `depth_exception_id`",
            ));
        }
        obj.insert("now".into(), json!(now));
        let chain_given = obj.get("chain").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
        if !obj.contains_key("chain") {
            obj.insert("chain".into(), json!([]));
        }
        let request: Request = crate::strict_json::from_value(raw)
            .map_err(|e| GatewayError::invalid(format!("invalid `request`: {}", e.under("$.request"))))?;
        self.config.limits.request.check(&request)?;
        if let Some(s) = subject {
            if s.tenant.is_some() || s.agent.is_some() || s.toolset.is_some() {
                return Err(GatewayError::invalid("`subject` may carry only workspace, app and workflow"));
            }
            for (level, v) in s.levels() {
                if let Some(v) = v
                    && !valid_scope_value(v)
                {
                    return Err(GatewayError::invalid(format!("`subject.{level}` must match ^[a-zA-Z0-9_.-]+$")));
                }
            }
        }
        let from_id = canonical("request.from.id", &request.from.id)?;
        let to_id = canonical("request.to.id", &request.to.id)?;
        // An agent key speaks for one agent: it delegates only as that agent.
        if principal.role == Role::Agent && canonical("principal", &principal.name).ok().as_deref() != Some(from_id.as_str()) {
            return Err(GatewayError::forbidden(format!(
                "this API key speaks for agent `{}`; it cannot delegate as `{from_id}`",
                principal.name
            )));
        }
        Ok(Claimed { request, from_id, to_id, chain_given })
    }

    /// The facts of one delegation, read in one snapshot on a reader connection.
    async fn facts(&self, q: FactsQuery) -> GatewayResult<Facts> {
        self.store.read(&q.tenant.clone(), move |conn| {
            let t = &q.tenant;
            Ok(Facts {
                settings: registry::settings(conn, t)?,
                from: conn.agent(t, &q.from_id)?,
                to: conn.agent(t, &q.to_id)?,
                parent: match &q.parent_ids {
                    Some(ids) => escrow::load_any(conn, t, ids)?,
                    None => None,
                },
                exception: match &q.exception_id {
                    Some(id) => Some(load_exception(conn, t, &q.chain_id, id)?),
                    None => None,
                },
                mask: action_mask(conn, t, q.risk)?,
                replay: stored_replay(conn, t, &q.idem_key, &q.request_hash)?,
            })
        })
        .await
    }

    /// Anchors the hop: the parent is the token's tip grant, live in the escrow (or, where the
    /// tenant allows open roots and no token was presented, a root grant minted now), held by
    /// the delegator, with the mandate and, if sent, the chain the request claims.
    #[allow(clippy::too_many_arguments, reason = "each is one fact of the anchoring, named at the one call")]
    fn anchor(
        &self,
        presented: Option<VerifiedToken>,
        parent: Option<escrow::Grant>,
        settings: &AuthoritySettings,
        claimed: &Claimed,
        chain: sbd_bundle::token::ChainId,
        tenant: &str,
        now_u: u64,
    ) -> GatewayResult<(VerifiedToken, Option<escrow::Grant>)> {
        let from_id = claimed.from_id.as_str();
        let (parent_token, parent_grant) = match (presented, parent) {
            (Some(token), Some(grant)) => {
                if grant.status != escrow::GrantStatus::Active {
                    return Err(GatewayError::forbidden(format!(
                        "the delegator's grant `{}` is {}: its token can no longer delegate",
                        grant.grant_id,
                        grant.status.as_str()
                    )));
                }
                (token, Some(grant))
            }
            (Some(token), None) => {
                return Err(GatewayError::forbidden(format!(
                    "the token's grant `{}` is not known to this gateway's escrow",
                    grant_id(&token)
                )));
            }
            (None, _) if !settings.open_roots => {
                return Err(GatewayError::forbidden(
                    "a chain starts from a root grant: present the token an operator issued with POST /v1/root-grants \
                     (or the token of your own delegation)",
                ));
            }
            (None, _) => {
                if claimed.chain_given {
                    return Err(GatewayError::invalid("an open root is a first hop: `request.chain` must be empty"));
                }
                // The same bound as an operator's root grant: its hold lasts at most this long.
                let max = self.config.limits.max_root_grant_ms;
                if claimed.request.parent_mandate.expires_at > now_u.saturating_add(max) {
                    return Err(GatewayError::invalid(format!(
                        "`request.parent_mandate.expires_at` is more than {max} ms away: an open root lasts at most `limits.max_root_grant_ms`"
                    )));
                }
                let token =
                    self.tokens.grant_root(chain, tenant, &format!("open-root:{from_id}"), from_id, &claimed.request.parent_mandate, now_u)?;
                (token, None)
            }
        };
        if parent_token.holder() != from_id {
            return Err(GatewayError::forbidden(format!(
                "the delegation token was granted to `{}`, not to `{from_id}`",
                parent_token.holder()
            )));
        }
        if claimed.request.parent_mandate != *parent_token.mandate() {
            return Err(GatewayError::forbidden("the delegation token does not match the request: the parent mandate is not the token's"));
        }
        if claimed.chain_given {
            let links = tokens::links_of(&parent_token);
            let same = claimed.request.chain.len() == links.len()
                && claimed.request.chain.iter().zip(&links).all(|(c, l)| {
                    canonical("request.chain", &c.from).is_ok_and(|f| f == l.from)
                        && canonical("request.chain", &c.to).is_ok_and(|t| t == l.to)
                        && c.depth == l.depth
                        && c.at == l.at
                });
            if !same {
                return Err(GatewayError::forbidden(
                    "the delegation token does not match the request: `request.chain` differs from the token's signed links (agents, depths or times)",
                ));
            }
        }
        Ok((parent_token, parent_grant))
    }

    /// The policy component's verdict and the policy version it came from. Timed per verdict.
    fn decide(&self, request: &Request) -> (Verdict, crate::policy::PolicyVersion) {
        let started = Instant::now();
        let (verdict, version) = self.policy.evaluate(request);
        self.metrics.decision_seconds.with_label_values(&[verdict_name(&verdict)]).observe(started.elapsed().as_secs_f64());
        (verdict, version)
    }

    /// The stored answer to a replayed delegation, with its receipt made again from the committed
    /// seal (read after the write that found the replay, so a twin from the same batch is sealed).
    async fn replayed(&self, tenant: &str, stored: Stored, request_hash: &str) -> GatewayResult<String> {
        if stored.request_hash != request_hash {
            return Err(GatewayError::new(
                ErrorCode::IdempotencyMismatch,
                "this idempotency key was used with a different delegation request",
            ));
        }
        let key = self.tokens.public_key();
        let receipt = match stored.trace_seq {
            Some(seq) => Some(
                self.store
                    .read(tenant, {
                        let tenant = tenant.to_string();
                        move |conn| traces::receipt(conn, &tenant, seq, &key)
                    })
                    .await?
                    .ok_or_else(|| GatewayError::internal(format!("the trace event {seq} of a stored delegation has no seal")))?,
            ),
            None => None,
        };
        with_receipt(stored.response, receipt.as_ref())
    }
}

struct Plan {
    tenant: String,
    chain_id: String,
    request: Request,
    verdict: Verdict,
    policy_version: String,
    subject: Subject,
    now: i64,
    escalation_ttl_ms: i64,
    request_id: Option<String>,
    trace_id: Option<String>,
    /// The parent's token (the root grant minted for an open root).
    parent_token: VerifiedToken,
    /// The id of the parent's grant in the escrow.
    parent_grant_id: String,
    /// Set for an open root: the root grant to record before the hop.
    open_root: Option<VerifiedToken>,
    /// The child's token, for an allow.
    child: Option<VerifiedToken>,
    idem_key: String,
    request_hash: String,
    /// Store every response (an explicit key) or only those that changed state (implicit).
    store_idempotency: bool,
    /// Signs the batch's trace seal (see `traces::seal_pending`).
    signer: sbd_bundle::KeyPair,
}

/// What [`record`] did: the response it stored and sends, or the stored response of a twin
/// that committed first.
enum Recorded {
    Decided {
        /// The response's JSON text, without its receipt.
        body: String,
        /// The decision's trace event, for the receipt.
        appended: traces::Appended,
        decision: &'static str,
        reason: Option<&'static str>,
        /// The names of the granted hop's warnings.
        warnings: Vec<&'static str>,
    },
    Replay(Stored),
}

/// The tenant's action mask: its toolset RISK_POINTS budgets (`tenant:T/toolset:X`) with what
/// each has left, and the cost of a task of `risk`; `None` when the tenant has no such budget
/// (it masks nothing). The policy's action-mask rule decides on these facts.
fn action_mask(conn: &dyn Tx, tenant: &str, risk: sbd_policy::RiskLevel) -> GatewayResult<Option<sbd_policy::ActionMask>> {
    let from = format!("tenant:{tenant}/toolset:");
    let mut toolsets = Vec::new();
    for b in conn.budgets_with_prefix(tenant, Unit::RiskPoints, &from)? {
        let Some(toolset) = b.scope.strip_prefix(&from).filter(|t| !t.contains('/')) else { continue };
        // A frozen or closed toolset budget has nothing to spend: the rule refuses with 6005.
        let left = if b.status == "ACTIVE" {
            i128::from(b.allocated) - i128::from(b.spent) - i128::from(b.reserved) - i128::from(b.debt)
        } else {
            0
        };
        // An over-spent budget (debt) has nothing left.
        toolsets.push(sbd_policy::ToolsetBudget { toolset: toolset.to_string(), remaining: u64::try_from(left).unwrap_or(0) });
    }
    if toolsets.is_empty() {
        return Ok(None);
    }
    Ok(Some(sbd_policy::ActionMask { toolsets, cost: risk_points(risk).unsigned_abs() }))
}

/// Spends the task's risk cost on its toolset budget when the policy decided under a mask: a
/// reservation on exactly `tenant:T/toolset:X` (the budget the rule's facts came from; the
/// caller's `subject` levels do not move it), committed at once in the same job as the grant,
/// so the points are gone for good, not held until the grant expires. A spend refused here (a
/// concurrent delegation took the points after the facts were read) fails the whole job with
/// the ledger's 409 `BUDGET_EXCEEDED`, and nothing is recorded.
pub fn spend_mask(conn: &dyn Tx, tenant: &str, chain_id: &str, request: &Request, now: i64) -> GatewayResult<Option<MaskSpend>> {
    let Some(mask) = &request.action_mask else { return Ok(None) };
    let cost = i64::try_from(mask.cost).map_err(|_| GatewayError::internal("an action-mask cost over int64"))?;
    let task = &request.task;
    let req = ReserveRequest {
        idempotency_key: new_id("dlg_"),
        subject: Subject {
            tenant: Some(tenant.to_string()),
            toolset: Some(toolset_of(&task.action_kind).to_string()),
            ..Subject::default()
        },
        action: Action { kind: task.action_kind.clone(), name: task.id.clone(), tags: None },
        estimate: Amount::new(Unit::RiskPoints, cost),
        ttl_ms: Some(60_000),
        grace_period_ms: None,
        overage_policy: None,
        dry_run: None,
        // The gateway's own holds are always enforced, whatever the tenant's observe mode.
        observe_mode: Some(crate::cycles::ObserveMode::Enforce),
        metadata: Some(metadata(&[
            ("chain_id", chain_id),
            ("delegator", &request.from.id),
            ("delegate", &request.to.id),
            ("kind", "action-mask"),
        ])),
    };
    let hash = ledger::request_hash(&req, "")?;
    let reserved = ledger::reserve(conn, tenant, &req, &hash, now)?;
    let id = reserved.reservation_id.ok_or_else(|| GatewayError::internal("an action-mask reservation was not made"))?;
    let commit = CommitRequest { idempotency_key: new_id("dlg_"), actual: req.estimate, metrics: None, metadata: None };
    let hash = ledger::request_hash(&commit, &id)?;
    // Committed right after it was made, so it cannot have expired; a refusal fails the hop.
    ledger::commit(conn, tenant, &id, &commit, &hash, now)?.into_result()?;
    Ok(Some(MaskSpend { kind: HoldKind::ActionMask, reservation_id: id, spent: req.estimate }))
}

/// What the action mask spent on a granted hop ([`spend_mask`]): the task's risk points,
/// reserved on its toolset budget and committed at once. Answered under `reservations`, kept
/// in the hop's trace event and in an approved escalation's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskSpend {
    /// What the reservation was for.
    pub kind: HoldKind,
    /// The committed reservation.
    pub reservation_id: String,
    /// The risk points spent.
    pub spent: Amount,
}

/// Why the gateway itself holds or spends budget on a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldKind {
    /// The action mask's risk points.
    ActionMask,
}

/// One budget of a root grant held from the tenant's own: a Cycles reservation that only the
/// grant tree settles ([`ledger::ROOT_GRANT_HOLD`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootHold {
    /// The amount held.
    pub amount: i64,
    /// The reservation holding it.
    pub reservation_id: String,
    /// Its unit.
    pub unit: Unit,
}

/// What [`record_root`] wrote: the root's grant and its holds on the tenant's budgets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootRecorded {
    /// The root grant's id.
    pub grant_id: String,
    /// One hold per non-zero budget of the mandate.
    pub reservations: Vec<RootHold>,
}

/// The trace body of a root grant.
#[derive(Serialize)]
struct RootGrantEvent<'a> {
    grant_id: &'a str,
    mandate: &'a Mandate,
    reservations: &'a [RootHold],
}

/// The trace body of a warning a granted hop carried (`of_seq`: the hop's own event).
#[derive(Serialize)]
struct WarningEvent<'a> {
    message: &'a str,
    of_seq: i64,
    warning: &'static str,
}

/// A Cycles `metadata` object of string values, for the reservations the gateway makes itself.
fn metadata(pairs: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string()))).collect()
}

/// The action-mask rule at an approval: the facts are read again (points spent since the hop
/// escalated count), the policy's own rule decides, and a refusal names its reason code.
pub fn recheck_mask(conn: &dyn Tx, tenant: &str, request: &mut Request) -> GatewayResult<()> {
    request.action_mask = action_mask(conn, tenant, request.task.risk)?;
    let mask = request.action_mask.as_ref().map(sbd_policy::ActionMask::fields);
    sbd_policy::attenuation::check_action_mask(mask, &request.task.view()).map_err(|d| {
        GatewayError::new(
            ErrorCode::BudgetExceeded,
            format!("the action mask refuses this delegation now ({} {}): {}", d.reason.code(), d.reason.name(), d.message),
        )
    })
}

/// Records a root grant: its escrow node, the Cycles reservations holding its budgets from the
/// tenant's, and the trace's first event. Shared by operator-issued and open roots.
pub fn record_root(
    conn: &dyn Tx,
    tenant: &str,
    token: &VerifiedToken,
    subject: &Subject,
    policy_version: &str,
    now: i64,
    signer: &sbd_bundle::KeyPair,
) -> GatewayResult<RootRecorded> {
    let mandate = token.mandate();
    let chain_id = token.chain_id().to_string();
    let root_id = grant_id(token);
    let budgets = budgets_of(mandate)?;
    let expires = i64::try_from(mandate.expires_at).unwrap_or(i64::MAX);
    escrow::insert(conn, &NewGrant {
        tenant,
        grant_id: &root_id,
        chain_id: &chain_id,
        parent_id: None,
        holder: token.holder(),
        depth: 0,
        expires_at_ms: expires,
        now,
        budgets: &budgets,
    })?;
    let mut reservations = Vec::new();
    for (unit, amount) in &budgets {
        if *amount == 0 {
            continue;
        }
        let req = ReserveRequest {
            idempotency_key: new_id("root_"),
            subject: Subject {
                tenant: Some(tenant.to_string()),
                workspace: subject.workspace.clone(),
                app: subject.app.clone(),
                workflow: subject.workflow.clone(),
                agent: Some(token.holder().to_string()),
                ..Subject::default()
            },
            action: Action { kind: "delegation.root-grant".into(), name: chain_id.clone(), tags: None },
            estimate: Amount::new(*unit, *amount),
            ttl_ms: Some(expires.saturating_sub(now).clamp(1000, 86_400_000)),
            grace_period_ms: None,
            overage_policy: None,
            dry_run: None,
            // The gateway's own holds are always enforced, whatever the tenant's observe mode.
            observe_mode: Some(crate::cycles::ObserveMode::Enforce),
            metadata: Some(metadata(&[("chain_id", &chain_id), ("grant_id", &root_id)])),
        };
        let hash = ledger::request_hash(&req, "")?;
        // owned by no API key: it settles only with the grant tree (ledger::ROOT_GRANT_HOLD)
        let r = ledger::reserve_as(conn, tenant, Some(ledger::ROOT_GRANT_HOLD), &req, &hash, now)?;
        let rid = r.reservation_id.ok_or_else(|| GatewayError::internal("a root grant reservation was not made"))?;
        escrow::set_reservation(conn, tenant, &root_id, *unit, &rid)?;
        reservations.push(RootHold { amount: *amount, reservation_id: rid, unit: *unit });
    }
    let issuer = token.blocks().next().map(|b| b.from.clone()).unwrap_or_default();
    traces::append(conn, &NewEvent {
        tenant,
        chain_id: &chain_id,
        delegator: &issuer,
        delegate: token.holder(),
        depth: 0,
        at_ms: now,
        decision: "root-grant",
        reason_code: None,
        policy_version,
        body: serde_json::to_string(&RootGrantEvent { grant_id: &root_id, mandate, reservations: &reservations })
            .map_err(GatewayError::internal)?,
    }, signer)?;
    Ok(RootRecorded { grant_id: root_id, reservations })
}

/// What a granted hop wrote: the child's grant, token and escrow (and its action-mask hold).
struct Granted {
    grant_id: String,
    child_token: String,
    escrow: Vec<Escrowed>,
    reservations: Option<Vec<MaskSpend>>,
}

/// The trace body of a delegation decision (serialised straight from the decision, without
/// an intermediate JSON tree).
#[derive(Serialize)]
struct DecisionEvent<'a> {
    task: &'a sbd_policy::Task,
    delegator_trust: u16,
    delegate_trust: u16,
    verdict: &'a Verdict,
    parent_grant_id: &'a str,
    request_id: Option<&'a str>,
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    escrow: Option<&'a [Escrowed]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservations: Option<&'a [MaskSpend]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    escalation_id: Option<&'a str>,
}

/// The body of a `POST /v1/delegations` answer (and of its replays, which send the stored text).
#[derive(Serialize)]
struct DecisionResponse<'a> {
    chain_id: &'a str,
    seq: i64,
    decision: &'static str,
    reason: Option<&'static str>,
    verdict: &'a Verdict,
    policy_version: &'a str,
    parent_grant_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    escrow: Option<&'a [Escrowed]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservations: Option<&'a [MaskSpend]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    escalation: Option<&'a escalations::EscalationRecord>,
}

/// Writes one decided hop. A hop refused by a write (its hold, open root or action mask found
/// taken) may have lost a race to a concurrent twin of itself: if the twin's response is
/// stored by now, this job is undone and answers with it, as a replay would.
fn record(conn: &dyn Tx, p: &Plan) -> GatewayResult<Recorded> {
    let (tenant, key, request_hash) = (p.tenant.clone(), p.idem_key.clone(), p.request_hash.clone());
    match record_hop(conn, p) {
        Err(e) => match stored_replay(conn, &tenant, &key, &request_hash)? {
            Some(stored) => {
                conn.rollback()?;
                Ok(Recorded::Replay(stored))
            }
            None => Err(e),
        },
        recorded => recorded,
    }
}

fn record_hop(conn: &dyn Tx, p: &Plan) -> GatewayResult<Recorded> {
    // the verdict may turn into a refusal below (escrow exhausted); the plan stays as made, so
    // a unit run again (a Redis lock that lapsed) starts from it
    let mut verdict = p.verdict.clone();
    // A concurrent twin may have committed since the facts were read. A hop that changes
    // state finds out at its idempotency insert (below) and rolls back; a denial stores no
    // record under an implicit key, so it looks first.
    if matches!(verdict, Verdict::Deny(_))
        && let Some(stored) = stored_replay(conn, &p.tenant, &p.idem_key, &p.request_hash)?
    {
        return Ok(Recorded::Replay(stored));
    }
    if let Some(root) = &p.open_root {
        record_root(conn, &p.tenant, root, &p.subject, &p.policy_version, p.now, &p.signer)?;
    }
    let parent_id = p.parent_grant_id.clone();
    let mut granted: Option<Granted> = None;
    let mut escalation: Option<escalations::EscalationRecord> = None;
    match (&verdict, &p.child) {
        (Verdict::Allow(grant), Some(child)) => {
            let child_id = grant_id(child);
            let budgets = budgets_of(&grant.child_mandate)?;
            let carved = escrow::insert(conn, &NewGrant {
                tenant: &p.tenant,
                grant_id: &child_id,
                chain_id: &p.chain_id,
                parent_id: Some(&parent_id),
                holder: &p.request.to.id,
                depth: i64::from(grant.depth),
                expires_at_ms: i64::try_from(grant.child_mandate.expires_at).unwrap_or(i64::MAX),
                now: p.now,
                budgets: &budgets,
            });
            match carved {
                Ok(()) => {
                    // A refused action mask fails the whole job: the carve rolls back with it.
                    let mask = spend_mask(conn, &p.tenant, &p.chain_id, &p.request, p.now)?;
                    granted = Some(Granted {
                        grant_id: child_id,
                        child_token: child.encode(),
                        escrow: budgets.iter().map(|(unit, amount)| Escrowed { unit: unit.as_str().to_string(), amount: *amount }).collect(),
                        reservations: mask.map(|m| vec![m]),
                    });
                }
                Err(e) if e.code == ErrorCode::BudgetExceeded => {
                    // The twin that took the budget may be this very request.
                    if let Some(stored) = stored_replay(conn, &p.tenant, &p.idem_key, &p.request_hash)? {
                        return Ok(Recorded::Replay(stored));
                    }
                    verdict = Verdict::Deny(Denial { reason: Reason::EscrowExhausted, message: e.message });
                }
                Err(e) => return Err(e),
            }
        }
        (Verdict::Escalate(esc), _) => {
            let pending = escalations::PendingDelegation {
                request: p.request.clone(),
                parent_token: p.parent_token.encode(),
                parent_grant_id: parent_id.clone(),
            };
            escalation = Some(escalations::open(conn, &escalations::NewEscalation {
                tenant: &p.tenant,
                chain_id: &p.chain_id,
                escalation: esc,
                request: &p.request,
                now: p.now,
                ttl_ms: p.escalation_ttl_ms,
                pending: Some(pending),
            })?);
        }
        _ => {}
    }
    let decision = verdict_name(&verdict);
    let reason = verdict.reason();
    let r = &p.request;
    let event = DecisionEvent {
        task: &r.task,
        delegator_trust: r.from.trust,
        delegate_trust: r.to.trust,
        verdict: &verdict,
        parent_grant_id: &parent_id,
        request_id: p.request_id.as_deref(),
        trace_id: p.trace_id.as_deref(),
        grant_id: granted.as_ref().map(|g| g.grant_id.as_str()),
        escrow: granted.as_ref().map(|g| g.escrow.as_slice()),
        reservations: granted.as_ref().and_then(|g| g.reservations.as_deref()),
        escalation_id: escalation.as_ref().map(|e| e.id.as_str()),
    };
    let depth = i64::try_from(r.hop_depth()).unwrap_or(i64::MAX);
    let appended = traces::append(conn, &NewEvent {
        tenant: &p.tenant,
        chain_id: &p.chain_id,
        delegator: &r.from.id,
        delegate: &r.to.id,
        depth,
        at_ms: p.now,
        decision,
        reason_code: reason.map(|x| x.code()),
        policy_version: &p.policy_version,
        body: serde_json::to_string(&event).map_err(GatewayError::internal)?,
    }, &p.signer)?;
    if let Verdict::Allow(grant) = &verdict {
        for w in &grant.warnings {
            traces::append(conn, &NewEvent {
                tenant: &p.tenant,
                chain_id: &p.chain_id,
                delegator: &r.from.id,
                delegate: &r.to.id,
                depth,
                at_ms: p.now,
                decision: "warning",
                reason_code: Some(w.reason.code()),
                policy_version: &p.policy_version,
                body: serde_json::to_string(&WarningEvent { message: &w.message, of_seq: appended.seq, warning: w.reason.name() })
                    .map_err(GatewayError::internal)?,
            }, &p.signer)?;
        }
    }
    let body = serde_json::to_string(&DecisionResponse {
        chain_id: &p.chain_id,
        seq: appended.seq,
        decision,
        reason: reason.map(|x| x.name()),
        verdict: &verdict,
        policy_version: &p.policy_version,
        parent_grant_id: &parent_id,
        grant_id: event.grant_id,
        child_token: granted.as_ref().map(|g| g.child_token.as_str()),
        escrow: event.escrow,
        reservations: event.reservations,
        escalation: escalation.as_ref(),
    })
    .map_err(GatewayError::internal)?;
    // Under an explicit key, a hop that changed state is also the answer to its token and
    // request under any other key. A key taken already means a twin committed first: this
    // job's writes are undone and the twin's response is the answer.
    let mut keys = Vec::with_capacity(2);
    if p.store_idempotency || decision != "deny" {
        keys.push(p.idem_key.clone());
    }
    if p.store_idempotency && decision != "deny" {
        keys.push(implicit_key(&p.request_hash));
    }
    for key in &keys {
        if !store_response(conn, &p.tenant, key, &p.request_hash, &body, appended.seq, p.now)? {
            conn.rollback()?;
            return match stored_replay(conn, &p.tenant, &p.idem_key, &p.request_hash)? {
                Some(stored) => Ok(Recorded::Replay(stored)),
                None => Err(GatewayError::internal("an idempotency key was taken, and its record is not readable")),
            };
        }
    }
    let warnings = match &verdict {
        Verdict::Allow(grant) => grant.warnings.iter().map(|w| w.reason.name()).collect(),
        _ => Vec::new(),
    };
    Ok(Recorded::Decided { body, appended, decision, reason: reason.map(|x| x.name()), warnings })
}

/// The body of an outcome report. Who reports is the key's principal, never a body field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeBody {
    /// `success` or `failure`.
    pub outcome: String,
    /// Trust gained (success) or the penalty (failure), 0-1000.
    pub magnitude: f64,
}

/// The answer to an outcome report.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeReport {
    /// The executed chain the deltas were computed for: the originator, then every delegate an
    /// allowed hop handed to.
    pub chain: Vec<String>,
    /// The chain reported on.
    pub chain_id: String,
    /// The report's trace event, proved by its seal.
    pub receipt: traces::Receipt,
    /// The report's trace event.
    pub seq: i64,
    /// The scores moved: registered agents only.
    pub trust_deltas: Vec<TrustChange>,
}

/// One registered agent's trust score moved by an outcome report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrustChange {
    /// The agent.
    pub agent: String,
    /// The policy's penalty-propagation delta.
    pub delta: f64,
    /// The score after it, within 0-1000.
    pub score: f64,
}

/// The trace body of an outcome report.
#[derive(Serialize)]
struct OutcomeEvent<'a> {
    magnitude: f64,
    outcome: &'a str,
    trust_deltas: &'a [TrustChange],
}

/// An agent's score in the registry (`GET /v1/agents/{agent_id}/trust`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrustScore {
    /// The agent's canonical id.
    pub agent: String,
    /// 0-1000.
    pub score: f64,
    /// The Vorion tier of that score.
    pub tier: sbd_policy::TrustTier,
}

/// The tenant's latest warning events (`GET /v1/warnings`), each in its readable trace form
/// ([`traces::view`]).
#[derive(Debug, Clone, Serialize)]
pub struct WarningList {
    /// Newest first.
    pub warnings: Vec<Value>,
}

/// What an outcome report needs to know about a chain's root grant.
struct ChainRoot {
    /// Its holder: the chain's originator.
    holder: String,
    /// Whether the grant is still ACTIVE.
    active: bool,
    /// Whether the root was opened by the caller itself (`open_roots`), not issued by an
    /// operator.
    open: bool,
}

/// The root grant of `chain_id`, if the chain has one.
fn chain_root(conn: &dyn Tx, tenant: &str, chain_id: &str) -> GatewayResult<Option<ChainRoot>> {
    let mut root = None;
    for id in conn.chain_grants(tenant, chain_id)? {
        if let Some(g) = conn.grant(tenant, &id)?.filter(|g| g.parent_id.is_none()) {
            root = Some(g);
            break;
        }
    }
    let Some(root) = root else { return Ok(None) };
    let events = conn.trace_events(tenant, chain_id)?;
    let issuer = events.iter().find(|e| e.decision == "root-grant").map(|e| e.delegator.as_str());
    Ok(Some(ChainRoot {
        holder: root.holder,
        active: root.status == escrow::GrantStatus::Active,
        // Open roots are issued as `open-root:<agent>`, operators' as `operator:<name>`.
        open: issuer.is_none_or(|i| i.starts_with("open-root:")),
    }))
}

/// Whether an outcome was already reported for `chain_id`.
///
/// What stands in the way depends on who reports: for the originator's agent key, any report
/// (it reports once, and first); for an operator or approver, another operator's or
/// approver's. A human's report may follow the originator's, so an originator cannot report
/// a success at once and so pre-empt the penalty of a failure a human would report. The
/// reporter's role is the first part of the trace event's `delegator` (`role:name`), written
/// from the key, never from the body.
fn outcome_reported(conn: &dyn Tx, tenant: &str, chain_id: &str, role: Role) -> GatewayResult<bool> {
    Ok(conn.trace_events(tenant, chain_id)?.iter().any(|e| {
        // as SQL's `NOT LIKE 'agent:%'` read it: ASCII case does not matter
        e.decision == "outcome" && (role == Role::Agent || !e.delegator.to_ascii_lowercase().starts_with("agent:"))
    }))
}

/// The refusal of a report [`outcome_reported`] stands in the way of.
fn duplicate_report(chain_id: &str, role: Role) -> GatewayError {
    let rule = if role == Role::Agent {
        "the originator reports once, before anyone else"
    } else {
        "one report by an operator or approver per chain"
    };
    GatewayError::new(ErrorCode::DuplicateResource, format!("an outcome was already reported for chain `{chain_id}`: {rule}"))
}

/// Query of `GET /v1/warnings`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarningsQuery {
    /// At most this many, newest first [default 100, at most 1000].
    #[serde(default)]
    pub limit: Option<i64>,
}

impl Delegations<'_> {
    /// The export of chain `chain_id` (`GET /v1/chains/{chain_id}`): every event, oldest
    /// first, with the signed head and each event's inclusion proof, and whether it verifies.
    pub async fn chain(&self, tenant: String, chain_id: String) -> GatewayResult<traces::ChainExport> {
        let key = self.tokens.public_key();
        // One read snapshot: the events and the signed head of the same commit.
        let export = self.store.read(&tenant.clone(), move |conn| {
            let records = conn.trace_events(&tenant, &chain_id)?;
            if records.is_empty() {
                return Err(GatewayError::not_found(format!("chain `{chain_id}` not found")));
            }
            let head = conn.trace_head(&tenant, &chain_id)?;
            let inclusions = traces::inclusions(conn, &tenant, &records)?;
            Ok(traces::export(&records, head, inclusions, &tenant, &chain_id, &key))
        })
        .await?;
        if !export.verified() {
            self.metrics.trace_integrity_failures.inc();
            tracing::error!(integrity = %export.integrity, "GET /v1/chains: the stored trace does not verify");
        }
        Ok(export)
    }

    /// An outcome report on a chain (`POST /v1/chains/{chain_id}/outcome`): penalty propagation through the policy's
    /// `trust-deltas`, applied to the registry's trust scores; the report is appended to the
    /// trace.
    ///
    /// Trust scores decide delegations, so who may move them is bounded: an operator, an approver,
    /// or the agent key of the chain's originator (the holder of its root grant, who is
    /// accountable for the task), and one report per chain. The originator's key reports only on
    /// a chain an operator granted and has not revoked: an open root costs its caller nothing, so
    /// a report on one would let any agent key set other agents' scores. A delegate cannot report
    /// on its own work, and no one can replay reports to walk a score up. Who may report is
    /// checked before the chain is verified (the expensive part), so only those who may report
    /// can make the gateway verify a chain.
    pub async fn report_outcome(&self, principal: &Principal, chain_id: String, body: OutcomeBody) -> GatewayResult<OutcomeReport> {
        let tenant = principal.tenant.clone();
        if !body.magnitude.is_finite() || !(0.0..=1000.0).contains(&body.magnitude) {
            return Err(GatewayError::invalid("`magnitude` must be a number in 0-1000"));
        }
        let outcome = match body.outcome.as_str() {
            "success" => Outcome::Success(body.magnitude),
            "failure" => Outcome::Failure(body.magnitude),
            other => return Err(GatewayError::invalid(format!("`outcome` must be `success` or `failure`, got `{other}`"))),
        };
        let (t, id) = (tenant.clone(), chain_id.clone());
        let role = principal.role;
        let (root, reported) =
            self.store.read(&tenant, move |conn| Ok((chain_root(conn, &t, &id)?, outcome_reported(conn, &t, &id, role)?))).await?;
        if principal.role == Role::Agent {
            let me = canonical("principal", &principal.name).ok();
            match &root {
                Some(r) if me.as_deref() == Some(r.holder.as_str()) && r.active && !r.open => {}
                Some(r) if me.as_deref() == Some(r.holder.as_str()) => {
                    return Err(GatewayError::forbidden(format!(
                        "chain `{chain_id}` {}: an agent key reports outcomes only on an active root an operator granted",
                        if r.open { "was opened by its own originator (open roots)" } else { "has a revoked or settled root grant" }
                    )));
                }
                _ => {
                    return Err(GatewayError::forbidden(format!(
                        "an agent key reports an outcome only for a chain it originated; chain `{chain_id}` was granted to `{}`",
                        root.as_ref().map_or("no one (no root grant)", |r| r.holder.as_str())
                    )));
                }
            }
        }
        let (t, id) = (tenant.clone(), chain_id.clone());
        let key = self.tokens.public_key();
        // Nothing is decided on altered history: the chain must verify (before anything else is
        // said about it, so a tampered chain is reported as such).
        let events = self.store.read(&tenant, move |conn| traces::verified_records(conn, &t, &id, &key)).await?;
        if reported {
            return Err(duplicate_report(&chain_id, role));
        }
        // The executed chain: the originator, then every delegate an allowed hop handed to.
        let mut chain: Vec<String> = Vec::new();
        for e in events.iter().filter(|e| e.decision == "allow") {
            if chain.is_empty() {
                chain.push(e.delegator.clone());
            }
            if !chain.contains(&e.delegate) {
                chain.push(e.delegate.clone());
            }
        }
        if chain.is_empty() {
            return Err(GatewayError::invalid(format!("chain `{chain_id}` has no allowed hop to report an outcome for")));
        }
        let deltas = self.policy.trust_deltas(&chain, outcome).map_err(|e| GatewayError::internal(format!("policy: {e}")))?;
        let version = self.policy.version().label();
        let now = now_ms();
        let (t, id) = (tenant.clone(), chain_id.clone());
        let reported_by = format!("{}:{}", principal.role.as_str(), principal.name);
        let signer = self.tokens.signing_key().clone();
        let outcome_name = body.outcome.clone();
        let magnitude = body.magnitude;
        let ((appended, scores), seal) = self
            .store
            .unit_sealed(&tenant, move |conn| {
                // Checked in the write itself, so two concurrent reports cannot both pass.
                if outcome_reported(conn, &t, &id, role)? {
                    return Err(duplicate_report(&id, role));
                }
                let mut scores = Vec::new();
                for d in &deltas {
                    // Only registered agents have a score to move.
                    if let Some(agent) = conn.agent(&t, &d.agent)? {
                        let score = (agent.trust + d.delta).clamp(0.0, 1000.0);
                        registry::set_trust(conn, &t, &d.agent, score, now)?;
                        scores.push(TrustChange { agent: d.agent.clone(), delta: d.delta, score });
                    }
                }
                let appended = traces::append(conn, &NewEvent {
                    tenant: &t,
                    chain_id: &id,
                    delegator: &reported_by,
                    delegate: "",
                    depth: 0,
                    at_ms: now,
                    decision: "outcome",
                    reason_code: None,
                    policy_version: &version,
                    body: serde_json::to_string(&OutcomeEvent { magnitude, outcome: &outcome_name, trust_deltas: &scores })
                        .map_err(GatewayError::internal)?,
                }, &signer)?;
                Ok((appended, scores))
            })
            .await?;
        let seal = seal.ok_or_else(|| GatewayError::internal("an outcome's trace event was committed without a seal"))?;
        Ok(OutcomeReport { chain, chain_id, receipt: seal.receipt(&appended), seq: appended.seq, trust_deltas: scores })
    }

    /// The registry's trust score of `agent` (`GET /v1/agents/{agent_id}/trust`).
    pub async fn trust(&self, tenant: String, agent: String) -> GatewayResult<TrustScore> {
        let id = canonical("agent_id", &agent)?;
        let record = self.store.read(&tenant.clone(), move |conn| conn.agent(&tenant, &id)).await?;
        match record {
            Some(a) => Ok(TrustScore { tier: a.tier(), agent: a.agent_id, score: a.trust }),
            None => Err(GatewayError::not_found(format!("`{agent}` is not in the agent registry"))),
        }
    }

    /// The tenant's latest `warning` trace events (`GET /v1/warnings`: 1101 depth-warning at 75%
    /// of the depth limit, and any other warning of a granted hop), newest first, for operators.
    pub async fn warnings(&self, tenant: String, q: WarningsQuery) -> GatewayResult<WarningList> {
        let limit = q.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(GatewayError::invalid("`limit` must be 1-1000"));
        }
        let limit = usize::try_from(limit).unwrap_or(100);
        let items = self.store.read(&tenant.clone(), move |conn| traces::warnings(conn, &tenant, limit)).await?;
        Ok(WarningList { warnings: items })
    }
}

#[cfg(test)]
#[allow(clippy::panic, reason = "a test fails by panicking, naming what it expected")]
mod tests {
    use super::*;
    use sbd_bundle::{KeyPair, TrustStore};
    use sbd_bundle::token::ChainId;

    fn mandate(tokens: u64) -> Mandate {
        Mandate {
            value_ceiling: 1_000_000,
            action_kinds: vec!["payment.*".into()],
            counterparties: vec!["acme".into()],
            budgets: vec![sbd_policy::Budget { unit: sbd_policy::BudgetUnit::Tokens, amount: tokens }],
            remaining_depth: 4,
            expires_at: 2_000_000_000_000,
        }
    }

    /// A request as a caller might send it, claiming facts that are not its to claim.
    fn claimed_request(json: serde_json::Value) -> Request {
        crate::strict_json::from_value(json).unwrap_or_else(|e| panic!("a well-formed request: {}", e.under("$")))
    }

    fn lying_request() -> serde_json::Value {
        let parent = serde_json::to_value(mandate(1_000)).unwrap_or_default();
        json!({
            "from": {"id": "Orchestrator", "trust": 1000},
            "to": {"id": "worker", "trust": 1000},
            "task": {"id": "t1", "action_kind": "payment.refund", "risk": "medium", "value": 10, "counterparty": "acme"},
            "parent_mandate": parent,
            "requested_mandate": parent,
            "chain": [{"from": "someone", "to": "orchestrator", "depth": 1, "alpha": 0.5, "at": 5}],
            "depth_exception": {"approved_by": "me", "justification": "trust me", "extra_depth": 9, "expires_at": 2_000_000_000_000u64},
            "action_mask": {"toolsets": [], "cost": 0},
            "registry": {"delegator_registered": true, "delegate_registered": true, "reviewer": "me",
                         "explicit_delegation": false, "delegate_listed": true},
            "state": [0.5],
            "now": 1_700_000_000_000u64
        })
    }

    fn record(agent: &str, trust: f64) -> AgentRecord {
        AgentRecord { agent_id: agent.into(), trust, capabilities: Vec::new(), delegates: Vec::new() }
    }

    /// The typed answers and trace bodies write the JSON values the `json!` trees they
    /// replaced wrote (same names and values; the comparison ignores key order, the one thing
    /// that changed): clients and stored escalations read them, and a mask spend reads back.
    #[test]
    fn typed_answers_and_trace_bodies_write_the_json_of_the_trees_they_replaced() {
        fn value(v: &impl Serialize) -> Value {
            serde_json::to_value(v).unwrap_or_else(|e| panic!("serialises: {e}"))
        }
        let spent = Amount::new(Unit::RiskPoints, 40);
        let spend = MaskSpend { kind: HoldKind::ActionMask, reservation_id: "res_1".into(), spent };
        let spent_json = json!({"unit": "RISK_POINTS", "amount": 40});
        assert_eq!(value(&spend), json!({"kind": "action-mask", "reservation_id": "res_1", "spent": spent_json}));
        let read: MaskSpend = serde_json::from_value(value(&spend)).unwrap_or_else(|e| panic!("reads back: {e}"));
        assert_eq!(read, spend);
        let hold = RootHold { amount: 500, reservation_id: "res_2".into(), unit: Unit::Tokens };
        assert_eq!(value(&hold), json!({"unit": "TOKENS", "amount": 500, "reservation_id": "res_2"}));
        let warning = WarningEvent { message: "deep", of_seq: 7, warning: "depth-warning" };
        assert_eq!(value(&warning), json!({"warning": "depth-warning", "message": "deep", "of_seq": 7}));
        let change = TrustChange { agent: "bot".into(), delta: -5.5, score: 794.5 };
        let outcome = OutcomeEvent { magnitude: 5.5, outcome: "failure", trust_deltas: std::slice::from_ref(&change) };
        assert_eq!(
            value(&outcome),
            json!({"outcome": "failure", "magnitude": 5.5, "trust_deltas": [{"agent": "bot", "delta": -5.5, "score": 794.5}]})
        );
        let score = TrustScore { agent: "bot".into(), score: 794.5, tier: sbd_policy::TrustTier::of_score(794) };
        assert_eq!(value(&score), json!({"agent": "bot", "score": 794.5, "tier": "T4"}));
    }

    /// Whatever the caller claims, the request the rules see carries the gateway's facts:
    /// the registry's trust, the token's chain, the tenant's action mask, the approver's
    /// exception (none here) and the parent mandate cut to what the escrow still holds.
    #[test]
    fn the_request_the_rules_see_takes_every_fact_from_the_records_not_the_caller() {
        let tokens = TokenAuthority::new(KeyPair::from_secret(&[7; 32]), TrustStore::default());
        let root = tokens
            .grant_root(ChainId([1; 16]), "t", "operator:ops", "orchestrator", &mandate(1_000), 1_700_000_000_000)
            .unwrap_or_else(|e| panic!("a root grant: {}", e.message));
        let claimed = Claimed {
            request: claimed_request(lying_request()),
            from_id: "orchestrator".into(),
            to_id: "worker".into(),
            chain_given: true,
        };
        let facts = Facts {
            settings: AuthoritySettings { require_explicit_delegation: true, ..AuthoritySettings::default() },
            from: Some(record("orchestrator", 640.4)),
            to: Some(record("worker", 12.0)),
            parent: None,
            exception: None,
            mask: None,
            replay: None,
        };
        let parent = escrow::Grant {
            grant_id: "g".into(),
            chain_id: "c".into(),
            parent_id: None,
            holder: "orchestrator".into(),
            depth: 0,
            status: escrow::GrantStatus::Active,
            expires_at_ms: 2_000_000_000_000,
            created_at_ms: 0,
            units: vec![escrow::GrantUnit { unit: Unit::Tokens, granted: 1_000, carved: 700, spent: 50, available: 250, reservation_id: None }],
        };
        let seen = assembled(claimed, &facts, &root, Some(&parent));
        assert_eq!((seen.from.id.as_str(), seen.to.id.as_str()), ("orchestrator", "worker"), "canonical ids");
        assert_eq!((seen.from.trust, seen.to.trust), (640, 12), "the registry's scores, not the claimed 1000s");
        assert_eq!(seen.chain, tokens::links_of(&root), "the token's signed links, not the claimed chain");
        assert!(seen.chain.is_empty(), "a root's token has no links");
        assert_eq!(seen.depth_exception, None, "no approver's record, no exception");
        assert_eq!(seen.action_mask, None, "the tenant masks nothing: the caller's mask is gone");
        let registry = RegistryFacts {
            delegator_registered: true,
            delegate_registered: true,
            unregistered: UnregisteredRule::Deny,
            reviewer: "human-oversight".into(),
            explicit_delegation: true,
            delegate_listed: false,
        };
        assert_eq!(seen.registry.as_ref(), Some(&registry), "the registry's facts: `worker` is not listed, the reviewer is the tenant's");
        assert_eq!(seen.parent_mandate.budget(sbd_policy::BudgetUnit::Tokens), Some(250), "cut to the escrow's available");
        // an unregistered agent has no score at all
        let facts = Facts { from: None, to: None, ..facts };
        let claimed = Claimed { request: claimed_request(lying_request()), from_id: "orchestrator".into(), to_id: "worker".into(), chain_given: true };
        let seen = assembled(claimed, &facts, &root, None);
        assert_eq!((seen.from.trust, seen.to.trust), (0, 0));
        let unregistered = RegistryFacts { delegator_registered: false, delegate_registered: false, ..registry };
        assert_eq!(seen.registry, Some(unregistered), "neither agent is registered, whatever the caller says");
        assert_eq!(seen.parent_mandate, mandate(1_000), "an open root keeps its own mandate");
    }

    /// The idempotency digest decides what a retry is, across restarts and upgrades: its
    /// material is pinned here. A change to it turns every stored delegation's retry into a
    /// second hop (or a mismatch), so it must be deliberate.
    #[test]
    fn the_idempotency_digest_is_pinned_and_ignores_the_gateway_clock() {
        let request = claimed_request(lying_request());
        let plain = request_hash(None, &request, None, None, None).unwrap_or_default();
        assert_eq!(plain, "453ffe88c656b15417f1bcbf50d15d6085bfdd78b851ed75b6e2a7b6d6d9d66e");
        let later = Request { now: request.now + 60_000, ..request.clone() };
        assert_eq!(request_hash(None, &later, None, None, None).unwrap_or_default(), plain, "`now` is the gateway's, not the caller's");
        let with_exception = request_hash(None, &request, Some("dx_1"), None, None).unwrap_or_default();
        assert_eq!(with_exception, "52944f05e7a28af4a4ac06f308dd583c5a166437e97aa1596975e6971aeced6d");
        let subject = Subject { workspace: Some("w".into()), ..Subject::default() };
        let open = request_hash(None, &request, None, Some(&"ab".repeat(16)), Some(&subject)).unwrap_or_default();
        assert_eq!(open, "d2f11a2356975690d054fb0cfdfd10c9b4ed0c54909f5645b4fd8bc78af935a4");
        let distinct: std::collections::BTreeSet<_> = [&plain, &with_exception, &open].into_iter().collect();
        assert_eq!(distinct.len(), 3, "each part of the material counts");
    }
}
