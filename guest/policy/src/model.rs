//! The domain model: requests, mandates and verdicts, mirroring `wit/delegation.wit` one to one.
//!
//! JSON forms (used by the CLI and the gateway) use snake_case fields; budget units are spelled
//! as in the Cycles protocol (`USD_MICROCENTS`, `TOKENS`, `CREDITS`, `RISK_POINTS`).

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::reasons::Reason;

/// Unix time in milliseconds, always supplied by the host.
pub type TimestampMs = u64;

/// Vorion trust tiers, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TrustTier {
    /// Scores 0-199.
    T0,
    /// Scores 200-349.
    T1,
    /// Scores 350-499.
    T2,
    /// Scores 500-649.
    T3,
    /// Scores 650-799.
    T4,
    /// Scores 800-875.
    T5,
    /// Scores 876-950.
    T6,
    /// Scores 951-1000.
    T7,
}

impl TrustTier {
    /// Every tier, lowest first.
    pub const ALL: [TrustTier; 8] = [
        TrustTier::T0,
        TrustTier::T1,
        TrustTier::T2,
        TrustTier::T3,
        TrustTier::T4,
        TrustTier::T5,
        TrustTier::T6,
        TrustTier::T7,
    ];

    /// The tier of a trust score (Vorion bands; scores above 1000 count as T7).
    pub const fn of_score(score: u16) -> TrustTier {
        match score {
            0..=199 => TrustTier::T0,
            200..=349 => TrustTier::T1,
            350..=499 => TrustTier::T2,
            500..=649 => TrustTier::T3,
            650..=799 => TrustTier::T4,
            800..=875 => TrustTier::T5,
            876..=950 => TrustTier::T6,
            _ => TrustTier::T7,
        }
    }
}

/// The risk of a task (AG-396 4.8 risk tiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// Routine.
    Low,
    /// Moves value or data of moderate consequence.
    Medium,
    /// Financial value, rights-sensitive, or hard to reverse.
    High,
    /// Safety-critical or physical.
    Critical,
}

/// Cycles budget units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BudgetUnit {
    /// Millionths of a US cent.
    UsdMicrocents,
    /// Model tokens.
    Tokens,
    /// Abstract credits.
    Credits,
    /// Risk points, used as per-toolset action masks.
    RiskPoints,
}

/// An amount of one budget unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// The unit.
    pub unit: BudgetUnit,
    /// The amount in that unit.
    pub amount: u64,
}

/// An agent: identifier and own trust score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Stable identifier.
    pub id: String,
    /// Own trust score, 0-1000.
    pub trust: u16,
}

/// The authority an agent holds; every hop may only narrow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Mandate {
    /// Largest value of a single action, in USD microcents.
    pub value_ceiling: u64,
    /// Permitted action kinds (`payment.refund`, `payment.*`, `*`).
    pub action_kinds: Vec<String>,
    /// Permitted counterparties (`*` permits any).
    pub counterparties: Vec<String>,
    /// Spendable budget per unit; an absent unit cannot be spent.
    pub budgets: Vec<Budget>,
    /// Further hops the holder may delegate.
    pub remaining_depth: u8,
    /// Void at or after this instant.
    pub expires_at: TimestampMs,
}

impl Mandate {
    /// The budget held in `unit`, if any.
    pub fn budget(&self, unit: BudgetUnit) -> Option<u64> {
        crate::view::MandateFields::budget_of(self, unit)
    }
}

/// One completed hop of the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Delegating agent.
    pub from: String,
    /// Receiving agent.
    pub to: String,
    /// Depth of this hop, 1 for the originator's delegation.
    pub depth: u8,
    /// Delegation degree granted on this hop.
    pub alpha: f64,
    /// When the hop was granted.
    pub at: TimestampMs,
    /// Why the hop was made.
    #[serde(default)]
    pub reason: String,
}

/// A temporary, human-approved depth increase (AG-396 4.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DepthException {
    /// The approving human authority.
    pub approved_by: String,
    /// Documented justification.
    pub justification: String,
    /// Extra hops permitted.
    pub extra_depth: u8,
    /// Lapses at this instant.
    pub expires_at: TimestampMs,
}

