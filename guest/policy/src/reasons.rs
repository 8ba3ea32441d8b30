//! Every reason a verdict or warning can carry, from one table: code, kebab-case name, kind and
//! summary.
//!
//! Codes are numbered by the stage that decides them (1xxx structural, 2xxx attenuation,
//! 3xxx trust, 4xxx SBD, 5xxx routing to a human or agent, 6xxx authority facts the host
//! verified against its records, 9xxx host faults) and are never
//! reused: a test pins every row.

use core::fmt;

/// What a reason does to a delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonKind {
    /// The delegation is refused.
    Deny,
    /// The delegation is held for a human or a more trusted agent.
    Escalate,
    /// The delegation is allowed with a notice.
    Warn,
}

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $kind:ident, $summary:literal; )*) => {
        /// A stable reason code. See the module docs for the numbering.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )*
        }

        impl Reason {
            /// Every reason, in table order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            /// The stable numeric code.
            pub const fn code(self) -> u16 {
                match self { $(Reason::$variant => $code,)* }
            }

            /// The stable kebab-case name.
            pub const fn name(self) -> &'static str {
                match self { $(Reason::$variant => $name,)* }
            }

            /// Whether it denies, escalates or warns.
            pub const fn kind(self) -> ReasonKind {
                match self { $(Reason::$variant => ReasonKind::$kind,)* }
            }

            /// A one-line summary of the rule, for documentation and listings.
            pub const fn summary(self) -> &'static str {
                match self { $(Reason::$variant => $summary,)* }
            }

            /// The reason with this code, if there is one.
            pub const fn from_code(code: u16) -> Option<Reason> {
                match code { $($code => Some(Reason::$variant),)* _ => None }
            }
        }
    };
}

