"""The WIT types of ``sbd:delegation/types@0.1.0`` as Python dataclasses and enums.

Field names are the WIT names in snake_case (``from`` is ``from_``, a Python keyword). Integers
are plain ``int`` (``u64`` timestamps and amounts included), floats are ``float``. A WIT
``variant`` is a union of small dataclasses, so ``match`` reads naturally::

    match policy.evaluate(request):
        case Allow(grant):
            hand_over(grant.sub_agent, grant.child_mandate)
        case Escalate(target=HumanTarget(who)):
            ask(who)
        case Escalate(target=AgentTarget(agent_id)):
            reroute(agent_id)
        case Deny(code, name, message):
            log.warning("refused %s (%d): %s", name, code, message)

Values are checked when they cross into the component: a wrong type raises ``TypeError`` and
an integer outside its WIT range raises ``ValueError``, each naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional, Union

__all__ = [
    "TrustTier",
    "RiskLevel",
    "BudgetUnit",
    "Budget",
    "Agent",
    "Mandate",
    "Link",
    "DepthException",
    "Task",
    "Request",
    "PolicyWarning",
    "AccountabilityShare",
    "Grant",
    "HumanTarget",
    "AgentTarget",
    "EscalationTarget",
    "Allow",
    "Escalate",
    "Deny",
    "Verdict",
    "Success",
    "Failure",
    "Outcome",
    "TrustDelta",
    "PolicyInfo",
]


class TrustTier(str, Enum):
    """Vorion trust tiers: T0 0-199, T1 200-349, T2 350-499, T3 500-649, T4 650-799,
    T5 800-875, T6 876-950, T7 951-1000. The value is the WIT case name."""

    T0 = "t0"
    T1 = "t1"
    T2 = "t2"
    T3 = "t3"
    T4 = "t4"
    T5 = "t5"
    T6 = "t6"
    T7 = "t7"


class RiskLevel(str, Enum):
    """The risk of the task being delegated (AG-396 4.8 risk tiers)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class BudgetUnit(str, Enum):
    """Budget units of the Cycles protocol. The value is the WIT case name; the JSON form
    (``sbd eval``) spells them ``USD_MICROCENTS``, ``TOKENS``, ``CREDITS``, ``RISK_POINTS``."""

    USD_MICROCENTS = "usd-microcents"
    TOKENS = "tokens"
    CREDITS = "credits"
    RISK_POINTS = "risk-points"


@dataclass
class Budget:
    """An amount of one budget unit."""

    unit: BudgetUnit
    """The unit the amount is counted in."""
    amount: int
    """The amount, in that unit (u64)."""


@dataclass
class Agent:
    """An agent as the policy sees it: an identifier and its own trust score."""

    id: str
    """Stable agent identifier."""
    trust: int
    """The agent's own trust score, 0-1000 on the Vorion scale (u16 on the wire)."""


@dataclass
class Mandate:
    """The authority an agent holds. Every hop may only narrow it (AG-001, AG-396 4.7)."""

    value_ceiling: int
    """Largest value of a single action, in USD microcents (u64)."""
    action_kinds: list[str]
    """Permitted action kinds: ``payment.refund``, ``payment.*`` for a family, ``*`` for all."""
    counterparties: list[str]
    """Permitted counterparties; ``*`` permits any."""
    budgets: list[Budget]
    """Spendable budget per unit; a unit that is absent cannot be spent at all."""
    remaining_depth: int
    """How many further hops the holder may delegate (u8; 0: terminal)."""
    expires_at: int
    """The mandate is void at or after this instant (Unix milliseconds, u64)."""


@dataclass
class Link:
    """One completed delegation in the chain so far (immutable depth metadata, AG-396 4.2)."""

    from_: str
    """The delegating agent."""
    to: str
    """The receiving agent."""
    depth: int
    """The depth of this hop: 1 for the originator's delegation (u8)."""
    alpha: float
    """The delegation degree granted on this hop, in [0, 1]."""
    at: int
    """When the hop was granted (Unix milliseconds, u64)."""
    reason: str = ""
    """Why the hop was made (the task context, AG-396 4.6)."""


@dataclass
class DepthException:
    """A temporary depth-limit increase approved by a human (AG-396 4.12)."""

    approved_by: str
    """Who approved it; must name a human authority."""
    justification: str
    """The documented justification."""
    extra_depth: int
    """How many extra hops it permits (u8)."""
    expires_at: int
    """It lapses at this instant (Unix milliseconds, u64)."""


@dataclass
class ToolsetBudget:
    """A toolset's risk-point budget, as the host's ledger holds it."""

    toolset: str
    """The toolset: an action kind's family (``payment`` for ``payment.refund``)."""
    remaining: int
    """Risk points left (u64)."""


@dataclass
class ActionMask:
    """The action mask of a tenant that permits actions only through toolset budgets: the
    host's facts, which the policy's action-mask rule decides on."""

    toolsets: list[ToolsetBudget]
    """Every toolset the tenant has a budget for."""
    cost: int
    """The risk points this task costs (the host's price for its risk level, u64)."""


class UnregisteredRule(str, Enum):
    """What a hop naming an agent the tenant's registry does not know gets."""

    DENY = "deny"
    """Refused: ``unregistered-agent`` (6001)."""
    ESCALATE = "escalate"
    """Escalated to the registry's reviewer: ``unregistered-agent-review`` (5010)."""