/// The task being handed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Identifier for the trace.
    pub id: String,
    /// The action performed, e.g. `payment.refund`.
    pub action_kind: String,
    /// Risk level.
    pub risk: RiskLevel,
    /// Value moved, in USD microcents.
    #[serde(default)]
    pub value: u64,
    /// Counterparty acted on, if any.
    #[serde(default)]
    pub counterparty: Option<String>,
    /// Whether the delegator could finish the task itself (AG-396 4.4).
    #[serde(default = "default_true")]
    pub completable_locally: bool,
}

fn default_true() -> bool {
    true
}

/// One delegation to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Delegating agent.
    pub from: Agent,
    /// Proposed receiving agent.
    pub to: Agent,
    /// The task.
    pub task: Task,
    /// The delegator's own mandate.
    pub parent_mandate: Mandate,
    /// The mandate asked for the child.
    pub requested_mandate: Mandate,
    /// The chain so far, originator first.
    #[serde(default)]
    pub chain: Vec<Link>,
    /// SBD state vector. It must hold every feature the policy reads: `sbd.state_dim`
    /// features when the policy fixes it (or has a learned model), else at least one past the
    /// highest `sbd.alpha_caps` feature. A missing or shorter state is denied with
    /// `state-invalid` (4001); a policy without caps needs none.
    #[serde(default)]
    pub state: Vec<f64>,
    /// A human-approved depth exception, if any.
    #[serde(default)]
    pub depth_exception: Option<DepthException>,
    /// The tenant's action mask, when it masks actions by toolset budgets: the host's facts
    /// (each toolset's remaining risk points and what this task costs). Absent: no mask.
    #[serde(default)]
    pub action_mask: Option<ActionMask>,
    /// What the tenant's agent registry says of the two agents: the host's facts, looked up
    /// in its own registry (never the caller's word). Absent: no registry applies.
    #[serde(default)]
    pub registry: Option<RegistryFacts>,
    /// The decision instant.
    pub now: TimestampMs,
}

/// What a hop naming an agent the registry does not know gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum UnregisteredRule {
    /// Refused: `unregistered-agent` (6001).
    #[default]
    Deny,
    /// Escalated to the registry's reviewer: `unregistered-agent-review` (5010).
    Escalate,
}

/// The tenant's agent registry on this hop (Vorion: registered agents; AG-396's
/// `requireExplicitDelegation`), as the host found it in its own records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RegistryFacts {
    /// Whether the delegating agent is registered.
    pub delegator_registered: bool,
    /// Whether the receiving agent is registered.
    pub delegate_registered: bool,
    /// What a hop with an unregistered agent gets.
    #[serde(default)]
    pub unregistered: UnregisteredRule,
    /// The human who reviews a hop escalated for an unregistered agent.
    pub reviewer: String,
    /// Whether the tenant requires each delegator's registry entry to list its delegates.
    #[serde(default)]
    pub explicit_delegation: bool,
    /// Whether the delegator's registry entry lists the receiving agent.
    #[serde(default)]
    pub delegate_listed: bool,
}

/// A toolset's risk-point budget, as the host's ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ToolsetBudget {
    /// The toolset: an action kind's family (`payment` for `payment.refund`).
    pub toolset: String,
    /// Risk points left.
    pub remaining: u64,
}

/// The action mask of a tenant that permits actions only through toolset budgets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ActionMask {
    /// Every toolset the tenant has a budget for.
    pub toolsets: Vec<ToolsetBudget>,
    /// The risk points this task costs (the host's price for its risk level).
    pub cost: u64,
}

impl Request {
    /// The agent that started the chain.
    pub fn originator(&self) -> &str {
        self.chain.first().map_or(self.from.id.as_str(), |link| link.from.as_str())
    }

    /// The depth this hop would have: one more than the chain so far.
    pub fn hop_depth(&self) -> usize {
        self.chain.len() + 1
    }
}

/// A notice on an allowed delegation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "CodedRepr", try_from = "CodedRepr")]
pub struct Warning {
    /// Why.
    pub reason: Reason,
    /// Human-readable detail.
    pub message: String,
}

/// One agent's share of accountability (SBD Definition 3.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AccountabilityShare {
    /// The agent.
    pub agent: String,
    /// Its weight; a chain's weights sum to 1.
    pub weight: f64,
}

