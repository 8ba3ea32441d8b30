//! A borrowed, zero-copy view of a [`Request`]: identifiers, action kinds and counterparties
//! are `&str` slices into the one input buffer, validated as UTF-8 once while decoding, with
//! no allocation per string.
//!
//! [`RequestView`] has the same postcard encoding as [`Request`] (the same fields in the same
//! order), so [`crate::wire::decode_request_views`] reads exactly what
//! [`crate::wire::encode_requests`] wrote (the serde derives are the reference the
//! hand-written reader in [`crate::wire`] is tested against). Every rule reads a request
//! through [`Delegation`] (mandates through [`MandateFields`], the task as a [`TaskView`]),
//! which both the owned [`Request`] and the view implement, so the encoded path decides on the
//! view without building an owned request. The rules that refuse most often (self-delegation,
//! cycles, depth) run first, before anything is built for a grant.

use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

use crate::model::{
    ActionMask, Agent, Budget, DepthException, Link, Mandate, RegistryFacts, Request, RiskLevel, Task, TimestampMs,
    ToolsetBudget, UnregisteredRule,
};

/// An agent, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct AgentView<'a> {
    /// Stable identifier.
    pub id: &'a str,
    /// Own trust score.
    pub trust: u16,
}

/// A mandate, borrowed: one vector per list, none per string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MandateView<'a> {
    /// Largest value of a single action.
    pub value_ceiling: u64,
    /// Permitted action kinds.
    #[serde(borrow)]
    pub action_kinds: Vec<&'a str>,
    /// Permitted counterparties.
    #[serde(borrow)]
    pub counterparties: Vec<&'a str>,
    /// Spendable budget per unit.
    pub budgets: Vec<Budget>,
    /// Further hops the holder may delegate.
    pub remaining_depth: u8,
    /// Void at or after this instant.
    pub expires_at: TimestampMs,
}

/// One hop of the chain, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct LinkView<'a> {
    /// Delegating agent.
    pub from: &'a str,
    /// Receiving agent.
    pub to: &'a str,
    /// Depth of this hop.
    pub depth: u8,
    /// Delegation degree granted on this hop.
    pub alpha: f64,
    /// When the hop was granted.
    pub at: TimestampMs,
    /// Why the hop was made.
    pub reason: &'a str,
}

/// A depth exception, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct DepthExceptionView<'a> {
    /// The approving human authority.
    pub approved_by: &'a str,
    /// Documented justification.
    pub justification: &'a str,
    /// Extra hops permitted.
    pub extra_depth: u8,
    /// Lapses at this instant.
    pub expires_at: TimestampMs,
}

/// The task, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TaskView<'a> {
    /// Identifier for the trace.
    pub id: &'a str,
    /// The action performed.
    pub action_kind: &'a str,
    /// Risk level.
    pub risk: RiskLevel,
    /// Value moved.
    pub value: u64,
    /// Counterparty acted on, if any.
    pub counterparty: Option<&'a str>,
    /// Whether the delegator could finish the task itself.
    pub completable_locally: bool,
}

/// A request, borrowed from its postcard encoding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestView<'a> {
    /// Delegating agent.
    #[serde(borrow)]
    pub from: AgentView<'a>,
    /// Proposed receiving agent.
    #[serde(borrow)]
    pub to: AgentView<'a>,
    /// The task.
    #[serde(borrow)]
    pub task: TaskView<'a>,
    /// The delegator's own mandate.
    #[serde(borrow)]
    pub parent_mandate: MandateView<'a>,
    /// The mandate asked for the child.
    #[serde(borrow)]
    pub requested_mandate: MandateView<'a>,
    /// The chain so far, originator first.
    #[serde(borrow)]
    pub chain: Vec<LinkView<'a>>,
    /// SBD state vector.
    pub state: Vec<f64>,
    /// A human-approved depth exception, if any.
    #[serde(borrow)]
    pub depth_exception: Option<DepthExceptionView<'a>>,
    /// The tenant's action mask, if any.
    #[serde(borrow)]
    pub action_mask: Option<ActionMaskView<'a>>,
    /// The registry's facts on the two agents, if any.
    #[serde(borrow)]
    pub registry: Option<RegistryView<'a>>,
    /// The decision instant.
    pub now: TimestampMs,
}