@dataclass
class RegistryFacts:
    """The tenant's agent registry on this hop, as the host found it in its own records
    (never the caller's word): the facts the policy's registry rule decides on."""

    delegator_registered: bool
    """Whether the delegating agent is registered."""
    delegate_registered: bool
    """Whether the receiving agent is registered."""
    reviewer: str
    """The human who reviews a hop escalated for an unregistered agent."""
    unregistered: UnregisteredRule = UnregisteredRule.DENY
    """What a hop with an unregistered agent gets."""
    explicit_delegation: bool = False
    """Whether the tenant requires each delegator's registry entry to list its delegates."""
    delegate_listed: bool = False
    """Whether the delegator's registry entry lists the receiving agent."""


@dataclass
class Task:
    """The task being handed over."""

    id: str
    """Task identifier, for the trace."""
    action_kind: str
    """The action the task performs, e.g. ``payment.refund``."""
    risk: RiskLevel
    """The task's risk level."""
    value: int = 0
    """The value the task moves, in USD microcents (u64)."""
    counterparty: Optional[str] = None
    """The counterparty the task acts on, if any."""
    completable_locally: bool = True
    """Whether the delegator could finish the task itself (AG-396 4.4)."""


@dataclass
class Request:
    """One delegation to decide."""

    from_: Agent
    """The delegating agent."""
    to: Agent
    """The proposed receiving agent."""
    task: Task
    """The task to hand over."""
    parent_mandate: Mandate
    """The delegator's own mandate (what it may pass on)."""
    requested_mandate: Mandate
    """The mandate the delegator asks to grant the child."""
    now: int
    """The instant of the decision, from the host's clock (Unix milliseconds, u64)."""
    chain: list[Link] = field(default_factory=list)
    """The chain so far, originator first; empty when the originator delegates."""
    state: list[float] = field(default_factory=list)
    """The SBD state vector s for this decision."""
    depth_exception: Optional[DepthException] = None
    """A human-approved temporary depth increase, if one is on file."""
    action_mask: Optional[ActionMask] = None
    """The tenant's action mask, when it has one; ``None``: no mask applies."""
    registry: Optional[RegistryFacts] = None
    """The tenant's agent registry on this hop; ``None``: no registry applies."""


@dataclass
class PolicyWarning:
    """A notice attached to an allowed delegation."""

    code: int
    """Stable numeric code."""
    name: str
    """Stable kebab-case name."""
    message: str
    """Human-readable explanation."""


@dataclass
class AccountabilityShare:
    """One agent's share of accountability for the chain (SBD Definition 3.5)."""

    agent: str
    """The agent."""
    weight: float
    """Its weight; the weights of a chain sum to 1."""


@dataclass
class Grant:
    """What an allowed delegation carries to the child."""

    alpha: float
    """Delegation degree after projection onto the safe set, in [0, 1]."""
    lambda_: float
    """The safety weight lambda(s), in [0, 1] (``lambda`` is a Python keyword)."""
    sub_agent: str
    """The sub-agent the task goes to."""
    effective_trust: int
    """The chain's effective trust: the executor's own score."""
    effective_tier: TrustTier
    """The tier of ``effective_trust``."""
    child_mandate: Mandate
    """The child's mandate: never wider than the parent's."""
    depth: int
    """This hop's depth (1 for the originator's delegation)."""
    remaining_depth: int
    """Hops the child may still delegate."""
    max_depth: int
    """The maximum depth that applied to this decision."""
    accountability: list[AccountabilityShare]
    """Accountability over the chain including this hop, originator first."""
    accountability_ceiling: float
    """Proposition 4.8 ceiling 1 - (1 - max alpha)^k on any delegate's weight."""
    warnings: list[PolicyWarning]
    """Notices such as the 75% depth warning (AG-396 4.9)."""


@dataclass
class HumanTarget:
    """Escalate to a human authority, by role or address."""

    who: str


@dataclass
class AgentTarget:
    """Escalate to a more trusted agent, by identifier (Vorion upward escalation)."""

    agent_id: str


EscalationTarget = Union[HumanTarget, AgentTarget]
"""Who an escalation goes to."""


@dataclass
class Allow:
    """Go ahead, with this grant."""

    grant: Grant


@dataclass
class Escalate:
    """Hold the delegation and ask someone with more authority."""

    target: EscalationTarget
    """Who decides next."""
    code: int
    """Stable numeric code."""
    name: str
    """Stable kebab-case name."""
    reason: str
    """Human-readable reason."""


@dataclass
class Deny:
    """Refuse the delegation before the child is contacted."""

    code: int
    """Stable numeric code."""
    name: str
    """Stable kebab-case name."""
    message: str
    """Human-readable reason, naming the offending field."""


Verdict = Union[Allow, Escalate, Deny]
"""The decision on one delegation."""


@dataclass
class Success:
    """The delegated task succeeded; the executor gains this much trust."""

    gain: float


@dataclass
class Failure:
    """The delegated task failed; the penalty to apply."""

    penalty: float


Outcome = Union[Success, Failure]
"""How a delegated task ended, for penalty propagation."""


@dataclass
class TrustDelta:
    """A change to one agent's trust score."""

    agent: str
    delta: float


@dataclass
class PolicyInfo:
    """What a loaded policy says about itself."""

    name: str
    """Policy name from its configuration."""
    version: str
    """Policy version from its configuration."""
    config_digest: str
    """Hex SHA-256 of the configuration bytes the policy was built from."""
    max_depth: int
    """The configured maximum depth before risk tiers narrow it."""
    wire_version: int
    """The version of the postcard encoding ``evaluate-encoded`` speaks."""