reasons! {
    // 1xxx structural (AG-396 section 4, Vorion safety checks)
    /// An agent delegated to itself.
    SelfDelegation = 1001, "self-delegation", Deny,
        "an agent may not delegate to itself";
    /// The target already appears in the chain (AG-396 4.5).
    DelegationCycle = 1002, "delegation-cycle", Deny,
        "the target already appears in the delegation chain";
    /// The hop would exceed the maximum depth and the delegator can finish the task itself.
    DepthExceeded = 1003, "depth-exceeded", Deny,
        "the hop would exceed the maximum delegation depth";
    /// The delegator's mandate allows no further delegation.
    DelegatorTerminal = 1004, "delegator-terminal", Deny,
        "the delegator's mandate has no remaining delegation depth";
    /// The delegator's mandate has expired.
    MandateExpired = 1005, "mandate-expired", Deny,
        "the delegator's mandate has expired";
    /// The chain has run longer than its wall-clock deadline (AG-396 4.10).
    ChainDeadlineExceeded = 1006, "chain-deadline-exceeded", Deny,
        "the delegation chain has exceeded its wall-clock deadline";
    /// The delegator is not the agent the chain ends at.
    ChainDiscontinuous = 1007, "chain-discontinuous", Deny,
        "the delegator is not the last agent of the chain";
    /// A link's depth does not match its position (AG-396 4.2).
    DepthMetadataInvalid = 1008, "depth-metadata-invalid", Deny,
        "the chain's depth metadata does not match its links";
    /// The request is not well formed.
    RequestMalformed = 1009, "request-malformed", Deny,
        "the request is not well formed";
    /// An agent id is empty, or over the length bound before or after canonicalisation.
    AgentIdLength = 1010, "agent-id-length", Deny,
        "an agent id is empty or longer than the canonical bound";
    /// An agent id contains whitespace (refused, never stripped).
    AgentIdWhitespace = 1011, "agent-id-whitespace", Deny,
        "an agent id contains whitespace";
    /// An agent id contains a control character such as NUL.
    AgentIdControl = 1012, "agent-id-control", Deny,
        "an agent id contains a control character";
    /// An agent id contains an invisible character: zero-width, BOM, bidi control, format.
    AgentIdInvisible = 1013, "agent-id-invisible", Deny,
        "an agent id contains an invisible or format character";
    /// An agent id mixes scripts (a confusable such as a Cyrillic letter in a Latin id).
    AgentIdMixedScript = 1014, "agent-id-mixed-script", Deny,
        "an agent id mixes scripts";
    /// An agent id contains unassigned or private-use code points, or does not settle under
    /// normalisation and case folding.
    AgentIdUnstable = 1015, "agent-id-unstable", Deny,
        "an agent id has no stable canonical form";
    /// The chain is nearing its maximum depth (AG-396 4.9).
    DepthWarning = 1101, "depth-warning", Warn,
        "the chain has reached the depth warning threshold";
    /// A human-approved depth exception raised the limit (AG-396 4.12).
    DepthExceptionApplied = 1102, "depth-exception-applied", Warn,
        "a human-approved depth exception raised the limit";
    /// A depth exception was presented but has lapsed or lacks an approval record.
    DepthExceptionIgnored = 1103, "depth-exception-ignored", Warn,
        "a depth exception was ignored: lapsed or not approved";

    // 2xxx attenuation (AG-001, AG-396 4.7, the authority-attenuation pattern)
    /// The child would get more budget than the parent has.
    BudgetWidened = 2001, "budget-widened", Deny,
        "the requested budget exceeds the parent's";
    /// The child would get action kinds the parent lacks.
    ActionKindsWidened = 2002, "action-kinds-widened", Deny,
        "the requested action kinds exceed the parent's";
    /// The child would get counterparties the parent lacks.
    CounterpartiesWidened = 2003, "counterparties-widened", Deny,
        "the requested counterparties exceed the parent's";
    /// The child would get a higher value ceiling.
    ValueCeilingWidened = 2004, "value-ceiling-widened", Deny,
        "the requested value ceiling exceeds the parent's";
    /// The child's mandate would outlive the parent's.
    ExpiryWidened = 2005, "expiry-widened", Deny,
        "the requested expiry is later than the parent's";
    /// The child's remaining depth is not strictly smaller than the parent's.
    DepthNotNarrowed = 2006, "depth-not-narrowed", Deny,
        "the requested remaining depth is not smaller than the parent's";
    /// The task's action kind is outside the child's mandate.
    ActionNotPermitted = 2007, "action-not-permitted", Deny,
        "the task's action kind is outside the child's mandate";
    /// The task's value is above the child's value ceiling.
    ValueOverCeiling = 2008, "value-over-ceiling", Deny,
        "the task's value exceeds the child's value ceiling";
    /// The task's counterparty is outside the child's mandate.
    CounterpartyNotPermitted = 2009, "counterparty-not-permitted", Deny,
        "the task's counterparty is outside the child's mandate";
    /// The requested child mandate would already be expired when granted.
    ChildMandateExpired = 2010, "child-mandate-expired", Deny,
        "the requested child mandate is already expired";
    /// A mandate lists the same budget unit more than once.
    BudgetUnitDuplicated = 2011, "budget-unit-duplicated", Deny,
        "a mandate lists the same budget unit twice";

    // 3xxx trust (Vorion upward escalation)
    /// The executor's own tier is below the task's required tier.
    TrustInsufficient = 3001, "trust-insufficient", Deny,
        "the executor's trust tier is below the task's required tier";

    // 4xxx SBD (paper sections 3 and 5)
    /// The state vector does not fit the policy.
    StateInvalid = 4001, "state-invalid", Deny,
        "the SBD state vector does not fit the policy";

    // 5xxx routing
    /// The depth limit is reached, or the target closes a cycle (which AG-396 4.5 treats as
    /// exceeding the maximum depth), and the task cannot be finished here (AG-396 4.4).
    DepthLimitEscalation = 5001, "depth-limit-escalation", Escalate,
        "the depth limit (or a cycle) is reached and the task cannot be completed at this level";
    /// The delegation degree is below the human review threshold.
    LowAlphaReview = 5002, "low-alpha-review", Escalate,
        "the delegation degree is below the human review threshold";
    /// The executor's tier is too low; a more trusted agent or a human takes over.
    TrustEscalation = 5003, "trust-escalation", Escalate,
        "the executor's trust tier is too low for the task's risk";
    /// The state's risk signal tightens the maximum depth (`sbd.risk_bands`) below this hop:
    /// a chain this long is allowed in a calmer state, so a human decides (AG-396 Advanced,
    /// dynamic depth adjustment based on risk signals).
    RiskDepthEscalation = 5004, "risk-depth-escalation", Escalate,
        "the state's risk signal tightens the maximum depth below this hop";

    /// An agent is unknown to the tenant's registry and the tenant escalates such delegations
    /// to its registry's reviewer.
    UnregisteredAgentReview = 5010, "unregistered-agent-review", Escalate,
        "an agent is not in the tenant's registry; a human decides";

    // 6xxx authority: facts the host verified against its own records (registry, toolset
    // budgets, escrow); the rules decide on them, except escrow-exhausted
    /// The delegator or the delegate is not in the tenant's agent registry.
    UnregisteredAgent = 6001, "unregistered-agent", Deny,
        "an agent is not in the tenant's registry";
    /// The tenant requires explicit delegation relationships and this one is not registered.
    DelegationNotRegistered = 6002, "delegation-not-registered", Deny,
        "the delegator is not registered to delegate to this agent";
    /// The parent's escrowed budget no longer covers the child's (spent by a sibling meanwhile).
    EscrowExhausted = 6003, "escrow-exhausted", Deny,
        "the parent's escrowed budget does not cover the child's";
    /// The tenant masks actions by toolset budgets and the task's toolset has none.
    ActionMaskMissing = 6004, "action-mask-missing", Deny,
        "the tenant's action mask has no budget for the task's toolset";
    /// The task's toolset budget has fewer risk points left than the task costs.
    ActionMaskExhausted = 6005, "action-mask-exhausted", Deny,
        "the task's toolset budget cannot cover the task's risk cost";

    // 9xxx host
    /// The policy component failed; the host failed closed.
    PolicyFault = 9001, "policy-fault", Deny,
        "the policy failed to decide; the host failed closed";
}