/// A toolset budget, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ToolsetBudgetView<'a> {
    /// The toolset.
    pub toolset: &'a str,
    /// Risk points left.
    pub remaining: u64,
}

/// An action mask, borrowed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ActionMaskView<'a> {
    /// Every toolset with a budget.
    #[serde(borrow)]
    pub toolsets: Vec<ToolsetBudgetView<'a>>,
    /// The task's risk cost.
    pub cost: u64,
}

/// The registry's facts on a hop, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RegistryView<'a> {
    /// Whether the delegating agent is registered.
    pub delegator_registered: bool,
    /// Whether the receiving agent is registered.
    pub delegate_registered: bool,
    /// What a hop with an unregistered agent gets.
    pub unregistered: UnregisteredRule,
    /// The human who reviews a hop escalated for an unregistered agent.
    pub reviewer: &'a str,
    /// Whether the tenant requires each delegator's registry entry to list its delegates.
    pub explicit_delegation: bool,
    /// Whether the delegator's registry entry lists the receiving agent.
    pub delegate_listed: bool,
}

impl RegistryFacts {
    /// The facts as the rules read them.
    pub fn view(&self) -> RegistryView<'_> {
        RegistryView {
            delegator_registered: self.delegator_registered,
            delegate_registered: self.delegate_registered,
            unregistered: self.unregistered,
            reviewer: &self.reviewer,
            explicit_delegation: self.explicit_delegation,
            delegate_listed: self.delegate_listed,
        }
    }
}

impl RegistryView<'_> {
    /// The owned facts with the same contents.
    pub fn to_facts(&self) -> RegistryFacts {
        RegistryFacts {
            delegator_registered: self.delegator_registered,
            delegate_registered: self.delegate_registered,
            unregistered: self.unregistered,
            reviewer: self.reviewer.into(),
            explicit_delegation: self.explicit_delegation,
            delegate_listed: self.delegate_listed,
        }
    }
}

impl RequestView<'_> {
    /// The owned request with the same contents.
    pub fn to_request(&self) -> Request {
        let agent = |a: &AgentView<'_>| Agent { id: a.id.into(), trust: a.trust };
        Request {
            from: agent(&self.from),
            to: agent(&self.to),
            task: Task {
                id: self.task.id.into(),
                action_kind: self.task.action_kind.into(),
                risk: self.task.risk,
                value: self.task.value,
                counterparty: self.task.counterparty.map(String::from),
                completable_locally: self.task.completable_locally,
            },
            parent_mandate: self.parent_mandate.to_mandate(),
            requested_mandate: self.requested_mandate.to_mandate(),
            chain: self
                .chain
                .iter()
                .map(|l| Link {
                    from: l.from.into(),
                    to: l.to.into(),
                    depth: l.depth,
                    alpha: l.alpha,
                    at: l.at,
                    reason: l.reason.into(),
                })
                .collect(),
            state: self.state.clone(),
            depth_exception: self.depth_exception.map(|e| DepthException {
                approved_by: e.approved_by.into(),
                justification: e.justification.into(),
                extra_depth: e.extra_depth,
                expires_at: e.expires_at,
            }),
            action_mask: self.action_mask.as_ref().map(|m| ActionMask {
                toolsets: m
                    .toolsets
                    .iter()
                    .map(|t| ToolsetBudget { toolset: t.toolset.into(), remaining: t.remaining })
                    .collect(),
                cost: m.cost,
            }),
            registry: self.registry.as_ref().map(RegistryView::to_facts),
            now: self.now,
        }
    }
}

/// One hop of the chain, as the structural rules read it.
pub trait ChainLink {
    /// Delegating agent.
    fn from(&self) -> &str;
    /// Receiving agent.
    fn to(&self) -> &str;
    /// Depth of this hop.
    fn depth(&self) -> u8;
    /// Delegation degree granted on this hop.
    fn alpha(&self) -> f64;
    /// When the hop was granted.
    fn at(&self) -> TimestampMs;
}

/// The depth exception's fields the structural rules read.
#[derive(Debug, Clone, Copy)]
pub struct ExceptionRef<'a> {
    /// The approving human authority.
    pub approved_by: &'a str,
    /// Documented justification.
    pub justification: &'a str,
    /// Extra hops permitted.
    pub extra_depth: u8,
    /// Lapses at this instant.
    pub expires_at: TimestampMs,
}

