//! The conversions between the WIT types of `wit/delegation.wit` and this crate's types,
//! written once for both sides of the component boundary.
//!
//! Each side generates its own Rust types from the WIT (wit-bindgen in the component,
//! `wasmtime::component::bindgen!` in the host), with the same names and fields, so one macro
//! body serves both: the component invokes [`wit_conversions!`] on its generated `types`
//! module, the runtime on its own. Adding a WIT field means editing this file, and both sides
//! then fail to compile until it is here.

/// Items the macro's expansion names through `$crate`, so that it expands the same in a
/// `no_std` crate and a `std` one.
#[doc(hidden)]
pub mod __macro {
    pub use alloc::format;
    pub use alloc::string::String;
    pub use alloc::vec::Vec;
}

/// Defines, in the invoking module, the functions between the WIT types of module `$wit` (the
/// `sbd:delegation/types` interface as the invoking crate's bindings generate it) and
/// `sbd_policy`'s types:
///
/// - to WIT: `request_to`, `mandate_to`, `outcome_to`, `verdict_to`, `tier_to`, `info_to`,
///   `trust_delta_to`;
/// - from WIT: `request_from`, `mandate_from`, `outcome_from`, `tier_from`, `info_from`,
///   `trust_delta_from`, and `verdict_from`, which refuses a reason code the table does not
///   know or one of the wrong kind (a host lifting a verdict treats that as malformed).
#[macro_export]
macro_rules! wit_conversions {
    ($wit:ident) => {
        // ---- sbd_policy -> WIT --------------------------------------------------------------

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn request_to(r: &$crate::Request) -> $wit::Request {
            $wit::Request {
                from: $wit::Agent { id: r.from.id.clone(), trust: r.from.trust },
                to: $wit::Agent { id: r.to.id.clone(), trust: r.to.trust },
                task: $wit::Task {
                    id: r.task.id.clone(),
                    action_kind: r.task.action_kind.clone(),
                    risk: match r.task.risk {
                        $crate::RiskLevel::Low => $wit::RiskLevel::Low,
                        $crate::RiskLevel::Medium => $wit::RiskLevel::Medium,
                        $crate::RiskLevel::High => $wit::RiskLevel::High,
                        $crate::RiskLevel::Critical => $wit::RiskLevel::Critical,
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
                    .map(|l| $wit::Link {
                        from: l.from.clone(),
                        to: l.to.clone(),
                        depth: l.depth,
                        alpha: l.alpha,
                        at: l.at,
                        reason: l.reason.clone(),
                    })
                    .collect(),
                state: r.state.clone(),
                depth_exception: r.depth_exception.as_ref().map(|e| $wit::DepthException {
                    approved_by: e.approved_by.clone(),
                    justification: e.justification.clone(),
                    extra_depth: e.extra_depth,
                    expires_at: e.expires_at,
                }),
                action_mask: r.action_mask.as_ref().map(|m| $wit::ActionMask {
                    toolsets: m
                        .toolsets
                        .iter()
                        .map(|t| $wit::ToolsetBudget { toolset: t.toolset.clone(), remaining: t.remaining })
                        .collect(),
                    cost: m.cost,
                }),
                registry: r.registry.as_ref().map(|f| $wit::RegistryFacts {
                    delegator_registered: f.delegator_registered,
                    delegate_registered: f.delegate_registered,
                    unregistered: match f.unregistered {
                        $crate::UnregisteredRule::Deny => $wit::UnregisteredRule::Deny,
                        $crate::UnregisteredRule::Escalate => $wit::UnregisteredRule::Escalate,
                    },
                    reviewer: f.reviewer.clone(),
                    explicit_delegation: f.explicit_delegation,
                    delegate_listed: f.delegate_listed,
                }),
                now: r.now,
            }
        }

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn mandate_to(m: &$crate::Mandate) -> $wit::Mandate {
            $wit::Mandate {
                value_ceiling: m.value_ceiling,
                action_kinds: m.action_kinds.clone(),
                counterparties: m.counterparties.clone(),
                budgets: m
                    .budgets
                    .iter()
                    .map(|b| $wit::Budget {
                        unit: match b.unit {
                            $crate::BudgetUnit::UsdMicrocents => $wit::BudgetUnit::UsdMicrocents,
                            $crate::BudgetUnit::Tokens => $wit::BudgetUnit::Tokens,
                            $crate::BudgetUnit::Credits => $wit::BudgetUnit::Credits,
                            $crate::BudgetUnit::RiskPoints => $wit::BudgetUnit::RiskPoints,
                        },
                        amount: b.amount,
                    })
                    .collect(),
                remaining_depth: m.remaining_depth,
                expires_at: m.expires_at,
            }
        }

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn outcome_to(o: $crate::Outcome) -> $wit::Outcome {
            match o {
                $crate::Outcome::Success(gain) => $wit::Outcome::Success(gain),
                $crate::Outcome::Failure(penalty) => $wit::Outcome::Failure(penalty),
            }
        }

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn tier_to(t: $crate::TrustTier) -> $wit::TrustTier {
            match t {
                $crate::TrustTier::T0 => $wit::TrustTier::T0,
                $crate::TrustTier::T1 => $wit::TrustTier::T1,
                $crate::TrustTier::T2 => $wit::TrustTier::T2,
                $crate::TrustTier::T3 => $wit::TrustTier::T3,
                $crate::TrustTier::T4 => $wit::TrustTier::T4,
                $crate::TrustTier::T5 => $wit::TrustTier::T5,
                $crate::TrustTier::T6 => $wit::TrustTier::T6,
                $crate::TrustTier::T7 => $wit::TrustTier::T7,
            }
        }

        /// A verdict as WIT carries it; the reason becomes its code and kebab-case name.
        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn verdict_to(v: $crate::Verdict) -> $wit::Verdict {
            match v {
                $crate::Verdict::Allow(g) => $wit::Verdict::Allow($wit::Grant {
                    alpha: g.alpha,
                    lambda: g.lambda,
                    sub_agent: g.sub_agent,
                    effective_trust: g.effective_trust,
                    effective_tier: tier_to(g.effective_tier),
                    child_mandate: mandate_to(&g.child_mandate),
                    depth: g.depth,
                    remaining_depth: g.remaining_depth,
                    max_depth: g.max_depth,
                    accountability: g
                        .accountability
                        .into_iter()
                        .map(|s| $wit::AccountabilityShare { agent: s.agent, weight: s.weight })
                        .collect(),
                    accountability_ceiling: g.accountability_ceiling,
                    warnings: g
                        .warnings
                        .into_iter()
                        .map(|w| $wit::Warning {
                            code: w.reason.code(),
                            name: $crate::wit::__macro::String::from(w.reason.name()),
                            message: w.message,
                        })
                        .collect(),
                }),
                $crate::Verdict::Escalate(e) => $wit::Verdict::Escalate($wit::Escalation {
                    target: match e.target {
                        $crate::EscalationTarget::Human(who) => $wit::EscalationTarget::Human(who),
                        $crate::EscalationTarget::Agent(who) => $wit::EscalationTarget::Agent(who),
                    },
                    code: e.reason.code(),
                    name: $crate::wit::__macro::String::from(e.reason.name()),
                    reason: e.message,
                }),
                $crate::Verdict::Deny(d) => $wit::Verdict::Deny($wit::Denial {
                    code: d.reason.code(),
                    name: $crate::wit::__macro::String::from(d.reason.name()),
                    message: d.message,
                }),
            }
        }

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn info_to(i: $crate::PolicyInfo) -> $wit::PolicyInfo {
            $wit::PolicyInfo {
                name: i.name,
                version: i.version,
                config_digest: i.config_digest,
                max_depth: i.max_depth,
                wire_version: i.wire_version,
            }
        }

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn trust_delta_to(d: $crate::TrustDelta) -> $wit::TrustDelta {
            $wit::TrustDelta { agent: d.agent, delta: d.delta }
        }

        // ---- WIT -> sbd_policy --------------------------------------------------------------

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn request_from(r: $wit::Request) -> $crate::Request {
            $crate::Request {
                from: $crate::Agent { id: r.from.id, trust: r.from.trust },
                to: $crate::Agent { id: r.to.id, trust: r.to.trust },
                task: $crate::Task {
                    id: r.task.id,
                    action_kind: r.task.action_kind,
                    risk: match r.task.risk {
                        $wit::RiskLevel::Low => $crate::RiskLevel::Low,
                        $wit::RiskLevel::Medium => $crate::RiskLevel::Medium,
                        $wit::RiskLevel::High => $crate::RiskLevel::High,
                        $wit::RiskLevel::Critical => $crate::RiskLevel::Critical,
                    },
                    value: r.task.value,
                    counterparty: r.task.counterparty,
                    completable_locally: r.task.completable_locally,
                },
                parent_mandate: mandate_from(r.parent_mandate),
                requested_mandate: mandate_from(r.requested_mandate),
                chain: r
                    .chain
                    .into_iter()
                    .map(|l| $crate::Link { from: l.from, to: l.to, depth: l.depth, alpha: l.alpha, at: l.at, reason: l.reason })
                    .collect(),
                state: r.state,
                depth_exception: r.depth_exception.map(|e| $crate::DepthException {
                    approved_by: e.approved_by,
                    justification: e.justification,
                    extra_depth: e.extra_depth,
                    expires_at: e.expires_at,
                }),
                action_mask: r.action_mask.map(|m| $crate::ActionMask {
                    toolsets: m
                        .toolsets
                        .into_iter()
                        .map(|t| $crate::ToolsetBudget { toolset: t.toolset, remaining: t.remaining })
                        .collect(),
                    cost: m.cost,
                }),
                registry: r.registry.map(|f| $crate::RegistryFacts {
                    delegator_registered: f.delegator_registered,
                    delegate_registered: f.delegate_registered,
                    unregistered: match f.unregistered {
                        $wit::UnregisteredRule::Deny => $crate::UnregisteredRule::Deny,
                        $wit::UnregisteredRule::Escalate => $crate::UnregisteredRule::Escalate,
                    },
                    reviewer: f.reviewer,
                    explicit_delegation: f.explicit_delegation,
                    delegate_listed: f.delegate_listed,
                }),
                now: r.now,
            }
        }

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn mandate_from(m: $wit::Mandate) -> $crate::Mandate {
            $crate::Mandate {
                value_ceiling: m.value_ceiling,
                action_kinds: m.action_kinds,
                counterparties: m.counterparties,
                budgets: m
                    .budgets
                    .into_iter()
                    .map(|b| $crate::Budget {
                        unit: match b.unit {
                            $wit::BudgetUnit::UsdMicrocents => $crate::BudgetUnit::UsdMicrocents,
                            $wit::BudgetUnit::Tokens => $crate::BudgetUnit::Tokens,
                            $wit::BudgetUnit::Credits => $crate::BudgetUnit::Credits,
                            $wit::BudgetUnit::RiskPoints => $crate::BudgetUnit::RiskPoints,
                        },
                        amount: b.amount,
                    })
                    .collect(),
                remaining_depth: m.remaining_depth,
                expires_at: m.expires_at,
            }
        }

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn outcome_from(o: $wit::Outcome) -> $crate::Outcome {
            match o {
                $wit::Outcome::Success(gain) => $crate::Outcome::Success(gain),
                $wit::Outcome::Failure(penalty) => $crate::Outcome::Failure(penalty),
            }
        }

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn tier_from(t: $wit::TrustTier) -> $crate::TrustTier {
            match t {
                $wit::TrustTier::T0 => $crate::TrustTier::T0,
                $wit::TrustTier::T1 => $crate::TrustTier::T1,
                $wit::TrustTier::T2 => $crate::TrustTier::T2,
                $wit::TrustTier::T3 => $crate::TrustTier::T3,
                $wit::TrustTier::T4 => $crate::TrustTier::T4,
                $wit::TrustTier::T5 => $crate::TrustTier::T5,
                $wit::TrustTier::T6 => $crate::TrustTier::T6,
                $wit::TrustTier::T7 => $crate::TrustTier::T7,
            }
        }

        /// The reason with `code`, if the table has it under `name` and it is of `kind`.
        #[allow(dead_code, reason = "each side uses its own subset")]
        fn reason_from(
            code: u16,
            name: &str,
            kind: $crate::ReasonKind,
        ) -> Result<$crate::Reason, $crate::wit::__macro::String> {
            match $crate::Reason::from_code(code) {
                Some(reason) if reason.name() == name && reason.kind() == kind => Ok(reason),
                Some(reason) if reason.name() == name => Err($crate::wit::__macro::format!(
                    "reason `{name}` ({code}) is a {:?} reason, used as {kind:?}",
                    reason.kind()
                )),
                _ => Err($crate::wit::__macro::format!("unknown reason `{name}` with code {code}")),
            }
        }

        /// Lifts a verdict, refusing reason codes the table does not know or of the wrong kind.
        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn verdict_from(v: $wit::Verdict) -> Result<$crate::Verdict, $crate::wit::__macro::String> {
            Ok(match v {
                $wit::Verdict::Allow(g) => $crate::Verdict::Allow($crate::Grant {
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
                        .map(|s| $crate::AccountabilityShare { agent: s.agent, weight: s.weight })
                        .collect(),
                    accountability_ceiling: g.accountability_ceiling,
                    warnings: g
                        .warnings
                        .into_iter()
                        .map(|w| {
                            Ok($crate::Warning {
                                reason: reason_from(w.code, &w.name, $crate::ReasonKind::Warn)?,
                                message: w.message,
                            })
                        })
                        .collect::<Result<$crate::wit::__macro::Vec<_>, $crate::wit::__macro::String>>()?,
                }),
                $wit::Verdict::Escalate(e) => $crate::Verdict::Escalate($crate::Escalation {
                    target: match e.target {
                        $wit::EscalationTarget::Human(who) => $crate::EscalationTarget::Human(who),
                        $wit::EscalationTarget::Agent(who) => $crate::EscalationTarget::Agent(who),
                    },
                    reason: reason_from(e.code, &e.name, $crate::ReasonKind::Escalate)?,
                    message: e.reason,
                }),
                $wit::Verdict::Deny(d) => $crate::Verdict::Deny($crate::Denial {
                    reason: reason_from(d.code, &d.name, $crate::ReasonKind::Deny)?,
                    message: d.message,
                }),
            })
        }

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn info_from(i: $wit::PolicyInfo) -> $crate::PolicyInfo {
            $crate::PolicyInfo {
                name: i.name,
                version: i.version,
                config_digest: i.config_digest,
                max_depth: i.max_depth,
                wire_version: i.wire_version,
            }
        }

        #[allow(dead_code, reason = "each side uses its own subset")]
        pub(crate) fn trust_delta_from(d: $wit::TrustDelta) -> $crate::TrustDelta {
            $crate::TrustDelta { agent: d.agent, delta: d.delta }
        }
    };
}