/// What an allowed delegation carries to the child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Delegation degree after projection, in [0, 1].
    pub alpha: f64,
    /// Safety weight lambda(s), in [0, 1].
    pub lambda: f64,
    /// The sub-agent the task goes to.
    pub sub_agent: String,
    /// The chain's effective trust: the executor's own score (Vorion upward escalation).
    pub effective_trust: u16,
    /// The tier of `effective_trust`.
    pub effective_tier: TrustTier,
    /// The child's mandate.
    pub child_mandate: Mandate,
    /// This hop's depth.
    pub depth: u8,
    /// Hops the child may still delegate.
    pub remaining_depth: u8,
    /// The maximum depth that applied.
    pub max_depth: u8,
    /// Accountability over the chain including this hop, originator first.
    pub accountability: Vec<AccountabilityShare>,
    /// Proposition 4.8 ceiling on any delegate's weight.
    pub accountability_ceiling: f64,
    /// Notices.
    pub warnings: Vec<Warning>,
}

/// Who an escalation goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EscalationTarget {
    /// A human authority.
    Human(String),
    /// A more trusted agent.
    Agent(String),
}

/// The delegation is held for someone with more authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "EscalationRepr", try_from = "EscalationRepr")]
pub struct Escalation {
    /// Who decides next.
    pub target: EscalationTarget,
    /// Why.
    pub reason: Reason,
    /// Human-readable detail.
    pub message: String,
}

/// The delegation is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "CodedRepr", try_from = "CodedRepr")]
pub struct Denial {
    /// Why.
    pub reason: Reason,
    /// Human-readable detail naming the offending field.
    pub message: String,
}

/// The serialized form of a denial or warning: the reason's code and name side by side with the
/// message (`{"code": 1002, "reason": "delegation-cycle", "message": "..."}`). A flat struct
/// rather than `#[serde(flatten)]`, so non-self-describing formats (postcard) work too.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct CodedRepr {
    /// The reason's stable number (`sbd reasons` lists them).
    code: u16,
    /// The reason's stable name, e.g. `delegation-cycle`.
    reason: String,
    /// Human-readable detail.
    message: String,
}

#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct EscalationRepr {
    /// Who decides next.
    target: EscalationTarget,
    /// The reason's stable number (`sbd reasons` lists them).
    code: u16,
    /// The reason's stable name, e.g. `trust-escalation`.
    reason: String,
    /// Human-readable detail.
    message: String,
}

/// The JSON Schema of the types whose JSON form is a flat representation (see [`CodedRepr`]).
#[cfg(feature = "schema")]
mod schema_impls {
    use super::{CodedRepr, Denial, Escalation, EscalationRepr, Warning};
    use alloc::borrow::Cow;

    macro_rules! schema_as {
        ($ty:ty, $repr:ty, $name:literal) => {
            impl schemars::JsonSchema for $ty {
                fn schema_name() -> Cow<'static, str> {
                    Cow::Borrowed($name)
                }
                fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                    <$repr as schemars::JsonSchema>::json_schema(generator)
                }
            }
        };
    }
    schema_as!(Warning, CodedRepr, "Warning");
    schema_as!(Denial, CodedRepr, "Denial");
    schema_as!(Escalation, EscalationRepr, "Escalation");
}

fn reason_of(code: u16, name: &str) -> Result<Reason, String> {
    match Reason::from_code(code) {
        Some(reason) if reason.name() == name => Ok(reason),
        _ => Err(alloc::format!("unknown reason `{name}` with code {code}")),
    }
}

impl From<Denial> for CodedRepr {
    fn from(d: Denial) -> Self {
        CodedRepr { code: d.reason.code(), reason: d.reason.name().into(), message: d.message }
    }
}

impl TryFrom<CodedRepr> for Denial {
    type Error = String;
    fn try_from(r: CodedRepr) -> Result<Self, String> {
        Ok(Denial { reason: reason_of(r.code, &r.reason)?, message: r.message })
    }
}

impl From<Warning> for CodedRepr {
    fn from(w: Warning) -> Self {
        CodedRepr { code: w.reason.code(), reason: w.reason.name().into(), message: w.message }
    }
}

impl TryFrom<CodedRepr> for Warning {
    type Error = String;
    fn try_from(r: CodedRepr) -> Result<Self, String> {
        Ok(Warning { reason: reason_of(r.code, &r.reason)?, message: r.message })
    }
}