/// What the rules read of a mandate, owned ([`Mandate`]) or borrowed ([`MandateView`]).
pub trait MandateFields {
    /// How a pattern is held: `String` or `&str`.
    type Str: AsRef<str> + core::fmt::Debug;
    /// Largest value of a single action.
    fn value_ceiling(&self) -> u64;
    /// Permitted action kinds.
    fn action_kinds(&self) -> &[Self::Str];
    /// Permitted counterparties.
    fn counterparties(&self) -> &[Self::Str];
    /// Spendable budget per unit.
    fn budgets(&self) -> &[Budget];
    /// Further hops the holder may delegate.
    fn remaining_depth(&self) -> u8;
    /// Void at or after this instant.
    fn expires_at(&self) -> TimestampMs;

    /// The amount of `unit` this mandate holds, if it lists that unit: the smallest, should it
    /// be listed twice (the pipeline refuses that, `budget-unit-duplicated`, but a token or a
    /// stored mandate checked with [`crate::attenuation::check_within`] alone must not be
    /// read at its largest).
    fn budget_of(&self, unit: crate::model::BudgetUnit) -> Option<u64> {
        self.budgets().iter().filter(|b| b.unit == unit).map(|b| b.amount).min()
    }

    /// The owned mandate with the same contents.
    fn to_mandate(&self) -> Mandate {
        Mandate {
            value_ceiling: self.value_ceiling(),
            action_kinds: self.action_kinds().iter().map(|s| String::from(s.as_ref())).collect(),
            counterparties: self.counterparties().iter().map(|s| String::from(s.as_ref())).collect(),
            budgets: self.budgets().to_vec(),
            remaining_depth: self.remaining_depth(),
            expires_at: self.expires_at(),
        }
    }
}

impl MandateFields for Mandate {
    type Str = String;
    fn value_ceiling(&self) -> u64 {
        self.value_ceiling
    }
    fn action_kinds(&self) -> &[String] {
        &self.action_kinds
    }
    fn counterparties(&self) -> &[String] {
        &self.counterparties
    }
    fn budgets(&self) -> &[Budget] {
        &self.budgets
    }
    fn remaining_depth(&self) -> u8 {
        self.remaining_depth
    }
    fn expires_at(&self) -> TimestampMs {
        self.expires_at
    }
    fn to_mandate(&self) -> Mandate {
        self.clone()
    }
}

impl<'a> MandateFields for MandateView<'a> {
    type Str = &'a str;
    fn value_ceiling(&self) -> u64 {
        self.value_ceiling
    }
    fn action_kinds(&self) -> &[&'a str] {
        &self.action_kinds
    }
    fn counterparties(&self) -> &[&'a str] {
        &self.counterparties
    }
    fn budgets(&self) -> &[Budget] {
        &self.budgets
    }
    fn remaining_depth(&self) -> u8 {
        self.remaining_depth
    }
    fn expires_at(&self) -> TimestampMs {
        self.expires_at
    }
}

/// A toolset budget of an action mask, owned or borrowed.
pub trait ToolsetFields {
    /// The toolset.
    fn toolset(&self) -> &str;
    /// Risk points left.
    fn remaining(&self) -> u64;
}

impl ToolsetFields for ToolsetBudget {
    fn toolset(&self) -> &str {
        &self.toolset
    }
    fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl ToolsetFields for ToolsetBudgetView<'_> {
    fn toolset(&self) -> &str {
        self.toolset
    }
    fn remaining(&self) -> u64 {
        self.remaining
    }
}

/// The action mask as the rules read it: every toolset with a budget, and the task's cost.
#[derive(Debug, Clone, Copy)]
pub struct MaskRef<'a, T> {
    /// Every toolset with a budget.
    pub toolsets: &'a [T],
    /// The task's risk cost.
    pub cost: u64,
}

impl Task {
    /// The task, borrowed.
    pub fn view(&self) -> TaskView<'_> {
        TaskView {
            id: &self.id,
            action_kind: &self.action_kind,
            risk: self.risk,
            value: self.value,
            counterparty: self.counterparty.as_deref(),
            completable_locally: self.completable_locally,
        }
    }
}

impl ActionMask {
    /// The mask as the rules read it.
    pub fn fields(&self) -> MaskRef<'_, ToolsetBudget> {
        MaskRef { toolsets: &self.toolsets, cost: self.cost }
    }
}

