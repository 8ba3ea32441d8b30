//! The host bindings generated from `wit/delegation.wit`, and the conversions between them and
//! `sbd_policy` types. Lifting a verdict checks every code against the reason table: a code
//! the table does not know, or one of the wrong kind, is a malformed verdict.

use sbd_policy as policy;
use sbd_policy::{Reason, ReasonKind};
use wasmtime::StoreLimits;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "delegation-policy-component",
});

pub(crate) use exports::sbd::delegation::policy::GuestDelegationPolicy;
use sbd::delegation::types as wit;

/// Per-store host data: only the memory limiter (the policy imports no host functions).
pub(crate) struct HostState {
    pub(crate) limits: StoreLimits,
}

// ---- policy -> WIT --------------------------------------------------------------------------

pub(crate) fn request_to(r: &policy::Request) -> wit::Request {
    wit::Request {
        from: agent_to(&r.from),
        to: agent_to(&r.to),
        task: wit::Task {
            id: r.task.id.clone(),
            action_kind: r.task.action_kind.clone(),
            risk: match r.task.risk {
                policy::RiskLevel::Low => wit::RiskLevel::Low,
                policy::RiskLevel::Medium => wit::RiskLevel::Medium,
                policy::RiskLevel::High => wit::RiskLevel::High,
                policy::RiskLevel::Critical => wit::RiskLevel::Critical,
            },
            value: r.task.value,
            counterparty: r.task.counterparty.clone(),
            completable_locally: r.task.completable_locally,
        },
        parent_mandate: mandate_to(&r.parent_mandate),
        requested_mandate: mandate_to(&r.requested_mandate),
        chain: r
            .chain
            .iter()
            .map(|l| wit::Link {
                from: l.from.clone(),
                to: l.to.clone(),
                depth: l.depth,
                alpha: l.alpha,
                at: l.at,
                reason: l.reason.clone(),
            })
            .collect(),
        state: r.state.clone(),
        depth_exception: r.depth_exception.as_ref().map(|e| wit::DepthException {
            approved_by: e.approved_by.clone(),
            justification: e.justification.clone(),
            extra_depth: e.extra_depth,
            expires_at: e.expires_at,
        }),
        now: r.now,
    }
}

fn agent_to(a: &policy::Agent) -> wit::Agent {
    wit::Agent { id: a.id.clone(), trust: a.trust }
}

pub(crate) fn mandate_to(m: &policy::Mandate) -> wit::Mandate {
    wit::Mandate {
        value_ceiling: m.value_ceiling,
        action_kinds: m.action_kinds.clone(),
        counterparties: m.counterparties.clone(),
        budgets: m
            .budgets
            .iter()
            .map(|b| wit::Budget {
                unit: match b.unit {
                    policy::BudgetUnit::UsdMicrocents => wit::BudgetUnit::UsdMicrocents,
                    policy::BudgetUnit::Tokens => wit::BudgetUnit::Tokens,
                    policy::BudgetUnit::Credits => wit::BudgetUnit::Credits,
                    policy::BudgetUnit::RiskPoints => wit::BudgetUnit::RiskPoints,
                },
                amount: b.amount,
            })
            .collect(),
        remaining_depth: m.remaining_depth,
        expires_at: m.expires_at,
    }
}

pub(crate) fn outcome_to(o: policy::Outcome) -> wit::Outcome {
    match o {
        policy::Outcome::Success(gain) => wit::Outcome::Success(gain),
        policy::Outcome::Failure(penalty) => wit::Outcome::Failure(penalty),
    }
}

// ---- WIT -> policy --------------------------------------------------------------------------

pub(crate) fn mandate_from(m: wit::Mandate) -> policy::Mandate {
    policy::Mandate {
        value_ceiling: m.value_ceiling,
        action_kinds: m.action_kinds,
        counterparties: m.counterparties,
        budgets: m
            .budgets
            .into_iter()
            .map(|b| policy::Budget {
                unit: match b.unit {
                    wit::BudgetUnit::UsdMicrocents => policy::BudgetUnit::UsdMicrocents,
                    wit::BudgetUnit::Tokens => policy::BudgetUnit::Tokens,
                    wit::BudgetUnit::Credits => policy::BudgetUnit::Credits,
                    wit::BudgetUnit::RiskPoints => policy::BudgetUnit::RiskPoints,
                },
                amount: b.amount,
            })
            .collect(),
        remaining_depth: m.remaining_depth,
        expires_at: m.expires_at,
    }
}