impl Reason {
    /// Whether only a host gives this reason: `escrow-exhausted` (its escrow found the
    /// parent's budget spent by a sibling after the rules allowed the hop) and `policy-fault`
    /// (the policy failed). The rules never produce these; every other refusal, the registry's
    /// and the action mask's included, is the rules' decision on the host's facts.
    pub const fn decided_by_host(self) -> bool {
        matches!(self, Reason::EscrowExhausted | Reason::PolicyFault)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ReasonRepr<'a> {
    code: u16,
    #[serde(borrow)]
    reason: alloc::borrow::Cow<'a, str>,
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ReasonRepr { code: self.code(), reason: self.name().into() }.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = ReasonRepr::deserialize(deserializer)?;
        match Reason::from_code(repr.code) {
            Some(reason) if reason.name() == repr.reason => Ok(reason),
            _ => Err(serde::de::Error::custom(alloc::format!(
                "unknown reason `{}` with code {}",
                repr.reason,
                repr.code
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Codes and names are part of the contract: changing one breaks every client.
    #[test]
    fn codes_and_names_are_pinned() {
        let table: std::vec::Vec<(u16, &str)> = Reason::ALL.iter().map(|r| (r.code(), r.name())).collect();
        assert_eq!(
            table,
            [
                (1001, "self-delegation"),
                (1002, "delegation-cycle"),
                (1003, "depth-exceeded"),
                (1004, "delegator-terminal"),
                (1005, "mandate-expired"),
                (1006, "chain-deadline-exceeded"),
                (1007, "chain-discontinuous"),
                (1008, "depth-metadata-invalid"),
                (1009, "request-malformed"),
                (1010, "agent-id-length"),
                (1011, "agent-id-whitespace"),
                (1012, "agent-id-control"),
                (1013, "agent-id-invisible"),
                (1014, "agent-id-mixed-script"),
                (1015, "agent-id-unstable"),
                (1101, "depth-warning"),
                (1102, "depth-exception-applied"),
                (1103, "depth-exception-ignored"),
                (2001, "budget-widened"),
                (2002, "action-kinds-widened"),
                (2003, "counterparties-widened"),
                (2004, "value-ceiling-widened"),
                (2005, "expiry-widened"),
                (2006, "depth-not-narrowed"),
                (2007, "action-not-permitted"),
                (2008, "value-over-ceiling"),
                (2009, "counterparty-not-permitted"),
                (2010, "child-mandate-expired"),
                (2011, "budget-unit-duplicated"),
                (3001, "trust-insufficient"),
                (4001, "state-invalid"),
                (5001, "depth-limit-escalation"),
                (5002, "low-alpha-review"),
                (5003, "trust-escalation"),
                (5004, "risk-depth-escalation"),
                (5010, "unregistered-agent-review"),
                (6001, "unregistered-agent"),
                (6002, "delegation-not-registered"),
                (6003, "escrow-exhausted"),
                (6004, "action-mask-missing"),
                (6005, "action-mask-exhausted"),
                (9001, "policy-fault"),
            ]
        );
    }

    #[test]
    fn codes_and_names_are_unique_and_round_trip() {
        let codes: BTreeSet<u16> = Reason::ALL.iter().map(|r| r.code()).collect();
        let names: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        assert_eq!(names.len(), Reason::ALL.len());
        for reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.code()), Some(*reason));
        }
        assert_eq!(Reason::from_code(0), None);
    }

    #[test]
    fn stage_digit_matches_kind() {
        for reason in Reason::ALL {
            let escalates = (5000..6000).contains(&reason.code());
            assert_eq!(reason.kind() == ReasonKind::Escalate, escalates, "{reason}");
            let warns = (reason.code() % 1000) / 100 == 1;
            assert_eq!(reason.kind() == ReasonKind::Warn, warns, "{reason}");
        }
    }

    #[test]
    fn json_form_names_code_and_reason_and_rejects_mismatches() {
        let json = serde_json::to_string(&Reason::DelegationCycle).unwrap_or_default();
        assert_eq!(json, r#"{"code":1002,"reason":"delegation-cycle"}"#);
        let back: Result<Reason, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(Reason::DelegationCycle));
        let wrong: Result<Reason, _> = serde_json::from_str(r#"{"code":1002,"reason":"self-delegation"}"#);
        assert!(wrong.is_err());
    }
}