/// What the rules read of a request, owned ([`Request`]) or borrowed ([`RequestView`]): one
/// implementation of the rules serves both, so the encoded path decides on the borrowed view
/// without building an owned request.
pub trait Delegation {
    /// The chain's link type.
    type Link: ChainLink;
    /// The mandates' type.
    type Mandate: MandateFields;
    /// The action mask's toolset type.
    type Toolset: ToolsetFields;
    /// The delegating agent's identifier.
    fn from_id(&self) -> &str;
    /// The delegating agent's trust score.
    fn from_trust(&self) -> u16;
    /// The receiving agent's identifier.
    fn to_id(&self) -> &str;
    /// The receiving agent's trust score.
    fn to_trust(&self) -> u16;
    /// The chain so far, originator first.
    fn links(&self) -> &[Self::Link];
    /// The SBD state vector.
    fn state(&self) -> &[f64];
    /// The decision instant.
    fn now(&self) -> TimestampMs;
    /// The task's risk level.
    fn risk(&self) -> RiskLevel;
    /// Whether the delegator could finish the task itself.
    fn completable_locally(&self) -> bool;
    /// The depth exception on file, if any.
    fn depth_exception(&self) -> Option<ExceptionRef<'_>>;
    /// The delegator's own mandate.
    fn parent_mandate(&self) -> &Self::Mandate;
    /// The mandate asked for the child.
    fn requested_mandate(&self) -> &Self::Mandate;
    /// The task, borrowed.
    fn task(&self) -> TaskView<'_>;
    /// The tenant's action mask, if any.
    fn action_mask(&self) -> Option<MaskRef<'_, Self::Toolset>>;
    /// The registry's facts on the two agents, if any.
    fn registry(&self) -> Option<RegistryView<'_>>;

    /// When the delegator's own mandate lapses.
    fn parent_expires_at(&self) -> TimestampMs {
        self.parent_mandate().expires_at()
    }
    /// Hops the delegator's own mandate still permits.
    fn parent_remaining_depth(&self) -> u8 {
        self.parent_mandate().remaining_depth()
    }

    /// The first delegator of the chain (the requester when the chain is empty).
    fn originator(&self) -> &str {
        self.links().first().map_or(self.from_id(), ChainLink::from)
    }

    /// The depth this hop would have: one more than the chain so far.
    fn hop_depth(&self) -> usize {
        self.links().len() + 1
    }
}

impl ChainLink for Link {
    fn from(&self) -> &str {
        &self.from
    }
    fn to(&self) -> &str {
        &self.to
    }
    fn depth(&self) -> u8 {
        self.depth
    }
    fn alpha(&self) -> f64 {
        self.alpha
    }
    fn at(&self) -> TimestampMs {
        self.at
    }
}

impl ChainLink for LinkView<'_> {
    fn from(&self) -> &str {
        self.from
    }
    fn to(&self) -> &str {
        self.to
    }
    fn depth(&self) -> u8 {
        self.depth
    }
    fn alpha(&self) -> f64 {
        self.alpha
    }
    fn at(&self) -> TimestampMs {
        self.at
    }
}

impl Delegation for Request {
    type Link = Link;
    type Mandate = Mandate;
    type Toolset = ToolsetBudget;
    fn parent_mandate(&self) -> &Mandate {
        &self.parent_mandate
    }
    fn requested_mandate(&self) -> &Mandate {
        &self.requested_mandate
    }
    fn task(&self) -> TaskView<'_> {
        self.task.view()
    }
    fn action_mask(&self) -> Option<MaskRef<'_, ToolsetBudget>> {
        self.action_mask.as_ref().map(ActionMask::fields)
    }
    fn registry(&self) -> Option<RegistryView<'_>> {
        self.registry.as_ref().map(RegistryFacts::view)
    }
    fn from_id(&self) -> &str {
        &self.from.id
    }
    fn from_trust(&self) -> u16 {
        self.from.trust
    }
    fn to_id(&self) -> &str {
        &self.to.id
    }
    fn to_trust(&self) -> u16 {
        self.to.trust
    }
    fn links(&self) -> &[Link] {
        &self.chain
    }
    fn state(&self) -> &[f64] {
        &self.state
    }
    fn now(&self) -> TimestampMs {
        self.now
    }
    fn risk(&self) -> RiskLevel {
        self.task.risk
    }
    fn completable_locally(&self) -> bool {
        self.task.completable_locally
    }
    fn depth_exception(&self) -> Option<ExceptionRef<'_>> {
        self.depth_exception.as_ref().map(|e| ExceptionRef {
            approved_by: &e.approved_by,
            justification: &e.justification,
            extra_depth: e.extra_depth,
            expires_at: e.expires_at,
        })
    }
}