/// The reason with `code`, if the table has it under `name` and it is of `kind`.
fn reason_from(code: u16, name: &str, kind: ReasonKind) -> Result<Reason, String> {
    match Reason::from_code(code) {
        Some(reason) if reason.name() == name && reason.kind() == kind => Ok(reason),
        Some(reason) if reason.name() == name => {
            Err(format!("reason `{name}` ({code}) is a {:?} reason, used as {kind:?}", reason.kind()))
        }
        _ => Err(format!("unknown reason `{name}` with code {code}")),
    }
}

/// Lifts a verdict, rejecting reason codes the table does not know or of the wrong kind.
pub(crate) fn verdict_from(v: wit::Verdict) -> Result<policy::Verdict, String> {
    Ok(match v {
        wit::Verdict::Allow(g) => policy::Verdict::Allow(policy::Grant {
            alpha: g.alpha,
            lambda: g.lambda,
            sub_agent: g.sub_agent,
            effective_trust: g.effective_trust,
            effective_tier: tier_from(g.effective_tier),
            child_mandate: mandate_from(g.child_mandate),
            depth: g.depth,
            remaining_depth: g.remaining_depth,
            max_depth: g.max_depth,
            accountability: g
                .accountability
                .into_iter()
                .map(|s| policy::AccountabilityShare { agent: s.agent, weight: s.weight })
                .collect(),
            accountability_ceiling: g.accountability_ceiling,
            warnings: g
                .warnings
                .into_iter()
                .map(|w| {
                    Ok(policy::Warning {
                        reason: reason_from(w.code, &w.name, ReasonKind::Warn)?,
                        message: w.message,
                    })
                })
                .collect::<Result<_, String>>()?,
        }),
        wit::Verdict::Escalate(e) => policy::Verdict::Escalate(policy::Escalation {
            target: match e.target {
                wit::EscalationTarget::Human(who) => policy::EscalationTarget::Human(who),
                wit::EscalationTarget::Agent(who) => policy::EscalationTarget::Agent(who),
            },
            reason: reason_from(e.code, &e.name, ReasonKind::Escalate)?,
            message: e.reason,
        }),
        wit::Verdict::Deny(d) => policy::Verdict::Deny(policy::Denial {
            reason: reason_from(d.code, &d.name, ReasonKind::Deny)?,
            message: d.message,
        }),
    })
}

fn tier_from(t: wit::TrustTier) -> policy::TrustTier {
    match t {
        wit::TrustTier::T0 => policy::TrustTier::T0,
        wit::TrustTier::T1 => policy::TrustTier::T1,
        wit::TrustTier::T2 => policy::TrustTier::T2,
        wit::TrustTier::T3 => policy::TrustTier::T3,
        wit::TrustTier::T4 => policy::TrustTier::T4,
        wit::TrustTier::T5 => policy::TrustTier::T5,
        wit::TrustTier::T6 => policy::TrustTier::T6,
        wit::TrustTier::T7 => policy::TrustTier::T7,
    }
}

pub(crate) fn info_from(i: wit::PolicyInfo) -> policy::PolicyInfo {
    policy::PolicyInfo {
        name: i.name,
        version: i.version,
        config_digest: i.config_digest,
        max_depth: i.max_depth,
        wire_version: i.wire_version,
    }
}

pub(crate) fn trust_delta_from(d: wit::TrustDelta) -> policy::TrustDelta {
    policy::TrustDelta { agent: d.agent, delta: d.delta }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_or_miskinded_codes_are_malformed() {
        let deny = |code, name: &str| {
            verdict_from(wit::Verdict::Deny(wit::Denial { code, name: name.into(), message: String::new() }))
        };
        assert!(deny(1002, "delegation-cycle").is_ok());
        assert!(deny(1002, "self-delegation").is_err());
        assert!(deny(7777, "made-up").is_err());
        // An escalation code used on a denial.
        assert!(deny(5001, "depth-limit-escalation").is_err());
    }
}