impl From<Escalation> for EscalationRepr {
    fn from(e: Escalation) -> Self {
        EscalationRepr {
            target: e.target,
            code: e.reason.code(),
            reason: e.reason.name().into(),
            message: e.message,
        }
    }
}

impl TryFrom<EscalationRepr> for Escalation {
    type Error = String;
    fn try_from(r: EscalationRepr) -> Result<Self, String> {
        Ok(Escalation { target: r.target, reason: reason_of(r.code, &r.reason)?, message: r.message })
    }
}

/// The decision on one delegation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Go ahead with this grant.
    Allow(Grant),
    /// Hold for a human or a more trusted agent.
    Escalate(Escalation),
    /// Refuse.
    Deny(Denial),
}

impl Verdict {
    /// A denial with this reason and message.
    pub fn deny(reason: Reason, message: impl Into<String>) -> Verdict {
        Verdict::Deny(Denial { reason, message: message.into() })
    }

    /// An escalation to `target` with this reason and message.
    pub fn escalate(target: EscalationTarget, reason: Reason, message: impl Into<String>) -> Verdict {
        Verdict::Escalate(Escalation { target, reason, message: message.into() })
    }

    /// The reason of a refusal or escalation; `None` for an allow.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Verdict::Allow(_) => None,
            Verdict::Escalate(e) => Some(e.reason),
            Verdict::Deny(d) => Some(d.reason),
        }
    }

    /// Whether this verdict lets the delegation go ahead.
    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow(_))
    }
}

/// A verdict other than allow: what a rule stage returns when it stops the pipeline. Smaller
/// than a [`Verdict`] (no grant), and a stage cannot allow by mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Hold for a human or a more trusted agent.
    Escalate(Escalation),
    /// Refuse.
    Deny(Denial),
}

impl Refusal {
    /// A denial with this reason and message.
    pub fn deny(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal::Deny(Denial { reason, message: message.into() })
    }

    /// An escalation to `target` with this reason and message.
    pub fn escalate(target: EscalationTarget, reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal::Escalate(Escalation { target, reason, message: message.into() })
    }
}

impl From<Refusal> for Verdict {
    fn from(refusal: Refusal) -> Verdict {
        match refusal {
            Refusal::Escalate(e) => Verdict::Escalate(e),
            Refusal::Deny(d) => Verdict::Deny(d),
        }
    }
}

/// How a delegated task ended, for penalty propagation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Succeeded; the executor gains this much trust.
    Success(f64),
    /// Failed; the penalty to apply.
    Failure(f64),
}

/// A change to one agent's trust score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustDelta {
    /// The agent.
    pub agent: String,
    /// Signed change.
    pub delta: f64,
}

/// What a policy says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyInfo {
    /// Name from the configuration.
    pub name: String,
    /// Version from the configuration.
    pub version: String,
    /// Hex SHA-256 of the configuration bytes.
    pub config_digest: String,
    /// Configured maximum depth before risk tiers narrow it.
    pub max_depth: u8,
    /// The [`crate::wire`] version the policy speaks.
    pub wire_version: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_follow_the_vorion_bands() {
        let edges = [
            (0, TrustTier::T0),
            (199, TrustTier::T0),
            (200, TrustTier::T1),
            (349, TrustTier::T1),
            (350, TrustTier::T2),
            (499, TrustTier::T2),
            (500, TrustTier::T3),
            (649, TrustTier::T3),
            (650, TrustTier::T4),
            (799, TrustTier::T4),
            (800, TrustTier::T5),
            (875, TrustTier::T5),
            (876, TrustTier::T6),
            (950, TrustTier::T6),
            (951, TrustTier::T7),
            (1000, TrustTier::T7),
        ];
        for (score, tier) in edges {
            assert_eq!(TrustTier::of_score(score), tier, "score {score}");
        }
    }

    #[test]
    fn verdict_json_is_tagged_and_flat() {
        let verdict = Verdict::deny(Reason::DelegationCycle, "`b` is already in the chain");
        let json = serde_json::to_string(&verdict).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"deny":{"code":1002,"reason":"delegation-cycle","message":"`b` is already in the chain"}}"#
        );
        let back: Verdict =
            serde_json::from_str(&json).unwrap_or_else(|_| Verdict::deny(Reason::PolicyFault, ""));
        assert_eq!(back, verdict);
    }
}