impl<'a> Delegation for RequestView<'a> {
    type Link = LinkView<'a>;
    type Mandate = MandateView<'a>;
    type Toolset = ToolsetBudgetView<'a>;
    fn parent_mandate(&self) -> &MandateView<'a> {
        &self.parent_mandate
    }
    fn requested_mandate(&self) -> &MandateView<'a> {
        &self.requested_mandate
    }
    fn task(&self) -> TaskView<'_> {
        self.task
    }
    fn action_mask(&self) -> Option<MaskRef<'_, ToolsetBudgetView<'a>>> {
        self.action_mask.as_ref().map(|m| MaskRef { toolsets: &m.toolsets, cost: m.cost })
    }
    fn registry(&self) -> Option<RegistryView<'_>> {
        self.registry
    }
    fn from_id(&self) -> &str {
        self.from.id
    }
    fn from_trust(&self) -> u16 {
        self.from.trust
    }
    fn to_id(&self) -> &str {
        self.to.id
    }
    fn to_trust(&self) -> u16 {
        self.to.trust
    }
    fn links(&self) -> &[LinkView<'a>] {
        &self.chain
    }
    fn state(&self) -> &[f64] {
        &self.state
    }
    fn now(&self) -> TimestampMs {
        self.now
    }
    fn risk(&self) -> RiskLevel {
        self.task.risk
    }
    fn completable_locally(&self) -> bool {
        self.task.completable_locally
    }
    fn depth_exception(&self) -> Option<ExceptionRef<'_>> {
        self.depth_exception.map(|e| ExceptionRef {
            approved_by: e.approved_by,
            justification: e.justification,
            extra_depth: e.extra_depth,
            expires_at: e.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use alloc::vec;

    #[test]
    fn a_view_decodes_what_the_owned_request_encodes_and_converts_back() {
        let request = Request {
            from: Agent { id: "a".into(), trust: 700 },
            to: Agent { id: "b€".into(), trust: 600 },
            task: Task {
                id: "t".into(),
                action_kind: "payment.refund".into(),
                risk: RiskLevel::High,
                value: 3,
                counterparty: Some("acme".into()),
                completable_locally: false,
            },
            parent_mandate: Mandate {
                value_ceiling: 10,
                action_kinds: vec!["payment.*".into(), "crm.read".into()],
                counterparties: vec!["*".into()],
                budgets: vec![Budget { unit: BudgetUnit::Tokens, amount: 5 }],
                remaining_depth: 2,
                expires_at: 99,
            },
            requested_mandate: Mandate {
                value_ceiling: 1,
                action_kinds: vec![],
                counterparties: vec!["acme".into()],
                budgets: vec![],
                remaining_depth: 1,
                expires_at: 98,
            },
            chain: vec![Link {
                from: "o".into(),
                to: "a".into(),
                depth: 1,
                alpha: 0.5,
                at: 1,
                reason: "r".into(),
            }],
            state: vec![0.1, -2.0],
            depth_exception: Some(DepthException {
                approved_by: "h".into(),
                justification: "j".into(),
                extra_depth: 1,
                expires_at: 9,
            }),
            action_mask: Some(ActionMask { toolsets: vec![ToolsetBudget { toolset: "pay".into(), remaining: 1 }], cost: 1 }),
            registry: Some(RegistryFacts {
                delegator_registered: true,
                delegate_registered: false,
                unregistered: UnregisteredRule::Escalate,
                reviewer: "ops-é".into(),
                explicit_delegation: true,
                delegate_listed: false,
            }),
            now: 5,
        };
        let bytes = postcard::to_allocvec(&request).unwrap_or_default();
        let view: Option<RequestView<'_>> = postcard::from_bytes(&bytes).ok();
        let view = view.unwrap_or_else(|| panic!("the view decodes"));
        assert_eq!(view.to.id, "b€");
        assert_eq!(view.to_request(), request);
        assert_eq!(view.originator(), request.originator());
        assert_eq!(Delegation::hop_depth(&view), request.hop_depth());
    }
}
